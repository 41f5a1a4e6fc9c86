"""The hand-written property pattern in transition: a plain ``ssn`` column becomes the raw
``_ssn`` that ``EncryptionService.encrypt`` fills, in place (``RenameField`` + ``EncryptField``
with a raw ``BinaryField``), converted in the migration or online by ``encrypt_existing``, read
throughout by a property calling ``EncryptionService.decrypt_column``; and back."""

from io import StringIO

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import migrations, models
from django.test import TestCase, override_settings

from data_encryption.envelope import ValueKind, classify, parse
from data_encryption.exceptions import DecryptionError
from data_encryption.operations import DecryptField, EncryptField
from data_encryption.rotation import Progress
from data_encryption.services import EncryptionService, KeyRotationService
from data_encryption.tests.operations_support import APP, OperationTestCase
from data_encryption.tests.testapp.models import Customer as TestCustomer
from data_encryption.tests.throwaway_apps import ThrowawayAppTestCase
from data_encryption.tests.utils import FreshKeyRingMixin

# Edge values a plain CharField(max_length=11) holds: empty, backslashes PostgreSQL's text to
# bytea cast would read as escapes, a quote, multi-byte text, NULL.
VALUES = ["123-45-6789", "", "back\\x41\\", "it's", "ünï☃𝄞", None, "000-00-0000"]
TEST_COLUMN = "data_encryption_tests.Customer._ssn"


def rotation_with(models_entry):
    return {**settings.ENCRYPTION_KEY_ROTATION, "MODELS": models_entry}


class DecryptColumnTests(FreshKeyRingMixin, TestCase):
    """``decrypt_column`` on the test app's ``Customer._ssn`` (DESIGN §1's model)."""

    def test_it_decrypts_like_decrypt_and_none_is_none(self):
        value = EncryptionService.encrypt("123-45-6789")
        self.assertEqual(EncryptionService.decrypt_column(value, TEST_COLUMN), "123-45-6789")
        self.assertEqual(
            EncryptionService.decrypt_column(memoryview(value), TEST_COLUMN), "123-45-6789"
        )
        self.assertIsNone(EncryptionService.decrypt_column(None, TEST_COLUMN))

    def test_the_context_models_gives_the_column_opens_its_bound_values(self):
        context = "customers.ssn"
        bound = EncryptionService.encrypt("1", context=context)
        with self.assertRaises(DecryptionError):
            EncryptionService.decrypt_column(bound, TEST_COLUMN)  # MODELS gives no context
        entry = {"data_encryption_tests.customer": {"_ssn": context}}  # any case
        with override_settings(ENCRYPTION_KEY_ROTATION=rotation_with(entry)):
            self.assertEqual(EncryptionService.decrypt_column(bound, TEST_COLUMN), "1")
            other = EncryptionService.encrypt("2", context="elsewhere")
            with self.assertRaises(DecryptionError):
                EncryptionService.decrypt_column(other, TEST_COLUMN)

    def test_outside_the_transition_plaintext_is_refused_with_the_fields_advice(self):
        for plain in (b"123-45-6789", "123-45-6789"):
            with self.assertRaises(DecryptionError) as caught:
                EncryptionService.decrypt_column(plain, TEST_COLUMN)
            message = str(caught.exception)
            self.assertIn("Customer._ssn is not encrypted", message)
            self.assertIn("DATA_ENCRYPTION_LEGACY_COLUMNS", message)
            self.assertIn("encrypt_existing", message)
            self.assertNotIn("123-45", message)

    @override_settings(DATA_ENCRYPTION_LEGACY_COLUMNS={TEST_COLUMN: "plaintext"})
    def test_in_transition_plaintext_reads_and_an_altered_envelope_never_does(self):
        self.assertEqual(
            EncryptionService.decrypt_column(b"123-45-6789", TEST_COLUMN), "123-45-6789"
        )
        self.assertEqual(EncryptionService.decrypt_column("ü-text", TEST_COLUMN), "ü-text")
        altered = bytearray(EncryptionService.encrypt("123-45-6789"))
        altered[-1] ^= 1
        with self.assertRaisesMessage(DecryptionError, "failed authentication"):
            EncryptionService.decrypt_column(bytes(altered), TEST_COLUMN)
        with self.assertRaises(DecryptionError) as caught:
            EncryptionService.decrypt_column(b"\xff\xfe not utf-8", TEST_COLUMN)
        self.assertIn("is not UTF-8 text", str(caught.exception))
        self.assertNotIn("utf-8'", str(caught.exception))

    def test_a_column_that_is_not_a_field_is_refused_by_name(self):
        for column in ("data_encryption_tests.Customer.ssn", "nope.Customer._ssn", "_ssn"):
            with (
                self.subTest(column=column),
                self.assertRaisesMessage(
                    ImproperlyConfigured, f"decrypt_column() names {column!r}"
                ),
            ):
                EncryptionService.decrypt_column(b"x", column)

    def test_the_contract_property_reads_what_decrypt_column_reads(self):
        customer = TestCustomer.objects.create(name="a")
        customer.ssn = "123-45-6789"
        customer.save()
        stored = TestCustomer.objects.get(pk=customer.pk)._ssn
        self.assertEqual(EncryptionService.decrypt_column(stored, TEST_COLUMN), customer.ssn)


