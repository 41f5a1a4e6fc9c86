"""The Celery tasks in process (eager): the schedule, the beat helper, chunked work through the
same code path, the final step running once, and the overdue reminder."""

import unittest
from datetime import timedelta

from django.conf import settings
from django.core import mail
from django.core.checks import run_checks
from django.test import TestCase, override_settings
from django.utils import timezone

from data_encryption.models import DataKey, KeyState, RotationChunk, RotationRun, RunStatus
from data_encryption.schedule import overdue_reminder
from data_encryption.services import EncryptionService, KeyRotationService

try:
    from celery.schedules import crontab

    from data_encryption.tasks import (
        chunks_failed_task,
        finish_rotation_task,
        rotate_chunk_task,
        rotate_encryption_key_task,
        rotation_beat_schedule,
    )
    from data_encryption.tests import celery_app
except ImportError:  # celery is an extra; without it, only these tests are skipped
    celery_app = None
from data_encryption.tests.testapp.models import Customer
from data_encryption.tests.utils import FreshKeyRingMixin

FAST = {**settings.ENCRYPTION_KEY_ROTATION, "KEY_CACHE_SECONDS": 0}


needs_celery = unittest.skipIf(celery_app is None, "celery is not installed (celery extra)")


@needs_celery
class BeatScheduleTests(TestCase):
    def test_entry_follows_the_setting(self):
        for schedule, expected in (
            ("daily", crontab(hour=3, minute=0)),
            ("weekly", crontab(hour=3, minute=0, day_of_week=1)),
            ("monthly", crontab(hour=3, minute=0, day_of_month=1)),
        ):
            with override_settings(
                ENCRYPTION_KEY_ROTATION={**FAST, "KEY_ROTATION_SCHEDULE": schedule}
            ):
                entry = rotation_beat_schedule()["rotate-encryption-keys"]
                self.assertEqual(entry["task"], "data_encryption.tasks.rotate_encryption_key_task")
                self.assertEqual(entry["schedule"], expected)

    def test_contract_entry_names_a_registered_task(self):
        from celery import current_app

        self.assertIn("data_encryption.tasks.rotate_encryption_key_task", current_app.tasks)


