"""A PKCS#11 HSM (SoftHSM2, the token the test command initialises) as the app's master key.
SoftHSM cannot count calls from its side, so a counting subclass of the provider does: the
provider object the app holds, with every call passed on to the real token."""

from collections import Counter

from django.core import checks
from django.test import TestCase, override_settings

from data_encryption.envelope import format_key_id
from data_encryption.exceptions import KeyConfigurationError, KeyUnavailableError
from data_encryption.keys import create_data_key, key_ring, reset_key_ring, warm_up_key_ring
from data_encryption.master_key import master_keys, reset_master_keys
from data_encryption.master_keys import Pkcs11
from data_encryption.models import DataKey, IndexKey, KeyState
from data_encryption.services import EncryptionService

from .hsm_token import MISSING, REQUIRE_SERVICES, create_key, hsm_options
from .utils import FreshKeyRingMixin


class CountingPkcs11(Pkcs11):
    """``Pkcs11``, counting the calls the app makes to it (the same fingerprint: same kind and
    key name)."""

    calls: Counter = Counter()

    def wrap(self, key_id, plaintext):
        CountingPkcs11.calls["wrap"] += 1
        return super().wrap(key_id, plaintext)

    def unwrap(self, key_id, wrapped):
        CountingPkcs11.calls["unwrap"] += 1
        return super().unwrap(key_id, wrapped)


def counting_setting(options):
    return {"BACKEND": f"{__name__}.CountingPkcs11", "OPTIONS": dict(options)}


class HsmMasterKeyTestCase(FreshKeyRingMixin, TestCase):
    @classmethod
    def setUpClass(cls):
        if MISSING and not REQUIRE_SERVICES:
            cls.__unittest_skip__ = True
            cls.__unittest_skip_why__ = "needs SoftHSM (scripts/test.sh starts it)"
        super().setUpClass()
        if MISSING:
            raise AssertionError(f"{', '.join(MISSING)} not set: scripts/test.sh starts SoftHSM")
        cls.options = hsm_options(create_key().key_label)

    def setUp(self):
        super().setUp()
        self.enterContext(
            override_settings(
                DATA_ENCRYPTION_MASTER_KEY_PROVIDER=counting_setting(self.options),
                DB_ENCRYPTION_KEY=None,
                DB_ENCRYPTION_KEY_FALLBACKS=[],
            )
        )
        reset_master_keys()
        self.addCleanup(reset_master_keys)
        DataKey.objects.all().delete()  # begin as a project whose master key was always the HSM
        IndexKey.objects.all().delete()
        CountingPkcs11.calls.clear()

    def cold_start(self):
        reset_master_keys()
        reset_key_ring()
        CountingPkcs11.calls.clear()


class HsmMasterKeyTests(HsmMasterKeyTestCase):
    def test_values_round_trip_under_keys_the_hsm_wraps(self):
        token = EncryptionService.encrypt("under the hsm")
        row = DataKey.objects.get(state=KeyState.PRIMARY)
        master = master_keys()[0]
        self.assertEqual(
            master.description,
            f"pkcs11 master key {self.options['token_label']}/{self.options['key_label']}",
        )
        self.assertEqual(row.master_key_fingerprint, master.fingerprint)
        self.assertEqual(bytes(row.wrapped_key)[:9], b"\x02" + bytes.fromhex(master.fingerprint))
        self.cold_start()
        self.assertEqual(EncryptionService.decrypt(token), "under the hsm")

    def test_a_cold_start_unwraps_each_key_once_and_values_never(self):
        create_data_key("default", state=KeyState.PRIMARY)
        for _ in range(11):
            create_data_key("default", state=KeyState.DECRYPT_ONLY)
        self.cold_start()
        warm_up_key_ring()
        self.assertEqual(CountingPkcs11.calls, {"unwrap": 12})
        CountingPkcs11.calls.clear()
        tokens = [EncryptionService.encrypt(f"v{n}") for n in range(300)]
        self.assertEqual({EncryptionService.decrypt(t)[0] for t in tokens}, {"v"})
        self.assertEqual(CountingPkcs11.calls, {})

    def test_a_refused_login_costs_the_keys_under_it_one_call_and_no_row(self):
        token = EncryptionService.encrypt("kept in the table")
        for _ in range(11):
            create_data_key("default", state=KeyState.DECRYPT_ONLY)
        primary = DataKey.objects.get(state=KeyState.PRIMARY)
        before = list(DataKey.objects.order_by("key_id").values_list())
        # The same HSM key (same fingerprint), its PIN variable unset in this environment.
        no_pin = {**self.options, "pin_env": "DATA_ENCRYPTION_TEST_PIN_NOBODY_SET"}
        with override_settings(DATA_ENCRYPTION_MASTER_KEY_PROVIDER=counting_setting(no_pin)):
            self.cold_start()
            with self.assertRaises(KeyUnavailableError) as raised:
                EncryptionService.decrypt(token)
            message = str(raised.exception)
            self.assertIn(primary.hex_id, message)
            self.assertIn(self.options["key_label"], message)
            self.assertIn("DATA_ENCRYPTION_TEST_PIN_NOBODY_SET", message)
            # Twelve keys, one attempt: the refusal is not repeated per key, yet each key's
            # message names that key and no other.
            self.assertLessEqual(CountingPkcs11.calls["unwrap"], 1)
            unusable = key_ring().unusable
            self.assertEqual(len(unusable), 12)
            for key_id, text in unusable.items():
                named = {k for k in unusable if format_key_id(k) in text}
                self.assertEqual(named, {key_id}, text)
            with self.assertRaisesMessage(KeyConfigurationError, primary.hex_id):
                EncryptionService.encrypt("refused")
            errors = [m for m in checks.run_checks(databases=["default"]) if m.id.endswith("E039")]
            self.assertEqual(len(errors), 1)
            self.assertIn("DATA_ENCRYPTION_TEST_PIN_NOBODY_SET", errors[0].msg)
            deploy = [
                m
                for m in checks.run_checks(include_deployment_checks=True)
                if m.id.endswith("E040")
            ]
            self.assertEqual(len(deploy), 1)
        self.assertEqual(list(DataKey.objects.order_by("key_id").values_list()), before)
        self.cold_start()
        self.assertEqual(EncryptionService.decrypt(token), "kept in the table")
