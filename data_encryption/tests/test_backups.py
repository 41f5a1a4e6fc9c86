"""Key backups and their restore, and re-wrapping the data keys for a master-key change."""

import json
import os
import stat
from io import StringIO
from pathlib import Path

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase, override_settings

from data_encryption.backups import BackupError, read_backup, restore_backup
from data_encryption.keys import reset_key_ring
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
