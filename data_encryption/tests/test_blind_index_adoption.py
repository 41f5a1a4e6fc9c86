"""A plain unique SSN column becoming an indexed encrypted field, with the migration that
``makemigrations_encrypted`` writes: its rows get their blind index in the same write as their
ciphertext, in the migration (``EncryptField``) or online (``encrypt_existing``); queries then
find every row by either spelling and the database refuses a duplicate. Values equal once
normalised are reported by pk and left as they were."""

import importlib
import random
from io import StringIO

from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.test import TransactionTestCase, override_settings

from data_encryption.exceptions import BlindIndexIncomplete
from data_encryption.models import IndexKey, IndexKeyState
from data_encryption.operations import ConversionError
from data_encryption.rotation.batch import Batch
from data_encryption.rotation.rows import write_rows
from data_encryption.rotation.tables import resolve_tables
from data_encryption.tests.search_app.models import Person
from data_encryption.tests.test_operations_makemigrations import PLAIN, MakeMigrationsTestCase
from data_encryption.tests.utils import FreshKeyRingMixin

INDEXED = (
    "data_encryption.fields.EncryptedCharField("
    "max_length=11, blind_index=True, unique=True, normaliser='digits', null=True)"
)
ROWS = 2000


def ssns(count, seed=11):
    """``count`` distinct SSNs once normalised, every other one with dashes."""
    numbers = random.Random(seed).sample(range(10**8, 10**9), count)
    return [
        f"{n // 10**6:03}-{n // 10**4 % 100:02}-{n % 10**4:04}" if i % 2 else str(n)
        for i, n in enumerate(numbers)
    ]


def other_spelling(ssn):
    digits = ssn.replace("-", "")
    return digits if "-" in ssn else f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"


class IndexedAdoptionTestCase(MakeMigrationsTestCase):
    def indexed_app(self, convert=True, edit=None):
        """The app at 0001 (plain unique ``ssn``) with its 0002 written by
        ``makemigrations_encrypted``, edited to ``convert=False`` for the online path (and by
        ``edit``, given the text, if given)."""
        label, folder = self.make_app(PLAIN, INDEXED)
        self.makemigrations(label)
        name, text = self.written(folder)
        if not convert:
            text = text.replace("EncryptField(\n", "EncryptField(\n            convert=False,\n")
        (folder / name).write_text(edit(text) if edit else text)
        call_command("migrate", label, "0001", verbosity=0)
        return label, text

    def customer(self, label):
        return importlib.import_module(f"{label}.models").Customer

    def insert_many(self, label, values):
        table = connection.ops.quote_name(f"{label}_customer")
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {table} (name, ssn) VALUES (%s, %s)",
                [(f"c{index}", ssn) for index, ssn in enumerate(values)],
            )

    def assert_found_and_unique(self, label, values):
        customer = self.customer(label)
        by_name = dict(customer.objects.values_list("name", "pk"))
        for index, ssn in enumerate(values):
            self.assertEqual(customer.objects.get(ssn=other_spelling(ssn)).pk, by_name[f"c{index}"])
        self.assertEqual(customer.objects.filter(ssn__in=values[:10]).count(), 10)
        with self.assertRaises(IntegrityError), transaction.atomic():
            customer.objects.create(name="dup", ssn=other_spelling(values[7]))
        active = IndexKey.objects.get(state=IndexKeyState.ACTIVE)
        self.assertIn(f"{label}.Customer.ssn#digits", active.complete_fields)


class InMigrationTests(IndexedAdoptionTestCase):
    def test_every_row_is_indexed_in_the_migration_and_back(self):
        label, text = self.indexed_app()
        # As makemigrations_encrypted writes it: the index columns, the conversion filling
        # them, then the unique constraints on them.
        markers = ("name='ssn_bidx_a'", "name='ssn_bidx_b'", "EncryptField(", "AddConstraint(")
        positions = [text.index(marker) for marker in markers]
        self.assertEqual(positions, sorted(positions))
        values = ssns(ROWS)
        self.insert_many(label, values)
        plain = self.rows(label)
        call_command("migrate", label, verbosity=0)
        self.assert_found_and_unique(label, values)
        call_command("migrate", label, "0001", verbosity=0)
        self.assertEqual(self.rows(label), plain)

    def test_values_equal_once_normalised_stop_the_migration_by_pk(self):
        label, _text = self.indexed_app()
        self.insert_many(label, ["123-45-6789", "555-12-0000", "123456789", "5551 20000"])
        plain = self.rows(label)
        with self.assertRaises(ConversionError) as caught:
            call_command("migrate", label, verbosity=0)
        message = str(caught.exception)
        pks = list(self.customer(label).objects.order_by("pk").values_list("pk", flat=True))
        self.assertIn(f"2 row(s) of {label}.Customer.ssn (pk {pks[2]}, {pks[3]})", message)
        self.assertIn(f"the value of row pk={pks[0]} once normalised ('digits')", message)
        self.assertIn("make the two rows' values differ", message)
        self.assertNotIn("6789", message)
        self.assertEqual(self.rows(label), plain)

    def test_a_value_the_normaliser_refuses_stops_the_migration_saying_so(self):
        label, _text = self.indexed_app()
        self.insert_many(label, ["123-45-6789", "n/a"])
        with self.assertRaises(ConversionError) as caught:
            call_command("migrate", label, verbosity=0)
        self.assertIn("The 'digits' normaliser of", str(caught.exception))
        self.assertNotIn("n/a", str(caught.exception))

    def test_an_encrypt_field_before_its_index_columns_is_refused_before_any_change(self):
        def index_columns_last(text):
            start = text.index("        migrations.AddField(")
            end = text.index("        data_encryption.operations.EncryptField(")
            return text[:start] + text[end:].replace("),\n    ]", f"),\n{text[start:end]}    ]")

        label, _text = self.indexed_app(edit=index_columns_last)
        self.insert_many(label, ["123-45-6789"])
        plain = self.rows(label)
        with self.assertRaises(ConversionError) as caught:
            call_command("migrate", label, verbosity=0)
        message = str(caught.exception)
        self.assertIn("its index columns ssn_bidx_a, ssn_bidx_b do not exist yet", message)
        self.assertIn("Put the AddField operations of ssn_bidx_a, ssn_bidx_b before it", message)
        self.assertEqual(self.rows(label), plain)


