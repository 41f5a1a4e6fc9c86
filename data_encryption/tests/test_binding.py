"""Values bound to where they live (format version 2; fields/binding.py, the encryptor's
``context=``): a value moved to another column, model or row no longer decrypts; version 1
values stay readable, are counted unbound and are rewritten bound by the next rotation; legacy
Fernet tokens are read only while ``ACCEPT_LEGACY_TOKENS`` is on."""

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import Warning as CheckWarning
from django.db import connection, transaction
from django.test import TestCase, TransactionTestCase, override_settings
from django.test.utils import isolate_apps

from data_encryption.checks import check_legacy_tokens_still_accepted, check_rotation_settings
from data_encryption.encryptor import seal
from data_encryption.envelope import HEADER_V1, HEADER_V2, key_id_of, parse
from data_encryption.exceptions import DecryptionError
from data_encryption.keys import reset_key_ring
from data_encryption.models import DataKey, KeyState
from data_encryption.rotation import census_label
from data_encryption.services import EncryptionService, KeyRotationService
from data_encryption.tests.testapp.models import Customer, Note, Patient
from data_encryption.tests.utils import FAST, FreshKeyRingMixin, primary_id, raw


def write_column(model, pk, column, value):
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {model._meta.db_table} SET {column} = %s WHERE id = %s", [value, pk]
        )


def column(model, pk, name):
    return raw(model, name)[pk]


class ContextTests(FreshKeyRingMixin, TestCase):
    """``EncryptionService``'s optional ``context=`` (the property pattern)."""

    def test_a_bound_value_opens_only_in_its_context(self):
        token = EncryptionService.encrypt("123-45-6789", context="customers.Customer.ssn")
        self.assertTrue(token.startswith(HEADER_V2))
        self.assertEqual(
            EncryptionService.decrypt(token, context="customers.Customer.ssn"), "123-45-6789"
        )
        ascii_form = EncryptionService.to_ascii(token)
        self.assertTrue(ascii_form.startswith("de2:"))
        self.assertEqual(
            EncryptionService.decrypt(ascii_form, context="customers.Customer.ssn"), "123-45-6789"
        )
        key = f"{key_id_of(token):08x}"
        for other in ("customers.Customer.notes", "customers.Customer.ssn#1"):
            with self.subTest(context=other), self.assertRaises(DecryptionError) as caught:
                EncryptionService.decrypt(token, context=other)
            self.assertIn(f"data key {key}", str(caught.exception))
            self.assertIn("copied from another column or row", str(caught.exception))
            self.assertNotIn("123-45-6789", str(caught.exception))
        with self.assertRaisesMessage(DecryptionError, f"data key {key} is bound to the column"):
            EncryptionService.decrypt(token)

    def test_the_default_stays_context_free(self):
        # DESIGN §1: encrypt(value) -> bytes that decrypt(value) reads, version 1 as before.
        token = EncryptionService.encrypt("x")
        self.assertTrue(token.startswith(HEADER_V1))
        self.assertEqual(EncryptionService.decrypt(token), "x")
        self.assertEqual(EncryptionService.decrypt(memoryview(token)), "x")
        # An unbound value is read with a context too: it was written before binding existed.
        self.assertEqual(EncryptionService.decrypt(token, context="customers.Customer.ssn"), "x")

    def test_bytes_take_a_context_too(self):
        token = EncryptionService.encrypt_bytes(b"\x00\xff", context="files.Upload.body")
        self.assertEqual(
            EncryptionService.decrypt_bytes(token, context="files.Upload.body"), b"\x00\xff"
        )
        with self.assertRaises(DecryptionError):
            EncryptionService.decrypt_bytes(token, context="files.Upload.name")

    def test_a_context_must_be_non_empty_text(self):
        with self.assertRaisesMessage(TypeError, "context must be a str"):
            EncryptionService.encrypt("x", context=b"customers.Customer.ssn")
        with self.assertRaisesMessage(ValueError, "context must not be empty"):
            EncryptionService.encrypt("x", context="")
        token = EncryptionService.encrypt("x", context="a.B.c")
        with self.assertRaisesMessage(TypeError, "context must be a str"):
            EncryptionService.decrypt(token, context=7)


