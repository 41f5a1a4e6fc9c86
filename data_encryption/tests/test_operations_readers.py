"""The reader of an operation: named in the migration, never with options (keys never go in a
migration file, nor in the operation's ``repr``); its options come from the column's entry in
``DATA_ENCRYPTION_LEGACY_COLUMNS`` when that names the same reader."""

from cryptography.fernet import Fernet
from django.db import migrations, models
from django.db.migrations.writer import MigrationWriter
from django.test import SimpleTestCase, override_settings

from data_encryption import fields
from data_encryption.operations import ConversionError, DecryptField, EncryptField
from data_encryption.tests.operations_support import OperationTestCase

READER = "django-encrypted-model-fields"
KEY = Fernet.generate_key().decode()  # not in settings.FIELD_ENCRYPTION_KEY
NOTES = ["ünïcødé ✓ 𝄞", "back\\slash", ""]


class ReaderSpecTests(SimpleTestCase):
    def test_options_are_refused_and_never_quoted(self):
        for operation in (EncryptField, DecryptField):
            field = fields.EncryptedTextField() if operation is EncryptField else models.TextField()
            with self.subTest(operation=operation.__name__):
                spec = {"READER": READER, "OPTIONS": {"FIELD_ENCRYPTION_KEY": KEY}}
                with self.assertRaises(TypeError) as caught:
                    operation("customer", "notes", field, reader=spec)
                message = str(caught.exception)
                self.assertIn("keys never go in a migration file", message)
                self.assertIn("DATA_ENCRYPTION_LEGACY_COLUMNS entry", message)
                self.assertIn("old library's settings", message)
                self.assertNotIn(KEY, message)

    @override_settings(
        DATA_ENCRYPTION_LEGACY_COLUMNS={
            "shop.Customer.notes": {"READER": READER, "OPTIONS": {"FIELD_ENCRYPTION_KEY": KEY}}
        }
    )
    def test_a_written_migration_names_the_reader_alone(self):
        spec = {"READER": READER, "OPTIONS": {"FIELD_ENCRYPTION_KEY": KEY}}
        with self.assertRaises(TypeError):  # so it never reaches the writer (squashmigrations)
            EncryptField("customer", "notes", fields.EncryptedTextField(), reader=spec)
        operation = EncryptField("customer", "notes", fields.EncryptedTextField(), reader=READER)
        migration = type("Migration", (migrations.Migration,), {"operations": [operation]})
        text = MigrationWriter(migration("0002_x", "shop")).as_string()
        self.assertIn(f"reader='{READER}'", text)
        self.assertNotIn(KEY, text)
        self.assertNotIn("OPTIONS", text)

    def test_repr_shows_the_reader_by_name(self):
        operation = EncryptField(
            "customer", "notes", fields.EncryptedTextField(), reader=READER, convert=False
        )
        self.assertEqual(
            repr(operation),
            f"<EncryptField customer.notes EncryptedTextField reader='{READER}' convert=False>",
        )
        back = DecryptField("customer", "notes", models.TextField())
        self.assertEqual(repr(back), "<DecryptField customer.notes TextField reader='plaintext'>")


class SettingEntryTests(OperationTestCase):
    """Tokens of django-encrypted-model-fields (a Fernet token of the value's text) under a key
    that only the column's setting entry holds."""

    def setUp(self):
        super().setUp()
        self.state = self.make_table([("notes", models.TextField(null=True))])
        model = self.model(self.state)
        tokens = [Fernet(KEY).encrypt(note.encode()).decode() for note in NOTES]
        model.objects.bulk_create([model(notes=token) for token in [*tokens, None]])
        self.operation = EncryptField(
            "everything", "notes", fields.EncryptedTextField(null=True), reader=READER
        )

    def entry(self, reader=READER):
        spec = {"READER": reader, "OPTIONS": {"FIELD_ENCRYPTION_KEY": KEY}}
        return override_settings(
            DATA_ENCRYPTION_LEGACY_COLUMNS={"ops_tests.everything.notes": spec}
        )

    def test_the_key_comes_from_the_columns_entry_when_it_names_the_same_reader(self):
        other = "data_encryption.legacy.fernet_fields.FernetFieldsReader"
        with self.entry(reader=other), self.assertRaises(ConversionError):
            self.apply(self.operation, self.state)  # another reader's entry lends no options
        with self.entry():
            after = self.apply(self.operation, self.state)
        model = self.model(after)
        self.assert_all_envelopes(model, "notes")
        self.assertEqual(list(model.objects.order_by("id").values_list("notes", flat=True)),
                         [*NOTES, None])  # fmt: skip
