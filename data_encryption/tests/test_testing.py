"""``data_encryption.testing`` and ``EncryptionService.warm_up``: query counts around an
encrypted write that do not depend on which test ran before."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.test import SimpleTestCase, TestCase, TransactionTestCase, override_settings
from django.test.utils import CaptureQueriesContext

from data_encryption.keys import reset_key_ring
from data_encryption.models import DataKey, KeyState
from data_encryption.services import EncryptionService
from data_encryption.testing import KeyRingWarmedUp
from data_encryption.tests.testapp.models import Patient

# The test settings expire the ring after half a second; these tests count queries, not time.
LONG_CACHE = {**settings.ENCRYPTION_KEY_ROTATION, "KEY_CACHE_SECONDS": 3600}


@override_settings(ENCRYPTION_KEY_ROTATION=LONG_CACHE)
class WithoutWarmUpTests(TestCase):
    def setUp(self):
        reset_key_ring()
        self.addCleanup(reset_key_ring)

    def test_the_first_encrypted_write_of_a_process_loads_the_key_ring(self):
        with CaptureQueriesContext(connection) as first:
            Patient.objects.create(name="Ada", notes="x")
        with CaptureQueriesContext(connection) as second:
            Patient.objects.create(name="Grace", notes="y")
        self.assertEqual(len(first), 2)
        self.assertIn("data_encryption_datakey", first[0]["sql"])
        self.assertEqual(len(second), 1)

    def test_warm_up_loads_it_beforehand(self):
        with self.assertNumQueries(1):
            EncryptionService.warm_up()
        with self.assertNumQueries(1):
            Patient.objects.create(name="Ada", notes="x")


@override_settings(ENCRYPTION_KEY_ROTATION=LONG_CACHE)
class WarmedUpTests(KeyRingWarmedUp, TestCase):
    def setUp(self):
        reset_key_ring()  # whatever ran before: the mixin's setUp comes after
        super().setUp()
        self.addCleanup(reset_key_ring)

    def test_an_encrypted_create_is_one_query(self):
        with self.assertNumQueries(1):
            Patient.objects.create(name="Ada", notes="x", visits=1, profile={"a": 1})

    def test_reading_it_back_is_one_query(self):
        patient = Patient.objects.create(name="Ada", notes="x")
        with self.assertNumQueries(1):
            self.assertEqual(Patient.objects.get(pk=patient.pk).notes, "x")


@override_settings(ENCRYPTION_KEY_ROTATION=LONG_CACHE)
class WarmedUpTransactionTests(KeyRingWarmedUp, TransactionTestCase):
    def setUp(self):
        # An empty key table and a ring holding a key it no longer has, as a flush leaves them.
        EncryptionService.warm_up()
        DataKey.objects.all().delete()
        super().setUp()
        self.addCleanup(reset_key_ring)

    def test_the_first_key_is_made_before_the_test_and_the_write_is_one_query(self):
        primary = DataKey.objects.get(state=KeyState.PRIMARY)
        with self.assertNumQueries(1):
            patient = Patient.objects.create(name="Ada", notes="x")
        self.assertEqual(EncryptionService.key_id_of(self.stored_notes(patient.pk)), primary.key_id)

    def stored_notes(self, pk):
        with connection.cursor() as cursor:
            cursor.execute("SELECT notes FROM data_encryption_tests_patient WHERE id = %s", [pk])
            return bytes(cursor.fetchone()[0])


PYTEST_CONFTEST = """
import pytest

from data_encryption.testing import warm_key_ring  # noqa: F401


@pytest.fixture
def long_cache(settings):
    settings.ENCRYPTION_KEY_ROTATION = {
        **settings.ENCRYPTION_KEY_ROTATION, "KEY_CACHE_SECONDS": 3600
    }
"""

PYTEST_TESTS = """
from django.db import connection
from django.test.utils import CaptureQueriesContext

from data_encryption.keys import reset_key_ring
from data_encryption.tests.testapp.models import Patient


def count_create():
    with CaptureQueriesContext(connection) as queries:
        Patient.objects.create(name="Ada", notes="x")
    return len(queries)


def test_without_the_fixture_the_first_write_loads_the_ring(long_cache, db):
    reset_key_ring()
    assert count_create() == 2


def test_with_the_fixture_a_write_is_one_query(long_cache, warm_key_ring):
    assert count_create() == 1


def test_after_the_ring_was_forgotten_too(long_cache, db, warm_key_ring):
    # The previous test's fixture forgot the ring when it ended; this one reloads it.
    assert count_create() == 1
"""


class PytestFixtureTests(SimpleTestCase):
    """The fixture as a pytest-django user meets it: pytest run in a child process, on SQLite
    (its own test database, named by the child's pid)."""

    def test_warm_key_ring_fixture(self):
        with tempfile.TemporaryDirectory() as directory:
            Path(directory, "conftest.py").write_text(PYTEST_CONFTEST)
            Path(directory, "test_warm.py").write_text(PYTEST_TESTS)
            result = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", directory],
                cwd=directory,
                env={
                    **os.environ,
                    "DJANGO_SETTINGS_MODULE": "data_encryption.tests.settings",
                    "DATA_ENCRYPTION_TEST_DB": "sqlite",
                },
                capture_output=True,
                text=True,
                timeout=300,
            )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("3 passed", result.stdout)

    def test_the_module_imports_without_pytest(self):
        script = (
            "import sys; sys.modules['pytest'] = None\n"  # what 'import pytest' meets if absent
            "import django; django.setup()\n"
            "import data_encryption.testing as testing\n"
            "print(sorted(testing.__all__), hasattr(testing, 'warm_key_ring'))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "data_encryption.tests.settings"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(result.stdout, "['KeyRingWarmedUp'] False\n", result.stderr)
