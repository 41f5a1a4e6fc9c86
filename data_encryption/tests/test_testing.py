"""``data_encryption.testing`` and ``EncryptionService.warm_up``: query counts around an
encrypted write that do not depend on which test ran before."""

from django.conf import settings
from django.db import connection
from django.test import TestCase, TransactionTestCase, override_settings
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
