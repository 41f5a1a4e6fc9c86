"""The management commands: rotate_encryption_key (prompt, summary, progress, JSON, exit
status) and encryption_status."""

import io
import json
import os
import sys
from io import StringIO

from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase, override_settings
from django.utils import timezone

from data_encryption.models import (
    RotationChunk,
    RotationRun,
)
from data_encryption.rotation import (
    Rotation,
    resolve_tables,
)
from data_encryption.services import (
    KeyRotationService,
)
from data_encryption.tests.testapp.models import Customer
from data_encryption.tests.utils import (
    FAST,
    FreshKeyRingMixin,
    make_customers,
    primary_id,
)


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class CommandTests(FreshKeyRingMixin, TestCase):
    def call(self, *args, stdin=""):
        out, err = StringIO(), StringIO()
        saved = sys.stdin
        sys.stdin = io.StringIO(stdin)
        try:
            call_command("rotate_encryption_key", *args, stdout=out, stderr=err)
        finally:
            sys.stdin = saved
        return out.getvalue()

    def test_asks_before_rotating(self):
        make_customers(2)
        old = primary_id()
        output = self.call(stdin="no\n")
        self.assertIn("Type 'yes' to continue, or 'no' to cancel: ", output)
        self.assertIn("Rotation cancelled.", output)
        self.assertEqual(primary_id(), old)
        output = self.call(stdin="yes\n")
        self.assertIn("Rotation completed.", output)
        self.assertNotEqual(primary_id(), old)

    def test_closed_stdin_is_a_no(self):
        make_customers(1)
        old = primary_id()
        self.call(stdin="")
        self.assertEqual(primary_id(), old)

    def test_force_and_no_input_do_not_ask(self):
        make_customers(1)
        self.assertIn("Rotation completed.", self.call("--force"))
        self.assertIn("Rotation completed.", self.call("--no-input"))

    def test_summary_and_plain_progress_lines(self):
        make_customers(3)
        output = self.call("--force", "--batch-size", "2")
        self.assertIn("data_encryption_tests.Customer: 3 rows\n", output)
        self.assertIn("data_encryption_tests.Customer: 3 rows done", output)
        self.assertIn("  records processed:  3\n", output)
        self.assertIn("  failed records:     0\n", output)
        self.assertIn("  key backup:         ", output)

    @override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "CHUNK_ROWS": 2})
    def test_progress_counts_the_whole_table_across_its_chunks(self):
        make_customers(5)
        output = self.call("--force", "--batch-size", "2")
        self.assertEqual(output.count("data_encryption_tests.Customer: 5 rows\n"), 1)
        self.assertEqual(output.count("data_encryption_tests.Customer: 5 rows done"), 1)
        chunks = RotationChunk.objects.filter(model="data_encryption_tests.Customer")
        self.assertEqual(chunks.count(), 3)
        for chunk in chunks:  # when each chunk's walk began and ended, for the ledger
            self.assertTrue(chunk.done)
            self.assertLessEqual(chunk.started_at, chunk.finished_at)

    def test_dry_run(self):
        make_customers(3)
        old = primary_id()
        output = self.call("--dry-run")
        self.assertIn("Dry run completed.", output)
        self.assertIn("  would re-encrypt:   3\n", output)
        self.assertEqual(primary_id(), old)

    def test_failed_rotation_exits_non_zero(self):
        make_customers(1)
        Customer.objects.create(name="bad", _ssn=b"garbage")
        with self.assertRaisesMessage(CommandError, "1 rows could not be decrypted"):
            self.call("--force")

    def test_already_running_exits_non_zero(self):
        RotationRun.objects.create(
            started_at=timezone.now(),
            heartbeat_at=timezone.now(),
            holder=f"elsewhere:{os.getpid()}:x",
        )
        with self.assertRaisesMessage(CommandError, "is already running"):
            self.call("--force")

    def test_json_and_model_and_bad_batch_size(self):
        make_customers(2)
        report = json.loads(
            self.call("--force", "--json", "--model", "data_encryption_tests.Customer")
        )
        self.assertEqual(report["records_processed"], 2)
        with self.assertRaisesMessage(CommandError, "--batch-size must be a positive"):
            self.call("--force", "--batch-size", "0")

    def test_encryption_status(self):
        make_customers(2)
        KeyRotationService().rotate()
        out = StringIO()
        call_command("encryption_status", "--json", stdout=out)
        status = json.loads(out.getvalue())
        self.assertEqual([k["state"] for k in status["keys"]], ["primary", "retired"])
        self.assertEqual(
            status["census"]["data_encryption_tests.Customer"]["_ssn"], {f"{primary_id():08x}": 2}
        )
        self.assertEqual(status["runs"][0]["status"], "completed")
        chunks = RotationChunk.objects.filter(run_id=status["runs"][0]["id"]).count()
        self.assertEqual(
            (status["runs"][0]["chunks_done"], status["runs"][0]["chunks"]), (chunks, chunks)
        )
        out = StringIO()
        call_command("encryption_status", stdout=out)
        self.assertIn(
            f"  data_encryption_tests.Customer._ssn: {primary_id():08x}: 2", out.getvalue()
        )

    def test_encryption_status_shows_a_running_rotation_progress(self):
        make_customers(5)
        tables = resolve_tables(KeyRotationService()._load_model_configurations())
        with override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "CHUNK_ROWS": 2}):
            rotation = Rotation(tables)
            run = rotation.start()
        customers = [c for c in rotation.pending_chunks(run) if c.model.endswith(".Customer")]
        rotation.process_chunk(run, customers[0])  # the first two customers
        total = RotationChunk.objects.filter(run=run).count()
        out = StringIO()
        call_command("encryption_status", "--no-census", stdout=out)
        self.assertIn(
            f"running    {run.started_at:%Y-%m-%dT%H:%M:%S}  2 records, 0 failed, "
            f"phase reencrypt, 1/{total} chunks done",
            out.getvalue(),
        )


class TerminalProgressTests(TestCase):
    def test_bar_with_rate_and_eta_on_a_terminal(self):
        from django.core.management.base import OutputWrapper

        from data_encryption.management.commands.rotate_encryption_key import TerminalProgress

        buffer = StringIO()
        progress = TerminalProgress(OutputWrapper(buffer), is_terminal=True, verbosity=1)
        progress.start_table("app.Model", 1000, 0)
        progress.last_draw = 0.0  # draw now, not in 0.1 s
        progress.advance("app.Model", 500)
        progress.advance("app.Model", 500)
        progress.end_table("app.Model")
        text = buffer.getvalue()
        self.assertRegex(
            text,
            r"\rapp\.Model \[#{15}\.{15}\]  50\.0% 500/1,000 rows [\d,]+ rows/s "
            r"ETA \d+:\d\d",
        )
        last_line = text.rsplit("\r", 1)[-1]
        self.assertRegex(
            last_line, r"^app\.Model \[#{30}\] 100\.0% 1,000/1,000 rows .* ETA 0:00\n$"
        )

    def test_quiet_at_verbosity_zero(self):
        from django.core.management.base import OutputWrapper

        from data_encryption.management.commands.rotate_encryption_key import TerminalProgress

        buffer = StringIO()
        progress = TerminalProgress(OutputWrapper(buffer), is_terminal=False, verbosity=0)
        progress.phase("backup", "x")
        progress.start_table("a.B", 3, 0)
        progress.advance("a.B", 3)
        progress.end_table("a.B")
        self.assertEqual(buffer.getvalue(), "")
