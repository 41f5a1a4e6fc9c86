"""The plaintext reader: a plain column's values, read for the encrypted field that replaces it,
in both shapes (SQLite's stored values, PostgreSQL's rendered text), and bad values refused
without quoting them."""

import datetime
import decimal
import uuid
import zoneinfo

from django.db import connection, models
from django.test import TestCase, override_settings

from data_encryption.fields import EncryptedFieldMixin
from data_encryption.legacy import LegacyValueError, load_reader, plaintext_from_legacy
from data_encryption.tests.peer_libraries import same
from data_encryption.tests.testapp.models import Customer, Patient, PlainValues
from data_encryption.tests.utils import FreshKeyRingMixin

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
UTC = datetime.UTC


# Encrypted counterparts of the plain types this branch has no encrypted field for yet, made the
# way fields/ makes every encrypted field (the mixin over the Django field).
class EncryptedTimeStandIn(EncryptedFieldMixin, models.TimeField):
    pass


class EncryptedDurationStandIn(EncryptedFieldMixin, models.DurationField):
    pass


class EncryptedUUIDStandIn(EncryptedFieldMixin, models.UUIDField):
    pass


class EncryptedIPStandIn(EncryptedFieldMixin, models.GenericIPAddressField):
    pass


def patient_field(name):
    return Patient._meta.get_field(name)


# plain column -> (encrypted counterpart, values written through the plain field)
CASES = {
    "text": (lambda: patient_field("notes"), ["", "plain", "ünïcødé ✓ 𝄞 漢字", "line\nbreak"]),
    "char": (lambda: patient_field("code"), ["", "x" * 10, "日本語"]),
    "email": (lambda: patient_field("email"), ["a.b+c@example.com"]),
    "integer": (lambda: patient_field("visits"), [0, -1, -(2**31), 2**31 - 1]),
    "big": (lambda: patient_field("big"), [-(2**63), 2**63 - 1, 0]),
    "decimal": (
        lambda: patient_field("balance"),
        [
            decimal.Decimal("0.00"),
            decimal.Decimal("12.50"),
            decimal.Decimal("0.01"),
            decimal.Decimal("99999999.99"),
            decimal.Decimal("-99999999.99"),
            decimal.Decimal("12345678.91"),
        ],
    ),
    "number": (lambda: patient_field("score"), [0.0, -1.5, 0.1, 1e308, 5e-324, -2.5e-10]),
    "flag": (lambda: patient_field("active"), [True, False]),
    "day": (
        lambda: patient_field("birth_date"),
        [datetime.date(1, 1, 1), datetime.date(2024, 2, 29), datetime.date(9999, 12, 31)],
    ),
    "moment": (
        lambda: patient_field("seen_at"),
        [
            datetime.datetime(2024, 3, 31, 1, 59, 59, 999999, tzinfo=PARIS),  # before the jump
            datetime.datetime(2024, 3, 31, 3, 0, tzinfo=PARIS),  # after it
            datetime.datetime(2024, 10, 27, 2, 30, tzinfo=PARIS),  # ambiguous, first
            datetime.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=PARIS),  # ambiguous, second
            datetime.datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
            datetime.datetime(1, 1, 1, 0, 0, tzinfo=UTC),
            datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        ],
    ),
    "time": (
        EncryptedTimeStandIn,
        [datetime.time(0), datetime.time(12, 30), datetime.time(23, 59, 59, 999999)],
    ),
    "duration": (
        EncryptedDurationStandIn,
        [
            datetime.timedelta(0),
            datetime.timedelta(microseconds=-1),
            datetime.timedelta(days=-3, seconds=5, microseconds=7),
            datetime.timedelta(days=10**6, microseconds=1),
        ],
    ),
    "uid": (EncryptedUUIDStandIn, [uuid.UUID(int=0), uuid.uuid4(), uuid.UUID(int=2**128 - 1)]),
    "ip": (EncryptedIPStandIn, ["192.0.2.1", "2001:db8::1"]),
    "document": (
        lambda: patient_field("profile"),
        [
            {"a": [1, 2.5, None, True, "ü 𝄞"], "nested": {"x": {"y": [], "z": {}}}},
            [],
            "text",
            0,
            [None],
        ],
    ),
    "blob": (lambda: patient_field("photo"), [b"", b"\x00\xff", bytes(range(256))]),
}


