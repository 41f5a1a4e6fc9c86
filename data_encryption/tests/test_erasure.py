"""Crypto-erasure: a data key lives in one place in the database (its DataKey row), destroyed
keys leave the key backups when they are pruned, and after a master-key change the old master
key opens nothing the project keeps (review findings H1 and M2)."""

import base64
import json
import tempfile
from datetime import timedelta
from io import StringIO
from pathlib import Path

from cryptography.exceptions import InvalidTag
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase, override_settings
from django.utils import timezone

from data_encryption.backups import read_backup
from data_encryption.keys import rewrap_data_keys
from data_encryption.master_key import MasterKey
from data_encryption.models import DataKey, KeyState, RotationRun
from data_encryption.rotation import Rotation, resolve_tables
from data_encryption.services import EncryptionService, KeyRotationService
from data_encryption.tests.testapp.models import Customer
from data_encryption.tests.utils import FAST, FreshKeyRingMixin, make_customers, new_fernet_key


def rotation_settings(**values):
    """FAST, with a backup directory of the test's own (the proofs read every file in it)."""
    directory = Path(tempfile.mkdtemp(prefix="erasure-"))
    return override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "BACKUP_DIR": directory, **values})


def backup_dir():
    return Path(settings.ENCRYPTION_KEY_ROTATION["BACKUP_DIR"])


def backup_entries():
    """(file, entry) for every key entry with material in every file of BACKUP_DIR."""
    for path in sorted(backup_dir().iterdir()):
        for entry in json.loads(path.read_text())["keys"]:
            if entry["wrapped_key"]:
                yield path, entry


def stopped_after_backup(*, activated=False):
    """A rotation whose process died after writing its backup (or after activating its key):
    its heartbeat is older than any lock timeout below."""
    rotation = Rotation(resolve_tables(KeyRotationService()._load_model_configurations()))
    run = rotation._acquire()
    rotation._backup(run)
    if activated:
        rotation._activate(run)
    RotationRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=2))
    return RotationRun.objects.get(pk=run.pk)


def readable():
    return {customer.pk: customer.ssn for customer in Customer.objects.all()}


class OneCopyTests(FreshKeyRingMixin, TestCase):
    @rotation_settings()
    def test_activation_forgets_the_runs_copy_of_the_key(self):
        make_customers(3)
        report = KeyRotationService().rotate()
        self.assertEqual(report["status"], "completed")
        run = RotationRun.objects.get()
        self.assertEqual(f"{run.new_key_id:08x}", report["new_key_id"])
        self.assertIsNone(run.new_wrapped_key)
        self.assertIsNotNone(DataKey.objects.get(key_id=run.new_key_id).wrapped_key)

    @rotation_settings(LOCK_TIMEOUT_SECONDS=1)
    def test_a_run_resumed_past_activation_forgets_its_copy(self):
        # What a release before this one leaves: a run killed after activation, copy still there.
        make_customers(3)
        run = stopped_after_backup(activated=True)
        self.assertEqual(run.phase, "wait")
        copy = DataKey.objects.get(key_id=run.new_key_id).wrapped_key
        RotationRun.objects.filter(pk=run.pk).update(new_wrapped_key=copy)
        report = KeyRotationService().rotate()
        self.assertTrue(report["resumed"])
        self.assertIsNone(RotationRun.objects.get(pk=run.pk).new_wrapped_key)

    @rotation_settings(RETENTION_DAYS=0)
    def test_destroy_wipes_a_copy_left_on_an_old_run(self):
        # (exp4_residue) "destroyed key: DataKey.wrapped_key=None; RotationRun #1.new_wrapped_key
        # still 61 bytes".
        make_customers(2)
        KeyRotationService().rotate()
        first = RotationRun.objects.get()
        copy = DataKey.objects.get(key_id=first.new_key_id).wrapped_key
        RotationRun.objects.filter(pk=first.pk).update(new_wrapped_key=copy)  # pre-0004 run
        KeyRotationService().rotate()  # retires the first run's key
        KeyRotationService().rotate()  # destroys it (retention 0)
        self.assertEqual(DataKey.objects.get(key_id=first.new_key_id).state, KeyState.DESTROYED)
        self.assertEqual(RotationRun.objects.exclude(new_wrapped_key=None).count(), 0)


