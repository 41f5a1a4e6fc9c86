"""Tests of ``data_encryption.fields``: every encrypted field type, through every ORM path.

Each round trip ends in two checks: Python sees the plaintext again, and the column itself
(read with a raw cursor, below the ORM) holds an envelope under the primary data key, never the
plaintext.
"""

import datetime
import ipaddress
import json
import uuid
import warnings
from decimal import Decimal
from io import StringIO
from zoneinfo import ZoneInfo

from django import forms
from django.core import checks
from django.core.exceptions import FieldError, ImproperlyConfigured, ValidationError
from django.core.management import call_command
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, models, transaction
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.graph import MigrationGraph
from django.db.migrations.questioner import MigrationQuestioner
from django.db.migrations.state import ModelState, ProjectState
from django.db.models import Case, F, Q, Subquery, Value, When
from django.db.models.functions import Cast, Now
from django.test import SimpleTestCase, TestCase, override_settings
from django.test.utils import isolate_apps
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from data_encryption import fields
from data_encryption.encryptor import open_value, seal
from data_encryption.envelope import key_id_of
from data_encryption.exceptions import DecryptionError, EncryptedLookupError
from data_encryption.fields import ENCRYPTED_FIELD_TYPES
from data_encryption.keys import reset_key_ring
from data_encryption.models import DataKey, KeyState
from data_encryption.tests.testapp.models import Note, Patient

UTC = datetime.UTC
ENVELOPE_PREFIX = b"\xffDE\x02"  # field values are bound to their column (version 2)

# One value of every encrypted field of Patient, and a second, different set for updates.
SAMPLE = {
    "notes": "Allergic to penicillin. Ünïcødé ✓ and a NUL \x00 byte",
    "code": "A-123",
    "email": "ada@example.com",
    "visits": 42,
    "big": 2**40 + 7,
    "balance": Decimal("1234.50"),
    "score": 0.1 + 0.2,
    "active": True,
    "birth_date": datetime.date(1990, 5, 17),
    "seen_at": datetime.datetime(2024, 3, 5, 13, 30, 15, 123456, tzinfo=UTC),
    "profile": {"blood": "O+", "allergies": ["penicillin"], "nested": {"level": 2, "ok": True}},
    "photo": b"\x89PNG\r\n\x1a\n\x00\xff",
    "homepage": "https://example.com/ada?tab=visits#latest",
    "slug": "ada-lovelace_1815",
    "room": -12,
    "steps": 2**31 - 1,
    "age": 36,
    "lifetime_steps": 2**40 + 9,
    "wakes_at": datetime.time(7, 30, 15, 123000),
    "stay": datetime.timedelta(days=3, hours=4, microseconds=5),
    "record_uuid": uuid.UUID("6f1c1a4e-9d3b-4c55-8a9e-2b7d51f0c3aa"),
    "last_ip": "192.0.2.17",
}
OTHER = {
    "notes": "Second visit",
    "code": "B-9",
    "email": "grace@example.org",
    "visits": -7,
    "big": -(2**62),
    "balance": Decimal("-0.05"),
    "score": -1.5e-300,
    "active": False,
    "birth_date": datetime.date(2001, 12, 31),
    "seen_at": datetime.datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
    "profile": ["a", 1, None, {"b": [True, False]}],
    "photo": b"",
    "homepage": "http://[2001:db8::1]:8080/",
    "slug": "b",
    "room": 32767,
    "steps": 1,
    "age": 32767,
    "lifetime_steps": 2**63 - 1,
    "wakes_at": datetime.time(23, 59, 59, 999999),
    "stay": datetime.timedelta(days=-1, seconds=1),
    "record_uuid": uuid.UUID("00000000-0000-4000-8000-000000000001"),
    "last_ip": "2001:db8::ff00:42:8329",
}
# Values a careless ``if value:`` would confuse with NULL.
FALSY = {
    "notes": "",
    "code": "",
    "email": "",
    "visits": 0,
    "big": 0,
    "balance": Decimal("0.00"),
    "score": 0.0,
    "active": False,
    "birth_date": datetime.date(1, 1, 1),
    "seen_at": datetime.datetime(1970, 1, 1, tzinfo=UTC),
    "profile": {},
    "photo": b"",
    "homepage": "",
    "slug": "",
    "room": 0,
    "steps": 0,
    "age": 0,
    "lifetime_steps": 0,
    "wakes_at": datetime.time(0, 0),
    "stay": datetime.timedelta(0),
    "record_uuid": uuid.UUID(int=0),
    "last_ip": "0.0.0.0",
}
ENCRYPTED_FIELDS = tuple(SAMPLE)


def raw_column(model, pk, field_name):
    """The stored bytes of one column, read below the ORM (no field conversion)."""
    field = model._meta.get_field(field_name)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {quote(field.column)} FROM {quote(model._meta.db_table)} "
            f"WHERE {quote(model._meta.pk.column)} = %s",
            [pk],
        )
        (value,) = cursor.fetchone()
    return None if value is None else bytes(value)


def write_raw_column(model, pk, field_name, value):
    field = model._meta.get_field(field_name)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(model._meta.db_table)} SET {quote(field.column)} = %s "
            f"WHERE {quote(model._meta.pk.column)} = %s",
            [value, pk],
        )


def open_column(model, pk, field_name):
    """The plaintext bytes of one stored column, opened in the field's context."""
    field = model._meta.get_field(field_name)
    return open_value(raw_column(model, pk, field_name), field.binding_context)


def primary_key_id():
    return DataKey.objects.get(state=KeyState.PRIMARY).key_id


class EncryptedFieldTestCase(TestCase):
    """Starts every test with an empty key-ring cache: a key a previous test made was rolled back
    with its transaction."""

    def setUp(self):
        reset_key_ring()
        self.addCleanup(reset_key_ring)

    def assertDecrypted(self, pk, expected):
        """The row ``pk`` of Patient reads back exactly ``expected``, types included."""
        patient = Patient.objects.get(pk=pk)
        actual = {name: getattr(patient, name) for name in expected}
        self.assertEqual(actual, expected)
        self.assertEqual(
            {name: type(value) for name, value in actual.items()},
            {name: type(value) for name, value in expected.items()},
        )

    def assertEncryptedAtRest(self, pk, names=ENCRYPTED_FIELDS):
        """Every column in ``names`` of row ``pk`` is an envelope under the primary data key."""
        key_id = primary_key_id()
        for name in names:
            with self.subTest(field=name):
                raw = raw_column(Patient, pk, name)
                self.assertEqual(raw[:4], ENVELOPE_PREFIX)
                self.assertEqual(key_id_of(raw), key_id)


