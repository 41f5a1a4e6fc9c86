"""Encrypted model fields: declare a field instead of writing a property.

Each field behaves like the Django field it is named after (forms, validation, admin) but its
column holds the binary envelope of ``docs/format.md``. Values are encrypted in
``get_db_prep_value`` and decrypted in ``from_db_value``, so ``save``, ``bulk_create``,
``bulk_update``, ``update``, ``values()`` and ``values_list()`` all see plaintext in Python and
ciphertext in the database.

The database cannot compare ciphertext, so the only lookup allowed is ``isnull`` (and ``=None``);
any other raises ``EncryptedLookupError`` (a ``FieldError``) instead of silently matching
nothing. ``unique``, ``db_index`` and ``primary_key`` are refused for the same reason.
"""

from __future__ import annotations

import datetime
import decimal
import json
from typing import Any

from django import forms
from django.core import checks, exceptions
from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.backends.utils import format_number
from django.db.models import lookups
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from .envelope import open_value, seal
from .exceptions import DecryptionError, EncryptedLookupError

_REFUSED_OPTIONS = {
    "primary_key": "a primary key",
    "unique": "unique",
    "db_index": "indexed (db_index=True)",
}


class _EncryptedExact(lookups.Exact):
    """``field=None`` becomes ``isnull`` (Django does that after building this); anything else
    cannot be answered on ciphertext."""

    def __init__(self, lhs: Any, rhs: Any) -> None:
        if rhs is not None:
            raise _lookup_error(lhs.output_field, "exact")
        super().__init__(lhs, rhs)


def _lookup_error(field: models.Field, lookup: str) -> EncryptedLookupError:
    return EncryptedLookupError(
        f"{field.model.__name__}.{field.name} is encrypted, so the database cannot answer the "
        f"'{lookup}' lookup on it (every value is random-looking ciphertext). Only 'isnull' "
        "works. Filter on another field, or load the rows and compare in Python; for exact-match "
        "search, store a keyed hash of the value in a separate indexed field."
    )


class EncryptedFieldMixin(models.Field):
    """Turns a Django field into its encrypted counterpart. Subclasses say how their Python value
    becomes bytes (``to_plaintext``) and back (``from_plaintext``)."""

    def contribute_to_class(self, cls: type[models.Model], name: str, **kwargs: Any) -> None:
        for option, described in _REFUSED_OPTIONS.items():
            if getattr(self, option, False):
                raise exceptions.ImproperlyConfigured(
                    f"{cls.__name__}.{name}: an encrypted field cannot be {described}; the "
                    "database holds only ciphertext, which differs on every save. Remove "
                    f"{option}=True, or keep a keyed hash of the value in a separate field."
                )
        super().contribute_to_class(cls, name, **kwargs)

    def get_internal_type(self) -> str:
        # The column holds the binary envelope, whatever the Python type. This also keeps the
        # backends' type-specific converters (dates on SQLite, decimals...) off our bytes.
        return "BinaryField"

    def cast_db_type(self, connection: Any) -> str | None:
        return self.db_type(connection)

    # Python value <-> plaintext bytes; overridden per type.
    def to_plaintext(self, value: Any) -> bytes:
        return str(value).encode("utf-8")

    def from_plaintext(self, plaintext: bytes) -> Any:
        return plaintext.decode("utf-8")

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if not prepared:
            value = self.get_prep_value(value)
        if value is None:
            return None
        return connection.Database.Binary(seal(self.to_plaintext(value)))

    def get_db_prep_save(self, value: Any, connection: Any) -> Any:
        # DecimalField and others format for their own column type here; ours is binary.
        return self.get_db_prep_value(value, connection=connection, prepared=False)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        plaintext = open_value(value)
        try:
            return self.from_plaintext(plaintext)
        except (ValueError, TypeError, ArithmeticError):
            raise DecryptionError(
                f"A value of {self.model.__name__}.{self.name} decrypted, but is not a valid "
                f"{type(self).__name__} value; it was written by a different field type."
            ) from None

    def get_lookup(self, lookup_name: str) -> Any:
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        if lookup_name == "exact":
            return _EncryptedExact
        raise _lookup_error(self, lookup_name)

    def get_transform(self, lookup_name: str) -> Any:
        raise _lookup_error(self, lookup_name)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        errors = super().check(**kwargs)
        model = getattr(self, "model", None)
        if model is not None:
            for index in model._meta.indexes:
                if self.name in index.fields:
                    errors.append(
                        checks.Error(
                            f"Index '{index.name}' includes encrypted field '{self.name}'.",
                            hint="An index on ciphertext cannot serve any query; remove it.",
                            obj=self,
                            id="data_encryption.E013",
                        )
                    )
        return errors


class EncryptedTextField(EncryptedFieldMixin, models.TextField):
    """Encrypted ``TextField``."""


class EncryptedCharField(EncryptedFieldMixin, models.CharField):
    """Encrypted ``CharField``: ``max_length`` applies to the plaintext (validation and save)."""

    def to_plaintext(self, value: Any) -> bytes:
        text = str(value)
        if self.max_length is not None and len(text) > self.max_length:
            raise ValueError(
                f"{self.model.__name__}.{self.name} holds at most {self.max_length} characters; "
                f"this value has {len(text)}. Validate with full_clean() or shorten it."
            )
        return text.encode("utf-8")


class EncryptedEmailField(EncryptedCharField, models.EmailField):
    """Encrypted ``EmailField``."""