class FieldBindingTests(FreshKeyRingMixin, TestCase):
    """security.md M3 (exp3_keys): ciphertext moved between columns and models through SQL."""

    def test_fields_write_values_bound_to_their_column(self):
        patient = Patient.objects.create(name="Ada", notes="n", code="c")
        for name in ("notes", "code"):
            envelope = parse(column(Patient, patient.pk, name))
            self.assertTrue(envelope.bound)
        self.assertEqual(
            Patient._meta.get_field("notes").binding.context,
            b"data_encryption_tests.Patient.notes",
        )
        # Values written before binding (version 1, either form) stay readable.
        patient = Patient.objects.create(name="Ada")
        write_column(Patient, patient.pk, "notes", EncryptionService.encrypt("from version 1"))
        ascii_v1 = EncryptionService.to_ascii(EncryptionService.encrypt("7"))
        write_column(Patient, patient.pk, "visits", ascii_v1.encode())
        patient = Patient.objects.get(pk=patient.pk)
        self.assertEqual((patient.notes, patient.visits), ("from version 1", 7))

    def test_a_value_copied_to_another_column_does_not_decrypt(self):
        victim = Patient.objects.create(name="victim", notes="diagnosis: private")
        attacker = Patient.objects.create(name="attacker", code="mine")
        write_column(Patient, attacker.pk, "code", column(Patient, victim.pk, "notes"))
        key = f"{key_id_of(column(Patient, victim.pk, 'notes')):08x}"
        with self.assertRaises(DecryptionError) as caught:
            Patient.objects.get(pk=attacker.pk)
        self.assertIn(f"data key {key}", str(caught.exception))
        self.assertNotIn("private", str(caught.exception))

    def test_a_value_copied_to_another_model_does_not_decrypt(self):
        patient = Patient.objects.create(name="Ada", notes="secret text")
        note = Note.objects.create(title="t", body="mine")
        write_column(Note, note.pk, "body", column(Patient, patient.pk, "notes"))
        with self.assertRaises(DecryptionError):
            Note.objects.get(pk=note.pk)

    def test_a_property_pattern_value_planted_in_a_field_column_does_not_decrypt(self):
        customer = Customer.objects.create(name="c")
        customer.ssn = "111-11-1111"
        customer.save()
        bound = EncryptionService.encrypt("111-11-1111", context="customers.Customer.ssn")
        patient = Patient.objects.create(name="p")
        write_column(Patient, patient.pk, "notes", bound)
        with self.assertRaises(DecryptionError):
            Patient.objects.get(pk=patient.pk)

    def test_context_pins_the_name_across_a_rename(self):
        from django.db import models

        from data_encryption import fields

        token = seal(b"kept", b"data_encryption_tests.Patient.notes")
        field = fields.EncryptedTextField(context="data_encryption_tests.Patient.notes")
        field.set_attributes_from_name("remarks")
        field.model = Patient  # as contribute_to_class would, without changing Patient
        self.assertEqual(field.from_db_value(token, None, connection), "kept")
        self.assertEqual(field.deconstruct()[3]["context"], "data_encryption_tests.Patient.notes")
        renamed = fields.EncryptedTextField()
        renamed.set_attributes_from_name("remarks")
        renamed.model = Patient
        with self.assertRaises(DecryptionError):
            renamed.from_db_value(token, None, connection)
        self.assertIsInstance(field, models.Field)


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class RotationBindsTests(FreshKeyRingMixin, TestCase):
    def test_census_counts_unbound_values_and_the_rotation_binds_them(self):
        patient = Patient.objects.create(name="Ada", notes="bound already")
        older = Patient.objects.create(name="Bob")
        write_column(Patient, older.pk, "notes", EncryptionService.encrypt("version 1"))
        old = f"{primary_id():08x}"
        census = KeyRotationService().census()["data_encryption_tests.Patient"]["notes"]
        self.assertEqual(census, {old: 1, f"unbound:{old}": 1})
        # The customers' raw column is not bound (MODELS' list form): its values are not flagged.
        customer = Customer.objects.create(name="c", _ssn=EncryptionService.encrypt("1"))
        self.assertEqual(census_label(column(Customer, customer.pk, "_ssn")), old)
        report = KeyRotationService().rotate()
        new = f"{primary_id():08x}"
        self.assertEqual(report["retired_key_ids"], [old])  # the unbound value was under it
        self.assertEqual(report["census"]["data_encryption_tests.Patient"]["notes"], {new: 2})
        for pk in (patient.pk, older.pk):
            self.assertTrue(parse(column(Patient, pk, "notes")).bound)
        self.assertFalse(parse(column(Customer, customer.pk, "_ssn")).bound)
        reset_key_ring()
        self.assertEqual(
            sorted(Patient.objects.values_list("notes", flat=True)),
            ["bound already", "version 1"],
        )

    def test_an_old_key_is_not_retired_while_unbound_values_sit_under_it(self):
        from data_encryption.rotation.census import retire_keys

        old = DataKey.objects.get(state=KeyState.PRIMARY)
        DataKey.objects.filter(pk=old.pk).update(state=KeyState.DECRYPT_ONLY)
        from django.utils import timezone

        with transaction.atomic():
            done = retire_keys(
                "default",
                {f"unbound:{old.hex_id}": 3},
                blocker="",
                now=timezone.now(),
                retention=timezone.timedelta(days=30),
            )
        self.assertEqual(done.retired, [])
        self.assertIn("3 values are still under it", done.notes[0])

    def test_raw_columns_bound_by_the_models_setting(self):
        context = "customers.Customer.ssn"
        rotation = {**FAST, "MODELS": {"data_encryption_tests.Customer": {"_ssn": context}}}
        with override_settings(ENCRYPTION_KEY_ROTATION=rotation):
            unbound = Customer.objects.create(name="a", _ssn=EncryptionService.encrypt("1"))
            bound = Customer.objects.create(
                name="b", _ssn=EncryptionService.encrypt("2", context=context)
            )
            old = f"{primary_id():08x}"
            census = KeyRotationService().census()["data_encryption_tests.Customer"]["_ssn"]
            self.assertEqual(census, {old: 1, f"unbound:{old}": 1})
            report = KeyRotationService().rotate()
        self.assertEqual(report["failed_records"], 0)
        reset_key_ring()
        for customer, plaintext in ((unbound, "1"), (bound, "2")):
            value = column(Customer, customer.pk, "_ssn")
            self.assertTrue(parse(value).bound)
            self.assertEqual(EncryptionService.decrypt(value, context=context), plaintext)

    def test_a_bound_value_in_an_unbound_raw_column_is_a_failure_left_as_it_was(self):
        stray = EncryptionService.encrypt("2", context="customers.Customer.ssn")
        customer = Customer.objects.create(name="b", _ssn=stray)
        report = KeyRotationService().rotate()
        self.assertEqual([f["pk"] for f in report["failures"]], [str(customer.pk)])
        self.assertIn("is bound to the column", report["failures"][0]["error"])
        self.assertEqual(column(Customer, customer.pk, "_ssn"), stray)


