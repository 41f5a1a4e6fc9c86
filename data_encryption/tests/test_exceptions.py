"""describe_error and describe_traceback: what a record or a log may say about an exception."""

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connection, transaction
from django.test import SimpleTestCase, TestCase

from data_encryption.exceptions import (
    DecryptionError,
    describe_error,
    describe_traceback,
)

SECRET = "-".join(["SSN 123", "45", "6789"])


class DescribeErrorTests(SimpleTestCase):
    def test_our_errors_and_configuration_errors_keep_their_message(self):
        self.assertEqual(
            describe_error(DecryptionError("Data key 0000001f is unknown.")),
            "DecryptionError: Data key 0000001f is unknown.",
        )
        self.assertEqual(
            describe_error(ImproperlyConfigured("EMAIL_SECURITY is not set.")),
            "ImproperlyConfigured: EMAIL_SECURITY is not set.",
        )

    def test_an_os_error_keeps_its_errno_text_and_file(self):
        try:
            Path("/nonexistent/dir/backup.json").read_bytes()
        except OSError as exc:
            described = describe_error(exc)
        self.assertEqual(
            described, "FileNotFoundError: No such file or directory: /nonexistent/dir/backup.json"
        )

    def test_anything_else_is_named_only(self):
        self.assertEqual(describe_error(ValueError(f"bad value {SECRET!r}")), "ValueError")
        self.assertEqual(describe_error(KeyError(SECRET)), "KeyError")


class DatabaseErrorTests(TestCase):
    def integrity_error(self):
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TEMPORARY TABLE described (name varchar(50), "
                "CONSTRAINT described_name_short CHECK (length(name) < 5))"
            )
            try:
                with transaction.atomic():
                    cursor.execute("INSERT INTO described (name) VALUES (%s)", [SECRET])
            except IntegrityError as exc:
                return exc
        self.fail("the CHECK constraint did not fire")

    def test_a_database_error_gives_class_sqlstate_and_constraint_never_its_text(self):
        exc = self.integrity_error()
        if connection.vendor == "postgresql":
            self.assertIn(SECRET, str(exc))  # DETAIL: Failing row contains (SSN 123-45-6789).
            expected = "IntegrityError (SQLSTATE 23514, constraint described_name_short)"
        else:
            expected = "IntegrityError (SQLITE_CONSTRAINT_CHECK)"
        self.assertEqual(describe_error(exc), expected)

    def test_a_traceback_for_the_log_has_frames_but_no_message(self):
        exc = self.integrity_error()
        described = describe_traceback(exc)
        self.assertNotIn(SECRET, described)
        self.assertIn("in integrity_error", described)
        self.assertTrue(described.startswith("IntegrityError ("))
