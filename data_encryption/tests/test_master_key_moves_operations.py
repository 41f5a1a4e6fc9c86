"""Every operation with a KMS key (moto's KMS server) as the only master key: rotation, key
backups and their restore into an empty key table, key-row metadata signed in one process and
verified in another, and the KMS calls a process makes, counted by the server.
"""

import base64
import json
import subprocess
import sys
from io import StringIO
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import TransactionTestCase

from data_encryption.backups import BackupError, read_backup, write_backup
from data_encryption.envelope import key_id_of
from data_encryption.index_keys import reset_index_key_ring
from data_encryption.keys import create_data_key, reset_key_ring, warm_up_key_ring
from data_encryption.master_key import reset_master_keys
from data_encryption.models import DataKey, IndexKey, KeyState
from data_encryption.services import EncryptionService
from data_encryption.tests.kms_server import KmsTestCase, count_kms_calls, needs_kms
from data_encryption.tests.processes import child_environment
from data_encryption.tests.provider_moves import (
    KmsDatabaseTestCase,
    assert_all_wrapped_by,
    assert_found_by_blind_index,
    backup_settings,
    key_rows,
    kms_fingerprint,
    kms_only,
    kms_setting,
    read_values,
    write_values,
)
from data_encryption.tests.search_app.models import Person
from data_encryption.tests.testapp.models import Customer, Patient
from data_encryption.tests.utils import FAST, FreshKeyRingMixin, make_primary


def start_under_kms():
    """The key table emptied (migrate's first key is the local key's) and values written under
    the KMS key of the current settings."""
    DataKey.objects.all().delete()
    return write_values("kms")


def forget_everything():
    """What a process that starts now knows: no key ring, no master key (so no integrity
    secret learned before)."""
    reset_master_keys()
    reset_key_ring()
    reset_index_key_ring()


@needs_kms
class RotationUnderKmsTests(KmsDatabaseTestCase):
    @backup_settings()
    def test_rotation_with_only_the_provider_configured(self):
        arn = self.key["Arn"]
        kms = kms_fingerprint(arn)
        with kms_only(arn):
            expected = start_under_kms()
            out = StringIO()
            call_command("rotate_encryption_key", "--force", "--json", stdout=out)
            report = json.loads(out.getvalue())
            self.assertEqual(report["status"], "completed", report.get("reason"))
            new_id = int(report["new_key_id"], 16)
            self.assertEqual(DataKey.objects.get(key_id=new_id).state, KeyState.PRIMARY)
            assert_all_wrapped_by(self, kms, provider=True)
            # The backup it wrote before changing anything: KMS-wrapped keys, named and signed.
            path = Path(report["key_backup_path"])
            document = json.loads(path.read_text())
            self.assertEqual(document["version"], 3)
            self.assertEqual(document["master_keys"], {kms: f"aws-kms master key {arn}"})
            self.assertEqual(document["signed_by"], kms)
            entries = {entry["key_id"]: entry for entry in document["keys"]}
            self.assertEqual(entries[new_id]["state"], "pending")
            self.assertEqual(len(entries), 2)
            for entry in entries.values():
                self.assertEqual(entry["master_key_fingerprint"], kms)
                self.assertEqual(base64.b64decode(entry["wrapped_key"])[:9].hex(), "02" + kms)
            forget_everything()
            self.assertEqual({key.key_id for key in read_backup(path)}, set(entries))
            altered = path.with_name("altered.json")
            document["keys"][0]["state"] = "retired"
            altered.write_text(json.dumps(document))
            with self.assertRaisesMessage(BackupError, "was altered"):
                read_backup(altered)
            altered.unlink()  # (the directory's files must stay restorable)
            # Every value was re-encrypted under the new key, and reads in a fresh ring.
            self.assertEqual({key_id_of(c._ssn) for c in Customer.objects.all()}, {new_id})
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT notes FROM {Patient._meta.db_table}")
                notes = [value for (value,) in cursor.fetchall()]
            self.assertEqual(len(notes), 3)
            self.assertEqual({key_id_of(value) for value in notes}, {new_id})
            self.assertEqual(read_values(), expected)
            assert_found_by_blind_index(self, expected)
            self.assertEqual(key_id_of(EncryptionService.encrypt("new")), new_id)


def index_key_identity(rows):
    """key id, slot, state, wrapped key, fingerprint, created_at of each index key row."""
    return [row[:6] for row in rows["index"]]


