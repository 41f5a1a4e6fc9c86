"""Tests of the admin: encrypted fields through ModelAdmin forms, and the read-only key pages.

A logged-in superuser adds and changes a Patient (one encrypted field of every type) through the
real add and change views; the stored row must decrypt to what was posted and the change page
must show plaintext. The DataKey pages must offer no way to add, change or delete a key and never
show wrapped key material.
"""

import base64
import datetime
import json
from decimal import Decimal

from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.test import TestCase
from django.urls import reverse
from django.utils.html import escape

from data_encryption.envelope import key_id_of
from data_encryption.keys import ensure_primary_key, reset_key_ring
from data_encryption.models import DataKey, KeyState
from data_encryption.tests.test_fields import ENVELOPE_PREFIX, raw_column
from data_encryption.tests.testapp.models import Patient

UTC = datetime.UTC


class AdminTestCase(TestCase):
    """Logs a superuser in with an empty key-ring cache."""

    def setUp(self):
        reset_key_ring()
        self.addCleanup(reset_key_ring)
        self.user = get_user_model().objects.create_superuser(
            "admin", "admin@example.com", "password"
        )
        self.client.force_login(self.user)


class PatientAdminTests(AdminTestCase):
    """Adding and changing a Patient through the admin stores ciphertext and shows plaintext."""

    POSTED = {
        "name": "Ada",
        "notes": "Allergic to penicillin <b>& more</b> ✓",
        "code": "A-123",
        "email": "ada@example.com",
        "visits": "42",
        "big": "1099511627783",
        "balance": "1234.50",
        "score": "0.25",
        "active": "true",
        "birth_date": "1990-05-17",
        "seen_at_0": "2024-03-05",
        "seen_at_1": "13:30:15",
        "profile": '{"blood": "O+", "allergies": ["penicillin"]}',
    }
    STORED = {
        "name": "Ada",
        "notes": "Allergic to penicillin <b>& more</b> ✓",
        "code": "A-123",
        "email": "ada@example.com",
        "visits": 42,
        "big": 1099511627783,
        "balance": Decimal("1234.50"),
        "score": 0.25,
        "active": True,
        "birth_date": datetime.date(1990, 5, 17),
        "seen_at": datetime.datetime(2024, 3, 5, 13, 30, 15, tzinfo=UTC),
        "profile": {"blood": "O+", "allergies": ["penicillin"]},
    }
    ENCRYPTED = [name for name in STORED if name != "name"]

    def stored(self, patient):
        patient = Patient.objects.get(pk=patient.pk)
        return {name: getattr(patient, name) for name in self.STORED}

    def assertEncryptedAtRest(self, patient):
        key_id = DataKey.objects.get(state=KeyState.PRIMARY).key_id
        for name in self.ENCRYPTED:
            with self.subTest(field=name):
                raw = raw_column(Patient, patient.pk, name)
                self.assertEqual(raw[:4], ENVELOPE_PREFIX)
                self.assertEqual(key_id_of(raw), key_id)

    def test_add_view_saves_encrypted_values(self):
        response = self.client.post(reverse("admin:data_encryption_tests_patient_add"), self.POSTED)
        self.assertRedirects(response, reverse("admin:data_encryption_tests_patient_changelist"))
        patient = Patient.objects.get()
        self.assertEqual(self.stored(patient), self.STORED)
        self.assertEncryptedAtRest(patient)

    def test_add_view_reports_invalid_values(self):
        response = self.client.post(
            reverse("admin:data_encryption_tests_patient_add"),
            {**self.POSTED, "code": "ABCDEFGHIJK", "visits": str(2**31), "profile": "{oops"},
        )
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            response.context["adminform"].form.errors,
            {
                "code": ["Ensure this value has at most 10 characters (it has 11)."],
                "visits": ["Ensure this value is less than or equal to 2147483647."],
                "profile": ["Enter a valid JSON."],
            },
        )
        self.assertEqual(Patient.objects.count(), 0)

    def test_change_view_shows_plaintext(self):
        patient = Patient.objects.create(**self.STORED)
        response = self.client.get(
            reverse("admin:data_encryption_tests_patient_change", args=[patient.pk])
        )
        self.assertEqual(response.status_code, 200)
        expected_fragments = [
            escape(self.STORED["notes"]),
            'value="A-123"',
            'value="ada@example.com"',
            'value="42"',
            'value="1099511627783"',
            'value="1234.50"',
            'value="0.25"',
            '<option value="true" selected>Yes</option>',
            'value="1990-05-17"',
            'value="2024-03-05"',
            'value="13:30:15"',
            escape(json.dumps(self.STORED["profile"])),
        ]
        for fragment in expected_fragments:
            with self.subTest(fragment=fragment):
                self.assertContains(response, fragment)
        self.assertNotContains(response, "de1:")

    def test_change_view_saves_and_logs_only_changed_fields(self):
        patient = Patient.objects.create(**self.STORED)
        url = reverse("admin:data_encryption_tests_patient_change", args=[patient.pk])
        response = self.client.post(url, {**self.POSTED, "code": "Z-9", "visits": "7"})
        self.assertRedirects(response, reverse("admin:data_encryption_tests_patient_changelist"))
        self.assertEqual(self.stored(patient), {**self.STORED, "code": "Z-9", "visits": 7})
        self.assertEncryptedAtRest(patient)
        # Unchanged encrypted values compare equal to what was posted, so the log names exactly
        # the two changed fields (and never a value).
        entry = LogEntry.objects.get(object_id=str(patient.pk))
        self.assertEqual(
            json.loads(entry.change_message), [{"changed": {"fields": ["Code", "Visits"]}}]
        )

    def test_change_view_clears_values_to_null(self):
        patient = Patient.objects.create(**self.STORED)
        url = reverse("admin:data_encryption_tests_patient_change", args=[patient.pk])
        cleared = {name: "" for name in self.POSTED if name != "name"}
        response = self.client.post(url, {"name": "Ada", **cleared, "active": "unknown"})
        self.assertRedirects(response, reverse("admin:data_encryption_tests_patient_changelist"))
        expected = {**dict.fromkeys(self.STORED), "name": "Ada", "notes": ""}
        self.assertEqual(self.stored(patient), expected)
        for name in self.ENCRYPTED:
            if name != "notes":  # a blank TextField is "", as with the plain field
                with self.subTest(field=name):
                    self.assertIsNone(raw_column(Patient, patient.pk, name))

    def test_changelist(self):
        Patient.objects.create(**self.STORED)
        response = self.client.get(reverse("admin:data_encryption_tests_patient_changelist"))
        self.assertContains(response, "Ada")


