"""Fault injection: a rotation over a few thousand rows with one row of each kind of bad value,
one row whose write the database refuses, and a disk too full for the key backup. The run
finishes, every bad row is reported by pk and left byte-for-byte, every good row is re-encrypted
and still reads back, and nothing else is lost (docs/security.md, the threat model)."""

import base64
import os
import tempfile

from django.db import connection
from django.test import TestCase, TransactionTestCase, override_settings

from data_encryption.envelope import HEADER_SIZE, key_id_of
from data_encryption.keys import reset_key_ring
from data_encryption.models import DataKey, KeyState, RotationRun
from data_encryption.services import EncryptionService, KeyRotationService
from data_encryption.tests.test_backup_files import (
    add_filler_keys,
    database_file_size,
    rotate_on_a_full_disk,
)
from data_encryption.tests.test_rows import refuse_updates
from data_encryption.tests.testapp.models import Customer, Patient
from data_encryption.tests.utils import FAST, FreshKeyRingMixin, primary_id, raw

CUSTOMERS = 3000
PATIENTS = 200


def _non_canonical(key_hex: str) -> str:
    return key_hex.upper() if key_hex.upper() != key_hex else "0" + key_hex


def bad_values(sound: bytes, other_key_id: int) -> dict[str, bytes]:
    """One stored value of each kind that must fail, made from ``sound`` (a good value)."""
    header, rest = sound[:HEADER_SIZE], sound[HEADER_SIZE:]
    ascii_form = EncryptionService.to_ascii(sound)
    key_hex = ascii_form.split(":")[1]
    return {
        "garbage": os.urandom(40),
        "truncated": sound[: HEADER_SIZE + 10],
        "unknown key": header[:4] + (0xDEADBEEF).to_bytes(4, "big") + rest,
        "tampered header": header[:4] + other_key_id.to_bytes(4, "big") + rest,
        "tampered ciphertext": sound[:-1] + bytes([sound[-1] ^ 1]),
        "over-long": sound + os.urandom(1 << 20),
        # Upper case, or (for an id with no letter to raise, 2% of ids) a ninth digit.
        "non-canonical key id": ascii_form.replace(key_hex, _non_canonical(key_hex), 1).encode(),
        "non-canonical base64": (ascii_form + "==").encode(),
        "negative key id": b"de1:-0000001:" + base64.urlsafe_b64encode(rest).rstrip(b"="),
        "plaintext": b"123-45-6789",
        "empty": b"",
    }


def seed(customers: int, patients: int) -> None:
    Customer.objects.bulk_create(
        [
            Customer(name=f"c{i}", _ssn=EncryptionService.encrypt(f"ssn-{i}"))
            for i in range(customers)
        ],
        batch_size=1000,
    )
    Patient.objects.bulk_create(
        [Patient(name=f"p{i}", notes=f"note-{i}", code=f"c{i}") for i in range(patients)],
        batch_size=500,
    )


def plant(case) -> dict[tuple[str, int, str], bytes]:
    """Write one bad value of each kind over good rows; return where each went and its bytes.
    Also copies one patient's ``notes`` ciphertext into another patient's ``code`` column: a
    value moved to a column it was not written for."""
    customers = list(Customer.objects.order_by("pk").values_list("pk", flat=True))
    patients = list(Patient.objects.order_by("pk").values_list("pk", flat=True))
    sound = bytes(Customer.objects.get(pk=customers[0])._ssn)
    other = DataKey.objects.exclude(key_id=primary_id()).values_list("key_id", flat=True).first()
    planted = {}
    step = len(customers) // 20
    for index, value in enumerate(bad_values(sound, other).values(), start=1):
        pk = customers[index * step]
        Customer.objects.filter(pk=pk).update(_ssn=value)
        planted[("data_encryption_tests.Customer", pk, "_ssn")] = value
    moved = raw(Patient, "notes")[patients[10]]
    with connection.cursor() as cursor:
        table = Patient._meta.db_table
        cursor.execute(f'UPDATE "{table}" SET "code" = %s WHERE id = %s', [moved, patients[20]])
    planted[("data_encryption_tests.Patient", patients[20], "code")] = moved
    case.assertEqual(len(planted), len(bad_values(sound, other)) + 1)
    return planted


def column_values(model, column):
    return raw(model, column)


