"""Index-key rows are authenticated like data keys: an edit made in the database stops queries
from reading the edited key (and says what to do), writes go on; ``authenticate_data_keys``
signs a row an operator has checked. And ``EncryptionService.blind_index`` for hand-written
index columns."""

from io import StringIO

from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import TestCase

from data_encryption.exceptions import IndexKeyUnavailableError
from data_encryption.index_keys import reset_index_key_ring
from data_encryption.key_audit import Metadata, metadata_verdict
from data_encryption.master_key import master_keys
from data_encryption.models import IndexKey, IndexKeyState
from data_encryption.services import EncryptionService
from data_encryption.tests.search_app.models import Person, Record
from data_encryption.tests.utils import FreshKeyRingMixin


class IndexKeyMetadataTests(FreshKeyRingMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.ann = Person.objects.create(name="ann", ssn="123-45-6789")
        self.key = IndexKey.objects.get()

    def edit(self, **changes):
        """An edit made in the database, outside the application (no save(), so no MAC)."""
        IndexKey.objects.filter(pk=self.key.pk).update(**changes)
        reset_index_key_ring()

    def test_a_key_saved_by_the_application_verifies(self):
        self.assertEqual(metadata_verdict(self.key), Metadata.VERIFIED)
        self.assertEqual(Person.objects.get(ssn="123456789"), self.ann)

    def test_complete_fields_edited_in_the_database_stop_queries_naming_the_key(self):
        self.edit(complete_fields=["search_app.Person.ssn", "search_app.Person.email"])
        with self.assertRaises(IndexKeyUnavailableError) as caught:
            Person.objects.get(ssn="123456789")
        self.assertEqual(caught.exception.key_id, self.key.key_id)
        message = str(caught.exception)
        self.assertIn(f"blind-index key {self.key.hex_id}", message)
        self.assertIn(f"manage.py authenticate_data_keys {self.key.hex_id}", message)
        # Writes still hash under it: its material is authenticated by the wrap.
        bob = Person.objects.create(name="bob", ssn="987-65-4321")
        self.assertIsNotNone(Person.objects.filter(pk=bob.pk).values("ssn_bidx_a")[0]["ssn_bidx_a"])

    def test_a_filling_key_made_active_in_the_database_is_refused(self):
        self.edit(state=IndexKeyState.DRAINING)  # the real active key, demoted by hand
        other = IndexKey.objects.create(  # a filling key (signed by save()), then promoted
            key_id=self.key.key_id ^ 1,
            slot="b",
            state=IndexKeyState.FILLING,
            wrapped_key=master_keys()[0].wrap(self.key.key_id ^ 1, bytes(range(32))),
            master_key_fingerprint=self.key.master_key_fingerprint,
            created_at=self.key.created_at,
            state_since=self.key.state_since,
        )
        IndexKey.objects.filter(pk=other.pk).update(state=IndexKeyState.ACTIVE)
        reset_index_key_ring()
        with self.assertRaisesMessage(
            IndexKeyUnavailableError, f"blind-index key {other.hex_id} (slot b, active)"
        ) as caught:
            list(Person.objects.filter(ssn="123456789"))
        self.assertIn("does not verify", str(caught.exception))

    def test_an_unauthenticated_key_is_refused_until_an_operator_signs_it(self):
        self.edit(metadata_mac=None)
        with self.assertRaisesMessage(IndexKeyUnavailableError, "not authenticated"):
            Person.objects.get(ssn="123456789")
        out = StringIO()
        call_command("authenticate_data_keys", self.key.hex_id, "--no-input", stdout=out)
        self.assertIn("1 keys authenticated; 0 were already.", out.getvalue())
        reset_index_key_ring()
        self.assertEqual(Person.objects.get(ssn="123456789"), self.ann)

    def test_every_legitimate_transition_keeps_the_mac_current(self):
        self.key.complete_fields = ["search_app.Person.ssn"]
        self.key.save(update_fields=["complete_fields"])
        self.key.refresh_from_db()
        self.assertEqual(metadata_verdict(self.key), Metadata.VERIFIED)


class HandWrittenBlindIndexTests(FreshKeyRingMixin, TestCase):
    def stored(self, instance, column):
        return bytes(type(instance).objects.filter(pk=instance.pk).values(column)[0][column]).hex()

    def test_equals_what_an_indexed_field_of_that_name_stores(self):
        person = Person.objects.create(name="ann", ssn="123-45-6789")
        self.assertEqual(
            EncryptionService.blind_index("123 45 6789", "search_app.Person.ssn", "digits"),
            self.stored(person, "ssn_bidx_a"),
        )
        record = Record.objects.create(code="AB-1", label="Mixed Case")
        self.assertEqual(
            EncryptionService.blind_index("AB-1", "search_app.Record.code"),
            self.stored(record, "code_bidx_a"),
        )
        self.assertEqual(
            EncryptionService.blind_index("  mixed CASE", "search_app.Record.label", "lower"),
            self.stored(record, "label_bidx_a"),
        )

    def test_names_separate_equal_values_and_none_stays_none(self):
        one = EncryptionService.blind_index("123456789", "customer.ssn")
        self.assertRegex(one, r"^[0-9a-f]{32}$")
        self.assertNotEqual(one, EncryptionService.blind_index("123456789", "customer.phone"))
        self.assertIsNone(EncryptionService.blind_index(None, "customer.ssn"))
        with self.assertRaises(ValidationError):
            EncryptionService.blind_index("no digits", "customer.ssn", "digits")