class DataKeyAdminTests(AdminTestCase):
    """The key pages are read-only and never show wrapped key material."""

    def setUp(self):
        super().setUp()
        self.key = ensure_primary_key()
        self.wrapped = bytes(self.key.wrapped_key)

    def material_forms(self):
        raw = self.wrapped
        forms = {raw.hex(), raw.hex().upper(), repr(raw), escape(repr(raw)), raw[8:24].hex()}
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(raw).decode()
            forms |= {text, text.rstrip("="), text[8:32]}
        return forms

    def assertNoWrappedMaterial(self, response):
        content = response.content.decode()
        # Report only a prefix of what leaked, so a failure does not print the material itself.
        leaked = sorted(form[:6] + "…" for form in self.material_forms() if form in content)
        self.assertEqual(leaked, [])
        self.assertNotIn("wrapped", content.lower())

    def test_changelist_shows_metadata_only(self):
        response = self.client.get(reverse("admin:data_encryption_datakey_changelist"))
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, self.key.hex_id)
        self.assertContains(response, "primary (encrypts and decrypts)")
        self.assertNotContains(response, reverse("admin:data_encryption_datakey_add"))
        self.assertIsNone(response.context["action_form"])
        self.assertNoWrappedMaterial(response)

    def test_change_page_is_read_only(self):
        url = reverse("admin:data_encryption_datakey_change", args=[self.key.pk])
        response = self.client.get(url)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, self.key.hex_id)
        self.assertContains(response, self.key.master_key_fingerprint)
        self.assertNotContains(response, 'name="_save"')
        self.assertNotContains(
            response, reverse("admin:data_encryption_datakey_delete", args=[self.key.pk])
        )
        self.assertEqual(response.context["adminform"].form.fields, {})
        self.assertNoWrappedMaterial(response)

    def test_add_is_forbidden(self):
        url = reverse("admin:data_encryption_datakey_add")
        self.assertEqual(self.client.get(url).status_code, 403)
        self.assertEqual(self.client.post(url, {"state": "primary"}).status_code, 403)
        self.assertEqual(DataKey.objects.count(), 1)

    def test_change_post_is_forbidden(self):
        url = reverse("admin:data_encryption_datakey_change", args=[self.key.pk])
        response = self.client.post(url, {"state": KeyState.RETIRED})
        self.assertEqual(response.status_code, 403)
        self.key.refresh_from_db()
        self.assertEqual(self.key.state, KeyState.PRIMARY)
        self.assertEqual(bytes(self.key.wrapped_key), self.wrapped)

    def test_delete_is_forbidden(self):
        url = reverse("admin:data_encryption_datakey_delete", args=[self.key.pk])
        self.assertEqual(self.client.get(url).status_code, 403)
        self.assertEqual(self.client.post(url, {"post": "yes"}).status_code, 403)
        self.assertTrue(DataKey.objects.filter(pk=self.key.pk).exists())

    def test_bulk_delete_action_is_not_offered(self):
        response = self.client.post(
            reverse("admin:data_encryption_datakey_changelist"),
            {"action": "delete_selected", "_selected_action": [self.key.pk], "post": "yes"},
        )
        self.assertEqual(response.status_code, 200)
        self.assertTrue(DataKey.objects.filter(pk=self.key.pk).exists())

    def test_history_page_shows_no_material(self):
        response = self.client.get(
            reverse("admin:data_encryption_datakey_history", args=[self.key.pk])
        )
        self.assertEqual(response.status_code, 200)
        self.assertNoWrappedMaterial(response)

    def test_index_offers_no_add_link(self):
        response = self.client.get(reverse("admin:index"))
        self.assertContains(response, reverse("admin:data_encryption_datakey_changelist"))
        self.assertNotContains(response, reverse("admin:data_encryption_datakey_add"))