class LegacyTokenTests(FreshKeyRingMixin, TestCase):
    """security.md M3: legacy Fernet tokens from an old dump used to be read forever."""

    def legacy(self, plaintext):
        return Fernet(settings.DB_ENCRYPTION_KEY).encrypt(plaintext.encode())

    def test_read_while_the_setting_is_on_refused_when_off(self):
        token = self.legacy("old-ssn-from-2019")
        customer = Customer.objects.create(name="alice", _ssn=token)
        self.assertEqual(Customer.objects.get(pk=customer.pk).ssn, "old-ssn-from-2019")
        off = {**settings.ENCRYPTION_KEY_ROTATION, "ACCEPT_LEGACY_TOKENS": False}
        with override_settings(ENCRYPTION_KEY_ROTATION=off):
            with self.assertRaisesMessage(DecryptionError, "'ACCEPT_LEGACY_TOKENS'] is off"):
                _ = Customer.objects.get(pk=customer.pk).ssn
            patient = Patient.objects.create(name="p")
            write_column(Patient, patient.pk, "notes", token)
            with self.assertRaises(DecryptionError):
                Patient.objects.get(pk=patient.pk)

    def test_the_setting_has_its_own_check_id(self):
        bad = {**settings.ENCRYPTION_KEY_ROTATION, "ACCEPT_LEGACY_TOKENS": "no"}
        with override_settings(ENCRYPTION_KEY_ROTATION=bad):
            errors = check_rotation_settings()
        self.assertEqual([error.id for error in errors], ["data_encryption.E028"])

    @override_settings(ENCRYPTION_KEY_ROTATION=FAST)
    def test_a_warning_once_a_census_shows_none_left(self):
        from data_encryption.models import RotationRun

        databases = ["default"]
        legacy = Customer.objects.create(name="old", _ssn=self.legacy("1"))
        self.assertEqual(check_legacy_tokens_still_accepted(databases=databases), [])
        report = KeyRotationService().rotate()  # rewrites the legacy token; its census: none
        self.assertTrue(column(Customer, legacy.pk, "_ssn").startswith(HEADER_V1))
        warnings = check_legacy_tokens_still_accepted(databases=databases)
        self.assertEqual([warning.id for warning in warnings], ["data_encryption.W004"])
        self.assertIsInstance(warnings[0], CheckWarning)
        off = {**FAST, "ACCEPT_LEGACY_TOKENS": False}
        with override_settings(ENCRYPTION_KEY_ROTATION=off):
            self.assertEqual(check_legacy_tokens_still_accepted(databases=databases), [])
        self.assertEqual(check_legacy_tokens_still_accepted(databases=None), [])
        # A census that still counts legacy tokens (one the rotation could not read) is quiet.
        RotationRun.objects.filter(pk=report["run_id"]).update(
            census={"data_encryption_tests.Customer": {"_ssn": {"legacy-fernet": 1}}}
        )
        self.assertEqual(check_legacy_tokens_still_accepted(databases=databases), [])


