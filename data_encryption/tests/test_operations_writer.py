"""The operations in migration files: Django's writer serialises them and loads them back, and
``makemigrations_encrypted`` writes them (with the key table's dependency) for a throwaway app in
a temporary directory, whose migrations then run forwards and backwards with ``migrate``."""

import importlib
import sys
import tempfile
import uuid
from io import StringIO
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import connection, migrations, models
from django.db.migrations.writer import MigrationWriter
from django.test import SimpleTestCase, override_settings

from data_encryption import fields
from data_encryption.operations import DecryptField, EncryptField, latest_key_migration
from data_encryption.tests.operations_support import OperationTestCase

PLAIN = "models.CharField(max_length=11, unique=True, null=True)"
ENCRYPTED = "data_encryption.fields.EncryptedCharField(max_length=11, null=True)"
SSNS = ["078-05-1120", "ünïcode ✓", "", None]

INITIAL = """
from django.db import migrations, models
import data_encryption.fields


class Migration(migrations.Migration):
    initial = True
    dependencies = [("data_encryption", "0005_datakey_metadata_mac")]
    operations = [
        migrations.CreateModel(
            name="Customer",
            fields=[
                ("id", models.BigAutoField(
                    auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                )),
                ("name", models.CharField(max_length=20)),
                ("ssn", {field}),
            ],
        ),
    ]
"""
MODELS = """
from django.db import models
import data_encryption.fields


class Customer(models.Model):
    name = models.CharField(max_length=20)
    ssn = {field}
"""


class WriterTests(SimpleTestCase):
    def test_a_written_migration_loads_back_the_same_operations(self):
        reader = {"READER": "django-encrypted-model-fields", "OPTIONS": {"KEY_SETTING": "X"}}
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


class MakeMigrationsTests(OperationTestCase):
    def make_app(self, initial_field, model_field):
        """A throwaway app in a temporary directory: its first migration with ``initial_field``,
        its models with ``model_field``."""
        root = Path(tempfile.mkdtemp(prefix="data-encryption-app-"))
        label = f"throwaway_{uuid.uuid4().hex[:8]}"
        (root / label / "migrations").mkdir(parents=True)
        (root / label / "__init__.py").write_text("")
        (root / label / "migrations" / "__init__.py").write_text("")
        (root / label / "migrations" / "0001_initial.py").write_text(
            INITIAL.format(field=initial_field)
        )
        (root / label / "models.py").write_text(MODELS.format(field=model_field))
        sys.path.insert(0, str(root))
        self.addCleanup(sys.path.remove, str(root))
        installed = override_settings(INSTALLED_APPS=[*settings.INSTALLED_APPS, label])
        installed.enable()
        self.addCleanup(installed.disable)
        self.addCleanup(call_command, "migrate", label, "zero", verbosity=0)
        return label, root / label / "migrations"

    def makemigrations(self, label):
        out = StringIO()
        call_command("makemigrations_encrypted", label, stdout=out)
        importlib.invalidate_caches()
        return out.getvalue()

    def rows(self, label):
        table = connection.ops.quote_name(f"{label}_customer")
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT name, ssn FROM {table} ORDER BY id")
            return [(name, bytes(v) if isinstance(v, memoryview) else v) for name, v in cursor]

    def test_encrypt_field_is_written_and_migrates_both_ways(self):
        label, folder = self.make_app(PLAIN, ENCRYPTED)
        output = self.makemigrations(label)
        self.assertIn("0002_encrypt_customer_ssn.py", output)
        self.assertIn("Encrypt field ssn on customer, converting every row", output)
        text = (folder / "0002_encrypt_customer_ssn.py").read_text()
        self.assertIn("data_encryption.operations.EncryptField(", text)
        self.assertNotIn("AlterField", text)
        self.assertIn(str(latest_key_migration()), text)
        call_command("migrate", label, "0001", verbosity=0)
        table = connection.ops.quote_name(f"{label}_customer")
        with connection.cursor() as cursor:
            for index, ssn in enumerate(SSNS):
                cursor.execute(
                    f"INSERT INTO {table} (name, ssn) VALUES (%s, %s)",
                    [f"c{index}", ssn],
                )
        plain = self.rows(label)
        call_command("migrate", label, verbosity=0)
        customer = importlib.import_module(f"{label}.models").Customer
        self.assertEqual(list(customer.objects.order_by("id").values_list("ssn", flat=True)), SSNS)
        for _name, stored in self.rows(label):
            self.assertTrue(stored is None or stored.startswith(b"\xffDE"), stored)
        call_command("migrate", label, "0001", verbosity=0)
        self.assertEqual(self.rows(label), plain)

    def test_decrypt_field_is_written_for_the_way_back(self):
        label, folder = self.make_app(ENCRYPTED, PLAIN)
        self.makemigrations(label)
        [written] = [path for path in folder.glob("0002_*.py")]
        self.assertEqual(written.name, "0002_decrypt_customer_ssn.py")
        text = written.read_text()
        self.assertIn("data_encryption.operations.DecryptField(", text)
        self.assertIn("field=models.CharField(max_length=11, null=True, unique=True)", text)

    def test_other_changes_are_written_as_makemigrations_writes_them(self):
        label, folder = self.make_app(PLAIN, PLAIN.replace("11", "12"))
        self.makemigrations(label)
        [written] = [path for path in folder.glob("0002_*.py")]
        self.assertEqual(written.name, "0002_alter_customer_ssn.py")
        text = written.read_text()
        self.assertIn("migrations.AlterField(", text)
        self.assertNotIn("data_encryption", text)
