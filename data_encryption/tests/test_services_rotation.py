"""KeyRotationService's doors beyond rotate(): the schedule check (rotate_if_due and
skip_unless_due), the census, the master-key re-wrap with its backup, and the dry run, which
must count what a real run then does."""

import tempfile

from cryptography.fernet import Fernet
from django.conf import settings
from django.core import mail
from django.test import TestCase, override_settings
from django.utils import timezone

from data_encryption.backups import read_backup
from data_encryption.models import DataKey, KeyState, RotationRun, RunStatus
from data_encryption.rotation import RotationReport
from data_encryption.schedule import add_period
from data_encryption.services import EncryptionService, KeyRotationService
from data_encryption.signals import rotation_skipped
from data_encryption.tests.testapp.models import Customer, Note, Patient
from data_encryption.tests.utils import FreshKeyRingMixin, new_fernet_key, seed_rows

FAST = {**settings.ENCRYPTION_KEY_ROTATION, "KEY_CACHE_SECONDS": 0}


def primary_hex():
    return DataKey.objects.get(state=KeyState.PRIMARY).hex_id


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class ScheduleDoorTests(FreshKeyRingMixin, TestCase):
    def setUp(self):
        super().setUp()
        seed_rows(3, 2)

    def test_rotate_if_due_rotates_when_none_has_completed(self):
        old = primary_hex()
        report = KeyRotationService().rotate_if_due()
        self.assertIsInstance(report, dict)
        self.assertEqual(report["status"], "completed")
        self.assertNotEqual(primary_hex(), old)
        self.assertEqual(RotationRun.objects.get().trigger, "api")

    def test_rotate_if_due_skips_until_due_and_says_when(self):
        KeyRotationService().rotate_if_due()
        finished = RotationRun.objects.get().finished_at
        primary, runs = primary_hex(), RotationRun.objects.count()
        skipped = []

        def receiver(sender, report, **kwargs):
            skipped.append(report)

        rotation_skipped.connect(receiver)
        self.addCleanup(rotation_skipped.disconnect, receiver)
        report = KeyRotationService().rotate_if_due()
        self.assertEqual((report["status"], report["skipped"]), ("skipped", "not_due"))
        self.assertEqual(report["next_due"], add_period(finished, "monthly").isoformat())
        self.assertIn("the schedule is monthly", report["reason"])
        self.assertEqual((primary_hex(), RotationRun.objects.count()), (primary, runs))
        self.assertEqual([r["skipped"] for r in skipped], ["not_due"])  # announced
        self.assertEqual(report["notification"], {"sent": False, "error": "", "skipped": True})
        forced = KeyRotationService().rotate_if_due(force=True)
        self.assertEqual(forced["status"], "completed")
        self.assertNotEqual(primary_hex(), primary)

    def test_skip_unless_due_is_none_when_due_or_forced(self):
        service = KeyRotationService()
        self.assertIsNone(service.skip_unless_due())
        RotationRun.objects.create(
            started_at=timezone.now(),
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
            holder="x:1:y",
            status=RunStatus.COMPLETED,
        )
        self.assertIsNone(service.skip_unless_due(force=True))
        report = service.skip_unless_due()
        self.assertIsInstance(report, RotationReport)
        self.assertEqual(report.skipped, "not_due")
        self.assertEqual(mail.outbox, [])  # skipped runs are not emailed by default


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class CensusDoorTests(FreshKeyRingMixin, TestCase):
    def test_counts_values_per_key_from_the_service(self):
        seed_rows(4, 0)
        Customer.objects.create(name="none", _ssn=None)
        old = primary_hex()
        census = KeyRotationService().census()
        self.assertEqual(census["data_encryption_tests.Customer"]["_ssn"], {old: 4, "null": 1})
        KeyRotationService().rotate()
        census = KeyRotationService().census()
        self.assertEqual(
            census["data_encryption_tests.Customer"]["_ssn"], {primary_hex(): 4, "null": 1}
        )


