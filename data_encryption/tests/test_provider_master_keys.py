"""A provider (here AWS KMS, on moto's real server) as the master key: how settings name it, what
it stores, what it costs in calls, and what a process does when it is unreachable.

The moves between master keys, rotation, backups and restore under a provider are proved in
``test_master_key_moves``; the KMS provider's own errors in ``test_master_key_aws_kms``.
"""

import time

from cryptography.fernet import Fernet
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.test import TestCase, override_settings

from data_encryption.exceptions import (
    KeyConfigurationError,
    KeyUnavailableError,
    MasterKeyUnavailable,
)
from data_encryption.key_audit import Metadata, audit_data_keys
from data_encryption.keys import create_data_key, key_ring, reset_key_ring, warm_up_key_ring
from data_encryption.master_key import (
    MasterKey,
    master_keys,
    reset_master_keys,
    unwrap_with_any,
)
from data_encryption.master_keys.provider_key import ProviderMasterKey
from data_encryption.models import DataKey, IndexKey, KeyState
from data_encryption.services import EncryptionService

from .kms_server import aws_environment, count_kms_calls, create_key, kms_client, kms_url, needs_kms
from .tcp_relay import TcpRelay
from .utils import FreshKeyRingMixin


def empty_key_tables():
    # The suite's database starts with a primary under the local test key: these tests begin
    # where a project whose master key was always the provider would.
    DataKey.objects.all().delete()
    IndexKey.objects.all().delete()


def kms_setting(arn, url, **options):
    return {
        "BACKEND": "data_encryption.master_keys.AwsKms",
        "OPTIONS": {"key_id": arn, "endpoint_url": url, **options},
    }


