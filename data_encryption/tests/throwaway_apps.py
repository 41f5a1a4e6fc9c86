"""Tests that need a real installed app whose migrations they run (``encrypt_existing`` and
``decrypt_column`` look models up in the app registry): the app is installed for one test with
``override_settings(INSTALLED_APPS=...)``, migrated with Django's own executor (no post_migrate
signals), and migrated to zero afterwards, so no other test sees its models or tables."""

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import TransactionTestCase, override_settings

from data_encryption.tests.utils import FreshKeyRingMixin


class ThrowawayAppTestCase(FreshKeyRingMixin, TransactionTestCase):
    """Installs ``app_module`` (label ``app_label``) for each test, with ``extra_settings``."""

    app_label = ""
    app_module = ""

    def extra_settings(self):
        return {}

    def setUp(self):
        super().setUp()
        installed = override_settings(
            INSTALLED_APPS=[*settings.INSTALLED_APPS, self.app_module], **self.extra_settings()
        )
        installed.enable()
        self.addCleanup(installed.disable)
        self.addCleanup(self.migrate, None)  # runs before the app is uninstalled

    def migrate(self, name):
        """Migrate the app to migration ``name`` (``None``: zero)."""
        executor = MigrationExecutor(connection)
        executor.migrate([(self.app_label, name)])

    def state_model(self, migration, model_name):
        """``model_name`` as it was right after ``migration`` (a historical model)."""
        executor = MigrationExecutor(connection)
        state = executor.loader.project_state((self.app_label, migration))
        return state.apps.get_model(self.app_label, model_name)

    def raw_column(self, model, column):
        """``{pk: stored value}`` of one column as the driver returns it (bytes for binary)."""
        quote = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id, {quote(column)} FROM {quote(model._meta.db_table)}")
            rows = cursor.fetchall()
        return {pk: bytes(v) if isinstance(v, memoryview) else v for pk, v in rows}

    def column_type(self, model, column):
        with connection.cursor() as cursor:
            description = connection.introspection.get_table_description(
                cursor, model._meta.db_table
            )
        (found,) = [c for c in description if c.name == column]
        return connection.introspection.get_field_type(found.type_code, found)
