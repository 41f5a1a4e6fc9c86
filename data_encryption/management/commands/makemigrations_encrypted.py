"""``manage.py makemigrations_encrypted``: ``makemigrations``, with ``EncryptField`` written in
place of each ``AlterField`` that turns a plain field into an encrypted one (``DecryptField`` for
the way back), and the dependency on ``data_encryption``'s key table added. Everything else is
written as ``makemigrations`` writes it; it takes the same arguments. A change it cannot write
as a conversion stops it with a ``CommandError`` saying what to write by hand: a plain
``AlterField`` would change the column's type without converting a row."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.core.management.commands import makemigrations
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.operations import AlterField

from data_encryption.fields import EncryptedFieldMixin
from data_encryption.legacy import PLAINTEXT
from data_encryption.operations import DecryptField, EncryptField

CONVERSIONS = (EncryptField, DecryptField)

#: The field libraries whose values a reader of ours reads, by top-level module.
PEER_READERS = {
    "encrypted_fields": "django-fernet-encrypted-fields",
    "django_cryptography": "django-cryptography",
    "encrypted_model_fields": "django-encrypted-model-fields",
}
#: Other field libraries (django-fernet-fields, django-pgcrypto(-fields), django-crypto-fields,
#: django-mirage-field) whose columns hold ciphertext that no reader of ours reads.
UNREAD_PEERS = frozenset({"fernet_fields", "pgcrypto", "django_crypto_fields", "mirage"})


class EncryptingAutodetector(MigrationAutodetector):
    """The autodetector, with the plain-to-encrypted ``AlterField`` (and back) swapped for the
    operation that converts the rows."""

    def add_operation(
        self, app_label: str, operation: Any, dependencies: Any = None, beginning: bool = False
    ) -> None:
        if isinstance(operation, AlterField):
            operation = self._conversion(app_label, operation) or operation
        super().add_operation(app_label, operation, dependencies or [], beginning)

    def _conversion(self, app_label: str, operation: AlterField) -> Any:
        model_name = operation.model_name_lower
        old_model = self.renamed_models.get((app_label, model_name), model_name)
        old_name = self.renamed_fields.get((app_label, model_name, operation.name), operation.name)
        old_field = self.from_state.models[app_label, old_model].get_field(old_name)
        was, becomes = (isinstance(f, EncryptedFieldMixin) for f in (old_field, operation.field))
        if was == becomes:
            return None  # not a conversion: AlterField, as makemigrations writes it
        where = f"{app_label}.{operation.model_name}.{operation.name}"
        if not operation.preserve_default:
            raise CommandError(
                f"{where} becomes {'plain' if was else 'encrypted'} and NOT NULL with a one-off "
                "default for its NULL rows, which a conversion cannot fill. Fill the NULLs "
                "first (a data migration, or an UPDATE) and make the field NOT NULL in a later "
                "migration, or keep null=True; then run makemigrations_encrypted again."
            )
        plain = operation.field if was else old_field
        if plain.is_relation or plain.primary_key:
            raise CommandError(
                f"{where}: a relation or a primary key cannot be encrypted; keep it a plain "
                "field (or write the migration by hand)."
            )
        if was:
            return DecryptField(operation.model_name, operation.name, operation.field)
        reader = _reader_of(old_field, where)
        return EncryptField(operation.model_name, operation.name, operation.field, reader=reader)

    def changes(self, graph: Any, *args: Any, **kwargs: Any) -> dict[str, list[Any]]:
        changes = super().changes(graph, *args, **kwargs)
        keys = graph.leaf_nodes("data_encryption")
        for migrations in changes.values():
            for migration in migrations:
                converts = any(isinstance(op, CONVERSIONS) for op in migration.operations)
                if converts and keys and keys[-1] not in migration.dependencies:
                    migration.dependencies = [*migration.dependencies, keys[-1]]  # type: ignore[misc]
        return changes


def _reader_of(old_field: Any, where: str) -> str:
    """The reader of the values of ``old_field``'s column: a peer library's (its field, or a
    subclass of it), else ``plaintext`` (a Django field, or any subclass of one)."""
    for klass in type(old_field).__mro__:
        module = klass.__module__
        library = module.partition(".")[0]
        if library in PEER_READERS:
            return PEER_READERS[library]
        if library in UNREAD_PEERS:
            raise CommandError(
                f"{where} was a {klass.__name__} of {module}, whose values are that library's "
                "ciphertext, which no reader of data_encryption reads. Write the migration by "
                "hand: EncryptField(..., reader='<dotted path to your LegacyReader subclass>') "
                "(docs/adoption.md, From another library)."
            )
    return PLAINTEXT


class Command(makemigrations.Command):
    help = (
        "makemigrations, writing EncryptField (DecryptField) in place of each AlterField that "
        "turns a plain field into an encrypted one (or back), with the dependency on "
        "data_encryption's key table. The rows are converted when the migration runs."
    )
    autodetector = EncryptingAutodetector
