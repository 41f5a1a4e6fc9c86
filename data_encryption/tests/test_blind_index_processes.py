"""Uniqueness across processes: two processes inserting the same SSN at the same moment,
spelled differently but equal once normalised, get exactly one ``IntegrityError``; the database
enforces it on the index column. Run on SQLite and PostgreSQL."""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.db import connection
from django.test import TransactionTestCase

from data_encryption.tests.processes import child_environment
from data_encryption.tests.search_app.models import Person
from data_encryption.tests.utils import FreshKeyRingMixin

SPELLINGS = [
    ("123-45-6789", "123456789"),
    ("987 65 4321", "987-65-4321"),
    ("555555555", "555 55 5555"),
]


def start_inserter(folder, name, ssn):
    return subprocess.Popen(
        [sys.executable, "-m", "data_encryption.tests.unique_inserter", str(folder), name, ssn],
        env=child_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class ConcurrentUniqueInsertTests(FreshKeyRingMixin, TransactionTestCase):
    def setUp(self):
        super().setUp()
        if connection.vendor == "sqlite" and ":memory:" in str(connection.settings_dict["NAME"]):
            self.skipTest("needs a file database that other processes can open")

    def race(self, first, second):
        with tempfile.TemporaryDirectory() as folder:
            processes = [
                start_inserter(folder, "first", first),
                start_inserter(folder, "second", second),
            ]
            deadline = time.monotonic() + 60
            while not all((Path(folder) / f"ready-{n}").exists() for n in ("first", "second")):
                self.assertLess(time.monotonic(), deadline, "the inserters did not start")
                self.assertTrue(all(p.poll() is None for p in processes), processes[0].stderr)
                time.sleep(0.01)
            (Path(folder) / "go").touch()
            outcomes = []
            for process in processes:
                out, err = process.communicate(timeout=60)
                self.assertEqual(process.returncode, 0, err)
                outcomes.append(out.strip())
        return outcomes

    def test_two_processes_insert_one_ssn_spelled_two_ways(self):
        # The index key exists before the race, as in production: both use it.
        Person.objects.create(name="before", ssn="000-00-0001")
        for first, second in SPELLINGS:
            outcomes = self.race(first, second)
            self.assertEqual(sorted(outcomes), ["IntegrityError", "inserted"], (first, second))
            digits = first.replace("-", "").replace(" ", "")
            self.assertEqual(Person.objects.filter(ssn=digits).count(), 1)
        self.assertEqual(Person.objects.count(), 1 + len(SPELLINGS))
