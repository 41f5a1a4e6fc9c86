"""Moving the master key from a local key into a PKCS#11 HSM (the SoftHSM2 token the test command
initialises) by the documented procedure, proven as the KMS moves are (``test_master_key_moves``):
the key rows, key rings loaded afresh with the local key gone, and the local key alone opening
nothing.
"""

from cryptography.exceptions import InvalidTag
from django.conf import settings
from django.test import TestCase, override_settings

from data_encryption.backups import BackupError, read_backup
from data_encryption.master_key import MasterKey
from data_encryption.tests.hsm_token import SoftHsmTestCase, provider_setting
from data_encryption.tests.provider_moves import (
    assert_all_wrapped_by,
    assert_found_by_blind_index,
    backup_paths,
    backup_settings,
    check_messages,
    merged,
    provider_only,
    read_values,
    rewrap,
    status_master_keys,
    wrapped_rows,
    write_under_two_local_keys,
    write_values,
)
from data_encryption.tests.utils import FreshKeyRingMixin


class LocalToHsmTests(FreshKeyRingMixin, SoftHsmTestCase, TestCase):
    @backup_settings()
    def test_local_to_hsm_by_the_documented_procedure(self):
        local, hsm = settings.DB_ENCRYPTION_KEY, provider_setting(self.options)
        local_fingerprint, fingerprint = MasterKey(local).fingerprint, self.provider.fingerprint
        expected = write_under_two_local_keys(self)
        assert_all_wrapped_by(self, local_fingerprint, provider=False)
        # Step 1: name the HSM, keep DB_ENCRYPTION_KEY where it is.
        with override_settings(DATA_ENCRYPTION_MASTER_KEY_PROVIDER=hsm):
            messages = check_messages(deploy=True)
            self.assertIn("W006", messages)
            self.assertFalse({"E027", "E039", "E040", "E041"} & set(messages), messages)
            output = rewrap()
            self.assertIn(f"2 data keys re-wrapped under master key {fingerprint}", output)
            self.assertIn("1 blind-index keys re-wrapped", output)
            assert_all_wrapped_by(self, fingerprint, provider=True)
            status = status_master_keys()
            self.assertEqual(status[local_fingerprint]["data_keys"], 0)
            self.assertEqual(status[fingerprint]["data_keys"], 2)
            self.assertEqual(status[fingerprint]["description"], self.provider.description)
        # Step 2: the local key removed everywhere; the HSM alone.
        with provider_only(hsm):
            self.assertEqual(read_values(), expected)
            assert_found_by_blind_index(self, expected)
            expected = merged(expected, write_values("after"))
            self.assertEqual(read_values(), expected)
            assert_found_by_blind_index(self, expected)
            messages = check_messages(deploy=True)
            self.assertFalse({"W006", "E027", "E032", "E039", "E040"} & set(messages), messages)
            for path in backup_paths():
                for key in read_backup(path):
                    if key.wrapped_key is not None:
                        self.assertEqual(key.wrapped_key[1:9].hex(), fingerprint)
        # The local key alone unwraps no row and opens no backup.
        self.assertTrue(backup_paths())
        with override_settings(DB_ENCRYPTION_KEY=local):
            self.assertIn(fingerprint, " ".join(check_messages()["E027"]))
            old = MasterKey(local)
            for _model, key_id, wrapped, _fingerprint in wrapped_rows():
                with self.subTest(key=f"{key_id:08x}"), self.assertRaises(InvalidTag):
                    old.unwrap(key_id, wrapped)
            for path in backup_paths():
                with self.assertRaisesMessage(BackupError, self.provider.description):
                    read_backup(path)
