"""``makemigrations_encrypted`` for a throwaway app in a temporary directory: it writes
``EncryptField``/``DecryptField`` (with the key table's dependency) in place of each conversion's
``AlterField``, whose migrations then run forwards and backwards with ``migrate``; and a change it
cannot write as a conversion stops it with what to write by hand, never a plain ``AlterField``."""

import importlib
import sys
import tempfile
import uuid
from io import StringIO
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.questioner import MigrationQuestioner
from django.db.migrations.state import ProjectState
from django.test import override_settings

from data_encryption.management.commands.makemigrations_encrypted import EncryptingAutodetector
from data_encryption.operations import latest_key_migration
from data_encryption.tests.operations_support import OperationTestCase

PLAIN = "models.CharField(max_length=11, unique=True, null=True)"
ENCRYPTED = "data_encryption.fields.EncryptedCharField(max_length=11, null=True)"
SSNS = ["078-05-1120", "ünïcode ✓", "", None]

INITIAL = """
from django.db import migrations, models
import data_encryption.fields
{imports}

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
{imports}

class Customer(models.Model):
    name = models.CharField(max_length=20)
    ssn = {field}
"""
# A user's own field: a subclass of a Django field, in the app's own module.
PHONE_FIELD = """
from django.db import models


class PhoneField(models.CharField):
    pass
"""


class MakeMigrationsTestCase(OperationTestCase):
    def make_app(self, initial_field, model_field, imports="", modules=None):
        """A throwaway app in a temporary directory: its first migration with ``initial_field``,
        its models with ``model_field`` (``{label}`` stands for the app's label), and beside it
        ``modules`` (``{name: source}``)."""
        root = Path(tempfile.mkdtemp(prefix="data-encryption-app-"))
        for module, source in (modules or {}).items():
            (root / f"{module}.py").write_text(source)
            self.addCleanup(sys.modules.pop, module, None)
        label = f"throwaway_{uuid.uuid4().hex[:8]}"
        (root / label / "migrations").mkdir(parents=True)
        (root / label / "__init__.py").write_text("")
        (root / label / "phone.py").write_text(PHONE_FIELD)
        (root / label / "migrations" / "__init__.py").write_text("")
        imports = f"{imports}\nimport {label}.phone\n"
        (root / label / "migrations" / "0001_initial.py").write_text(
            INITIAL.format(field=initial_field.format(label=label), imports=imports)
        )
        (root / label / "models.py").write_text(
            MODELS.format(field=model_field.format(label=label), imports=imports)
        )
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

    def written(self, folder):
        [written] = [path for path in folder.glob("0002_*.py")]
        return written.name, written.read_text()

    def insert(self, label, values):
        table = connection.ops.quote_name(f"{label}_customer")
        with connection.cursor() as cursor:
            for index, ssn in enumerate(values):
                cursor.execute(
                    f"INSERT INTO {table} (name, ssn) VALUES (%s, %s)", [f"c{index}", ssn]
                )

    def rows(self, label):
        table = connection.ops.quote_name(f"{label}_customer")
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT name, ssn FROM {table} ORDER BY id")
            return [(name, bytes(v) if isinstance(v, memoryview) else v) for name, v in cursor]

    def read(self, label):
        customer = importlib.import_module(f"{label}.models").Customer
        return list(customer.objects.order_by("id").values_list("ssn", flat=True))

    def assert_converts_both_ways(self, label, values):
        """Rows inserted at 0001 read back as themselves after the conversion, every stored
        value an envelope, and migrating back gives every stored value as it was."""
        call_command("migrate", label, "0001", verbosity=0)
        self.insert(label, values)
        plain = self.rows(label)
        call_command("migrate", label, verbosity=0)
        self.assertEqual(self.read(label), values)
        for _name, stored in self.rows(label):
            self.assertTrue(stored is None or stored.startswith(b"\xffDE"), stored)
        call_command("migrate", label, "0001", verbosity=0)
        self.assertEqual(self.rows(label), plain)


