"""The legacy reader: what reads a column's values from before it was ours (plaintext, or another
library's ciphertext) while the column is in transition, so the field, the census, the rotation
and ``encrypt_existing`` all treat such a value alike: read it, then rewrite it as an envelope.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from django.core import exceptions
from django.core.validators import (
    DecimalValidator,
    MaxLengthValidator,
    MaxValueValidator,
    MinValueValidator,
)
from django.db import models

from ..envelope import ValueKind, classify, read_header
from ..exceptions import DecryptionError

PLAINTEXT = "plaintext"


class LegacyValueError(DecryptionError):
    """A value in a column in transition that its legacy reader cannot read. Its text says
    why and what to do; it never quotes the value (it may be plaintext)."""


class LegacyReader(abc.ABC):
    """Reads one form of value that a column held before it became an encrypted field.

    A subclass sets ``name`` (the PyPI name of the library it reads, or ``"plaintext"``) and
    implements ``read``. Its options are the old library's settings (keys among them), given
    as keyword arguments; it must never show them in an error, a log or its ``repr``.
    """

    name: ClassVar[str] = ""
    #: The options a subclass accepts; any other is refused (a typo would otherwise go unseen).
    option_names: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - self.option_names)
        if unknown:
            accepted = ", ".join(sorted(self.option_names)) or "none"
            raise exceptions.ImproperlyConfigured(
                f"The {self.name} legacy reader has no option {', '.join(unknown)}; it accepts: "
                f"{accepted}."
            )

    @abc.abstractmethod
    def read(self, raw: Any, field: models.Field) -> Any:
        """The Python value ``field`` holds for stored ``raw``, which is not NULL and not an
        envelope: ``bytes``, ``memoryview`` or ``str`` (or ``int``/``float`` as SQLite keeps
        numbers). Raise ``LegacyValueError`` (never quoting the value) when it cannot."""

    def direct_path(self, field: models.Field) -> Callable[[Any], bytes] | None:
        """A cheaper path from this reader's stored value to the plaintext ``field`` seals, for
        the walk to call once per value instead of ``plaintext_from_legacy``, or ``None``. It
        must return the same bytes and refuse the same values (see ``legacy.direct``)."""
        return None

    @property
    def census_label(self) -> str:
        """What the census counts this reader's values as: ``plaintext`` or ``legacy:<name>``."""
        return PLAINTEXT if self.name == PLAINTEXT else f"legacy:{self.name}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"  # never the options: they hold keys


class UndecodableText(bytes):
    """A SQLite TEXT value that is not UTF-8 (SQLite stores whatever bytes it is given), as its
    bytes: sqlite3 cannot make a ``str`` of it, so a walk reads it this way instead of failing
    the page. Never UTF-8 text, so it fails its own row ("not UTF-8") and is never written back
    (the compare-and-swap could not match a TEXT value with bytes anyway)."""

    def __repr__(self) -> str:
        return f"<UndecodableText {len(self)}B>"  # never the bytes: they are plaintext


def is_envelope(raw: Any) -> bool:
    """Whether ``raw`` is one of our envelopes: a value that starts like the binary form (no
    UTF-8 text starts with its ``ff`` byte), or parses canonically as the ASCII form. Such a
    value is never handed to a legacy reader: if it does not open, it was altered, and says so.
    Text that merely starts like the ASCII form (``"de2: call back Tuesday"``) is not one."""
    if not isinstance(raw, (bytes, bytearray, memoryview, str)):
        return False
    kind = classify(raw)
    if kind is ValueKind.ENVELOPE_ASCII:
        return read_header(raw) is not None
    return kind is ValueKind.ENVELOPE_BINARY


def is_fernet_token(raw: Any) -> bool:
    """Whether ``raw`` starts like a Fernet token (this app's legacy tokens, and some peers')."""
    if not isinstance(raw, (bytes, bytearray, memoryview, str)):
        return False
    return classify(raw) is ValueKind.LEGACY_FERNET


