"""Blind-index keys in the key lifecycle: key backups hold them, restore brings them back (or
refuses), pruning and a master-key change reach them (docs/search.md)."""

import base64
import json
import tempfile
from io import StringIO

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase, override_settings

from data_encryption.backups import (
    BackupError,
    back_up_before_new_index_key,
    prune_backups,
    read_backup_file,
    restore_backup,
    write_backup,
)
from data_encryption.index_keys import index_key_ring, reset_index_key_ring
from data_encryption.master_key import master_keys, unwrap_with_any
from data_encryption.models import DataKey, IndexKey, IndexKeyState
from data_encryption.tests.runner import material_forms
from data_encryption.tests.search_app.models import Person
from data_encryption.tests.test_backups import resigned
from data_encryption.tests.utils import FAST, FreshKeyRingMixin, new_fernet_key


def index_material(row):
    return unwrap_with_any(row.key_id, bytes(row.wrapped_key))


def backup_dir():
    return {**FAST, "BACKUP_DIR": tempfile.mkdtemp(prefix="index-keys-")}


@override_settings(ENCRYPTION_KEY_ROTATION=backup_dir())
class IndexKeyBackupTests(FreshKeyRingMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.ann = Person.objects.create(name="ann", ssn="123-45-6789")
        self.key = IndexKey.objects.get(state=IndexKeyState.ACTIVE)

    def test_a_backup_holds_every_live_index_key_wrapped_and_never_its_material(self):
        self.assertEqual(Person.objects.get(ssn="123456789"), self.ann)  # marks ssn complete
        path = write_backup()
        document = json.loads(path.read_text())
        self.assertEqual(document["version"], 3)
        [entry] = document["index_keys"]
        self.assertEqual(
            (entry["hex_id"], entry["slot"], entry["state"], entry["complete_fields"]),
            (self.key.hex_id, "a", "active", ["search_app.Person.ssn#digits"]),
        )
        self.assertEqual(entry["master_key_fingerprint"], self.key.master_key_fingerprint)
        text = path.read_text()
        for form in material_forms(index_material(self.key)):
            self.assertNotIn(form, text)
        loaded = read_backup_file(path)
        self.assertEqual([key.key_id for key in loaded.index_keys], [self.key.key_id])

    def test_a_retired_index_key_is_not_backed_up(self):
        self.key.state, self.key.wrapped_key = IndexKeyState.RETIRED, None
        self.key.save()
        reset_index_key_ring()  # the ring makes the next key, in the free slot, on first use
        new = index_key_ring().active
        entries = json.loads(write_backup().read_text())["index_keys"]
        self.assertEqual([entry["key_id"] for entry in entries], [new.key_id])

    def test_back_up_before_new_index_key_backs_it_up_then_stores_it(self):
        row, path = back_up_before_new_index_key("default", slot="b")
        self.assertEqual((row.slot, row.state), ("b", IndexKeyState.FILLING))
        entries = {e["key_id"]: e for e in json.loads(path.read_text())["index_keys"]}
        self.assertEqual(entries[row.key_id]["state"], "pending")
        self.assertEqual(entries[row.key_id]["slot"], "b")
        self.assertEqual(entries[self.key.key_id]["state"], "active")
        loaded = read_backup_file(path)  # signed, and every key unwraps
        [pending] = [key for key in loaded.index_keys if key.key_id == row.key_id]
        self.assertEqual(pending.wrapped_key, bytes(row.wrapped_key))
        # Every write now fills slot b too, under the key the backup holds.
        bob = Person.objects.create(name="bob", ssn="987654321")
        self.assertIsNotNone(Person.objects.filter(pk=bob.pk).values("ssn_bidx_b")[0]["ssn_bidx_b"])

    def test_no_index_key_is_stored_when_its_backup_cannot_be_written(self):
        with override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "BACKUP_DIR": None}):
            with self.assertRaisesMessage(BackupError, "BACKUP_DIR"):
                back_up_before_new_index_key("default", slot="b")
        self.assertEqual(list(IndexKey.objects.values_list("key_id", flat=True)), [self.key.key_id])

    def test_restore_brings_a_lost_index_key_back_and_queries_find_rows_again(self):
        path = write_backup()
        IndexKey.objects.all().delete()
        report = restore_backup(path)
        self.assertEqual(report.index_keys.restored, [self.key.key_id])
        restored = IndexKey.objects.get()
        self.assertEqual((restored.slot, restored.state), ("a", IndexKeyState.ACTIVE))
        self.assertEqual(restored.complete_fields, [])  # the first query checks again
        self.assertEqual(Person.objects.get(ssn="123-45-6789"), self.ann)
        again = restore_backup(path)  # idempotent
        self.assertEqual(
            (again.index_keys.restored, again.index_keys.unchanged), ([], [self.key.key_id])
        )

    def test_restore_refuses_an_index_key_whose_slot_another_key_now_holds(self):
        path = write_backup()
        IndexKey.objects.all().delete()
        reset_index_key_ring()
        Person.objects.create(name="bob", ssn="987654321")  # makes a new key in slot a
        data_keys = set(DataKey.objects.values_list("key_id", flat=True))
        DataKey.objects.all().delete()  # so the data-key part of the restore would write
        with self.assertRaisesMessage(BackupError, "rebuild_blind_index"):
            restore_backup(path)
        self.assertFalse(IndexKey.objects.filter(key_id=self.key.key_id).exists())
        self.assertFalse(DataKey.objects.filter(key_id__in=data_keys).exists())  # nothing at all

    def test_restore_refuses_an_index_key_whose_material_differs(self):
        path = write_backup()
        document = json.loads(path.read_text())
        document["index_keys"][0]["wrapped_key"] = base64.b64encode(
            master_keys()[0].wrap(self.key.key_id, bytes(32))
        ).decode()
        path.write_text(json.dumps(resigned(document)))
        with self.assertRaisesMessage(BackupError, f"Blind-index key {self.key.hex_id}"):
            restore_backup(path)

    def test_a_version_1_backup_still_restores_and_says_it_holds_no_index_keys(self):
        path = write_backup()
        document = json.loads(path.read_text())
        del document["index_keys"], document["master_keys"]
        document["version"] = 1
        path.write_text(json.dumps(resigned(document)))
        out = StringIO()
        call_command("restore_encryption_keys", str(path), stdout=out)
        self.assertIn("This backup holds no blind-index keys", out.getvalue())
        self.assertIn("rebuild_blind_index", out.getvalue())
        self.assertEqual(IndexKey.objects.get().key_id, self.key.key_id)  # left as it was

    def test_an_altered_index_key_entry_fails_the_signature(self):
        path = write_backup()
        document = json.loads(path.read_text())
        document["index_keys"][0]["state"] = "filling"
        path.write_text(json.dumps(document))
        with self.assertRaisesMessage(BackupError, "was altered"):
            read_backup_file(path)

    def test_prune_drops_the_material_of_retired_index_keys(self):
        path = write_backup()
        self.key.state, self.key.wrapped_key = IndexKeyState.RETIRED, None
        self.key.save()
        done = prune_backups()
        self.assertEqual((done.rewritten, done.key_ids), ([path], {self.key.key_id}))
        [entry] = json.loads(path.read_text())["index_keys"]
        self.assertEqual((entry["state"], entry["wrapped_key"]), ("retired", None))
        read_backup_file(path)  # re-signed and whole


