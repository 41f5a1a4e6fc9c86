"""The walk: a run's chunks re-encrypted (or converted) from their cursors, batch by batch, each
batch one transaction: the keyset read, each value decided (``batch``), the compare-and-swap
write, the failures, the chunk's cursor and counts. A rotation walks its chunks in one process
or spreads them over Celery workers (``process_chunk``); a conversion walks the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction

from ..ciphers import AeadCipher
from ..keys import cipher_for
from ..models import RotationChunk, RotationRun
from .batch import Batch, examine_rows
from .failures import record_failures
from .indexes import refuse_duplicates
from .ledger import RunLedger
from .progress import Progress
from .rows import _jsonable_pk, count_rows, read_rows, write_rows
from .tables import Table, table_named


class ChunkWalk:
    """The re-encrypting phase of a run over ``tables`` (``Rotation`` sets what it walks with)."""

    tables: list[Table]
    using: str
    connection: Any
    batch_size: int
    progress: Progress
    ledger: RunLedger
    # A conversion rewrites only the legacy values of columns in transition.
    only_legacy = False

    def pending_chunks(self, run: RotationRun) -> list[RotationChunk]:
        return self.ledger.pending_chunks(run)

    def table(self, label: str) -> Table:
        return table_named(self.tables, label)

    def _process_pending(self, run: RotationRun) -> None:
        """Every chunk not yet done, table by table, with the table's progress shown whole."""
        pending = self.pending_chunks(run)
        walked = self.ledger.models_progress(run)  # rows already done, when resuming
        for label in dict.fromkeys(chunk.model for chunk in pending):
            table = self.table(label)
            done = walked.get(label, {}).get("rows", 0)
            self.progress.start_table(label, count_rows(self.connection, table), done)
            for chunk in pending:
                if chunk.model == label:
                    self.process_chunk(run, chunk)
            self.progress.end_table(label)

    def process_chunk(self, run: RotationRun, chunk: RotationChunk) -> None:
        """Re-encrypt one chunk from its cursor, batch by batch. Safe to run again: the cursor
        moves with each committed batch, and values already under the new key are skipped."""
        if chunk.done:
            return
        table = self.table(chunk.model)
        examine = self._examiner(run, table)
        self.ledger.start_chunk(chunk)
        while True:
            rows = read_rows(self.connection, table, chunk.cursor, self.batch_size, chunk.upper)
            if not rows:
                self.ledger.end_chunk(chunk)
                self.ledger.write_counts(run)
                break
            batch = examine(rows)
            with transaction.atomic(using=self.using):
                refuse_duplicates(self.connection, table, batch)
                write_rows(self.connection, table, batch)
                record_failures(self.using, run, table.label, batch.failures)
                self.ledger.advance_chunk(chunk, _jsonable_pk(batch.last_pk), batch)
                self.ledger.add_counts(run, batch)
            self.progress.advance(table.label, batch.rows)

    def _examiner(self, run: RotationRun, table: Table) -> Callable[[list[Any]], Batch]:
        """What decides a page's writes (an index walk hashes instead of re-encrypting)."""
        key_id, cipher = self._sealing_key(run)
        return lambda rows: examine_rows(
            rows,
            table.columns,
            key_id,
            cipher,
            rewrite=True,
            bindings=table.bindings,
            legacy=table.legacy,
            encrypted=table.encrypted,
            only_legacy=self.only_legacy,
            indexes=table.indexes,
        )

    def _sealing_key(self, run: RotationRun) -> tuple[int, AeadCipher]:
        """The key every rewritten value is sealed under: the run's new key."""
        assert run.new_key_id is not None
        return run.new_key_id, cipher_for(run.new_key_id)
