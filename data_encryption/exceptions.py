"""The exceptions this app raises.

Each one also inherits what callers already catch: a failed decryption is a ``ValueError`` and a
``cryptography.fernet.InvalidToken`` (what code written for a plain Fernet integration catches),
and a configuration problem is Django's ``ImproperlyConfigured``. No message ever carries key
material or a field's plaintext; key ids may appear.
"""

from __future__ import annotations

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


class EncryptedLookupError(DataEncryptionError, FieldError):
    """A query asked an encrypted field for a lookup the database cannot answer on ciphertext."""