class ProviderTestCase(FreshKeyRingMixin, TestCase):
    """A fresh KMS key per class, named as the master key (no local key) for every test."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.url = kms_url()
        cls.enterClassContext(aws_environment())
        cls.arn = create_key(cls.url)["Arn"]

    def setUp(self):
        super().setUp()
        self.enterContext(
            override_settings(
                DATA_ENCRYPTION_MASTER_KEY_PROVIDER=kms_setting(self.arn, self.url),
                DB_ENCRYPTION_KEY=None,
                DB_ENCRYPTION_KEY_FALLBACKS=[],
            )
        )
        reset_master_keys()
        self.addCleanup(reset_master_keys)
        empty_key_tables()

    def cold_start(self):
        """What a new process does: no master key objects, no ring, no learned secret."""
        reset_master_keys()
        reset_key_ring()


@needs_kms
class SettingsTests(ProviderTestCase):
    def test_the_provider_wraps_and_a_local_key_beside_it_only_unwraps(self):
        local = Fernet.generate_key().decode()
        with override_settings(DB_ENCRYPTION_KEY=local):
            keys = master_keys()
            self.assertIsInstance(keys[0], ProviderMasterKey)
            self.assertIsInstance(keys[1], MasterKey)
            self.assertEqual(keys[0].description, f"aws-kms master key {self.arn}")
            warnings = [m.id for m in checks.run_checks() if m.id.startswith("data_encryption")]
            self.assertIn("data_encryption.W006", warnings)
            self.assertNotIn("data_encryption.E001", warnings)

    def test_no_local_key_is_needed(self):
        ids = [m.id for m in checks.run_checks() if m.id.startswith("data_encryption")]
        self.assertNotIn("data_encryption.E001", ids)
        self.assertEqual(EncryptionService.decrypt(EncryptionService.encrypt("x")), "x")

    def test_a_malformed_setting_names_itself(self):
        for value, words in [
            ({"BACKEND": "data_encryption.master_keys.AwsKms", "OPTIONS": []}, "takes only"),
            ({"BACKEND": "data_encryption.master_keys.AwsKms", "OPTONS": {}}, "takes only"),
            ({"OPTIONS": {}}, "must be a dotted path or"),
            ({"BACKEND": "data_encryption.models.DataKey"}, "is not a subclass of"),
            ({"BACKEND": "data_encryption.master_keys.AwsKms", "OPTIONS": {}}, "refuses"),
        ]:
            with self.subTest(value), override_settings(DATA_ENCRYPTION_MASTER_KEY_PROVIDER=value):
                with self.assertRaisesMessage(ImproperlyConfigured, words):
                    master_keys()
                errors = [m for m in checks.run_checks() if m.id == "data_encryption.E025"]
                self.assertEqual(len(errors), 1, errors)

    def test_a_bad_fallback_is_e041(self):
        with override_settings(
            DATA_ENCRYPTION_MASTER_KEY_FALLBACKS=[{"BACKEND": "no.such.Provider"}]
        ):
            errors = [m for m in checks.run_checks() if m.id == "data_encryption.E041"]
            self.assertEqual(len(errors), 1)
            self.assertIn("DATA_ENCRYPTION_MASTER_KEY_FALLBACKS[0]", errors[0].msg)

    def test_a_legacy_fernet_value_needs_a_local_key(self):
        from data_encryption.master_key import legacy_fernet

        with self.assertRaisesMessage(KeyConfigurationError, "DB_ENCRYPTION_KEY_FALLBACKS"):
            legacy_fernet()


@needs_kms
class StoredKeyTests(ProviderTestCase):
    def test_a_wrapped_key_names_its_master_key_and_only_that_one_is_asked(self):
        row = create_data_key("default", state=KeyState.PRIMARY)
        current = master_keys()[0]
        self.assertEqual(bytes(row.wrapped_key)[:9], b"\x02" + bytes.fromhex(current.fingerprint))
        self.assertEqual(row.master_key_fingerprint, current.fingerprint)
        # A second KMS key listed first: a blob of the first key is still one call, to its owner.
        other = create_key(self.url)["Arn"]
        with override_settings(
            DATA_ENCRYPTION_MASTER_KEY_PROVIDER=kms_setting(other, self.url),
            DATA_ENCRYPTION_MASTER_KEY_FALLBACKS=[kms_setting(self.arn, self.url)],
        ):
            reset_master_keys()
            with count_kms_calls(self.url) as calls:
                self.assertIsNotNone(unwrap_with_any(row.key_id, bytes(row.wrapped_key)))
            self.assertEqual(calls, {"Decrypt": 1})
            # A blob no configured key wrapped (a local key's format) costs no call at all.
            with count_kms_calls(self.url) as calls:
                self.assertIsNone(unwrap_with_any(row.key_id, b"\x01" + bytes(60)))
            self.assertEqual(calls, {})

    def test_metadata_signed_by_one_process_verifies_in_a_cold_one(self):
        for _ in range(3):
            create_data_key("default", state=KeyState.DECRYPT_ONLY)
        self.cold_start()
        with count_kms_calls(self.url) as calls:
            audits = audit_data_keys("default")
        self.assertEqual({audit.metadata for audit in audits}, {Metadata.VERIFIED})
        self.assertEqual(calls, {"Decrypt": 3})  # the secret came with the keys: no extra call

    def test_an_edit_outside_the_application_is_seen_under_a_provider(self):
        primary = create_data_key("default", state=KeyState.PRIMARY)
        old = create_data_key("default", state=KeyState.RETIRED)
        DataKey.objects.filter(pk=old.pk).update(state=KeyState.DECRYPT_ONLY)
        self.cold_start()
        verdicts = {audit.key_id: audit.metadata for audit in audit_data_keys("default")}
        self.assertEqual(verdicts[old.key_id], Metadata.TAMPERED)
        self.assertEqual(verdicts[primary.key_id], Metadata.VERIFIED)
        ids = [m.id for m in checks.run_checks(databases=["default"])]
        self.assertIn("data_encryption.E032", ids)

    def test_signing_before_any_unwrap_uses_the_secret_the_stored_rows_carry(self):
        create_data_key("default", state=KeyState.PRIMARY)
        self.cold_start()
        with count_kms_calls(self.url) as calls:
            row = create_data_key("default", state=KeyState.DECRYPT_ONLY)  # signs on save
        # One Decrypt to learn the stored secret, one Encrypt for the new key.
        self.assertEqual(calls, {"Decrypt": 1, "Encrypt": 1})
        self.cold_start()
        verdicts = {audit.key_id: audit.metadata for audit in audit_data_keys("default")}
        self.assertEqual(verdicts[row.key_id], Metadata.VERIFIED)


@needs_kms
class CallCountTests(ProviderTestCase):
    def test_a_cold_start_costs_one_call_per_key_and_values_cost_none(self):
        create_data_key("default", state=KeyState.PRIMARY)
        for _ in range(11):
            create_data_key("default", state=KeyState.DECRYPT_ONLY)
        self.cold_start()
        with count_kms_calls(self.url) as calls:
            warm_up_key_ring()
        self.assertEqual(calls, {"Decrypt": 12})
        with count_kms_calls(self.url) as calls:
            tokens = [EncryptionService.encrypt(f"value {n}") for n in range(500)]
            self.assertEqual([EncryptionService.decrypt(t) for t in tokens][-1], "value 499")
        self.assertEqual(calls, {})
        with count_kms_calls(self.url) as calls:
            warm_up_key_ring()  # a reload (KEY_CACHE_SECONDS later) asks again: revocation works
        self.assertEqual(calls, {"Decrypt": 12})


@needs_kms
class OutageTests(FreshKeyRingMixin, TestCase):
    """The provider reached through a relay the test cuts: the real server, made unreachable."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.enterClassContext(aws_environment())
        cls.arn = create_key(kms_url())["Arn"]

    def setUp(self):
        super().setUp()
        self.relay = TcpRelay(kms_url())
        self.addCleanup(self.relay.close)
        # Short timeouts, so a cold start against the cut relay is quick to prove bounded.
        setting = kms_setting(
            self.arn, self.relay.url, connect_timeout=0.5, read_timeout=1.0, max_attempts=1
        )
        self.enterContext(
            override_settings(
                DATA_ENCRYPTION_MASTER_KEY_PROVIDER=setting,
                DB_ENCRYPTION_KEY=None,
                DB_ENCRYPTION_KEY_FALLBACKS=[],
            )
        )
        reset_master_keys()
        self.addCleanup(reset_master_keys)
        empty_key_tables()

    def test_a_loaded_process_keeps_working_and_recovers(self):
        rotation = {**settings.ENCRYPTION_KEY_ROTATION, "KEY_CACHE_SECONDS": 60}
        self.enterContext(override_settings(ENCRYPTION_KEY_ROTATION=rotation))
        with self.captureOnCommitCallbacks(execute=True):  # the first key counts as committed
            token = EncryptionService.encrypt("kept")
        for _ in range(3):
            create_data_key("default", state=KeyState.DECRYPT_ONLY)
        warm_up_key_ring()
        self.relay.cut()
        with self.assertLogs("data_encryption", "ERROR") as logs:
            ring = warm_up_key_ring()  # the reload KEY_CACHE_SECONDS brings
        self.assertFalse(ring.unusable)
        self.assertIn(self.arn, "\n".join(logs.output))
        self.assertLessEqual(ring.expires_at - time.monotonic(), 10.0)  # not 60: retried soon
        self.assertGreater(ring.expires_at - time.monotonic(), 5.0)
        self.assertEqual(EncryptionService.decrypt(token), "kept")
        self.assertEqual(EncryptionService.decrypt(EncryptionService.encrypt("new")), "new")
        self.relay.mend()
        time.sleep(5.1)  # past the provider's back-off
        ring = warm_up_key_ring()
        self.assertFalse(ring.unusable)
        self.assertGreater(ring.expires_at - time.monotonic(), 50.0)  # KEY_CACHE_SECONDS again

    def test_a_cold_process_fails_fast_naming_the_provider_and_the_key(self):
        token = EncryptionService.encrypt("under kms")
        for _ in range(11):
            create_data_key("default", state=KeyState.DECRYPT_ONLY)
        primary = DataKey.objects.get(state=KeyState.PRIMARY)
        before = list(DataKey.objects.order_by("key_id").values_list())
        self.relay.cut()
        reset_master_keys()
        reset_key_ring()
        started = time.monotonic()
        with self.assertRaises(KeyUnavailableError) as raised:
            EncryptionService.decrypt(token)
        elapsed = time.monotonic() - started
        message = str(raised.exception)
        self.assertIn(primary.hex_id, message)
        self.assertIn(f"aws-kms master key {self.arn}", message)
        self.assertIn("DATA_ENCRYPTION_MASTER_KEY_PROVIDER", message)
        # 12 keys, one timeout: the provider is not asked again for each key (never a hang).
        self.assertLess(elapsed, 10 * (0.5 + 1.0))
        with self.assertRaisesMessage(KeyConfigurationError, primary.hex_id):
            EncryptionService.encrypt("refused")
        self.assertEqual(list(DataKey.objects.order_by("key_id").values_list()), before)
        self.assertIn(primary.key_id, key_ring().unusable)

    def test_a_hanging_provider_costs_one_timeout_not_one_per_key(self):
        token = EncryptionService.encrypt("under kms")
        for _ in range(11):
            create_data_key("default", state=KeyState.DECRYPT_ONLY)
        self.relay.blackhole()
        reset_master_keys()
        reset_key_ring()
        started = time.monotonic()
        with self.assertRaises(KeyUnavailableError):
            EncryptionService.decrypt(token)
        # One read timeout (1 s) for 12 keys; asked once per key it would be 12 s or more.
        self.assertLess(time.monotonic() - started, 4 * (0.5 + 1.0))

    def test_the_error_says_unavailable_not_wrong_key(self):
        row = create_data_key("default", state=KeyState.PRIMARY)
        self.relay.cut()
        reset_master_keys()
        with self.assertRaises(MasterKeyUnavailable) as raised:
            unwrap_with_any(row.key_id, bytes(row.wrapped_key))
        self.assertIn(row.hex_id, str(raised.exception))


