"""EncryptField and DecryptField when something is wrong: a row that cannot be converted stops the
migration by pk (never by value) and every row stays as it was; what the operations refuse, and
what they say."""

from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models
from django.db.migrations.operations import AlterField
from django.db.models import JSONField, Value
from django.test import override_settings

from data_encryption import fields
from data_encryption.exceptions import KeyConfigurationError
from data_encryption.models import DataKey
from data_encryption.operations import (
    ConversionError,
    DecryptField,
    EncryptField,
    latest_key_migration,
)
from data_encryption.tests.operations_support import OperationTestCase

SECRET = "Jane Q. Public 078-05-1120"
JSON_NULL = Value(None, JSONField())


class BadRowTests(OperationTestCase):
    def setUp(self):
        super().setUp()
        self.state = self.make_table([("ssn", models.CharField(max_length=40, null=True))])
        model = self.model(self.state)
        model.objects.bulk_create(
            [model(ssn=value) for value in ["078-05-1120", SECRET, None, "1", SECRET]]
        )
        self.long_pks = sorted(model.objects.filter(ssn=SECRET).values_list("pk", flat=True))
        self.stored = self.raw_rows(model, "ssn")
        self.described = self.columns(model)

    def encrypt(self, max_length=11, **options):
        return EncryptField(
            "everything", "ssn", fields.EncryptedCharField(max_length=max_length, null=True),
            **options,
        )  # fmt: skip

    def test_a_value_too_long_stops_the_migration_and_changes_nothing(self):
        with self.assertRaises(ConversionError) as caught:
            self.apply(self.encrypt(), self.state)
        message = str(caught.exception)
        self.assertIn(f"2 row(s) of ops_tests.Everything.ssn (pk {self.long_pks[0]}, ", message)
        self.assertIn("max_length 11", message)
        self.assertIn("convert=False", message)
        self.assertNotIn("Jane", message)
        self.assertNotIn("078-05", message)
        model = self.model(self.state)
        self.assertEqual(self.columns(model), self.described)
        self.assertEqual(self.raw_rows(model, "ssn"), self.stored)

    @override_settings(DATA_ENCRYPTION_LEGACY_COLUMNS={"ops_tests.Everything.ssn": "plaintext"})
    def test_convert_false_changes_the_type_only_and_backwards_reads_what_was_left(self):
        operation = self.encrypt(max_length=40, convert=False)
        self.assertIn("DATA_ENCRYPTION_LEGACY_COLUMNS", operation.describe())
        self.assertIn("encrypt_existing", operation.describe())
        after = self.apply(operation, self.state)
        model = self.model(after)
        self.assertEqual(self.columns(model)["ssn"][0], "BinaryField")
        stored = self.raw_rows(model, "ssn")
        expected = self.stored
        if connection.vendor == "postgresql":  # the text's UTF-8 bytes, what the reader reads
            expected = {pk: v if v is None else v.encode() for pk, v in self.stored.items()}
        self.assertEqual(stored, expected)
        self.unapply(operation, self.state, after)
        self.assertEqual(self.raw_rows(self.model(self.state), "ssn"), self.stored)

    def test_convert_false_needs_the_column_in_transition_and_changes_nothing_without(self):
        operation = self.encrypt(max_length=40, convert=False)
        entries = {
            None: "Add 'ops_tests.Everything.ssn': 'plaintext' to DATA_ENCRYPTION_LEGACY_COLUMNS",
            "django-cryptography": "names the django-cryptography reader",
        }
        for reader, expected in entries.items():
            setting = {} if reader is None else {"ops_tests.Everything.ssn": reader}
            with (
                self.subTest(entry=reader),
                override_settings(DATA_ENCRYPTION_LEGACY_COLUMNS=setting),
                self.assertRaises(ImproperlyConfigured) as caught,
            ):
                self.apply(operation, self.state)
            self.assertIn(expected, str(caught.exception))
            self.assertIn("nothing was changed", str(caught.exception))
            model = self.model(self.state)
            self.assertEqual(self.columns(model), self.described)
            self.assertEqual(self.raw_rows(model, "ssn"), self.stored)

    def test_a_value_that_does_not_decrypt_stops_the_way_back_and_changes_nothing(self):
        model = self.model(self.state)
        model.objects.filter(pk__in=self.long_pks).update(ssn="short")
        operation = self.encrypt()
        after = self.apply(operation, self.state)
        encrypted = self.model(after)
        tampered = self.long_pks[1]
        value = bytearray(self.raw_rows(encrypted, "ssn")[tampered])
        value[-1] ^= 1
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {encrypted._meta.db_table} SET ssn = %s WHERE id = %s",
                [bytes(value), tampered],
            )
        stored = self.raw_rows(encrypted, "ssn")
        with self.assertRaises(ConversionError) as caught:
            self.unapply(operation, self.state, after)
        self.assertIn(f"Could not decrypt 1 row(s) of ops_tests.Everything.ssn (pk {tampered})",
                      str(caught.exception))  # fmt: skip
        self.assertIn("restore_encryption_keys", str(caught.exception))
        self.assertEqual(self.columns(encrypted)["ssn"][0], "BinaryField")
        self.assertEqual(self.raw_rows(encrypted, "ssn"), stored)

    def test_a_missing_key_table_names_the_dependency_to_add(self):
        table = DataKey._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
        try:
            with self.assertRaises(KeyConfigurationError) as caught:
                self.apply(self.encrypt(max_length=40), self.state)
        finally:
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {table}_away RENAME TO {table}")
        self.assertIn(str(latest_key_migration()), str(caught.exception))
        self.assertIn("dependencies", str(caught.exception))
        self.assertEqual(self.columns(self.model(self.state)), self.described)

    def test_a_migration_that_is_not_atomic_is_refused(self):
        after = self.state.clone()
        operation = self.encrypt(max_length=40)
        operation.state_forwards("ops_tests", after)
        with connection.schema_editor(atomic=False) as editor:
            if editor.atomic_migration:
                self.fail("this schema editor is atomic")
            with self.assertRaisesMessage(TypeError, "remove 'atomic = False'"):
                operation.database_forwards("ops_tests", editor, self.state, after)
        self.assertEqual(self.columns(self.model(self.state)), self.described)