@needs_celery
@override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "CHUNK_ROWS": 4})
class InProcessTaskTests(FreshKeyRingMixin, TestCase):
    def setUp(self):
        super().setUp()
        for i in range(10):
            Customer.objects.create(name=f"c{i}", _ssn=EncryptionService.encrypt(f"ssn-{i}"))

    def test_runs_in_process_through_the_chunks(self):
        report = rotate_encryption_key_task.apply().get()
        self.assertEqual(report["status"], "completed")
        self.assertEqual(report["models"]["data_encryption_tests.Customer"]["rows"], 10)
        run = RotationRun.objects.get()
        chunks = list(run.chunks.filter(model="data_encryption_tests.Customer"))
        self.assertEqual(len(chunks), 3)  # 4 + 4 + the open-ended rest
        self.assertEqual([c.rows for c in chunks], [4, 4, 2])
        self.assertIsNone(chunks[-1].upper)
        self.assertEqual(run.trigger, "celery")
        self.assertEqual(len(mail.outbox), 1)
        self.assertEqual(report["notification"], {"sent": True, "error": ""})

    def test_a_plain_call_works_without_a_broker(self):
        report = rotate_encryption_key_task(force=True)
        self.assertEqual(report["status"], "completed")

    def test_not_due_returns_a_result_and_touches_nothing(self):
        rotate_encryption_key_task.apply().get()
        keys = list(DataKey.objects.values_list("key_id", "state"))
        mail.outbox.clear()
        report = rotate_encryption_key_task.apply().get()
        self.assertEqual(report["status"], "skipped")
        self.assertEqual(report["skipped"], "not_due")
        self.assertIn("pass force=True", report["reason"])
        self.assertEqual(list(DataKey.objects.values_list("key_id", "state")), keys)
        self.assertEqual(mail.outbox, [])  # not configured to announce skipped runs
        forced = rotate_encryption_key_task.apply(kwargs={"force": True}).get()
        self.assertEqual(forced["status"], "completed")

    def test_skipped_runs_are_announced_when_configured(self):
        rotate_encryption_key_task.apply().get()
        mail.outbox.clear()
        with override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "NOTIFY_SKIPPED": True}):
            rotate_encryption_key_task.apply().get()
        self.assertEqual(len(mail.outbox), 1)
        self.assertIn("Key rotation skipped (not_due)", mail.outbox[0].subject)

    def test_dry_run(self):
        report = rotate_encryption_key_task.apply(kwargs={"dry_run": True}).get()
        self.assertTrue(report["dry_run"])
        self.assertFalse(RotationRun.objects.exists())

    def test_the_final_step_runs_once(self):
        service = KeyRotationService()
        rotation = service.rotation(trigger="celery", holder="celery:test")
        run = rotation.start()
        first = finish_rotation_task.apply(args=[[], run.pk]).get()
        second = finish_rotation_task.apply(args=[[], run.pk]).get()
        self.assertEqual(first["status"], "completed")
        self.assertEqual(
            second, {"status": "completed", "run_id": run.pk, "finished_elsewhere": True}
        )
        self.assertEqual(RotationChunk.objects.filter(run=run, done=False).count(), 0)

    def test_tasks_of_a_run_taken_over_leave_it_to_the_new_holder(self):
        rotation = KeyRotationService().rotation(trigger="celery", holder="celery:old")
        run = rotation.start()
        chunk = rotation.pending_chunks(run)[0]
        # Another process took the run over (the old holder's heartbeat went stale).
        RotationRun.objects.filter(pk=run.pk).update(holder="celery:new")
        skipped = rotate_chunk_task.apply(args=[run.pk, chunk.pk, "celery:old"]).get()
        self.assertEqual(skipped["done"], False)
        # Eager, so a final step it wrongly sent would run here and now (and finish the run).
        celery_app.app.conf.task_always_eager = True
        try:
            chunks_failed_task(None, RuntimeError("chunk failed"), None, run.pk, "celery:old")
        finally:
            celery_app.app.conf.task_always_eager = False
        final = finish_rotation_task.apply(args=[None, run.pk, "celery:old"]).get()
        self.assertTrue(final["finished_elsewhere"])
        run.refresh_from_db()
        self.assertEqual((run.status, run.phase), (RunStatus.RUNNING, "reencrypt"))
        self.assertEqual(RotationChunk.objects.get(pk=chunk.pk).rows, 0)
        self.assertFalse(rotation.claim_finish(run))  # the old holder cannot claim it either
        # The new holder's own final step finishes it.
        report = finish_rotation_task.apply(args=[None, run.pk, "celery:new"]).get()
        self.assertEqual(report["status"], "completed")
        self.assertEqual(report["records_processed"], Customer.objects.count())


@needs_celery
class ReminderTests(FreshKeyRingMixin, TestCase):
    def age_primary(self, days):
        old = timezone.now() - timedelta(days=days)
        primary = DataKey.objects.get(state=KeyState.PRIMARY)
        primary.primary_since = primary.created_at = old
        primary.save()  # as the key would be had it been made then (its MAC stays current)

    def test_no_reminder_for_a_fresh_key(self):
        self.assertIsNone(overdue_reminder("default", timezone.now()))
        self.assertEqual(
            [m.id for m in run_checks(databases=["default"]) if m.id == "data_encryption.W001"], []
        )

    def test_overdue_primary_key_warns_in_checks_and_emails(self):
        self.age_primary(45)
        reminder = overdue_reminder("default", timezone.now())
        self.assertIn("is 45 days old, older than the monthly schedule allows", reminder)
        warnings = [m for m in run_checks(databases=["default"]) if m.id == "data_encryption.W001"]
        self.assertEqual(len(warnings), 1)
        self.assertIn("rotate_encryption_key", warnings[0].hint)
        # Not in checks that run without the database.
        self.assertEqual([m for m in run_checks() if m.id == "data_encryption.W001"], [])
        # A rotation that fails before it replaces the key carries the reminder into its email.
        with override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "BACKUP_DIR": None}):
            report = KeyRotationService().rotate()
        self.assertEqual(report["status"], "failed")
        self.assertIn("45 days old", report["reminder"])
        self.assertIn("Reminder: the primary data key", mail.outbox[-1].body)

    def test_skipped_run_with_an_overdue_key_is_announced(self):
        self.age_primary(45)
        RotationRun.objects.create(
            started_at=timezone.now(),
            heartbeat_at=timezone.now(),
            holder=f"elsewhere:{__import__('os').getpid()}:x",
        )
        with override_settings(ENCRYPTION_KEY_ROTATION=FAST):
            report = rotate_encryption_key_task.apply(kwargs={"force": True}).get()
        self.assertEqual(report["status"], "skipped")
        self.assertEqual(len(mail.outbox), 1)
        self.assertIn("Reminder:", mail.outbox[0].body)