class RoundTripTests(EncryptedFieldTestCase):
    """Every ORM write path stores ciphertext, and every read path returns the plaintext."""

    def test_save_and_refresh_from_db(self):
        patient = Patient(name="Ada", **SAMPLE)
        patient.save()
        patient.refresh_from_db()
        self.assertEqual({name: getattr(patient, name) for name in SAMPLE}, SAMPLE)
        self.assertDecrypted(patient.pk, SAMPLE)
        self.assertEncryptedAtRest(patient.pk)

    def test_save_again_updates_the_row(self):
        patient = Patient.objects.create(name="Ada", **SAMPLE)
        for name, value in OTHER.items():
            setattr(patient, name, value)
        patient.save()
        self.assertDecrypted(patient.pk, OTHER)
        self.assertEncryptedAtRest(patient.pk)

    def test_save_with_update_fields(self):
        patient = Patient.objects.create(name="Ada", **SAMPLE)
        patient.visits = 43
        patient.notes = "changed"
        patient.save(update_fields=["visits"])
        self.assertDecrypted(patient.pk, {**SAMPLE, "visits": 43})

    def test_falsy_values_are_not_null(self):
        patient = Patient.objects.create(name="Zero", **FALSY)
        self.assertDecrypted(patient.pk, FALSY)
        self.assertEncryptedAtRest(patient.pk)

    def test_bulk_create(self):
        created = Patient.objects.bulk_create(
            [Patient(name="Ada", **SAMPLE), Patient(name="Grace", **OTHER)]
        )
        ada = Patient.objects.get(name="Ada")
        grace = Patient.objects.get(name="Grace")
        self.assertEqual(len(created), 2)
        self.assertDecrypted(ada.pk, SAMPLE)
        self.assertDecrypted(grace.pk, OTHER)
        self.assertEncryptedAtRest(ada.pk)
        self.assertEncryptedAtRest(grace.pk)

    def test_bulk_update(self):
        ada = Patient.objects.create(name="Ada", **SAMPLE)
        grace = Patient.objects.create(name="Grace", **OTHER)
        for name in ENCRYPTED_FIELDS:
            setattr(ada, name, OTHER[name])
            setattr(grace, name, SAMPLE[name])
        updated = Patient.objects.bulk_update([ada, grace], list(ENCRYPTED_FIELDS))
        self.assertEqual(updated, 2)
        self.assertDecrypted(ada.pk, OTHER)
        self.assertDecrypted(grace.pk, SAMPLE)
        self.assertEncryptedAtRest(ada.pk)
        self.assertEncryptedAtRest(grace.pk)

    def test_bulk_update_to_null(self):
        ada = Patient.objects.create(name="Ada", **SAMPLE)
        for name in ENCRYPTED_FIELDS:
            setattr(ada, name, None)
        Patient.objects.bulk_update([ada], list(ENCRYPTED_FIELDS))
        self.assertDecrypted(ada.pk, dict.fromkeys(ENCRYPTED_FIELDS))

    def test_update_or_create_creates(self):
        patient, created = Patient.objects.update_or_create(name="Ada", defaults=SAMPLE)
        self.assertTrue(created)
        self.assertDecrypted(patient.pk, SAMPLE)
        self.assertEncryptedAtRest(patient.pk)

    def test_update_or_create_updates(self):
        existing = Patient.objects.create(name="Ada", **SAMPLE)
        patient, created = Patient.objects.update_or_create(name="Ada", defaults=OTHER)
        self.assertFalse(created)
        self.assertEqual(patient.pk, existing.pk)
        self.assertDecrypted(existing.pk, OTHER)
        self.assertEncryptedAtRest(existing.pk)

    def test_queryset_update(self):
        ada = Patient.objects.create(name="Ada", **SAMPLE)
        Patient.objects.create(name="Grace", **SAMPLE)
        count = Patient.objects.filter(name="Ada").update(**OTHER)
        self.assertEqual(count, 1)
        self.assertDecrypted(ada.pk, OTHER)
        self.assertDecrypted(Patient.objects.get(name="Grace").pk, SAMPLE)
        self.assertEncryptedAtRest(ada.pk)

    def test_queryset_update_to_null(self):
        ada = Patient.objects.create(name="Ada", **SAMPLE)
        Patient.objects.update(**dict.fromkeys(ENCRYPTED_FIELDS))
        self.assertDecrypted(ada.pk, dict.fromkeys(ENCRYPTED_FIELDS))
        for name in ENCRYPTED_FIELDS:
            self.assertIsNone(raw_column(Patient, ada.pk, name))

    def test_values(self):
        Patient.objects.create(name="Ada", **SAMPLE)
        row = Patient.objects.values("name", *ENCRYPTED_FIELDS).get()
        self.assertEqual(row, {"name": "Ada", **SAMPLE})

    def test_values_list(self):
        Patient.objects.create(name="Ada", **SAMPLE)
        Patient.objects.create(name="Grace", **OTHER)
        rows = list(Patient.objects.order_by("name").values_list(*ENCRYPTED_FIELDS))
        self.assertEqual(rows, [tuple(SAMPLE.values()), tuple(OTHER.values())])

    def test_values_list_flat(self):
        Patient.objects.create(name="Ada", **SAMPLE)
        Patient.objects.create(name="Grace", **OTHER)
        flat = list(Patient.objects.order_by("name").values_list("profile", flat=True))
        self.assertEqual(flat, [SAMPLE["profile"], OTHER["profile"]])

    def test_only_and_defer(self):
        patient = Patient.objects.create(name="Ada", **SAMPLE)
        self.assertEqual(Patient.objects.only("notes").get(pk=patient.pk).notes, SAMPLE["notes"])
        deferred = Patient.objects.defer("notes").get(pk=patient.pk)
        self.assertEqual(deferred.notes, SAMPLE["notes"])  # loaded on access, decrypted

    def test_string_input_is_converted_like_the_plain_field(self):
        # What a form or a fixture hands over: strings, converted by the field before encrypting.
        patient = Patient.objects.create(
            name="Strings",
            visits="42",
            big="1099511627783",
            balance="1234.5",
            score="0.5",
            active="False",
            birth_date="1990-05-17",
            seen_at="2024-03-05T13:30:15.123456+00:00",
            room="-12",
            steps="7",
            wakes_at="07:30:15.123",
            stay="3 04:00:00.000005",
            record_uuid="6F1C1A4E9D3B4C558A9E2B7D51F0C3AA",
            last_ip="2001:0DB8:0000:0000:0000:FF00:0042:8329",
        )
        self.assertDecrypted(
            patient.pk,
            {
                "visits": 42,
                "big": 2**40 + 7,
                "balance": Decimal("1234.50"),
                "score": 0.5,
                "active": False,
                "birth_date": datetime.date(1990, 5, 17),
                "seen_at": SAMPLE["seen_at"],
                "room": -12,
                "steps": 7,
                "wakes_at": SAMPLE["wakes_at"],
                "stay": SAMPLE["stay"],
                "record_uuid": SAMPLE["record_uuid"],
                "last_ip": OTHER["last_ip"],
            },
        )

    def test_serializers_round_trip(self):
        from django.core import serializers

        # DjangoJSONEncoder keeps milliseconds only, for plain fields too.
        values = {**SAMPLE, "seen_at": SAMPLE["seen_at"].replace(microsecond=123000)}
        patient = Patient.objects.create(name="Ada", **values)
        dumped = serializers.serialize("json", [patient])
        self.assertEqual(json.loads(dumped)[0]["fields"]["notes"], SAMPLE["notes"])
        Patient.objects.all().delete()
        for restored in serializers.deserialize("json", dumped):
            restored.save()
        self.assertDecrypted(patient.pk, values)
        self.assertEncryptedAtRest(patient.pk)


class CiphertextAtRestTests(EncryptedFieldTestCase):
    """The column holds a binary envelope under the primary data key, never the plaintext."""

    def test_every_column_is_an_envelope_without_the_plaintext(self):
        patient = Patient.objects.create(name="Ada", **SAMPLE)
        plaintexts = {
            "notes": SAMPLE["notes"].encode(),
            "code": b"A-123",
            "email": b"ada@example.com",
            "visits": b"42",
            "big": str(SAMPLE["big"]).encode(),
            "balance": b"1234.50",
            "score": repr(SAMPLE["score"]).encode(),
            "birth_date": b"1990-05-17",
            "seen_at": b"2024-03-05",
            "profile": b"penicillin",
            "photo": SAMPLE["photo"],
            "homepage": b"example.com",
            "slug": b"ada-lovelace",
            "steps": b"2147483647",
            "lifetime_steps": b"1099511627785",
            "wakes_at": b"07:30",
            "stay": b"273600000005",
            "record_uuid": b"6f1c1a4e",
            "last_ip": b"192.0.2.17",
        }
        for name, plaintext in plaintexts.items():
            with self.subTest(field=name):
                raw = raw_column(Patient, patient.pk, name)
                self.assertTrue(raw.startswith(ENVELOPE_PREFIX))
                self.assertNotIn(plaintext, raw)

    def test_key_id_is_the_primary_data_key(self):
        patient = Patient.objects.create(name="Ada", **SAMPLE)
        self.assertEqual(
            {name: key_id_of(raw_column(Patient, patient.pk, name)) for name in ENCRYPTED_FIELDS},
            dict.fromkeys(ENCRYPTED_FIELDS, primary_key_id()),
        )

    def test_stored_plaintext_is_the_canonical_form(self):
        # The bytes under the envelope are what docs/format.md promises for each type.
        patient = Patient.objects.create(
            name="Ada",
            **{
                **SAMPLE,
                "seen_at": datetime.datetime(2024, 3, 5, 14, 30, tzinfo=ZoneInfo("Europe/Paris")),
            },
        )
        opened = {name: open_column(Patient, patient.pk, name) for name in ENCRYPTED_FIELDS}
        self.assertEqual(
            opened,
            {
                "notes": SAMPLE["notes"].encode(),
                "code": b"A-123",
                "email": b"ada@example.com",
                "visits": b"42",
                "big": b"1099511627783",
                "balance": b"1234.50",
                "score": b"0.30000000000000004",
                "active": b"1",
                "birth_date": b"1990-05-17",
                "seen_at": b"2024-03-05T13:30:00+00:00",
                "profile": json.dumps(SAMPLE["profile"]).encode(),
                "photo": SAMPLE["photo"],
                "homepage": b"https://example.com/ada?tab=visits#latest",
                "slug": b"ada-lovelace_1815",
                "room": b"-12",
                "steps": b"2147483647",
                "age": b"36",
                "lifetime_steps": b"1099511627785",
                "wakes_at": b"07:30:15.123000",
                "stay": b"273600000005",
                "record_uuid": b"6f1c1a4e-9d3b-4c55-8a9e-2b7d51f0c3aa",
                "last_ip": b"192.0.2.17",
            },
        )

    def test_same_value_encrypts_differently_each_time(self):
        first = Patient.objects.create(name="A", notes="same")
        second = Patient.objects.create(name="B", notes="same")
        self.assertNotEqual(
            raw_column(Patient, first.pk, "notes"), raw_column(Patient, second.pk, "notes")
        )

    def test_tampered_column_raises_decryption_error(self):
        patient = Patient.objects.create(name="Ada", **SAMPLE)
        raw = bytearray(raw_column(Patient, patient.pk, "notes"))
        raw[-1] ^= 0x01
        write_raw_column(Patient, patient.pk, "notes", bytes(raw))
        with self.assertRaises(DecryptionError):
            Patient.objects.get(pk=patient.pk)

    def test_plaintext_in_the_column_raises_decryption_error(self):
        patient = Patient.objects.create(name="Ada")
        write_raw_column(Patient, patient.pk, "notes", b"never encrypted")
        with self.assertRaisesMessage(
            DecryptionError,
            "A value of Patient.notes is not encrypted (it is plaintext or another library's "
            "ciphertext). If the column held such values before it became encrypted, list it in "
            "DATA_ENCRYPTION_LEGACY_COLUMNS",
        ):
            Patient.objects.get(pk=patient.pk)


