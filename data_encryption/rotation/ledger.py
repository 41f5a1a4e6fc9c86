"""The ledger: the ``RotationRun`` row that is a rotation's lock, heartbeat and record, and the
run's chunks and their counts (its failures are in ``failures``). Every write to the run row
checks that this process still holds it; a holder is alive while its heartbeat is fresh, whatever
host or PID namespace it runs in."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, QuerySet

from ..exceptions import describe_error
from ..models import RotationChunk, RotationRun, RunKind, RunStatus
from .batch import Batch
from .lock import CLOSE, REFUSE, LockLost, close_abandoned, holder_is_alive, takeover

logger = logging.getLogger(__name__)

# How often a process walking a run's chunks writes the run row: its heartbeat, the check that
# it still holds the run, and the live counters. Far below LOCK_TIMEOUT_SECONDS.
HEARTBEAT_SECONDS = 1.0

# The run row's counters and the chunk counters they sum.
RUN_COUNTERS = {
    "records_processed": "rows",
    "records_reencrypted": "reencrypted",
    "failed_records": "failed",
}


class RunLedger:
    """This process's view of the run rows in database ``using``, as ``holder``."""

    def __init__(self, using: str, holder: str, clock: Callable[[], datetime]) -> None:
        self.using, self.holder, self.clock = using, holder, clock
        self.resumed = False  # acquire() took over a run a dead process left
        self._unsaved: Counter[str] = Counter()  # counts not yet added to the run row
        self._saved_at = 0.0  # monotonic; 0: the first batch checks the lock

    @property
    def runs(self) -> QuerySet[RotationRun]:
        return RotationRun.objects.using(self.using)

    # -- the lock -------------------------------------------------------------------------------

    def running(self) -> RotationRun | None:
        return self.runs.filter(status=RunStatus.RUNNING).first()

    def acquire(
        self, trigger: str, kind: str = RunKind.ROTATION, columns: Sequence[str] = ()
    ) -> RotationRun | None:
        """A new run of ``kind``, or the running one when its holder died (see ``takeover``
        for a dead run of the other kind); ``None``: another holds the lock."""
        now = self.clock()
        running = self.running()
        if running is not None:
            if holder_is_alive(running.heartbeat_at, now):
                return None
            verdict = takeover(running, kind, columns)
            stale = self.runs.filter(
                pk=running.pk, holder=running.holder, heartbeat_at=running.heartbeat_at
            )
            if verdict == REFUSE or (verdict == CLOSE and not close_abandoned(stale, kind, now)):
                return None
            if verdict == CLOSE:
                logger.warning(
                    "Closed %s %s left by a process that died.", running.kind, running.pk
                )
                return self._create(trigger, kind, columns, now)
            if not stale.update(holder=self.holder, heartbeat_at=now):
                return None  # another process took it over first
            running.holder, running.heartbeat_at = self.holder, now
            self.resumed = True
            logger.warning(
                "Resuming rotation %s (phase %s) left by a process that died.",
                running.pk,
                running.phase,
            )
            return running
        return self._create(trigger, kind, columns, now)

    def _create(
        self, trigger: str, kind: str, columns: Sequence[str], now: datetime
    ) -> RotationRun | None:
        try:
            with transaction.atomic(using=self.using):
                return self.runs.create(
                    started_at=now,
                    heartbeat_at=now,
                    holder=self.holder,
                    trigger=trigger,
                    kind=kind,
                    columns=list(columns),
                    phase="backup" if kind == RunKind.ROTATION else "plan",
                )
        except IntegrityError:
            return None  # another process started one between our read and our insert

    def update(self, run: RotationRun, **changes: Any) -> None:
        """Update the run row and its heartbeat, only while this process still holds it (else
        ``LockLost``).

        Counters change with ``F()`` expressions, since several workers add to them at once;
        on ``run`` they become deferred fields, read from the database when next used.
        """
        changes["heartbeat_at"] = self.clock()
        updated = self.runs.filter(pk=run.pk, holder=self.holder, status=RunStatus.RUNNING).update(
            **changes
        )
        if not updated:
            raise LockLost(f"Rotation {run.pk} is no longer held by this process.")
        self._saved_at = time.monotonic()
        for name, value in changes.items():
            if hasattr(value, "resolve_expression"):
                # Deferred rather than re-read now: a batch would pay a SELECT for counters
                # nobody looks at until the run's end. Reading the attribute loads it.
                run.__dict__.pop(name, None)
            else:
                setattr(run, name, value)

    def heartbeat(self, run: RotationRun) -> None:
        self.update(run)

    def keep_alive(self, run: RotationRun) -> None:
        """Heartbeat if the last one is ``HEARTBEAT_SECONDS`` old: for long phases (plan,
        census) to call as often as they like. Call it outside a transaction, or no one sees it."""
        if self.clock() - run.heartbeat_at >= timedelta(seconds=HEARTBEAT_SECONDS):
            self.heartbeat(run)

    def claim_finish(self, run: RotationRun) -> bool:
        """Whether this caller is the one to finish the run (a final step delivered twice
        finishes it once)."""
        claimed = self.runs.filter(
            pk=run.pk, holder=self.holder, status=RunStatus.RUNNING, phase="reencrypt"
        ).update(phase="finishing", heartbeat_at=self.clock())
        if claimed:
            run.phase = "finishing"
        return bool(claimed)

    # -- chunks and their counts ----------------------------------------------------------------

    @property
    def chunks(self) -> QuerySet[RotationChunk]:
        return RotationChunk.objects.using(self.using)

    def plan(self, run: RotationRun, bounds: dict[str, list[tuple[Any, Any]]]) -> None:
        """Replace the run's chunks with one per ``(lower, upper]`` range of each model."""
        self.chunks.filter(run=run).delete()
        self.chunks.bulk_create(
            [
                RotationChunk(
                    run=run, model=label, index=index, lower=lower, upper=upper, cursor=lower
                )
                for label, ranges in bounds.items()
                for index, (lower, upper) in enumerate(ranges)
            ]
        )

    def pending_chunks(self, run: RotationRun) -> list[RotationChunk]:
        return list(self.chunks.filter(run=run, done=False).order_by("id"))

    def start_chunk(self, chunk: RotationChunk) -> None:
        if chunk.started_at is None:
            chunk.started_at = self.clock()
            self.chunks.filter(pk=chunk.pk, started_at=None).update(started_at=chunk.started_at)

    def advance_chunk(self, chunk: RotationChunk, cursor: Any, batch: Batch) -> None:
        """Move the chunk's cursor and counts past ``batch`` (in the batch's transaction)."""
        self.chunks.filter(pk=chunk.pk).update(
            cursor=cursor,
            rows=F("rows") + batch.rows,
            reencrypted=F("reencrypted") + batch.rewrites,
            failed=F("failed") + batch.failed_rows,
        )
        chunk.cursor = cursor
        chunk.rows += batch.rows

    def end_chunk(self, chunk: RotationChunk) -> None:
        chunk.done, chunk.finished_at = True, self.clock()
        self.chunks.filter(pk=chunk.pk).update(done=True, finished_at=chunk.finished_at)

    def add_counts(self, run: RotationRun, batch: Batch) -> None:
        """Add a batch to the run row's live counters, written with the next heartbeat.

        Every worker of a run would otherwise update that one row after every batch, waiting on
        each other's row lock, so the counters go out with the heartbeat (and the check that this
        process still holds the run) at most every ``HEARTBEAT_SECONDS``. The chunks' own
        counters move with each batch; the run's exact totals are their sums, taken when the
        walk is over (``exact_counters``).
        """
        unsaved = self._unsaved
        unsaved["records_processed"] += batch.rows
        unsaved["records_reencrypted"] += batch.rewrites
        unsaved["failed_records"] += batch.failed_rows
        if time.monotonic() - self._saved_at >= HEARTBEAT_SECONDS:
            self.write_counts(run)

    def write_counts(self, run: RotationRun) -> None:
        """Add the counts not yet written to the run row now (and heartbeat)."""
        unsaved = self._unsaved
        self.update(run, **{name: F(name) + count for name, count in unsaved.items() if count})
        unsaved.clear()

    def models_progress(self, run: RotationRun) -> dict[str, dict[str, int]]:
        """Rows, rewrites and failures per model, summed over the run's chunks."""
        totals: dict[str, dict[str, int]] = {}
        for chunk in self.chunks.filter(run=run).values("model", *RUN_COUNTERS.values()):
            entry = totals.setdefault(chunk["model"], dict.fromkeys(RUN_COUNTERS.values(), 0))
            for name in RUN_COUNTERS.values():
                entry[name] += chunk[name]
        return totals

    def exact_counters(self, run: RotationRun) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
        """The run's counts per model and in total, over every chunk whoever walked it (the run
        row's counts are live counts, up to ``HEARTBEAT_SECONDS`` behind per process). The
        totals are also set on ``run``."""
        progress = self.models_progress(run)
        counters = {
            counter: sum(counts[name] for counts in progress.values())
            for counter, name in RUN_COUNTERS.items()
        }
        for counter, total in counters.items():
            setattr(run, counter, total)
        return progress, counters

    def workers(self, run: RotationRun) -> list[str]:
        """Who finished the run's chunks (Celery workers' hostnames)."""
        finished = self.chunks.filter(run_id=run.pk).exclude(worker="")
        return sorted(set(finished.values_list("worker", flat=True)))

    # -- the end -------------------------------------------------------------------------------

    def record_outcome(self, run: RotationRun) -> None:
        """End a run whose every step is done: ``completed``, or ``failed`` if rows failed."""
        status = RunStatus.FAILED if run.failed_records else RunStatus.COMPLETED
        self.update(run, status=status, finished_at=self.clock())
        logger.info(
            "%s %s %s: %s records, %s rewritten, %s failed.",
            run.kind.capitalize(),
            run.pk,
            status,
            run.records_processed,
            run.records_reencrypted,
            run.failed_records,
        )

    def record_error(self, run: RotationRun, exc: BaseException) -> None:
        """End a run that an error stopped: ``failed``, with the error as its reason."""
        # Shown in the admin, the email and encryption_status: never a database error's text,
        # which on PostgreSQL quotes the failing row (describe_error).
        reason = describe_error(exc)[:2000]
        if reason == type(exc).__name__:
            reason += " (see the log for the traceback)"
        # The counts a failed run reports are exact too, not the live counts of the run row
        # (if the database still answers: recording the failure matters more).
        try:
            counters = self.exact_counters(run)[1]
        except DatabaseError:
            counters = {}
        # A failed run is never resumed, so its pending key (if not yet a DataKey) is forgotten.
        self.runs.filter(pk=run.pk, holder=self.holder).update(
            status=RunStatus.FAILED,
            finished_at=self.clock(),
            reason=reason,
            new_wrapped_key=None,
            **counters,
        )
        run.status, run.finished_at, run.reason = RunStatus.FAILED, self.clock(), reason
