"""The conversion run (``encrypt_existing``): the rotation's walk over some columns in transition,
sealing each legacy value under the current primary key while the application keeps running.

It is a ``Rotation`` with fewer phases (plan -> reencrypt -> census -> done: no key is made,
activated or retired) and ``only_legacy`` batches (every envelope is left as it is), so it
shares the rotation's lock, chunks, cursors, heartbeats, compare-and-swap writes, failures and
resumption. docs/adoption.md has the runbook; ``lock.takeover`` what each kind does with a dead
run of the other.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models

from ..ciphers import AeadCipher
from ..keys import cipher_for, ensure_primary_key
from ..legacy import SETTING, legacy_readers
from ..models import RotationRun, RunKind, RunStatus
from .census import count_census
from .conversion_report import ConversionReport, legacy_left
from .dry_run import walk_without_writing
from .indexes import mark_indexed
from .protocol import Rotation
from .report import MAX_FAILURES_IN_REPORT
from .tables import ModelConfiguration, Table, resolve_tables


class Conversion(Rotation):
    """One conversion of ``tables`` (each holding only its columns in transition). ``run()``
    converts every legacy value and returns the report; a run that a dead process left for the
    same columns is resumed from its chunks' cursors."""

    only_legacy = True
    report_class = ConversionReport

    def __init__(self, tables: Sequence[Table], **options: object) -> None:
        super().__init__(tables, full_scope=False, **options)  # type: ignore[arg-type]
        self.columns = sorted(
            f"{table.label}.{name}" for table in self.tables for name, _ in table.columns
        )

    def run(self) -> ConversionReport:
        if self.dry_run:
            return self._dry_run()
        started = time.monotonic()
        run = self.start()
        if run is None or run.status != RunStatus.RUNNING:
            return self.report(run, started)
        return self.finish(run, started=started)  # type: ignore[return-value]

    def start(self) -> RotationRun | None:
        """Take the lock (or resume a dead conversion of the same columns) and plan the chunks;
        ``None`` when another run holds the lock."""
        run = self._acquire()
        if run is None:
            return None
        try:
            if run.phase == "plan":
                self._plan(run)
        except Exception as exc:
            self._end_with_error(run, exc, time.monotonic())
        return run

    def report(self, run: RotationRun | None, started: float | None = None) -> ConversionReport:
        if run is None:
            running = self.ledger.running()
            return ConversionReport.refused(running, self.columns, now=self.clock())
        report = super().report(run, started)
        assert isinstance(report, ConversionReport)  # report_class
        return replace(report, columns=tuple(run.columns))

    def _acquire(self) -> RotationRun | None:
        return self.ledger.acquire(self.trigger, RunKind.CONVERSION, self.columns)

    def _sealing_key(self, run: RotationRun) -> tuple[int, AeadCipher]:
        """The current primary key (made first on a fresh install): a conversion makes none.
        Fixed for the run, since no rotation can activate another while this holds the lock."""
        primary = ensure_primary_key(self.using)
        return primary.key_id, cipher_for(primary.key_id)

    def _census_and_retire(self, run: RotationRun) -> None:
        """The census of the converted columns, which says how many legacy values are left; no
        key is retired (the census sees only these columns).

        It reads the columns again rather than summing the walk's counts: those count each batch
        as it was read, so they miss what the application did behind the cursor (a plaintext
        write by a process not yet deployed, a row whose compare-and-swap lost, rows inserted
        or deleted), and the census is what ends the transition."""
        run.refresh_from_db(using=self.using)
        progress, counters = self.ledger.exact_counters(run)
        counts = count_census(
            self.connection, self.tables, self.batch_size, self.progress, self._keep_alive(run)
        )
        for table in self.tables:  # queries may answer from an index that every row has
            mark_indexed(self.connection, table, [name for name, _ in table.columns])
        self.ledger.update(
            run,
            census=counts,
            reason=transition_note(legacy_left(counts, run.columns), run.failed_records),
            phase="done",
            **counters,
            models_processed=len(self.tables),
            progress=progress,
        )

    def _prune_backups(self, run: RotationRun) -> None:
        """A conversion changes no key, so it leaves the key backups alone."""

    def _dry_run(self) -> ConversionReport:
        """The same pages and the same reading and validation of every legacy value, nothing
        written: what would be converted and what would fail."""
        started = time.monotonic()
        census, models, failures = walk_without_writing(self, only_legacy=True)
        return ConversionReport.from_dry_run_walk(
            columns=self.columns,
            models=models,
            census=census,
            failures=failures[:MAX_FAILURES_IN_REPORT],
            now=self.clock(),
            elapsed=time.monotonic() - started,
        )