def secret_model():
    """A model whose primary key is set before insert, with a value bound to its row; made in an
    isolated app registry, its table created by the test (no migration for a test-only model)."""
    import uuid

    from django.db import models

    from data_encryption import fields

    class Secret(models.Model):
        id = models.UUIDField(primary_key=True, default=uuid.uuid4)
        text = fields.EncryptedTextField(bind_to_pk=True, null=True)
        label = models.CharField(max_length=20, default="")

        class Meta:
            app_label = "data_encryption_tests"

    return Secret


@isolate_apps("data_encryption.tests.testapp")
@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class RowBindingTests(FreshKeyRingMixin, TransactionTestCase):
    """``bind_to_pk=True``: a value copied to another row of the same column fails too."""

    def setUp(self):
        super().setUp()
        self.Secret = secret_model()
        with connection.schema_editor() as editor:
            editor.create_model(self.Secret)
        self.addCleanup(self.drop_table)

    def drop_table(self):
        with connection.schema_editor() as editor:
            editor.delete_model(self.Secret)

    def stored(self, pk):
        quote = connection.ops.quote_name
        table = quote(self.Secret._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT text FROM {table} WHERE id = %s",
                [pk.hex if connection.vendor == "sqlite" else pk],
            )
            return bytes(cursor.fetchone()[0])

    def plant(self, pk, value):
        quote = connection.ops.quote_name
        table = quote(self.Secret._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET text = %s WHERE id = %s",
                [value, pk.hex if connection.vendor == "sqlite" else pk],
            )

    def test_values_are_bound_to_their_row(self):
        alice = self.Secret.objects.create(text="alice's secret")
        bob = self.Secret.objects.create(text="bob's")
        self.assertEqual(self.Secret.objects.get(pk=alice.pk).text, "alice's secret")
        context = f"data_encryption_tests.Secret.text#{alice.pk}".encode()
        self.assertEqual(
            EncryptionService.decrypt(self.stored(alice.pk), context.decode()), "alice's secret"
        )
        self.plant(bob.pk, self.stored(alice.pk))
        loaded = self.Secret.objects.get(pk=bob.pk)
        with self.assertRaises(DecryptionError) as caught:
            _ = loaded.text
        self.assertNotIn("alice", str(caught.exception))

    def test_bulk_create_binds_each_row_and_values_list_keeps_the_sealed_value(self):
        from data_encryption.fields.binding import SealedValue

        rows = self.Secret.objects.bulk_create([self.Secret(text=f"t{i}") for i in range(3)])
        self.assertEqual(sorted(s.text for s in self.Secret.objects.all()), ["t0", "t1", "t2"])
        sealed = self.Secret.objects.values_list("text", flat=True).get(pk=rows[0].pk)
        self.assertIsInstance(sealed, SealedValue)
        self.assertNotIn(b"t0", sealed.stored)
        self.assertEqual(repr(sealed), f"<SealedValue {len(sealed.stored)}B>")

    def test_writes_that_cannot_see_the_row_are_refused(self):
        from django.core.exceptions import FieldError

        secret = self.Secret.objects.create(text="kept")
        with self.assertRaisesMessage(FieldError, "bound to its row's primary key"):
            self.Secret.objects.update(text="x")
        secret.text = "y"
        with self.assertRaisesMessage(FieldError, "bound to its row's primary key"):
            self.Secret.objects.bulk_update([secret], ["text"])
        self.assertEqual(self.Secret.objects.get(pk=secret.pk).text, "kept")
        secret.label = "other field"
        secret.save(update_fields=["label"])
        secret.save()
        self.assertEqual(self.Secret.objects.get(pk=secret.pk).text, "y")

    def test_the_rotation_rewrites_each_row_bound_to_it(self):
        from data_encryption.rotation import Rotation, resolve_tables

        secrets = {self.Secret.objects.create(text=f"s{i}").pk: f"s{i}" for i in range(4)}
        old = primary_id()
        report = Rotation(resolve_tables([(self.Secret, ["text"])])).run()
        self.assertEqual(report["failed_records"], 0)
        new = primary_id()
        self.assertNotEqual(old, new)
        reset_key_ring()
        for pk, text in secrets.items():
            self.assertEqual(key_id_of(self.stored(pk)), new)
            self.assertEqual(self.Secret.objects.get(pk=pk).text, text)

    def test_a_primary_key_the_database_assigns_is_refused_by_a_check(self):
        from django.db import models

        from data_encryption import fields

        class Numbered(models.Model):
            text = fields.EncryptedTextField(bind_to_pk=True)

            class Meta:
                app_label = "data_encryption_tests"

        errors = Numbered._meta.get_field("text").check()
        self.assertEqual([error.id for error in errors], ["data_encryption.E029"])
        self.assertEqual(self.Secret._meta.get_field("text").check(), [])
