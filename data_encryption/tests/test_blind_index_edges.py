"""The indexed field's edge cases: inheritance and proxies, ``bind_to_pk``, fixtures, partial
loads, expressions in updates, values of the wrong type or length in queries, normalisers given
by path or as functions, an index key nobody can unwrap, and rows without an index."""

import io
import json
import os

from cryptography.fernet import Fernet
from django.core.exceptions import FieldError, ValidationError
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Value
from django.test import TestCase
from django.test.utils import isolate_apps

from data_encryption import fields
from data_encryption.exceptions import (
    BlindIndexError,
    BlindIndexIncomplete,
    IndexKeyUnavailableError,
)
from data_encryption.index_keys import index_key_ring, reset_index_key_ring
from data_encryption.master_key import MasterKey
from data_encryption.models import IndexKey
from data_encryption.tests.search_app.models import (
    BoundCard,
    Client,
    Person,
    PersonProxy,
    Record,
    Supplier,
)
from data_encryption.tests.utils import FreshKeyRingMixin


def pks(queryset):
    return sorted(queryset.values_list("pk", flat=True))


def index_of(instance, column):
    return bytes(type(instance).objects.filter(pk=instance.pk).values_list(column, flat=True)[0])


class ModelShapeTests(FreshKeyRingMixin, TestCase):
    def test_abstract_base_with_two_concrete_children(self):
        s = Supplier.objects.create(phone="+1 555 0100", code="ab 1")
        c = Client.objects.create(phone="+1 555 0100", code="AB1")  # another table: allowed
        self.assertEqual(Supplier.objects.get(phone="+15550100"), s)
        self.assertEqual(Client.objects.get(phone=" +1 5550100 "), c)
        self.assertEqual(pks(Supplier.objects.filter(code="Ab1")), [s.pk])
        # Each child's field has its own key: equal values index differently.
        self.assertNotEqual(index_of(s, "phone_bidx_a"), index_of(c, "phone_bidx_a"))
        with self.assertRaises(IntegrityError), transaction.atomic():
            Supplier.objects.create(phone="+15550100")
        Client.objects.create(phone="+1 555 0101")

    def test_proxy_model(self):
        p = PersonProxy.objects.create(name="p", ssn="123-45-6789")
        self.assertEqual(PersonProxy.objects.get(ssn="123456789").pk, p.pk)
        self.assertEqual(Person.objects.get(ssn="123 45 6789").pk, p.pk)
        with self.assertRaises(ValidationError):
            PersonProxy(ssn="123456789").full_clean()
        with self.assertRaises(IntegrityError), transaction.atomic():
            PersonProxy.objects.create(ssn="123456789")

    def test_bind_to_pk_with_a_blind_index(self):
        card = BoundCard.objects.create(number="4111 1111 1111 1111")
        self.assertEqual(BoundCard.objects.get(number="4111-1111-1111-1111"), card)
        card.number = "5500 0000 0000 0004"
        card.save()
        self.assertEqual(BoundCard.objects.get(number="5500000000000004"), card)
        self.assertFalse(BoundCard.objects.filter(number="4111111111111111").exists())
        # Refused while the UPDATE is compiled, inside update()'s own transaction handling (as
        # Django's database errors are): the savepoint keeps the test's transaction usable.
        with self.assertRaises(FieldError), transaction.atomic():
            BoundCard.objects.filter(pk=card.pk).update(number="1")
        with self.assertRaises(IntegrityError), transaction.atomic():
            BoundCard.objects.create(number="5500-0000-0000-0004")


class FixtureTests(FreshKeyRingMixin, TestCase):
    def test_dumpdata_loaddata_round_trip_recomputes_the_index(self):
        ann = Person.objects.create(name="ann", ssn="123-45-6789", email="Ann@Example.com")
        Person.objects.create(name="bob")
        out = io.StringIO()
        call_command("dumpdata", "search_app.person", stdout=out)
        rows = json.loads(out.getvalue())
        self.assertEqual(len(rows), 2)
        for row in rows:
            self.assertFalse([name for name in row["fields"] if "_bidx_" in name], row)
        Person.objects.all().delete()
        path = os.path.join(self.tmp_dir(), "people.json")
        with open(path, "w") as handle:
            handle.write(out.getvalue())
        call_command("loaddata", path, verbosity=0)
        self.assertEqual(Person.objects.get(ssn="123456789").pk, ann.pk)
        self.assertEqual(Person.objects.get(email="Ann@example.COM").pk, ann.pk)
        self.assertEqual(pks(Person.objects.filter(ssn=None)), [ann.pk + 1])

    def tmp_dir(self):
        import tempfile

        folder = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__("shutil").rmtree(folder))
        return folder


