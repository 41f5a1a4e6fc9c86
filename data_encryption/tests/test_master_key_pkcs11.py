"""The PKCS#11 master key (``data_encryption.master_keys.Pkcs11``) against the SoftHSM2 token that
the test command initialises: nothing of python-pkcs11 or the token is replaced. Each class makes
its own key. Its refusals: test_master_key_pkcs11_errors."""

import os
import threading
import time

from data_encryption.exceptions import MasterKeyProviderError, MasterKeyUnavailable, WrongMasterKey
from data_encryption.master_keys import Pkcs11, key_context
from data_encryption.master_keys.pkcs11_tokens import token_session
from data_encryption.tests.hsm_token import (
    PIN_ENV,
    LogCapture,
    SoftHsmTestCase,
    create_key,
    provider_setting,
    run_in_fork,
)

MATERIAL = bytes(range(64))  # the most the contract wraps: a data key and a 32-byte secret


def flipped(blob, index):
    return blob[:index] + bytes([blob[index] ^ 1]) + blob[index + 1 :]


class WrapTests(SoftHsmTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other = create_key("other")

    def test_round_trip(self):
        wrapped = self.provider.wrap(42, MATERIAL)
        self.assertEqual(self.provider.unwrap(42, wrapped), MATERIAL)
        self.assertEqual(wrapped[:1], b"\x01")
        self.assertEqual(len(wrapped), 1 + 12 + len(MATERIAL) + 16)
        self.assertNotIn(MATERIAL, wrapped)

    def test_each_wrap_has_its_own_iv(self):
        first, second = self.provider.wrap(42, MATERIAL), self.provider.wrap(42, MATERIAL)
        self.assertNotEqual(first[1:13], second[1:13])
        self.assertEqual(self.provider.unwrap(42, second), MATERIAL)

    def test_another_provider_object_for_the_same_key_unwraps(self):
        wrapped = self.provider.wrap(7, MATERIAL)
        again = Pkcs11(**self.options)
        self.assertEqual(again.unwrap(7, wrapped), MATERIAL)
        self.assertEqual(again.fingerprint, self.provider.fingerprint)

    def test_the_key_id_is_bound(self):
        wrapped = self.provider.wrap(42, MATERIAL)
        with self.assertRaises(WrongMasterKey) as caught:
            self.provider.unwrap(43, wrapped)
        self.assertIn("data key 0000002b", str(caught.exception))
        self.assertIn(self.provider.description, str(caught.exception))

    def test_another_hsm_keys_blob_does_not_unwrap(self):
        wrapped = self.other.wrap(42, MATERIAL)
        with self.assertRaises(WrongMasterKey):
            self.provider.unwrap(42, wrapped)
        self.assertEqual(self.other.unwrap(42, wrapped), MATERIAL)

    def test_an_altered_blob_does_not_unwrap(self):
        wrapped = self.provider.wrap(42, MATERIAL)
        altered = {
            "format byte": flipped(wrapped, 0),
            "iv": flipped(wrapped, 5),
            "ciphertext": flipped(wrapped, 20),
            "tag": flipped(wrapped, len(wrapped) - 1),
            "truncated": wrapped[:-1],
            "header only": wrapped[:13],
            "empty": b"",
            "extended": wrapped + b"\x00",
        }
        for name, blob in altered.items():
            with self.subTest(name), self.assertRaises(WrongMasterKey):
                self.provider.unwrap(42, blob)
        self.assertEqual(self.provider.unwrap(42, wrapped), MATERIAL)

    def test_the_aad_is_the_key_context(self):
        # The wrap is bound to what the contract says, not to something merely similar.
        self.assertEqual(key_context(42), "data_encryption/key-wrap/v2:0000002a")
        wrapped = self.provider.wrap(0x2A, MATERIAL)
        self.assertEqual(self.provider.unwrap(42, wrapped), MATERIAL)

    def test_check_makes_a_round_trip(self):
        self.provider.check()

    def test_names(self):
        token = self.options["token_label"]
        self.assertEqual(self.provider.kind, "pkcs11")
        self.assertEqual(self.provider.key_name, f"{token}/{self.provider.key_label}")
        self.assertEqual(self.provider.description, f"pkcs11 master key {self.provider.key_name}")
        self.assertRegex(self.provider.fingerprint, r"^[0-9a-f]{16}$")
        self.assertNotEqual(self.provider.fingerprint, self.other.fingerprint)
        self.assertEqual(repr(self.provider), f"<Pkcs11 {self.provider.key_name}>")

    def test_settings_form(self):
        setting = provider_setting(self.options)
        self.assertEqual(setting["BACKEND"], "data_encryption.master_keys.Pkcs11")
        provider = Pkcs11(**setting["OPTIONS"])
        self.assertEqual(provider.unwrap(9, self.provider.wrap(9, MATERIAL)), MATERIAL)


class KeyTests(SoftHsmTestCase):
    def key_attributes(self, *names):
        import pkcs11

        def read(key):
            return {name: key[getattr(pkcs11.Attribute, name)] for name in names}

        session = token_session(self.options["module"], self.options["token_label"])
        return session.run_with_key(self.provider.key_label, lambda: os.environ[PIN_ENV], read, 10)

    def test_the_key_is_not_extractable(self):
        import pkcs11

        attributes = self.key_attributes(
            "SENSITIVE", "EXTRACTABLE", "NEVER_EXTRACTABLE", "TOKEN", "PRIVATE", "MODIFIABLE"
        )
        self.assertEqual(
            attributes,
            {
                "SENSITIVE": True,
                "EXTRACTABLE": False,
                "NEVER_EXTRACTABLE": True,
                "TOKEN": True,
                "PRIVATE": True,
                "MODIFIABLE": False,
            },
        )
        with self.assertRaises(pkcs11.AttributeSensitive):
            self.key_attributes("VALUE")

    def test_the_key_only_encrypts_and_decrypts(self):
        attributes = self.key_attributes(
            "KEY_TYPE", "VALUE_LEN", "ENCRYPT", "DECRYPT", "WRAP", "UNWRAP", "SIGN", "DERIVE"
        )
        self.assertEqual(attributes.pop("VALUE_LEN"), 32)
        self.assertEqual(attributes.pop("KEY_TYPE").name, "AES")
        self.assertEqual(
            attributes,
            {
                "ENCRYPT": True,
                "DECRYPT": True,
                "WRAP": False,
                "UNWRAP": False,
                "SIGN": False,
                "DERIVE": False,
            },
        )

    def test_a_key_that_is_not_aes_is_refused(self):
        import pkcs11

        label = f"{self.provider.key_label}-generic"
        session = token_session(self.options["module"], self.options["token_label"])
        session.run_with_rw_session(
            lambda: os.environ[PIN_ENV],
            lambda rw: rw.generate_key(pkcs11.KeyType.GENERIC_SECRET, 256, label=label, store=True),
            10,
        )
        with self.assertRaises(MasterKeyProviderError) as caught:
            Pkcs11(**dict(self.options, key_label=label)).check()
        self.assertIn(f"the key labelled {label!r} is not an AES key", str(caught.exception))

    def test_create_key_refuses_a_label_in_use(self):
        wrapped = self.provider.wrap(5, MATERIAL)
        with self.assertRaises(MasterKeyProviderError) as caught:
            Pkcs11.create_key(**self.options)
        self.assertIn(
            f"already has an object labelled {self.provider.key_label!r}", str(caught.exception)
        )
        self.assertEqual(self.provider.unwrap(5, wrapped), MATERIAL)


class SessionTests(SoftHsmTestCase):
    def test_concurrent_unwraps_from_8_threads(self):
        blobs = {
            key_id: self.provider.wrap(key_id, MATERIAL[:32] + bytes([key_id]))
            for key_id in range(8)
        }
        provider = Pkcs11(**self.options)
        barrier = threading.Barrier(8)
        results, errors = {}, []

        def unwrap(key_id):
            barrier.wait()
            try:
                for _ in range(25):
                    results[key_id] = provider.unwrap(key_id, blobs[key_id])
            except Exception as error:
                errors.append(error)

        threads = [threading.Thread(target=unwrap, args=(key_id,)) for key_id in blobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(results, {key_id: MATERIAL[:32] + bytes([key_id]) for key_id in blobs})

    def test_a_forked_child_unwraps(self):
        wrapped = self.provider.wrap(11, MATERIAL)
        self.assertEqual(self.provider.unwrap(11, wrapped), MATERIAL)  # the parent's session in use

        def in_child():
            assert self.provider.unwrap(11, wrapped) == MATERIAL
            return self.provider.wrap(12, MATERIAL).hex()

        outcome = run_in_fork(in_child)
        self.assertNotIn("error", outcome, outcome.get("message"))
        self.assertEqual(self.provider.unwrap(12, bytes.fromhex(outcome["result"])), MATERIAL)
        self.assertEqual(self.provider.unwrap(11, wrapped), MATERIAL)  # the parent's still works

    def test_a_cold_forked_child_unwraps_from_8_threads(self):
        wrapped = self.provider.wrap(13, MATERIAL)

        def in_child():
            barrier = threading.Barrier(8)
            results = []

            def unwrap():
                barrier.wait()
                results.append(self.provider.unwrap(13, wrapped) == MATERIAL)

            threads = [threading.Thread(target=unwrap) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            return results

        outcome = run_in_fork(in_child)
        self.assertNotIn("error", outcome, outcome.get("message"))
        self.assertEqual(outcome["result"], [True] * 8)
        self.assertTrue(any("Opened a PKCS#11 session" in text for text in outcome["logs"]))

    def test_a_lost_session_is_opened_again(self):
        wrapped = self.provider.wrap(14, MATERIAL)
        session = token_session(self.options["module"], self.options["token_label"])
        # Close the shared session behind the provider's back, as an HSM restart would.
        session._call(lambda: session._session.close(), 10)
        with LogCapture() as logs:
            self.assertEqual(self.provider.unwrap(14, wrapped), MATERIAL)
        self.assertTrue(any("was lost (SessionHandleInvalid)" in text for text in logs.texts))

    def test_a_caller_waits_no_longer_than_the_timeout(self):
        wrapped = self.provider.wrap(15, MATERIAL)
        session = token_session(self.options["module"], self.options["token_label"])
        # The token's thread kept busy for 2 s, as behind a call the HSM does not answer.
        busy = threading.Thread(target=session._call, args=(lambda: time.sleep(2), 10))
        busy.start()
        self.addCleanup(busy.join)
        impatient = Pkcs11(**dict(self.options, timeout=0.2))
        started = time.monotonic()
        with self.assertRaises(MasterKeyUnavailable) as caught:
            impatient.unwrap(15, wrapped)
        self.assertLess(time.monotonic() - started, 1.5)
        message = str(caught.exception)
        self.assertIn("no answer within 0.2 s (the timeout option)", message)
        busy.join()
        self.assertEqual(impatient.unwrap(15, wrapped), MATERIAL)
