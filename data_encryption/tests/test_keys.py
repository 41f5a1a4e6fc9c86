"""The key hierarchy: master key over data keys, the first key, the per-process ring cache,
master-key fallbacks, legacy Fernet tokens."""

import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.test import TestCase, TransactionTestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from data_encryption import keys
from data_encryption.ciphers import AeadCipher, generate_data_key
from data_encryption.envelope import HEADER_V1, key_id_of
from data_encryption.exceptions import KeyConfigurationError, KeyUnavailableError, UnknownKeyError
from data_encryption.keys import key_ring, reset_key_ring
from data_encryption.master_key import MasterKey, master_keys
from data_encryption.missing_keys import MissingKeyIds
from data_encryption.models import DataKey, KeyState
from data_encryption.services import EncryptionService
from data_encryption.tests.utils import (
    FreshKeyRingMixin,
    install_data_key,
    make_primary,
    new_fernet_key,
)

CACHED = {**settings.ENCRYPTION_KEY_ROTATION, "KEY_CACHE_SECONDS": 3600}


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

    @override_settings(ENCRYPTION_KEY_ROTATION=CACHED)
    def test_a_rolled_back_first_key_does_not_reload_the_ring_on_every_encrypt(self):
        # L10 (exp13_uncommitted): the hold on caching outlived the rollback, so every encrypt
        # reloaded the ring for the rest of the process's life.
        DataKey.objects.all().delete()
        with transaction.atomic():
            EncryptionService.encrypt("x")
            transaction.set_rollback(True)
        EncryptionService.encrypt("makes and caches a new first key")
        with CaptureQueriesContext(connection) as queries:
            for _ in range(100):
                EncryptionService.encrypt("y")
        self.assertEqual(len(queries), 0)


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


def store_key(key_id, material, *, master=None, state=KeyState.DECRYPT_ONLY, wrapped=None):
    """An older key's row written through save() (so its metadata verifies), wrapped by
    ``master`` (any MasterKey, configured or not) or holding ``wrapped`` bytes as they are."""
    master = master or master_keys()[0]
    row = DataKey(
        key_id=key_id,
        state=state,
        wrapped_key=master.wrap(key_id, material) if wrapped is None else wrapped,
        master_key_fingerprint=master.fingerprint,
        created_at=timezone.now() - timedelta(days=1),  # older than the primary, as usual
    )
    row.save(force_insert=True)
    return row