# The validators a conversion applies: the limits the plain column's type enforced in the
# database (a varchar's max_length, an integer's range, a decimal's digits), which the binary
# column of an encrypted field no longer enforces. Others (EmailValidator, URLValidator, a
# user's own) check input, not storage: save() never ran them on the old values, and refusing
# such a value would leave it unencrypted for good.
STORAGE_LIMITS = (MaxLengthValidator, MinValueValidator, MaxValueValidator, DecimalValidator)
_storage_validators: dict[int, tuple[Any, ...]] = {}


def storage_validators(field: models.Field) -> tuple[Any, ...]:
    """``field``'s validators of ``STORAGE_LIMITS`` kinds (fields are long-lived: cached by
    identity)."""
    found = _storage_validators.get(id(field))
    if found is None or found[0] is not field:
        kept = tuple(v for v in field.validators if isinstance(v, STORAGE_LIMITS))
        found = _storage_validators[id(field)] = (field, *kept)
    return found[1:]


def plaintext_from_legacy(reader: LegacyReader, field: models.Field, raw: Any) -> bytes:
    """The plaintext bytes an encrypted ``field`` seals for legacy value ``raw``: read by
    ``reader``, checked against the limits the plain column enforced (``STORAGE_LIMITS``:
    ``max_length``, ranges, digits), encoded as the field encodes. For a column that is not an
    encrypted field (a raw column the rotation rewrites), the value is text, sealed as its UTF-8
    bytes, or bytes, sealed as they are."""
    value = reader.read(raw, field)
    to_plaintext = getattr(field, "to_plaintext", None)
    if to_plaintext is None:
        if isinstance(value, str):
            return value.encode()
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        raise LegacyValueError(
            f"The {reader.name} reader read a {type(value).__name__} for raw column "
            f"{_label(field)}, which holds text or bytes only."
        )
    if value is None:
        raise LegacyValueError(
            f"The {reader.name} reader read no value for {_label(field)} from a value that is "
            "not NULL; the row is left as it is."
        )
    try:
        if value not in field.empty_values:  # as run_validators skips them
            for validator in storage_validators(field):
                validator(value)
        return bytes(to_plaintext(field.get_prep_value(value)))
    except (exceptions.ValidationError, TypeError, ValueError) as exc:
        codes = _validation_codes(exc)
        raise LegacyValueError(
            f"The value read by the {reader.name} reader does not fit {_label(field)} "
            f"({codes}); fix the row or widen the field, then run the conversion again."
        ) from None


class LegacyColumn:
    """A column in transition, as a walk sees it: what its legacy values are counted as, and
    how each becomes the plaintext its field seals."""

    __slots__ = ("field", "label", "plaintext", "reader")

    def __init__(self, reader: LegacyReader, field: models.Field) -> None:
        self.reader, self.field, self.label = reader, field, reader.census_label
        # Called once per value a conversion seals: the reader's direct path when it has one.
        self.plaintext: Callable[[Any], bytes] = reader.direct_path(field) or self.generic_plaintext

    def generic_plaintext(self, raw: Any) -> bytes:
        """``plaintext_from_legacy``: read, validate, prepare and encode as the field does."""
        return plaintext_from_legacy(self.reader, self.field, raw)

    def __repr__(self) -> str:
        return f"<LegacyColumn {self.field.name} {self.label}>"


def _validation_codes(exc: Exception) -> str:
    """What a failure says of a rejected value: the validators' codes and limits, never the
    value (Django's messages for some validators repeat it)."""
    if isinstance(exc, exceptions.ValidationError):
        parts = []
        for error in exc.error_list:
            limit = (error.params or {}).get("limit_value")
            code = error.code or "invalid"
            parts.append(code if limit is None else f"{code} {limit}")
        return ", ".join(parts) or "invalid"
    return f"{type(exc).__name__}: not a value of this type"


def _label(field: models.Field) -> str:
    model = getattr(field, "model", None)
    return f"{model._meta.label}.{field.name}" if model is not None else repr(field.name)


def reader_options(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The ``OPTIONS`` of one entry of ``DATA_ENCRYPTION_LEGACY_COLUMNS`` in dict form."""
    options = spec.get("OPTIONS", {})
    if not isinstance(options, Mapping):
        raise exceptions.ImproperlyConfigured(
            "DATA_ENCRYPTION_LEGACY_COLUMNS: OPTIONS must be a dict of the reader's options."
        )
    return dict(options)
