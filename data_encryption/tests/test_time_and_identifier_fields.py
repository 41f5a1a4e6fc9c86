"""What the time, duration, UUID, IP-address and slug fields do beyond the table-driven tests of
``test_fields``: the refusals and normalisations of their plain counterparts."""

import datetime
import uuid
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import SimpleTestCase, TestCase

from data_encryption import fields
from data_encryption.exceptions import DecryptionError
from data_encryption.tests.test_fields import open_column, raw_column, write_raw_column
from data_encryption.tests.testapp.models import Patient
from data_encryption.tests.utils import FreshKeyRingMixin


class TimeFieldTests(FreshKeyRingMixin, TestCase):
    def test_aware_time_is_refused_with_what_to_do(self):
        for tzinfo in (datetime.UTC, ZoneInfo("Europe/Paris")):
            with (
                self.subTest(tzinfo=tzinfo),
                self.assertRaisesMessage(
                    ValueError,
                    "Patient.wakes_at stores times without a time zone, and this time has a "
                    "tzinfo. Convert it to the wall-clock time you mean and pass "
                    "value.replace(tzinfo=None).",
                ),
                transaction.atomic(),
            ):
                Patient.objects.create(name="Ada", wakes_at=datetime.time(7, 30, tzinfo=tzinfo))
        self.assertEqual(Patient.objects.count(), 0)

    def test_datetime_is_stored_as_its_time(self):
        moment = datetime.datetime(2024, 3, 5, 7, 30, 15)
        patient = Patient.objects.create(name="Ada", wakes_at=moment)
        self.assertEqual(open_column(Patient, patient.pk, "wakes_at"), b"07:30:15")
        patient.refresh_from_db()
        self.assertEqual(patient.wakes_at, datetime.time(7, 30, 15))


class DurationFieldTests(FreshKeyRingMixin, TestCase):
    def test_stored_as_total_microseconds(self):
        cases = {
            datetime.timedelta(microseconds=1): b"1",
            datetime.timedelta(microseconds=-1): b"-1",
            datetime.timedelta(days=-1): b"-86400000000",
            datetime.timedelta.max: b"86399999999999999999",
        }
        for value, plaintext in cases.items():
            with self.subTest(value=value):
                patient = Patient.objects.create(name="Ada", stay=value)
                self.assertEqual(open_column(Patient, patient.pk, "stay"), plaintext)
                patient.refresh_from_db()
                self.assertEqual(patient.stay, value)

    def test_iso_8601_text_is_converted_like_the_plain_field(self):
        patient = Patient.objects.create(name="Ada", stay="P3DT4H")
        patient.refresh_from_db()
        self.assertEqual(patient.stay, datetime.timedelta(days=3, hours=4))

    def test_text_that_is_no_duration_is_refused_without_quoting_it(self):
        with self.assertRaises(ValidationError) as caught, transaction.atomic():
            Patient.objects.create(name="Ada", stay="secret-diagnosis")
        self.assertNotIn("secret-diagnosis", str(caught.exception))
        self.assertIn("Patient.stay expected a value of type", str(caught.exception))

    def test_microseconds_past_timedelta_range_are_a_decryption_error(self):
        patient = Patient.objects.create(name="Ada")
        stay = Patient._meta.get_field("stay")
        from data_encryption.encryptor import seal

        write_raw_column(Patient, patient.pk, "stay", seal(b"9" * 30, stay.binding_context))
        with self.assertRaisesMessage(DecryptionError, "is not a valid EncryptedDurationField"):
            Patient.objects.get(pk=patient.pk)


class UUIDFieldTests(FreshKeyRingMixin, TestCase):
    def test_any_spelling_is_stored_hyphenated_lower_case(self):
        value = uuid.UUID("6f1c1a4e-9d3b-4c55-8a9e-2b7d51f0c3aa")
        for given in (value, str(value).upper(), value.hex, f"{{{value}}}", f"urn:uuid:{value}"):
            with self.subTest(given=given):
                patient = Patient.objects.create(name="Ada", record_uuid=given)
                self.assertEqual(
                    open_column(Patient, patient.pk, "record_uuid"), str(value).encode()
                )
                patient.refresh_from_db()
                self.assertEqual(patient.record_uuid, value)

    def test_callable_default(self):
        field = fields.EncryptedUUIDField(default=uuid.uuid4)
        self.assertIsInstance(field.get_default(), uuid.UUID)
        self.assertNotEqual(field.get_default(), field.get_default())


class GenericIPAddressFieldTests(FreshKeyRingMixin, TestCase):
    def test_ipv6_is_stored_as_the_plain_field_normalises_it(self):
        patient = Patient.objects.create(name="Ada", last_ip="2001:0DB8:0:0:0:0:0:0001")
        self.assertEqual(open_column(Patient, patient.pk, "last_ip"), b"2001:db8::1")

    def test_blank_is_stored_as_null_like_the_plain_field(self):
        patient = Patient.objects.create(name="Ada", last_ip="")
        self.assertIsNone(raw_column(Patient, patient.pk, "last_ip"))

    def test_a_value_that_is_no_address_is_refused_without_quoting_it(self):
        with (
            self.assertRaisesMessage(
                ValueError,
                "Patient.last_ip holds an IP address, and this value is not one. Validate with "
                "full_clean() before saving.",
            ),
            transaction.atomic(),
        ):
            Patient.objects.create(name="Ada", last_ip="secret-diagnosis")
        self.assertEqual(Patient.objects.count(), 0)


class IPAddressOptionsTests(SimpleTestCase):
    def test_unpack_ipv4(self):
        field = fields.EncryptedGenericIPAddressField(unpack_ipv4=True, protocol="both")
        self.assertEqual(field.to_plaintext(field.get_prep_value("::ffff:10.0.0.1")), b"10.0.0.1")
        packed = fields.EncryptedGenericIPAddressField()
        self.assertEqual(
            packed.to_plaintext(packed.get_prep_value("::ffff:10.0.0.1")), b"::ffff:10.0.0.1"
        )

    def test_protocol_is_validated_like_the_plain_field(self):
        field = fields.EncryptedGenericIPAddressField(protocol="IPv4")
        field.clean("192.0.2.1", None)
        with self.assertRaisesMessage(ValidationError, "Enter a valid IPv4 address."):
            field.clean("2001:db8::1", None)


class SlugFieldTests(SimpleTestCase):
    def test_has_no_index_and_no_db_index_in_migrations(self):
        field = fields.EncryptedSlugField()
        self.assertFalse(field.db_index)
        self.assertEqual(
            field.deconstruct(), (None, "data_encryption.fields.EncryptedSlugField", [], {})
        )
        self.assertEqual(fields.EncryptedSlugField(db_index=False).deconstruct()[3], {})
