"""The rotation protocol, its phases in order: lock, backup, activate, wait, plan, re-encrypt,
census and retire, record. docs/rotation.md describes each step and why it is safe to resume."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from django.db import connections, transaction
from django.utils import timezone

from ..conf import encryption_settings
from ..exceptions import describe_traceback
from ..keys import key_database, reset_key_ring
from ..models import DataKey, RotationRun, RunStatus, format_key_id
from .census import Census, census_totals, count_census, prune_backups_after_retirement, retire_keys
from .dry_run import dry_run
from .failures import reported_failures
from .ledger import RunLedger
from .lock import LockLost, this_holder
from .new_key import activate_new_key, back_up_new_key, forget_activated_copy
from .progress import Progress
from .report import RotationReport
from .rows import chunk_bounds
from .tables import Table
from .walk import ChunkWalk

logger = logging.getLogger(__name__)


class Rotation(ChunkWalk):
    """One rotation run over ``tables``. ``run()`` does the whole protocol and returns the report;
    its re-encrypting phase is the walk over its chunks (``ChunkWalk``).

    ``clock`` and ``sleep`` are parameters so tests need no clock mocks.
    """

    def __init__(
        self,
        tables: Sequence[Table],
        *,
        using: str | None = None,
        batch_size: int | None = None,
        dry_run: bool = False,
        full_scope: bool = True,
        progress: Progress | None = None,
        trigger: str = "api",
        holder: str | None = None,
        sender: type | None = None,
        clock: Callable[[], datetime] = timezone.now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.tables = list(tables)
        self.using = using or key_database()
        self.batch_size = int(batch_size or encryption_settings.batch_size)
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1.")
        self.dry_run = dry_run
        self.full_scope = full_scope
        self.progress = progress or Progress()
        self.trigger = trigger
        self.clock = clock
        self.sleep = sleep
        self.sender = sender or type(self)  # what signals name as their sender
        self.connection = connections[self.using]
        # Celery workers pass the run's holder: they work for the run the orchestrator started.
        self.ledger = RunLedger(self.using, holder or this_holder(), clock)

    @property
    def holder(self) -> str:
        return self.ledger.holder

    @property
    def resumed(self) -> bool:
        return self.ledger.resumed

    # -- the protocol ---------------------------------------------------------------------------

    def run(self) -> RotationReport:
        """The whole protocol in this process; returns the report."""
        if self.dry_run:
            return dry_run(self)
        started = time.monotonic()
        run = self.start()
        if run is None or run.status != RunStatus.RUNNING:
            return self.report(run, started)
        return self.finish(run, started=started)

    def start(self) -> RotationRun | None:
        """Take the lock, then back up, activate, wait and plan the chunks, resuming whatever a
        dead process left. ``None`` when another rotation holds the lock. After this, the run
        is in phase ``reencrypt`` (or later, when resumed) and its chunks can go to workers, or
        it has status ``failed`` (its ``reason`` says why)."""
        run = self._acquire()
        if run is None:
            return None
        try:
            from ..signals import rotation_started

            rotation_started.send_robust(
                sender=self.sender, run_id=run.pk, trigger=self.trigger, resumed=self.resumed
            )
            forget_activated_copy(self.ledger, run)
            if run.phase == "backup":
                self._backup(run)
            if run.phase == "activate":
                self._activate(run)
            if run.phase == "wait":
                self._wait(run)
            if run.phase == "plan":
                self._plan(run)
        except Exception as exc:
            self._end_with_error(run, exc, time.monotonic())
        return run

    def finish(self, run: RotationRun, *, started: float | None = None) -> RotationReport:
        """Re-encrypt every chunk not yet done (all of them in one process; those no worker
        finished under Celery), then census, retire, record; returns the report."""
        try:
            # "finishing": a Celery final step claimed the run (see claim_finish).
            if run.phase in ("reencrypt", "finishing"):
                self._process_pending(run)
                self.ledger.update(run, phase="census")
            if run.phase == "census":
                self._census_and_retire(run)
            if run.status == RunStatus.RUNNING:
                self._prune_backups(run)
                self.ledger.record_outcome(run)
        except Exception as exc:
            return self._end_with_error(run, exc, started)
        return self.report(run, started)

    def claim_finish(self, run: RotationRun) -> bool:
        """Whether this caller is the one to finish the run (a final step delivered twice
        finishes it once)."""
        return self.ledger.claim_finish(run)

    #: What ``report`` makes of a run (a conversion's report says what it converted).
    report_class: type[RotationReport] = RotationReport

    def report(self, run: RotationRun | None, started: float | None = None) -> RotationReport:
        """The report on ``run`` as it stands (``None``: another rotation held the lock).
        ``started``: when this process began it (``time.monotonic()``)."""
        if run is None:
            return RotationReport.already_running(self.ledger.running(), now=self.clock())
        return self.report_class.from_run(
            run,
            failures=reported_failures(self.using, run),
            models=run.progress or self.ledger.models_progress(run),
            tables=len(self.tables),
            resumed=self.resumed,
            now=self.clock(),
            elapsed=None if started is None else time.monotonic() - started,
        )

    def _end_with_error(
        self, run: RotationRun, exc: BaseException, started: float | None
    ) -> RotationReport:
        if isinstance(exc, LockLost):
            logger.error(
                "%s %s was taken over by another process; this one stopped.",
                run.kind.capitalize(),
                run.pk,
            )
            run.status, run.reason = RunStatus.FAILED, "Taken over by another process."
        elif run.status == RunStatus.RUNNING:
            # Not logger.exception: a database error's text quotes the failing row.
            logger.error(
                "%s %s failed in phase %s: %s",
                run.kind.capitalize(),
                run.pk,
                run.phase,
                describe_traceback(exc),
            )
            self.ledger.record_error(run, exc)
        return self.report(run, started)

    def _acquire(self) -> RotationRun | None:
        return self.ledger.acquire(self.trigger)

    def _backup(self, run: RotationRun) -> None:
        self.progress.phase("backup", "writing the key backup")
        back_up_new_key(self.ledger, run, now=self.clock())

    def _activate(self, run: RotationRun) -> None:
        assert run.new_key_id is not None  # set by _backup, in the same run
        self.progress.phase("activate", f"new primary key {format_key_id(run.new_key_id)}")
        activate_new_key(self.ledger, run, now=self.clock())
        reset_key_ring()
        logger.info("Rotation %s: data key %s is primary.", run.pk, format_key_id(run.new_key_id))

    def _wait(self, run: RotationRun) -> None:
        """Let every process's cached key ring expire, so no one still encrypts with the old key
        while rows are walked."""
        assert run.new_key_id is not None
        primary = DataKey.objects.using(self.using).get(key_id=run.new_key_id)
        since = primary.primary_since or primary.created_at
        until = since + timedelta(seconds=encryption_settings.key_cache_seconds)
        while (remaining := (until - self.clock()).total_seconds()) > 0:
            self.progress.phase(
                "wait", f"{remaining:.0f}s for other processes to pick up the new key"
            )
            self.sleep(min(remaining, 5.0))
            self.ledger.heartbeat(run)
        self.ledger.update(run, phase="plan")

    def _plan(self, run: RotationRun) -> None:
        """Split every table into chunks (idempotent: a resumed plan starts over cleanly). The
        bounds are read outside the transaction, so the heartbeats while reading are seen."""
        chunk_rows = encryption_settings.chunk_rows
        bounds = {
            table.label: chunk_bounds(self.connection, table, chunk_rows, self._keep_alive(run))
            for table in self.tables
        }
        with transaction.atomic(using=self.using):
            self.ledger.heartbeat(run)
            self.ledger.plan(run, bounds)
            self.ledger.update(run, phase="reencrypt")

    def _keep_alive(self, run: RotationRun) -> Callable[[], None]:
        return lambda: self.ledger.keep_alive(run)

    # -- census and retirement ------------------------------------------------------------------

    def census(self) -> Census:
        """Values per key per model and field, from headers only (read-only, no decryption)."""
        return count_census(self.connection, self.tables, self.batch_size, self.progress)

    def _census_and_retire(self, run: RotationRun) -> None:
        run.refresh_from_db(using=self.using)
        progress, counters = self.ledger.exact_counters(run)
        counts = count_census(
            self.connection, self.tables, self.batch_size, self.progress, self._keep_alive(run)
        )
        blocker = self._retirement_blocker(run)
        with transaction.atomic(using=self.using):
            self.ledger.heartbeat(run)  # write first: SQLite then takes its write lock up front
            retirement = retire_keys(
                self.using,
                census_totals(counts),
                blocker=blocker,
                now=self.clock(),
                retention=timedelta(days=encryption_settings.retention_days),
            )
            self.ledger.update(
                run,
                census=counts,
                retired_key_ids=[*run.retired_key_ids, *retirement.retired],
                destroyed_key_ids=[*run.destroyed_key_ids, *retirement.destroyed],
                reason="; ".join(retirement.notes),
                phase="done",
                **counters,
                models_processed=len(self.tables),
                progress=progress,
            )
        reset_key_ring()

    def _prune_backups(self, run: RotationRun) -> None:
        """``PRUNE_BACKUPS``: destroyed keys leave the key backups too (safe to redo on resume)."""
        if run.phase == "done" and (note := prune_backups_after_retirement(self.using)):
            self.ledger.update(run, reason="; ".join(filter(None, [run.reason, note])))

    def _retirement_blocker(self, run: RotationRun) -> str:
        """Why no old key may be retired by this run ("" when they may)."""
        if run.failed_records:
            return f"{run.failed_records} rows could not be decrypted"
        if not self.full_scope:
            return "the run was limited to some models, so the census is incomplete"
        return ""
