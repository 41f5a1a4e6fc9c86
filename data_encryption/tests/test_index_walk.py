"""The index walk and ``rebuild_blind_index``: rows without a blind index (written before the
field had one, or converted) get it, a field is marked complete only when every row has it, a
row that cannot be indexed is reported by pk and left as it was, and a concurrent write is never
overwritten with a stale index (docs/search.md)."""

import json
from io import StringIO

from django.core.management import CommandError, call_command
from django.db import connection
from django.test import TestCase, TransactionTestCase

from data_encryption.blind_index import digest, digester
from data_encryption.exceptions import BlindIndexIncomplete
from data_encryption.index_keys import index_key_ring, reset_index_key_ring
from data_encryption.models import IndexKey, RotationFailure, RotationRun, RunKind, RunStatus
from data_encryption.rotation.index_batch import examine_index_rows
from data_encryption.rotation.index_walk import rebuild_walk
from data_encryption.rotation.rows import read_rows, write_rows
from data_encryption.tests.search_app.models import Employee, Person, Record
from data_encryption.tests.utils import FreshKeyRingMixin

SSN = "search_app.Person.ssn"


def forget_index(model, *names):
    """As if the rows had been written before ``names`` had an index: no index values, and
    no field recorded complete."""
    model._base_manager.update(**{f"{name}_bidx_{slot}": None for name in names for slot in "ab"})
    IndexKey.objects.update(complete_fields=[])
    reset_index_key_ring()
    from data_encryption.fields import index_lookups

    index_lookups._checked.clear()


def pks(queryset):
    return sorted(queryset.values_list("pk", flat=True))


class DigesterTests(TestCase):
    def test_the_walks_digests_are_the_writes(self):
        for key in (b"k" * 32, b"", b"x" * 64, b"long" * 40, bytes(range(32))):
            keyed = digester(key)
            for data in (b"", b"123456789", "é".encode() * 100):
                self.assertEqual(keyed(data), digest(key, data))


