"""Encrypted model fields: declare a field instead of writing a property.

Each field behaves like the Django field it is named after (forms, validation, admin) but its
column holds the binary envelope of ``docs/format.md``. Values are encrypted in
``get_db_prep_value`` and decrypted in ``from_db_value``, so ``save``, ``bulk_create``,
``bulk_update``, ``update``, ``values()`` and ``values_list()`` all see plaintext in Python and
ciphertext in the database.

The database cannot compare ciphertext, so the only lookup allowed is ``isnull`` (and ``=None``);
any other raises ``EncryptedLookupError`` (a ``FieldError``) instead of silently matching
nothing. ``unique``, ``db_index`` and ``primary_key`` are refused for the same reason.

An expression written to an encrypted column must yield ciphertext (``F()`` of an encrypted
field, ``Value(x, output_field=<encrypted field>)``); any other, and ``db_default``, is refused,
because the database would store its result unencrypted.
"""

from __future__ import annotations

import datetime
import decimal
import json
from typing import Any

from django import forms
from django.conf import settings
from django.core import checks, exceptions
from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.backends.utils import format_number
from django.db.models import lookups
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from .encryptor import open_value, seal
from .exceptions import DecryptionError, EncryptedLookupError

_REFUSED_OPTIONS = {
    "primary_key": "a primary key",
    "unique": "unique",
    "db_index": "indexed (db_index=True)",
}

_INDEX_HINT = "An index on ciphertext cannot serve any query; remove it."
_UNIQUE_HINT = (
    "Ciphertext differs on every save, so uniqueness over it enforces nothing; remove the field "
    "from it, or make a keyed hash of the value in a separate field unique."
)


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

    def contribute_to_class(
        self, cls: type[models.Model], name: str, private_only: bool = False, **kwargs: Any
    ) -> None:
        for option, described in _REFUSED_OPTIONS.items():
            if getattr(self, option, False):
                raise exceptions.ImproperlyConfigured(
                    f"{cls.__name__}.{name}: an encrypted field cannot be {described}; the "
                    "database holds only ciphertext, which differs on every save. Remove "
                    f"{option}=True, or keep a keyed hash of the value in a separate field."
                )
        # Django 5.0+: a default the database computes (Now(), a literal in the DDL) would be
        # written unencrypted, or as one fixed ciphertext no rotation can reach.
        if getattr(self, "db_default", models.NOT_PROVIDED) is not models.NOT_PROVIDED:
            raise exceptions.ImproperlyConfigured(
                f"{cls.__name__}.{name}: an encrypted field cannot have a db_default; the "
                "database would write it without encrypting it. Use default= instead, which "
                "is encrypted on save."
            )
        super().contribute_to_class(cls, name, private_only=private_only, **kwargs)

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
        # The SQL compilers hand resolved expressions here too (the Case of bulk_update, an F() in
        # update()): they compile to SQL themselves and must not be stringified and encrypted.
        if hasattr(value, "as_sql"):
            self._check_expression_writes_ciphertext(value)
            return value
        # DecimalField and others format for their own column type here; ours is binary.
        return self.get_db_prep_value(value, connection=connection, prepared=False)

    def _check_expression_writes_ciphertext(self, expression: Any) -> None:
        """Refuse an expression whose SQL would write anything but ciphertext or NULL
        (``F("name")``, ``Value("x")``, ``F("visits") + 1``, ``Cast(Value("x"), ...)``): the
        database would store its result as is."""
        plain = _plaintext_part(expression)
        if plain is not None:
            # The expression's repr is left out: it may hold the plaintext.
            raise exceptions.FieldError(
                f"{self.model.__name__}.{self.name} is encrypted, so it cannot be set to an "
                f"expression that yields {plain}: the database would store the result "
                "unencrypted. Assign a Python value, or an expression whose output_field is an "
                "encrypted field, such as Value(value, output_field=...)."
            )

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        plaintext = open_value(value)
        try:
            return self.from_plaintext(plaintext)
        except (ValueError, TypeError, ArithmeticError):
            raise self._wrong_type() from None

    def _wrong_type(self) -> DecryptionError:
        return DecryptionError(
            f"A value of {self.model.__name__}.{self.name} decrypted, but is not a valid "
            f"{type(self).__name__} value; it was written by a different field type."
        )

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
            errors.extend(self._index_errors(model._meta))
        return errors

    def _index_errors(self, opts: Any) -> list[checks.CheckMessage]:
        # Unique constraints are indexes too, and worse: validate_unique() would query this
        # field with '=' and raise EncryptedLookupError from full_clean().
        found = [
            (f"Index '{index.name}'", _INDEX_HINT)
            for index in opts.indexes
            if self.name in {name for name, _order in index.fields_orders}
        ]
        found += [
            (f"Unique constraint '{constraint.name}'", _UNIQUE_HINT)
            for constraint in opts.constraints
            if isinstance(constraint, models.UniqueConstraint) and self.name in constraint.fields
        ]
        found += [
            (f"unique_together {tuple(together)!r}", _UNIQUE_HINT)
            for together in opts.unique_together
            if self.name in together
        ]
        return [
            checks.Error(
                f"{what} includes encrypted field '{self.name}'.",
                hint=hint,
                obj=self,
                id="data_encryption.E013",
            )
            for what, hint in found
        ]


