"""Checks that read the database (``manage.py check --database default``, and ``migrate``): an
overdue primary key (W001), legacy tokens still accepted when none are left (W004)."""

from __future__ import annotations

from typing import Any

from django.core.checks import Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from ..conf import encryption_settings


@register(Tags.database)
def check_rotation_overdue(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[Warning]:
    """W001: the primary key is older than the schedule allows. Needs the database, so it runs
    with ``manage.py check --database default`` (and during ``migrate``)."""
    from django.db import DatabaseError
    from django.utils import timezone

    from ..keys import key_database
    from ..schedule import overdue_reminder

    using = key_database()
    if not databases or using not in databases:
        return []
    try:
        reminder = overdue_reminder(using, timezone.now())
    except DatabaseError:  # not migrated yet: nothing to say
        return []
    if reminder is None:
        return []
    return [
        Warning(
            f"Key rotation is overdue: {reminder}",
            hint="Run 'manage.py rotate_encryption_key', then fix the schedule.",
            id="data_encryption.W001",
        )
    ]


@register(Tags.database, Tags.security)
def check_legacy_tokens_still_accepted(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[Warning]:
    """W004: no legacy Fernet value is left (by the last completed rotation's census), yet
    legacy tokens are still read, so a token planted from an old dump would be too."""
    from django.db import DatabaseError

    from ..keys import key_database
    from ..models import RotationRun, RunKind, RunStatus
    from ..rotation.census import LEGACY, census_totals

    using = key_database()
    if not databases or using not in databases:
        return []
    try:
        if not encryption_settings.accept_legacy_tokens:
            return []
    except ImproperlyConfigured:  # E028 says so
        return []
    try:
        last = (
            RotationRun.objects.using(using)
            .filter(status=RunStatus.COMPLETED, kind=RunKind.ROTATION)
            .order_by("-finished_at", "-pk")
            .first()
        )
    except DatabaseError:  # not migrated yet: nothing to say
        return []
    if last is None or not last.census or census_totals(last.census).get(LEGACY, 0):
        return []
    return [
        Warning(
            "The last completed key rotation found no legacy Fernet token, but "
            "ENCRYPTION_KEY_ROTATION['ACCEPT_LEGACY_TOKENS'] is still True, so a legacy token "
            "written into the database (from an old dump, say) would still be read.",
            hint="Set ENCRYPTION_KEY_ROTATION['ACCEPT_LEGACY_TOKENS'] = False.",
            id="data_encryption.W004",
        )
    ]