class RebuildTests(FreshKeyRingMixin, TransactionTestCase):
    def setUp(self):
        super().setUp()
        self.people = [
            Person.objects.create(name=f"p{i}", ssn=f"{i:09d}", email=f"p{i}@example.com")
            for i in range(30)
        ]
        Person.objects.create(name="nobody")
        forget_index(Person, "ssn", "email")

    def test_rebuild_indexes_every_row_and_marks_the_field_complete(self):
        with self.assertRaisesMessage(BlindIndexIncomplete, f"rebuild_blind_index {SSN}"):
            Person.objects.get(ssn="000000007")
        out = StringIO()
        call_command("rebuild_blind_index", SSN, "--batch-size", "7", stdout=out)
        self.assertIn("indexed:            30", out.getvalue())
        self.assertEqual(Person.objects.get(ssn="000-000-007"), self.people[7])
        active = IndexKey.objects.get(state="active")
        self.assertEqual(active.complete_fields, [f"{SSN}#digits"])  # email was not named
        run = RotationRun.objects.get(kind=RunKind.INDEX)
        self.assertEqual((run.status, run.records_reencrypted), (RunStatus.COMPLETED, 30))
        # A second run finds nothing to do.
        call_command("rebuild_blind_index", SSN, stdout=StringIO())
        last = RotationRun.objects.filter(kind=RunKind.INDEX).order_by("pk").last()
        self.assertEqual((last.records_processed, last.records_reencrypted), (31, 0))

    def test_every_indexed_field_by_default_and_dry_run_counts(self):
        Record.objects.create(code="x", number=5)
        forget_index(Record, "code", "number", "born", "ref", "label")
        out = StringIO()
        call_command("rebuild_blind_index", "--dry-run", "--json", stdout=out)
        missing = json.loads(out.getvalue())["missing"]
        self.assertEqual(missing[SSN], 30)
        self.assertEqual(missing["search_app.Record.code"], 1)
        self.assertEqual(missing["search_app.Record.born"], 0)
        self.assertIn("search_app.Employee.badge", missing)
        self.assertEqual(IndexKey.objects.get(state="active").complete_fields, [])
        call_command("rebuild_blind_index", stdout=StringIO())
        self.assertEqual(pks(Person.objects.filter(email="p3@EXAMPLE.com")), [self.people[3].pk])
        self.assertEqual(Record.objects.get(number=5).code, "x")

    def test_an_unreadable_row_is_reported_by_pk_and_the_field_stays_incomplete(self):
        broken = self.people[4]
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Person._meta.db_table} SET ssn = %s WHERE id = %s",
                [b"\xff\x44\x45\x02" + b"\x00" * 40, broken.pk],
            )
        out, err = StringIO(), StringIO()
        with self.assertRaisesMessage(CommandError, "1 rows could not be indexed"):
            call_command("rebuild_blind_index", SSN, stdout=out, stderr=err)
        self.assertIn(f"pk={broken.pk} field=ssn", out.getvalue())
        failure = RotationFailure.objects.get()
        self.assertEqual((failure.pk_value, failure.field), (str(broken.pk), "ssn"))
        self.assertEqual(IndexKey.objects.get(state="active").complete_fields, [])
        with self.assertRaises(BlindIndexIncomplete):
            Person.objects.filter(ssn="000000005").exists()

    def test_a_stored_value_the_normaliser_refuses_is_a_failure_not_the_runs(self):
        odd = Person(name="odd", ssn="000000099")
        odd.save()
        # Written around the normaliser (a raw copy from elsewhere): no digits at all.
        Person.objects.filter(pk=odd.pk).update(ssn="0")
        field = Person._meta.get_field("ssn")
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Person._meta.db_table} SET ssn = %s, ssn_bidx_a = NULL WHERE id = %s",
                [field.get_db_prep_value("n/a", connection), odd.pk],
            )
        with self.assertRaises(CommandError):
            call_command("rebuild_blind_index", SSN, stdout=StringIO())
        failure = RotationFailure.objects.get()
        self.assertEqual(failure.pk_value, str(odd.pk))
        self.assertIn("normaliser refuses", failure.error)
        self.assertNotIn("n/a", failure.error)

    def test_a_duplicate_the_unique_index_refuses_is_that_rows_failure(self):
        call_command("rebuild_blind_index", SSN, stdout=StringIO())
        first, copy = self.people[1], self.people[2]
        table = Person._meta.db_table
        with connection.cursor() as cursor:  # a copied row, restored from elsewhere
            cursor.execute(f"SELECT ssn FROM {table} WHERE id = %s", [first.pk])
            (ciphertext,) = cursor.fetchone()
            cursor.execute(
                f"UPDATE {table} SET ssn = %s, ssn_bidx_a = NULL WHERE id = %s",
                [ciphertext, copy.pk],
            )
        IndexKey.objects.update(complete_fields=[])
        with self.assertRaisesMessage(CommandError, "1 rows could not be indexed"):
            call_command("rebuild_blind_index", SSN, "--batch-size", "5", stdout=StringIO())
        failure = RotationFailure.objects.get()
        self.assertEqual((failure.pk_value, failure.field), (str(copy.pk), "ssn"))
        self.assertIn("IntegrityError", failure.error)
        self.assertIn("indexed row", failure.error)
        self.assertEqual(Person.objects.filter(ssn_bidx_a=None).exclude(ssn=None).count(), 1)

    def test_a_concurrent_write_keeps_its_own_index(self):
        walk = rebuild_walk([SSN])
        (table,) = walk.index_tables
        ring = index_key_ring()
        rows = read_rows(connection, table, None, 100)
        batch = examine_index_rows(rows, table, walk._field_keys(table), only_missing=True)
        # The application changes a row between the walk's read and its write.
        changed = self.people[0]
        changed.ssn = "555-55-5555"
        changed.save()
        write_rows(connection, table, batch)
        self.assertEqual(pks(Person.objects.filter(ssn="555555555")), [changed.pk])
        self.assertEqual(Person.objects.filter(ssn="000000000").count(), 0)
        self.assertEqual(ring.active_slot, "a")

    def test_child_model_fields_and_unknown_names(self):
        Employee.objects.create(name="e", ssn="123456780", badge=7)
        forget_index(Employee, "badge")
        call_command("rebuild_blind_index", "search_app.Employee", stdout=StringIO())
        self.assertEqual(Employee.objects.get(badge=7).name, "e")
        for label, message in [
            ("search_app.Person.name", "has no blind index"),
            ("search_app.Nope", "no installed model"),
            ("search_app.Record.note", "has no blind index"),
        ]:
            with self.assertRaisesMessage(CommandError, message):
                call_command("rebuild_blind_index", label, stdout=StringIO())
