"""The online conversion against real processes: ``encrypt_existing`` over 20,000 rows killed with
SIGKILL at random points in ten trials, each resumed by the next, while a writer process updates
random rows through the ORM throughout. Afterwards every row holds the writer's last value or its
converted original, every value is an envelope, and the census finds no legacy value left. Run on
SQLite and PostgreSQL.
"""

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from django.db import connection
from django.test import TransactionTestCase
from django.utils import timezone

from data_encryption.keys import ensure_primary_key, reset_key_ring
from data_encryption.models import RotationRun, RunStatus
from data_encryption.services import KeyRotationService
from data_encryption.tests.conversion_utils import (
    LABEL,
    TEXT_READER,
    in_transition,
    insert_legacy,
    is_envelope,
)
from data_encryption.tests.processes import child_environment, start_command

ROWS = 20_000
TRIALS = 10
COLUMNS = {f"{LABEL}.code": TEXT_READER, f"{LABEL}.notes": TEXT_READER}
ENVIRONMENT = "DATA_ENCRYPTION_TEST_LEGACY_COLUMNS"  # read by tests/settings.py


def original(index):
    return f"P{index:07d}", f"original note {index}"


@in_transition(COLUMNS)
class KilledConversionTests(TransactionTestCase):
    def setUp(self):
        reset_key_ring()
        self.addCleanup(reset_key_ring)
        if connection.vendor == "sqlite" and ":memory:" in str(connection.settings_dict["NAME"]):
            self.skipTest("needs a file database that other processes can open")
        # The processes this test starts read the same columns in transition.
        os.environ[ENVIRONMENT] = json.dumps(COLUMNS)
        self.addCleanup(os.environ.pop, ENVIRONMENT, None)

    def test_killed_at_random_points_resumed_with_a_writer_throughout(self):
        ensure_primary_key()
        pks = insert_legacy([(f"a{i}", *original(i), None, None) for i in range(ROWS)])
        originals = {pk: original(index) for index, pk in enumerate(pks)}
        randomness = random.Random(int(os.environ.get("DATA_ENCRYPTION_TEST_SEED", "2026")))
        stop_file = Path(tempfile.mkdtemp()) / "stop"
        writer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "data_encryption.tests.conversion_writer",
                "600",
                str(stop_file),
            ],
            env=child_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(writer.kill)
        time.sleep(1.0)  # the writer is running before the first conversion starts
        command = ("encrypt_existing", *COLUMNS, "--batch-size", "25")
        killed_in = []
        for _trial in range(TRIALS):
            process = start_command(*command)
            # Django starts in ~0.3-0.6 s; a whole conversion with the writer takes ~5 s.
            time.sleep(randomness.uniform(0.6, 2.4))
            process.send_signal(signal.SIGKILL)
            process.communicate()
            running = RotationRun.objects.filter(status=RunStatus.RUNNING).first()
            killed_in.append(running.phase if running else "(finished or not started)")
            if running is not None:
                # Only the heartbeat says the holder died; it is dead (killed and reaped), so
                # ageing its heartbeat is the same as waiting out LOCK_TIMEOUT_SECONDS.
                stale = timezone.now() - timedelta(days=1)
                RotationRun.objects.filter(pk=running.pk).update(heartbeat_at=stale)
        final = start_command(*command)
        out, err = final.communicate(timeout=300)
        stop_file.touch()
        written_out, writer_err = writer.communicate(timeout=60)
        self.assertEqual(final.returncode, 0, out + err)
        self.assertEqual(writer.returncode, 0, writer_err)
        written = json.loads(written_out)
        print(f"\n  conversion kills landed in: {killed_in}; writer: {written['writes']} writes")
        self.assertGreater(written["writes"], 100, "the writer barely ran")
        self.assertGreaterEqual(killed_in.count("reencrypt"), 3, killed_in)

        from data_encryption.tests.testapp.models import Patient

        raw = connection.ops.quote_name(Patient._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id, code, notes FROM {raw}")
            stored = cursor.fetchall()
        self.assertEqual(len(stored), ROWS)
        for pk, code, notes in stored:
            self.assertTrue(is_envelope(bytes(code)) and is_envelope(bytes(notes)), pk)
        for row in Patient.objects.all():
            want_code, want_notes = originals[row.pk]
            want_code = written["code"].get(str(row.pk), want_code)
            want_notes = written["notes"].get(str(row.pk), want_notes)
            self.assertEqual((row.code, row.notes), (want_code, want_notes), row.pk)
        census = KeyRotationService().encrypt_existing(list(COLUMNS), dry_run=True)
        self.assertEqual(census.legacy_left, dict.fromkeys(COLUMNS, 0))
        self.assertEqual(census.failed_records, 0)
        runs = RotationRun.objects.exclude(status=RunStatus.RUNNING)
        self.assertEqual(set(runs.values_list("status", flat=True)), {RunStatus.COMPLETED})
