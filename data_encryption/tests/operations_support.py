"""What the migration-operation tests share: a table made from a migration state in an app that
is not installed (as Django's own operation tests do), applying an operation forwards and
backwards with a real schema editor, and reading the table raw."""

from django.db import connection, migrations, models
from django.db.migrations.state import ProjectState
from django.test import TransactionTestCase

from data_encryption.envelope import ValueKind, classify
from data_encryption.tests.utils import FreshKeyRingMixin

APP = "ops_tests"


class OperationTestCase(FreshKeyRingMixin, TransactionTestCase):
    """A ``TransactionTestCase``: SQLite's schema editor cannot run inside a test's atomic
    block, and the operations must be seen committing or rolling back as a migration does."""

    model_name = "Everything"

    def make_table(self, fields, model_name=None):
        """The table of a model with ``fields`` (``[(name, field), ...]``) and its state."""
        name = model_name or self.model_name
        create = migrations.CreateModel(
            name, [("id", models.BigAutoField(primary_key=True)), *fields]
        )
        state = self.apply(create, ProjectState())
        self.addCleanup(self._drop, state.apps.get_model(APP, name))
        return state

    def _drop(self, model):
        with connection.schema_editor() as editor:
            editor.delete_model(model)

    def apply(self, operation, state):
        """Run ``operation`` forwards from ``state``; the state after it."""
        new_state = state.clone()
        operation.state_forwards(APP, new_state)
        with connection.schema_editor() as editor:
            operation.database_forwards(APP, editor, state, new_state)
        return new_state

    def unapply(self, operation, before, after):
        """Run ``operation`` backwards, from ``after`` (its state) to ``before``."""
        with connection.schema_editor() as editor:
            operation.database_backwards(APP, editor, after, before)

    def model(self, state, name=None):
        return state.apps.get_model(APP, name or self.model_name)

    def raw_rows(self, model, column):
        """``{pk: stored value}`` of one column, as the driver returns it (bytes for binary)."""
        table = connection.ops.quote_name(model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id, {connection.ops.quote_name(column)} FROM {table}")
            rows = cursor.fetchall()
        return {pk: bytes(v) if isinstance(v, memoryview) else v for pk, v in rows}

    def columns(self, model):
        """The table's columns as introspection describes them, by name."""
        with connection.cursor() as cursor:
            description = connection.introspection.get_table_description(
                cursor, model._meta.db_table
            )
        return {
            column.name: (
                connection.introspection.get_field_type(column.type_code, column),
                column.internal_size,
                column.precision,
                column.scale,
                column.null_ok,
            )
            for column in description
        }

    def constraints(self, model):
        """What the table's constraints and indexes do, by column (their names aside)."""
        with connection.cursor() as cursor:
            found = connection.introspection.get_constraints(cursor, model._meta.db_table)
        return sorted(
            (tuple(c["columns"] or ()), bool(c["unique"]), bool(c["index"]), bool(c["check"]))
            for c in found.values()
            if not c["primary_key"] and c["columns"] != ["id"]
        )

    def assert_all_envelopes(self, model, column):
        for pk, value in self.raw_rows(model, column).items():
            if value is not None:
                self.assertIsInstance(value, bytes, f"pk {pk}")
                self.assertIs(classify(value), ValueKind.ENVELOPE_BINARY, f"pk {pk}")