@needs_kms
class DeployCheckTests(ProviderTestCase):
    def deploy_errors(self):
        return [
            m
            for m in checks.run_checks(include_deployment_checks=True)
            if m.id == "data_encryption.E040"
        ]

    def test_a_sound_key_passes_with_one_round_trip(self):
        with count_kms_calls(self.url) as calls:
            self.assertEqual(self.deploy_errors(), [])
        self.assertEqual(calls, {"DescribeKey": 1, "Encrypt": 1, "Decrypt": 1})

    def test_a_key_that_does_not_exist_is_e040_naming_it(self):
        missing = self.arn.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
        with override_settings(DATA_ENCRYPTION_MASTER_KEY_PROVIDER=kms_setting(missing, self.url)):
            reset_master_keys()
            errors = self.deploy_errors()
        self.assertEqual(len(errors), 1)
        self.assertIn(missing, errors[0].msg)

    def test_a_disabled_key_is_e040_naming_its_state(self):
        key = create_key(self.url)
        kms_client(self.url).disable_key(KeyId=key["KeyId"])  # moto 500s on an ARN here
        with override_settings(
            DATA_ENCRYPTION_MASTER_KEY_PROVIDER=kms_setting(key["Arn"], self.url)
        ):
            reset_master_keys()
            errors = self.deploy_errors()
        self.assertEqual(len(errors), 1)
        self.assertIn("Disabled", errors[0].msg)
