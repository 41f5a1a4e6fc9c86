"""``manage.py makemigrations_encrypted``: ``makemigrations``, with ``EncryptField`` written in
place of each ``AlterField`` that turns a plain field into an encrypted one (``DecryptField`` for
the way back), and the dependency on ``data_encryption``'s key table added. Everything else is
written as ``makemigrations`` writes it; it takes the same arguments."""

from __future__ import annotations

from typing import Any

from django.core.management.commands import makemigrations
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.operations import AlterField

from data_encryption.fields import EncryptedFieldMixin
from data_encryption.operations import DecryptField, EncryptField

CONVERSIONS = (EncryptField, DecryptField)


class EncryptingAutodetector(MigrationAutodetector):
    """The autodetector, with the plain-to-encrypted ``AlterField`` (and back) swapped for the
    operation that converts the rows."""

    def add_operation(
        self, app_label: str, operation: Any, dependencies: Any = None, beginning: bool = False
    ) -> None:
        if isinstance(operation, AlterField) and operation.preserve_default:
            operation = self._conversion(app_label, operation) or operation
        super().add_operation(app_label, operation, dependencies or [], beginning)

    def _conversion(self, app_label: str, operation: AlterField) -> Any:
        model_name = operation.model_name_lower
        old_model = self.renamed_models.get((app_label, model_name), model_name)
        old_name = self.renamed_fields.get((app_label, model_name, operation.name), operation.name)
        old_field = self.from_state.models[app_label, old_model].get_field(old_name)
        was, becomes = (isinstance(f, EncryptedFieldMixin) for f in (old_field, operation.field))
        if becomes and not was and _is_djangos(old_field):
            return EncryptField(operation.model_name, operation.name, operation.field)
        if was and not becomes:
            return DecryptField(operation.model_name, operation.name, operation.field)
        # Another library's field becoming ours needs its reader (and its keys): the user writes
        # EncryptField(..., reader=...) by hand (docs/adoption.md).
        return None

    def changes(self, graph: Any, *args: Any, **kwargs: Any) -> dict[str, list[Any]]:
        changes = super().changes(graph, *args, **kwargs)
        keys = graph.leaf_nodes("data_encryption")
        for migrations in changes.values():
            for migration in migrations:
                converts = any(isinstance(op, CONVERSIONS) for op in migration.operations)
                if converts and keys and keys[-1] not in migration.dependencies:
                    migration.dependencies = [*migration.dependencies, keys[-1]]  # type: ignore[misc]
        return changes


def _is_djangos(field: Any) -> bool:
    return type(field).__module__.startswith("django.")


class Command(makemigrations.Command):
    help = (
        "makemigrations, writing EncryptField (DecryptField) in place of each AlterField that "
        "turns a plain field into an encrypted one (or back), with the dependency on "
        "data_encryption's key table. The rows are converted when the migration runs."
    )
    autodetector = EncryptingAutodetector
