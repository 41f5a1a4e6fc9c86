"""Bad input to a conversion: each row that cannot be converted is reported by pk and field (never
its value), left byte for byte as it was, and the run finishes and says how many."""

import json

from cryptography.fernet import Fernet
from django.db import connection
from django.test import TestCase

from data_encryption.models import RotationFailure, RunStatus
from data_encryption.services import KeyRotationService
from data_encryption.tests.conversion_utils import (
    LABEL,
    in_transition,
    insert_legacy,
    is_envelope,
    json_text,
    store_legacy,
    stored,
)
from data_encryption.tests.runner import CapturingHandler
from data_encryption.tests.testapp.models import Patient
from data_encryption.tests.utils import FreshKeyRingMixin

TOO_LONG = "C-678901234"  # 11 characters; the field's max_length is 10
NOT_UTF8 = b"caf\xe9 \xff\xfe secret-notes"
NOT_JSON = '{"diagnosis": "secret-profile", '


class BadInputTests(FreshKeyRingMixin, TestCase):
    def assertNeverShown(self, report, *values):
        """No value reaches the report, the failure rows or the log."""
        shown = [
            json.dumps(report.as_dict(), default=str),
            *RotationFailure.objects.values_list("error", flat=True),
            *CapturingHandler.records,
        ]
        for value in values:
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            for piece in (text, text[:11]):
                self.assertFalse(any(piece in line for line in shown), piece)

    @in_transition()
    def test_each_bad_value_fails_its_row_alone(self):
        good = ("good", "C-11122233", "fine", json_text({"ok": True}), 5)
        pks = insert_legacy(
            [
                good,
                ("long", TOO_LONG, "n", json_text(1), 1),
                ("bytes", "C-22233344", NOT_UTF8, json_text(2), 2),
                ("json", "C-33344455", "n", NOT_JSON, 3),
                good,
            ]
        )
        before = {
            pk: {name: stored(pk, name) for name in ("code", "notes", "profile")} for pk in pks
        }
        report = KeyRotationService(batch_size=2).encrypt_existing([LABEL])
        self.assertEqual(report.status, RunStatus.FAILED)
        self.assertEqual(report.records_processed, 5)
        self.assertEqual(report.failed_records, 3)
        failures = {(failure.pk, failure.field): failure.error for failure in report.failures}
        self.assertEqual(
            set(failures), {(str(pks[1]), "code"), (str(pks[2]), "notes"), (str(pks[3]), "profile")}
        )
        self.assertIn("(max_length 10)", failures[(str(pks[1]), "code")])
        self.assertIn("is not UTF-8 text", failures[(str(pks[2]), "notes")])
        self.assertIn("is not valid JSON", failures[(str(pks[3]), "profile")])
        # The failed values are left exactly as they were; every other value is converted.
        for pk, name in [(pks[1], "code"), (pks[2], "notes"), (pks[3], "profile")]:
            self.assertEqual(stored(pk, name), before[pk][name])
        for pk in (pks[0], pks[4]):
            self.assertTrue(all(is_envelope(stored(pk, name)) for name in before[pk]))
        self.assertTrue(is_envelope(stored(pks[1], "notes")))  # the row's other columns too
        self.assertEqual(report.legacy_left[f"{LABEL}.code"], 1)
        self.assertIn("3 rows failed: fix them, then run encrypt_existing again", report.reason)
        self.assertNeverShown(report, TOO_LONG, NOT_UTF8, NOT_JSON)

    def test_a_token_under_a_key_the_reader_lacks_fails_its_row(self):
        known, unknown = Fernet.generate_key(), Fernet.generate_key()
        reader = {
            "READER": "data_encryption.tests.legacy_readers.FernetTokenReader",
            "OPTIONS": {"KEYS": [known.decode()]},
        }
        readable = Fernet(known).encrypt(b"readable notes").decode()
        foreign = Fernet(unknown).encrypt(b"foreign-secret").decode()
        with in_transition({f"{LABEL}.notes": reader}):
            pks = insert_legacy(
                [("a", None, readable, None, None), ("b", None, foreign, None, None)]
            )
            foreign_before = stored(pks[1], "notes")
            report = KeyRotationService().encrypt_existing([f"{LABEL}.notes"])
            self.assertEqual((report.status, report.failed_records), (RunStatus.FAILED, 1))
            self.assertEqual(Patient.objects.get(pk=pks[0]).notes, "readable notes")
        self.assertTrue(is_envelope(stored(pks[0], "notes")))
        self.assertEqual(stored(pks[1], "notes"), foreign_before)
        [failure] = report.failures
        self.assertEqual((failure.pk, failure.field), (str(pks[1]), "notes"))
        self.assertIn("not a Fernet token under any key the reader has", failure.error)
        self.assertNeverShown(report, "foreign-secret", foreign)

    @in_transition()
    def test_sqlite_text_that_is_not_utf8_fails_its_row_not_the_run(self):
        # SQLite stores any bytes as TEXT (CAST(x'..' AS TEXT)), and sqlite3 cannot make a str of
        # them: the page is read again with such values as bytes, so the row fails alone.
        if connection.vendor != "sqlite":
            self.skipTest("PostgreSQL refuses text that is not UTF-8 on the way in")
        pks = insert_legacy([("a", "C-1", "fine", None, 1), ("b", "C-2", "x", None, 2)])
        table = connection.ops.quote_name(Patient._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET notes = CAST(x'ff61e9' AS TEXT) WHERE id = %s", [pks[1]]
            )
        report = KeyRotationService(batch_size=10).encrypt_existing([LABEL])
        self.assertEqual((report.status, report.failed_records), (RunStatus.FAILED, 1))
        [failure] = report.failures
        self.assertEqual((failure.pk, failure.field), (str(pks[1]), "notes"))
        self.assertIn("not UTF-8", failure.error)
        self.assertEqual(Patient.objects.get(pk=pks[0]).notes, "fine")
        self.assertTrue(is_envelope(stored(pks[1], "code")))  # the row's other columns too
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT typeof(notes), hex(notes) FROM {table} WHERE id = %s", [pks[1]])
            self.assertEqual(cursor.fetchone(), ("text", "FF61E9"))  # left as it was

    @in_transition()
    def test_plaintext_that_starts_like_the_ascii_form_is_plaintext(self):
        # "de2:" begins the ASCII envelope, but only a canonical one is an envelope.
        [pk] = insert_legacy([("a", "C-1", "de2: call back Tuesday", None, 1)])
        self.assertEqual(Patient.objects.get(pk=pk).notes, "de2: call back Tuesday")
        report = KeyRotationService().encrypt_existing([LABEL])
        self.assertEqual((report.status, report.failed_records), (RunStatus.COMPLETED, 0))
        self.assertTrue(is_envelope(stored(pk, "notes")))
        self.assertEqual(Patient.objects.get(pk=pk).notes, "de2: call back Tuesday")

    @in_transition()
    def test_this_apps_own_legacy_tokens_in_a_plaintext_column_are_opened_not_sealed(self):
        # A Fernet token made with DB_ENCRYPTION_KEY (this app's legacy format) in a column in
        # transition from plaintext: the field reads it as the token it is, so the conversion
        # must seal its plaintext, not the token's text. Text that only starts like a token
        # is the column's plaintext.
        from django.conf import settings

        token = Fernet(settings.DB_ENCRYPTION_KEY).encrypt(b"legacy-secret").decode()
        lookalike = "gAAAAA is how this note starts"
        pks = insert_legacy([("a", "C-1", token, None, 1), ("b", "C-2", lookalike, None, 2)])
        self.assertEqual(Patient.objects.get(pk=pks[0]).notes, "legacy-secret")
        report = KeyRotationService().encrypt_existing([LABEL])
        self.assertEqual((report.status, report.failed_records), (RunStatus.COMPLETED, 0))
        self.assertEqual(report.legacy_left[f"{LABEL}.notes"], 0)
        self.assertTrue(is_envelope(stored(pks[0], "notes")))
        self.assertTrue(is_envelope(stored(pks[1], "notes")))
        self.assertEqual(Patient.objects.get(pk=pks[0]).notes, "legacy-secret")
        self.assertEqual(Patient.objects.get(pk=pks[1]).notes, lookalike)

    def test_values_save_never_checked_are_converted_limits_are_kept(self):
        # A plain URLField or EmailField holds whatever save() was given (it runs no
        # validators); the conversion checks only what the plain column enforced (max_length),
        # or those rows would stay unencrypted for good.
        columns = {f"{LABEL}.homepage": "plaintext", f"{LABEL}.email": "plaintext"}
        with in_transition(columns):
            [pk] = insert_legacy([("a", None, None, None, None)])
            store_legacy(pk, homepage="not a url", email="not-an-email")
            report = KeyRotationService().encrypt_existing([LABEL])
            self.assertEqual((report.status, report.failed_records), (RunStatus.COMPLETED, 0))
            patient = Patient.objects.get(pk=pk)
        self.assertEqual((patient.homepage, patient.email), ("not a url", "not-an-email"))
        self.assertTrue(is_envelope(stored(pk, "homepage")))
