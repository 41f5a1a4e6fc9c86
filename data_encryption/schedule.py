"""The rotation schedule: when a rotation is due, and when the primary key is overdue.

``KEY_ROTATION_SCHEDULE`` is ``daily``, ``weekly`` or ``monthly``. A rotation is due when that
period has passed since the last completed rotation (a month is a calendar month: from the 31st
to the last day of the next month). An hour of grace absorbs a beat that fires a few seconds
early. Time enters as a parameter (``now``), so tests need no clock mocks.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from typing import Any

from .conf import encryption_settings
from .models import DataKey, KeyState, RotationRun, RunKind, RunStatus

GRACE = timedelta(hours=1)
TASK_NAME = "data_encryption.tasks.rotate_encryption_key_task"


def add_period(moment: datetime, schedule: str) -> datetime:
    """``moment`` plus one period of ``schedule``."""
    if schedule == "daily":
        return moment + timedelta(days=1)
    if schedule == "weekly":
        return moment + timedelta(weeks=1)
    if schedule == "monthly":
        year, month = (
            (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
        )
        day = min(moment.day, calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day)
    raise ValueError(f"Unknown schedule {schedule!r}; use 'daily', 'weekly' or 'monthly'.")


def last_completed_rotation(using: str) -> RotationRun | None:
    return (
        RotationRun.objects.using(using)
        .filter(status=RunStatus.COMPLETED, finished_at__isnull=False, kind=RunKind.ROTATION)
        .order_by("-finished_at")
        .first()
    )


def next_due(using: str) -> datetime | None:
    """When the next rotation is due; ``None`` when none has completed yet (due now)."""
    last = last_completed_rotation(using)
    if last is None or last.finished_at is None:
        return None
    return add_period(last.finished_at, encryption_settings.rotation_schedule)


def rotation_due(using: str, now: datetime) -> bool:
    due = next_due(using)
    return due is None or now >= due - GRACE


def overdue_reminder(using: str, now: datetime) -> str | None:
    """A sentence when the primary key is older than the schedule allows (rotations failing, or
    beat not running), else ``None``. Never names key material, only the key id and ages."""
    schedule = encryption_settings.rotation_schedule
    primary = DataKey.objects.using(using).filter(state=KeyState.PRIMARY).first()
    if primary is None:
        return None
    since = primary.primary_since or primary.created_at
    # One period, and a day more before anyone is paged: the run may just be late tonight.
    deadline = add_period(since, schedule) + timedelta(days=1)
    if now < deadline:
        return None
    age = (now - since).days
    return (
        f"the primary data key {primary.hex_id} is {age} days old, older than the {schedule} "
        "schedule allows. Check that Celery beat runs data_encryption.tasks."
        "rotate_encryption_key_task and that recent rotations did not fail "
        "(manage.py encryption_status)."
    )


def rotation_beat_schedule(hour: int = 3, minute: int = 0) -> dict[str, dict[str, Any]]:
    """A ``CELERY_BEAT_SCHEDULE`` entry that fires as often as ``KEY_ROTATION_SCHEDULE`` asks:
    daily at ``hour:minute``, Mondays, or the first of the month (import it from ``tasks``)."""
    from celery.schedules import crontab

    schedule = encryption_settings.rotation_schedule
    fields: dict[str, Any] = {"hour": hour, "minute": minute}
    if schedule == "weekly":
        fields["day_of_week"] = 1
    elif schedule == "monthly":
        fields["day_of_month"] = 1
    return {"rotate-encryption-keys": {"task": TASK_NAME, "schedule": crontab(**fields)}}
