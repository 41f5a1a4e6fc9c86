"""Migration operations that encrypt a plain column in place (``EncryptField``) and give it back
(``DecryptField``), every row converted inside the migration's transaction. For small tables;
a big one converts online (``EncryptField(..., convert=False)`` and ``encrypt_existing``).
``docs/adoption.md`` shows the edit to the migration that ``makemigrations`` writes."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.migrations.operations.base import OperationCategory
from django.db.migrations.operations.fields import FieldOperation

from ..fields import EncryptedFieldMixin
from ..legacy import PLAINTEXT
from .column_types import check_vendor, raw_values_as_bytes, to_encrypted, to_plain
from .conversion import (
    ConversionError,
    latest_key_migration,
    open_column,
    require_index_columns,
    seal_column,
)
from .conversion import require_key_table as _require_key_table
from .json_nulls import NoJsonNull, holds_json, json_nulls_to_sql, sql_nulls_to_json
from .raw_columns import binding_of, check_raw_column, is_raw, stored_as
from .readers import (
    ReaderSpec,
    check_reader_spec,
    operation_reader,
    reader_name,
    require_transition,
    same_reader,
)

__all__ = ["ConversionError", "DecryptField", "EncryptField", "latest_key_migration"]


class _ColumnConversion(FieldOperation):
    """What both operations share: the state change of ``AlterField``, and the two directions.
    Not an ``AlterField``, so the optimizer never folds one into a neighbouring ``AlterField``
    (which would drop the conversion)."""

    category = OperationCategory.ALTERATION
    field: models.Field
    reduces_to_sql = False
    reversible = True

    def __init__(
        self, model_name: str, name: str, field: models.Field, reader: ReaderSpec = PLAINTEXT
    ) -> None:
        check_reader_spec(reader, f"{type(self).__name__}({model_name!r}, {name!r})")
        self.reader = reader
        super().__init__(model_name, name, field)

    def __repr__(self) -> str:
        # Never the reader's options (a reader with options is refused anyway: they hold keys).
        shown = f"{self.model_name}.{self.name} {type(self.field).__name__}"
        return f"<{type(self).__name__} {shown} reader={self._reader_name()!r}{self._flags()}>"

    def _flags(self) -> str:
        return ""

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "model_name": self.model_name,
            "name": self.name,
            "field": self.field,
        }
        if self.reader != PLAINTEXT:
            kwargs["reader"] = self.reader
        return type(self).__name__, [], kwargs

    def state_forwards(self, app_label: str, state: Any) -> None:
        state.alter_field(app_label, self.model_name_lower, self.name, self.field, True)

    def _fields(self, app_label: str, state: Any) -> tuple[type[models.Model], Any]:
        model = state.apps.get_model(app_label, self.model_name)
        return model, model._meta.get_field(self.name)

    def _reader_name(self) -> str:
        return reader_name(self.reader)

    def _reader(self, model: type[models.Model]) -> Any:
        return operation_reader(
            self.reader, f"{model._meta.label}.{self.name}", where=self.describe()
        )

    def _encrypt(
        self, app_label: str, editor: Any, plain_state: Any, encrypted_state: Any, convert: bool
    ) -> None:
        """The column from its plain field to its encrypted one, each row converted when
        ``convert`` says so."""
        connection = editor.connection
        model, plain = self._fields(app_label, plain_state)
        if not self.allow_migrate_model(connection.alias, model):
            return
        encrypted_model, encrypted = self._fields(app_label, encrypted_state)
        self._check(editor, plain, encrypted, keys=convert)
        if not convert:
            column = f"{model._meta.label}.{self.name}"
            require_transition(self.reader, column, f"{type(self).__name__} of {column}")
        reader = self._reader(model)
        to_encrypted(editor, model, plain, encrypted)
        if is_raw(encrypted):
            raw_values_as_bytes(editor, model, encrypted)
        if holds_json(encrypted) and same_reader(self.reader, PLAINTEXT):
            if encrypted.null:
                json_nulls_to_sql(editor, model, encrypted)
            else:
                reader = NoJsonNull(reader)
        if convert:
            seal_column(connection, encrypted_model, encrypted, reader, binding_of(encrypted))

    def _decrypt(self, app_label: str, editor: Any, encrypted_state: Any, plain_state: Any) -> None:
        """The column from its encrypted field back to its plain one, every value decrypted
        (a value still from before the column was ours is read by the reader)."""
        connection = editor.connection
        model, encrypted = self._fields(app_label, encrypted_state)
        if not self.allow_migrate_model(connection.alias, model):
            return
        _plain_model, plain = self._fields(app_label, plain_state)
        self._check(editor, plain, encrypted, keys=True)
        reader = self._reader(model)
        binding = binding_of(encrypted)
        open_column(
            connection, model, encrypted, reader, binding, stored_as(plain, encrypted, connection)
        )
        if holds_json(encrypted):
            sql_nulls_to_json(editor, model, plain)
        to_plain(editor, model, encrypted, plain)

    def _check(self, editor: Any, plain: Any, encrypted: Any, *, keys: bool) -> None:
        where = f"{type(self).__name__} of {plain.model._meta.label}.{self.name}"
        check_vendor(editor.connection, where)
        if is_raw(encrypted) and not isinstance(plain, EncryptedFieldMixin):
            check_raw_column(encrypted, where)
        elif not isinstance(encrypted, EncryptedFieldMixin) or isinstance(
            plain, EncryptedFieldMixin
        ):
            raise TypeError(
                f"{where} changes a plain field into an encrypted one (EncryptField) or back "
                f"(DecryptField); here it would change a {type(plain).__name__} into a "
                f"{type(encrypted).__name__}. Use AlterField for any other change."
            )
        if plain.is_relation or plain.primary_key:
            raise TypeError(f"{where}: a relation or a primary key cannot be encrypted.")
        if keys and not editor.atomic_migration:
            raise TypeError(
                f"{where} converts rows, which must roll back with the type change if one row "
                "fails: remove 'atomic = False' from the migration."
            )
        if keys:
            _require_key_table(where)


class EncryptField(_ColumnConversion):
    """Encrypt a plain field's column in place: use it instead of the ``AlterField`` that
    ``makemigrations`` writes when ``models.CharField(...)`` becomes
    ``fields.EncryptedCharField(...)``.

    Forwards, the column becomes binary with every value kept readable, then (``convert=True``)
    every row is encrypted under the primary data key, inside the migration's transaction: a row
    that cannot be converted (too long, not its type, a token ``reader`` cannot open) stops the
    migration with its pk, and every row stays as it was (DDL is transactional on PostgreSQL and
    SQLite; other databases are refused). ``reader`` names what the old values are: ``plaintext``
    or another library's reader (its name or a dotted path), which reads the library's settings
    (its keys), or takes its OPTIONS from the column's ``DATA_ENCRYPTION_LEGACY_COLUMNS`` entry
    when that names the same reader: keys never go in a migration file, so ``OPTIONS`` here is
    refused.
    Backwards, every value is decrypted and the plain column comes back with its values.

    An ``EncryptedJSONField`` stores Python ``None`` as SQL NULL, so a JSON ``null`` of the
    plain column becomes SQL NULL when the encrypted field is ``null=True`` (and JSON null again
    backwards if the plain field is NOT NULL); otherwise each such row stops the migration.

    ``convert=False`` changes only the column's type, for a big table converted online: list the
    column in ``DATA_ENCRYPTION_LEGACY_COLUMNS`` with the same reader in the settings you migrate
    and deploy with (the migration is refused, before any change, without), then run
    ``manage.py encrypt_existing app_label.Model.field``.

    ``field`` may also be a raw ``models.BinaryField`` (the hand-written property pattern's
    ``_ssn``) listed in ``ENCRYPTION_KEY_ROTATION["MODELS"]``: its values are sealed as
    ``EncryptionService.encrypt`` seals their text (bound when ``MODELS`` gives a context).

    The migration must depend on ``data_encryption``'s latest migration (the key table), e.g.
    ``("data_encryption", "0006_rotationrun_kind")`` (``makemigrations_encrypted`` writes it).
    """

    def __init__(
        self,
        model_name: str,
        name: str,
        field: models.Field,
        reader: ReaderSpec = PLAINTEXT,
        convert: bool = True,
    ) -> None:
        if not isinstance(field, EncryptedFieldMixin) and not is_raw(field):
            raise TypeError(
                f"EncryptField({model_name!r}, {name!r}) needs the encrypted field the column "
                f"becomes (or the raw BinaryField of the hand-written property pattern), not a "
                f"{type(field).__name__}. DecryptField goes the other way."
            )
        self.convert = convert
        super().__init__(model_name, name, field, reader)

    def _flags(self) -> str:
        return "" if self.convert else " convert=False"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        name, args, kwargs = super().deconstruct()
        if not self.convert:
            kwargs["convert"] = False
        return name, args, kwargs

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if self.convert:
            _model, encrypted = self._fields(app_label, to_state)
            where = f"{type(self).__name__} of {encrypted.model._meta.label}.{self.name}"
            require_index_columns(schema_editor.connection, encrypted, where)
        self._encrypt(app_label, schema_editor, from_state, to_state, self.convert)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        self._decrypt(app_label, schema_editor, from_state, to_state)

    def describe(self) -> str:
        if not self.convert:
            return (
                f"Encrypt field {self.name} on {self.model_name}: the column's type only; list "
                "it in DATA_ENCRYPTION_LEGACY_COLUMNS and convert its rows with encrypt_existing"
            )
        return (
            f"Encrypt field {self.name} on {self.model_name}, converting every row "
            f"(read by the {self._reader_name()} reader)"
        )

    @property
    def migration_name_fragment(self) -> str:
        return f"encrypt_{self.model_name_lower}_{self.name_lower}"


class DecryptField(_ColumnConversion):
    """Give an encrypted field's column back as a plain field (leaving the library): use it
    instead of the ``AlterField`` that ``makemigrations`` writes when
    ``fields.EncryptedCharField(...)`` becomes ``models.CharField(...)``.

    Forwards, every value is decrypted (one still from before the column was encrypted is read
    by ``reader``), written as the plain field stores it, and the column takes the plain type,
    with the plain field's ``unique``/index restored; a value that does not decrypt stops the
    migration with its pk, and every row stays as it was. Backwards is ``EncryptField``'s
    forwards. The migration must depend on ``data_encryption``'s latest migration.
    """

    def __init__(
        self, model_name: str, name: str, field: models.Field, reader: ReaderSpec = PLAINTEXT
    ) -> None:
        if isinstance(field, EncryptedFieldMixin):
            raise TypeError(
                f"DecryptField({model_name!r}, {name!r}) needs the plain field the column "
                f"becomes, not a {type(field).__name__}. EncryptField goes the other way."
            )
        super().__init__(model_name, name, field, reader)

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        self._decrypt(app_label, schema_editor, from_state, to_state)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        self._encrypt(app_label, schema_editor, from_state, to_state, True)

    def describe(self) -> str:
        return f"Decrypt field {self.name} on {self.model_name}, every row back to plain values"

    @property
    def migration_name_fragment(self) -> str:
        return f"decrypt_{self.model_name_lower}_{self.name_lower}"