class RotationRunAdminTests(AdminTestCase):
    """The rotation ledger is readable by auditors, read-only, and shows where rows failed."""

    def setUp(self):
        super().setUp()
        from django.conf import settings
        from django.test import override_settings

        from data_encryption.services import EncryptionService, KeyRotationService
        from data_encryption.tests.testapp.models import Customer

        Customer.objects.create(name="ok", _ssn=EncryptionService.encrypt("123-45-6789"))
        self.bad = Customer.objects.create(name="bad", _ssn=b"plain-999-99-9999")
        fast = {**settings.ENCRYPTION_KEY_ROTATION, "KEY_CACHE_SECONDS": 0}
        with override_settings(ENCRYPTION_KEY_ROTATION=fast):
            self.report = KeyRotationService().rotate()

    def test_changelist_and_change_page(self):
        from data_encryption.models import RotationRun

        run = RotationRun.objects.get()
        response = self.client.get(reverse("admin:data_encryption_rotationrun_changelist"))
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, self.report["new_key_id"])
        self.assertNotContains(response, reverse("admin:data_encryption_rotationrun_add"))
        url = reverse("admin:data_encryption_rotationrun_change", args=[run.pk])
        response = self.client.get(url)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "data_encryption_tests.Customer")
        self.assertContains(response, "field-pk_value")
        self.assertContains(response, "field-finished_at")  # the chunks: who walked what, when
        self.assertContains(response, self.report["key_backup_path"])
        self.assertNotContains(response, 'name="_save"')
        self.assertNotContains(response, "123-45-6789")
        self.assertNotContains(response, "999-99-9999")
        self.assertContains(response, "The value is not encrypted")
        self.assertEqual(self.client.post(url, {}).status_code, 403)
        delete = reverse("admin:data_encryption_rotationrun_delete", args=[run.pk])
        self.assertEqual(self.client.post(delete, {"post": "yes"}).status_code, 403)
        self.assertTrue(RotationRun.objects.filter(pk=run.pk).exists())
