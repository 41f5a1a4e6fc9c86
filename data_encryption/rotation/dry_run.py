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
from .census import NULL, per_field, undestroyed_key_ids
from .progress import Progress
from .report import ReportedFailure, RotationReport
from .rows import count_rows, pages
from .tables import Table


class Walk(Protocol):
    """What a dry run needs of a rotation: where to read, what, how much at a time."""

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
    census, models, failures = {}, {}, []
    for table in rotation.tables:
        rotation.progress.start_table(table.label, count_rows(rotation.connection, table), 0)
        counts: Counter[tuple[str, str]] = Counter()
        tally = {"rows": 0, "reencrypted": 0, "failed": 0}
        for rows in pages(rotation.connection, table, rotation.batch_size):
            # No new key exists yet: every value would be rewritten, so every one is opened.
            batch = examine_rows(
                rows,
                table.columns,
                None,
                None,
                rewrite=False,
                bindings=table.bindings,
                legacy=table.legacy,
            )
            counts.update(batch.census)
            tally["rows"] += batch.rows
            tally["reencrypted"] += _would_rewrite(batch)
            tally["failed"] += batch.failed_rows
            failures += [ReportedFailure.of(table.label, *failure) for failure in batch.failures]
            rotation.progress.advance(table.label, batch.rows)
        rotation.progress.end_table(table.label)
        census[table.label] = per_field(table, counts)
        models[table.label] = tally
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


def _would_rewrite(batch: Batch) -> int:
    """Values a real run would re-seal: with no target key, every value not null that opened."""
    opened = sum(count for (_, label), count in batch.census.items() if label != NULL)
    return opened - len(batch.failures)
