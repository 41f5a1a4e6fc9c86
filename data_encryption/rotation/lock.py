"""The rotation lock: who holds it, and whether that holder is alive. The lock is the one
``RotationRun`` row with status ``running`` (a partial unique index allows one); its holder is
alive while its heartbeat is fresh, whatever host, container or PID namespace it runs in. A
maintenance step that must not run beside a rotation (re-wrapping the keys) holds it for one
transaction (``rotation_lock``). Rotations, conversions (``encrypt_existing``) and index walks
share it, so no two run at once; ``takeover`` says what each does with a run of another kind
that died."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from ..conf import encryption_settings
from ..exceptions import DataEncryptionError
from ..models import RotationRun, RunKind, RunStatus


class LockLost(DataEncryptionError):
    """Another process took this run over (it judged this one dead); this one stops at once."""


def this_holder() -> str:
    """A holder for this process: ``host:pid:token`` (Celery's runs use ``celery:<token>``)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def holder_is_alive(heartbeat_at: datetime, now: datetime) -> bool:
    """Whether a run's holder may still be working: its heartbeat is younger than
    ``LOCK_TIMEOUT_SECONDS``. The heartbeat is the only evidence: a process id says nothing
    about a holder in another container or PID namespace that shares this hostname."""
    return now - heartbeat_at <= timedelta(seconds=encryption_settings.lock_timeout_seconds)


RESUME, CLOSE, REFUSE = "resume", "close", "refuse"


def takeover(dead: RotationRun, kind: str, columns: Sequence[str]) -> str:
    """What a new run of ``kind`` (over ``columns``, for a conversion) does with ``dead``, a
    run whose holder died: ``RESUME`` it (the same kind; a conversion of the same columns),
    ``CLOSE`` it and start afresh, or ``REFUSE`` to start.

    Only a rotation can finish a rotation (its new key, its backup), so a conversion refuses
    and says to run ``rotate_encryption_key``. A rotation closes a dead conversion: it rewrites
    the legacy values of every column in transition itself, so nothing is lost, and a scheduled
    rotation is never held up by a conversion nobody resumes. A conversion of other columns
    closes one too: what the dead one converted stays converted, and a run of its columns
    later walks only what is left.
    """
    if dead.kind == RunKind.ROTATION:
        return RESUME if kind == RunKind.ROTATION else REFUSE
    # A conversion or an index walk: the same kind over the same columns resumes; anything
    # else closes it (an index walk's columns hold values that are right whoever finishes).
    if kind == dead.kind and sorted(dead.columns) == sorted(columns):
        return RESUME
    return CLOSE


def close_abandoned(stale: QuerySet[RotationRun], kind: str, now: datetime) -> bool:
    """Mark the dead run ``stale`` selects (by its id, holder and heartbeat) ``failed``, as a
    run of ``kind`` takes the lock; ``False`` when another process took it first."""
    return bool(
        stale.filter(status=RunStatus.RUNNING).update(
            status=RunStatus.FAILED,
            finished_at=now,
            reason=f"Its process died; closed when a {kind} took the lock. {_after_close(stale)}",
        )
    )


def _after_close(stale: QuerySet[RotationRun]) -> str:
    """What a closed run's reason says its user does next."""
    if stale.filter(kind=RunKind.INDEX).exists():
        return (
            "Index values it wrote stay written; run rebuild_blind_index (or the index-key "
            "rotation) again for the rest."
        )
    return "Values it converted stay converted; run encrypt_existing again for the rest."


class RotationRunning(DataEncryptionError):
    """A live rotation holds the lock, so a step that must not run beside one refuses."""


@contextmanager
def rotation_lock(
    using: str, purpose: str, clock: Callable[[], datetime] = timezone.now
) -> Iterator[RotationRun | None]:
    """Hold the rotation lock for one transaction, for a step that must not interleave with a
    rotation (re-wrapping the data keys). Yields the run a dead process left ``running`` (its
    pending key may need the same work), else ``None``; raises ``RotationRunning`` while a live
    rotation holds the lock."""
    runs = RotationRun.objects.using(using)
    now = clock()
    with transaction.atomic(using=using):
        running = runs.select_for_update().filter(status=RunStatus.RUNNING).first()
        if running is None:
            # A running row of our own: the partial unique index makes a rotation that starts
            # meanwhile wait for this transaction, which deletes the row before it commits.
            placeholder = runs.create(
                started_at=now, heartbeat_at=now, holder=this_holder(), trigger=purpose
            )
            yield None
            placeholder.delete()
            return
        if holder_is_alive(running.heartbeat_at, now):
            age = (now - running.heartbeat_at).total_seconds()
            timeout = encryption_settings.lock_timeout_seconds
            raise RotationRunning(
                f"{running.kind.capitalize()} {running.pk} is running (holder "
                f"{running.holder}, last heartbeat {age:.0f}s ago), so {purpose} did nothing. "
                f"Run it again once the {running.kind} has finished; if its process died, "
                "its lock frees when the heartbeat is older than LOCK_TIMEOUT_SECONDS "
                f"({timeout:.0f}s)."
            )
        yield running
