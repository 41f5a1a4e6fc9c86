"""The index walk: every row of the indexed fields' tables given its blind index in some slots,
while the application keeps running (``rebuild_blind_index``; step 3 of an index-key rotation).

It is a ``Rotation`` with the conversion's phases (plan -> reencrypt -> census -> done), whose
batches write index columns instead of ciphertext: the same lock, chunks, cursors, heartbeats,
failures and resumption, and a compare-and-swap on the ciphertext read, so an index is never
written for a value the application has changed since. Its end marks each field whose every row
was indexed complete under the keys it filled (``index_keys.mark_complete``); a field with a
failed row is not, so its queries keep refusing until the row is fixed and the walk rerun.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from django.db import transaction

from ..exceptions import KeyConfigurationError
from ..index_keys import (
    IndexKeyRing,
    index_key_database,
    load_index_key_ring,
    mark_complete,
    reset_index_key_ring,
)
from ..models import RotationFailure, RotationRun, RunKind
from .index_batch import SlotKeys, examine_index_rows
from .index_tables import IndexTable, chosen_indexed, index_tables
from .progress import Progress
from .protocol import Rotation
from .report import RotationReport
from .tables import Table


class IndexWalk(Rotation):
    """One walk of ``tables`` filling ``slots`` (by default the active slot and a filling one:
    a rebuild). ``only_missing``: only rows without an index in one of them are read and
    written (a rebuild); otherwise every row's index is computed and written where it differs
    (an index-key rotation's walk, which must overwrite what a retired key left)."""

    def __init__(
        self,
        tables: Sequence[IndexTable],
        *,
        slots: Sequence[str] | None = None,
        only_missing: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(tables, full_scope=False, **options)
        self.index_tables = list(tables)
        ring = load_index_key_ring(self.using)
        if slots is None:
            slots = [ring.active_slot, *(s for s, k in ring.slots.items() if k.state == "filling")]
        self.slots = sorted(set(slots))
        if unknown := sorted(set(self.slots) - set(ring.slots)):
            raise KeyConfigurationError(
                f"No live blind-index key fills slot {', '.join(unknown)}; "
                "'manage.py encryption_status' lists the index keys."
            )
        self.only_missing = only_missing
        self.ring = ring
        self.columns = sorted(
            f"{context}@{''.join(self.slots)}"
            for table in self.index_tables
            for context in table.contexts
        )

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> RotationReport:
        started = time.monotonic()
        run = self._acquire()
        if run is None:
            return self.report(None, started)
        try:
            if run.phase == "plan":
                self._plan(run)
        except Exception as exc:
            return self._end_with_error(run, exc, started)
        return self.finish(run, started=started)

    def _acquire(self) -> RotationRun | None:
        return self.ledger.acquire(self.trigger, RunKind.INDEX, self.columns)

    def report(self, run: RotationRun | None, started: float | None = None) -> RotationReport:
        report = super().report(run, started)
        if run is None:
            return report
        keys = ", ".join(f"{self.ring.slots[s].hex_id} (slot {s})" for s in self.slots)
        return replace(report, new_key_id=keys)

    def _examiner(self, run: RotationRun, table: Table) -> Callable[[list[Any]], Any]:
        """Each page's index values instead of its re-encryptions (``IndexBatch`` has what the
        walk's writes, failures and counts read)."""
        assert isinstance(table, IndexTable)
        keys = self._field_keys(table)
        only_missing = self.only_missing
        return lambda rows: examine_index_rows(rows, table, keys, only_missing=only_missing)

    def _census_and_retire(self, run: RotationRun) -> None:
        """No census: each field every row of which was indexed is marked complete under the
        keys filled, so queries (and the next switch) trust it."""
        run.refresh_from_db(using=self.using)
        progress, counters = self.ledger.exact_counters(run)
        failed = set(
            RotationFailure.objects.using(self.using)
            .filter(run_id=run.pk)
            .values_list("model", "field")
        )
        incomplete = []
        with transaction.atomic(using=self.using):
            self.ledger.heartbeat(run)  # write first: SQLite then takes its write lock up front
            for table in self.index_tables:
                for indexed in table.indexed:
                    if (table.label, indexed.name) in failed:
                        incomplete.append(f"{table.label}.{indexed.name}")
                        continue
                    for slot in self.slots:
                        mark_complete(self.ring.slots[slot].key_id, indexed.record, self.using)
        reason = ""
        if incomplete:
            reason = (
                f"not complete, since rows failed: {', '.join(incomplete)} (fix those rows, then "
                "run rebuild_blind_index again)"
            )
        self.ledger.update(
            run,
            reason=reason,
            phase="done",
            **counters,
            models_processed=len(self.tables),
            progress=progress,
        )
        reset_index_key_ring()

    def _prune_backups(self, run: RotationRun) -> None:
        """An index walk changes no data key, so it leaves the key backups alone."""

    # -- helpers --------------------------------------------------------------------------------

    def _field_keys(self, table: IndexTable) -> dict[str, SlotKeys]:
        """Each field's key per slot filled: derived once per chunk, never per value."""
        ring: IndexKeyRing = self.ring
        return {
            indexed.name: [
                (slot, ring.field_key(ring.slots[slot], indexed.field.index_context))
                for slot in self.slots
            ]
            for indexed in table.indexed
        }

    def missing(self) -> dict[str, int]:
        """Rows with a value but no index in a slot this walk fills, per field (the dry run)."""
        counts = {}
        for table in self.index_tables:
            for indexed in table.indexed:
                manager = indexed.field.model._base_manager.using(self.using)
                lacking = manager.none()
                for slot in self.slots:
                    lacking = lacking | manager.filter(
                        **{
                            f"{indexed.name}__isnull": False,
                            f"{indexed.slot_columns[slot]}__isnull": True,
                        }
                    )
                counts[f"{table.label}.{indexed.name}"] = lacking.count()
        return counts


def rebuild_walk(
    labels: Sequence[str],
    using: str | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
    trigger: str = "api",
    *,
    recompute: bool = False,
) -> IndexWalk:
    """The walk of ``rebuild_blind_index``: the active slot (and a filling one) of the indexed
    fields ``labels`` names (``app_label.Model[.field]``; every indexed field by default),
    for the rows that lack an index there (``recompute``: every row, for an index written
    under a key that is gone)."""
    return IndexWalk(
        index_tables(chosen_indexed(labels)),
        only_missing=not recompute,
        using=using or index_key_database(),
        batch_size=batch_size,
        progress=progress,
        trigger=trigger,
    )
