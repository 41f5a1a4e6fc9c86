"""Index-key rotation, phase by phase (docs/search.md): at every phase, filling, the walk half
done, switched (the old key draining) and retired, queries find the right rows (from this
process's ring and from a ring loaded before the phase changed), and the database refuses a
duplicate of a unique indexed value. Afterwards the old key's slot is empty and its material
wiped."""

from io import StringIO

from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test import TransactionTestCase, override_settings

from data_encryption import index_keys
from data_encryption.backups import BackupError, backup_files, load_backup
from data_encryption.conf import encryption_settings
from data_encryption.index_keys import index_key_ring, reset_index_key_ring
from data_encryption.models import IndexKey, IndexKeyState, RunStatus
from data_encryption.rotation import Progress
from data_encryption.rotation.index_key_rotation import index_key_rotation
from data_encryption.services import KeyRotationService
from data_encryption.tests.search_app.models import Person, Record
from data_encryption.tests.utils import FreshKeyRingMixin

ROWS = 120


def ssn(number):
    return f"{number:09d}"


def states():
    return {key.slot: key.state for key in IndexKey.objects.exclude(state="retired")}


def backed_up_index_key_ids():
    """The index keys the key backups hold (other tests leave altered files there: skipped)."""
    held = set()
    for path in backup_files(encryption_settings.backup_dir):
        try:
            held |= {key.key_id for key in load_backup(path).index_keys}
        except BackupError:
            continue
    return held


class PhaseHooks(Progress):
    """Calls ``check`` once the walk is half done over the people."""

    def __init__(self, check):
        self.check, self.done, self.checked = check, 0, False

    def advance(self, label, rows):
        self.done += rows if label == "search_app.Person" else 0
        if not self.checked and self.done >= ROWS // 2:
            self.checked = True
            self.check("walk half done")