class MasterKeyChangeTests(FreshKeyRingMixin, TestCase):
    @rotation_settings(RETENTION_DAYS=0)
    def test_the_old_master_key_unwraps_nothing_after_the_documented_change(self):
        # (exp4_residue) "RotationRun.new_wrapped_key + OLD master key -> data key".
        expected = make_customers(4)
        for _ in range(3):  # the third run destroys the first key
            self.assertEqual(KeyRotationService().rotate()["status"], "completed")
        self.assertTrue(DataKey.objects.filter(state=KeyState.DESTROYED).exists())
        old, new = settings.DB_ENCRYPTION_KEY, new_fernet_key()
        with override_settings(DB_ENCRYPTION_KEY=new, DB_ENCRYPTION_KEY_FALLBACKS=[old]):
            call_command("rewrap_data_keys", stdout=StringIO())
        with override_settings(DB_ENCRYPTION_KEY=new):  # the fallback removed
            self.assertEqual(readable(), expected)
            for path in backup_dir().iterdir():
                read_backup(path)  # every file is still restorable, under the new key alone
        # The proof: the old master key, a fresh dump of both tables, every backup file.
        old_master = MasterKey(old)
        attempts = [
            (row.key_id, bytes(row.wrapped_key))
            for row in DataKey.objects.exclude(wrapped_key=None)
        ]
        attempts += [
            (run.new_key_id, bytes(run.new_wrapped_key))
            for run in RotationRun.objects.exclude(new_wrapped_key=None)
        ]
        attempts += [
            (entry["key_id"], base64.b64decode(entry["wrapped_key"]))
            for _path, entry in backup_entries()
        ]
        self.assertGreater(len(attempts), 8)
        for key_id, wrapped in attempts:
            with self.subTest(key=f"{key_id:08x}"), self.assertRaises(InvalidTag):
                old_master.unwrap(key_id, wrapped)

    @rotation_settings(LOCK_TIMEOUT_SECONDS=1)
    def test_a_rotation_resumed_after_the_rewrap_activates_under_the_new_master_key(self):
        # (exp17_rewrap_race) "decrypt -> KeyConfigurationError No configured master key can
        # unwrap data key ..." once the fallback was removed.
        expected = make_customers(3)
        run = stopped_after_backup()
        old, new = settings.DB_ENCRYPTION_KEY, new_fernet_key()
        with override_settings(DB_ENCRYPTION_KEY=new, DB_ENCRYPTION_KEY_FALLBACKS=[old]):
            out = StringIO()
            call_command("rewrap_data_keys", stdout=out)
            report = KeyRotationService().rotate()
            self.assertEqual((report["status"], report["resumed"]), ("completed", True))
        with override_settings(DB_ENCRYPTION_KEY=new):
            self.assertEqual(readable(), expected)
            self.assertEqual(EncryptionService.decrypt(EncryptionService.encrypt("x")), "x")
        self.assertIn(f"The new key {run.new_key_id:08x} of a rotation", out.getvalue())

    @rotation_settings(LOCK_TIMEOUT_SECONDS=1)
    def test_activation_rewraps_a_pending_key_made_under_the_old_master_key(self):
        # The data keys were re-wrapped without the run (a process on old settings did it, or
        # the run row was read before): activation itself wraps the new key under the new master.
        expected = make_customers(3)
        stopped_after_backup()
        old, new = settings.DB_ENCRYPTION_KEY, new_fernet_key()
        with override_settings(DB_ENCRYPTION_KEY=new, DB_ENCRYPTION_KEY_FALLBACKS=[old]):
            rewrap_data_keys()
            self.assertEqual(KeyRotationService().rotate()["status"], "completed")
        with override_settings(DB_ENCRYPTION_KEY=new):
            self.assertEqual(readable(), expected)
            self.assertEqual(EncryptionService.decrypt(EncryptionService.encrypt("x")), "x")

    @rotation_settings()
    def test_rewrap_refuses_while_a_rotation_runs(self):
        make_customers(1)
        EncryptionService.encrypt("first key")
        live = RotationRun.objects.create(
            started_at=timezone.now(), heartbeat_at=timezone.now(), holder="elsewhere:1:abcd"
        )
        before = list(DataKey.objects.values_list("key_id", "wrapped_key"))
        old, new = settings.DB_ENCRYPTION_KEY, new_fernet_key()
        with override_settings(DB_ENCRYPTION_KEY=new, DB_ENCRYPTION_KEY_FALLBACKS=[old]):
            with self.assertRaisesMessage(CommandError, f"Rotation {live.pk} is running"):
                call_command("rewrap_data_keys", stdout=StringIO())
        after = list(DataKey.objects.values_list("key_id", "wrapped_key"))
        self.assertEqual(after, before)
        self.assertEqual(list(backup_dir().iterdir()), [])
        self.assertEqual(list(RotationRun.objects.values_list("pk", flat=True)), [live.pk])


