"""The index-key rotation against real processes: ``rotate_encryption_key --index-keys-only``
over a few thousand People killed with SIGKILL at random points, each resumed by the next run,
while a second process keeps querying, inserting and trying duplicates with its own (often
stale) index key ring. Every query of either process is right at every point, every duplicate
is refused, and at the end the new key is active, the old one retired, its slot empty. Run on
SQLite and PostgreSQL."""

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

from django.db import IntegrityError, OperationalError, connection, transaction
from django.test import TransactionTestCase
from django.utils import timezone

from data_encryption.index_keys import reset_index_key_ring
from data_encryption.models import IndexKey, RotationRun, RunKind, RunStatus
from data_encryption.tests.processes import child_environment, start_command
from data_encryption.tests.search_app.models import Person
from data_encryption.tests.utils import FreshKeyRingMixin

ROWS = 3000
TRIALS = 5


class KilledIndexKeyRotationTests(FreshKeyRingMixin, TransactionTestCase):
    def setUp(self):
        super().setUp()
        if connection.vendor == "sqlite" and ":memory:" in str(connection.settings_dict["NAME"]):
            self.skipTest("needs a file database that other processes can open")

    def assert_queries_right(self):
        reset_index_key_ring()
        for number in random.sample(range(ROWS), 20):
            names = list(Person.objects.filter(ssn=f"{number:09d}").values_list("name", flat=True))
            self.assertEqual(names, [f"p{number}"])
        for _attempt in range(50):
            try:
                with self.assertRaises(IntegrityError), transaction.atomic():
                    Person.objects.create(name="dup", ssn="000000042")
                return
            except OperationalError as exc:  # SQLite's busy refusal (see index_searcher)
                if "locked" not in str(exc):
                    raise
                time.sleep(0.05)
        self.fail("the database stayed locked")

    def wait_for_the_walk(self, process, timeout=60.0):
        """Until ``process`` is walking rows (an index run of its, in phase reencrypt)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            alive = timezone.now() - timedelta(seconds=30)
            walking = RotationRun.objects.filter(
                status=RunStatus.RUNNING, kind=RunKind.INDEX, phase="reencrypt"
            )
            if walking.filter(heartbeat_at__gte=alive).exists():
                return
            time.sleep(0.05)

    def test_killed_and_resumed_with_a_searcher_throughout(self):
        Person.objects.bulk_create(
            [Person(name=f"p{i}", ssn=f"{i:09d}") for i in range(ROWS)], batch_size=500
        )
        old = IndexKey.objects.get(state="active")
        randomness = random.Random(int(os.environ.get("DATA_ENCRYPTION_TEST_SEED", "2026")))
        stop_file = Path(tempfile.mkdtemp()) / "stop"
        searcher = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "data_encryption.tests.index_searcher",
                str(ROWS),
                str(stop_file),
            ],
            env=child_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(searcher.kill)
        time.sleep(1.0)
        command = ("rotate_encryption_key", "--index-keys-only", "--batch-size", "20")
        killed_in = []
        finished = IndexKey.objects.filter(pk=old.pk, state="retired", wrapped_key=None)
        for trial in range(TRIALS):
            if finished.exists():
                break  # a run outlived its kill: a further run would start another rotation
            process = start_command(*command)
            if trial % 2 == 0:
                self.wait_for_the_walk(process)  # then kill it mid-walk
                time.sleep(randomness.uniform(0.0, 0.3))
            else:
                time.sleep(randomness.uniform(0.5, 3.0))
            process.send_signal(signal.SIGKILL)
            process.communicate()
            states = sorted(
                IndexKey.objects.exclude(state="retired").values_list("state", flat=True)
            )
            running = RotationRun.objects.filter(status=RunStatus.RUNNING).first()
            killed_in.append(f"{'/'.join(states)}:{running.phase if running else '-'}")
            if running is not None:
                stale = timezone.now() - timedelta(days=1)
                RotationRun.objects.filter(pk=running.pk).update(heartbeat_at=stale)
            self.assert_queries_right()
        if not finished.exists():
            final = start_command(*command)
            out, err = final.communicate(timeout=300)
            self.assertEqual(final.returncode, 0, out + err)
        stop_file.touch()
        searched, searcher_err = searcher.communicate(timeout=60)
        self.assertEqual(searcher.returncode, 0, searcher_err)
        result = json.loads(searched)
        print(
            f"\n  index-key rotation kills landed in: {killed_in}; searcher: {result['queries']} "
            f"queries, {result['inserts']} inserts"
        )
        self.assertEqual(result["wrong"], [])
        self.assertGreater(result["queries"], 100)
        self.assertGreater(result["duplicates_refused"], 10)  # and none accepted: "wrong"
        self.assertTrue(any(kill.endswith(":reencrypt") for kill in killed_in), killed_in)
        old.refresh_from_db()
        self.assertEqual((old.state, old.wrapped_key), ("retired", None))
        new = IndexKey.objects.get(state="active")
        self.assertEqual(new.slot, "b")
        self.assertEqual(Person.objects.exclude(ssn_bidx_a=None).count(), 0)
        self.assertEqual(Person.objects.filter(ssn_bidx_b=None).count(), 0)
        self.assert_queries_right()
        for value, pk in result["inserted"].items():
            self.assertEqual(Person.objects.get(ssn=value).pk, pk)
        runs = RotationRun.objects.filter(kind=RunKind.INDEX).exclude(status=RunStatus.RUNNING)
        self.assertIn(RunStatus.COMPLETED, set(runs.values_list("status", flat=True)))