@needs_kms
class RestoreUnderKmsTests(KmsDatabaseTestCase):
    def empty_key_tables(self):
        DataKey.objects.all().delete()
        IndexKey.objects.all().delete()
        forget_everything()

    @backup_settings()
    def test_restore_into_an_empty_key_table(self):
        arn = self.key["Arn"]
        with kms_only(arn):
            expected = start_under_kms()
            path = write_backup()
            before = key_rows()
            (data_key,) = DataKey.objects.all()
            (index_key,) = IndexKey.objects.all()
            self.empty_key_tables()
            out = StringIO()
            call_command("restore_encryption_keys", str(path), stdout=out)
            self.assertIn(f"  restored:  {data_key.hex_id}\n", out.getvalue())
            self.assertIn(f"blind-index keys restored:  {index_key.hex_id}\n", out.getvalue())
            after = key_rows()
            self.assertEqual(after["data"], before["data"])
            # An index key comes back as it was, but dated now and with no field recorded
            # complete (rows written since the backup may lack it: docs/search.md).
            self.assertEqual(index_key_identity(after), index_key_identity(before))
            self.assertEqual(read_values(), expected)
            assert_found_by_blind_index(self, expected)

    @backup_settings()
    def test_an_altered_backup_is_refused(self):
        with kms_only(self.key["Arn"]):
            start_under_kms()
            path = write_backup()
            document = json.loads(path.read_text())
            kms = kms_fingerprint(self.key["Arn"])
            for change in (
                lambda d: d["keys"][0].update(state="retired"),
                lambda d: d["master_keys"].update({kms: "aws-kms master key arn:elsewhere"}),
                lambda d: d["index_keys"][0].update(slot="b"),
            ):
                changed = json.loads(json.dumps(document))
                change(changed)
                altered = path.with_name("altered.json")
                altered.write_text(json.dumps(changed))
                self.empty_key_tables()
                with self.assertRaisesMessage(CommandError, "was altered"):
                    call_command("restore_encryption_keys", str(altered), stdout=StringIO())
                altered.unlink()
                self.assertFalse(DataKey.objects.exists())

    @backup_settings()
    def test_a_backup_signed_by_another_kms_key_is_refused_naming_it(self):
        a, b = self.key["Arn"], self.fresh_kms_key()["Arn"]
        with kms_only(a):
            start_under_kms()
            path = write_backup()
        with kms_only(b):
            self.empty_key_tables()
            with self.assertRaises(CommandError) as caught:
                call_command("restore_encryption_keys", str(path), stdout=StringIO())
            self.assertIn(f"{kms_fingerprint(a)}: aws-kms master key {a}", str(caught.exception))
            self.assertFalse(DataKey.objects.exists())
            self.assertFalse(IndexKey.objects.exists())


@needs_kms
class ProcessesTests(FreshKeyRingMixin, KmsTestCase, TransactionTestCase):
    """Another process (a fresh interpreter on the same database) judges the key rows this one
    signed under KMS."""

    def child_report(self):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "data_encryption.tests.provider_child",
                json.dumps(kms_setting(self.key["Arn"])),
            ],
            env=child_environment(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        return json.loads(done.stdout.strip().splitlines()[-1])

    @backup_settings()
    def test_metadata_signed_in_one_process_verifies_in_another(self):
        # Method-scoped settings: the flush after the test makes migrate's first key again, and
        # it must be the local key's, as every other test expects.
        with kms_only(self.key["Arn"]):
            DataKey.objects.all().delete()
            warm_up_key_ring()  # the first data key, under KMS
            for _ in range(2):
                make_primary(create_data_key("default", state=KeyState.DECRYPT_ONLY))
            Person.objects.create(name="p", ssn="123-45-6789")  # the first index key
            ids = sorted(DataKey.objects.values_list("key_id", flat=True))
            hex_ids = [f"{key_id:08x}" for key_id in ids]
            assert_all_wrapped_by(self, kms_fingerprint(self.key["Arn"]), provider=True)
            report = self.child_report()
            self.assertEqual(report["cold"], dict.fromkeys(hex_ids, "verified"))
            self.assertEqual(report["ring"], hex_ids)
            self.assertEqual(report["data"], {h: ["verified", True] for h in hex_ids})
            self.assertEqual(len(report["index"]), 1)
            self.assertEqual(list(report["index"].values()), [["verified", True]])
            self.assertEqual(report["checks"], {})
            # A row edited outside the application (no MAC made for it) is caught there.
            victim = DataKey.objects.filter(state=KeyState.DECRYPT_ONLY).first()
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {DataKey._meta.db_table} SET state = %s WHERE key_id = %s",
                    [KeyState.RETIRED, victim.key_id],
                )
            report = self.child_report()
            expected = {h: "verified" for h in hex_ids} | {victim.hex_id: "tampered"}
            self.assertEqual(report["cold"], expected)
            self.assertEqual(report["data"][victim.hex_id], ["tampered", True])
            self.assertEqual(set(report["checks"]), {"data_encryption.E032"})
            self.assertIn(victim.hex_id, report["checks"]["data_encryption.E032"])


@needs_kms
class CallCountTests(KmsDatabaseTestCase):
    KEYS = 12

    def test_one_decrypt_per_data_key_per_ring_load_and_none_per_value(self):
        with kms_only(self.key["Arn"], ENCRYPTION_KEY_ROTATION={**FAST, "KEY_CACHE_SECONDS": 300}):
            DataKey.objects.all().delete()
            old_values = {}
            for index in range(self.KEYS):  # a value under each key, each key primary in turn
                make_primary(create_data_key("default", state=KeyState.DECRYPT_ONLY))
                reset_key_ring()
                old_values[EncryptionService.encrypt(f"old {index}")] = f"old {index}"
            self.assertEqual(DataKey.objects.count(), self.KEYS)
            self.assertEqual(len({key_id_of(token) for token in old_values}), self.KEYS)
            forget_everything()
            with count_kms_calls() as cold:
                EncryptionService.warm_up()
            self.assertEqual(cold, {"Decrypt": self.KEYS})
            with count_kms_calls() as per_value:
                for index in range(1000):
                    token = EncryptionService.encrypt(f"value {index}")
                    self.assertEqual(EncryptionService.decrypt(token), f"value {index}")
                for token, plaintext in old_values.items():
                    self.assertEqual(EncryptionService.decrypt(token), plaintext)
            self.assertEqual(per_value, {})
            with count_kms_calls() as reload:
                warm_up_key_ring()
            self.assertEqual(reload, {"Decrypt": self.KEYS})
