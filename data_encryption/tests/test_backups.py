"""Key backups and their restore, and re-wrapping the data keys for a master-key change."""

import json
import os
import stat
import tempfile
from io import StringIO
from pathlib import Path

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase, override_settings

from data_encryption.backups import BackupError, read_backup, restore_backup
from data_encryption.keys import cipher_for, reset_key_ring
from data_encryption.models import (
    DataKey,
    KeyState,
)
from data_encryption.services import (
    EncryptionService,
    KeyRotationService,
)
from data_encryption.tests.runner import material_forms
from data_encryption.tests.testapp.models import Customer
from data_encryption.tests.utils import (
    FAST,
    FreshKeyRingMixin,
    make_customers,
    new_fernet_key,
    primary_id,
    raw,
)


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class BackupTests(FreshKeyRingMixin, TestCase):
    def test_backup_file_mode_contents_and_no_plaintext_keys(self):
        make_customers(1)
        report = KeyRotationService().rotate()
        path = Path(report["key_backup_path"])
        self.assertEqual(stat.S_IMODE(path.stat().st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(path.parent.stat().st_mode), 0o700)
        self.assertRegex(path.name, r"^encryption_key_\d{8}T\d{6}Z(-\d+)?\.json$")
        document = json.loads(path.read_text())
        ids = {entry["hex_id"]: entry["state"] for entry in document["keys"]}
        self.assertEqual(ids[report["new_key_id"]], "pending")
        self.assertEqual(ids[report["old_key_ids"][0]], "primary")
        text = path.read_text()
        from data_encryption.keys import unwrap_data_key

        for key in DataKey.objects.all():
            for form in material_forms(unwrap_data_key(key)):
                self.assertNotIn(form, text)
        for form in material_forms(
            Fernet(settings.DB_ENCRYPTION_KEY)._signing_key
            + Fernet(settings.DB_ENCRYPTION_KEY)._encryption_key
        ):
            self.assertNotIn(form, text)

    def test_restore_brings_back_a_lost_key_and_is_idempotent(self):
        ssns = make_customers(5)
        report = KeyRotationService().rotate()
        new = primary_id()
        DataKey.objects.filter(key_id=new).delete()  # the key table lost its newest row
        DataKey.objects.filter(state=KeyState.RETIRED).update(state=KeyState.PRIMARY)
        reset_key_ring()
        with self.assertRaises(Exception):
            [c.ssn for c in Customer.objects.all()]
        out = StringIO()
        call_command("restore_encryption_keys", report["key_backup_path"], stdout=out)
        self.assertIn(f"restored:  {new:08x}", out.getvalue())
        self.assertEqual({c.pk: c.ssn for c in Customer.objects.all()}, ssns)
        out = StringIO()
        call_command("restore_encryption_keys", report["key_backup_path"], stdout=out)
        self.assertIn("restored:  none", out.getvalue())
        self.assertEqual(DataKey.objects.filter(state=KeyState.PRIMARY).count(), 1)

    def test_restore_brings_back_destroyed_material(self):
        make_customers(1)
        report = KeyRotationService().rotate()
        old = int(report["old_key_ids"][0], 16)
        stale = EncryptionService.encrypt  # noqa: F841
        DataKey.objects.filter(key_id=old).update(state=KeyState.DESTROYED, wrapped_key=None)
        restore = restore_backup(Path(report["key_backup_path"]))
        self.assertIn(old, restore.restored)
        self.assertEqual(DataKey.objects.get(key_id=old).state, KeyState.DECRYPT_ONLY)

    def test_altered_or_foreign_backups_are_refused(self):
        make_customers(1)
        path = Path(KeyRotationService().rotate()["key_backup_path"])
        document = json.loads(path.read_text())
        document["keys"][0]["state"] = "retired"
        altered = path.with_name("altered.json")
        altered.write_text(json.dumps(document))
        with self.assertRaisesMessage(CommandError, "was altered"):
            call_command("restore_encryption_keys", str(altered), stdout=StringIO())
        with override_settings(DB_ENCRYPTION_KEY=new_fernet_key()):
            with self.assertRaisesMessage(BackupError, "signed by a master key"):
                read_backup(path)
        with self.assertRaisesMessage(CommandError, "No such backup file"):
            call_command("restore_encryption_keys", "/nonexistent.json", stdout=StringIO())
        not_json = path.with_name("not.json")
        not_json.write_text("{")
        with self.assertRaisesMessage(CommandError, "is not a key backup"):
            call_command("restore_encryption_keys", str(not_json), stdout=StringIO())

    def test_backup_dir_readable_by_others_stops_the_rotation_before_any_change(self):
        import tempfile

        make_customers(2)
        before = raw(Customer, "_ssn")
        directory = Path(tempfile.mkdtemp())
        os.chmod(directory, 0o755)
        with override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "BACKUP_DIR": directory}):
            report = KeyRotationService().rotate()
        self.assertEqual(report["status"], "failed")
        self.assertIn("chmod 700", report["reason"])
        self.assertEqual(raw(Customer, "_ssn"), before)
        self.assertEqual(DataKey.objects.filter(state=KeyState.PRIMARY).count(), 1)
        self.assertEqual(list(directory.iterdir()), [])

    def test_missing_backup_dir_setting_fails_the_run_cleanly(self):
        make_customers(1)
        with override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "BACKUP_DIR": None}):
            report = KeyRotationService().rotate()
        self.assertEqual(report["status"], "failed")
        self.assertIn("BACKUP_DIR", report["reason"])


