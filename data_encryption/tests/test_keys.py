"""The key hierarchy: master key over data keys, the first key, the per-process ring cache,
master-key fallbacks, legacy Fernet tokens."""

import time

from django.db import IntegrityError, transaction
from django.test import TestCase, TransactionTestCase, override_settings

from data_encryption import keys
from data_encryption.ciphers import AeadCipher, generate_data_key
from data_encryption.envelope import HEADER_V1, key_id_of
from data_encryption.exceptions import KeyConfigurationError, UnknownKeyError
from data_encryption.keys import key_ring, reset_key_ring
from data_encryption.models import DataKey, KeyState
from data_encryption.services import EncryptionService
from data_encryption.tests.utils import (
    FreshKeyRingMixin,
    install_data_key,
    make_primary,
)


def seal_with(key_id, material, plaintext):
    """A value sealed by a data key directly, as another process holding that key would."""
    header = HEADER_V1 + key_id.to_bytes(4, "big")
    return header + AeadCipher(material).seal(plaintext.encode(), header)


class FirstKeyTests(FreshKeyRingMixin, TestCase):
    def test_migrate_made_exactly_one_primary_key(self):
        self.assertEqual(DataKey.objects.filter(state=KeyState.PRIMARY).count(), 1)

    def test_first_use_makes_the_first_key_when_there_is_none(self):
        DataKey.objects.all().delete()
        value = EncryptionService.encrypt("x")
        primary = DataKey.objects.get()
        self.assertEqual(primary.state, KeyState.PRIMARY)
        self.assertEqual(key_id_of(value), primary.key_id)
        self.assertIsNotNone(primary.primary_since)
        self.assertEqual(EncryptionService.decrypt(value), "x")

    def test_database_refuses_a_second_primary(self):
        with self.assertRaises(IntegrityError), transaction.atomic():
            keys.create_data_key("default", state=KeyState.PRIMARY)

    def test_a_key_made_inside_a_transaction_is_not_cached(self):
        # If the caller's transaction rolled back, a cached key would encrypt under a key the
        # database no longer has.
        DataKey.objects.all().delete()
        EncryptionService.encrypt("x")
        self.assertLessEqual(key_ring().expires_at, time.monotonic())
        self.assertLessEqual(key_ring().expires_at, time.monotonic())  # still, until commit

    def test_stored_material_is_wrapped_and_bound_to_its_id(self):
        row = DataKey.objects.get(state=KeyState.PRIMARY)
        material = keys.unwrap_data_key(row)
        self.assertEqual(len(material), 32)
        self.assertNotIn(material, bytes(row.wrapped_key))
        row.key_id ^= 1  # a wrapped key moved to another id no longer unwraps
        with self.assertRaisesMessage(KeyConfigurationError, "No configured master key"):
            keys.unwrap_data_key(row)


