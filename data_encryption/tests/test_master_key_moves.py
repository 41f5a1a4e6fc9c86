"""Moving the master key between a local key and KMS keys (moto's KMS server), by the documented
procedure (docs/master-keys.md): the new key current, the old one a fallback, ``rewrap_data_keys``,
the fallback removed. Each move is proven on the key rows (fingerprint and blob format), in key
rings loaded afresh with the old key gone, and by the old key alone unwrapping nothing.
"""

import re

from django.conf import settings
from django.core.management.base import CommandError
from django.test import override_settings

from data_encryption.backups import BackupError, read_backup
from data_encryption.envelope import key_id_of
from data_encryption.exceptions import (
    IndexKeyUnavailableError,
    KeyConfigurationError,
    KeyUnavailableError,
    WrongMasterKey,
)
from data_encryption.keys import reset_key_ring
from data_encryption.master_key import MasterKey
from data_encryption.master_keys import AwsKms
from data_encryption.models import DataKey
from data_encryption.services import EncryptionService
from data_encryption.tests.kms_server import kms_client, kms_requests, needs_kms
from data_encryption.tests.provider_moves import (
    KmsDatabaseTestCase,
    assert_all_wrapped_by,
    assert_found_by_blind_index,
    assert_local_to_provider_move,
    backup_paths,
    backup_settings,
    check_messages,
    key_rows,
    kms_fingerprint,
    kms_only,
    kms_setting,
    merged,
    read_values,
    rewrap,
    status_master_keys,
    wrapped_rows,
    write_under_two_local_keys,
    write_values,
)
from data_encryption.tests.search_app.models import Person
from data_encryption.tests.testapp.models import Customer
from data_encryption.tests.utils import new_fernet_key


@needs_kms
class LocalToKmsTests(KmsDatabaseTestCase):
    @backup_settings()
    def test_local_to_kms_by_the_documented_procedure(self):
        local, arn = settings.DB_ENCRYPTION_KEY, self.key["Arn"]
        kms = kms_fingerprint(arn)
        assert_local_to_provider_move(self, kms_setting(arn), kms, f"aws-kms master key {arn}")
        # Beside the provider, the local key only unwraps.
        with override_settings(DATA_ENCRYPTION_MASTER_KEY_PROVIDER=kms_setting(arn)):
            role = status_master_keys()[MasterKey(local).fingerprint]["role"]
        self.assertEqual(role, "unwraps only")

    @backup_settings()
    def test_a_key_under_a_provider_no_longer_configured_fails_alone_and_changes_nothing(self):
        local, arn = settings.DB_ENCRYPTION_KEY, self.key["Arn"]
        kms = kms_fingerprint(arn)
        expected = write_under_two_local_keys(self)
        with override_settings(DATA_ENCRYPTION_MASTER_KEY_PROVIDER=kms_setting(arn)):
            rewrap()
        before = key_rows()
        # The provider removed with no fallback naming it: the local key alone.
        with override_settings(DB_ENCRYPTION_KEY=local):
            reset_key_ring()
            for customer in Customer.objects.all():
                key_id = key_id_of(customer._ssn)
                with self.assertRaises(KeyUnavailableError) as caught:
                    customer.ssn  # noqa: B018
                self.assertEqual(caught.exception.key_id, key_id)
                self.assertIn(f"data key {key_id:08x}", str(caught.exception))
                self.assertIn(kms, str(caught.exception))
            with self.assertRaisesMessage(KeyConfigurationError, "primary data key is unusable"):
                EncryptionService.encrypt("new")
            ssn = next(iter(expected["people"].values()))[0]
            with self.assertRaises(IndexKeyUnavailableError) as caught:
                Person.objects.get(ssn=ssn)
            self.assertIn(f"{caught.exception.key_id:08x}", str(caught.exception))
            error = " ".join(check_messages()["E027"])
            self.assertIn(kms, error)
            for key_id in DataKey.objects.values_list("key_id", flat=True):
                self.assertIn(f"{key_id:08x}", error)
            with self.assertRaises(CommandError) as caught:
                rewrap()
            named = {row[0] for row in before["data"]}
            refused = re.search(r"unwrap data key ([0-9a-f]{8})", str(caught.exception))
            self.assertIn(int(refused[1], 16), named)
            self.assertIn(kms, str(caught.exception))
        self.assertEqual(key_rows(), before)
        # Putting the provider back as a fallback undoes it all.
        with override_settings(
            DB_ENCRYPTION_KEY=local, DATA_ENCRYPTION_MASTER_KEY_FALLBACKS=[kms_setting(arn)]
        ):
            self.assertEqual(read_values(), expected)