def _plaintext_part(expression: Any) -> str | None:
    """Describe the part of a resolved expression that would write something other than this
    app's ciphertext or NULL; ``None`` when there is none.

    A ``Value`` whose output field is encrypted encrypts itself and a column of an encrypted
    field holds ciphertext; any other expression (``Cast``, ``Case``, ``Coalesce``...) yields
    ciphertext only if its output field is encrypted and each of its parts yields ciphertext.
    """
    if isinstance(expression, models.Value) and expression.value is None:
        return None
    if isinstance(expression, models.When):  # its condition is not written, only its result
        return _plaintext_part(expression.result)
    try:
        output = expression.output_field
    except exceptions.FieldError:
        return "a value of unknown type"
    if not isinstance(output, EncryptedFieldMixin):
        return f"a plain {type(output).__name__}"
    for source in expression.get_source_expressions():
        plain = None if source is None else _plaintext_part(source)
        if plain is not None:
            return plain
    return None


class _EncryptedTextMixin(EncryptedFieldMixin):
    """Text plaintext: ``from_db_value`` is the row-loading hot path, so it decodes inline."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        try:
            return open_value(value).decode()
        except UnicodeDecodeError:
            raise self._wrong_type() from None


class EncryptedTextField(_EncryptedTextMixin, models.TextField):
    """Encrypted ``TextField``."""


class EncryptedCharField(_EncryptedTextMixin, models.CharField):
    """Encrypted ``CharField``: ``max_length`` applies to the plaintext (validation and save)."""

    def _check_max_length_attribute(self, **kwargs: Any) -> list[checks.CheckMessage]:
        # The column is binary on every database, so no length is needed for the DDL.
        if self.max_length is None:
            return []
        return super()._check_max_length_attribute(**kwargs)  # type: ignore[misc]

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
            *self._validators,  # type: ignore[attr-defined]  # Field's own, absent from stubs
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
        try:
            text = format_number(value, self.max_digits, self.decimal_places)
        except decimal.InvalidOperation:
            raise ValueError(
                f"{self.model.__name__}.{self.name} holds at most {self.max_digits} digits, "
                f"{self.decimal_places} of them after the decimal point; this value has more "
                "before it. Validate with full_clean() or make the field wider."
            ) from None
        assert text is not None  # format_number maps only None to None
        return text.encode("ascii")

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
    as the plain field does; without it, naive wall-clock times in ``TIME_ZONE``. A value written
    under the other setting is converted on read, so turning ``USE_TZ`` on needs no migration."""

    def to_plaintext(self, value: Any) -> bytes:
        if timezone.is_aware(value):
            if settings.USE_TZ:
                value = value.astimezone(datetime.timezone.utc)
            else:  # wall-clock time in TIME_ZONE, as PostgreSQL stores it for the plain field
                value = timezone.make_naive(value, timezone.get_default_timezone())
        return value.isoformat().encode("ascii")

    def from_plaintext(self, plaintext: bytes) -> datetime.datetime:
        value = datetime.datetime.fromisoformat(plaintext.decode("ascii"))
        if settings.USE_TZ and timezone.is_naive(value):
            # Written while USE_TZ was False: a wall-clock time in TIME_ZONE.
            value = timezone.make_aware(value, timezone.get_default_timezone())
            value = value.astimezone(datetime.timezone.utc)
        elif not settings.USE_TZ and timezone.is_aware(value):
            value = timezone.make_naive(value, timezone.get_default_timezone())
        return value


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