class OnlineTests(IndexedAdoptionTestCase):
    def in_transition(self, label):
        return override_settings(
            DATA_ENCRYPTION_LEGACY_COLUMNS={f"{label}.Customer.ssn": "plaintext"}
        )

    def convert(self, label):
        out = StringIO()
        try:
            call_command("encrypt_existing", f"{label}.Customer.ssn", batch_size=300, stdout=out)
        except CommandError as exc:
            return out.getvalue(), exc
        return out.getvalue(), None

    def test_encrypt_existing_indexes_every_row_it_converts(self):
        label, _text = self.indexed_app(convert=False)
        values = ssns(ROWS)
        self.insert_many(label, values)
        with self.in_transition(label):
            call_command("migrate", label, verbosity=0)
            with self.assertRaises(BlindIndexIncomplete):
                self.customer(label).objects.get(ssn=values[0])
            output, error = self.convert(label)
            self.assertIsNone(error, output)
            self.assert_found_and_unique(label, values)

    def test_rows_equal_once_normalised_are_reported_and_left_until_fixed(self):
        label, _text = self.indexed_app(convert=False)
        values = ssns(600)
        values[450] = other_spelling(values[10])  # in another batch
        values[20] = other_spelling(values[11])  # in the same batch
        self.insert_many(label, values)
        with self.in_transition(label):
            call_command("migrate", label, verbosity=0)
            output, error = self.convert(label)
            customer = self.customer(label)
            pk = dict(customer.objects.values_list("name", "pk"))
            self.assertEqual(
                str(error),
                "2 rows could not be converted (listed above by pk, each left as it was).",
            )
            for row, first in ((20, 11), (450, 10)):
                self.assertIn(
                    f"pk={pk[f'c{row}']} field=ssn: its value is the value of row "
                    f"pk={pk[f'c{first}']} once normalised ('digits')",
                    output,
                )
                self.assertEqual(
                    self.raw(label, pk[f"c{row}"]),
                    values[row].encode() if connection.vendor == "postgresql" else values[row],
                )
            self.assertNotIn(values[10], output)
            with self.assertRaises(BlindIndexIncomplete):
                customer.objects.get(ssn=values[0])
            customer.objects.filter(pk__in=[pk["c20"], pk["c450"]]).delete()
            output, error = self.convert(label)
            self.assertIsNone(error, output)
            self.assertEqual(customer.objects.get(ssn=other_spelling(values[10])).name, "c10")

    def raw(self, label, pk):
        table = connection.ops.quote_name(f"{label}_customer")
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT ssn FROM {table} WHERE id = %s", [pk])
            value = cursor.fetchone()[0]
        return bytes(value) if isinstance(value, memoryview) else value


class IndexedWriteTests(FreshKeyRingMixin, TransactionTestCase):
    """``write_rows`` with rewrites that carry their index: one statement sets both; a row the
    database refuses (a race the check before the write could not see) keeps every value."""

    def test_a_refused_row_keeps_its_values_and_the_others_are_written(self):
        first, second, third = (Person.objects.create(ssn=f"00{n}-00-0000") for n in (1, 2, 3))
        (table,) = resolve_tables([(Person, ["ssn"])])
        stored = dict(Person.objects.values_list("pk", "ssn_bidx_a"))
        rows = {
            p.pk: bytes(v) for p, v in zip((first, second, third), self.raw("ssn"), strict=True)
        }
        batch = Batch(fields={"ssn": "ssn"})
        batch.updates["ssn"] = [
            (b"new-2", second.pk, rows[second.pk], bytes(stored[first.pk]), None),  # taken
            (b"new-3", third.pk, rows[third.pk], b"\x07" * 16, None),
        ]
        write_rows(connection, table, batch)
        self.assertEqual([pk for pk, *_ in batch.failures], [second.pk])
        self.assertIn("IntegrityError", batch.failures[0][3])
        self.assertEqual(self.raw("ssn")[1:], [rows[second.pk], b"new-3"])
        self.assertEqual(
            [bytes(v) for v in self.raw("ssn_bidx_a")[1:]], [bytes(stored[second.pk]), b"\x07" * 16]
        )

    def raw(self, column):
        table = connection.ops.quote_name(Person._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {connection.ops.quote_name(column)} FROM {table} ORDER BY id")
            return [bytes(v) if v is not None else v for (v,) in cursor.fetchall()]
