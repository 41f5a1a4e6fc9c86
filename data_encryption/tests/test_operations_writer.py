"""The operations in migration files: Django's writer serialises them and loads them back.
``makemigrations_encrypted``, which writes them, is tested in ``test_operations_makemigrations``."""

from django.db import migrations, models
from django.db.migrations.writer import MigrationWriter
from django.test import SimpleTestCase

from data_encryption import fields
from data_encryption.operations import DecryptField, EncryptField


class WriterTests(SimpleTestCase):
    def test_a_written_migration_loads_back_the_same_operations(self):
        reader = {"READER": "django-encrypted-model-fields"}
        operations = [
            EncryptField("customer", "ssn", fields.EncryptedCharField(max_length=11)),
            EncryptField(
                "customer", "notes", fields.EncryptedTextField(context="old.Customer.notes"),
                reader=reader, convert=False,
            ),
            DecryptField("customer", "visits", models.IntegerField(null=True)),
        ]  # fmt: skip
        migration = type("Migration", (migrations.Migration,), {"operations": operations})
        text = MigrationWriter(migration("0002_x", "shop")).as_string()
        self.assertIn("import data_encryption.operations", text)
        self.assertIn("data_encryption.operations.EncryptField(", text)
        namespace: dict = {}
        exec(compile(text, "0002_x.py", "exec"), namespace)
        loaded = namespace["Migration"].operations
        self.assertEqual(
            [self.shape(operation) for operation in loaded],
            [self.shape(operation) for operation in operations],
        )
        self.assertEqual(loaded[1].reader, reader)
        self.assertIs(loaded[1].convert, False)

    @staticmethod
    def shape(operation):
        name, args, kwargs = operation.deconstruct()
        kwargs["field"] = kwargs["field"].deconstruct()[1:]
        return name, args, kwargs
