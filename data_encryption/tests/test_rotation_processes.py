"""Rotation against real processes: a rotation killed with SIGKILL at random points and rerun,
and a writer process changing rows throughout a rotation. Run on SQLite and PostgreSQL."""

import json
import os
import random
import signal
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.test import TransactionTestCase, override_settings

from data_encryption.keys import reset_key_ring
from data_encryption.models import DataKey, KeyState, RotationRun, RunStatus
from data_encryption.rotation import census_totals
from data_encryption.services import KeyRotationService
from data_encryption.tests.processes import start_command, start_writer
from data_encryption.tests.utils import all_plaintexts, seed_rows

ROWS = 3000
TRIALS = 10


class ProcessTestCase(TransactionTestCase):
    def setUp(self):
        reset_key_ring()
        self.addCleanup(reset_key_ring)
        if connection.vendor == "sqlite" and ":memory:" in str(connection.settings_dict["NAME"]):
            self.skipTest("needs a file database that other processes can open")

    def assertCensusClean(self, report):
        primary = DataKey.objects.get(state=KeyState.PRIMARY).hex_id
        totals = census_totals(report["census"])
        self.assertEqual(set(totals) - {"null"}, {primary}, totals)


# A killed rotation is taken over once its heartbeat is this old. Above HEARTBEAT_SECONDS (1 s),
# so the live child's own run is never judged dead.
LOCK_TIMEOUT = 2.5


@override_settings(
    ENCRYPTION_KEY_ROTATION={
        **settings.ENCRYPTION_KEY_ROTATION,
        "LOCK_TIMEOUT_SECONDS": LOCK_TIMEOUT,
    }
)
class CrashTests(ProcessTestCase):
    def test_rotation_killed_at_random_points_resumes_and_loses_nothing(self):
        seed_rows(ROWS, ROWS // 3)
        expected = all_plaintexts()
        randomness = random.Random(int(os.environ.get("DATA_ENCRYPTION_TEST_SEED", "2026")))
        killed_in = []
        for trial in range(TRIALS):
            process = start_command("rotate_encryption_key", "--force", "--batch-size", "100")
            # Django starts in ~0.3-0.6 s; the rotation itself takes about as long.
            time.sleep(randomness.uniform(0.2, 1.6))
            process.send_signal(signal.SIGKILL)
            process.communicate()
            running = RotationRun.objects.filter(status=RunStatus.RUNNING).first()
            killed_in.append(running.phase if running else "(finished or not started)")
            if running is not None:
                # Only the heartbeat says the holder died. The holder is dead (killed and
                # reaped), so letting LOCK_TIMEOUT pass is the same as ageing its heartbeat.
                stale = running.heartbeat_at - timedelta(seconds=LOCK_TIMEOUT + 0.1)
                RotationRun.objects.filter(pk=running.pk).update(heartbeat_at=stale)
            # The next invocation resumes (or starts) and completes.
            report = KeyRotationService(batch_size=100).rotate()
            self.assertEqual(report["status"], "completed", (trial, report))
            self.assertEqual(report["failed_records"], 0)
            self.assertEqual(all_plaintexts(), expected, f"trial {trial}")
            self.assertCensusClean(report)
            if running is not None:
                self.assertTrue(report["resumed"])
                self.assertEqual(report["run_id"], running.pk)
        # One new key per run, never a second one for a resumed run.
        runs = RotationRun.objects.exclude(new_key_id=None)
        self.assertEqual(DataKey.objects.count(), runs.count() + 1)
        self.assertEqual(len(set(runs.values_list("new_key_id", flat=True))), runs.count())
        # The kills landed in more than one place of the protocol.
        print(f"\n  crash trials killed during: {killed_in}")
        self.assertGreater(len(set(killed_in)), 1, killed_in)


class ConcurrentWriterTests(ProcessTestCase):
    def test_writer_keeps_its_changes_through_a_rotation(self):
        seed_rows(ROWS, ROWS // 3)
        before_customers, before_patients = all_plaintexts()
        stop_file = Path(tempfile.mkdtemp()) / "stop"
        writer = start_writer(60, str(stop_file))
        time.sleep(1.0)  # the writer is running before the rotation starts
        rotation = start_command("rotate_encryption_key", "--force", "--batch-size", "50")
        out, err = rotation.communicate(timeout=120)
        time.sleep(0.5)
        stop_file.touch()
        writer_out, writer_err = writer.communicate(timeout=60)
        self.assertEqual(rotation.returncode, 0, out + err)
        self.assertEqual(writer.returncode, 0, writer_err)
        written = json.loads(writer_out)
        self.assertGreater(written["writes"], 50, "the writer barely ran")
        customers, patients = all_plaintexts()
        for pk, value in before_customers.items():
            want = written["last"]["customer"].get(str(pk), value)
            self.assertEqual(customers[pk], want, f"customer {pk}")
        for pk, (notes, visits) in before_patients.items():
            want = written["last"]["patient"].get(str(pk), notes)
            self.assertEqual(patients[pk], (want, visits), f"patient {pk}")
        run = RotationRun.objects.get()
        self.assertEqual(run.status, RunStatus.COMPLETED, run.reason)
        retired = set(
            DataKey.objects.filter(state=KeyState.RETIRED).values_list("key_id", flat=True)
        )
        service = KeyRotationService()
        from data_encryption.rotation import Rotation, resolve_tables

        census = Rotation(resolve_tables(service._load_model_configurations())).census()
        under_retired = {
            label: n
            for label, n in census_totals(census).items()
            if label in {f"{key:08x}" for key in retired}
        }
        self.assertEqual(under_retired, {})
        self.assertTrue(retired, "the old key should have been retired")
        self.assertEqual(settings.ENCRYPTION_KEY_ROTATION["KEY_CACHE_SECONDS"], 0.5)