class ReadsThroughout(Progress):
    """Reads every customer through the property after each batch of the conversion."""

    def __init__(self, read):
        self.read, self.seen = read, []

    def advance(self, label, rows):
        self.seen.append(self.read())


class OnlineTests(ThrowawayAppTestCase):
    """``property_app``: 0001 has a plain ``ssn``; 0002 renames it ``_ssn`` and changes its
    type (``EncryptField(..., convert=False)``); ``encrypt_existing`` converts the rows."""

    app_label = "property_app"
    app_module = "data_encryption.tests.property_app"

    def extra_settings(self):
        return {
            "ENCRYPTION_KEY_ROTATION": rotation_with(
                {
                    **settings.ENCRYPTION_KEY_ROTATION["MODELS"],
                    "property_app.Customer": ["_ssn"],
                }
            ),
            "DATA_ENCRYPTION_LEGACY_COLUMNS": {"property_app.Customer._ssn": "plaintext"},
        }

    def setUp(self):
        super().setUp()
        self.migrate("0001_initial")
        plain = self.state_model("0001_initial", "Customer")
        self.pks = [
            plain.objects.create(name=f"c{i}", ssn=value).pk for i, value in enumerate(VALUES)
        ]
        self.expected = dict(zip(self.pks, VALUES, strict=True))

    def read(self):
        from data_encryption.tests.property_app.models import Customer

        return {customer.pk: customer.ssn for customer in Customer.objects.all()}

    def test_type_change_conversion_and_the_end_of_the_transition(self):
        from data_encryption.tests.property_app.models import Customer

        self.migrate("0002_encrypt_ssn")
        self.assertEqual(self.column_type(Customer, "_ssn"), "BinaryField")
        # The type change kept every value as its UTF-8 text's bytes, on either database.
        plain_bytes = {pk: None if v is None else v.encode() for pk, v in self.expected.items()}
        self.assertEqual(self.raw_column(Customer, "_ssn"), plain_bytes)
        self.assertEqual(self.read(), self.expected)

        # The application writes ciphertext through the property meanwhile.
        changed = Customer.objects.get(pk=self.pks[0])
        changed.ssn = "555-55-5555"
        changed.save()
        added = Customer(name="new")
        added.ssn = "999-99-9999"
        added.save()
        self.expected.update({changed.pk: "555-55-5555", added.pk: "999-99-9999"})
        self.assertEqual(self.read(), self.expected)

        progress = ReadsThroughout(self.read)
        report = KeyRotationService(batch_size=2, progress=progress).encrypt_existing(
            ["property_app.Customer._ssn"]
        )
        self.assertEqual((report.records_reencrypted, report.failed_records), (5, 0))
        self.assertGreater(len(progress.seen), 2)
        for seen in progress.seen:  # both forms read, after every batch
            self.assertEqual(seen, self.expected)
        for pk, value in self.raw_column(Customer, "_ssn").items():
            if value is not None:
                self.assertIs(classify(value), ValueKind.ENVELOPE_BINARY, pk)
                self.assertFalse(parse(value).bound, pk)  # as encrypt() makes them
        census = KeyRotationService().census()["property_app.Customer"]["_ssn"]
        self.assertNotIn("plaintext", census)
        self.assertEqual(sum(census.values()), len(self.expected))
        with override_settings(DATA_ENCRYPTION_LEGACY_COLUMNS={}):  # the transition is over
            self.assertEqual(self.read(), self.expected)

    def test_the_command_takes_the_raw_column_and_backwards_gives_the_plain_column(self):

        self.migrate("0002_encrypt_ssn")
        out = StringIO()
        call_command("encrypt_existing", "property_app.Customer._ssn", stdout=out)
        self.assertIn("No legacy value is left in property_app.Customer._ssn", out.getvalue())
        self.migrate("0001_initial")
        plain = self.state_model("0001_initial", "Customer")
        self.assertEqual(self.column_type(plain, "ssn"), "CharField")
        self.assertEqual(self.raw_column(plain, "ssn"), self.expected)

    def test_backwards_mid_transition_reads_both_forms(self):
        from data_encryption.tests.property_app.models import Customer

        self.migrate("0002_encrypt_ssn")
        customer = Customer.objects.get(pk=self.pks[1])
        customer.ssn = "written-new"
        customer.save()
        self.expected[customer.pk] = "written-new"
        self.migrate("0001_initial")
        self.assertEqual(
            self.raw_column(self.state_model("0001_initial", "Customer"), "ssn"), self.expected
        )


