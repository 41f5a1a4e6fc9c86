"""The encrypted field's common part: encrypt on the way in, decrypt on the way out, refuse what
the database cannot do with ciphertext (lookups, indexes, uniqueness, expressions that would
write plaintext)."""

from __future__ import annotations

from typing import Any

from django.core import checks, exceptions
from django.db import models
from django.db.models.expressions import Col
from django.utils.functional import cached_property

from ..encryptor import context_bytes, open_value, seal
from ..exceptions import DecryptionError
from ..legacy import is_envelope, is_fernet_token, reader_for_field
from .binding import ColumnBinding, RowBoundAttribute, RowBoundValue, SealedValue
from .field_checks import field_errors
from .index_writes import ForInsert, IndexedAssignment
from .indexing import BlindIndexOptions
from .lookups import EncryptedExact, lookup_error
from .messages import error_without_value

_REFUSED_OPTIONS = {
    "primary_key": "a primary key",
    "unique": "unique",
    "db_index": "indexed (db_index=True)",
}


# What a field that can have a blind index is told instead (docs/search.md).
_INDEX_ADVICE = {
    "unique": "; for unique values, add blind_index=True (docs/search.md).",
    "db_index": "; to find rows by value, use blind_index=True (docs/search.md).",
    "primary_key": ".",
}