@override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "BATCH_SIZE": 500})
class BadValuesTests(FreshKeyRingMixin, TestCase):
    def test_every_bad_row_is_reported_and_left_and_every_good_row_moves(self):
        seed(CUSTOMERS, PATIENTS)
        KeyRotationService().rotate()  # a second key exists, for the "tampered header" case
        planted = plant(self)
        customers = list(Customer.objects.order_by("pk").values_list("pk", flat=True))
        refused = customers[-7]  # a good row whose write the database refuses
        refuse_updates(Customer, refused, "_ssn")
        before = {
            "_ssn": column_values(Customer, "_ssn"),
            "notes": column_values(Patient, "notes"),
            "code": column_values(Patient, "code"),
        }
        self.assertEqual(len(before["_ssn"]), CUSTOMERS)

        report = KeyRotationService().rotate()

        self.assertEqual(report["status"], "failed")  # failures block retirement, not the run
        failures = {(f["model"], int(f["pk"]), f["field"]) for f in report["failures"]}
        self.assertEqual(
            failures, set(planted) | {("data_encryption_tests.Customer", refused, "_ssn")}
        )
        self.assertEqual(report["failed_records"], len(planted) + 1)
        for failure in report["failures"]:  # never the value, never its bytes
            self.assertNotIn("ssn-", failure["error"])
            self.assertNotIn("note-", failure["error"])
            self.assertLess(len(failure["error"]), 300)
        after = {
            "_ssn": column_values(Customer, "_ssn"),
            "notes": column_values(Patient, "notes"),
            "code": column_values(Patient, "code"),
        }
        new_key = primary_id()
        bad_customers = {pk for (model, pk, _f) in failures if model.endswith("Customer")}
        for pk, value in after["_ssn"].items():
            if pk in bad_customers:
                self.assertEqual(value, before["_ssn"][pk], f"customer {pk} was changed")
            else:
                self.assertEqual(key_id_of(value), new_key, f"customer {pk} was not re-encrypted")
        bad_code = {pk for (model, pk, field) in failures if field == "code"}
        for column in ("notes", "code"):
            for pk, value in after[column].items():
                if column == "code" and pk in bad_code:
                    self.assertEqual(value, before[column][pk])
                elif value is not None:
                    self.assertEqual(key_id_of(value), new_key)
        # Nothing lost: every good row reads back as it was written.
        reset_key_ring()
        for customer in Customer.objects.exclude(pk__in=bad_customers):
            self.assertEqual(customer.ssn, f"ssn-{customer.name[1:]}")
        for patient in Patient.objects.exclude(pk__in=bad_code):
            self.assertEqual(patient.notes, f"note-{patient.name[1:]}")
            self.assertEqual(patient.code, f"c{patient.name[1:]}")
        # The old key stays: values under it failed, so the census keeps it readable.
        self.assertEqual(report["retired_key_ids"], [])
        self.assertFalse(DataKey.objects.filter(state=KeyState.DESTROYED).exists())


class FullDiskTests(FreshKeyRingMixin, TransactionTestCase):
    def setUp(self):
        super().setUp()
        if connection.vendor == "sqlite" and ":memory:" in str(connection.settings_dict["NAME"]):
            self.skipTest("needs a file database that other processes can open")

    def test_a_full_disk_stops_the_run_before_any_key_or_row_changes_then_a_rerun_completes(self):
        seed(300, 0)
        add_filler_keys()
        values = column_values(Customer, "_ssn")
        keys = set(DataKey.objects.values_list("key_id", "state"))
        directory = tempfile.mkdtemp(prefix="fault-full-disk-")
        report = rotate_on_a_full_disk(self, database_file_size() + 256 * 1024, directory)
        self.assertEqual(report["status"], "failed")
        self.assertIn("Could not write the key backup", report["reason"])
        run = RotationRun.objects.get()
        self.assertEqual((run.status, run.phase), ("failed", "backup"))
        reset_key_ring()
        self.assertEqual(set(DataKey.objects.values_list("key_id", "state")), keys)
        self.assertEqual(column_values(Customer, "_ssn"), values)
        # With room again, the next run completes: every row moves, none is lost.
        with override_settings(ENCRYPTION_KEY_ROTATION=FAST):
            report = KeyRotationService().rotate()
        self.assertEqual(report["status"], "completed", report["reason"])
        self.assertEqual((report["records_processed"], report["failed_records"]), (300, 0))
        reset_key_ring()
        self.assertEqual({c.ssn for c in Customer.objects.all()}, {f"ssn-{i}" for i in range(300)})
