"""Celery tasks: scheduled rotation, fanned out across workers.

``rotate_encryption_key_task`` is the task to schedule (its name is part of the contract). It
rotates only when ``KEY_ROTATION_SCHEDULE`` says a rotation is due (``force=True`` overrides),
then does the first protocol steps itself (lock, backup, activate, wait, plan) and sends the
chunks of every table to ``rotate_chunk_task`` on however many workers there are, with
``finish_rotation_task`` as the one final step (census, retire, record, notify). Chunk tasks
are acknowledged late and requeued if their worker dies; a chunk resumes from its own cursor.

Called in-process (``.apply()``, ``CELERY_TASK_ALWAYS_EAGER``, or a plain call), the same code
works through the chunks itself, so a project needs no broker to use it.

Schedule it with Celery beat::

    from celery.schedules import crontab

    CELERY_BEAT_SCHEDULE = {
        "rotate-encryption-keys": {
            "task": "data_encryption.tasks.rotate_encryption_key_task",
            "schedule": crontab(day_of_month=1, hour=3),
        }
    }

or build that entry from the setting with ``CELERY_BEAT_SCHEDULE = rotation_beat_schedule()``.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from celery import chord, shared_task
from celery.schedules import crontab
from django.db import DatabaseError
from django.utils import timezone

from .conf import encryption_settings
from .keys import key_database
from .models import RotationChunk, RotationRun, RunStatus
from .schedule import next_due, rotation_due
from .services import KeyRotationService, get_rotation_service_class

TASK_NAME = "data_encryption.tasks.rotate_encryption_key_task"

logger = logging.getLogger(__name__)


def rotation_beat_schedule(hour: int = 3, minute: int = 0) -> dict[str, dict[str, Any]]:
    """A ``CELERY_BEAT_SCHEDULE`` entry that fires as often as ``KEY_ROTATION_SCHEDULE`` asks:
    daily at ``hour:minute``, Mondays, or the first of the month."""
    schedule = encryption_settings.rotation_schedule
    fields: dict[str, Any] = {"hour": hour, "minute": minute}
    if schedule == "weekly":
        fields["day_of_week"] = 1
    elif schedule == "monthly":
        fields["day_of_month"] = 1
    return {"rotate-encryption-keys": {"task": TASK_NAME, "schedule": crontab(**fields)}}


def _service() -> KeyRotationService:
    return get_rotation_service_class()()


def _in_process(task: Any) -> bool:
    request = task.request
    return bool(request.called_directly or request.is_eager)


@shared_task(name=TASK_NAME, bind=True)
def rotate_encryption_key_task(self: Any, force: bool = False, dry_run: bool = False) -> Any:
    """Rotate if one is due (or ``force``). Returns the report, or, when the work went to
    workers, ``{"status": "running", "run_id": ..., "chunks": n}``; the final report is then
    returned by ``finish_rotation_task`` and recorded on the run."""
    service = _service()
    if dry_run:
        return service.rotate(dry_run=True, trigger="celery")
    using = service.using or key_database()
    now = timezone.now()
    if not force and not rotation_due(using, now):
        due = next_due(using)
        return service.announce(
            {
                "status": RunStatus.SKIPPED,
                "skipped": "not_due",
                "timestamp": now.isoformat(),
                "models_processed": 0,
                "records_processed": 0,
                "failed_records": 0,
                "key_backup_path": "",
                "dry_run": False,
                "next_due": due.isoformat() if due else None,
                "reason": (
                    f"no rotation is due: the schedule is "
                    f"{encryption_settings.rotation_schedule} and the next is due "
                    f"at {due.isoformat() if due else 'once one completes'}; pass force=True to "
                    "rotate now"
                ),
            }
        )
    rotation = service.rotation(trigger="celery", holder=f"celery:{secrets.token_hex(6)}")
    run = rotation.start()
    if run is None:
        return service.announce(rotation._skipped_report("already_running"))
    if run.status != RunStatus.RUNNING:
        return service.announce(rotation._report(run, started=None))
    chunks = rotation.pending_chunks(run)
    if _in_process(self) or len(chunks) <= 1:
        return service.announce(rotation.finish(run))
    fan_out(run, chunks)
    return {"status": RunStatus.RUNNING, "run_id": run.pk, "chunks": len(chunks)}


def fan_out(run: RotationRun, chunks: list[RotationChunk]) -> None:
    """Send every chunk to the workers in a chord: ``finish_rotation_task`` once all of them are
    done, or ``chunks_failed_task`` (which sends the final step anyway) if one failed for good.

    Every task carries the run's holder: if another process takes the run over (its heartbeat
    went stale), this chord's tasks leave the run to the new holder's own chord."""
    holder = run.holder
    final_step = finish_rotation_task.s(run.pk, holder)
    final_step.link_error(chunks_failed_task.s(run.pk, holder))
    chord(rotate_chunk_task.s(run.pk, chunk.pk, holder) for chunk in chunks)(final_step)


def _taken_over(run: RotationRun, holder: str | None) -> bool:
    """Whether a task sent for ``holder`` finds the run held by someone else now."""
    return holder is not None and run.holder != holder


@shared_task(
    name="data_encryption.tasks.rotate_chunk_task",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    max_retries=5,
)
def rotate_chunk_task(
    self: Any, run_id: int, chunk_id: int, holder: str | None = None
) -> dict[str, Any]:
    """Re-encrypt one chunk of a run. Idempotent: delivered again, it resumes from its cursor."""
    run = RotationRun.objects.get(pk=run_id)
    chunk = RotationChunk.objects.get(pk=chunk_id)
    if run.status != RunStatus.RUNNING or chunk.done or _taken_over(run, holder):
        return {"chunk": chunk_id, "done": chunk.done, "run_status": run.status}
    rotation = _service().rotation(trigger="celery", holder=run.holder)
    rotation.process_chunk(run, chunk)
    RotationChunk.objects.filter(pk=chunk_id).update(worker=self.request.hostname or "")
    return {"chunk": chunk_id, "done": True, "rows": chunk.rows, "worker": self.request.hostname}


@shared_task(
    name="data_encryption.tasks.finish_rotation_task",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
)
def finish_rotation_task(
    self: Any, chunk_results: Any, run_id: int, holder: str | None = None
) -> dict[str, Any]:
    """The one final step after every chunk: census, retire, record, notify. A second delivery
    finds the run claimed and does nothing; so does a step whose run was taken over."""
    service = _service()
    run = RotationRun.objects.get(pk=run_id)
    rotation = service.rotation(trigger="celery", holder=run.holder)
    if _taken_over(run, holder) or not rotation.claim_finish(run):
        return {"status": run.status, "run_id": run_id, "finished_elsewhere": True}
    report = rotation.finish(run)
    # From the ledger, not from chunk_results: sent by chunks_failed_task, there are none.
    workers = RotationChunk.objects.using(rotation.using).filter(run_id=run_id).exclude(worker="")
    report["workers"] = sorted(set(workers.values_list("worker", flat=True)))
    return service.announce(report)


@shared_task(name="data_encryption.tasks.chunks_failed_task")
def chunks_failed_task(
    request: Any, exc: BaseException, traceback: Any, run_id: int, holder: str | None = None
) -> None:
    """Celery calls this when a task of the chord failed for good (a chunk's retries spent, or
    an error no retry helps), after the other chunks ended: a chord then never runs its final
    step, and the run would wait for ``LOCK_TIMEOUT_SECONDS``. So the final step is sent anyway:
    it works through the chunks no worker finished itself and, if one fails again, records the
    run as failed with the reason and sends the report. Nothing is sent for a run that has
    ended or was taken over by another process (whose own chord finishes it)."""
    run = RotationRun.objects.filter(pk=run_id).first()
    if run is None or run.status != RunStatus.RUNNING or _taken_over(run, holder):
        logger.warning(
            "Rotation %s: a task of its chord failed (%s); the run has ended or is held by "
            "another process, so nothing is sent.",
            run_id,
            type(exc).__name__,
        )
        return
    logger.error(
        "Rotation %s: a task of its chord failed (%s); the final step is sent to finish the "
        "unfinished chunks.",
        run_id,
        type(exc).__name__,
    )
    finish_rotation_task.delay(None, run_id, holder)
