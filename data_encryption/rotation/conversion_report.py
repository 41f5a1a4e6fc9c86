"""The conversion report: what an ``encrypt_existing`` run converted, and how many legacy values
each of its columns has left. It is a ``RotationReport`` (the same counts, failures and census)
whose dict says ``kind: conversion`` and ``records_converted``, and names no key: a conversion
makes, activates and retires none."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..legacy import PLAINTEXT
from ..models import RotationRun, RunKind, RunStatus
from .census import Census
from .report import ALREADY_RUNNING, ReportedFailure, RotationReport, _plain, dry_run_counts

_CONVERTED = (
    "status",
    "timestamp",
    "kind",
    "run_id",
    "dry_run",
    "resumed",
    "started_at",
    "duration_seconds",
    "columns",
    "models_processed",
    "records_processed",
    "records_converted",
    "failed_records",
    "models",
    "census",
    "legacy_left",
    "failures",
    "reason",
)
_REFUSED = ("status", "timestamp", "kind", "run_id", "columns", "skipped", "reason")


def legacy_count(labels: Mapping[str, int]) -> int:
    """How many values of one column's census are still in their legacy form (``plaintext`` or
    ``legacy:<library>``; not ``legacy-fernet``, this app's own tokens, which rotation reads)."""
    return sum(
        count
        for label, count in labels.items()
        if label == PLAINTEXT or label.startswith("legacy:")
    )


def legacy_left(census: Census, columns: Iterable[str]) -> dict[str, int]:
    """Legacy values per column (``"app_label.Model.field"``) in ``census``."""
    left = {}
    for column in columns:
        model, _, name = column.rpartition(".")
        left[column] = legacy_count(census.get(model, {}).get(name, {}))
    return left


@dataclass(frozen=True)
class ConversionReport(RotationReport):
    """What a conversion did: ``records_reencrypted`` counts the values it converted (the dict
    calls it ``records_converted``), ``columns`` what it covered."""

    kind: str = RunKind.CONVERSION
    columns: tuple[str, ...] = ()

    @classmethod
    def refused(
        cls, running: RotationRun | None, columns: Iterable[str], *, now: datetime
    ) -> ConversionReport:
        """Nothing done: ``running`` holds the lock. A rotation whose process died is refused
        too: only a rotation can finish it."""
        if running is None:
            reason = "another run took the lock at the same moment; run encrypt_existing again"
        elif running.kind == RunKind.ROTATION and running.status == RunStatus.RUNNING:
            reason = (
                f"rotation {running.pk} holds the lock (held by {running.holder}, last heartbeat "
                f"{running.heartbeat_at.isoformat()}); a conversion and a rotation never run at "
                "once. Run encrypt_existing again once it has finished; if its process died, "
                "run rotate_encryption_key to finish it (it converts the columns in transition "
                "too)"
            )
        else:
            reason = (
                f"conversion {running.pk} of {', '.join(running.columns)} is already running "
                f"(held by {running.holder}, last heartbeat {running.heartbeat_at.isoformat()}); "
                "run encrypt_existing again once it has finished"
            )
        return cls(
            status=RunStatus.SKIPPED,
            timestamp=now,
            run_id=running.pk if running else None,
            skipped=ALREADY_RUNNING,
            reason=reason,
            columns=tuple(columns),
        )

    @classmethod
    def from_dry_run_walk(
        cls,
        *,
        columns: Iterable[str],
        models: dict[str, dict[str, int]],
        census: Census,
        failures: Iterable[ReportedFailure],
        now: datetime,
        elapsed: float,
    ) -> ConversionReport:
        """What a conversion would do; ``models`` has each table's would-be counts."""
        counts = dry_run_counts(models, now, elapsed)
        failed, converted = counts["failed_records"], counts["records_reencrypted"]
        return cls(
            **counts,
            models=models,
            census=census,
            failures=tuple(failures),
            reason=(
                f"dry run: {converted} values would be converted and {failed} rows would fail; "
                "nothing was written"
            ),
            columns=tuple(columns),
        )

    @property
    def legacy_left(self) -> dict[str, int]:
        """Legacy values left per column, by the run's census (before it, in a dry run)."""
        return legacy_left(self.census, self.columns)

    def as_dict(self) -> dict[str, Any]:
        names = _REFUSED if self.skipped else _CONVERTED
        plain = {name: _plain(self._value(name)) for name in names}
        if not self.skipped:
            plain["models"] = {
                label: {
                    "rows": counts["rows"],
                    "converted": counts["reencrypted"],
                    "failed": counts["failed"],
                }
                for label, counts in self.models.items()
            }
        return plain

    def _value(self, name: str) -> Any:
        if name == "records_converted":
            return self.records_reencrypted
        return getattr(self, name)