def raw_column(pk, column):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {PlainValues._meta.db_table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


class PlaintextSQLiteValuesTests(FreshKeyRingMixin, TestCase):
    """On SQLite a column keeps each value as Django stored it for the plain field."""

    reader = load_reader("plaintext")

    def setUp(self):
        super().setUp()
        if connection.vendor != "sqlite":
            self.skipTest("SQLite's stored values; PostgreSQL renders text (the next class)")

    def check_every_value(self):
        for column, (counterpart, values) in CASES.items():
            field = counterpart()
            for value in values:
                with self.subTest(column=column, value=value):
                    pk = PlainValues.objects.create(**{column: value}).pk
                    raw = raw_column(pk, column)
                    read = self.reader.read(raw, field)
                    self.assertEqual(same(read), same(value))
                    self.assertEqual(type(read), type(value))

    def test_every_type_reads_as_the_plain_field_stored_it(self):
        self.check_every_value()

    @override_settings(USE_TZ=False, TIME_ZONE="Europe/Paris")
    def test_without_use_tz_datetimes_are_naive_wall_clock_times(self):
        naive = datetime.datetime(2024, 10, 27, 2, 30, 0, 5)
        pk = PlainValues.objects.create(moment=naive).pk
        self.assertEqual(
            self.reader.read(raw_column(pk, "moment"), patient_field("seen_at")), naive
        )

    def test_decimals_are_quantized_as_django_reads_them(self):
        # SQLite keeps a REAL: float noise past 15 digits is dropped, then the field's places.
        field = patient_field("balance")
        self.assertEqual(self.reader.read(0.1 + 0.2, field), decimal.Decimal("0.30"))
        self.assertEqual(str(self.reader.read(7, field)), "7.00")

    def test_a_value_that_is_not_its_type_is_refused_without_quoting_it(self):
        for raw, name in [
            ("2024-13-45", "birth_date"),
            ("secret-not-a-number", "visits"),
            ("not a date-time secret", "seen_at"),
            ('{"secret": ', "profile"),
            (2, "active"),
        ]:
            with self.subTest(name=name), self.assertRaises(LegacyValueError) as caught:
                self.reader.read(raw, patient_field(name))
            self.assertIn(f"Patient.{name}", str(caught.exception))
            self.assertNotIn("secret", str(caught.exception))
            self.assertNotIn(str(raw), str(caught.exception))


class PlaintextRenderedTextTests(FreshKeyRingMixin, TestCase):
    """On PostgreSQL the type change renders each value as the text the field decodes."""

    reader = load_reader("plaintext")

    def test_every_type_reads_from_its_rendered_text(self):
        for column, (counterpart, values) in CASES.items():
            if isinstance(counterpart, type):
                continue  # the stand-ins have no decoder of their own yet
            field = counterpart()
            for value in values:
                with self.subTest(column=column, value=value):
                    rendered = field.to_plaintext(field.get_prep_value(value))
                    for shape in (rendered, memoryview(rendered)):
                        self.assertEqual(same(self.reader.read(shape, field)), same(value))

    def test_plaintext_from_legacy_seals_what_the_field_would(self):
        field = patient_field("seen_at")
        moment = datetime.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=PARIS)
        rendered = field.to_plaintext(moment)
        self.assertEqual(plaintext_from_legacy(self.reader, field, rendered), rendered)
        self.assertEqual(same(field.from_plaintext(rendered)), same(moment))

    def test_bytes_that_are_not_utf8_text_are_refused(self):
        with self.assertRaisesMessage(LegacyValueError, "Patient.notes is not UTF-8 text"):
            self.reader.read(b"secret \xff\xfe", patient_field("notes"))

    def test_json_that_does_not_parse_is_refused(self):
        with self.assertRaises(LegacyValueError) as caught:
            self.reader.read(b'{"secret": [1,', patient_field("profile"))
        self.assertIn("Patient.profile is not valid JSON", str(caught.exception))
        self.assertNotIn("secret", str(caught.exception))

    def test_a_number_that_does_not_parse_is_refused(self):
        with self.assertRaisesMessage(LegacyValueError, "is not a EncryptedIntegerField value"):
            self.reader.read(b"12secret", patient_field("visits"))

    def test_a_raw_column_gets_its_value_as_it_is(self):
        field = Customer._meta.get_field("_ssn")
        self.assertEqual(self.reader.read(b"123-45-6789", field), b"123-45-6789")
        self.assertEqual(plaintext_from_legacy(self.reader, field, "123"), b"123")

    def test_repr_names_the_reader(self):
        self.assertEqual(repr(self.reader), "<PlaintextReader plaintext>")
        self.assertEqual(self.reader.census_label, "plaintext")


class ColumnInTransitionTests(FreshKeyRingMixin, TestCase):
    """A model field in DATA_ENCRYPTION_LEGACY_COLUMNS reads a plaintext value through it."""

    def write_raw(self, pk, column, value):
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Patient._meta.db_table} SET {column} = %s WHERE id = %s", [value, pk]
            )

    def test_the_field_reads_its_columns_plaintext(self):
        patient = Patient.objects.create(name="p")
        sqlite = connection.vendor == "sqlite"
        self.write_raw(patient.pk, "visits", 12 if sqlite else b"12")
        self.write_raw(patient.pk, "notes", "plain notes" if sqlite else b"plain notes")
        legacy = {
            "data_encryption_tests.Patient.visits": "plaintext",
            "data_encryption_tests.Patient.notes": "plaintext",
        }
        with override_settings(DATA_ENCRYPTION_LEGACY_COLUMNS=legacy):
            patient.refresh_from_db()
            self.assertEqual((patient.visits, patient.notes), (12, "plain notes"))
