"""The master key: parsing, naming by fingerprint, fallbacks, and errors that name the setting."""

from django.db import connection
from django.test import SimpleTestCase, TestCase, override_settings

from data_encryption.exceptions import KeyConfigurationError, KeyUnavailableError
from data_encryption.master_key import MasterKey
from data_encryption.models import DataKey, KeyState
from data_encryption.services import EncryptionService
from data_encryption.tests.testapp.models import Patient
from data_encryption.tests.utils import FreshKeyRingMixin, new_fernet_key


class MasterKeyTests(FreshKeyRingMixin, TestCase):
    def test_malformed_master_key_is_refused_by_name(self):
        for bad in ("short", "", b"\xff" * 44, "x" * 44):
            with (
                self.subTest(bad=bad),
                self.assertRaisesMessage(
                    KeyConfigurationError, "DB_ENCRYPTION_KEY is not a Fernet key"
                ),
            ):
                MasterKey(bad)

    def test_fingerprint_names_the_key_without_revealing_it(self):
        key = new_fernet_key()
        self.assertEqual(MasterKey(key).fingerprint, MasterKey(key.encode()).fingerprint)
        self.assertNotEqual(MasterKey(key).fingerprint, MasterKey(new_fernet_key()).fingerprint)
        self.assertRegex(MasterKey(key).fingerprint, r"^[0-9a-f]{16}$")
        self.assertEqual(
            repr(MasterKey(key)),
            f"<MasterKey DB_ENCRYPTION_KEY fingerprint={MasterKey(key).fingerprint}>",
        )

    def test_missing_master_key(self):
        with (
            override_settings(DB_ENCRYPTION_KEY=None),
            self.assertRaisesMessage(KeyConfigurationError, "DB_ENCRYPTION_KEY is not set"),
        ):
            EncryptionService.encrypt("x")

    def test_old_master_key_in_fallbacks_still_unwraps(self):
        from django.conf import settings

        value = EncryptionService.encrypt("under the old master key")
        old = settings.DB_ENCRYPTION_KEY
        with override_settings(
            DB_ENCRYPTION_KEY=new_fernet_key(), DB_ENCRYPTION_KEY_FALLBACKS=[old]
        ):
            self.assertEqual(EncryptionService.decrypt(value), "under the old master key")

    def test_wrong_master_key_says_which_key_is_missing(self):
        value = EncryptionService.encrypt("x")
        row = DataKey.objects.get(state=KeyState.PRIMARY)
        with override_settings(DB_ENCRYPTION_KEY=new_fernet_key()):
            # Only the values under that key fail, as a DecryptionError (M2); encrypting under
            # a primary no master key unwraps is a configuration error.
            with self.assertRaisesMessage(KeyUnavailableError, row.master_key_fingerprint):
                EncryptionService.decrypt(value)
            with self.assertRaisesMessage(KeyConfigurationError, row.master_key_fingerprint):
                EncryptionService.encrypt("x")

    def test_malformed_fallback_is_named_by_index(self):
        with override_settings(DB_ENCRYPTION_KEY_FALLBACKS=[new_fernet_key(), "nope"]):
            with self.assertRaisesMessage(
                KeyConfigurationError, "DB_ENCRYPTION_KEY_FALLBACKS[1] is not a Fernet key"
            ):
                EncryptionService.encrypt("x")

    def test_metadata_macs_have_their_own_key(self):
        master, other = MasterKey(new_fernet_key()), MasterKey(new_fernet_key())
        message = b"data_encryption/key-metadata/v1\n{}"
        mac = master.sign_metadata(message)
        self.assertTrue(master.verify_metadata(message, mac))
        self.assertFalse(master.verify_metadata(message + b" ", mac))
        self.assertFalse(other.verify_metadata(message, mac))
        # Domain separation: a backup signature never passes for a key row's MAC, nor the reverse.
        self.assertNotEqual(master.sign(message), mac)
        self.assertFalse(master.verify_metadata(message, master.sign(message)))
        self.assertFalse(master.verify(message, mac))


class MalformedKeyBeforeDatabaseTests(FreshKeyRingMixin, SimpleTestCase):
    """A malformed master key is the error a user sees, even where no query is allowed (a
    SimpleTestCase): the key is checked before the key table is read."""

    MALFORMED = "not-a-fernet-key-0123456789"

    def assertKeyError(self, setting, write):
        with self.assertRaises(KeyConfigurationError) as caught:
            write()
        message = str(caught.exception)
        self.assertIn(f"{setting} is not a Fernet key (32 bytes, URL-safe base64).", message)
        self.assertIn("Fernet.generate_key()", message)  # what to do
        self.assertNotIn(self.MALFORMED, message)

    def test_malformed_master_key(self):
        with override_settings(DB_ENCRYPTION_KEY=self.MALFORMED):
            self.assertKeyError("DB_ENCRYPTION_KEY", lambda: EncryptionService.encrypt("x"))

    def test_malformed_fallback(self):
        with override_settings(DB_ENCRYPTION_KEY_FALLBACKS=[self.MALFORMED]):
            self.assertKeyError(
                "DB_ENCRYPTION_KEY_FALLBACKS[0]", lambda: EncryptionService.encrypt("x")
            )

    def test_field_value_with_a_malformed_master_key(self):
        # What the SQL compiler asks of the field (a save() itself opens a cursor first).
        notes = Patient._meta.get_field("notes")
        with override_settings(DB_ENCRYPTION_KEY=self.MALFORMED):
            self.assertKeyError(
                "DB_ENCRYPTION_KEY", lambda: notes.get_db_prep_save("x", connection)
            )