class InMigrationTests(OperationTestCase):
    """``RenameField`` + ``EncryptField`` with the raw ``BinaryField``, converting every row in
    the migration, on a table of the operation tests' throwaway (not installed) app."""

    model_name = "Customer"

    def setUp(self):
        super().setUp()
        self.state = self.make_table(
            [
                ("ssn", models.CharField(max_length=11, null=True)),
                ("visits", models.IntegerField(null=True)),
            ]
        )
        model = self.model(self.state)
        rows = [model.objects.create(ssn=v, visits=i * 7 - 3) for i, v in enumerate(VALUES)]
        self.expected = {row.pk: row.ssn for row in rows}
        self.visits = {row.pk: row.visits for row in rows}

    def encrypt(self, name, new_name, convert=True):
        rename = migrations.RenameField("customer", name, new_name)
        encrypt = EncryptField("customer", new_name, models.BinaryField(null=True), convert=convert)
        steps, state = [], self.state
        for operation in (rename, encrypt):
            steps.append((operation, state, state := self.apply(operation, state)))
        return steps, state

    def undo(self, steps):
        for operation, before, after in reversed(steps):
            self.unapply(operation, before, after)

    def test_values_sealed_as_encrypt_makes_them_and_back(self):
        entry = {f"{APP}.Customer": ["_ssn", "_visits"]}
        with override_settings(ENCRYPTION_KEY_ROTATION=rotation_with(entry)):
            ssn_steps, state = self.encrypt("ssn", "_ssn")
            visits_steps, state = self.encrypt_from(state, "visits", "_visits")
            model = self.model(state)
            for column, expected in (("_ssn", self.expected), ("_visits", self.visits)):
                for pk, value in self.raw_rows(model, column).items():
                    if expected[pk] is None:
                        self.assertIsNone(value)
                        continue
                    self.assertFalse(parse(value).bound)
                    self.assertEqual(EncryptionService.decrypt(value), str(expected[pk]))
            self.undo(visits_steps)
            self.undo(ssn_steps)
        plain = self.model(self.state)
        self.assertEqual(self.columns(plain)["ssn"][0], "CharField")
        self.assertEqual(self.columns(plain)["visits"][0], "IntegerField")
        self.assertEqual(self.raw_rows(plain, "ssn"), self.expected)
        self.assertEqual(self.raw_rows(plain, "visits"), self.visits)

    def encrypt_from(self, state, name, new_name):
        saved, self.state = self.state, state
        try:
            return self.encrypt(name, new_name)
        finally:
            self.state = saved

    def test_a_context_in_models_binds_the_values_and_decrypt_field_leaves(self):
        entry = {f"{APP}.customer": {"_ssn": "customers.ssn"}}
        with override_settings(ENCRYPTION_KEY_ROTATION=rotation_with(entry)):
            _steps, state = self.encrypt("ssn", "_ssn")
            model = self.model(state)
            for pk, value in self.raw_rows(model, "_ssn").items():
                if value is not None:
                    self.assertTrue(parse(value).bound)
                    self.assertEqual(
                        EncryptionService.decrypt(value, context="customers.ssn"), self.expected[pk]
                    )
            leave = DecryptField("customer", "_ssn", models.CharField(max_length=11, null=True))
            state = self.apply(leave, state)
        self.assertEqual(self.raw_rows(self.model(state), "_ssn"), self.expected)

    def test_a_raw_column_rotation_does_not_cover_is_refused_before_any_change(self):
        with self.assertRaises(TypeError) as caught:
            self.encrypt("ssn", "_ssn")
        self.assertIn("ENCRYPTION_KEY_ROTATION['MODELS']", str(caught.exception))
        self.assertIn(f"{{'{APP}.Customer': ['_ssn']}}", str(caught.exception))

    def test_any_other_plain_target_is_still_refused(self):
        with self.assertRaisesMessage(TypeError, "not a CharField"):
            EncryptField("customer", "ssn", models.CharField(max_length=11))