class IndexKeyRotationTests(FreshKeyRingMixin, TransactionTestCase):
    def setUp(self):
        super().setUp()
        self.people = {
            ssn(i): Person.objects.create(name=f"p{i}", ssn=ssn(i)).pk for i in range(ROWS)
        }
        self.seen = []
        self.stale_rings = {}

    def check_phase(self, phase):
        """Queries are right and a duplicate is refused, from a fresh ring and a stale one."""
        self.seen.append(phase)
        reset_index_key_ring()
        for number in (0, ROWS // 2, ROWS - 1):
            self.assertEqual(Person.objects.get(ssn=ssn(number)).pk, self.people[ssn(number)])
        with self.assertRaises(IntegrityError), transaction.atomic():
            Person.objects.create(name="dup", ssn=ssn(3))
        # A process whose ring was loaded in the previous phase: its writes and reads still
        # agree with everyone's.
        if self.stale_rings:
            index_keys._cache.ring = list(self.stale_rings.values())[-1]
            index_keys._cache.ring.expires_at = float("inf")
            new = Person.objects.create(name=f"stale in {phase}", ssn=f"7{len(self.seen):08d}")
            self.people[new.ssn] = new.pk
            self.assertEqual(Person.objects.get(ssn=new.ssn).pk, new.pk)
            with self.assertRaises(IntegrityError), transaction.atomic():
                Person.objects.create(name="dup", ssn=ssn(5))
            reset_index_key_ring()
            self.assertEqual(Person.objects.get(ssn=new.ssn).pk, new.pk)
        self.stale_rings[phase] = index_key_ring()

    def sleep_in_phase(self, seconds):
        phase = {
            ("active", "filling"): "filling",
            ("active", "draining"): "switched",
        }.get(tuple(sorted(states().values())), "retired")
        if phase not in self.seen:
            self.check_phase(phase)
        import time

        time.sleep(seconds)

    def test_every_phase_keeps_queries_and_uniqueness(self):
        reset_index_key_ring()
        self.stale_rings["before"] = index_key_ring()
        old = IndexKey.objects.get(state="active")
        rotation = index_key_rotation(batch_size=10, progress=PhaseHooks(self.check_phase))
        rotation.sleep = self.sleep_in_phase
        report = rotation.run()
        self.assertEqual(report.status, RunStatus.COMPLETED, report.reason)
        self.assertEqual(self.seen, ["filling", "walk half done", "switched", "retired"])
        new = IndexKey.objects.get(state="active")
        self.assertEqual((old.slot, new.slot), ("a", "b"))
        old.refresh_from_db()
        self.assertEqual((old.state, old.wrapped_key), (IndexKeyState.RETIRED, None))
        self.assertIn("search_app.Person.ssn#digits", new.complete_fields)
        self.assertIn("search_app.Record.label#lower", new.complete_fields)
        self.assertIn(new.hex_id, report.new_key_id)
        self.assertIn(f"retired index key {old.hex_id}", report.reason)
        self.assertEqual(Person.objects.exclude(ssn_bidx_a=None).count(), 0)
        self.assertEqual(Person.objects.filter(ssn_bidx_b=None).exclude(ssn=None).count(), 0)
        reset_index_key_ring()
        for value, pk in self.people.items():
            self.assertEqual(Person.objects.get(ssn=value).pk, pk)

    def test_the_command_and_a_rotation_that_includes_index_keys(self):
        Record.objects.create(code="R-1", label="Mixed Case")
        out = StringIO()
        call_command("rotate_encryption_key", "--index-keys-only", stdout=out)
        self.assertIn("Rotation completed", out.getvalue())
        self.assertEqual(states(), {"b": "active"})
        # The new key was in a key backup before it was stored.
        new = IndexKey.objects.get(state="active")
        self.assertIn(new.key_id, backed_up_index_key_ids())
        report = KeyRotationService().perform_rotation(index_keys=True)
        self.assertEqual(report.status, RunStatus.COMPLETED, report.reason)
        self.assertIn("rows re-indexed", report.reason)
        self.assertIn("retired index key", report.reason)
        self.assertEqual(states(), {"a": "active"})
        reset_index_key_ring()
        self.assertEqual(Record.objects.get(label="mixed case").code, "R-1")
        self.assertEqual(Person.objects.get(ssn=ssn(9)).pk, self.people[ssn(9)])

    def test_the_scheduled_rotation_includes_the_index_key_when_configured(self):
        from data_encryption.tasks import rotate_encryption_key_task

        rotation = {**settings.ENCRYPTION_KEY_ROTATION, "ROTATE_INDEX_KEYS": True}
        with override_settings(ENCRYPTION_KEY_ROTATION=rotation):
            report = rotate_encryption_key_task(force=True)
        self.assertEqual(report["status"], "completed", report["reason"])
        self.assertEqual(states(), {"b": "active"})
        new = IndexKey.objects.get(state="active")
        self.assertIn(f"index key {new.hex_id} (slot b): {ROWS} rows re-indexed", report["reason"])
        (email,) = mail.outbox
        self.assertIn(f"{ROWS} rows re-indexed", email.body)
        # Not configured: the data key alone.
        rotate_encryption_key_task(force=True)
        self.assertEqual(states(), {"b": "active"})

    def test_a_run_stopped_after_the_switch_finishes_the_retirement(self):
        rotation = index_key_rotation(batch_size=50)
        rotation._retire = lambda draining: (_ for _ in ()).throw(KeyboardInterrupt)
        with self.assertRaises(KeyboardInterrupt):
            rotation.run()
        self.assertEqual(states(), {"a": "draining", "b": "active"})
        report = index_key_rotation().run()
        self.assertEqual(report.status, RunStatus.COMPLETED)
        self.assertEqual(states(), {"b": "active"})  # no new key: it finished the old rotation
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT COUNT(*) FROM {Person._meta.db_table} WHERE ssn_bidx_a IS NOT NULL"
            )
            self.assertEqual(cursor.fetchone()[0], 0)

    def test_a_run_stopped_before_the_clear_finishes_it_and_starts_no_other(self):
        rotation = index_key_rotation(batch_size=50)
        rotation._clear_slot = lambda slot: (_ for _ in ()).throw(KeyboardInterrupt)
        with self.assertRaises(KeyboardInterrupt):
            rotation.run()
        retired = IndexKey.objects.get(state="retired")
        self.assertIsNotNone(retired.wrapped_key)
        self.assertEqual(states(), {"b": "active"})
        report = index_key_rotation().run()
        self.assertEqual(report.status, RunStatus.COMPLETED)
        self.assertIn("cleared slot a", report.reason)
        self.assertEqual(states(), {"b": "active"})  # finished, and no new key in slot a
        retired.refresh_from_db()
        self.assertIsNone(retired.wrapped_key)
        self.assertEqual(Person.objects.exclude(ssn_bidx_a=None).count(), 0)
