"""Payload tokens: Fernet under PAYLOAD_ENCRYPTION_KEY, expiry, clock skew, wrong keys."""

from django.test import TestCase, override_settings

from data_encryption.exceptions import DecryptionError, KeyConfigurationError, PayloadExpired
from data_encryption.services import EncryptionService
from data_encryption.tests.utils import new_fernet_key


class PayloadTests(TestCase):
    def test_round_trip_of_json_values(self):
        for obj in ({"user": 7, "scopes": ["a", "b"]}, [1, 2.5, None], "text", 12, True, None):
            with self.subTest(obj=obj):
                token = EncryptionService.encrypt_payload(obj)
                self.assertIsInstance(token, str)
                self.assertRegex(token, r"^[A-Za-z0-9_\-=]+$")  # safe in a URL
                self.assertEqual(EncryptionService.decrypt_payload(token), obj)

    def test_expiry_is_enforced(self):
        token = EncryptionService.encrypt_payload({"a": 1}, now=1_000_000)
        self.assertEqual(
            EncryptionService.decrypt_payload(token, max_age=60, now=1_000_060), {"a": 1}
        )
        with self.assertRaisesMessage(PayloadExpired, "61 seconds old and max_age is 60"):
            EncryptionService.decrypt_payload(token, max_age=60, now=1_000_061)
        with self.assertRaisesMessage(DecryptionError, "stamped in the future"):
            EncryptionService.decrypt_payload(token, max_age=60, now=1_000_000 - 61)
        self.assertEqual(EncryptionService.decrypt_payload(token), {"a": 1})  # no max_age

    def test_fallback_keys_read_old_tokens(self):
        old = new_fernet_key()
        with override_settings(PAYLOAD_ENCRYPTION_KEY=old):
            token = EncryptionService.encrypt_payload("before the change")
        with override_settings(PAYLOAD_ENCRYPTION_KEY=new_fernet_key()):
            with self.assertRaises(DecryptionError):
                EncryptionService.decrypt_payload(token)
            with override_settings(PAYLOAD_ENCRYPTION_KEY_FALLBACKS=[old]):
                self.assertEqual(EncryptionService.decrypt_payload(token), "before the change")

    def test_payload_key_is_not_the_database_key(self):
        from cryptography.fernet import Fernet
        from django.conf import settings

        token = Fernet(settings.DB_ENCRYPTION_KEY).encrypt(b'"x"')
        with self.assertRaisesMessage(DecryptionError, "payload token is invalid"):
            EncryptionService.decrypt_payload(token)

    def test_bad_tokens(self):
        token = EncryptionService.encrypt_payload({"a": 1})
        for bad in (
            "",
            "nope",
            token[:-3],
            token[:10] + ("B" if token[10] == "A" else "A") + token[11:],
            "é" * 10,
        ):
            with self.subTest(bad=bad), self.assertRaises(DecryptionError):
                EncryptionService.decrypt_payload(bad)
        with self.assertRaises(TypeError):
            EncryptionService.decrypt_payload(12)

    def test_unserialisable_value(self):
        with self.assertRaisesMessage(TypeError, "JSON-serialisable"):
            EncryptionService.encrypt_payload({"when": object()})

    def test_missing_or_malformed_payload_key(self):
        with (
            override_settings(PAYLOAD_ENCRYPTION_KEY=None),
            self.assertRaisesMessage(KeyConfigurationError, "PAYLOAD_ENCRYPTION_KEY is not set"),
        ):
            EncryptionService.encrypt_payload(1)
        with (
            override_settings(PAYLOAD_ENCRYPTION_KEY="short"),
            self.assertRaisesMessage(
                KeyConfigurationError, "PAYLOAD_ENCRYPTION_KEY is not a Fernet key"
            ),
        ):
            EncryptionService.encrypt_payload(1)
