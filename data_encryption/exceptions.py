"""The exceptions this app raises.

Each one also inherits what callers already catch: a failed decryption is a ``ValueError`` and a
``cryptography.fernet.InvalidToken`` (what code written for a plain Fernet integration catches),
and a configuration problem is Django's ``ImproperlyConfigured``. No message ever carries key
material or a field's plaintext; key ids may appear.
"""

from __future__ import annotations

import traceback

from cryptography.fernet import InvalidToken
from django.core.exceptions import FieldError, ImproperlyConfigured


class DataEncryptionError(Exception):
    """Base class of every error raised by ``data_encryption``."""


class DecryptionError(DataEncryptionError, InvalidToken, ValueError):
    """A stored value or token could not be decrypted.

    Raised for tampered, truncated, empty or garbage input, for a value made under a key the key
    ring does not have, and for a wrong master key. ``key_id`` is the id of the data key named in
    the value's header when the header could be read, else ``None``.
    """

    def __init__(self, message: str, *, key_id: int | None = None) -> None:
        super().__init__(message)
        self.key_id = key_id


class UnknownKeyError(DecryptionError):
    """The value names a data key that is not in the key ring (even after one reload)."""


class KeyUnavailableError(UnknownKeyError):
    """The value names a data key the key table holds but no configured master key unwraps
    (a removed fallback, an altered wrapped key). Only the values under that key fail."""


class PayloadExpired(DecryptionError):
    """A payload token is authentic but older than the ``max_age`` it was checked against."""


class KeyConfigurationError(DataEncryptionError, ImproperlyConfigured):
    """A key setting is missing or malformed, or no configured master key can unwrap a data key."""


class MasterKeyProviderError(KeyConfigurationError):
    """A master-key provider (a KMS, an HSM: ``data_encryption.master_keys``) refused a request
    or could not be asked: wrong credentials or PIN, a key that does not exist or is disabled, a
    missing token. The message names the provider and its key, never key material."""


class MasterKeyUnavailable(MasterKeyProviderError):
    """The provider could not be reached in time (network, timeout, throttling). A process whose
    key ring is loaded keeps the keys it holds; a cold one cannot unwrap until it is back."""


class WrongMasterKey(DataEncryptionError):
    """A provider's answer to an unwrap it cannot do because the blob was not wrapped by its key
    for that key id, or was altered. Not a configuration problem: another configured master key
    (a fallback) may unwrap it."""


class EncryptedLookupError(DataEncryptionError, FieldError):
    """A query asked an encrypted field for a lookup the database cannot answer on ciphertext."""


class BlindIndexError(DataEncryptionError):
    """A blind index (``blind_index=True``) cannot answer a query or be written."""


class IndexKeyUnavailableError(BlindIndexError, KeyConfigurationError):
    """The blind-index key a query or a write needs is not in this process's index key ring:
    the key table does not hold it, or no configured master key unwraps it. ``key_id`` names it.
    Raised instead of answering from an index that would silently match nothing."""

    def __init__(self, message: str, *, key_id: int | None = None) -> None:
        super().__init__(message)
        self.key_id = key_id


class BlindIndexIncomplete(BlindIndexError):
    """Some rows of an indexed field have no index value under the active index key (values
    written before ``blind_index=True`` was added, or converted from plaintext), so a query
    would miss them. ``manage.py rebuild_blind_index`` builds it."""


def describe_error(exc: BaseException) -> str:
    """``exc`` described for a record that people read (a run's reason, an email, the admin,
    ``encryption_status``): never the text of an error that may quote data.

    This app's own errors and configuration errors keep their message: they name settings and
    key ids, never plaintext or key material. A database error gives its class, then the
    SQLSTATE and constraint name its driver provides (psycopg's ``sqlstate`` or ``pgcode`` and
    ``diag.constraint_name``, SQLite's error name), never its message: PostgreSQL's ``DETAIL:
    Failing row contains (...)`` lists the row's values. An ``OSError`` keeps its errno text and
    file name (a full disk, a missing directory). Anything else gives its class alone.
    """
    name = type(exc).__name__
    if isinstance(exc, (DataEncryptionError, ImproperlyConfigured)):
        return f"{name}: {exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{name}: {exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    details: list[str] = []
    # Django re-raises the driver's error as its own class, with the driver's as the cause.
    for error in (exc, exc.__cause__):
        if error is None:
            continue
        sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        constraint = getattr(getattr(error, "diag", None), "constraint_name", None)
        for detail in (
            sqlstate and f"SQLSTATE {sqlstate}",
            getattr(error, "sqlite_errorname", None),
            constraint and f"constraint {constraint}",
        ):
            if detail and detail not in details:
                details.append(detail)
    return f"{name} ({', '.join(details)})" if details else name


def describe_traceback(exc: BaseException) -> str:
    """Where ``exc`` was raised, for a log: each error of its chain (the last raised first)
    as ``describe_error`` gives it, followed by its frames (file, line, function, source line).
    What ``logger.exception`` would print, less the messages that may quote data."""
    parts = []
    error: BaseException | None = exc
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        frames = "".join(traceback.format_tb(error.__traceback__))
        parts.append(f"{describe_error(error)}, raised at (most recent call last):\n{frames}")
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return "\nwhile handling or because of:\n".join(parts)