# Its own directory: the re-wrap rewrites every backup file it finds there.
@override_settings(ENCRYPTION_KEY_ROTATION=backup_dir())
class IndexKeyMasterKeyChangeTests(FreshKeyRingMixin, TestCase):
    def test_rewrap_data_keys_rewraps_index_keys_and_their_backups(self):
        ann = Person.objects.create(name="ann", ssn="123-45-6789")
        key = IndexKey.objects.get()
        old_master, new_master = settings.DB_ENCRYPTION_KEY, new_fernet_key()
        path = write_backup()
        with override_settings(
            DB_ENCRYPTION_KEY=new_master, DB_ENCRYPTION_KEY_FALLBACKS=[old_master]
        ):
            out = StringIO()
            call_command("rewrap_data_keys", stdout=out)
            self.assertIn("1 blind-index keys re-wrapped; 0 were already.", out.getvalue())
            self.assertIn(f"  {key.hex_id}", out.getvalue())
            out = StringIO()
            call_command("rewrap_data_keys", stdout=out)
            self.assertIn("0 blind-index keys re-wrapped; 1 were already.", out.getvalue())
        with override_settings(DB_ENCRYPTION_KEY=new_master):
            reset_index_key_ring()
            self.assertEqual(Person.objects.get(ssn="123456789"), ann)  # old master gone
            [entry] = read_backup_file(path).index_keys
            self.assertEqual(
                entry.master_key_fingerprint, IndexKey.objects.get().master_key_fingerprint
            )

    def test_rewrap_refuses_an_index_key_edited_in_the_database(self):
        Person.objects.create(name="ann", ssn="123-45-6789")
        IndexKey.objects.update(complete_fields=["search_app.Person.email"])
        with override_settings(
            DB_ENCRYPTION_KEY=new_fernet_key(),
            DB_ENCRYPTION_KEY_FALLBACKS=[settings.DB_ENCRYPTION_KEY],
        ):
            with self.assertRaisesMessage(CommandError, "the metadata of index keys"):
                call_command("rewrap_data_keys", stdout=StringIO())
