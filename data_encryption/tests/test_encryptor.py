"""Sealing and opening values: fresh nonces, an authenticated header, legacy Fernet tokens."""

from cryptography.fernet import Fernet
from django.test import TestCase, override_settings

from data_encryption import encryptor as envelope  # the tests' name for seal/open_value's home
from data_encryption.exceptions import DecryptionError
from data_encryption.services import EncryptionService
from data_encryption.tests.utils import FreshKeyRingMixin, new_fernet_key


class LegacyTokenTests(FreshKeyRingMixin, TestCase):
    def test_plain_fernet_tokens_made_with_the_master_key_decrypt(self):
        from django.conf import settings

        token = Fernet(settings.DB_ENCRYPTION_KEY).encrypt(b"123-45-6789")
        self.assertEqual(EncryptionService.decrypt(token), "123-45-6789")
        self.assertEqual(EncryptionService.decrypt(memoryview(token)), "123-45-6789")
        self.assertEqual(EncryptionService.decrypt(token.decode()), "123-45-6789")
        self.assertIsNone(EncryptionService.key_id_of(token))

    def test_legacy_tokens_under_a_fallback_master_key_decrypt(self):
        old = new_fernet_key()
        token = Fernet(old).encrypt(b"old")
        with override_settings(DB_ENCRYPTION_KEY_FALLBACKS=[old]):
            self.assertEqual(EncryptionService.decrypt(token), "old")

    def test_legacy_token_from_another_key_is_a_decryption_error(self):
        token = Fernet(Fernet.generate_key()).encrypt(b"x")
        with self.assertRaisesMessage(DecryptionError, "legacy Fernet token could not be"):
            EncryptionService.decrypt(token)


class SealTests(FreshKeyRingMixin, TestCase):
    def test_each_value_has_a_fresh_nonce(self):
        values = {envelope.seal(b"same") for _ in range(50)}
        self.assertEqual(len(values), 50)
        self.assertEqual({value[:8] for value in values}.__len__(), 1)

    def test_header_is_authenticated(self):
        value = bytearray(envelope.seal(b"secret"))
        value[4:8] = (int.from_bytes(value[4:8], "big") ^ 1).to_bytes(4, "big")
        with self.assertRaises(DecryptionError):
            envelope.open_value(bytes(value))
