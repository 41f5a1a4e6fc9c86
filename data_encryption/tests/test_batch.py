"""One batch of rows (rotation/batch.py): any exception while examining one value is that value's
failure (class name only), and a rotation over such a value goes on and reports it."""

from django.db import connection
from django.test import TestCase, override_settings

from data_encryption.exceptions import DecryptionError
from data_encryption.keys import cipher_for, reset_key_ring
from data_encryption.rotation import examine_rows
from data_encryption.services import EncryptionService, KeyRotationService
from data_encryption.tests.testapp.models import Customer, Patient
from data_encryption.tests.utils import FAST, FreshKeyRingMixin, make_customers, primary_id, raw

# security.md M1 (exp2_rotation_dos): "-0000001" was read as key id -1 by int(..., 16), and the
# OverflowError of packing it stopped every rotation.
NEGATIVE_KEY_ID = b"de1:-0000001:" + b"A" * 40


class ExamineRowsTests(FreshKeyRingMixin, TestCase):
    def test_a_value_of_an_unexpected_type_is_that_values_failure(self):
        good = EncryptionService.encrypt("111-11-1111")
        key_id = primary_id()
        batch = examine_rows(
            [(1, 12345), (2, good)], [("_ssn", "_ssn")], key_id, cipher_for(key_id), rewrite=True
        )
        self.assertEqual(batch.rows, 2)
        self.assertEqual(len(batch.failures), 1)
        pk, name, failed_key, reason = batch.failures[0]
        self.assertEqual((pk, name, failed_key), (1, "_ssn", None))
        self.assertEqual(reason, "TypeError while decrypting or re-encrypting the value")
        self.assertEqual(batch.census[("_ssn", "not-encrypted")], 1)

    def test_a_negative_ascii_key_id_is_that_values_failure(self):
        # A rotation to a key that does not hold the good value: both values are examined.
        good = EncryptionService.encrypt("111-11-1111")
        batch = examine_rows(
            [(1, NEGATIVE_KEY_ID), (2, good)], [("_ssn", "_ssn")], None, None, rewrite=False
        )
        self.assertEqual([failure[0] for failure in batch.failures], [1])
        self.assertIn("Malformed ASCII envelope", batch.failures[0][3])
        self.assertEqual(batch.census[("_ssn", "malformed")], 1)

    def test_failure_reasons_never_hold_the_exceptions_text(self):
        # An exception other than ours names its class only: its text could quote the value.
        key_id = primary_id()
        batch = examine_rows(
            [(1, ["123-45-6789"])], [("_ssn", "_ssn")], key_id, cipher_for(key_id), rewrite=True
        )
        self.assertNotIn("123-45-6789", batch.failures[0][3])
        self.assertTrue(batch.failures[0][3].startswith("TypeError"))


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class OneBadValueTests(FreshKeyRingMixin, TestCase):
    def test_a_negative_key_id_no_longer_stops_every_rotation(self):
        ssns = make_customers(5)
        bad = Customer.objects.create(name="bad", _ssn=NEGATIVE_KEY_ID)
        for attempt in (1, 2):  # the second run behaves as the first did
            with self.subTest(attempt=attempt):
                report = KeyRotationService().rotate()
                self.assertEqual(report["failed_records"], 1)
                self.assertEqual([f["pk"] for f in report["failures"]], [str(bad.pk)])
                self.assertEqual(report["failures"][0]["field"], "_ssn")
                self.assertIsNone(report["failures"][0]["key_id"])
                self.assertEqual(raw(Customer, "_ssn")[bad.pk], NEGATIVE_KEY_ID)
                reset_key_ring()
                self.assertEqual({c.pk: c.ssn for c in Customer.objects.exclude(pk=bad.pk)}, ssns)
                others = [value for pk, value in raw(Customer, "_ssn").items() if pk != bad.pk]
                self.assertEqual({EncryptionService.key_id_of(v) for v in others}, {primary_id()})

    def test_decrypt_and_from_db_value_raise_decryption_error(self):
        with self.assertRaises(DecryptionError):
            EncryptionService.decrypt(NEGATIVE_KEY_ID)
        with self.assertRaises(DecryptionError):
            EncryptionService.decrypt(NEGATIVE_KEY_ID.decode())
        patient = Patient.objects.create(name="p")
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Patient._meta.db_table} SET notes = %s WHERE id = %s",
                [NEGATIVE_KEY_ID, patient.pk],
            )
        with self.assertRaises(DecryptionError):
            Patient.objects.get(pk=patient.pk)
