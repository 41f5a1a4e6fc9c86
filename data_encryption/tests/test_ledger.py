"""The run ledger: the rotation lock, heartbeats, take-over of a dead holder's run and resuming
it with its own key."""

import os
import sys
from datetime import timedelta

from django.db import connection
from django.test import TestCase, override_settings
from django.utils import timezone

from data_encryption.keys import cipher_for, reset_key_ring
from data_encryption.models import (
    DataKey,
    RotationChunk,
    RotationRun,
)
from data_encryption.rotation import (
    Rotation,
    examine_rows,
    read_rows,
    resolve_tables,
    write_rows,
)
from data_encryption.services import (
    KeyRotationService,
)
from data_encryption.tests.testapp.models import Customer
from data_encryption.tests.utils import FAST, FreshKeyRingMixin, make_customers, raw


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class LockAndResumeTests(FreshKeyRingMixin, TestCase):
    def test_second_rotation_while_one_runs_is_skipped_without_touching_data(self):
        make_customers(5)
        before = raw(Customer, "_ssn")
        keys_before = DataKey.objects.count()
        live = RotationRun.objects.create(
            started_at=timezone.now(),
            heartbeat_at=timezone.now(),
            holder=f"elsewhere:{os.getpid()}:abcd",
        )
        report = KeyRotationService().rotate()
        self.assertEqual(report["status"], "skipped")
        self.assertEqual(report["skipped"], "already_running")
        self.assertIn(f"rotation {live.pk} is already running", report["reason"])
        self.assertEqual(raw(Customer, "_ssn"), before)
        self.assertEqual(DataKey.objects.count(), keys_before)

    def test_a_stale_heartbeat_is_taken_over(self):
        make_customers(5)
        stale = timezone.now() - timedelta(hours=2)
        RotationRun.objects.create(started_at=stale, heartbeat_at=stale, holder="gone:1:abcd")
        report = KeyRotationService().rotate()
        self.assertEqual(report["status"], "completed")
        self.assertTrue(report["resumed"])

    def test_a_run_left_by_a_dead_process_is_resumed_with_its_own_key(self):
        import socket
        import subprocess

        make_customers(20)
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()  # a pid on this host that no longer runs
        # What a rotation killed after activating its key and one committed batch leaves.
        service = KeyRotationService()
        tables = resolve_tables(service._load_model_configurations())
        rotation = Rotation(tables)
        run = rotation.start()
        self.assertEqual(run.phase, "reencrypt")
        chunk = RotationChunk.objects.get(run=run, model="data_encryption_tests.Customer")
        table = rotation.table(chunk.model)
        rows = read_rows(connection, table, None, 1)
        batch = examine_rows(
            rows, table.columns, run.new_key_id, cipher_for(run.new_key_id), rewrite=True
        )
        write_rows(connection, table, batch)
        first_pk = batch.last_pk
        RotationChunk.objects.filter(pk=chunk.pk).update(cursor=first_pk, rows=1, reencrypted=1)
        first_value = raw(Customer, "_ssn")[first_pk]
        # The dead holder's last heartbeat is older than the lock timeout: only the heartbeat
        # tells that a holder died (its pid may belong to another PID namespace).
        RotationRun.objects.filter(pk=run.pk).update(
            holder=f"{socket.gethostname()}:{dead.pid}:dead",
            heartbeat_at=timezone.now() - timedelta(seconds=2),
        )
        keys_before = DataKey.objects.count()
        with override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "LOCK_TIMEOUT_SECONDS": 1}):
            report = KeyRotationService().rotate()
        self.assertTrue(report["resumed"])
        self.assertEqual(report["run_id"], run.pk)
        self.assertEqual(report["status"], "completed")
        self.assertEqual(DataKey.objects.count(), keys_before)  # no second new key
        self.assertEqual(report["new_key_id"], f"{run.new_key_id:08x}")
        # Resumed from the cursor: the first row was not walked (or rewritten) again.
        self.assertEqual(report["models"]["data_encryption_tests.Customer"]["rows"], 20)
        self.assertEqual(report["models"]["data_encryption_tests.Customer"]["reencrypted"], 20)
        self.assertEqual(raw(Customer, "_ssn")[first_pk], first_value)
        self.assertEqual(report["retired_key_ids"], report["old_key_ids"])
        reset_key_ring()
        self.assertEqual(len({c.ssn for c in Customer.objects.all()}), 20)

    def test_lost_lock_stops_the_run(self):
        make_customers(3)
        tables = resolve_tables(KeyRotationService()._load_model_configurations())
        rotation = Rotation(tables)
        run = rotation._acquire()
        RotationRun.objects.filter(pk=run.pk).update(holder="someone-else:1:x")
        from data_encryption.rotation import LockLost

        with self.assertRaises(LockLost):
            rotation._backup(run)

    def test_waits_for_other_processes_key_rings(self):
        make_customers(2)
        slept = []
        now = [timezone.now()]

        def clock():
            return now[0]

        def sleep(seconds):
            slept.append(seconds)
            now[0] += timedelta(seconds=seconds)

        tables = resolve_tables(KeyRotationService()._load_model_configurations())
        with override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "KEY_CACHE_SECONDS": 12}):
            report = Rotation(tables, clock=clock, sleep=sleep).run()
        self.assertEqual(report["status"], "completed")
        self.assertEqual(slept, [5.0, 5.0, 2.0])


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class HeartbeatTests(FreshKeyRingMixin, TestCase):
    def test_a_holder_in_another_pid_namespace_is_alive_while_its_heartbeat_is_fresh(self):
        # (exp11_lock) A holder on this hostname whose pid this process cannot see (another
        # container, another PID namespace) was judged dead with a 1-second-old heartbeat.
        import socket
        import subprocess

        make_customers(2)
        before = raw(Customer, "_ssn")
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        beat = timezone.now() - timedelta(seconds=1)
        RotationRun.objects.create(
            started_at=beat, heartbeat_at=beat, holder=f"{socket.gethostname()}:{gone.pid}:ns2"
        )
        report = KeyRotationService().rotate()
        self.assertEqual((report["status"], report["skipped"]), ("skipped", "already_running"))
        self.assertEqual(raw(Customer, "_ssn"), before)

    def test_the_census_refreshes_the_heartbeat(self):
        # The census read every table without a heartbeat: one longer than LOCK_TIMEOUT_SECONDS
        # was taken over and restarted. Here each clock reading is two seconds later.
        from data_encryption.rotation import Progress
        from data_encryption.tests.utils import make_patients

        make_customers(3)
        make_patients(3)
        start = timezone.now()
        ticks = iter(range(10**6))

        def clock():
            return start + timedelta(seconds=2 * next(ticks))

        seen = []

        class Watch(Progress):
            def phase(self, name, detail=""):
                if name == "census":  # at the start of each table's census
                    seen.append(RotationRun.objects.get().heartbeat_at)

        tables = resolve_tables(KeyRotationService()._load_model_configurations())
        report = Rotation(tables, clock=clock, batch_size=1, progress=Watch()).run()
        self.assertEqual(report.status, "completed")
        # Customer, Patient, the empty Note and search_app's three empty tables: a heartbeat after
        # each page of a table with rows.
        self.assertEqual(len(seen), 6)
        self.assertEqual(len(set(seen)), 2, "no heartbeat during the census")

    def test_planning_refreshes_the_heartbeat(self):
        from data_encryption.rotation import chunk_bounds

        make_customers(5)
        (table,) = [
            table
            for table in resolve_tables(KeyRotationService()._load_model_configurations())
            if table.label == "data_encryption_tests.Customer"
        ]
        pages = []
        bounds = chunk_bounds(connection, table, 2, on_page=lambda: pages.append(1))
        self.assertEqual(len(bounds), 3)
        self.assertEqual(len(pages), 2)  # after each page of the primary key but the last