class EncryptedFieldMixin(BlindIndexOptions):
    """Turns a Django field into its encrypted counterpart. Subclasses say how their Python value
    becomes bytes (``to_plaintext``) and back (``from_plaintext``).

    Values are bound to their column (see ``binding``): ``context`` pins the column's name (set
    it to the old ``app_label.Model.field`` after renaming a model or field, or values written
    before the rename no longer decrypt); ``bind_to_pk`` binds each value to its row as well.
    """

    def __init__(
        self, *args: Any, context: str | None = None, bind_to_pk: bool = False, **kwargs: Any
    ) -> None:
        if context is not None:
            context_bytes(context)  # refuses a non-str or empty context here, not at first save
        # Not "self.context": DecimalField has one (its decimal context).
        self.context_name, self.bind_to_pk = context, bind_to_pk
        if bind_to_pk:
            self.descriptor_class = RowBoundAttribute
        super().__init__(*args, **kwargs)  # BlindIndexOptions takes blind_index= and its own
        # Refused here, where the mistake is written, rather than when the model class is built.
        for option, described in _REFUSED_OPTIONS.items():
            if getattr(self, option):
                raise exceptions.ImproperlyConfigured(
                    f"{type(self).__name__}: an encrypted field cannot be {described}; the "
                    "database holds only ciphertext, which differs on every save. Remove "
                    f"{option}=True" + (_INDEX_ADVICE[option] if self.blind_index_kind else ".")
                )

    @cached_property
    def binding(self) -> ColumnBinding | None:
        """What this column's values are bound to; ``None`` for a field on no model."""
        model = getattr(self, "model", None)
        if model is None:
            return None
        name = self.context_name or f"{model._meta.concrete_model._meta.label}.{self.name}"
        pk_field = model._meta.pk if self.bind_to_pk else None
        return ColumnBinding(context_bytes(name), pk_field)

    @cached_property
    def binding_context(self) -> bytes | None:
        """The context of every value of this column (``None`` with ``bind_to_pk``: per row)."""
        binding = self.binding
        return None if binding is None or self.bind_to_pk else binding.context

    def contribute_to_class(
        self, cls: type[models.Model], name: str, private_only: bool = False, **kwargs: Any
    ) -> None:
        # Django 5.0+: a default the database computes (Now(), a literal in the DDL) would be
        # written unencrypted, or as one fixed ciphertext no rotation can reach.
        if getattr(self, "db_default", models.NOT_PROVIDED) is not models.NOT_PROVIDED:
            raise exceptions.ImproperlyConfigured(
                f"{cls.__name__}.{name}: an encrypted field cannot have a db_default; the "
                "database would write it without encrypting it. Use default= instead, which "
                "is encrypted on save."
            )
        super().contribute_to_class(cls, name, private_only=private_only, **kwargs)
        # A field copied from an abstract model may carry the abstract model's binding.
        self.__dict__.pop("binding", None)
        self.__dict__.pop("binding_context", None)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        if self.context_name is not None:
            kwargs["context"] = self.context_name
        if self.bind_to_pk:
            kwargs["bind_to_pk"] = True
        # Migrations name our fields by the package (data_encryption.fields.EncryptedCharField),
        # not the module that defines them, so moving a field between modules changes none.
        if path.startswith("data_encryption.fields."):
            path = f"data_encryption.fields.{type(self).__name__}"
        return name, path, args, kwargs

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

    # Django's messages repeat the rejected value, here the plaintext; these say what the field
    # expects instead. Each raises outside its ``except`` block, so the original error (which
    # holds the value) is not chained to the new one.
    def get_prep_value(self, value: Any) -> Any:
        try:
            return super().get_prep_value(value)
        except (TypeError, ValueError, exceptions.ValidationError) as exc:
            error = error_without_value(self, exc)
        raise error

    def clean(self, value: Any, model_instance: models.Model | None) -> Any:
        try:
            value = super().clean(value, model_instance)
        except exceptions.ValidationError as exc:
            error = error_without_value(self, exc)
        else:
            if self.normalise is not None and value is not None:
                self.normalise(str(value))  # its ValidationError shows on the form's field
            return value
        raise error

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = self._pre_save(model_instance, add)
        return ForInsert(value, self) if add and self.blind_index else value

    def _pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = super().pre_save(model_instance, add)
        if not self.bind_to_pk or value is None:
            return value
        if model_instance.pk is None:
            raise ValueError(
                f"{self.model.__name__}.{self.name} is bound to its row's primary key "
                "(bind_to_pk=True), which is not set before this save. Give the primary key a "
                "default, such as UUIDField(primary_key=True, default=uuid.uuid4)."
            )
        assert self.binding is not None
        return RowBoundValue(value, self.binding.for_row(model_instance.pk))

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        context = self.binding_context
        if isinstance(value, RowBoundValue):
            value, context = value.value, value.context
        elif self.bind_to_pk and value is not None:
            raise exceptions.FieldError(
                f"{self.model.__name__}.{self.name} is bound to its row's primary key "
                "(bind_to_pk=True), so it is written only by save() or bulk_create(), which "
                "know the row; not by update(), bulk_update(), a Value() or a raw save."
            )
        if not prepared:
            value = self.get_prep_value(value)
        if value is None:
            return None
        return connection.Database.Binary(seal(self.to_plaintext(value), context))

    def get_db_prep_save(self, value: Any, connection: Any) -> Any:
        if isinstance(value, ForInsert):
            return self.plain_db_prep_save(value.value, connection)
        if self.blind_index:
            # A value the normaliser rejects is refused when the UPDATE is compiled, before
            # anything is written; save() refused it before its transaction (index_columns).
            if hasattr(value, "as_sql"):
                self._check_expression_writes_ciphertext(value)
            return IndexedAssignment(self, value)
        return self.plain_db_prep_save(value, connection)

    def plain_db_prep_save(self, value: Any, connection: Any) -> Any:
        """The ciphertext of ``value`` (or a resolved expression, as it is)."""
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
        elsewhere = _column_bound_elsewhere(expression, self)
        if elsewhere is not None:
            raise exceptions.FieldError(
                f"{self.model.__name__}.{self.name} is encrypted and its values are bound to "
                f"their column, so it cannot be set to the ciphertext of {elsewhere}: the copy "
                "would not decrypt. Load the values and assign them in Python."
            )
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
        if self.bind_to_pk:  # the row's pk is not known here: the model attribute opens it
            if not is_envelope(value) and (reader := reader_for_field(self)) is not None:
                return reader.read(value, self)
            return SealedValue(bytes(value) if not isinstance(value, str) else value.encode())
        try:
            plaintext = open_value(value, self.binding_context)
        except (DecryptionError, TypeError) as exc:
            # Not an envelope: a value from before the column was ours, read only in a column
            # in transition (DATA_ENCRYPTION_LEGACY_COLUMNS); anywhere else, an error.
            if is_envelope(value):
                raise
            reader = reader_for_field(self)
            if reader is None:
                error = self._not_encrypted(value, exc)
            else:
                return reader.read(value, self)
            raise error from None
        return self.from_plaintext_checked(plaintext)

    def _not_encrypted(self, value: Any, exc: Exception) -> DecryptionError:
        if isinstance(exc, DecryptionError) and is_fernet_token(value):
            return exc  # a legacy token of this app (ACCEPT_LEGACY_TOKENS), with its own advice
        return DecryptionError(
            f"A value of {self.model.__name__}.{self.name} is not encrypted (it is plaintext or "
            "another library's ciphertext). If the column held such values before it became "
            "encrypted, list it in DATA_ENCRYPTION_LEGACY_COLUMNS and convert it with "
            "encrypt_existing (docs/adoption.md)."
        )

    def from_plaintext_checked(self, plaintext: bytes) -> Any:
        """``from_plaintext``, with any error turned into the documented ``DecryptionError``."""
        try:
            return self.from_plaintext(plaintext)
        except Exception:
            # Whatever the authentic plaintext is (JSON nested past the recursion limit, digits
            # past int's limit, a custom decoder's own error), a read raises one documented
            # error; the exception's text is dropped, since it may quote the plaintext.
            raise self._wrong_type() from None

    def _wrong_type(self) -> DecryptionError:
        return DecryptionError(
            f"A value of {self.model.__name__}.{self.name} decrypted, but is not a valid "
            f"{type(self).__name__} value; it was written by a different field type."
        )

    def get_lookup(self, lookup_name: str) -> Any:
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        if found := self.index_lookup(lookup_name):
            return found
        if lookup_name == "exact":
            return EncryptedExact
        raise lookup_error(self, lookup_name)

    def get_transform(self, lookup_name: str) -> Any:
        raise lookup_error(self, lookup_name)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        return [*super().check(**kwargs), *field_errors(self)]


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


def _column_bound_elsewhere(expression: Any, target: EncryptedFieldMixin) -> str | None:
    """The name of a column in ``expression`` whose values are bound to another context than
    ``target``'s (``F("other_field")``), or ``None``."""
    if isinstance(expression, Col):
        source = expression.target
        if isinstance(source, EncryptedFieldMixin) and (
            source.bind_to_pk or target.bind_to_pk or source.binding != target.binding
        ):
            return f"{source.model.__name__}.{source.name}"
        return None
    for part in expression.get_source_expressions():
        found = None if part is None else _column_bound_elsewhere(part, target)
        if found is not None:
            return found
    return None
