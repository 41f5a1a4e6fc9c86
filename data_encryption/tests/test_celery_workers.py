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
from data_encryption.tests.utils import all_plaintexts, rotated_table_count, seed_rows

from .kms_server import needs_kms

REDIS = os.environ.get("DATA_ENCRYPTION_TEST_REDIS_URL")


@unittest.skipUnless(REDIS, "needs DATA_ENCRYPTION_TEST_REDIS_URL (the test command starts Redis)")
class CeleryWorkerTestCase(TransactionTestCase):
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


class CeleryWorkerTests(CeleryWorkerTestCase):
    def test_fanned_out_rotation_over_two_workers(self):
        from data_encryption.tasks import rotate_encryption_key_task

        seed_rows(3000, 1000)
        expected = all_plaintexts()
        self.start_workers(2, DATA_ENCRYPTION_TEST_CHUNK_ROWS=300)
        result = rotate_encryption_key_task.apply_async(kwargs={"force": True})
        started = result.get(timeout=120)
        self.assertEqual(started["status"], "running")
        # 300-row ranges plus an open-ended last one per table: Customer 10 + 1, Patient 3 + 1,
        # and one for each empty table (Note, search_app's).
        self.assertEqual(started["chunks"], 11 + 4 + (rotated_table_count() - 2))
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
        # Customer: two 300-row ranges and an open-ended last one; every other table: one each.
        self.assertEqual(done_by_workers.count(), 3 + (rotated_table_count() - 1))

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


@needs_kms
class CeleryWorkersUnderKmsTests(CeleryWorkerTestCase):
    """The rotation fanned out to real workers whose only master key is AWS KMS (moto's
    server): the new key is wrapped by KMS, every row reads back, and the workers ask KMS once
    per key per ring load, never per row."""

    def test_a_fanned_out_rotation_with_the_master_key_in_kms(self):
        import json

        from data_encryption.keys import rewrap_data_keys
        from data_encryption.master_key import master_keys, reset_master_keys
        from data_encryption.tasks import rotate_encryption_key_task

        from .kms_server import aws_environment, count_kms_calls, create_key, kms_url

        url = kms_url()
        self.enterContext(aws_environment())
        setting = {
            "BACKEND": "data_encryption.master_keys.AwsKms",
            "OPTIONS": {"key_id": create_key(url)["Arn"], "endpoint_url": url},
        }
        self.enterContext(override_settings(DATA_ENCRYPTION_MASTER_KEY_PROVIDER=setting))
        self.addCleanup(reset_master_keys)
        seed_rows(2000, 500)
        expected = all_plaintexts()
        rewrap_data_keys()  # the local key's data keys move to KMS; workers hold no local key
        self.enterContext(override_settings(DB_ENCRYPTION_KEY=None))
        self.start_workers(
            2,
            DATA_ENCRYPTION_TEST_CHUNK_ROWS=500,
            DATA_ENCRYPTION_TEST_MASTER_KEY_PROVIDER=json.dumps(setting),
        )
        with count_kms_calls(url) as calls:
            rotate_encryption_key_task.apply_async(kwargs={"force": True})
            run = self.wait_for_run()
        self.assertEverythingRotated(run, expected)
        primary = DataKey.objects.get(state=KeyState.PRIMARY)
        self.assertEqual(primary.master_key_fingerprint, master_keys()[0].fingerprint)
        self.assertEqual(bytes(primary.wrapped_key)[:1], b"\x02")
        self.assertEqual(calls["Encrypt"], 1)  # the new key, wrapped once
        # Each process unwraps each key once per ring load (KEY_CACHE_SECONDS is 0.5 s here, so
        # a worker reloads often); 2,500 rows read and written are not 2,500 calls.
        self.assertLess(calls["Decrypt"], 500, calls)
