"""Direct paths: the plaintext a walk seals for the commonest legacy values, plain text in a text
field or a raw column, taken straight from the stored value instead of through the reader, the
field's validators, ``get_prep_value`` and ``to_plaintext`` (``plaintext_from_legacy``).

A direct path makes every check the generic path makes and returns the same bytes. It only
decides the values that pass: any value it would refuse goes to the generic path, which refuses
it with the generic path's own error, so a failure reads the same whichever path met it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from django.core.validators import MaxLengthValidator
from django.db import models

from .base import LegacyReader, plaintext_from_legacy, storage_validators

PlaintextPath = Callable[[Any], bytes]


def raw_column_path(reader: LegacyReader, field: models.Field) -> PlaintextPath:
    """A raw column (the property pattern's ``BinaryField``): its bytes are the plaintext."""
    generic = partial(plaintext_from_legacy, reader, field)

    def plaintext(raw: Any) -> bytes:
        return raw if type(raw) is bytes else generic(raw)

    return plaintext


def text_path(reader: LegacyReader, field: models.Field) -> PlaintextPath | None:
    """The direct path of a text field whose plaintext is its text's UTF-8 bytes, or ``None``."""
    if not getattr(field, "plaintext_is_utf8", False) or "" not in field.empty_values:
        return None  # another field, or one whose validators check "" too (run_validators would)
    return TextPath(reader, field)


class TextPath:
    """An encrypted text field whose plaintext is its text's UTF-8 bytes (the field says so with
    ``plaintext_is_utf8``): stored UTF-8 bytes are sealed as they are, once they decode and
    pass the field's storage limits (``STORAGE_LIMITS``); stored text (SQLite) is sealed as its
    UTF-8 bytes.

    The field's ``MaxLengthValidator`` (and ``to_plaintext``'s own check of ``max_length``, the
    same limit) become one comparison of lengths: an ASCII value's length is its byte count, so
    most values are never decoded. Any other storage limit runs on
    the text, as ``run_validators`` runs it; like it, none runs on an empty value.
    """

    __slots__ = ("generic", "limit", "validators")

    def __init__(self, reader: LegacyReader, field: models.Field) -> None:
        self.generic: PlaintextPath = partial(plaintext_from_legacy, reader, field)
        limits = [field.max_length] if field.max_length is not None else []
        self.validators: list[Callable[[str], Any]] = []
        for validator in storage_validators(field):
            # Exactly Django's (a subclass may compare differently), with a fixed limit.
            if type(validator) is MaxLengthValidator and type(validator.limit_value) is int:
                limits.append(validator.limit_value)
            else:
                self.validators.append(validator)
        self.limit = min(limits) if limits else sys.maxsize

    def __call__(self, raw: Any) -> bytes:
        if type(raw) is bytes and raw.isascii() and len(raw) <= self.limit and not self.validators:
            return raw  # the commonest value: ASCII text within the limit, nothing else to check
        return self.checked(raw)

    def checked(self, raw: Any) -> bytes:
        """The plaintext for any stored value: checked here when it passes, else the generic
        path's (and its error)."""
        if type(raw) is bytes:
            text = None
            if raw.isascii():
                length = len(raw)
            else:
                try:
                    text = raw.decode()
                except UnicodeDecodeError:
                    return self.generic(raw)
                length = len(text)
            if self.fits(raw if text is None else text, length):
                return raw
        elif type(raw) is str and self.fits(raw, len(raw)):
            try:
                return raw.encode()
            except UnicodeEncodeError:  # a lone surrogate
                pass
        return self.generic(raw)

    def fits(self, text: str | bytes, length: int) -> bool:
        """Whether a value of ``length`` characters passes every check (``text`` is its text,
        or its ASCII bytes, decoded only when a validator needs it)."""
        if length > self.limit:
            return False
        if self.validators and length:
            value = text if isinstance(text, str) else text.decode()
            try:
                for validator in self.validators:
                    validator(value)
            except Exception:
                return False
        return True
