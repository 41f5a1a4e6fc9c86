"""Helpers shared by the tests: installing known data keys, fresh keys, key-material scans."""

from cryptography.fernet import Fernet
from django.conf import settings
from django.db import connection
from django.utils import timezone

from data_encryption.index_keys import reset_index_key_ring
from data_encryption.keys import master_keys, reset_key_ring
from data_encryption.models import DataKey, KeyState
from data_encryption.services import EncryptionService
from data_encryption.tests.runner import material_forms
from data_encryption.tests.testapp.models import Customer, Patient


def new_fernet_key():
    return Fernet.generate_key().decode()


def install_data_key(key_id, material, state=KeyState.DECRYPT_ONLY):
    """Store a data key with known material, wrapped by the current master key (as another
    process or a restored backup would)."""
    master = master_keys()[0]
    row = DataKey.objects.create(
        key_id=key_id,
        state=state,
        wrapped_key=master.wrap(key_id, material),
        master_key_fingerprint=master.fingerprint,
        created_at=timezone.now(),
    )
    return row


def make_primary(row):
    """Demote the current primary and promote ``row``, as a rotation in another process does."""
    for old in DataKey.objects.filter(state=KeyState.PRIMARY):  # save(): keeps the MAC current
        old.state = KeyState.DECRYPT_ONLY
        old.save(update_fields=["state"])
    row.state = KeyState.PRIMARY
    row.save(update_fields=["state"])
    return row


class FreshKeyRingMixin:
    """Every test starts and ends with an empty key-ring cache, so no test sees a key that a
    previous test's rolled-back transaction made."""

    def setUp(self):
        reset_key_ring()
        reset_index_key_ring()
        super().setUp()
        self.addCleanup(reset_key_ring)
        self.addCleanup(reset_index_key_ring)


def assert_no_material(testcase, texts, raws):
    forms = set()
    for raw in raws:
        forms |= material_forms(raw)
    for text in texts:
        for form in forms:
            testcase.assertNotIn(form, text)


def seed_rows(customers, patients):
    """Customers (property pattern) and patients (fields) with known plaintexts."""
    from data_encryption.services import EncryptionService
    from data_encryption.tests.testapp.models import Customer, Patient

    Customer.objects.bulk_create(
        [
            Customer(name=f"c{i}", _ssn=EncryptionService.encrypt(f"ssn-{i}"))
            for i in range(customers)
        ],
        batch_size=500,
    )
    Patient.objects.bulk_create(
        [Patient(name=f"p{i}", notes=f"note-{i}", visits=i) for i in range(patients)],
        batch_size=500,
    )


def all_plaintexts():
    """Every customer's SSN and patient's notes and visits, read afresh."""
    from data_encryption.tests.testapp.models import Customer, Patient

    reset_key_ring()
    return (
        {c.pk: c.ssn for c in Customer.objects.all()},
        {p.pk: (p.notes, p.visits) for p in Patient.objects.all()},
    )


# Shared by the rotation, ledger, backup and command tests.
FAST = {**settings.ENCRYPTION_KEY_ROTATION, "KEY_CACHE_SECONDS": 0}


def make_customers(count, start=0):
    customers = [
        Customer(name=f"c{i}", _ssn=EncryptionService.encrypt(f"{i:03d}-00-{i:04d}"))
        for i in range(start, start + count)
    ]
    Customer.objects.bulk_create(customers)
    return {c.pk: EncryptionService.decrypt(c._ssn) for c in Customer.objects.all()}


def make_patients(count):
    Patient.objects.bulk_create(
        [Patient(name=f"p{i}", notes=f"note {i}", visits=i, profile={"i": i}) for i in range(count)]
    )
    return {p.pk: (p.notes, p.visits, p.profile) for p in Patient.objects.all()}


def raw(model, column):
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {column} FROM {table} ORDER BY id")
        return {pk: bytes(value) if value is not None else None for pk, value in cursor.fetchall()}


def primary_id():
    return DataKey.objects.get(state=KeyState.PRIMARY).key_id


def rotated_table_count():
    """How many tables a rotation walks in the test project: testapp's, and the blind-index
    tests' search_app's, whose number grows with its models."""
    from data_encryption.rotation import resolve_tables
    from data_encryption.services import KeyRotationService

    return len(resolve_tables(KeyRotationService()._load_model_configurations()))