class ExpressionWriteTests(EncryptedFieldTestCase):
    """Expressions written to an encrypted column must produce ciphertext; any other is refused
    rather than stored as plaintext (or stringified and encrypted)."""

    def expected_message(self, field, yields):
        return (
            f"Patient.{field} is encrypted, so it cannot be set to an expression that yields a "
            f"plain {yields}: the database would store the result unencrypted. Assign a Python "
            "value, or an expression whose output_field is an encrypted field, such as "
            "Value(value, output_field=...)."
        )

    def test_f_of_another_encrypted_field_is_refused(self):
        # Its ciphertext is bound to its own column, so the copy would not decrypt here.
        patient = Patient.objects.create(name="Ada", notes="copied", code="A-1")
        with (
            self.assertRaisesMessage(
                FieldError,
                "Patient.code is encrypted and its values are bound to their column, so it cannot "
                "be set to the ciphertext of Patient.notes: the copy would not decrypt. Load the "
                "values and assign them in Python.",
            ),
            transaction.atomic(),
        ):
            Patient.objects.update(code=F("notes"))
        self.assertDecrypted(patient.pk, {"notes": "copied", "code": "A-1"})

    def test_f_of_the_same_field_is_accepted(self):
        patient = Patient.objects.create(name="Ada", notes="kept")
        Patient.objects.update(notes=F("notes"))
        self.assertDecrypted(patient.pk, {"notes": "kept"})

    def test_value_with_the_encrypted_output_field_is_encrypted(self):
        patient = Patient.objects.create(name="Ada")
        notes = Patient._meta.get_field("notes")
        Patient.objects.update(notes=Value("via Value", output_field=notes))
        self.assertDecrypted(patient.pk, {"notes": "via Value"})
        self.assertEqual(raw_column(Patient, patient.pk, "notes")[:4], ENVELOPE_PREFIX)

    def test_bulk_update_shape_is_accepted(self):
        # What bulk_update builds: Cast(Case(When(pk=..., then=Value(v, output_field=f)))).
        ada = Patient.objects.create(name="Ada", notes="old")
        notes = Patient._meta.get_field("notes")
        Patient.objects.update(
            notes=Cast(
                Case(When(pk=ada.pk, then=Value("new", output_field=notes)), output_field=notes),
                output_field=notes,
            )
        )
        self.assertDecrypted(ada.pk, {"notes": "new"})

    def test_subquery_of_an_encrypted_column_copies_the_ciphertext(self):
        source = Patient.objects.create(name="Source", notes="from elsewhere")
        target = Patient.objects.create(name="Target")
        Patient.objects.filter(pk=target.pk).update(
            notes=Subquery(Patient.objects.filter(pk=source.pk).values("notes")[:1])
        )
        self.assertDecrypted(target.pk, {"notes": "from elsewhere"})

    def test_null_value_is_allowed(self):
        patient = Patient.objects.create(name="Ada", notes="x")
        Patient.objects.update(notes=Value(None))
        self.assertIsNone(raw_column(Patient, patient.pk, "notes"))

    def test_f_of_a_plain_field_is_refused(self):
        patient = Patient.objects.create(name="Ada", notes="kept")
        with (
            self.assertRaisesMessage(FieldError, self.expected_message("notes", "CharField")),
            transaction.atomic(),
        ):
            Patient.objects.update(notes=F("name"))
        self.assertDecrypted(patient.pk, {"notes": "kept"})

    def test_plain_value_is_refused_without_quoting_it(self):
        Patient.objects.create(name="Ada")
        with (
            self.assertRaisesMessage(FieldError, self.expected_message("notes", "CharField")),
            transaction.atomic(),
        ):
            Patient.objects.update(notes=Value("secret-diagnosis"))
        with self.assertRaises(FieldError) as caught, transaction.atomic():
            Patient.objects.update(notes=Value("secret-diagnosis"))
        self.assertNotIn("secret-diagnosis", str(caught.exception))

    def test_plain_value_inside_an_encrypted_cast_or_case_is_refused(self):
        ada = Patient.objects.create(name="Ada", notes="kept")
        notes = Patient._meta.get_field("notes")
        shapes = {
            "Cast": Cast(Value("secret-diagnosis"), output_field=notes),
            "Case": Case(When(pk=ada.pk, then=Value("secret-diagnosis")), output_field=notes),
            "Case default": Case(
                When(pk=0, then=Value(None)), default=F("name"), output_field=notes
            ),
        }
        for shape, expression in shapes.items():
            with (
                self.subTest(shape=shape),
                self.assertRaisesMessage(FieldError, self.expected_message("notes", "CharField")),
                transaction.atomic(),
            ):
                Patient.objects.update(notes=expression)
        self.assertDecrypted(ada.pk, {"notes": "kept"})

    def test_arithmetic_on_ciphertext_is_refused(self):
        Patient.objects.create(name="Ada", visits=1)
        with (
            self.assertRaisesMessage(FieldError, self.expected_message("visits", "IntegerField")),
            transaction.atomic(),
        ):
            Patient.objects.update(visits=F("visits") + 1)

    def test_insert_of_a_plain_value_is_refused(self):
        with (
            self.assertRaisesMessage(FieldError, self.expected_message("notes", "CharField")),
            transaction.atomic(),
        ):
            Patient.objects.create(name="Ada", notes=Value("plain"))
        self.assertEqual(Patient.objects.count(), 0)

    def test_save_with_an_expression_attribute_is_refused(self):
        patient = Patient.objects.create(name="Ada", visits=1)
        patient.visits = F("visits") + 1
        with (
            self.assertRaisesMessage(FieldError, self.expected_message("visits", "IntegerField")),
            transaction.atomic(),
        ):
            patient.save()
        self.assertDecrypted(patient.pk, {"visits": 1})


class WrongFieldTypeTests(EncryptedFieldTestCase):
    """A value that decrypts but was written by another field type is refused, not guessed at."""

    # (field the value was written by, its value, field that reads it)
    CASES = [
        ("notes", "hello", "visits"),
        ("notes", "hello", "big"),
        ("notes", "hello", "balance"),
        ("notes", "hello", "score"),
        ("notes", "hello", "active"),
        ("notes", "hello", "birth_date"),
        ("notes", "hello", "seen_at"),
        ("notes", "hello", "profile"),
        ("visits", 42, "active"),
        ("birth_date", datetime.date(2020, 1, 2), "visits"),
        ("seen_at", SAMPLE["seen_at"], "birth_date"),
        ("photo", b"\xff\xfe", "notes"),
        ("notes", "hello", "room"),
        ("notes", "hello", "steps"),
        ("notes", "hello", "age"),
        ("notes", "hello", "lifetime_steps"),
        ("notes", "hello", "wakes_at"),
        ("notes", "hello", "stay"),
        ("notes", "hello", "record_uuid"),
        ("notes", "hello", "last_ip"),
        ("seen_at", SAMPLE["seen_at"], "wakes_at"),  # an ISO date-time is not a time
        ("notes", "07:30:00+02:00", "wakes_at"),  # this field never writes an offset
        ("balance", Decimal("1.50"), "stay"),
        ("notes", "6f1c1a4e9d3b4c558a9e2b7d51f0c3aa", "record_uuid"),  # not the hyphenated form
        ("notes", "192.0.2.300", "last_ip"),
        ("photo", b"\xff\xfe", "slug"),
    ]

    def test_value_of_another_type_raises_decryption_error(self):
        for source, value, target in self.CASES:
            with self.subTest(source=source, target=target):
                patient = Patient.objects.create(name="Ada", **{source: value})
                target_field = Patient._meta.get_field(target)
                plaintext = open_column(Patient, patient.pk, source)
                write_raw_column(
                    Patient, patient.pk, target, seal(plaintext, target_field.binding_context)
                )
                expected = (
                    f"A value of Patient.{target} decrypted, but is not a valid "
                    f"{type(target_field).__name__} value; it was written by a different field "
                    "type."
                )
                with self.assertRaisesMessage(DecryptionError, expected):
                    Patient.objects.get(pk=patient.pk)
                with self.assertRaisesMessage(DecryptionError, expected):
                    Patient.objects.values_list(target, flat=True).get(pk=patient.pk)

    def test_message_does_not_carry_the_plaintext(self):
        patient = Patient.objects.create(name="Ada", notes="secret-diagnosis")
        visits = Patient._meta.get_field("visits").binding_context
        write_raw_column(
            Patient, patient.pk, "visits", seal(open_column(Patient, patient.pk, "notes"), visits)
        )
        with self.assertRaises(DecryptionError) as caught:
            Patient.objects.get(pk=patient.pk)
        self.assertNotIn("secret-diagnosis", str(caught.exception))
        self.assertIsNone(caught.exception.__cause__)


