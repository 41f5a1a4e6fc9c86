"""The admin over an indexed field: ``search_fields = ["=ssn", "name"]`` finds exactly the rows
the SSN or the name match, for any term, and the add form reports a duplicate SSN with Django's
own message."""

from django.contrib import admin
from django.contrib.admin import AdminSite
from django.contrib.auth import get_user_model
from django.test import SimpleTestCase, TestCase
from django.urls import reverse

from data_encryption.checks import check_admin_search_fields
from data_encryption.tests.search_app.admin import PersonAdmin
from data_encryption.tests.search_app.models import Person
from data_encryption.tests.utils import FreshKeyRingMixin


class PersonAdminTests(FreshKeyRingMixin, TestCase):
    def setUp(self):
        super().setUp()
        user = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw")
        self.client.force_login(user)
        self.ann = Person.objects.create(name="ann", ssn="123-45-6789")
        self.bob = Person.objects.create(name="bob 123456789", ssn="987-65-4321")
        self.carol = Person.objects.create(name="carol")

    def search(self, term):
        response = self.client.get(reverse("admin:search_app_person_changelist"), {"q": term})
        self.assertEqual(response.status_code, 200)
        return sorted(obj.pk for obj in response.context["cl"].result_list)

    def test_search_by_ssn_spelled_any_way_or_by_name(self):
        self.assertEqual(self.search("123-45-6789"), [self.ann.pk])
        # The admin splits a term at spaces and needs every word to match some field; quoted,
        # a spaced SSN is one term.
        self.assertEqual(self.search('"123 45 6789"'), [self.ann.pk])
        self.assertEqual(self.search("123 45 6789"), [self.bob.pk])  # by the words in his name
        self.assertEqual(self.search("987654321"), [self.bob.pk])
        self.assertEqual(self.search("carol"), [self.carol.pk])
        self.assertEqual(self.search("000-00-0000"), [])

    def test_a_term_the_normaliser_refuses_searches_the_name_only(self):
        self.assertEqual(self.search("bob"), [self.bob.pk])
        self.assertEqual(self.search("nobody"), [])

    def test_add_form_reports_a_duplicate_ssn(self):
        response = self.client.post(
            reverse("admin:search_app_person_add"), {"name": "x", "ssn": "123456789", "email": ""}
        )
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            response.context["adminform"].form.errors["ssn"],
            ["Person with this Ssn already exists."],
        )
        self.assertEqual(Person.objects.count(), 3)

    def test_change_form_reports_a_duplicate_ssn_and_keeps_its_own(self):
        url = reverse("admin:search_app_person_change", args=[self.bob.pk])
        response = self.client.post(url, {"name": "bob", "ssn": "123 45 6789", "email": ""})
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            response.context["adminform"].form.errors["ssn"],
            ["Person with this Ssn already exists."],
        )
        response = self.client.post(url, {"name": "bob", "ssn": "987654321", "email": ""})
        self.assertEqual(response.status_code, 302)
        self.bob.refresh_from_db()
        self.assertEqual(self.bob.ssn, "987654321")
        self.assertEqual(Person.objects.get(ssn="987-65-4321"), self.bob)


class SearchFieldsCheckTests(SimpleTestCase):
    def test_entries_an_encrypted_field_cannot_answer_are_errors(self):
        site = AdminSite(name="search_fields_check")

        class BadPersonAdmin(admin.ModelAdmin):
            search_fields = ["ssn", "=ssn", "=email", "name", "^ssn", "ssn__exact", "email__in"]

        site.register(Person, BadPersonAdmin)
        errors = [e for e in check_admin_search_fields() if e.obj is BadPersonAdmin]
        self.assertEqual([e.id for e in errors], ["data_encryption.E034"] * 3)
        self.assertEqual(
            [e.msg.split(":")[0] for e in errors],
            [
                "BadPersonAdmin.search_fields has 'ssn'",
                "BadPersonAdmin.search_fields has '=email'",  # its normaliser keeps case
                "BadPersonAdmin.search_fields has '^ssn'",
            ],
        )
        self.assertIn("'icontains'", errors[0].msg)
        self.assertIn("write '=<field>' in search_fields", errors[0].hint)

    def test_the_test_projects_admin_passes(self):
        self.assertEqual([e for e in check_admin_search_fields() if e.obj is PersonAdmin], [])
