"""Findings of the outside review of the blind index: each test failed before its fix."""

import io

from django.core.management import call_command
from django.db import connection
from django.test import TestCase

from data_encryption.exceptions import BlindIndexIncomplete
from data_encryption.index_keys import reset_index_key_ring
from data_encryption.models import IndexKey
from data_encryption.tests.search_app.models import Person
from data_encryption.tests.utils import FreshKeyRingMixin

SSN = "search_app.Person.ssn"


def pks(queryset):
    return sorted(queryset.values_list("pk", flat=True))


def rebuild(*args):
    out = io.StringIO()
    call_command("rebuild_blind_index", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


class LostIndexKeyTests(FreshKeyRingMixin, TestCase):
    """docs/search.md: "a database restored without its index keys" makes queries refuse, never
    answer empty. The index columns still hold hashes under the lost key, so no row lacks an
    index and the count of missing ones alone finds nothing."""

    def test_a_lost_index_key_table_refuses_queries_until_recomputed(self):
        ann = Person.objects.create(name="ann", ssn="123-45-6789")
        Person.objects.create(name="bob", ssn="987-65-4321")
        self.assertEqual(pks(Person.objects.filter(ssn="123456789")), [ann.pk])
        IndexKey.objects.all().delete()  # the table lost; a new first key is made on use
        reset_index_key_ring()

        with self.assertRaises(BlindIndexIncomplete) as caught:
            list(Person.objects.filter(ssn="123456789"))
        self.assertIn(
            "rebuild_blind_index --recompute search_app.Person.ssn", str(caught.exception)
        )
        self.assertNotIn("6789", str(caught.exception))

        rebuild("--recompute", SSN)
        self.assertEqual(pks(Person.objects.filter(ssn="123456789")), [ann.pk])


class DeferredSaveTests(FreshKeyRingMixin, TestCase):
    def test_saving_a_row_loaded_without_its_value_keeps_the_index_the_database_has(self):
        """A row loaded with ``defer("ssn")`` and saved after a rebuild (or an index-key walk)
        filled its index wrote the index it had loaded (NULL) back over it: the field stayed
        recorded complete, so queries missed the row."""
        ann = Person.objects.create(name="ann", ssn="123-45-6789")
        Person.objects.update(ssn_bidx_a=None)  # as a row written by raw SQL
        stale = Person.objects.defer("ssn").get()
        rebuild(SSN)
        stale.name = "ann b."
        stale.save()
        self.assertEqual(pks(Person.objects.filter(ssn="123456789")), [ann.pk])


class UpsertTests(FreshKeyRingMixin, TestCase):
    def test_bulk_create_updating_conflicts_writes_the_index_with_the_value(self):
        """``bulk_create(update_conflicts=True, update_fields=["ssn"])`` set the ciphertext of a
        conflicting row but left its index as it was: the row was found by its old value, and
        not by its new one."""
        if not connection.features.supports_update_conflicts_with_target:
            self.skipTest("no INSERT ... ON CONFLICT DO UPDATE")
        ann = Person.objects.create(name="ann", ssn="123-45-6789")
        bob = Person.objects.create(name="bob", ssn="987-65-4321")
        Person.objects.bulk_create(
            [
                Person(pk=ann.pk, name="ann", ssn="111-11-1111"),
                Person(name="cy", ssn="2"),
                Person(pk=bob.pk, name="bob", ssn="333-33-3333"),
            ],
            update_conflicts=True,
            update_fields=["ssn"],
            unique_fields=["id"],
        )
        self.assertEqual(pks(Person.objects.filter(ssn="111111111")), [ann.pk])
        self.assertEqual(pks(Person.objects.filter(ssn="123456789")), [])
        self.assertEqual(pks(Person.objects.filter(ssn="333333333")), [bob.pk])
        self.assertEqual(Person.objects.get(ssn="2").name, "cy")


class ChangedNormaliserTests(FreshKeyRingMixin, TestCase):
    """Changing a field's normaliser changes every index value: the field is recorded complete
    with its normaliser, so the change makes it incomplete again and queries refuse, rather
    than silently matching nothing, until the index is recomputed."""

    def test_a_changed_normaliser_refuses_queries_until_recomputed(self):
        from data_encryption.blind_index import normalisers

        ann = Person.objects.create(name="ann", email="Ann@Example.com")
        self.assertEqual(pks(Person.objects.filter(email="Ann@EXAMPLE.com")), [ann.pk])
        field = Person._meta.get_field("email")
        saved = (field.normaliser, field.normalise, field.normaliser_folds_case)
        self.addCleanup(
            lambda: (
                setattr(field, "normaliser", saved[0])
                or setattr(field, "normalise", saved[1])
                or setattr(field, "normaliser_folds_case", saved[2])
            )
        )
        # What a deploy with normaliser="email_lower" does to the field.
        field.normaliser, field.normalise = "email_lower", normalisers.email_lower
        field.normaliser_folds_case = True

        with self.assertRaisesMessage(BlindIndexIncomplete, "the normaliser changed"):
            list(Person.objects.filter(email="ann@example.com"))
        rebuild("--recompute", "search_app.Person.email")
        self.assertEqual(pks(Person.objects.filter(email="ANN@example.com")), [ann.pk])
