"""The dry run: the rotation's walk with writing turned off. The same reads, decryptions and
census as a real run; no key is made, nothing is written, the report says what would happen."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from ..models import DataKey, KeyState
from .batch import Batch, examine_rows
from .census import NULL, Census, per_field, undestroyed_key_ids
from .progress import Progress
from .report import ReportedFailure, RotationReport
from .rows import count_rows, pages
from .tables import Table


class Walk(Protocol):
    """What a dry run needs of a rotation or conversion: where to read, what, how much at a
    time."""

    using: str
    tables: list[Table]
    connection: Any
    batch_size: int
    full_scope: bool
    progress: Progress
    clock: Callable[[], datetime]


def dry_run(rotation: Walk) -> RotationReport:
    """What ``rotation.run()`` would report, found without changing anything."""
    started = time.monotonic()
    primary = DataKey.objects.using(rotation.using).filter(state=KeyState.PRIMARY).first()
    old_ids = undestroyed_key_ids(rotation.using)
    census, models, failures = walk_without_writing(rotation)
    retiring = not any(tally["failed"] for tally in models.values()) and rotation.full_scope
    return RotationReport.from_dry_run(
        models=models,
        census=census,
        failures=failures,
        old_key_ids=old_ids,
        would_retire=[
            key_id for key_id in old_ids if retiring and primary and key_id != primary.key_id
        ],
        now=rotation.clock(),
        elapsed=time.monotonic() - started,
    )


def walk_without_writing(
    walk: Walk, *, only_legacy: bool = False
) -> tuple[Census, dict[str, dict[str, int]], list[ReportedFailure]]:
    """The walk's pages read, and each value it would rewrite opened (with ``only_legacy``, a
    conversion's: the legacy values alone), nothing written: each table's census, its counts
    (rows, values that would be rewritten, rows that would fail) and the failures."""
    census, models, failures = {}, {}, []
    for table in walk.tables:
        walk.progress.start_table(table.label, count_rows(walk.connection, table), 0)
        counts: Counter[tuple[str, str]] = Counter()
        tally = {"rows": 0, "reencrypted": 0, "failed": 0}
        for rows in pages(walk.connection, table, walk.batch_size):
            # No target key: every value the run would rewrite is opened, none is sealed.
            batch = examine_rows(
                rows,
                table.columns,
                None,
                None,
                rewrite=False,
                bindings=table.bindings,
                legacy=table.legacy,
                only_legacy=only_legacy,
            )
            counts.update(batch.census)
            tally["rows"] += batch.rows
            tally["reencrypted"] += _would_rewrite(batch, only_legacy)
            tally["failed"] += batch.failed_rows
            failures += [ReportedFailure.of(table.label, *failure) for failure in batch.failures]
            walk.progress.advance(table.label, batch.rows)
        walk.progress.end_table(table.label)
        census[table.label] = per_field(table, counts)
        models[table.label] = tally
    return census, models, failures


def _would_rewrite(batch: Batch, only_legacy: bool) -> int:
    """Values a real run would re-seal: each value opened (not null; with ``only_legacy``, a
    legacy value) that did not fail."""
    opened = sum(
        count
        for (name, label), count in batch.census.items()
        if label != NULL and (not only_legacy or batch.legacy_labels.get(name) == label)
    )
    return opened - len(batch.failures)
