"""Celery tasks: scheduled rotation, fanned out across workers (docs/automation.md).

``rotate_encryption_key_task`` is the task to schedule (its name is part of the contract). The
service decides whether a rotation is due; this module only drives the protocol through Celery:
the first steps here, every chunk on ``rotate_chunk_task``, then ``finish_rotation_task`` once.
Called in-process (a plain call, ``.apply()``, eager mode), it works through the chunks itself.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace
from typing import Any

from celery import chord, shared_task
from django.db import DatabaseError

from .models import RotationChunk, RotationRun, RunStatus
from .schedule import TASK_NAME
from .schedule import rotation_beat_schedule as rotation_beat_schedule  # the beat entry
from .services import KeyRotationService, get_rotation_service_class

logger = logging.getLogger(__name__)


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
    not_due = service.skip_unless_due(force=force)
    if not_due is not None:
        return not_due.as_dict()
    rotation = service.rotation(trigger="celery", holder=f"celery:{secrets.token_hex(6)}")
    run = rotation.start()
    if run is None or run.status != RunStatus.RUNNING:
        return service.announce(rotation.report(run)).as_dict()
    chunks = rotation.pending_chunks(run)
    if _in_process(self) or len(chunks) <= 1:
        report = service.then_index_keys(rotation.finish(run), trigger="celery")
        return service.announce(report).as_dict()
    fan_out(run, chunks)
    return {"status": RunStatus.RUNNING, "run_id": run.pk, "chunks": len(chunks)}


def fan_out(run: RotationRun, chunks: list[RotationChunk]) -> None:
    """Send every chunk to the workers in a chord: ``finish_rotation_task`` once all of them are
    done, or ``chunks_failed_task`` (which sends the final step anyway) if one failed for good.
    Every task carries the run's holder, so a run taken over is left to its new holder."""
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
    report = replace(report, workers=tuple(rotation.ledger.workers(run)))
    return service.announce(service.then_index_keys(report, trigger="celery")).as_dict()


@shared_task(name="data_encryption.tasks.chunks_failed_task")
def chunks_failed_task(
    request: Any, exc: BaseException, traceback: Any, run_id: int, holder: str | None = None
) -> None:
    """Celery calls this when a task of the chord failed for good; the chord then never runs
    its final step, so this sends it (unless the run ended or was taken over): it finishes the
    chunks no worker finished, or records the run as failed and sends the report."""
    run = RotationRun.objects.filter(pk=run_id).first()
    ended = run is None or run.status != RunStatus.RUNNING or _taken_over(run, holder)
    (logger.warning if ended else logger.error)(
        "Rotation %s: a task of its chord failed (%s); %s.",
        run_id,
        type(exc).__name__,
        "the run has ended or is held by another process, so nothing is sent"
        if ended
        else "the final step is sent to finish the unfinished chunks",
    )
    if not ended:
        finish_rotation_task.delay(None, run_id, holder)
