"""The rotation schedule: when a rotation is due. (The overdue reminder is tested with the
task, in test_tasks.)"""

from datetime import UTC, datetime

from django.conf import settings
from django.test import TestCase, override_settings
from django.utils import timezone

from data_encryption.models import RotationRun, RunStatus
from data_encryption.schedule import add_period, rotation_due

FAST = {**settings.ENCRYPTION_KEY_ROTATION, "KEY_CACHE_SECONDS": 0}
UTC = UTC


def completed_run(finished_at):
    return RotationRun.objects.create(
        started_at=finished_at,
        finished_at=finished_at,
        heartbeat_at=finished_at,
        holder="x:1:y",
        status=RunStatus.COMPLETED,
        phase="done",
    )


class ScheduleTests(TestCase):
    def test_periods(self):
        moment = datetime(2026, 1, 31, 3, 0, tzinfo=UTC)
        self.assertEqual(add_period(moment, "daily"), datetime(2026, 2, 1, 3, 0, tzinfo=UTC))
        self.assertEqual(add_period(moment, "weekly"), datetime(2026, 2, 7, 3, 0, tzinfo=UTC))
        self.assertEqual(add_period(moment, "monthly"), datetime(2026, 2, 28, 3, 0, tzinfo=UTC))
        self.assertEqual(
            add_period(datetime(2026, 12, 15, tzinfo=UTC), "monthly"),
            datetime(2027, 1, 15, tzinfo=UTC),
        )
        with self.assertRaisesMessage(ValueError, "Unknown schedule 'yearly'"):
            add_period(moment, "yearly")

    def test_due_when_nothing_completed_yet(self):
        self.assertTrue(rotation_due("default", timezone.now()))

    def test_monthly_beat_on_the_first_is_due_even_a_few_seconds_early(self):
        completed_run(datetime(2026, 2, 1, 3, 0, 7, tzinfo=UTC))
        self.assertTrue(rotation_due("default", datetime(2026, 3, 1, 3, 0, 0, tzinfo=UTC)))
        self.assertFalse(rotation_due("default", datetime(2026, 2, 20, 3, 0, 0, tzinfo=UTC)))

    def test_daily_beat_with_a_weekly_schedule(self):
        completed_run(datetime(2026, 3, 2, 3, 0, tzinfo=UTC))
        rotation = {**FAST, "KEY_ROTATION_SCHEDULE": "weekly"}
        with override_settings(ENCRYPTION_KEY_ROTATION=rotation):
            for day in range(3, 9):
                self.assertFalse(rotation_due("default", datetime(2026, 3, day, 3, tzinfo=UTC)))
            self.assertTrue(rotation_due("default", datetime(2026, 3, 9, 3, tzinfo=UTC)))

    def test_failed_and_dry_runs_do_not_count(self):
        run = completed_run(timezone.now())
        run.status = RunStatus.FAILED
        run.save()
        self.assertTrue(rotation_due("default", timezone.now()))
