"""The reader of django-fernet-encrypted-fields (``encrypted_fields``), without the library.

Each value is a Fernet token of ``str(value)``, under a key derived from every pair of a
``SECRET_KEY`` (with its ``SECRET_KEY_FALLBACKS``) and a ``SALT_KEY`` (one or a list): PBKDF2
with SHA-256, 100,000 iterations, the salt's UTF-8 bytes. Its JSON field stores a JSON document
whose keys are plain and whose every leaf is a token of the leaf's ``str()``; that document is
read back as the library returned it, leaves as strings.
"""

from __future__ import annotations

import base64
import json
from typing import Any, ClassVar

from cryptography.fernet import MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from django.conf import settings
from django.core import exceptions
from django.db import models

from .base import LegacyReader, LegacyValueError, _label
from .fernet_tokens import multi_fernet, not_a_token, open_token, token_bytes
from .stored_text import value_from_text

_ITERATIONS = 100_000
_KEY_SETTINGS = "SECRET_KEY_FALLBACKS or SALT_KEY"


class FernetFieldsReader(LegacyReader):
    """Reads values written by django-fernet-encrypted-fields. Options, each defaulting to the
    setting of the same name: ``SALT_KEY``, ``SECRET_KEY``, ``SECRET_KEY_FALLBACKS``."""

    name = "django-fernet-encrypted-fields"
    option_names: ClassVar[frozenset[str]] = frozenset(
        {"SALT_KEY", "SECRET_KEY", "SECRET_KEY_FALLBACKS"}
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)

        def option(name: str, default: Any = None) -> Any:
            return options[name] if name in options else getattr(settings, name, default)

        salts = option("SALT_KEY")
        self._salts = self._strings(
            salts if isinstance(salts, (list, tuple)) else [salts], "SALT_KEY"
        )
        fallbacks = option("SECRET_KEY_FALLBACKS", [])
        if not isinstance(fallbacks, (list, tuple)):
            raise self._misconfigured("SECRET_KEY_FALLBACKS must be a list")
        self._secrets = self._strings([option("SECRET_KEY")], "SECRET_KEY") + self._strings(
            fallbacks, "SECRET_KEY_FALLBACKS", allow_empty=True
        )
        self._fernet: MultiFernet | None = None

    def _strings(self, values: Any, setting: str, *, allow_empty: bool = False) -> list[str]:
        if not (allow_empty or values) or not all(isinstance(v, str) and v for v in values):
            raise self._misconfigured(f"{setting} must be a non-empty string (or list of them)")
        return list(values)

    def _misconfigured(self, problem: str) -> exceptions.ImproperlyConfigured:
        return exceptions.ImproperlyConfigured(
            f"The {self.name} legacy reader: {problem}. Give the values the library read, in "
            "the reader's OPTIONS or as the settings themselves."
        )

    @property
    def fernet(self) -> MultiFernet:
        # Derived on first use: PBKDF2 is slow by design, and a check or a startup need not pay.
        if self._fernet is None:
            keys = [
                base64.urlsafe_b64encode(
                    PBKDF2HMAC(
                        algorithm=hashes.SHA256(),
                        length=32,
                        salt=salt.encode("utf-8"),
                        iterations=_ITERATIONS,
                    ).derive(secret.encode("utf-8"))
                )
                for secret in self._secrets
                for salt in self._salts
            ]
            self._fernet = multi_fernet(keys)
        return self._fernet

    def read(self, raw: Any, field: models.Field) -> Any:
        token = token_bytes(raw, self.name)
        if token[:1] in (b"{", b"[", b'"'):
            return self._document(token, field)
        return value_from_text(self._text(token), field, self.name)

    def _text(self, token: bytes) -> str:
        plaintext = open_token(self.fernet, token, self.name, _KEY_SETTINGS)
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise not_a_token(self.name) from None

    def _document(self, text: bytes, field: models.Field) -> Any:
        """The library's JSON field: a document of tokens, leaves decrypted to strings."""
        if not hasattr(field, "encoder"):
            raise LegacyValueError(
                f"{_label(field)} holds documents of the {self.name} JSON field; read it into "
                "an EncryptedJSONField."
            )
        try:
            document = json.loads(text)
        except ValueError:
            raise not_a_token(self.name) from None
        return self._leaves(document)

    def _leaves(self, node: Any) -> Any:
        if isinstance(node, dict):
            return {key: self._leaves(value) for key, value in node.items()}
        if isinstance(node, list):
            return [self._leaves(value) for value in node]
        if node is None:  # as the library reads a null leaf
            return None
        return self._text(token_bytes(str(node), self.name))