# Its own directory: the re-wrap rewrites every backup file it finds there.
@override_settings(
    ENCRYPTION_KEY_ROTATION={**FAST, "BACKUP_DIR": tempfile.mkdtemp(prefix="rewrap-")}
)
class MasterKeyRotationTests(FreshKeyRingMixin, TestCase):
    def test_rewrap_then_drop_the_fallback(self):
        ssns = make_customers(3)
        old_master, new_master = settings.DB_ENCRYPTION_KEY, new_fernet_key()
        with override_settings(
            DB_ENCRYPTION_KEY=new_master, DB_ENCRYPTION_KEY_FALLBACKS=[old_master]
        ):
            out = StringIO()
            call_command("rewrap_data_keys", stdout=out)
            self.assertIn("1 data keys re-wrapped", out.getvalue())
            out = StringIO()
            call_command("rewrap_data_keys", stdout=out)
            self.assertIn("0 data keys re-wrapped", out.getvalue())
        with override_settings(DB_ENCRYPTION_KEY=new_master):
            self.assertEqual({c.pk: c.ssn for c in Customer.objects.all()}, ssns)
        with self.assertRaises(Exception):
            reset_key_ring()
            [c.ssn for c in Customer.objects.all()]

    def test_rewrap_without_the_old_key_says_which_is_missing(self):
        with override_settings(DB_ENCRYPTION_KEY=new_fernet_key()):
            with self.assertRaisesMessage(CommandError, "No configured master key can unwrap"):
                call_command("rewrap_data_keys", stdout=StringIO())


def resigned(document):
    """``document`` signed again with the current master key: a file written by a tool that
    holds the master key, so only the restore's own checks stand between it and the table."""
    from data_encryption.master_key import master_keys

    names = ("format", "version", "created_at", "keys", "index_keys", "master_keys")
    body = {name: document[name] for name in names if name in document}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return {**document, "signature": master_keys()[0].sign(canonical).hex()}


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class RestoreValidationTests(FreshKeyRingMixin, TestCase):
    def setUp(self):
        super().setUp()
        make_customers(2)
        self.path = Path(KeyRotationService().rotate()["key_backup_path"])
        self.document = json.loads(self.path.read_text())
        # The old key (first entry) is lost from the table: restoring must insert it.
        self.lost = self.document["keys"][0]["key_id"]
        DataKey.objects.filter(key_id=self.lost).delete()

    def restore(self, mutate):
        document = json.loads(json.dumps(self.document))
        mutate(document["keys"])
        altered = self.path.with_name("altered.json")
        altered.write_text(json.dumps(resigned(document)))
        call_command("restore_encryption_keys", str(altered), stdout=StringIO())

    def test_malformed_signed_files_are_refused_with_what_is_wrong(self):
        # (exp12_restore_state) "A signed file with a duplicate id raises IntegrityError;
        # missing fields raise KeyError; _insert trusts any state string."
        def set_first(name, value):
            return lambda keys: keys[0].__setitem__(name, value)

        cases = {
            "appears twice": lambda keys: keys.append(dict(keys[0])),
            "lacks master_key_fingerprint": lambda keys: keys[0].pop("master_key_fingerprint"),
            "has the unknown state 'superprimary'": set_first("state", "superprimary"),
            "key_id must be a whole number": set_first("key_id", str(self.lost)),
            "wrapped_key must be base64 text or null": set_first("wrapped_key", 12345),
            "created_at must be an ISO 8601 date": set_first("created_at", "yesterday"),
            "is not a JSON object": lambda keys: keys.append(["not", "a", "key"]),
        }
        for message, mutate in cases.items():
            with self.subTest(message), self.assertRaisesMessage(CommandError, message):
                self.restore(mutate)
            self.assertFalse(DataKey.objects.filter(key_id=self.lost).exists())

    def test_a_key_marked_destroyed_or_retired_with_its_material_intact_is_repaired(self):
        # (exp12_restore_state) "a key tampered to destroyed with its material intact is
        # reported 'unchanged' and stays unusable (UnknownKeyError)".
        call_command("restore_encryption_keys", str(self.path), stdout=StringIO())
        restored = DataKey.objects.get(key_id=self.lost)
        for state in (KeyState.DESTROYED, KeyState.RETIRED):
            with self.subTest(state):
                restored.state = state
                restored.save()
                out = StringIO()
                call_command("restore_encryption_keys", str(self.path), stdout=out)
                self.assertIn(
                    f"made decrypt-only (material intact): {self.lost:08x}", out.getvalue()
                )
                restored.refresh_from_db()
                self.assertEqual(restored.state, KeyState.DECRYPT_ONLY)
                self.assertIsNone(restored.destroyed_at)
                reset_key_ring()
                cipher_for(self.lost)  # in the ring again: its values read