class PruneTests(FreshKeyRingMixin, TestCase):
    def destroy_two_keys(self):
        """Three rotations with no retention: the first two keys end up destroyed."""
        make_customers(3)
        for _ in range(3):
            self.assertEqual(KeyRotationService().rotate()["status"], "completed")
        destroyed = set(
            DataKey.objects.filter(state=KeyState.DESTROYED).values_list("key_id", flat=True)
        )
        self.assertEqual(len(destroyed), 2)
        return destroyed

    def held(self, key_ids):
        return sorted(
            (path.name, entry["hex_id"])
            for path, entry in backup_entries()
            if entry["key_id"] in key_ids
        )

    @rotation_settings(RETENTION_DAYS=0)
    def test_prune_key_backups_removes_destroyed_keys_and_keeps_the_rest_restorable(self):
        destroyed = self.destroy_two_keys()
        self.assertEqual(len(list(backup_dir().iterdir())), 3)
        # The first run's backup held the first key and the second (pending) only.
        only_destroyed = {path.name for path, _entry in backup_entries()} - {
            path.name for path, entry in backup_entries() if entry["key_id"] not in destroyed
        }
        self.assertEqual(len(only_destroyed), 1)
        out = StringIO()
        call_command("prune_key_backups", "--dry-run", stdout=out)
        self.assertIn("2 backup files would be rewritten, 1 deleted", out.getvalue())
        self.assertEqual(len(self.held(destroyed)), 5)  # nothing changed
        out = StringIO()
        call_command("prune_key_backups", "--no-input", stdout=out)
        self.assertIn(f"deleted: {backup_dir() / only_destroyed.pop()}", out.getvalue())
        self.assertIn(
            "2 backup files were rewritten, 1 deleted, 0 left as they were.", out.getvalue()
        )
        self.assertEqual(self.held(destroyed), [])
        for path in backup_dir().iterdir():
            keys = read_backup(path)  # re-signed, and restorable for the keys it keeps
            self.assertTrue(any(key.wrapped_key for key in keys))
            self.assertTrue(all(key.wrapped_key is None for key in keys if key.key_id in destroyed))
        out = StringIO()
        call_command("prune_key_backups", "--no-input", stdout=out)
        self.assertIn(
            "0 backup files were rewritten, 0 deleted, 2 left as they were.", out.getvalue()
        )

    @rotation_settings(RETENTION_DAYS=0, PRUNE_BACKUPS=True)
    def test_the_prune_backups_option_prunes_after_each_retirement(self):
        destroyed = self.destroy_two_keys()
        self.assertEqual(self.held(destroyed), [])
        self.assertIn("key backups pruned", RotationRun.objects.first().reason)

    @rotation_settings(RETENTION_DAYS=0)
    def test_prune_key_backups_asks_first(self):
        from unittest.mock import patch

        destroyed = self.destroy_two_keys()
        held = self.held(destroyed)
        out = StringIO()
        with patch("builtins.input", return_value="no") as asked:
            call_command("prune_key_backups", stdout=out)
        self.assertIn("Type 'yes' to continue", asked.call_args[0][0])
        self.assertIn("2 backup files will be rewritten, 1 deleted", out.getvalue())
        self.assertIn("Pruning cancelled.", out.getvalue())
        self.assertEqual(self.held(destroyed), held)
        with patch("builtins.input", return_value="yes"):
            call_command("prune_key_backups", stdout=StringIO())
        self.assertEqual(self.held(destroyed), [])
