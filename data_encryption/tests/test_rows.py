"""The rotation's writes (rotation/rows.py): a batch the database refuses is written again row by
row; only the refused rows fail, each left exactly as it was, named by class, SQLSTATE and
constraint, never by the database's text (PostgreSQL's DETAIL quotes the row)."""

from django.db import connection
from django.test import TestCase, override_settings

from data_encryption.envelope import key_id_of
from data_encryption.keys import reset_key_ring
from data_encryption.models import RotationFailure, RotationRun
from data_encryption.services import KeyRotationService
from data_encryption.tests.testapp.models import Customer, Patient
from data_encryption.tests.utils import (
    FAST,
    FreshKeyRingMixin,
    make_customers,
    make_patients,
    primary_id,
    raw,
)

PLAINTEXT_NAME = "Jane Q. Public, DOB 1970-01-01"


def refuse_updates(model, pk, column):
    """Make the database refuse any update of row ``pk`` (of ``column``, on SQLite): a CHECK
    constraint added NOT VALID on PostgreSQL (security.md L3's exp10_pg_reason), a trigger on
    SQLite. Both end with the test's transaction."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f'ALTER TABLE "{table}" ADD CONSTRAINT refuse_one CHECK (id <> {int(pk)}) NOT VALID'
            )
        else:
            cursor.execute(
                f'CREATE TRIGGER refuse_one BEFORE UPDATE OF "{column}" ON "{table}" '
                f"WHEN OLD.id = {int(pk)} BEGIN SELECT RAISE(ABORT, '{PLAINTEXT_NAME}'); END"
            )


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class WriteFailureTests(FreshKeyRingMixin, TestCase):
    def test_a_refused_row_is_recorded_and_the_run_goes_on(self):
        ssns = make_customers(12)
        refused = sorted(ssns)[4]
        Customer.objects.filter(pk=refused).update(name=PLAINTEXT_NAME)
        refuse_updates(Customer, refused, "_ssn")
        before = raw(Customer, "_ssn")
        report = KeyRotationService(batch_size=5).rotate()
        self.assertEqual(report["failed_records"], 1)
        self.assertEqual(report["records_reencrypted"], 11 + Patient.objects.count())
        self.assertEqual(
            report["models"]["data_encryption_tests.Customer"],
            {"rows": 12, "reencrypted": 11, "failed": 1},
        )
        [failure] = report["failures"]
        self.assertEqual((failure["pk"], failure["field"]), (str(refused), "_ssn"))
        self.assertEqual(failure["key_id"], f"{key_id_of(before[refused]):08x}")
        self.assertTrue(failure["error"].startswith("IntegrityError"), failure["error"])
        if connection.vendor == "postgresql":
            self.assertIn("SQLSTATE 23514", failure["error"])
            self.assertIn("constraint refuse_one", failure["error"])
        else:
            self.assertIn("SQLITE_CONSTRAINT_TRIGGER", failure["error"])
        run = RotationRun.objects.get(pk=report["run_id"])
        for text in (failure["error"], run.reason, *RotationFailure.objects.values_list("error")):
            self.assertNotIn("Jane", str(text))
        after = raw(Customer, "_ssn")
        self.assertEqual(after[refused], before[refused])  # byte for byte
        new = primary_id()
        self.assertEqual(
            {pk for pk, value in after.items() if key_id_of(value) == new}, set(ssns) - {refused}
        )
        self.assertEqual(report["retired_key_ids"], [])
        reset_key_ring()
        self.assertEqual({c.pk: c.ssn for c in Customer.objects.all()}, ssns)

    def test_a_refused_row_keeps_every_column_it_had(self):
        patients = make_patients(6)
        refused = sorted(patients)[2]
        refuse_updates(Patient, refused, "visits")  # notes is written first, in the same row
        columns = ("notes", "visits", "profile")
        before = {column: raw(Patient, column) for column in columns}
        report = KeyRotationService().rotate()
        self.assertEqual([f["pk"] for f in report["failures"]], [str(refused)])
        self.assertEqual(
            report["failures"][0]["field"],
            "visits" if connection.vendor == "sqlite" else "notes",
        )
        for column in columns:
            after = raw(Patient, column)
            self.assertEqual(after[refused], before[column][refused], column)
            self.assertEqual(
                {key_id_of(value) for pk, value in after.items() if pk != refused},
                {primary_id()},
            )
        reset_key_ring()
        self.assertEqual(
            {p.pk: (p.notes, p.visits, p.profile) for p in Patient.objects.all()}, patients
        )
