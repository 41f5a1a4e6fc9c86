"""``manage.py encrypt_existing`` (a thin door onto the service), what ``encryption_status``
shows of columns in transition, and W005 when a transition is over."""

import json
from io import StringIO

from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase

from data_encryption.checks import check_transition_over
from data_encryption.tests.conversion_utils import (
    LABEL,
    in_transition,
    insert_legacy,
    is_envelope,
    json_text,
    stored,
)
from data_encryption.tests.utils import FreshKeyRingMixin

CODE = f"{LABEL}.code"
NOTES = f"{LABEL}.notes"


def run(*args):
    out = StringIO()
    call_command("encrypt_existing", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@in_transition()
class EncryptExistingCommandTests(FreshKeyRingMixin, TestCase):
    def test_it_converts_reports_and_says_the_transition_can_end(self):
        pks = insert_legacy([("a", "C-11122233", "n", json_text(1), 1)] * 3)
        out = run(CODE, NOTES, "--batch-size", "2")
        self.assertTrue(all(is_envelope(stored(pk, "code")) for pk in pks))
        self.assertTrue(all(is_envelope(stored(pk, "notes")) for pk in pks))
        self.assertFalse(is_envelope(stored(pks[0], "profile")))  # not named
        self.assertIn("Conversion completed.", out)
        self.assertIn(f"  columns:            {CODE}, {NOTES}\n", out)
        self.assertIn("  records processed:  3\n", out)
        self.assertIn("  converted:          6\n", out)
        self.assertIn("  failed records:     0\n", out)
        self.assertIn(f"  {LABEL}.code: ", out)
        self.assertIn(
            f"  No legacy value is left in {CODE}, {NOTES}: the transition is over; remove them "
            "from DATA_ENCRYPTION_LEGACY_COLUMNS and deploy.",
            out,
        )

    def test_failed_rows_are_listed_by_pk_and_the_exit_status_says_so(self):
        pks = insert_legacy([("a", "C-678901234", None, None, None), ("b", "1", None, None, None)])
        out = StringIO()
        with self.assertRaisesMessage(
            CommandError, "1 rows could not be converted (listed above by pk, each left as it was)."
        ):
            call_command("encrypt_existing", CODE, stdout=out)
        text = out.getvalue()
        self.assertIn(f"    {LABEL} pk={pks[0]} field=code: The value read by", text)
        self.assertIn("(max_length 10)", text)
        self.assertNotIn("678901234", text)
        self.assertIn(f"1 legacy values are left in {CODE} (1 rows failed", text)

    def test_dry_run_writes_nothing(self):
        pks = insert_legacy([("a", "C-11122233", None, None, None)])
        before = stored(pks[0], "code")
        out = run(CODE, "--dry-run")
        self.assertEqual(stored(pks[0], "code"), before)
        self.assertIn("Dry run completed.", out)
        self.assertIn("  would convert:      1\n", out)
        self.assertIn("Census before the conversion", out)

    def test_json(self):
        insert_legacy([("a", "C-11122233", None, None, None)])
        report = json.loads(run(CODE, "--json"))
        self.assertEqual((report["kind"], report["records_converted"]), ("conversion", 1))
        self.assertEqual(report["legacy_left"], {CODE: 0})

    def test_a_column_not_in_transition_is_refused(self):
        with (
            in_transition({CODE: "plaintext"}),
            self.assertRaisesMessage(CommandError, f"{NOTES} is not in DATA_ENCRYPTION_LEGACY"),
        ):
            run(NOTES)

    def test_a_bad_batch_size_is_refused(self):
        with self.assertRaisesMessage(CommandError, "--batch-size must be a positive number"):
            run(CODE, "--batch-size", "0")


@in_transition({CODE: "plaintext"})
class TransitionStatusTests(FreshKeyRingMixin, TestCase):
    databases = {"default"}

    def test_status_shows_the_values_left_then_w005_says_the_transition_is_over(self):
        insert_legacy([("a", "C-11122233", None, None, None)] * 2)
        out = StringIO()
        call_command("encryption_status", stdout=out)
        self.assertIn(
            f"  {CODE}: 2 legacy values left (run encrypt_existing {CODE})", out.getvalue()
        )
        self.assertEqual(check_transition_over(databases=["default"]), [])  # no census yet
        run(CODE)
        out = StringIO()
        call_command("encryption_status", stdout=out)
        self.assertIn(f"  {CODE}: none left; the transition is over", out.getvalue())
        self.assertIn("conversion, 2 records, 0 failed", out.getvalue())
        [warning] = check_transition_over(databases=["default"])
        self.assertEqual(warning.id, "data_encryption.W005")
        self.assertEqual(
            warning.msg,
            f"{CODE} is in DATA_ENCRYPTION_LEGACY_COLUMNS, but the last census found no legacy "
            "value left in it: the transition is over; remove the entry.",
        )
        self.assertEqual(check_transition_over(databases=None), [])
        with in_transition({NOTES: "plaintext"}):
            self.assertEqual(check_transition_over(databases=["default"]), [])  # never counted