@override_settings(ENCRYPTION_KEY_ROTATION=CACHED)
class PerKeyDegradationTests(FreshKeyRingMixin, TestCase):
    """M2: one data-key row that no master key unwraps costs only the values under it."""

    def setUp(self):
        super().setUp()
        self.sound = generate_data_key()
        store_key(0x50000001, self.sound)
        self.under_sound = seal_with(0x50000001, self.sound, "sound")
        self.under_primary = EncryptionService.encrypt("primary")

    def assert_only_that_key_fails(self, key_id, value):
        self.assertEqual(EncryptionService.decrypt(self.under_sound), "sound")
        self.assertEqual(EncryptionService.decrypt(self.under_primary), "primary")
        self.assertEqual(EncryptionService.decrypt(EncryptionService.encrypt("new")), "new")
        with self.assertRaisesMessage(KeyUnavailableError, f"data key {key_id:08x}") as caught:
            EncryptionService.decrypt(value)
        self.assertIsInstance(caught.exception, UnknownKeyError)  # what callers already catch
        self.assertEqual(caught.exception.key_id, key_id)
        return str(caught.exception)

    def test_a_junk_wrapped_key_fails_only_its_own_values(self):
        # exp3_keys #5: one junk `retired` row used to stop every encrypt and decrypt.
        material = generate_data_key()
        store_key(0x50000002, material, state=KeyState.RETIRED, wrapped=b"\x01" + b"j" * 60)
        reset_key_ring()
        message = self.assert_only_that_key_fails(0x50000002, seal_with(0x50000002, material, "x"))
        self.assertIn("restore_encryption_keys", message)

    def test_swapped_wrapped_keys_fail_only_their_own_values(self):
        # exp3_keys #4: the wrap is bound to the key id, so a swap fails closed, per key.
        first, second = generate_data_key(), generate_data_key()
        store_key(0x50000003, first, wrapped=master_keys()[0].wrap(0x50000004, second))
        store_key(0x50000004, second, wrapped=master_keys()[0].wrap(0x50000003, first))
        reset_key_ring()
        self.assert_only_that_key_fails(0x50000003, seal_with(0x50000003, first, "x"))
        self.assert_only_that_key_fails(0x50000004, seal_with(0x50000004, second, "y"))

    def test_a_key_wrapped_by_a_removed_fallback_names_that_master_key(self):
        gone = MasterKey(new_fernet_key(), "DB_ENCRYPTION_KEY_FALLBACKS[0]")
        material = generate_data_key()
        store_key(0x50000005, material, master=gone)
        reset_key_ring()
        message = self.assert_only_that_key_fails(0x50000005, seal_with(0x50000005, material, "x"))
        self.assertIn(f"fingerprint {gone.fingerprint}", message)
        self.assertIn("DB_ENCRYPTION_KEY_FALLBACKS", message)

    def test_an_unusable_key_is_logged_once_not_per_value(self):
        material = generate_data_key()
        store_key(0x50000006, material, wrapped=b"\x01" + b"j" * 60)
        reset_key_ring()
        value = seal_with(0x50000006, material, "x")
        with self.assertLogs("data_encryption", "ERROR") as logs:
            for _ in range(50):
                with self.assertRaises(KeyUnavailableError):
                    EncryptionService.decrypt(value)
            reset_key_ring()  # an operator's fix that changed nothing: said once more
            with self.assertRaises(KeyUnavailableError):
                EncryptionService.decrypt(value)
        about_it = [line for line in logs.output if "50000006" in line]
        self.assertEqual(len(about_it), 2, logs.output)
        self.assertIn("manage.py check --database default", about_it[0])

    def test_values_under_an_unusable_key_cost_no_reload(self):
        material = generate_data_key()
        store_key(0x50000007, material, wrapped=b"\x01" + b"j" * 60)
        reset_key_ring()
        value = seal_with(0x50000007, material, "x")
        EncryptionService.encrypt("load the ring")
        with CaptureQueriesContext(connection) as queries:
            for _ in range(20):
                with self.assertRaises(KeyUnavailableError):
                    EncryptionService.decrypt(value)
        self.assertEqual(len(queries), 0)

    def test_an_unusable_primary_refuses_to_encrypt_and_the_rest_still_decrypts(self):
        primary = DataKey.objects.get(state=KeyState.PRIMARY)
        primary.wrapped_key = b"\x01" + b"j" * 60
        primary.save()
        reset_key_ring()
        with self.assertRaisesMessage(KeyConfigurationError, f"data key {primary.hex_id}") as err:
            EncryptionService.encrypt("x")
        self.assertIn(f"fingerprint {primary.master_key_fingerprint}", str(err.exception))
        self.assertIn("DB_ENCRYPTION_KEY_FALLBACKS", str(err.exception))
        self.assertEqual(EncryptionService.decrypt(self.under_sound), "sound")
        with self.assertRaises(KeyUnavailableError):
            EncryptionService.decrypt(self.under_primary)


class MissingKeyIdCacheTests(FreshKeyRingMixin, TestCase):
    """L10 (exp7_dos): unknown key ids are remembered across reloads, within bounds."""

    def unknown_values(self, count):
        return [
            seal_with(0x60000000 + number, generate_data_key(), "lost") for number in range(count)
        ]

    def decrypt_all(self, values):
        with CaptureQueriesContext(connection) as queries:
            for value in values:
                with self.assertRaises(UnknownKeyError):
                    EncryptionService.decrypt(value)
        return len(queries)

    @override_settings(ENCRYPTION_KEY_ROTATION=CACHED)
    def test_alternating_unknown_ids_cost_one_reload_each(self):
        EncryptionService.encrypt("load the ring")
        first, second = self.unknown_values(2)
        self.assertEqual(self.decrypt_all([first, second] * 100), 2)

    @override_settings(ENCRYPTION_KEY_ROTATION=CACHED)
    def test_distinct_unknown_ids_cost_one_reload_per_id_per_cache_period(self):
        EncryptionService.encrypt("load the ring")
        values = self.unknown_values(200)
        self.assertEqual(self.decrypt_all(values), 200)
        self.assertEqual(self.decrypt_all(values), 0)

    @override_settings(ENCRYPTION_KEY_ROTATION={**CACHED, "KEY_CACHE_SECONDS": 0.2})
    def test_a_key_restored_after_a_miss_is_found_once_the_cache_period_ends(self):
        material = generate_data_key()
        value = seal_with(0x61000000, material, "back")
        EncryptionService.encrypt("load the ring")
        self.assertEqual(self.decrypt_all([value]), 1)
        install_data_key(0x61000000, material)
        self.assertEqual(self.decrypt_all([value]), 0)  # still remembered as missing
        time.sleep(0.25)
        self.assertEqual(EncryptionService.decrypt(value), "back")

    def test_the_cache_is_bounded_and_forgets_the_least_recently_seen(self):
        missing = MissingKeyIds(capacity=3)
        for key_id in (1, 2, 3):
            missing.add(key_id, 60)
        self.assertIn(1, missing)  # 1 is now the most recently seen
        missing.add(4, 60)
        self.assertEqual(
            (len(missing), 2 in missing, 1 in missing, 4 in missing), (3, False, True, True)
        )
        missing.add(5, 0)
        self.assertNotIn(5, missing)  # its time is up at once