class MakeMigrationsTests(MakeMigrationsTestCase):
    def test_encrypt_field_is_written_and_migrates_both_ways(self):
        label, folder = self.make_app(PLAIN, ENCRYPTED)
        output = self.makemigrations(label)
        self.assertIn("0002_encrypt_customer_ssn.py", output)
        self.assertIn("Encrypt field ssn on customer, converting every row", output)
        name, text = self.written(folder)
        self.assertEqual(name, "0002_encrypt_customer_ssn.py")
        self.assertIn("data_encryption.operations.EncryptField(", text)
        self.assertNotIn("AlterField", text)
        self.assertNotIn("reader=", text)
        self.assertIn(str(latest_key_migration()), text)
        self.assert_converts_both_ways(label, SSNS)

    def test_a_subclass_of_a_django_field_is_encrypted_in_place(self):
        # A plain AlterField would change the type only: on PostgreSQL through `::bytea`,
        # which reads backslashes as escapes; on SQLite no row would be encrypted.
        label, folder = self.make_app(
            "{label}.phone.PhoneField(max_length=20, null=True)",
            ENCRYPTED.replace("11", "20"),
        )
        self.makemigrations(label)
        _name, text = self.written(folder)
        self.assertIn("data_encryption.operations.EncryptField(", text)
        self.assertNotIn("AlterField", text)
        self.assert_converts_both_ways(label, ["a\\\\b", "\\x41", "+1 555 0100", None])

    def test_a_peer_librarys_field_is_encrypted_with_its_reader(self):
        label, folder = self.make_app(
            "encrypted_model_fields.fields.EncryptedCharField(null=True)",
            ENCRYPTED,
            imports="import encrypted_model_fields.fields",
        )
        self.makemigrations(label)
        _name, text = self.written(folder)
        self.assertIn("data_encryption.operations.EncryptField(", text)
        self.assertIn("reader='django-encrypted-model-fields'", text)

    def test_decrypt_field_is_written_for_the_way_back(self):
        label, folder = self.make_app(ENCRYPTED, PLAIN)
        self.makemigrations(label)
        name, text = self.written(folder)
        self.assertEqual(name, "0002_decrypt_customer_ssn.py")
        self.assertIn("data_encryption.operations.DecryptField(", text)
        self.assertIn("field=models.CharField(max_length=11, null=True, unique=True)", text)

    def test_other_changes_are_written_as_makemigrations_writes_them(self):
        label, folder = self.make_app(PLAIN, PLAIN.replace("11", "12"))
        self.makemigrations(label)
        name, text = self.written(folder)
        self.assertEqual(name, "0002_alter_customer_ssn.py")
        self.assertIn("migrations.AlterField(", text)
        self.assertNotIn("data_encryption", text)


class OneOffDefault(MigrationQuestioner):
    """What ``makemigrations`` asks when a nullable field becomes NOT NULL: the user gives a
    one-off default for the NULL rows (``preserve_default=False``)."""

    def ask_not_null_alteration(self, field_name, model_name):
        return "000-00-0000"


class RefusalTests(MakeMigrationsTestCase):
    def detect(self, label):
        """The changes the autodetector finds for ``label``, asked as a user who answers with a
        one-off default."""
        loader = MigrationLoader(None, ignore_no_migrations=True)
        autodetector = EncryptingAutodetector(
            loader.project_state(),
            ProjectState.from_apps(apps),
            OneOffDefault(specified_apps={label}),
        )
        return autodetector.changes(graph=loader.graph, trim_to_apps={label})

    # One app per test: an app left with changes (the refusal writes no migration) would be
    # detected again by the next detection, whichever app it was asked about.
    def assertOneOffDefaultRefused(self, initial, model):
        label, folder = self.make_app(initial, model.replace("null=True", "null=False"))
        with self.assertRaises(CommandError) as caught:
            self.detect(label)
        message = str(caught.exception)
        self.assertIn(f"{label}.customer.ssn", message)
        self.assertIn("one-off default", message)
        self.assertIn("Fill the NULLs first", message)
        self.assertIn("keep null=True", message)
        self.assertEqual(list(folder.glob("0002_*.py")), [])

    def test_a_one_off_default_stops_encrypting_with_what_to_do(self):
        self.assertOneOffDefaultRefused(PLAIN, ENCRYPTED)

    def test_a_one_off_default_stops_decrypting_with_what_to_do(self):
        self.assertOneOffDefaultRefused(ENCRYPTED, PLAIN)

    def test_a_library_without_a_reader_stops_it_with_what_to_write(self):
        # django-fernet-fields' module, which only its name matters to: its values are that
        # library's ciphertext, which no reader here reads.
        label, folder = self.make_app(
            "fernet_fields.EncryptedTextField(null=True)",
            ENCRYPTED,
            imports="import fernet_fields",
            modules={"fernet_fields": PHONE_FIELD.replace("PhoneField", "EncryptedTextField")},
        )
        with self.assertRaises(CommandError) as caught:
            self.makemigrations(label)
        self.assertIn("EncryptedTextField of fernet_fields", str(caught.exception))
        self.assertIn("no reader of data_encryption reads", str(caught.exception))
        self.assertIn("reader='<dotted path", str(caught.exception))
        self.assertEqual(list(folder.glob("0002_*.py")), [])
