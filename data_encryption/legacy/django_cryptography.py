"""The reader of django-cryptography's ``encrypt(...)`` fields, without the library.

Each value is ``80 | timestamp (8) | IV (16) | AES-CBC ciphertext | HMAC-SHA256 (32)``: the MAC,
under ``SECRET_KEY``'s bytes, covers everything before it; the AES key is PBKDF2 (30,000
iterations of ``CRYPTOGRAPHY_DIGEST``, salt ``CRYPTOGRAPHY_SALT``) of ``CRYPTOGRAPHY_KEY`` or
else ``SECRET_KEY``; the plaintext is the value pickled. The MAC is verified before anything
else, and the pickle is opened by an unpickler that builds field values only. A key in
``SECRET_KEY_FALLBACKS`` (a ``SECRET_KEY`` changed since) is tried too.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from django.conf import settings
from django.core import exceptions
from django.db import models

from .base import LegacyReader, LegacyValueError, _label
from .restricted_pickle import load_field_value
from .stored_text import in_current_zone_rules

_VERSION = b"\x80"
_HEADER = 1 + 8  # version, timestamp
_IV = 16
_MAC = 32  # HMAC-SHA256, whatever CRYPTOGRAPHY_DIGEST is
_ITERATIONS = 30_000
_DEFAULT_SALT = "django-cryptography"


@dataclass(frozen=True)
class _KeyPair:
    """A MAC key and the AES keys that may go with it (more than one only when the library,
    still imported, has replaced ``CRYPTOGRAPHY_KEY`` by the key it derived: see ``__init__``)."""

    signing: bytes
    encryption: tuple[bytes, ...]

    def __repr__(self) -> str:
        return "<_KeyPair>"  # never the keys


class DjangoCryptographyReader(LegacyReader):
    """Reads values written by django-cryptography's encrypted fields. Options, each defaulting
    to the setting of the same name: ``SECRET_KEY``, ``SECRET_KEY_FALLBACKS``,
    ``CRYPTOGRAPHY_KEY``, ``CRYPTOGRAPHY_SALT``, ``CRYPTOGRAPHY_DIGEST``."""

    name = "django-cryptography"
    option_names: ClassVar[frozenset[str]] = frozenset(
        {
            "SECRET_KEY",
            "SECRET_KEY_FALLBACKS",
            "CRYPTOGRAPHY_KEY",
            "CRYPTOGRAPHY_SALT",
            "CRYPTOGRAPHY_DIGEST",
        }
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)

        def option(name: str, default: Any = None) -> Any:
            return options[name] if name in options else getattr(settings, name, default)

        fallbacks = option("SECRET_KEY_FALLBACKS", [])
        if not isinstance(fallbacks, (list, tuple)):
            raise self._misconfigured("SECRET_KEY_FALLBACKS must be a list")
        self._secrets = [
            self._secret(value, f"SECRET_KEY_FALLBACKS[{index}]" if index else "SECRET_KEY")
            for index, value in enumerate([option("SECRET_KEY"), *fallbacks])
        ]
        self._salt = self._secret(option("CRYPTOGRAPHY_SALT", _DEFAULT_SALT), "CRYPTOGRAPHY_SALT")
        digest = option("CRYPTOGRAPHY_DIGEST", hashes.SHA256())
        if not isinstance(digest, hashes.HashAlgorithm) or digest.digest_size not in (16, 24, 32):
            raise self._misconfigured(
                "CRYPTOGRAPHY_DIGEST must be a hash instance such as hashes.SHA256(), whose "
                "size makes an AES key (16, 24 or 32 bytes), as the library required"
            )
        self._digest = digest
        key = option("CRYPTOGRAPHY_KEY")
        # Once imported (old migrations import it), the library replaces the setting with the
        # AES key it derived (and adds CRYPTOGRAPHY_BACKEND): such a key is used as it is.
        self._derived: bytes | None = None
        if (
            "CRYPTOGRAPHY_KEY" not in options
            and hasattr(settings, "CRYPTOGRAPHY_BACKEND")
            and isinstance(key, bytes)
            and len(key) == digest.digest_size
        ):
            self._derived, key = key, None
        self._key = None if key is None else self._secret(key, "CRYPTOGRAPHY_KEY")
        self._pairs: list[_KeyPair] | None = None

    def _secret(self, value: Any, setting: str) -> bytes:
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, bytes) or not value:
            raise self._misconfigured(f"{setting} must be a non-empty string")
        return value

    def _misconfigured(self, problem: str) -> exceptions.ImproperlyConfigured:
        return exceptions.ImproperlyConfigured(
            f"The {self.name} legacy reader: {problem}. Give the values the library read, in "
            "the reader's OPTIONS or as the settings themselves."
        )

    def _key_pairs(self) -> list[_KeyPair]:
        # Derived on first use: PBKDF2 is slow by design, and a check or a startup need not pay.
        if self._pairs is None:
            derived: dict[bytes, bytes] = {}
            pairs = []
            for index, secret in enumerate(self._secrets):
                source = self._key or secret
                if source not in derived:
                    derived[source] = PBKDF2HMAC(
                        algorithm=self._digest,
                        length=self._digest.digest_size,
                        salt=self._salt,
                        iterations=_ITERATIONS,
                    ).derive(source)
                if self._derived is None:
                    keys: tuple[bytes, ...] = (derived[source],)
                elif index == 0:
                    keys = (self._derived,)
                else:  # the library's key came from CRYPTOGRAPHY_KEY (any secret) or SECRET_KEY
                    keys = (self._derived, derived[source])
                pairs.append(_KeyPair(signing=secret, encryption=keys))
            self._pairs = pairs
        return self._pairs

    def read(self, raw: Any, field: models.Field) -> Any:
        data = self._stored_bytes(raw)
        for key in self._verified(data).encryption:
            try:
                value = load_field_value(self._decrypted(data, key))
            except Exception:  # noqa: S112
                # Authentic bytes that are not a pickle this reader builds, whatever the
                # unpickler raised (AttributeError from a BUILD, RecursionError, MemoryError...):
                # that row's failure, never an error the application sees on a read.
                continue
            return self._field_value(value, field)
        raise LegacyValueError(
            f"A {self.name} value of {_label(field)} is authentic but does not hold a field "
            "value this reader builds (text, numbers, dates, JSON...), or CRYPTOGRAPHY_KEY is "
            "not the one it was written with; the row is left as it is."
        )

    def _decrypted(self, data: bytes, key: bytes) -> bytes:
        decryptor = Cipher(
            algorithms.AES(key), modes.CBC(data[_HEADER : _HEADER + _IV])
        ).decryptor()
        padded = decryptor.update(data[_HEADER + _IV : -_MAC]) + decryptor.finalize()
        unpadder = padding.PKCS7(algorithms.AES.block_size).unpadder()
        return unpadder.update(padded) + unpadder.finalize()

    def _stored_bytes(self, raw: Any) -> bytes:
        if isinstance(raw, str):
            try:  # a binary column's value as text is base64, as Django serializes it
                raw = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
        data = bytes(raw) if isinstance(raw, (bytes, bytearray, memoryview)) else b""
        body = len(data) - _HEADER - _IV - _MAC
        if data[:1] != _VERSION or body < 16 or body % 16:
            raise LegacyValueError(
                f"A value in this column is not a {self.name} value (it may be plaintext or "
                "another library's value); the row is left as it is. Check the column's READER."
            )
        return data

    def _verified(self, data: bytes) -> _KeyPair:
        for pair in self._key_pairs():
            mac = HMAC(pair.signing, hashes.SHA256())
            mac.update(data[:-_MAC])
            try:
                mac.verify(data[-_MAC:])
            except InvalidSignature:
                continue
            return pair
        raise LegacyValueError(
            f"A {self.name} value in this column was not made with the SECRET_KEY the reader "
            "has, or was altered; the row is left as it is. Add the SECRET_KEY it was written "
            "with to SECRET_KEY_FALLBACKS (in the reader's OPTIONS, or the setting itself) and "
            "run again."
        )

    def _field_value(self, value: Any, field: models.Field) -> Any:
        if not hasattr(field, "to_plaintext") or value is None:
            return value  # a raw column takes text or bytes; plaintext_from_legacy says if not
        try:
            if isinstance(field, models.DateTimeField) and hasattr(value, "utcoffset"):
                # Pickled naive only while USE_TZ was off: wall-clock time in TIME_ZONE.
                return in_current_zone_rules(field.to_python(value))
            return field.to_python(value)
        except (exceptions.ValidationError, TypeError, ValueError, ArithmeticError):
            raise LegacyValueError(
                f"A {self.name} value of {_label(field)} is a {type(value).__name__}, which "
                f"is not a {type(field).__name__} value; check that the column's field type "
                "matches the one the library used."
            ) from None