class NullTests(EncryptedFieldTestCase):
    """``None`` is SQL NULL for every field; ``=None`` and ``isnull`` are the lookups that work."""

    def test_every_field_stores_none_as_sql_null(self):
        patient = Patient.objects.create(name="Empty")
        for name in ENCRYPTED_FIELDS:
            with self.subTest(field=name):
                self.assertIsNone(raw_column(Patient, patient.pk, name))
        self.assertDecrypted(patient.pk, dict.fromkeys(ENCRYPTED_FIELDS))
        self.assertEqual(
            Patient.objects.values(*ENCRYPTED_FIELDS).get(),
            dict.fromkeys(ENCRYPTED_FIELDS),
        )

    def test_filter_equals_none(self):
        empty = Patient.objects.create(name="Empty")
        full = Patient.objects.create(name="Full", **SAMPLE)
        for name in ENCRYPTED_FIELDS:
            with self.subTest(field=name):
                self.assertEqual(list(Patient.objects.filter(**{name: None})), [empty])
                self.assertEqual(list(Patient.objects.exclude(**{name: None})), [full])

    def test_isnull(self):
        empty = Patient.objects.create(name="Empty")
        full = Patient.objects.create(name="Full", **SAMPLE)
        for name in ENCRYPTED_FIELDS:
            with self.subTest(field=name):
                self.assertEqual(list(Patient.objects.filter(**{f"{name}__isnull": True})), [empty])
                self.assertEqual(list(Patient.objects.filter(**{f"{name}__isnull": False})), [full])
                self.assertEqual(
                    list(Patient.objects.filter(Q(**{f"{name}__isnull": True}) | Q(name="Full"))),
                    [empty, full],
                )

    def test_setting_a_value_back_to_none(self):
        patient = Patient.objects.create(name="Ada", **SAMPLE)
        for name in ENCRYPTED_FIELDS:
            setattr(patient, name, None)
        patient.save()
        self.assertDecrypted(patient.pk, dict.fromkeys(ENCRYPTED_FIELDS))

    def test_non_null_field_refuses_none(self):
        with self.assertRaises(IntegrityError), transaction.atomic():
            Note.objects.create(title="t", body=None)

    def test_non_null_field_default_is_encrypted(self):
        note = Note.objects.create(title="t")
        note.refresh_from_db()
        self.assertEqual(note.body, "")
        raw = raw_column(Note, note.pk, "body")
        self.assertEqual(raw[:4], ENVELOPE_PREFIX)
        self.assertEqual(open_column(Note, note.pk, "body"), b"")

    def test_full_clean_refuses_none_in_non_null_field(self):
        with self.assertRaisesMessage(ValidationError, "This field cannot be null."):
            Note(title="t", body=None).full_clean()


class CharMaxLengthTests(EncryptedFieldTestCase):
    """``max_length`` counts the characters of the plaintext, never the longer ciphertext."""

    def test_full_clean_accepts_plaintext_at_max_length(self):
        patient = Patient(name="Ada", code="ABCDEFGHIJ")
        patient.full_clean()  # 10 characters; the envelope is far longer
        patient.save()
        self.assertDecrypted(patient.pk, {"code": "ABCDEFGHIJ"})
        self.assertGreater(len(raw_column(Patient, patient.pk, "code")), 10)

    def test_full_clean_counts_characters_not_utf8_bytes(self):
        Patient(name="Ada", code="é" * 10).full_clean()  # 20 bytes of UTF-8

    def test_full_clean_refuses_plaintext_over_max_length(self):
        with self.assertRaises(ValidationError) as caught:
            Patient(name="Ada", code="ABCDEFGHIJK").full_clean()
        self.assertEqual(
            caught.exception.message_dict,
            {"code": ["Ensure this value has at most 10 characters (it has 11)."]},
        )

    def test_save_refuses_plaintext_over_max_length(self):
        with (
            self.assertRaisesMessage(
                ValueError,
                "Patient.code holds at most 10 characters; this value has 11. Validate with "
                "full_clean() or shorten it.",
            ),
            transaction.atomic(),
        ):
            Patient.objects.create(name="Ada", code="ABCDEFGHIJK")
        self.assertEqual(Patient.objects.count(), 0)

    def test_update_refuses_plaintext_over_max_length(self):
        patient = Patient.objects.create(name="Ada", code="short")
        with (
            self.assertRaisesMessage(ValueError, "Patient.code holds at most 10 characters"),
            transaction.atomic(),
        ):
            Patient.objects.update(code="X" * 11)
        self.assertDecrypted(patient.pk, {"code": "short"})

    def test_bulk_create_refuses_plaintext_over_max_length(self):
        with (
            self.assertRaisesMessage(ValueError, "Patient.code holds at most 10 characters"),
            transaction.atomic(),
        ):
            Patient.objects.bulk_create([Patient(name="Ada", code="X" * 11)])
        self.assertEqual(Patient.objects.count(), 0)

    def test_email_max_length_is_checked_on_plaintext(self):
        local = "a" * 64
        address = f"{local}@{'b' * 63}.{'c' * 63}.{'d' * 57}.com"  # 254 characters
        self.assertEqual(len(address), 254)
        Patient(name="Ada", email=address).full_clean()
        with (
            self.assertRaisesMessage(ValueError, "Patient.email holds at most 254 characters"),
            transaction.atomic(),
        ):
            Patient.objects.create(name="Ada", email=address + "m")

    def test_error_does_not_carry_the_plaintext(self):
        with self.assertRaises(ValueError) as caught, transaction.atomic():
            Patient.objects.create(name="Ada", code="TOPSECRET-1")
        self.assertNotIn("TOPSECRET", str(caught.exception))