class KeyRingCacheTests(FreshKeyRingMixin, TestCase):
    def rotate_elsewhere(self):
        """Make a new primary the way another process would, behind this process's cache."""
        material = generate_data_key()
        row = make_primary(install_data_key(0x0A0B0C0D, material))
        return row, material

    @override_settings(ENCRYPTION_KEY_ROTATION={"KEY_CACHE_SECONDS": 3600})
    def test_cached_primary_is_used_until_the_cache_expires(self):
        old = key_id_of(EncryptionService.encrypt("x"))
        self.rotate_elsewhere()
        with self.assertNumQueries(0):
            self.assertEqual(key_id_of(EncryptionService.encrypt("x")), old)

    @override_settings(ENCRYPTION_KEY_ROTATION={"KEY_CACHE_SECONDS": 0.2})
    def test_new_primary_is_picked_up_within_the_cache_time(self):
        EncryptionService.encrypt("x")
        new, _ = self.rotate_elsewhere()
        time.sleep(0.25)
        self.assertEqual(key_id_of(EncryptionService.encrypt("x")), new.key_id)

    @override_settings(ENCRYPTION_KEY_ROTATION={"KEY_CACHE_SECONDS": 3600})
    def test_unknown_key_id_reloads_the_ring_once(self):
        EncryptionService.encrypt("x")  # ring loaded without the new key
        material = generate_data_key()
        install_data_key(0x11223344, material)
        value = seal_with(0x11223344, material, "made elsewhere")
        self.assertEqual(EncryptionService.decrypt(value), "made elsewhere")

    @override_settings(ENCRYPTION_KEY_ROTATION={"KEY_CACHE_SECONDS": 3600})
    def test_missing_key_fails_with_its_id_and_is_not_queried_again(self):
        value = seal_with(0x55667788, generate_data_key(), "lost")
        with self.assertRaisesMessage(UnknownKeyError, "data key 55667788") as caught:
            EncryptionService.decrypt(value)
        self.assertEqual(caught.exception.key_id, 0x55667788)
        self.assertIn("restore_encryption_keys", str(caught.exception))
        with self.assertNumQueries(0), self.assertRaises(UnknownKeyError):
            EncryptionService.decrypt(value)

    def test_destroyed_keys_are_not_loaded(self):
        material = generate_data_key()
        row = install_data_key(0x01010101, material)
        value = seal_with(0x01010101, material, "x")
        self.assertEqual(EncryptionService.decrypt(value), "x")
        row.state = KeyState.DESTROYED
        row.wrapped_key = None
        row.save()
        reset_key_ring()
        with self.assertRaises(UnknownKeyError):
            EncryptionService.decrypt(value)

    def test_settings_change_drops_the_cache(self):
        ring = key_ring()
        with override_settings(ENCRYPTION_KEY_ROTATION={"KEY_CACHE_SECONDS": 5}):
            self.assertIsNot(key_ring(), ring)

    def test_repr_names_ids_only(self):
        ring = key_ring()
        primary = DataKey.objects.get(state=KeyState.PRIMARY)
        self.assertEqual(repr(ring), f"<KeyRing primary={primary.hex_id} keys=[{primary.hex_id}]>")
        self.assertEqual(repr(primary), f"<DataKey {primary.hex_id} state=primary>")
        self.assertEqual(str(primary), f"data key {primary.hex_id} (primary)")


class CommittedFirstKeyTests(TransactionTestCase):
    def setUp(self):
        reset_key_ring()
        self.addCleanup(reset_key_ring)

    def test_first_key_made_in_a_transaction_is_cached_once_committed(self):
        DataKey.objects.all().delete()
        with transaction.atomic():
            EncryptionService.encrypt("x")
            self.assertLessEqual(key_ring().expires_at, time.monotonic())
        self.assertGreater(key_ring().expires_at, time.monotonic())

    def test_rolled_back_first_key_is_replaced_not_reused(self):
        DataKey.objects.all().delete()
        with transaction.atomic():
            lost = key_id_of(EncryptionService.encrypt("x"))
            transaction.set_rollback(True)
        value = EncryptionService.encrypt("y")
        self.assertNotEqual(key_id_of(value), lost)
        self.assertEqual(DataKey.objects.get().key_id, key_id_of(value))


class ConcurrentFirstKeyTests(TransactionTestCase):
    """Two processes making the first key at once: the partial unique index lets one win."""

    def setUp(self):
        reset_key_ring()
        self.addCleanup(reset_key_ring)

    def test_loser_of_the_race_reads_the_winners_key(self):
        DataKey.objects.all().delete()
        winner = keys.ensure_primary_key()
        # Simulate the loser: it saw no primary, then its insert collides.
        with self.assertRaises(IntegrityError), transaction.atomic():
            keys.create_data_key("default", state=KeyState.PRIMARY)
        self.assertEqual(keys.ensure_primary_key().key_id, winner.key_id)
        self.assertEqual(DataKey.objects.count(), 1)
