"""What a run stopped by a database error records and shows: the error's class, SQLSTATE and
constraint, never its text, which on PostgreSQL quotes the failing row (the review's L3)."""

import json
from io import StringIO
from unittest import skipUnless

from django.contrib.auth.models import User
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import TestCase, override_settings
from django.urls import reverse

from data_encryption.models import RotationFailure, RotationRun
from data_encryption.services import KeyRotationService
from data_encryption.tests.runner import CapturingHandler
from data_encryption.tests.testapp.models import Customer
from data_encryption.tests.utils import FAST, FreshKeyRingMixin

# What PostgreSQL's DETAIL repeats: every column of the row, the plain ones included.
ROW_TEXT = "Jane Q. Public, DOB 1970-01-01"
TABLE = Customer._meta.db_table


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class FailureReasonTests(FreshKeyRingMixin, TestCase):
    def setUp(self):
        super().setUp()
        customer = Customer(name=ROW_TEXT)
        customer.ssn = "123-45-6789"
        customer.save()
        self.logged_before = len(CapturingHandler.records)

    def everything_shown(self, report):
        """The texts a failed run reaches people through: the report, the run row and its
        failures, the log, the email, ``encryption_status`` (text and JSON) and the admin
        pages."""
        run = RotationRun.objects.get(pk=report["run_id"])
        texts = [json.dumps(report, default=str), run.reason]
        texts += CapturingHandler.records[self.logged_before :]
        texts += [failure.error for failure in RotationFailure.objects.filter(run=run)]
        texts += [message.body for message in mail.outbox]
        texts += [
            "".join(alternative[0] for alternative in getattr(message, "alternatives", []))
            for message in mail.outbox
        ]
        for options in ({}, {"json": True}):
            out = StringIO()
            call_command("encryption_status", stdout=out, **options)
            texts.append(out.getvalue())
        admin = User.objects.create_superuser("admin", "admin@example.com", "pw")
        self.client.force_login(admin)
        for url in (
            reverse("admin:data_encryption_rotationrun_changelist"),
            reverse("admin:data_encryption_rotationrun_change", args=[run.pk]),
        ):
            response = self.client.get(url)
            self.assertEqual(response.status_code, 200)
            texts.append(response.content.decode())
        self.assertTrue(mail.outbox, "the failure was not emailed")
        return "\n".join(texts)

    def assert_not_shown(self, text, shown):
        at = shown.find(text)
        if at >= 0:  # only the neighbourhood: the whole of ``shown`` is pages long
            self.fail(f"{text!r} is shown: ...{shown[max(0, at - 200) : at + 100]}...")

    def rotate_expecting_failure(self):
        report = KeyRotationService().rotate()
        self.assertEqual(report["status"], "failed")
        return report

    @skipUnless(connection.vendor == "postgresql", "PostgreSQL's DETAIL quotes the failing row")
    def test_a_check_constraint_on_postgresql_records_sqlstate_and_constraint_only(self):
        # The review's exp10: a NOT VALID check accepts the rows already there and refuses the
        # rotation's UPDATE; the reason used to end "DETAIL: Failing row contains (1, Jane Q.
        # Public, DOB 1970-01-01, \xff4445...)".
        with connection.cursor() as cursor:
            cursor.execute(
                f"ALTER TABLE {TABLE} ADD CONSTRAINT customer_ssn_frozen "
                "CHECK (_ssn IS NULL) NOT VALID"
            )
        report = self.rotate_expecting_failure()
        shown = self.everything_shown(report)
        self.assert_not_shown(ROW_TEXT, shown)
        self.assert_not_shown("Failing row", shown)
        self.assertIn("IntegrityError (SQLSTATE 23514, constraint customer_ssn_frozen)", shown)

    def test_a_trigger_that_quotes_the_row_records_no_row_text(self):
        # Any database error's text may quote data (here a trigger puts the row's name in its
        # message), so none is kept, on either database.
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    "CREATE FUNCTION refuse_update() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused: %', NEW.name; END $$"
                )
                cursor.execute(
                    f"CREATE TRIGGER refuse BEFORE UPDATE ON {TABLE} "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_update()"
                )
                expected = "SQLSTATE P0001"
            else:
                cursor.execute(
                    f"CREATE TRIGGER refuse BEFORE UPDATE ON {TABLE} "
                    f"BEGIN SELECT RAISE(ABORT, 'refused: {ROW_TEXT}'); END"
                )
                expected = "IntegrityError (SQLITE_CONSTRAINT_TRIGGER)"
        # TestCase rolls the trigger back with the test (DDL is transactional on both).
        report = self.rotate_expecting_failure()
        shown = self.everything_shown(report)
        self.assert_not_shown(ROW_TEXT, shown)
        self.assertIn(expected, shown)