class _EncryptedIntegerMixin(EncryptedFieldMixin):
    # The range of the unencrypted type: the backends' range check keys on the internal type,
    # which is now BinaryField, so the range is taken from the type this field stands for.
    range_of = "IntegerField"

    @cached_property
    def validators(self) -> list[Any]:
        from django.core import validators

        low, high = BaseDatabaseOperations.integer_field_ranges[self.range_of]
        return [
            *self.default_validators,
            *self._validators,
            validators.MinValueValidator(low),
            validators.MaxValueValidator(high),
        ]

    def from_plaintext(self, plaintext: bytes) -> int:
        return int(plaintext)


class EncryptedIntegerField(_EncryptedIntegerMixin, models.IntegerField):
    """Encrypted ``IntegerField`` (32-bit range, like the plain field)."""


class EncryptedBigIntegerField(_EncryptedIntegerMixin, models.BigIntegerField):
    """Encrypted ``BigIntegerField`` (64-bit range)."""

    range_of = "BigIntegerField"


class EncryptedDecimalField(EncryptedFieldMixin, models.DecimalField):
    """Encrypted ``DecimalField``; stored quantized to ``decimal_places`` like the plain field."""

    def to_plaintext(self, value: Any) -> bytes:
        return format_number(value, self.max_digits, self.decimal_places).encode("ascii")

    def from_plaintext(self, plaintext: bytes) -> decimal.Decimal:
        return decimal.Decimal(plaintext.decode("ascii"))


class EncryptedFloatField(EncryptedFieldMixin, models.FloatField):
    """Encrypted ``FloatField``; the exact float round-trips."""

    def to_plaintext(self, value: Any) -> bytes:
        return repr(float(value)).encode("ascii")

    def from_plaintext(self, plaintext: bytes) -> float:
        return float(plaintext)


class EncryptedBooleanField(EncryptedFieldMixin, models.BooleanField):
    """Encrypted ``BooleanField``."""

    def to_plaintext(self, value: Any) -> bytes:
        return b"1" if value else b"0"

    def from_plaintext(self, plaintext: bytes) -> bool:
        if plaintext not in (b"0", b"1"):
            raise ValueError("not a boolean")
        return plaintext == b"1"


class EncryptedDateField(EncryptedFieldMixin, models.DateField):
    """Encrypted ``DateField`` (ISO 8601)."""

    def to_plaintext(self, value: Any) -> bytes:
        return value.isoformat().encode("ascii")

    def from_plaintext(self, plaintext: bytes) -> datetime.date:
        return datetime.date.fromisoformat(plaintext.decode("ascii"))


class EncryptedDateTimeField(EncryptedFieldMixin, models.DateTimeField):
    """Encrypted ``DateTimeField`` (ISO 8601). With ``USE_TZ``, stored and returned in UTC,
    as the plain field does."""

    def to_plaintext(self, value: Any) -> bytes:
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc)
        return value.isoformat().encode("ascii")

    def from_plaintext(self, plaintext: bytes) -> datetime.datetime:
        return datetime.datetime.fromisoformat(plaintext.decode("ascii"))


class EncryptedJSONField(EncryptedFieldMixin, models.Field):
    """Encrypted JSON: any JSON-serialisable value, with optional ``encoder``/``decoder`` classes.

    Python ``None`` is stored as SQL ``NULL``; key and containment lookups are not available.
    """

    description = _("An encrypted JSON object")
    empty_strings_allowed = False
    default_error_messages = {"invalid": _("Value must be valid JSON.")}

    def __init__(
        self,
        *args: Any,
        encoder: type[json.JSONEncoder] | None = None,
        decoder: type[json.JSONDecoder] | None = None,
        **kwargs: Any,
    ) -> None:
        if encoder is not None and not callable(encoder):
            raise ValueError("The encoder parameter must be a callable object.")
        if decoder is not None and not callable(decoder):
            raise ValueError("The decoder parameter must be a callable object.")
        self.encoder = encoder
        self.decoder = decoder
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        if self.encoder is not None:
            kwargs["encoder"] = self.encoder
        if self.decoder is not None:
            kwargs["decoder"] = self.decoder
        return name, path, args, kwargs

    def to_plaintext(self, value: Any) -> bytes:
        return json.dumps(value, cls=self.encoder).encode("utf-8")

    def from_plaintext(self, plaintext: bytes) -> Any:
        return json.loads(plaintext, cls=self.decoder)

    def validate(self, value: Any, model_instance: models.Model | None) -> None:
        super().validate(value, model_instance)
        try:
            json.dumps(value, cls=self.encoder)
        except TypeError:
            raise exceptions.ValidationError(
                self.error_messages["invalid"], code="invalid", params={"value": value}
            ) from None

    def value_to_string(self, obj: models.Model) -> Any:
        return self.value_from_object(obj)

    def formfield(self, **kwargs: Any) -> Any:
        return super().formfield(
            **{
                "form_class": forms.JSONField,
                "encoder": self.encoder,
                "decoder": self.decoder,
                **kwargs,
            }
        )


class EncryptedBinaryField(EncryptedFieldMixin, models.BinaryField):
    """Encrypted ``BinaryField``: the plaintext is the bytes themselves."""

    def to_plaintext(self, value: Any) -> bytes:
        return bytes(value)

    def from_plaintext(self, plaintext: bytes) -> bytes:
        return plaintext


ENCRYPTED_FIELD_TYPES: tuple[type[EncryptedFieldMixin], ...] = (
    EncryptedTextField,
    EncryptedCharField,
    EncryptedEmailField,
    EncryptedIntegerField,
    EncryptedBigIntegerField,
    EncryptedDecimalField,
    EncryptedFloatField,
    EncryptedBooleanField,
    EncryptedDateField,
    EncryptedDateTimeField,
    EncryptedJSONField,
    EncryptedBinaryField,
)