class ValidationTests(EncryptedFieldTestCase):
    """Model validation works on the plaintext, with the plain field's ranges and messages."""

    def assertInvalid(self, values, expected_errors):
        with self.assertRaises(ValidationError) as caught:
            Patient(name="Ada", **values).full_clean()
        self.assertEqual(caught.exception.message_dict, expected_errors)

    def test_valid_sample_passes(self):
        Patient(name="Ada", **SAMPLE).full_clean()
        Patient(name="Ada", **OTHER).full_clean()

    def test_integer_range_is_32_bit(self):
        Patient(name="Ada", visits=2**31 - 1).full_clean()
        Patient(name="Ada", visits=-(2**31)).full_clean()
        self.assertInvalid(
            {"visits": 2**31},
            {"visits": ["Ensure this value is less than or equal to 2147483647."]},
        )
        self.assertInvalid(
            {"visits": -(2**31) - 1},
            {"visits": ["Ensure this value is greater than or equal to -2147483648."]},
        )

    def test_big_integer_range_is_64_bit(self):
        Patient(name="Ada", big=2**63 - 1).full_clean()
        self.assertInvalid(
            {"big": 2**63},
            {"big": ["Ensure this value is less than or equal to 9223372036854775807."]},
        )

    def test_decimal_digits(self):
        self.assertInvalid(
            {"balance": Decimal("123456789.12")},
            {"balance": ["Ensure that there are no more than 10 digits in total."]},
        )
        self.assertInvalid(
            {"balance": Decimal("1.234")},
            {"balance": ["Ensure that there are no more than 2 decimal places."]},
        )

    def test_small_integer_range_is_16_bit(self):
        Patient(name="Ada", room=32767).full_clean()
        Patient(name="Ada", room=-32768).full_clean()
        self.assertInvalid(
            {"room": 32768}, {"room": ["Ensure this value is less than or equal to 32767."]}
        )
        self.assertInvalid(
            {"room": -32769}, {"room": ["Ensure this value is greater than or equal to -32768."]}
        )

    def test_positive_fields_refuse_negatives_and_keep_their_upper_bound(self):
        bounds = {"steps": 2**31 - 1, "age": 32767, "lifetime_steps": 2**63 - 1}
        for name, high in bounds.items():
            with self.subTest(field=name):
                Patient(name="Ada", **{name: 0}).full_clean()
                Patient(name="Ada", **{name: high}).full_clean()
                self.assertInvalid(
                    {name: -1}, {name: ["Ensure this value is greater than or equal to 0."]}
                )
                self.assertInvalid(
                    {name: high + 1},
                    {name: [f"Ensure this value is less than or equal to {high}."]},
                )

    def test_url_and_slug_formats(self):
        self.assertInvalid(
            {"homepage": "not a url", "slug": "not a slug!"},
            {
                "homepage": ["Enter a valid URL."],
                "slug": [
                    "Enter a valid “slug” consisting of letters, numbers, underscores or hyphens."
                ],
            },
        )

    def test_url_and_slug_default_max_lengths_count_plaintext(self):
        self.assertEqual(Patient._meta.get_field("homepage").max_length, 200)
        self.assertEqual(Patient._meta.get_field("slug").max_length, 50)
        self.assertInvalid(
            {"slug": "s" * 51},
            {"slug": ["Ensure this value has at most 50 characters (it has 51)."]},
        )

    def test_ip_address_format(self):
        self.assertInvalid(
            {"last_ip": "192.0.2.300"}, {"last_ip": ["Enter a valid IPv4 or IPv6 address."]}
        )

    def test_email_format(self):
        self.assertInvalid({"email": "not-an-email"}, {"email": ["Enter a valid email address."]})

    def test_json_must_be_serialisable(self):
        self.assertInvalid(
            {"profile": {"when": object()}}, {"profile": ["Value must be valid JSON."]}
        )

    def test_extreme_values_round_trip(self):
        values = {
            "visits": 2**31 - 1,
            "big": -(2**63),
            "balance": Decimal("99999999.99"),
            "score": 1.7976931348623157e308,
            "birth_date": datetime.date(9999, 12, 31),
            "seen_at": datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            "room": -32768,
            "steps": 2**31 - 1,
            "age": 32767,
            "lifetime_steps": 2**63 - 1,
            "wakes_at": datetime.time(23, 59, 59, 999999),
            "stay": datetime.timedelta.max,
            "record_uuid": uuid.UUID(int=2**128 - 1),
            "last_ip": "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        }
        patient = Patient.objects.create(name="Edge", **values)
        self.assertDecrypted(patient.pk, values)
        values = {"stay": datetime.timedelta.min, "wakes_at": datetime.time(0, 0, 0, 1)}
        patient = Patient.objects.create(name="Edge", **values)
        self.assertDecrypted(patient.pk, values)


class NumericFieldTests(EncryptedFieldTestCase):
    """Decimals keep their scale, floats their exact bits, booleans their three states."""

    def test_decimal_is_quantized_to_decimal_places(self):
        patient = Patient.objects.create(name="Ada", balance=Decimal("12.5"))
        patient.refresh_from_db()
        self.assertEqual(str(patient.balance), "12.50")

    def test_float_round_trips_exactly(self):
        for value in (0.1 + 0.2, 1e-310, -0.0, float("inf"), 123456789.123456789):
            with self.subTest(value=value):
                patient = Patient.objects.create(name="Ada", score=value)
                patient.refresh_from_db()
                self.assertEqual(repr(patient.score), repr(value))

    def test_boolean_true_false_and_null_are_distinct(self):
        for value in (True, False, None):
            with self.subTest(value=value):
                patient = Patient.objects.create(name="Ada", active=value)
                patient.refresh_from_db()
                self.assertIs(patient.active, value)

    def test_decimal_rounds_extra_places_like_the_plain_field(self):
        patient = Patient.objects.create(name="Ada", balance=Decimal("1.005"))
        patient.refresh_from_db()
        self.assertEqual(str(patient.balance), "1.00")

    def test_save_refuses_a_decimal_too_wide_for_max_digits(self):
        with (
            self.assertRaisesMessage(
                ValueError,
                "Patient.balance holds at most 10 digits, 2 of them after the decimal point; "
                "this value has more before it. Validate with full_clean() or make the field "
                "wider.",
            ),
            transaction.atomic(),
        ):
            Patient.objects.create(name="Ada", balance=Decimal("123456789012"))
        self.assertEqual(Patient.objects.count(), 0)


class DateTimeFieldTests(EncryptedFieldTestCase):
    """Aware datetimes are stored in UTC and come back aware, as with the plain field."""

    def test_aware_value_in_another_zone_comes_back_in_utc(self):
        paris = datetime.datetime(2024, 7, 1, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))
        patient = Patient.objects.create(name="Ada", seen_at=paris)
        patient.refresh_from_db()
        self.assertEqual(patient.seen_at, paris)
        self.assertEqual(patient.seen_at, datetime.datetime(2024, 7, 1, 7, 0, tzinfo=UTC))
        self.assertEqual(patient.seen_at.utcoffset(), datetime.timedelta(0))

    @override_settings(TIME_ZONE="America/Chicago")
    def test_naive_value_is_made_aware_in_the_default_zone_with_a_warning(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            patient = Patient.objects.create(
                name="Ada", seen_at=datetime.datetime(2024, 1, 15, 8, 0)
            )
        self.assertIn("received a naive datetime", str(caught[0].message))
        patient.refresh_from_db()
        self.assertEqual(patient.seen_at, datetime.datetime(2024, 1, 15, 14, 0, tzinfo=UTC))

    @override_settings(USE_TZ=False)
    def test_without_use_tz_naive_values_round_trip(self):
        naive = datetime.datetime(2024, 1, 15, 8, 0, 30)
        patient = Patient.objects.create(name="Ada", seen_at=naive)
        patient.refresh_from_db()
        self.assertEqual(patient.seen_at, naive)
        self.assertIsNone(patient.seen_at.tzinfo)

    @override_settings(USE_TZ=False, TIME_ZONE="America/Chicago")
    def test_without_use_tz_aware_values_come_back_naive_in_the_default_zone(self):
        aware = datetime.datetime(2024, 1, 15, 14, 0, tzinfo=UTC)
        patient = Patient.objects.create(name="Ada", seen_at=aware)
        patient.refresh_from_db()
        self.assertEqual(patient.seen_at, datetime.datetime(2024, 1, 15, 8, 0))

    def test_value_written_without_use_tz_reads_back_aware(self):
        # A project that turns USE_TZ on keeps reading the rows it wrote before: they hold
        # wall-clock times in TIME_ZONE, and come back aware like every other value.
        with self.settings(USE_TZ=False, TIME_ZONE="America/Chicago"):
            patient = Patient.objects.create(
                name="Ada", seen_at=datetime.datetime(2024, 1, 15, 8, 0)
            )
        with self.settings(TIME_ZONE="America/Chicago"):
            patient.refresh_from_db()
        self.assertEqual(patient.seen_at, datetime.datetime(2024, 1, 15, 14, 0, tzinfo=UTC))

    @override_settings(TIME_ZONE="Asia/Tokyo")
    def test_date_field_takes_the_local_date_of_an_aware_datetime(self):
        late_evening_utc = datetime.datetime(2024, 2, 29, 23, 30, tzinfo=UTC)
        patient = Patient.objects.create(name="Ada", birth_date=late_evening_utc)
        patient.refresh_from_db()
        self.assertEqual(patient.birth_date, datetime.date(2024, 3, 1))


class JSONFieldTests(EncryptedFieldTestCase):
    """Any JSON value round-trips; Python ``None`` is SQL NULL."""

    VALUES = [
        {"a": 1},
        [1, 2, 3],
        [],
        {},
        {"nested": {"list": [{"deep": [1, {"deeper": None}]}], "flag": False}},
        {"unicode": "日本語 ✓ émoji 🎉", "ключ": "значение"},
        "just a string",
        "",
        0,
        -12.75,
        True,
        False,
        [None],
    ]

    def test_values_round_trip(self):
        for value in self.VALUES:
            with self.subTest(value=value):
                patient = Patient.objects.create(name="Ada", profile=value)
                self.assertDecrypted(patient.pk, {"profile": value})
                self.assertEqual(
                    Patient.objects.values_list("profile", flat=True).get(pk=patient.pk), value
                )

    def test_none_is_sql_null(self):
        patient = Patient.objects.create(name="Ada", profile=None)
        self.assertIsNone(raw_column(Patient, patient.pk, "profile"))
        self.assertDecrypted(patient.pk, {"profile": None})
        self.assertEqual(list(Patient.objects.filter(profile=None)), [patient])

    def test_unicode_is_encrypted_not_stored(self):
        patient = Patient.objects.create(name="Ada", profile={"name": "Zoë"})
        raw = raw_column(Patient, patient.pk, "profile")
        self.assertNotIn("Zoë".encode(), raw)
        self.assertNotIn(b"Zo\\u00eb", raw)

    @isolate_apps("data_encryption.tests.testapp")
    def test_encoder_and_decoder(self):
        class Decoder(json.JSONDecoder):
            def __init__(self, **kwargs):
                super().__init__(object_hook=lambda d: {**d, "decoded": True}, **kwargs)

        field = fields.EncryptedJSONField(encoder=DjangoJSONEncoder, decoder=Decoder)
        plaintext = field.to_plaintext({"when": datetime.date(2024, 1, 2), "n": Decimal("1.5")})
        self.assertEqual(plaintext, b'{"when": "2024-01-02", "n": "1.5"}')
        self.assertEqual(
            field.from_plaintext(plaintext), {"when": "2024-01-02", "n": "1.5", "decoded": True}
        )

    def test_json_nested_past_the_recursion_limit_is_a_decryption_error(self):
        # security.md I5: an authentic value that json.loads cannot parse without recursing
        # past Python's limit raised RecursionError out of the query.
        patient = Patient.objects.create(name="Ada")
        deep = "[" * 200_000 + "]" * 200_000
        profile = Patient._meta.get_field("profile")
        write_raw_column(
            Patient, patient.pk, "profile", seal(deep.encode(), profile.binding_context)
        )
        with self.assertRaisesMessage(DecryptionError, "is not a valid EncryptedJSONField value"):
            Patient.objects.get(pk=patient.pk)

    def test_encoder_and_decoder_must_be_callable(self):
        with self.assertRaisesMessage(ValueError, "The encoder parameter must be a callable"):
            fields.EncryptedJSONField(encoder=DjangoJSONEncoder())
        with self.assertRaisesMessage(ValueError, "The decoder parameter must be a callable"):
            fields.EncryptedJSONField(decoder=json.JSONDecoder())


class BinaryFieldTests(EncryptedFieldTestCase):
    """Bytes in any buffer type are encrypted and come back as ``bytes``."""

    def test_buffer_types(self):
        payload = bytes(range(256))
        for value in (payload, bytearray(payload), memoryview(payload)):
            with self.subTest(type=type(value).__name__):
                patient = Patient.objects.create(name="Ada", photo=value)
                self.assertDecrypted(patient.pk, {"photo": payload})
                raw = raw_column(Patient, patient.pk, "photo")
                self.assertEqual(raw[:4], ENVELOPE_PREFIX)
                self.assertNotIn(payload[10:40], raw)

    def test_empty_bytes_are_not_null(self):
        patient = Patient.objects.create(name="Ada", photo=b"")
        self.assertEqual(open_column(Patient, patient.pk, "photo"), b"")
        self.assertDecrypted(patient.pk, {"photo": b""})

    def test_update_with_memoryview(self):
        patient = Patient.objects.create(name="Ada")
        Patient.objects.update(photo=memoryview(b"\x00\x01\x02"))
        self.assertDecrypted(patient.pk, {"photo": b"\x00\x01\x02"})

    def test_large_value(self):
        payload = bytes(range(256)) * 4096  # 1 MiB
        patient = Patient.objects.create(name="Ada", photo=payload)
        self.assertDecrypted(patient.pk, {"photo": payload})


class LookupTests(EncryptedFieldTestCase):
    """A lookup the database cannot answer on ciphertext raises; it never matches nothing."""

    REFUSED = [
        ("notes", "exact", "x"),
        ("notes", "iexact", "x"),
        ("notes", "contains", "x"),
        ("notes", "icontains", "x"),
        ("notes", "startswith", "x"),
        ("notes", "endswith", "x"),
        ("notes", "regex", "x"),
        ("code", "in", ["A-123"]),
        ("email", "iexact", "ada@example.com"),
        ("visits", "gt", 1),
        ("visits", "gte", 1),
        ("visits", "lt", 1),
        ("visits", "lte", 1),
        ("visits", "range", (1, 2)),
        ("big", "in", [1, 2]),
        ("balance", "exact", Decimal("1.00")),
        ("score", "gt", 0.5),
        ("active", "exact", True),
        ("birth_date", "year", 1990),
        ("birth_date", "month", 5),
        ("seen_at", "date", datetime.date(2024, 3, 5)),
        ("seen_at", "lt", SAMPLE["seen_at"]),
        ("profile", "blood", "O+"),
        ("profile", "has_key", "blood"),
        ("profile", "contains", {"blood": "O+"}),
        ("photo", "exact", b"x"),
        ("homepage", "startswith", "https://"),
        ("slug", "exact", "ada"),
        ("room", "lt", 3),
        ("steps", "gte", 0),
        ("age", "in", [36]),
        ("lifetime_steps", "range", (0, 10)),
        ("wakes_at", "hour", 7),
        ("wakes_at", "gt", datetime.time(7)),
        ("stay", "gt", datetime.timedelta(days=1)),
        ("record_uuid", "exact", SAMPLE["record_uuid"]),
        ("record_uuid", "icontains", "6f1c"),
        ("last_ip", "startswith", "192."),
    ]

    def expected_message(self, field, lookup):
        field_class = type(Patient._meta.get_field(field)).__name__
        return (
            f"{field_class} '{field}' does not support '{lookup}' lookups: Patient.{field} is "
            "encrypted, so the database cannot answer them (every value is random-looking "
            "ciphertext). Only 'isnull' works. Filter on another field, or load the rows and "
            "compare in Python"
            + (
                "; for exact-match search, add blind_index=True (docs/search.md)."
                if Patient._meta.get_field(field).blind_index_kind
                else "."
            )
        )

    def test_refused_lookups_raise_with_a_hint(self):
        Patient.objects.create(name="Ada", **SAMPLE)
        for field, lookup, value in self.REFUSED:
            with self.subTest(field=field, lookup=lookup):
                with self.assertRaisesMessage(
                    EncryptedLookupError, self.expected_message(field, lookup)
                ):
                    list(Patient.objects.filter(**{f"{field}__{lookup}": value}))

    def test_plain_equality_raises(self):
        Patient.objects.create(name="Ada", **SAMPLE)
        for field in ENCRYPTED_FIELDS:
            with self.subTest(field=field):
                with self.assertRaisesMessage(
                    EncryptedLookupError, self.expected_message(field, "exact")
                ):
                    Patient.objects.filter(**{field: SAMPLE[field]})

    def test_is_a_field_error(self):
        with self.assertRaises(FieldError):
            Patient.objects.filter(notes__contains="x")

    def test_transform_then_lookup_raises_at_the_transform(self):
        with self.assertRaisesMessage(EncryptedLookupError, "'year' lookups"):
            Patient.objects.filter(birth_date__year__gte=1990)
        with self.assertRaisesMessage(EncryptedLookupError, "'blood' lookups"):
            Patient.objects.filter(profile__blood__icontains="o")

    def test_other_query_shapes_raise(self):
        shapes = {
            "exclude": lambda: Patient.objects.exclude(notes="x"),
            "Q": lambda: Patient.objects.filter(Q(name="Ada") | Q(notes="x")),
            "get": lambda: Patient.objects.get(code="A-123"),
            "get_or_create": lambda: Patient.objects.get_or_create(code="A-123"),
            "F": lambda: Patient.objects.filter(visits=F("big")),
        }
        for shape, query in shapes.items():
            with self.subTest(shape=shape), self.assertRaises(EncryptedLookupError):
                query()

    def test_key_transform_in_an_f_expression_raises(self):
        # Django reports this one itself, before asking the field for the transform.
        with self.assertRaisesMessage(
            FieldError,
            "Cannot resolve keyword 'blood' into field. Join on 'profile' not permitted.",
        ):
            Patient.objects.filter(name=F("profile__blood"))

    def test_message_does_not_carry_the_searched_value(self):
        with self.assertRaises(EncryptedLookupError) as caught:
            Patient.objects.filter(notes__contains="secret-diagnosis")
        self.assertNotIn("secret-diagnosis", str(caught.exception))

    def test_lookups_on_other_fields_still_work(self):
        ada = Patient.objects.create(name="Ada", **SAMPLE)
        self.assertEqual(list(Patient.objects.filter(name__startswith="A")), [ada])


class RefusedOptionsTests(SimpleTestCase):
    """``unique``, ``db_index`` and ``primary_key`` cannot work on ciphertext: refused at once."""

    REQUIRED_ARGS = {
        fields.EncryptedCharField: {"max_length": 10},
        fields.EncryptedDecimalField: {"max_digits": 10, "decimal_places": 2},
    }
    OPTIONS = {
        "unique": "unique",
        "db_index": "indexed (db_index=True)",
        "primary_key": "a primary key",
    }

    def test_every_field_type_refuses_each_option_when_constructed(self):
        for field_class in fields.ENCRYPTED_FIELD_TYPES:
            for option, described in self.OPTIONS.items():
                with self.subTest(field=field_class.__name__, option=option):
                    advice = "."
                    if field_class.blind_index_kind and option != "primary_key":
                        advice = "; " if option == "unique" else "; to find rows by value, "
                        advice += (
                            "for unique values, add blind_index=True (docs/search.md)."
                            if option == "unique"
                            else "use blind_index=True (docs/search.md)."
                        )
                    expected = (
                        f"{field_class.__name__}: an encrypted field cannot be {described}; the "
                        "database holds only ciphertext, which differs on every save. Remove "
                        f"{option}=True{advice}"
                    )
                    with self.assertRaisesMessage(ImproperlyConfigured, expected):
                        field_class(**self.REQUIRED_ARGS.get(field_class, {}), **{option: True})

    def test_options_passed_by_position_are_refused_too(self):
        # Field(verbose_name, name, primary_key, max_length, unique, blank, null, db_index, ...)
        with self.assertRaisesMessage(ImproperlyConfigured, "cannot be unique; "):
            fields.EncryptedCharField("SSN", None, False, 11, True)

    @isolate_apps("data_encryption.tests.testapp")
    def test_class_statement_refuses_unique(self):
        with self.assertRaisesMessage(
            ImproperlyConfigured, "EncryptedCharField: an encrypted field cannot be unique"
        ):

            class Record(models.Model):
                ssn = fields.EncryptedCharField(max_length=11, unique=True)

                class Meta:
                    app_label = "data_encryption_tests"

    @isolate_apps("data_encryption.tests.testapp")
    def test_db_default_is_refused(self):
        with self.assertRaisesMessage(
            ImproperlyConfigured,
            "Record.seen: an encrypted field cannot have a db_default; the database would write "
            "it without encrypting it. Use default= instead, which is encrypted on save.",
        ):

            class Record(models.Model):
                seen = fields.EncryptedDateTimeField(db_default=Now())

                class Meta:
                    app_label = "data_encryption_tests"

    @isolate_apps("data_encryption.tests.testapp")
    def test_options_off_are_accepted(self):
        class Record(models.Model):
            ssn = fields.EncryptedCharField(max_length=11, unique=False, db_index=False)

            class Meta:
                app_label = "data_encryption_tests"

        self.assertEqual(Record._meta.get_field("ssn").check(), [])


UNIQUE_HINT = (
    "Ciphertext differs on every save, so uniqueness over it enforces nothing; remove the field "
    "from it, or declare the field with blind_index=True, unique=True (docs/search.md)."
)


class IndexCheckTests(SimpleTestCase):
    """An index or unique constraint over an encrypted field is reported as E013."""

    @isolate_apps("data_encryption.tests.testapp")
    def test_index_including_the_field(self):
        class Record(models.Model):
            name = models.CharField(max_length=10)
            ssn = fields.EncryptedTextField()

            class Meta:
                app_label = "data_encryption_tests"
                indexes = [models.Index(fields=["name", "ssn"], name="record_ssn_idx")]

        self.assertEqual(
            Record._meta.get_field("ssn").check(),
            [
                self.e013(
                    "Index 'record_ssn_idx' includes encrypted field 'ssn'.",
                    Record._meta.get_field("ssn"),
                )
            ],
        )
        self.assertEqual(Record._meta.get_field("name").check(), [])

    @isolate_apps("data_encryption.tests.testapp")
    def test_descending_index_including_the_field(self):
        class Record(models.Model):
            ssn = fields.EncryptedTextField()

            class Meta:
                app_label = "data_encryption_tests"
                indexes = [models.Index(fields=["-ssn"], name="record_ssn_desc")]

        self.assertEqual(
            Record._meta.get_field("ssn").check(),
            [
                self.e013(
                    "Index 'record_ssn_desc' includes encrypted field 'ssn'.",
                    Record._meta.get_field("ssn"),
                )
            ],
        )

    @isolate_apps("data_encryption.tests.testapp")
    def test_unique_constraint_including_the_field(self):
        class Record(models.Model):
            name = models.CharField(max_length=10)
            ssn = fields.EncryptedTextField()

            class Meta:
                app_label = "data_encryption_tests"
                constraints = [
                    models.UniqueConstraint(fields=["name", "ssn"], name="record_ssn_unique")
                ]

        field = Record._meta.get_field("ssn")
        self.assertEqual(
            field.check(),
            [
                self.e013(
                    "Unique constraint 'record_ssn_unique' includes encrypted field 'ssn'.",
                    field,
                    hint=UNIQUE_HINT,
                )
            ],
        )

    @isolate_apps("data_encryption.tests.testapp")
    def test_unique_together_including_the_field(self):
        class Record(models.Model):
            name = models.CharField(max_length=10)
            ssn = fields.EncryptedTextField()

            class Meta:
                app_label = "data_encryption_tests"
                unique_together = [("name", "ssn")]

        field = Record._meta.get_field("ssn")
        self.assertEqual(
            field.check(),
            [
                self.e013(
                    "unique_together ('name', 'ssn') includes encrypted field 'ssn'.",
                    field,
                    hint=UNIQUE_HINT,
                )
            ],
        )

    def e013(
        self, message, field, hint="An index on ciphertext cannot serve any query; remove it."
    ):
        return checks.Error(message, hint=hint, obj=field, id="data_encryption.E013")


class MigrationTests(TestCase):
    """Encrypted fields deconstruct exactly: migrations see one change when a field is added, and
    none after."""

    def test_test_app_has_no_missing_migrations(self):
        out = StringIO()
        call_command(
            "makemigrations", "data_encryption_tests", check=True, dry_run=True, stdout=out
        )
        self.assertEqual(out.getvalue(), "No changes detected in app 'data_encryption_tests'\n")

    FIELD_CASES = [
        fields.EncryptedTextField(null=True),
        fields.EncryptedTextField(default=""),
        fields.EncryptedCharField(max_length=20, null=True, blank=True),
        fields.EncryptedEmailField(null=True),
        fields.EncryptedIntegerField(null=True),
        fields.EncryptedBigIntegerField(null=True),
        fields.EncryptedDecimalField(max_digits=12, decimal_places=4, null=True),
        fields.EncryptedFloatField(null=True),
        fields.EncryptedBooleanField(default=False),
        fields.EncryptedDateField(null=True),
        fields.EncryptedDateTimeField(null=True),
        fields.EncryptedJSONField(null=True),
        fields.EncryptedJSONField(encoder=DjangoJSONEncoder, default=dict),
        fields.EncryptedBinaryField(null=True),
        fields.EncryptedURLField(null=True),
        fields.EncryptedURLField(max_length=500, null=True),
        fields.EncryptedSlugField(null=True),
        fields.EncryptedSlugField(max_length=80, allow_unicode=True, null=True),
        fields.EncryptedSmallIntegerField(null=True),
        fields.EncryptedPositiveIntegerField(default=0),
        fields.EncryptedPositiveSmallIntegerField(null=True),
        fields.EncryptedPositiveBigIntegerField(null=True),
        fields.EncryptedTimeField(null=True),
        fields.EncryptedDurationField(null=True),
        fields.EncryptedUUIDField(default=uuid.uuid4),
        fields.EncryptedGenericIPAddressField(protocol="IPv4", null=True),
        fields.EncryptedGenericIPAddressField(unpack_ipv4=True, null=True),
    ]

    def state(self, *extra_fields):
        state = ProjectState()
        state.add_model(
            ModelState(
                "data_encryption_tests",
                "Record",
                [("id", models.BigAutoField(primary_key=True)), *extra_fields],
            )
        )
        return state

    def changes(self, before, after):
        questioner = MigrationQuestioner(specified_apps={"data_encryption_tests"})
        autodetector = MigrationAutodetector(before, after, questioner)
        return autodetector.changes(graph=MigrationGraph())

    def test_adding_a_field_is_one_add_field_and_then_nothing(self):
        for field in self.FIELD_CASES:
            with self.subTest(field=field.deconstruct()[1:]):
                before = self.state()
                after = self.state(("secret", field.clone()))
                changes = self.changes(before, after)
                self.assertEqual(list(changes), ["data_encryption_tests"])
                (migration,) = changes["data_encryption_tests"]
                (operation,) = migration.operations
                self.assertEqual(type(operation).__name__, "AddField")
                self.assertEqual(operation.name, "secret")
                self.assertIsInstance(operation.field, type(field))
                self.assertEqual(operation.field.deconstruct()[1:], field.deconstruct()[1:])

                applied = before.clone()
                operation.state_forwards("data_encryption_tests", applied)
                self.assertEqual(self.changes(applied, after), {})

    def test_deconstruct_paths_are_public(self):
        for field in self.FIELD_CASES:
            with self.subTest(field=type(field).__name__):
                _name, path, args, kwargs = field.deconstruct()
                self.assertEqual(path, f"data_encryption.fields.{type(field).__name__}")
                rebuilt = type(field)(*args, **kwargs)
                self.assertEqual(rebuilt.deconstruct(), field.deconstruct())


class ModelFormTests(EncryptedFieldTestCase):
    """A ModelForm over every encrypted field validates plaintext and saves ciphertext."""

    class PatientForm(forms.ModelForm):
        class Meta:
            model = Patient
            fields = "__all__"

    VALID = {
        "name": "Ada",
        "notes": "Allergic to penicillin ✓",
        "code": "A-123",
        "email": "ada@example.com",
        "visits": "42",
        "big": "1099511627783",
        "balance": "1234.50",
        "score": "0.30000000000000004",
        "active": "true",
        "birth_date": "1990-05-17",
        "seen_at": "2024-03-05 13:30:15",
        "profile": '{"blood": "O+", "allergies": ["penicillin"]}',
        "homepage": "https://example.com/ada",
        "slug": "ada-lovelace",
        "room": "-12",
        "steps": "10000",
        "age": "36",
        "lifetime_steps": "1099511627785",
        "wakes_at": "07:30:15",
        "stay": "3 04:00:00",
        "record_uuid": "6f1c1a4e-9d3b-4c55-8a9e-2b7d51f0c3aa",
        "last_ip": "2001:db8::1",
    }
    EXPECTED = {
        "notes": "Allergic to penicillin ✓",
        "code": "A-123",
        "email": "ada@example.com",
        "visits": 42,
        "big": 2**40 + 7,
        "balance": Decimal("1234.50"),
        "score": 0.30000000000000004,
        "active": True,
        "birth_date": datetime.date(1990, 5, 17),
        "seen_at": datetime.datetime(2024, 3, 5, 13, 30, 15, tzinfo=UTC),
        "profile": {"blood": "O+", "allergies": ["penicillin"]},
        "homepage": "https://example.com/ada",
        "slug": "ada-lovelace",
        "room": -12,
        "steps": 10000,
        "age": 36,
        "lifetime_steps": 2**40 + 9,
        "wakes_at": datetime.time(7, 30, 15),
        "stay": datetime.timedelta(days=3, hours=4),
        "record_uuid": uuid.UUID("6f1c1a4e-9d3b-4c55-8a9e-2b7d51f0c3aa"),
        "last_ip": "2001:db8::1",
    }
    INVALID = {
        "code": ("ABCDEFGHIJK", "Ensure this value has at most 10 characters (it has 11)."),
        "email": ("not-an-email", "Enter a valid email address."),
        "visits": ("many", "Enter a whole number."),
        "big": ("1.5", "Enter a whole number."),
        "balance": ("123456789.00", "Ensure that there are no more than 10 digits in total."),
        "score": ("abc", "Enter a number."),
        "birth_date": ("1990-13-45", "Enter a valid date."),
        "seen_at": ("yesterday", "Enter a valid date/time."),
        "profile": ("{not json", "Enter a valid JSON."),
        "homepage": ("not a url", "Enter a valid URL."),
        "slug": (
            "not a slug!",
            "Enter a valid “slug” consisting of letters, numbers, underscores or hyphens.",
        ),
        "room": ("1.5", "Enter a whole number."),
        "steps": ("-1", "Ensure this value is greater than or equal to 0."),
        "age": ("-1", "Ensure this value is greater than or equal to 0."),
        "lifetime_steps": ("-1", "Ensure this value is greater than or equal to 0."),
        "wakes_at": ("25:00", "Enter a valid time."),
        "stay": ("forever", "Enter a valid duration."),
        "record_uuid": ("not-a-uuid", "Enter a valid UUID."),
        "last_ip": ("192.0.2.300", "Enter a valid IPv4 or IPv6 address."),
    }

    def test_form_has_every_editable_encrypted_field(self):
        self.assertEqual(
            list(self.PatientForm.base_fields),
            ["name", *[name for name in ENCRYPTED_FIELDS if name != "photo"]],
        )
        form_fields = self.PatientForm.base_fields
        self.assertEqual(form_fields["code"].max_length, 10)
        self.assertIsInstance(form_fields["email"], forms.EmailField)
        self.assertIsInstance(form_fields["visits"], forms.IntegerField)
        self.assertIsInstance(form_fields["balance"], forms.DecimalField)
        self.assertIsInstance(form_fields["active"], forms.NullBooleanField)
        self.assertIsInstance(form_fields["birth_date"], forms.DateField)
        self.assertIsInstance(form_fields["seen_at"], forms.DateTimeField)
        self.assertIsInstance(form_fields["profile"], forms.JSONField)
        self.assertIsInstance(form_fields["homepage"], forms.URLField)
        self.assertIsInstance(form_fields["slug"], forms.SlugField)
        self.assertEqual(form_fields["slug"].max_length, 50)
        self.assertIsInstance(form_fields["room"], forms.IntegerField)
        self.assertEqual(form_fields["steps"].min_value, 0)
        self.assertEqual(form_fields["age"].min_value, 0)
        self.assertEqual(form_fields["lifetime_steps"].min_value, 0)
        self.assertIsInstance(form_fields["wakes_at"], forms.TimeField)
        self.assertIsInstance(form_fields["stay"], forms.DurationField)
        self.assertIsInstance(form_fields["record_uuid"], forms.UUIDField)
        self.assertIsInstance(form_fields["last_ip"], forms.GenericIPAddressField)

    def test_valid_data_saves_encrypted(self):
        form = self.PatientForm(data=self.VALID)
        self.assertTrue(form.is_valid(), form.errors)
        patient = form.save()
        self.assertDecrypted(patient.pk, self.EXPECTED)
        self.assertEncryptedAtRest(patient.pk, names=list(self.EXPECTED))

    def test_blank_optional_fields_save_null(self):
        form = self.PatientForm(data={"name": "Ada", "active": "unknown"})
        self.assertTrue(form.is_valid(), form.errors)
        patient = form.save()
        for name in ENCRYPTED_FIELDS:
            if name == "notes":  # a blank TextField saves "", as the plain field's form does
                self.assertEqual(open_column(Patient, patient.pk, name), b"")
                continue
            with self.subTest(field=name):
                self.assertIsNone(raw_column(Patient, patient.pk, name))

    def test_invalid_data_reports_each_field(self):
        for name, (value, message) in self.INVALID.items():
            with self.subTest(field=name):
                form = self.PatientForm(data={**self.VALID, name: value})
                self.assertFalse(form.is_valid())
                self.assertEqual(form.errors, {name: [message]})
        self.assertEqual(Patient.objects.count(), 0)

    def test_model_validation_runs_on_plaintext(self):
        # The form field knows nothing of the 32-bit range; the model field's validator does.
        form = self.PatientForm(data={**self.VALID, "visits": str(2**31), "big": str(2**63)})
        self.assertFalse(form.is_valid())
        self.assertEqual(
            form.errors,
            {
                "visits": ["Ensure this value is less than or equal to 2147483647."],
                "big": ["Ensure this value is less than or equal to 9223372036854775807."],
            },
        )

    def test_all_invalid_at_once(self):
        form = self.PatientForm(
            data={**self.VALID, **{name: value for name, (value, _m) in self.INVALID.items()}}
        )
        self.assertFalse(form.is_valid())
        self.assertEqual(
            form.errors, {name: [message] for name, (_v, message) in self.INVALID.items()}
        )

    def test_edit_form_shows_plaintext_and_saves_changes(self):
        patient = Patient.objects.create(name="Ada", **SAMPLE)
        form = self.PatientForm(instance=Patient.objects.get(pk=patient.pk))
        html = form.as_p()
        self.assertIn('value="A-123"', html)
        self.assertIn('value="ada@example.com"', html)
        self.assertIn('value="1234.50"', html)
        self.assertIn('value="1990-05-17"', html)
        self.assertIn("&quot;blood&quot;: &quot;O+&quot;", html)
        self.assertIn('value="07:30:15"', html)  # TimeInput's format, as for the plain field
        self.assertIn('value="3 04:00:00.000005"', html)
        self.assertIn('value="6f1c1a4e-9d3b-4c55-8a9e-2b7d51f0c3aa"', html)
        self.assertIn('value="192.0.2.17"', html)
        self.assertNotIn("\\xffDE", html)

        form = self.PatientForm(
            data={**self.VALID, "code": "Z-9", "visits": "7"},
            instance=Patient.objects.get(pk=patient.pk),
        )
        self.assertTrue(form.is_valid(), form.errors)
        form.save()
        self.assertDecrypted(patient.pk, {**self.EXPECTED, "code": "Z-9", "visits": 7})
        self.assertEqual(Patient.objects.get(pk=patient.pk).photo, SAMPLE["photo"])

    def test_resubmitting_the_stored_values_changes_nothing(self):
        patient = self.PatientForm(data=self.VALID).save()
        form = self.PatientForm(data=self.VALID, instance=Patient.objects.get(pk=patient.pk))
        self.assertTrue(form.is_valid(), form.errors)
        self.assertEqual(form.changed_data, [])


class PropertyTests(HypothesisTestCase):
    """Arbitrary values of each type survive a database round trip unchanged."""

    def setUp(self):
        reset_key_ring()
        self.addCleanup(reset_key_ring)

    def round_trip(self, **values):
        patient = Patient.objects.create(name="P", **values)
        stored = Patient.objects.values(*values).get(pk=patient.pk)
        self.assertEqual(stored, values)

    @settings(max_examples=40, deadline=None)
    @given(st.text())
    def test_text(self, value):
        self.round_trip(notes=value)

    @settings(max_examples=40, deadline=None)
    @given(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**31), 2**31 - 1))
    def test_integers(self, big, visits):
        self.round_trip(big=big, visits=visits)

    @settings(max_examples=40, deadline=None)
    @given(st.floats(allow_nan=False))
    def test_floats(self, value):
        self.round_trip(score=value)

    @settings(max_examples=40, deadline=None)
    @given(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
            lambda children: st.lists(children) | st.dictionaries(st.text(), children),
            max_leaves=20,
        ).filter(lambda value: value is not None)
    )
    def test_json(self, value):
        self.round_trip(profile=value)

    @settings(max_examples=40, deadline=None)
    @given(st.binary())
    def test_binary(self, value):
        self.round_trip(photo=value)

    @settings(max_examples=40, deadline=None)
    @given(st.datetimes(timezones=st.just(UTC)))
    def test_datetimes(self, value):
        self.round_trip(seen_at=value)

    @settings(max_examples=40, deadline=None)
    @given(st.times(), st.timedeltas(), st.uuids())
    def test_times_durations_and_uuids(self, time, duration, identifier):
        self.round_trip(wakes_at=time, stay=duration, record_uuid=identifier)

    @settings(max_examples=40, deadline=None)
    @given(st.ip_addresses())
    def test_ip_addresses_come_back_as_the_plain_field_normalises_them(self, address):
        patient = Patient.objects.create(name="P", last_ip=str(address))
        stored = Patient.objects.values_list("last_ip", flat=True).get(pk=patient.pk)
        self.assertEqual(stored, models.GenericIPAddressField().get_prep_value(str(address)))
        self.assertEqual(ipaddress.ip_address(stored), address)


