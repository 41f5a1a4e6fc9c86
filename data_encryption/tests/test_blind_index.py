"""Blind indexes: the field finds rows by exact value and keeps values unique, on every write
path (docs/search.md)."""

import datetime
import uuid

from django import forms
from django.core.exceptions import FieldError, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from data_encryption.exceptions import EncryptedLookupError
from data_encryption.tests.search_app.models import Employee, Person, Record
from data_encryption.tests.utils import FreshKeyRingMixin


def pks(queryset):
    return sorted(queryset.values_list("pk", flat=True))


class QueryTests(FreshKeyRingMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.ann = Person.objects.create(name="ann", ssn="123-45-6789", email="Ann@Example.COM")
        self.bob = Person.objects.create(name="bob", ssn="987654321", email="bob@example.com")
        self.nobody = Person.objects.create(name="nobody")

    def test_exact_in_exclude_get_q_exists(self):
        self.assertEqual(pks(Person.objects.filter(ssn="123456789")), [self.ann.pk])
        self.assertEqual(pks(Person.objects.filter(ssn="123 45 6789")), [self.ann.pk])
        self.assertEqual(Person.objects.get(ssn="987-65-4321"), self.bob)
        self.assertEqual(
            pks(Person.objects.filter(ssn__in=["123456789", "987654321", "000"])),
            [self.ann.pk, self.bob.pk],
        )
        self.assertEqual(pks(Person.objects.filter(ssn__in=[])), [])
        self.assertEqual(
            pks(Person.objects.exclude(ssn="123456789")), [self.bob.pk, self.nobody.pk]
        )
        self.assertEqual(
            pks(Person.objects.filter(Q(ssn="123456789") | Q(email="BOB@example.com"))),
            [self.ann.pk],  # the "email" normaliser folds the domain only
        )
        self.assertEqual(
            pks(Person.objects.filter(Q(ssn="123456789") | Q(email="bob@EXAMPLE.com"))),
            [self.ann.pk, self.bob.pk],
        )
        self.assertTrue(Person.objects.filter(email="Ann@example.com").exists())
        self.assertFalse(Person.objects.filter(email="ann@example.com").exists())
        self.assertEqual(pks(Person.objects.filter(ssn=None)), [self.nobody.pk])

    def test_a_value_the_normaliser_refuses_matches_nothing(self):
        self.assertEqual(pks(Person.objects.filter(ssn="no digits")), [])
        self.assertEqual(
            pks(Person.objects.filter(Q(ssn="no digits") | Q(name="bob"))), [self.bob.pk]
        )

    def test_other_lookups_still_refused(self):
        with self.assertRaises(EncryptedLookupError):
            list(Person.objects.filter(ssn__startswith="123"))
        with self.assertRaises(FieldError):
            list(Person.objects.filter(ssn=F("name")))

    def test_iexact_only_where_the_normaliser_folds_case(self):
        self.assertEqual(pks(Person.objects.filter(ssn__iexact="123456789")), [self.ann.pk])
        with self.assertRaises(EncryptedLookupError):
            list(Person.objects.filter(email__iexact="ann@example.com"))


class WritePathTests(FreshKeyRingMixin, TestCase):
    def assertFinds(self, value, expected):
        self.assertEqual(pks(Person.objects.filter(ssn=value)), sorted(expected))

    def test_update_paths(self):
        a = Person.objects.create(name="a", ssn="111-11-1111")
        b = Person.objects.create(name="b", ssn="222-22-2222")
        Person.objects.filter(pk=a.pk).update(ssn="333-33-3333")
        self.assertFinds("333333333", [a.pk])
        self.assertFinds("111111111", [])
        Person.objects.filter(pk=a.pk).update(ssn=None)
        self.assertFinds("333333333", [])
        a.refresh_from_db()
        self.assertIsNone(a.ssn)
        a.ssn, b.ssn = "444-44-4444", "555-55-5555"
        Person.objects.bulk_update([a, b], ["ssn"], batch_size=1)
        self.assertFinds("444444444", [a.pk])
        self.assertFinds("555555555", [b.pk])
        a.ssn = "666-66-6666"
        a.save(update_fields=["ssn"])
        self.assertFinds("666666666", [a.pk])
        Person.objects.update(ssn=F("ssn"))
        self.assertFinds("666666666", [a.pk])
        obj, created = Person.objects.update_or_create(
            ssn="666666666", defaults={"ssn": "777-77-7777"}
        )
        self.assertFalse(created)
        self.assertFinds("777777777", [a.pk])
        obj, created = Person.objects.update_or_create(ssn="888888888", defaults={"name": "c"})
        self.assertTrue(created)
        self.assertFinds("888-88-8888", [obj.pk])
        made = Person.objects.bulk_create([Person(name="d", ssn="999-99-9999"), Person(name="e")])
        self.assertFinds("999999999", [made[0].pk])

    def test_one_assignment_per_index_column(self):
        a = Person.objects.create(name="a", ssn="111-11-1111")
        a.ssn = "222222222"
        for save in (
            lambda: a.save(),
            lambda: a.save(update_fields=["ssn"]),
            lambda: Person.objects.filter(pk=a.pk).update(ssn="3333"),
            lambda: Person.objects.bulk_update([a], ["ssn"]),
        ):
            with CaptureQueriesContext(connection) as queries:
                save()
            update = next(q["sql"] for q in queries if q["sql"].startswith("UPDATE"))
            self.assertEqual(update.count('"ssn_bidx_a" ='), 1, update)

    def test_child_model(self):
        e = Employee.objects.create(name="e", ssn="123456789", badge=7)
        self.assertEqual(Employee.objects.get(badge="7"), e)
        self.assertEqual(Employee.objects.get(ssn="123-45-6789"), e)
        Employee.objects.filter(pk=e.pk).update(badge=8, ssn="1")
        self.assertEqual(Employee.objects.get(badge=8, ssn="1"), e)

    def test_every_kind(self):
        ref = uuid.uuid4()
        r = Record.objects.create(
            code="AbC", number=2**40, born=datetime.date(2000, 1, 2), ref=ref, label=" Hello "
        )
        self.assertEqual(Record.objects.get(code="AbC"), r)
        self.assertFalse(Record.objects.filter(code="abc").exists())
        self.assertEqual(Record.objects.get(number=str(2**40)), r)
        self.assertEqual(Record.objects.get(born="2000-01-02"), r)
        self.assertEqual(Record.objects.get(ref=str(ref)), r)
        self.assertEqual(Record.objects.get(label="hello"), r)
        self.assertEqual(Record.objects.get(label__iexact="HELLO"), r)


class UniqueTests(FreshKeyRingMixin, TestCase):
    def test_database_refuses_a_duplicate(self):
        Person.objects.create(ssn="123-45-6789")
        with self.assertRaises(IntegrityError), transaction.atomic():
            Person.objects.create(ssn="123456789")

    def test_validate_unique_and_forms(self):
        Person.objects.create(ssn="123-45-6789")
        with self.assertRaises(ValidationError) as caught:
            Person(ssn="123456789").full_clean()
        self.assertEqual(
            caught.exception.message_dict["ssn"], ["Person with this Ssn already exists."]
        )

        class PersonForm(forms.ModelForm):
            class Meta:
                model = Person
                fields = ["name", "ssn"]

        form = PersonForm(data={"name": "x", "ssn": "123 45 6789"})
        self.assertFalse(form.is_valid())
        self.assertEqual(form.errors["ssn"], ["Person with this Ssn already exists."])
        form = PersonForm(data={"name": "x", "ssn": "abc"})
        self.assertFalse(form.is_valid())
        self.assertIn("digit", form.errors["ssn"][0])
        form = PersonForm(data={"name": "x", "ssn": "111-11-1111"})
        self.assertTrue(form.is_valid(), form.errors)
        saved = form.save()
        form = PersonForm(data={"name": "y", "ssn": "111-11-1111"}, instance=saved)
        self.assertTrue(form.is_valid(), form.errors)

    def test_save_refuses_what_the_normaliser_refuses(self):
        with self.assertRaises(ValidationError):
            Person.objects.create(ssn="abc")
        self.assertFalse(Person.objects.exists())