class RewrapDoorTests(FreshKeyRingMixin, TestCase):
    def setUp(self):
        super().setUp()
        seed_rows(2, 0)
        self.old_master, self.new_master = settings.DB_ENCRYPTION_KEY, new_fernet_key()
        self.keys = list(DataKey.objects.values_list("key_id", flat=True))
        # Its own directory: the re-wrap rewrites every backup file it finds there.
        self.backup_dir = tempfile.mkdtemp(prefix="rewrap-")

    def rewrap(self, **rotation):
        with override_settings(
            DB_ENCRYPTION_KEY=self.new_master,
            DB_ENCRYPTION_KEY_FALLBACKS=[self.old_master],
            ENCRYPTION_KEY_ROTATION={**FAST, "BACKUP_DIR": self.backup_dir, **rotation},
        ):
            return KeyRotationService().rewrap_master_key()

    def test_backs_up_then_rewraps_the_keys_and_the_backup_files(self):
        # The backup is written under the old wrapping before anything changes; once the keys
        # are re-wrapped, so is every backup file, that one included (the old master key must
        # open nothing the project keeps: see test_erasure).
        old_fingerprints = set(DataKey.objects.values_list("master_key_fingerprint", flat=True))
        done = self.rewrap()
        self.assertIsNotNone(done.backup_path)
        self.assertTrue(done.backup_path.is_file())
        self.assertIn(done.backup_path, done.backups.rewritten)
        with override_settings(DB_ENCRYPTION_KEY=self.new_master):
            backed_up = read_backup(done.backup_path)
        self.assertEqual(sorted(key.key_id for key in backed_up), sorted(self.keys))
        self.assertEqual({key.master_key_fingerprint for key in backed_up}, {done.fingerprint})
        self.assertEqual(sorted(done.rewrapped), sorted(self.keys))
        self.assertEqual(done.current, [])
        new_fingerprints = set(DataKey.objects.values_list("master_key_fingerprint", flat=True))
        self.assertEqual(new_fingerprints, {done.fingerprint})
        self.assertNotEqual(new_fingerprints, old_fingerprints)
        self.assertEqual(self.rewrap().rewrapped, [])  # safe to rerun

    def test_without_a_backup_dir_it_only_rewraps(self):
        done = self.rewrap(BACKUP_DIR=None)
        self.assertIsNone(done.backup_path)
        self.assertEqual(sorted(done.rewrapped), sorted(self.keys))


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class DryRunMatchesRunTests(FreshKeyRingMixin, TestCase):
    def test_a_dry_run_counts_what_the_run_then_does(self):
        seed_rows(12, 5)
        Customer.objects.create(name="none", _ssn=None)
        Customer.objects.create(
            name="legacy", _ssn=Fernet(settings.DB_ENCRYPTION_KEY).encrypt(b"123-45-6789")
        )
        ascii_value = EncryptionService.to_ascii(EncryptionService.encrypt("text form"))
        Customer.objects.create(name="ascii", _ssn=ascii_value.encode())
        Customer.objects.create(name="garbage", _ssn=b"not encrypted at all")
        Note.objects.create(title="t", body="secret")
        Patient.objects.create(name="empty")  # every encrypted field null
        census_before = KeyRotationService().census()
        dry = KeyRotationService(batch_size=4).rotate(dry_run=True)
        self.assertFalse(RotationRun.objects.exists())
        run = KeyRotationService(batch_size=4).rotate()
        self.assertTrue(dry["dry_run"])
        self.assertFalse(run["dry_run"])
        for key in (
            "status",
            "models_processed",
            "records_processed",
            "records_reencrypted",
            "failed_records",
            "models",
        ):
            self.assertEqual(dry[key], run[key], key)
        self.assertGreater(run["records_reencrypted"], 0)
        self.assertEqual(run["failed_records"], 1)
        self.assertEqual(
            [(f["model"], f["field"], f["key_id"]) for f in dry["failures"]],
            [(f["model"], f["field"], f["key_id"]) for f in run["failures"]],
        )
        self.assertEqual(dry["census"], census_before)
