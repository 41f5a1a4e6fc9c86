"""A legacy reader for the conversion tests, written as a user writes one (the reader seam is a
public extension point): ``FernetTokenReader`` reads Fernet tokens made with the keys in its
``KEYS`` option, as some peer libraries store them.
"""

import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.core.exceptions import ValidationError
from django.db import models

from data_encryption.fields import EncryptedJSONField
from data_encryption.legacy import LegacyReader, LegacyValueError


def _text(raw, field, what):
    if isinstance(raw, (int, float)):
        return str(raw)
    if isinstance(raw, str):
        return raw
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise LegacyValueError(
            f"A {what} value of {field.model._meta.label}.{field.name} is not UTF-8 text; fix "
            "the row, then run the conversion again."
        ) from None


def _python(text, field, what):
    if isinstance(field, (models.JSONField, EncryptedJSONField)):
        try:
            return json.loads(text)
        except ValueError:
            raise LegacyValueError(
                f"A {what} value of {field.model._meta.label}.{field.name} is not JSON; fix the "
                "row, then run the conversion again."
            ) from None
    try:
        return field.to_python(text)
    except ValidationError:
        raise LegacyValueError(
            f"A {what} value of {field.model._meta.label}.{field.name} is not a valid value of "
            "its field; fix the row, then run the conversion again."
        ) from None


class FernetTokenReader(LegacyReader):
    name = "test-fernet-tokens"
    option_names = frozenset({"KEYS"})

    def __init__(self, **options):
        super().__init__(**options)
        self._fernet = MultiFernet([Fernet(key) for key in options.get("KEYS", [])])

    def read(self, raw, field):
        token = _text(raw, field, "Fernet token").encode()
        try:
            plaintext = self._fernet.decrypt(token).decode("utf-8")
        except (InvalidToken, UnicodeDecodeError):
            raise LegacyValueError(
                f"A value of {field.model._meta.label}.{field.name} is not a Fernet token under "
                "any key the reader has; add the key to its KEYS, then run the conversion again."
            ) from None
        return _python(plaintext, field, "decrypted")