class PartialLoadAndUpdateTests(FreshKeyRingMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.ann = Person.objects.create(name="ann", ssn="123-45-6789", email="a@example.com")

    def test_select_for_update(self):
        with transaction.atomic():
            locked = Person.objects.select_for_update().get(ssn="123456789")
            locked.ssn = "111-11-1111"
            locked.save()
        self.assertEqual(Person.objects.get(ssn="111111111"), self.ann)

    def test_only_and_defer_then_save(self):
        before = index_of(self.ann, "ssn_bidx_a")
        partial = Person.objects.only("name").get(pk=self.ann.pk)
        partial.name = "anne"
        partial.save()
        self.assertEqual(index_of(self.ann, "ssn_bidx_a"), before)
        self.assertEqual(Person.objects.get(ssn="123456789").name, "anne")
        deferred = Person.objects.defer("ssn").get(pk=self.ann.pk)
        deferred.email = "b@example.com"
        deferred.save()
        self.assertEqual(Person.objects.get(ssn="123456789", email="b@example.com"), self.ann)
        loaded = Person.objects.only("ssn").get(pk=self.ann.pk)
        loaded.ssn = "222-22-2222"
        loaded.save()
        self.assertEqual(Person.objects.get(ssn="222222222"), self.ann)
        self.assertFalse(Person.objects.filter(ssn="123456789").exists())

    def test_update_through_f_of_the_same_field_keeps_the_index(self):
        before = index_of(self.ann, "ssn_bidx_a")
        Person.objects.filter(pk=self.ann.pk).update(ssn=F("ssn"))
        self.assertEqual(index_of(self.ann, "ssn_bidx_a"), before)
        self.assertEqual(Person.objects.get(ssn="123456789"), self.ann)

    def test_update_through_f_of_another_field_is_refused(self):
        for other in ("name", "email"):
            with self.subTest(other), self.assertRaises(FieldError), transaction.atomic():
                Person.objects.filter(pk=self.ann.pk).update(ssn=F(other))
        self.assertEqual(Person.objects.get(ssn="123456789"), self.ann)

    def test_update_with_a_value_of_the_field(self):
        ssn = Person._meta.get_field("ssn")
        Person.objects.filter(pk=self.ann.pk).update(ssn=Value("333-33-3333", output_field=ssn))
        self.assertEqual(Person.objects.get(ssn="333333333"), self.ann)
        self.ann.refresh_from_db()
        self.assertEqual(self.ann.ssn, "333-33-3333")


class QueryValueTests(FreshKeyRingMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.record = Record.objects.create(code="AbC", number=7)

    def test_a_value_of_the_wrong_type_raises_as_django_does(self):
        with self.assertRaises(ValueError) as caught:
            list(Record.objects.filter(number="abc"))
        self.assertNotIn("abc", str(caught.exception))
        for field in ("born", "ref"):
            with self.subTest(field), self.assertRaises(ValidationError) as caught:
                list(Record.objects.filter(**{field: "not-one"}))
            self.assertNotIn("not-one", str(caught.exception))
        with self.assertRaises(ValidationError):
            list(Record.objects.filter(born__in=["2020-01-01", "soon"]))

    def test_a_too_long_value_matches_nothing(self):
        self.assertFalse(Record.objects.filter(code="AbC" * 100).exists())
        self.assertFalse(Person.objects.filter(ssn="1" * 200).exists())
        self.assertEqual(pks(Record.objects.filter(code__in=["AbC", "x" * 500])), [self.record.pk])

    def test_normaliser_by_path_and_function_keep_migrations_stable(self):
        out = io.StringIO()
        call_command("makemigrations", "search_app", "--check", "--dry-run", stdout=out)
        self.assertIn("No changes detected", out.getvalue())

    @isolate_apps("data_encryption.tests.search_app")
    def test_a_normaliser_that_returns_no_text_is_a_clear_error(self):
        class Odd(__import__("django.db.models", fromlist=["Model"]).Model):
            tag = fields.EncryptedCharField(max_length=9, blind_index=True, normaliser=len)

        field = Odd._meta.get_field("tag")
        with self.assertRaises(BlindIndexError) as caught:
            field.index_input("secret-ish")
        message = str(caught.exception)
        self.assertIn("Odd.tag", message)
        self.assertIn("returned int, not str", message)
        self.assertNotIn("secret-ish", message)


class IndexKeyStateTests(FreshKeyRingMixin, TestCase):
    def test_an_index_key_no_master_key_unwraps_raises_naming_it(self):
        Person.objects.create(name="ann", ssn="123-45-6789")
        active = index_key_ring().active
        stranger = MasterKey(Fernet.generate_key())
        IndexKey.objects.filter(key_id=active.key_id).update(
            wrapped_key=stranger.wrap(active.key_id, os.urandom(32)),
            master_key_fingerprint=stranger.fingerprint,
        )
        reset_index_key_ring()
        for attempt in (
            lambda: list(Person.objects.filter(ssn="123456789")),
            lambda: Person.objects.create(name="bob", ssn="987654321"),
            lambda: Person.objects.filter(name="ann").update(ssn="111111111"),
        ):
            with self.assertRaises(IndexKeyUnavailableError) as caught, transaction.atomic():
                attempt()
            self.assertEqual(caught.exception.key_id, active.key_id)
            self.assertIn(active.hex_id, str(caught.exception))
        self.assertEqual(Person.objects.count(), 1)

    def test_rows_without_an_index_refuse_queries_naming_the_command(self):
        Person.objects.create(name="ann", ssn="123-45-6789")
        table = Person._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (name, email, ssn) SELECT 'raw', email, ssn FROM {table}"
            )
        Person.objects.filter(name="ann").update(ssn="987654321")
        with self.assertRaises(BlindIndexIncomplete) as caught:
            list(Person.objects.filter(ssn="123456789"))
        message = str(caught.exception)
        self.assertIn("1 row(s)", message)
        self.assertIn("manage.py rebuild_blind_index search_app.Person.ssn", message)
        self.assertNotIn("123", message)
