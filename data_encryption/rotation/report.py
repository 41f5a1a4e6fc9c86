"""The rotation report: one typed record of what a rotation did (or why it did nothing), and the
contract's dict that ``KeyRotationService.rotate()`` returns (``as_dict()``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Self

from ..models import RotationRun, RunKind, RunStatus, format_key_id
from .census import Census

MAX_FAILURES_IN_REPORT = 100

# Why a rotation did nothing (``RotationReport.skipped``).
ALREADY_RUNNING = "already_running"
NOT_DUE = "not_due"

# The contract's keys (docs/rotation.md, "The report"), then each outcome's own, in order.
_CONTRACT = (
    "status",
    "timestamp",
    "models_processed",
    "records_processed",
    "failed_records",
    "key_backup_path",
)
_RAN = (
    *_CONTRACT,
    "run_id",
    "dry_run",
    "resumed",
    "started_at",
    "duration_seconds",
    "records_reencrypted",
    "new_key_id",
    "old_key_ids",
    "retired_key_ids",
    "destroyed_key_ids",
    "models",
    "census",
    "failures",
    "reason",
)
_ALREADY_RUNNING = (*_CONTRACT, "run_id", "dry_run", "skipped", "reason")
_NOT_DUE = ("status", "skipped", *_CONTRACT[1:], "dry_run", "next_due", "reason")
_ADDED_AFTERWARDS = ("workers", "reminder", "notification")  # present once set


@dataclass(frozen=True)
class ReportedFailure:
    """A value that did not decrypt: where it is and why, never the value."""

    model: str
    pk: str
    field: str
    key_id: str | None
    error: str

    @classmethod
    def of(cls, model: str, pk: Any, name: str, key_id: int | None, error: str) -> ReportedFailure:
        return cls(model, str(pk), name, format_key_id(key_id) if key_id else None, error)


@dataclass(frozen=True)
class Notification:
    """Whether the notifier sent the report (``error``: the exception's class name, if not).
    ``skipped``: not sent, since the outcome is not announced (see ``should_notify``)."""

    sent: bool
    error: str = ""
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = {"sent": self.sent, "error": self.error}
        if self.skipped:
            plain["skipped"] = True
        return plain


@dataclass(frozen=True)
class RotationReport(Mapping[str, Any]):
    """What a rotation did. Built by one of the constructors below; ``workers``, ``reminder``
    and ``notification`` are added afterwards with ``dataclasses.replace``.

    It reads as a mapping too (``report["status"]``): the contract's dict, read-only.
    """

    status: str
    timestamp: datetime
    models_processed: int = 0
    records_processed: int = 0
    failed_records: int = 0
    key_backup_path: str = ""
    run_id: int | None = None
    dry_run: bool = False
    resumed: bool = False
    started_at: datetime | None = None
    duration_seconds: float | None = None
    records_reencrypted: int = 0
    new_key_id: str | None = None
    old_key_ids: tuple[str, ...] = ()
    retired_key_ids: tuple[str, ...] = ()
    destroyed_key_ids: tuple[str, ...] = ()
    models: dict[str, dict[str, int]] = field(default_factory=dict)  # rows/reencrypted/failed
    census: Census = field(default_factory=dict)
    failures: tuple[ReportedFailure, ...] = ()
    reason: str = ""
    skipped: str | None = None  # ALREADY_RUNNING or NOT_DUE
    next_due: datetime | None = None
    workers: tuple[str, ...] | None = None
    reminder: str | None = None
    notification: Notification | None = None

    # -- the outcomes ---------------------------------------------------------------------------

    @classmethod
    def from_run(
        cls,
        run: RotationRun,
        *,
        failures: Iterable[ReportedFailure],
        models: dict[str, dict[str, int]],
        tables: int,
        resumed: bool,
        now: datetime,
        elapsed: float | None = None,
    ) -> Self:
        """A run that ended (or stopped). ``elapsed``: seconds this process spent on it; by
        default, from the run's start to its end."""
        finished = run.finished_at or now
        if elapsed is None:
            elapsed = (finished - run.started_at).total_seconds()
        return cls(
            status=run.status,
            timestamp=finished,
            models_processed=run.models_processed or tables,
            records_processed=run.records_processed,
            failed_records=run.failed_records,
            key_backup_path=run.key_backup_path,
            run_id=run.pk,
            resumed=resumed,
            started_at=run.started_at,
            duration_seconds=round(elapsed, 3),
            records_reencrypted=run.records_reencrypted,
            new_key_id=format_key_id(run.new_key_id) if run.new_key_id else None,
            old_key_ids=_hex(run.old_key_ids),
            retired_key_ids=_hex(run.retired_key_ids),
            destroyed_key_ids=_hex(run.destroyed_key_ids),
            models=models,
            census=run.census,
            failures=tuple(failures),
            reason=run.reason,
        )

    @classmethod
    def already_running(cls, running: RotationRun | None, *, now: datetime) -> RotationReport:
        """Nothing done: ``running`` holds the rotation lock (``None``: it was taken between
        this process's read and its insert)."""
        reason = (
            f"{running.kind} {running.pk} is already running (held by {running.holder}, last "
            f"heartbeat {running.heartbeat_at.isoformat()})"
            if running
            else "another rotation started at the same moment"
        )
        if running and running.kind != RunKind.ROTATION:
            reason += "; a rotation and a conversion never run at once: rotate once it is done"
        return cls(
            status=RunStatus.SKIPPED,
            timestamp=now,
            run_id=running.pk if running else None,
            skipped=ALREADY_RUNNING,
            reason=reason,
        )

    @classmethod
    def not_due(cls, next_due: datetime | None, schedule: str, *, now: datetime) -> RotationReport:
        """Nothing done: ``schedule`` says the next rotation is due at ``next_due``."""
        due = next_due.isoformat() if next_due else "once one completes"
        return cls(
            status=RunStatus.SKIPPED,
            timestamp=now,
            skipped=NOT_DUE,
            next_due=next_due,
            reason=(
                f"no rotation is due: the schedule is {schedule} and the next is due at {due}; "
                "pass force=True to rotate now"
            ),
        )

    @classmethod
    def from_dry_run(
        cls,
        *,
        models: dict[str, dict[str, int]],
        census: Census,
        failures: Iterable[ReportedFailure],
        old_key_ids: Iterable[int],
        would_retire: Iterable[int],
        now: datetime,
        elapsed: float,
    ) -> RotationReport:
        """What a rotation would do; ``models`` has each table's would-be counts."""
        counts = dry_run_counts(models, now, elapsed)
        failed = counts["failed_records"]
        return cls(
            **counts,
            old_key_ids=_hex(old_key_ids),
            retired_key_ids=_hex(would_retire),
            models=models,
            census=census,
            failures=tuple(failures)[:MAX_FAILURES_IN_REPORT],
            reason=(
                f"dry run: {failed} rows could not be decrypted; no key would be retired"
                if failed
                else "dry run: nothing was written"
            ),
        )

    # -- the contract's dict --------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """The report as ``rotate()`` returns it: plain JSON-ready values, times in ISO 8601."""
        names: tuple[str, ...]
        if self.skipped == NOT_DUE:
            names = _NOT_DUE
        elif self.skipped:
            names = _ALREADY_RUNNING
        else:
            names = _RAN
        added = tuple(name for name in _ADDED_AFTERWARDS if getattr(self, name) is not None)
        return {name: _plain(getattr(self, name)) for name in names + added}

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())


def _hex(key_ids: Iterable[int]) -> tuple[str, ...]:
    return tuple(format_key_id(key_id) for key_id in key_ids)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Notification):
        return value.as_dict()
    if isinstance(value, ReportedFailure):
        return asdict(value)
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def dry_run_counts(
    models: Mapping[str, Mapping[str, int]], now: datetime, elapsed: float
) -> dict[str, Any]:
    """The fields a dry run's report (a rotation's or a conversion's) takes from its would-be
    counts per table (``rows``, ``reencrypted``, ``failed``)."""
    failed = sum(counts["failed"] for counts in models.values())
    return {
        "status": RunStatus.FAILED if failed else RunStatus.COMPLETED,
        "timestamp": now,
        "models_processed": len(models),
        "records_processed": sum(counts["rows"] for counts in models.values()),
        "failed_records": failed,
        "dry_run": True,
        "started_at": now,
        "duration_seconds": round(elapsed, 3),
        "records_reencrypted": sum(counts["reencrypted"] for counts in models.values()),
    }