class DeconstructPathTests(SimpleTestCase):
    def test_migrations_name_fields_by_the_package_not_the_defining_module(self):
        # The fields live in data_encryption/fields/<kind>.py; migrations written before the
        # split (and after it) say data_encryption.fields.<Name>, so no migration churns.
        for field_class in ENCRYPTED_FIELD_TYPES:
            with self.subTest(field=field_class.__name__):
                kwargs = {"max_length": 11} if "Char" in field_class.__name__ else {}
                path = field_class(**kwargs).deconstruct()[1]
                self.assertEqual(path, f"data_encryption.fields.{field_class.__name__}")


class DescriptionTests(SimpleTestCase):
    """Each field says what it is, as the admin documentation (admindocs) shows it."""

    EXPECTED = {
        "notes": "Encrypted text",
        "code": "Encrypted text (up to 10)",
        "email": "Encrypted email address",
        "visits": "Encrypted integer",
        "big": "Encrypted big (8 byte) integer",
        "balance": "Encrypted decimal number",
        "score": "Encrypted floating point number",
        "active": "Encrypted boolean (either True or False)",
        "birth_date": "Encrypted date (without time)",
        "seen_at": "Encrypted date (with time)",
        "profile": "Encrypted JSON object",
        "photo": "Encrypted raw binary data",
        "homepage": "Encrypted URL",
        "slug": "Encrypted slug (up to 50)",
        "room": "Encrypted small integer",
        "steps": "Encrypted positive integer",
        "age": "Encrypted positive small integer",
        "lifetime_steps": "Encrypted positive big integer",
        "wakes_at": "Encrypted time",
        "stay": "Encrypted duration",
        "record_uuid": "Encrypted universally unique identifier",
        "last_ip": "Encrypted IP address",
    }

    def test_admindocs_data_type_of_every_field(self):
        from django.contrib.admindocs.views import get_readable_field_data_type

        self.assertEqual(set(self.EXPECTED), set(ENCRYPTED_FIELDS))
        self.assertEqual(
            {name: get_readable_field_data_type(Patient._meta.get_field(name)) for name in SAMPLE},
            self.EXPECTED,
        )

    def test_every_field_type_has_its_own_description(self):
        descriptions = [str(field_class.description) for field_class in ENCRYPTED_FIELD_TYPES]
        self.assertEqual(len(set(descriptions)), len(ENCRYPTED_FIELD_TYPES))
        for field_class, description in zip(ENCRYPTED_FIELD_TYPES, descriptions, strict=True):
            with self.subTest(field=field_class.__name__):
                self.assertTrue(description.startswith("Encrypted "), description)