@needs_kms
class KmsToKmsTests(KmsDatabaseTestCase):
    def write_under_kms(self, arn):
        with kms_only(arn):
            DataKey.objects.all().delete()  # migrate's first key, under the local key, unused
            values = write_values("kms")
            assert_all_wrapped_by(self, kms_fingerprint(arn), provider=True)
        return values

    @backup_settings()
    def test_kms_key_a_to_kms_key_b(self):
        key_a, key_b = self.fresh_kms_key(), self.fresh_kms_key()
        a, b = key_a["Arn"], key_b["Arn"]
        expected = self.write_under_kms(a)
        with override_settings(
            DATA_ENCRYPTION_MASTER_KEY_PROVIDER=kms_setting(b),
            DATA_ENCRYPTION_MASTER_KEY_FALLBACKS=[kms_setting(a)],
            DB_ENCRYPTION_KEY=None,
        ):
            self.assertFalse({"E027", "E040", "E041"} & set(check_messages(deploy=True)))
            self.assertIn(f"1 data keys re-wrapped under master key {kms_fingerprint(b)}", rewrap())
            assert_all_wrapped_by(self, kms_fingerprint(b), provider=True)
            status = status_master_keys()
            self.assertEqual(status[kms_fingerprint(a)]["data_keys"], 0)
            self.assertEqual(status[kms_fingerprint(b)]["data_keys"], 1)
        # Key A disabled (moto takes the bare key id): with B alone, nothing asks A for anything.
        kms_client(self.url).disable_key(KeyId=key_a["KeyId"])
        with kms_only(b), kms_requests() as requests:
            self.assertEqual(read_values(), expected)
            assert_found_by_blind_index(self, expected)
            expected = merged(expected, write_values("b"))
            self.assertEqual(read_values(), expected)
            messages = check_messages(deploy=True)
            self.assertFalse({"E027", "E032", "E039", "E040"} & set(messages), messages)
        self.assertIn(("Decrypt", b), requests)
        self.assertEqual({key for _operation, key in requests}, {b})
        # Key A alone unwraps none of the rows, and opens none of the key backups.
        paths = backup_paths()
        self.assertTrue(paths)
        with kms_only(b):
            for path in paths:
                read_backup(path)
        with kms_only(a):
            self.assertIn(kms_fingerprint(b), " ".join(check_messages()["E027"]))
            for path in paths:
                with self.assertRaisesMessage(BackupError, f"aws-kms master key {b}"):
                    read_backup(path)
        provider_a = AwsKms(key_id=a, endpoint_url=self.url)
        for _model, key_id, wrapped, _fingerprint in wrapped_rows():
            with self.subTest(key=f"{key_id:08x}"), self.assertRaises(WrongMasterKey):
                provider_a.unwrap(key_id, wrapped[9:])

    @backup_settings()
    def test_kms_back_to_a_local_key(self):
        arn, local = self.fresh_kms_key()["Arn"], new_fernet_key()
        expected = self.write_under_kms(arn)
        local_fingerprint = MasterKey(local).fingerprint
        with override_settings(
            DATA_ENCRYPTION_MASTER_KEY_PROVIDER=None,
            DATA_ENCRYPTION_MASTER_KEY_FALLBACKS=[kms_setting(arn)],
            DB_ENCRYPTION_KEY=local,
            DB_ENCRYPTION_KEY_FALLBACKS=[],
        ):
            self.assertFalse({"E027", "E040", "E041", "W006"} & set(check_messages(deploy=True)))
            self.assertIn(f"re-wrapped under master key {local_fingerprint}", rewrap())
            assert_all_wrapped_by(self, local_fingerprint, provider=False)
            self.assertEqual(status_master_keys()[kms_fingerprint(arn)]["data_keys"], 0)
        with override_settings(DB_ENCRYPTION_KEY=local), kms_requests() as requests:
            self.assertEqual(read_values(), expected)
            assert_found_by_blind_index(self, expected)
            expected = merged(expected, write_values("local"))
            self.assertEqual(read_values(), expected)
            self.assertFalse({"E027", "E032"} & set(check_messages()))
        self.assertEqual(requests, [])  # the KMS key is no longer asked for anything
        with kms_only(arn):
            self.assertIn(local_fingerprint, " ".join(check_messages()["E027"]))
        provider = AwsKms(key_id=arn, endpoint_url=self.url)
        for _model, key_id, wrapped, _fingerprint in wrapped_rows():
            with self.subTest(key=f"{key_id:08x}"), self.assertRaises(WrongMasterKey):
                provider.unwrap(key_id, wrapped)
