"""Saving a row with an indexed encrypted field (``blind_index=True, unique=True,
normaliser="digits"``: the SSN of issue 11) against the same save of the same encrypted field
without the index. Each sample changes the SSN of the same rows and calls ``save()`` on each,
inside one transaction, so the time is the save's own work (encrypting, hashing under the index
key, the wider UPDATE and its index) rather than one commit per row, which would hide it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from django.db import models, transaction

from bench.benchapp.models import IndexedSaveRecord, UnindexedSaveRecord
from bench.harness import Comparison, Target, Variant

from . import Options

PLAIN = "save, EncryptedCharField"
INDEXED = "save, EncryptedCharField(blind_index=True, unique=True)"

SAVES = 1_000


def build(options: Options) -> Comparison:
    saves = min(SAVES, options.rows)
    return Comparison(
        name=f"save() {saves:,} rows, an 11-character SSN",
        unit="save",
        operations=saves,
        variants=[
            Variant(PLAIN, _saves(UnindexedSaveRecord, saves)),
            Variant(INDEXED, _saves(IndexedSaveRecord, saves), Target(max_ratio=1.3)),
        ],
    )


def _saves(model: type[models.Model], count: int) -> Callable[[], object]:
    model._default_manager.all().delete()
    model._default_manager.bulk_create(model(ssn=_ssn(0, index)) for index in range(count))
    rows: list[Any] = list(model._default_manager.order_by("pk"))
    rounds = itertools.count(1)

    def run() -> int:
        # A new SSN for every row in every round: distinct across rows, so unique holds.
        round_ = next(rounds)
        with transaction.atomic():
            for index, row in enumerate(rows):
                row.ssn = _ssn(round_, index)
                row.save()
        return len(rows)

    return run


def _ssn(round_: int, index: int) -> str:
    digits = f"{round_ % 1000:03d}{index:06d}"
    return f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"
