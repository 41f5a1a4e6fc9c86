"""Index-key rotation: a new blind-index key takes over from the active one, the slot protocol
of docs/search.md step by step, with the database enforcing uniqueness at every instant.

(1) a new key in the free slot, ``filling``: every write fills both slots; (2) wait until every
process has reloaded its ring (2 x ``KEY_CACHE_SECONDS`` after the change); (3) the index walk
fills the new slot on every row, and marks each field complete; (4) switch: the new key
``active``, the old ``draining``; (5) wait again; (6) the old key ``retired``, and once no process
can still be writing its slot (a third wait), its slot cleared in batches and its material
wiped. The phases live in ``IndexKey.state``/``state_since``, so a killed run resumes where it
was, and the walk resumes from its chunks (the rotation lock keeps one walk at a time).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connections, transaction
from django.db.models import F
from django.utils import timezone

from ..backups import back_up_before_new_index_key
from ..conf import encryption_settings
from ..index_keys import (
    SLOTS,
    ensure_active_index_key,
    index_key_database,
    reset_index_key_ring,
)
from ..key_audit import require_verified_metadata
from ..models import IndexKey, IndexKeyState, RunStatus
from .index_tables import IndexTable, discover_indexed, index_tables
from .index_walk import IndexWalk
from .progress import Progress
from .report import RotationReport
from .rows import _quote


class IndexKeyRotation:
    """Rotate the index key of ``tables`` (every indexed table: a key covers every field).
    ``run()`` takes it from wherever a previous run stopped to the end, or starts a new one."""

    def __init__(
        self,
        tables: Sequence[IndexTable],
        *,
        using: str,
        batch_size: int | None = None,
        progress: Progress | None = None,
        trigger: str = "api",
        clock: Callable[[], datetime] = timezone.now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.tables, self.using, self.trigger = list(tables), using, trigger
        self.batch_size = int(batch_size or encryption_settings.batch_size)
        self.progress = progress or Progress()
        self.clock, self.sleep = clock, sleep
        self.notes: list[str] = []

    @property
    def keys(self):  # type: ignore[no-untyped-def]
        return IndexKey.objects.using(self.using)

    def run(self) -> RotationReport:
        ensure_active_index_key(self.using)
        if self._clear_retired():
            return self._report(None)  # it finished an interrupted rotation: that was the run
        walk_report = None
        draining = self.keys.filter(state=IndexKeyState.DRAINING).first()
        if draining is None:
            filling = self._filling_key()
            self._wait_since(filling.state_since, "write the new index key's slot")
            walk_report = self._walk(filling)
            if walk_report.status != RunStatus.COMPLETED:
                return self._report(walk_report)
            draining = self._switch(filling)
        self._wait_since(draining.state_since, "stop reading the old index key's slot")
        self._retire(draining)
        self._clear_retired()
        return self._report(walk_report)

    # -- the steps ------------------------------------------------------------------------------

    def _filling_key(self) -> IndexKey:
        """The key being filled, or a new one in the slot the active key leaves free."""
        filling = self.keys.filter(state=IndexKeyState.FILLING).first()
        if filling is not None:
            self.notes.append(f"resumed the filling of index key {filling.hex_id}")
            return filling
        active = self.keys.get(state=IndexKeyState.ACTIVE)
        free = next(slot for slot in SLOTS if slot != active.slot)
        try:
            # Backed up before it is stored, as a new data key is: no index key exists that
            # no backup holds.
            with transaction.atomic(using=self.using):
                filling, path = back_up_before_new_index_key(self.using, slot=free)
            self.notes.append(f"backed up to {path}")
        except IntegrityError:  # another run made it first
            filling = self.keys.get(state=IndexKeyState.FILLING)
        reset_index_key_ring()
        self.progress.phase("index key", f"new index key {filling.hex_id} in slot {free}")
        return filling

    def _walk(self, filling: IndexKey) -> RotationReport:
        walk = IndexWalk(
            self.tables,
            slots=[filling.slot],
            only_missing=False,
            using=self.using,
            batch_size=self.batch_size,
            progress=self.progress,
            trigger=self.trigger,
            clock=self.clock,
            sleep=self.sleep,
        )
        return walk.run()

    def _switch(self, filling: IndexKey) -> IndexKey:
        """The new key active (queries read it), the old one draining (still written)."""
        now = self.clock()
        with transaction.atomic(using=self.using):
            rows = self._locked_keys(state__in=[IndexKeyState.ACTIVE, IndexKeyState.FILLING])
            # A run that lost the race finds the filling key active already: nothing to do.
            if any(r.pk == filling.pk and r.state == IndexKeyState.FILLING for r in rows):
                for row in sorted(rows, key=lambda r: r.pk == filling.pk):  # demote first
                    row.state = (
                        IndexKeyState.ACTIVE if row.pk == filling.pk else IndexKeyState.DRAINING
                    )
                    row.state_since = now
                    row.save(using=self.using, update_fields=["state", "state_since"])
        reset_index_key_ring()
        self.progress.phase("index key", f"queries read index key {filling.hex_id}")
        return self.keys.get(state=IndexKeyState.DRAINING)

    def _retire(self, draining: IndexKey) -> None:
        with transaction.atomic(using=self.using):
            for row in self._locked_keys(pk=draining.pk, state=IndexKeyState.DRAINING):
                row.state, row.state_since = IndexKeyState.RETIRED, self.clock()
                row.save(using=self.using, update_fields=["state", "state_since"])
        reset_index_key_ring()
        self.notes.append(f"retired index key {draining.hex_id}")

    def _clear_retired(self) -> bool:
        """Clear the slot of each retired key whose material is not yet wiped, then wipe it;
        whether there was one. Its slot is cleared only once no process can still be writing
        it (the wait), and only if no newer key has taken the slot meanwhile."""
        unwiped = list(self.keys.filter(state=IndexKeyState.RETIRED).exclude(wrapped_key=None))
        for retired in unwiped:
            self._wait_since(retired.state_since, "stop writing the retired key's slot")
            if not self.keys.filter(slot=retired.slot, state__in=IndexKeyState.LIVE).exists():
                cleared = self._clear_slot(retired.slot)
                self.notes.append(f"cleared slot {retired.slot} ({cleared:,} index values)")
            with transaction.atomic(using=self.using):
                for row in self._locked_keys(pk=retired.pk):
                    row.wrapped_key, row.complete_fields = None, []
                    row.save(using=self.using, update_fields=["wrapped_key", "complete_fields"])
        return bool(unwiped)

    def _locked_keys(self, **conditions: Any) -> list[IndexKey]:
        """The key rows matching ``conditions``, locked for this transaction, each verified: a
        change is signed (``IndexKey.save``), which must not vouch for an edit made outside the
        application. The write lock is taken before the read (a no-op UPDATE): SQLite refuses
        to upgrade a read while another process commits."""
        self.keys.filter(pk=-1).update(slot=F("slot"))
        rows = list(self.keys.select_for_update().filter(**conditions))
        return require_verified_metadata(rows, "change the state of blind-index keys")

    def _clear_slot(self, slot: str) -> int:
        """NULL every index value of ``slot``, one batch per transaction."""
        connection, cleared = connections[self.using], 0
        for table in self.tables:
            name, pk = _quote(connection, table.table), _quote(connection, table.pk_column)
            for indexed in table.indexed:
                column = _quote(connection, indexed.slot_columns[slot])
                sql = (
                    f"UPDATE {name} SET {column} = NULL WHERE {pk} IN "  # noqa: S608
                    f"(SELECT {pk} FROM {name} WHERE {column} IS NOT NULL LIMIT %s)"
                )
                while True:
                    with transaction.atomic(using=self.using), connection.cursor() as cursor:
                        cursor.execute(sql, [self.batch_size])
                        count = cursor.rowcount
                    cleared += count
                    if count <= 0:
                        break
        return cleared

    def _wait_since(self, since: datetime, why: str) -> None:
        """Sleep until ``since`` + 2 x ``KEY_CACHE_SECONDS``: by then every process has reloaded
        its index key ring at least once after the change made at ``since``."""
        until = since + timedelta(seconds=2 * encryption_settings.key_cache_seconds)
        while (remaining := (until - self.clock()).total_seconds()) > 0:
            self.progress.phase("wait", f"{remaining:.0f}s for every process to {why}")
            self.sleep(min(remaining, 5.0))

    def _report(self, walk: RotationReport | None) -> RotationReport:
        note = "index-key rotation: " + "; ".join(self.notes) if self.notes else ""
        if walk is None:
            return RotationReport(status=RunStatus.COMPLETED, timestamp=self.clock(), reason=note)
        return replace(walk, reason="; ".join(filter(None, [walk.reason, note])))


def index_key_rotation(
    using: str | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
    trigger: str = "api",
) -> IndexKeyRotation:
    """The index-key rotation over every indexed field of the installed models."""
    return IndexKeyRotation(
        index_tables(discover_indexed()),
        using=using or index_key_database(),
        batch_size=batch_size,
        progress=progress,
        trigger=trigger,
    )


def with_index_key_rotation(report: RotationReport, index: RotationReport) -> RotationReport:
    """A data-key rotation's report that also tells of the index-key rotation after it (the
    email and the command show it): its key, rows re-indexed, or why it stopped."""
    if index.status == RunStatus.COMPLETED:
        key, rows = index.new_key_id or "(none new)", index.records_reencrypted
        told = f"index key {key}: {rows:,} rows re-indexed"
        if index.reason:
            told += f" ({index.reason})"
    else:
        why = index.reason or "see its run"
        told = f"the index-key rotation did not finish ({index.status}): {why}"
    status = report.status if index.status == RunStatus.COMPLETED else RunStatus.FAILED
    return replace(report, status=status, reason="; ".join(filter(None, [report.reason, told])))