def transition_note(left: dict[str, int], failed: int) -> str:
    """What a conversion's report says of the transition of its columns."""
    done = sorted(column for column, count in left.items() if not count)
    notes = []
    if done:
        notes.append(
            f"no legacy value is left in {', '.join(done)}: the transition is over; remove "
            f"{'it' if len(done) == 1 else 'them'} from {SETTING} and deploy"
        )
    waiting = {column: count for column, count in sorted(left.items()) if count}
    if waiting:
        notes.append(
            ", ".join(
                f"{count} legacy values are left in {column}" for column, count in waiting.items()
            )
            + (
                f" ({failed} rows failed: fix them, then run encrypt_existing again)"
                if failed
                else "; run encrypt_existing again"
            )
        )
    return "; ".join(notes)


def columns_in_transition() -> dict[str, str]:
    """Each column in ``DATA_ENCRYPTION_LEGACY_COLUMNS``, ``"app_label.Model.field"`` (as the
    census spells it) -> the census label of its legacy values."""
    return {
        f"{apps.get_model(model)._meta.label}.{name}": reader.census_label
        for (model, name), reader in legacy_readers().items()
    }


def conversion_tables(labels: Sequence[str], configuration: ModelConfiguration) -> list[Table]:
    """The tables to convert for ``labels`` (``app_label.Model.field``, or ``app_label.Model``
    for every column of the model in transition), each column checked: it must be in
    ``DATA_ENCRYPTION_LEGACY_COLUMNS`` (deployed, so the application reads both forms before
    any value changes) and among the columns rotation covers (so later rotations move it)."""
    if not labels:
        raise ImproperlyConfigured(
            "Name the columns to convert: app_label.Model.field (or app_label.Model)."
        )
    readers = legacy_readers()
    covered = {(model._meta.label_lower, name) for model, names in configuration for name in names}
    chosen: dict[type[models.Model], list[str]] = {}
    for label in labels:
        model, names = _columns_named(label, readers)
        for name in names:
            if (model._meta.label_lower, name) not in covered:
                raise ImproperlyConfigured(
                    f"{model._meta.label}.{name} is not a column that rotation covers, so its "
                    "values cannot be sealed: make it an encrypted field (or list the raw "
                    "column in ENCRYPTION_KEY_ROTATION['MODELS'])."
                )
            if name not in chosen.setdefault(model, []):
                chosen[model].append(name)
    return resolve_tables(list(chosen.items()))


def _columns_named(
    label: str, readers: Mapping[tuple[str, str], object]
) -> tuple[type[models.Model], list[str]]:
    parts = label.split(".")
    if len(parts) not in (2, 3):
        raise ImproperlyConfigured(f"{label!r}: name a column as app_label.Model.field.")
    try:
        model = apps.get_model(".".join(parts[:2]))
    except (LookupError, ValueError):
        raise ImproperlyConfigured(
            f"{label!r}: no installed model {'.'.join(parts[:2])}."
        ) from None
    concrete = model._meta.concrete_model or model
    in_transition = [name for lower, name in readers if lower == concrete._meta.label_lower]
    if len(parts) == 2:
        if not in_transition:
            raise ImproperlyConfigured(
                f"{model._meta.label} has no column in {SETTING}. Add each column to convert "
                '(e.g. "app_label.Model.field": "plaintext") and deploy first.'
            )
        return concrete, in_transition
    try:
        name = model._meta.get_field(parts[2]).name
    except FieldDoesNotExist:
        raise ImproperlyConfigured(f"{model._meta.label} has no field {parts[2]!r}.") from None
    if name not in in_transition:
        raise ImproperlyConfigured(
            f"{model._meta.label}.{name} is not in {SETTING}. Add it with the reader of its "
            f'current values (e.g. "{model._meta.label}.{name}": "plaintext") and deploy '
            "first: the application must read both forms before any value is converted."
        )
    return concrete, [name]