class RefusalTests(OperationTestCase):
    def test_the_field_must_go_the_operations_way(self):
        with self.assertRaisesMessage(TypeError, "DecryptField goes the other way"):
            EncryptField("customer", "ssn", models.CharField(max_length=11))
        with self.assertRaisesMessage(TypeError, "EncryptField goes the other way"):
            DecryptField("customer", "ssn", fields.EncryptedCharField(max_length=11))

    def test_an_encrypted_field_into_another_is_left_to_alter_field(self):
        state = self.make_table([("ssn", fields.EncryptedCharField(max_length=11))])
        operation = EncryptField("everything", "ssn", fields.EncryptedTextField())
        with self.assertRaisesMessage(TypeError, "Use AlterField for any other change"):
            self.apply(operation, state)

    def test_what_the_migration_framework_reads(self):
        operation = EncryptField("Customer", "ssn", fields.EncryptedCharField(max_length=11))
        self.assertEqual(operation.migration_name_fragment, "encrypt_customer_ssn")
        self.assertEqual(
            operation.describe(),
            "Encrypt field ssn on Customer, converting every row (read by the plaintext reader)",
        )
        self.assertFalse(operation.reduces_to_sql)
        self.assertTrue(operation.reversible)
        back = DecryptField("Customer", "ssn", models.CharField(max_length=11))
        self.assertEqual(back.migration_name_fragment, "decrypt_customer_ssn")
        # The optimizer never folds a conversion into a neighbouring AlterField, which would
        # drop it: an AlterField of the same field after it stays after it.
        later = AlterField("Customer", "ssn", fields.EncryptedCharField(max_length=12))
        self.assertFalse(operation.reduce(later, "app"))
        self.assertFalse(later.reduce(operation, "app"))


class JsonNullTests(OperationTestCase):
    """A JSON null (not SQL NULL) in a plain JSONField: EncryptedJSONField stores None as SQL
    NULL, so the JSON null becomes one when the field is null=True, and fails its row if not."""

    def setUp(self):
        super().setUp()
        self.state = self.make_table([("document", models.JSONField())])  # NOT NULL
        model = self.model(self.state)
        model.objects.bulk_create(
            [model(document=value) for value in [{"a": 1}, JSON_NULL, [], JSON_NULL, "null"]]
        )
        self.nulls = sorted(model.objects.filter(document=JSON_NULL).values_list("pk", flat=True))
        self.stored = self.json_nulls(model)

    def json_nulls(self, model):
        """The rows whose value is JSON null, and those that are SQL NULL."""
        return (
            sorted(model.objects.filter(document=JSON_NULL).values_list("pk", flat=True)),
            sorted(model.objects.filter(document__isnull=True).values_list("pk", flat=True)),
        )

    def encrypt(self, null):
        field = fields.EncryptedJSONField(null=null)
        return EncryptField("everything", "document", field)

    def test_a_json_null_becomes_sql_null_in_a_nullable_field_and_comes_back(self):
        self.assertEqual(len(self.nulls), 2)
        operation = self.encrypt(null=True)
        after = self.apply(operation, self.state)
        model = self.model(after)
        self.assertEqual(self.raw_rows(model, "document")[self.nulls[0]], None)
        read = list(model.objects.order_by("id").values_list("document", flat=True))
        self.assertEqual(read, [{"a": 1}, None, [], None, "null"])
        self.unapply(operation, self.state, after)
        self.assertEqual(self.json_nulls(self.model(self.state)), (self.nulls, []))

    def test_a_json_null_fails_its_row_when_the_field_is_not_nullable(self):
        described = self.columns(self.model(self.state))
        with self.assertRaises(ConversionError) as caught:
            self.apply(self.encrypt(null=False), self.state)
        message = str(caught.exception)
        self.assertIn(f"2 row(s) of ops_tests.Everything.document (pk {self.nulls[0]}, ", message)
        self.assertIn("is a JSON null, which EncryptedJSONField stores as SQL NULL", message)
        self.assertIn("EncryptedJSONField(null=True)", message)
        model = self.model(self.state)
        self.assertEqual(self.columns(model), described)
        self.assertEqual(self.json_nulls(model), (self.nulls, []))
