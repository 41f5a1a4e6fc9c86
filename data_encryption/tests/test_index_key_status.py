"""Blind-index keys where operators look: ``encryption_status``, the system checks (E037, E035,
E036) and the read-only admin pages."""

import json
from io import StringIO

from django.contrib.auth import get_user_model
from django.core import checks
from django.core.management import call_command
from django.db import models
from django.test import TestCase, override_settings
from django.test.utils import isolate_apps
from django.urls import reverse

from data_encryption import fields
from data_encryption.blind_index.normalisers import digits
from data_encryption.models import IndexKey
from data_encryption.tests.search_app.models import Person
from data_encryption.tests.utils import FreshKeyRingMixin, new_fernet_key


def index_key_checks():
    messages = checks.run_checks(databases=["default"], tags=[checks.Tags.database])
    return {m.id: m for m in messages if m.id in ("data_encryption.E035", "data_encryption.E036")}


class EncryptionStatusTests(FreshKeyRingMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.ann = Person.objects.create(name="ann", ssn="123-45-6789", email="a@example.com")
        Person.objects.get(ssn="123456789")  # the first query records ssn complete
        self.key = IndexKey.objects.get()

    def status(self, *args):
        out = StringIO()
        call_command("encryption_status", "--no-census", *args, stdout=out)
        return out.getvalue()

    def test_json_lists_index_keys_and_each_indexed_fields_completeness(self):
        report = json.loads(self.status("--json"))
        [key] = report["index_keys"]
        self.assertEqual(
            (key["key_id"], key["slot"], key["state"], key["metadata"], key["unwraps"]),
            (self.key.hex_id, "a", "active", "verified", True),
        )
        self.assertEqual(report["active_index_key"], self.key.hex_id)
        by_field = {entry["field"]: entry for entry in report["indexed_fields"]}
        self.assertTrue(by_field["search_app.Person.ssn"]["complete"])
        self.assertFalse(by_field["search_app.Person.email"]["complete"])  # no query yet
        self.assertIn("search_app.Employee.badge", by_field)
        self.assertNotIn("search_app.Employee.ssn", by_field)  # listed once, on Person
        self.assertNotIn("rows_without_index", by_field["search_app.Person.ssn"])  # no scan

    def test_counting_rows_without_an_index_is_asked_for(self):
        Person.objects.filter(pk=self.ann.pk).update(email_bidx_a=None)  # as before the index
        report = json.loads(self.status("--json", "--count-missing-index"))
        by_field = {entry["field"]: entry for entry in report["indexed_fields"]}
        self.assertEqual(by_field["search_app.Person.email"]["rows_without_index"], 1)
        self.assertEqual(by_field["search_app.Person.ssn"]["rows_without_index"], 0)
        text = self.status("--count-missing-index")
        self.assertIn(
            "search_app.Person.email: 1 rows without an index: run rebuild_blind_index "
            "search_app.Person.email",
            text,
        )

    def test_text_shows_keys_fields_and_a_tampered_key(self):
        text = self.status()
        self.assertIn("Blind-index keys", text)
        self.assertIn(f"  {self.key.hex_id}  slot a  active    since", text)
        self.assertIn("  search_app.Person.ssn: complete", text)
        self.assertIn("  search_app.Person.email: not yet checked", text)
        IndexKey.objects.update(state="draining")  # outside the application
        self.assertIn("[metadata tampered]", self.status())


class IndexKeyCheckTests(FreshKeyRingMixin, TestCase):
    def setUp(self):
        super().setUp()
        Person.objects.create(name="ann", ssn="123-45-6789")
        self.key = IndexKey.objects.get()

    def test_a_sound_key_raises_nothing(self):
        self.assertEqual(index_key_checks(), {})

    def test_e035_an_index_key_no_master_key_unwraps(self):
        with override_settings(DB_ENCRYPTION_KEY=new_fernet_key()):
            found = index_key_checks()
        self.assertEqual(set(found), {"data_encryption.E035"})
        self.assertIn(self.key.hex_id, found["data_encryption.E035"].msg)
        self.assertIn(self.key.master_key_fingerprint, found["data_encryption.E035"].hint)

    def test_e036_an_index_key_edited_in_the_database(self):
        IndexKey.objects.update(complete_fields=["search_app.Person.email"])
        found = index_key_checks()
        self.assertEqual(set(found), {"data_encryption.E036"})
        self.assertIn(self.key.hex_id, found["data_encryption.E036"].msg)
        self.assertIn("authenticate_data_keys", found["data_encryption.E036"].hint)


def module_level_normaliser(text):
    return text.strip()


class NormaliserCheckTests(TestCase):
    @isolate_apps("data_encryption.tests.search_app")
    def test_e034_a_normaliser_migrations_cannot_refer_to(self):
        def nested(text):
            return text

        class Contact(models.Model):
            by_lambda = fields.EncryptedCharField(
                max_length=9, blind_index=True, normaliser=lambda text: text
            )
            by_nested = fields.EncryptedCharField(max_length=9, blind_index=True, normaliser=nested)
            by_function = fields.EncryptedCharField(
                max_length=9, blind_index=True, normaliser=module_level_normaliser
            )
            by_named = fields.EncryptedCharField(max_length=9, blind_index=True, normaliser=digits)
            by_path = fields.EncryptedCharField(max_length=9, blind_index=True, normaliser="strip")

        errors = {
            error.obj.name: error
            for name in ("by_lambda", "by_nested", "by_function", "by_named", "by_path")
            for error in Contact._meta.get_field(name).check()
            if error.id == "data_encryption.E037"
        }
        self.assertEqual(set(errors), {"by_lambda", "by_nested"})
        self.assertIn("<lambda>", errors["by_lambda"].msg)
        self.assertIn("module-level function", errors["by_nested"].hint)


class IndexKeyAdminTests(FreshKeyRingMixin, TestCase):
    def setUp(self):
        super().setUp()
        Person.objects.create(name="ann", ssn="123-45-6789")
        self.key = IndexKey.objects.get()
        user = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw")
        self.client.force_login(user)

    def test_pages_show_metadata_never_material_and_change_nothing(self):
        wrapped = bytes(self.key.wrapped_key)
        for url in (
            reverse("admin:data_encryption_indexkey_changelist"),
            reverse("admin:data_encryption_indexkey_change", args=[self.key.pk]),
        ):
            response = self.client.get(url)
            self.assertContains(response, self.key.hex_id)
            content = response.content.decode()
            self.assertNotIn(wrapped.hex(), content)
            self.assertNotIn("wrapped", content.lower())
        add = reverse("admin:data_encryption_indexkey_add")
        self.assertEqual(self.client.get(add).status_code, 403)
        change = reverse("admin:data_encryption_indexkey_change", args=[self.key.pk])
        self.assertEqual(self.client.post(change, {"state": "retired"}).status_code, 403)
        delete = reverse("admin:data_encryption_indexkey_delete", args=[self.key.pk])
        self.assertEqual(self.client.post(delete, {"post": "yes"}).status_code, 403)
        self.key.refresh_from_db()
        self.assertEqual((self.key.state, bytes(self.key.wrapped_key)), ("active", wrapped))
