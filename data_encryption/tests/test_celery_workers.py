"""Fan-out on real parts: a Redis broker started by the test command and two real ``celery
worker`` processes rotate a few thousand rows in chunks; one trial kills a worker's pool process
with SIGKILL in the middle of a chunk. Every row must decrypt to its original afterwards."""

import os
import signal
import time
import unittest

from django.conf import settings
from django.db import connection
from django.test import TransactionTestCase, override_settings

from data_encryption.keys import reset_key_ring
from data_encryption.models import DataKey, KeyState, RotationChunk, RotationRun, RunStatus
from data_encryption.rotation import census_totals
from data_encryption.tests.processes import pool_children, start_worker
from data_encryption.tests.testapp.models import Customer, Patient
from data_encryption.tests.utils import all_plaintexts, seed_rows

REDIS = os.environ.get("DATA_ENCRYPTION_TEST_REDIS_URL")


@unittest.skipUnless(REDIS, "needs DATA_ENCRYPTION_TEST_REDIS_URL (the test command starts Redis)")
class CeleryWorkerTests(TransactionTestCase):
    def setUp(self):
        if connection.vendor == "sqlite" and ":memory:" in str(connection.settings_dict["NAME"]):
            self.skipTest("needs a file database that worker processes can open")
        from data_encryption.tests.celery_app import app

        self.app = app
        self.app.control.purge()
        reset_key_ring()
        self.addCleanup(reset_key_ring)

    def start_workers(self, count=2, **environment):
        workers = [start_worker(f"w{index}", **environment) for index in range(count)]
        for worker in workers:
            self.addCleanup(self.stop, worker)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            replies = self.app.control.ping(timeout=0.5) or []
            if len(replies) >= count:
                return workers
        self.fail(f"only {len(replies)} of {count} workers answered a ping within 60 s")

    def stop(self, worker):
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except Exception:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()

    def wait_for_run(self, timeout=180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = RotationRun.objects.order_by("-id").first()
            if run is not None and run.status != RunStatus.RUNNING:
                return run
            time.sleep(0.2)
        self.fail(f"the rotation did not finish within {timeout} s: {run!r}")

    def assertEverythingRotated(self, run, expected):
        self.assertEqual(run.status, RunStatus.COMPLETED, run.reason)
        self.assertEqual(all_plaintexts(), expected)
        primary = DataKey.objects.get(state=KeyState.PRIMARY)
        self.assertEqual(primary.key_id, run.new_key_id)
        self.assertEqual(set(census_totals(run.census)) - {"null"}, {primary.hex_id})
        self.assertFalse(RotationChunk.objects.filter(run=run, done=False).exists())
        self.assertEqual(run.records_processed, Customer.objects.count() + Patient.objects.count())

    def test_fanned_out_rotation_over_two_workers(self):
        from data_encryption.tasks import rotate_encryption_key_task

        seed_rows(3000, 1000)
        expected = all_plaintexts()
        self.start_workers(2, DATA_ENCRYPTION_TEST_CHUNK_ROWS=300)
        result = rotate_encryption_key_task.apply_async(kwargs={"force": True})
        started = result.get(timeout=120)
        self.assertEqual(started["status"], "running")
        # 300-row ranges plus an open-ended last one per table: Customer 10 + 1, Patient 3 + 1,
        # Note (empty) 1, search_app's Person, Employee and Record (empty) 1 each.
        self.assertEqual(started["chunks"], 11 + 4 + 1 + 3)
        run = self.wait_for_run()
        self.assertEverythingRotated(run, expected)
        workers = set(RotationChunk.objects.filter(run=run).values_list("worker", flat=True))
        self.assertEqual({worker.split("@")[0] for worker in workers}, {"w0", "w1"})
        self.assertEqual(run.trigger, "celery")

    def test_a_chunk_that_fails_for_good_ends_the_run_at_once(self):
        from data_encryption.services import KeyRotationService
        from data_encryption.tasks import fan_out

        seed_rows(600, 0)
        expected = all_plaintexts()
        self.start_workers(2)
        rotation = KeyRotationService().rotation(trigger="celery", holder="celery:test")
        with override_settings(
            ENCRYPTION_KEY_ROTATION={**settings.ENCRYPTION_KEY_ROTATION, "CHUNK_ROWS": 300}
        ):
            run = rotation.start()  # planned here, as rotate_encryption_key_task would
        self.assertEqual(run.phase, "reencrypt")
        # A chunk of a model the workers do not rotate: its task fails at once, and a chord
        # whose part failed never runs its final step by itself.
        RotationChunk.objects.create(run=run, model="data_encryption_tests.Gone", index=0)
        fan_out(run, rotation.pending_chunks(run))
        run = self.wait_for_run(timeout=60)  # not LOCK_TIMEOUT_SECONDS (an hour)
        self.assertEqual(run.status, RunStatus.FAILED)
        self.assertIn("data_encryption_tests.Gone is no longer among the configured", run.reason)
        self.assertEqual(all_plaintexts(), expected)
        unfinished = RotationChunk.objects.filter(run=run, done=False)
        self.assertEqual(
            list(unfinished.values_list("model", flat=True)), ["data_encryption_tests.Gone"]
        )
        done_by_workers = RotationChunk.objects.filter(run=run, done=True).exclude(worker="")
        # Customer: two 300-row ranges and an open-ended last one; Patient, Note and search_app's
        # three tables: one each.
        self.assertEqual(done_by_workers.count(), 3 + 1 + 1 + 3)

    def test_a_worker_killed_mid_chunk_loses_nothing(self):
        from data_encryption.tasks import rotate_encryption_key_task

        seed_rows(3000, 0)
        expected = all_plaintexts()
        workers = self.start_workers(
            2, DATA_ENCRYPTION_TEST_CHUNK_ROWS=1000, DATA_ENCRYPTION_TEST_BATCH_SIZE=10
        )
        rotate_encryption_key_task.apply_async(kwargs={"force": True})
        deadline = time.monotonic() + 120
        victim = None
        while time.monotonic() < deadline and victim is None:
            busy = RotationChunk.objects.filter(done=False, rows__gt=0).exists()
            if busy:
                victim = pool_children(workers[0].pid)
            time.sleep(0.05)
        self.assertTrue(victim, "no chunk was in progress to interrupt")
        for pid in victim:
            os.kill(pid, signal.SIGKILL)
        run = self.wait_for_run()
        self.assertEverythingRotated(run, expected)
