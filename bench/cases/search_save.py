"""Saving a row with an indexed encrypted field (``blind_index=True, unique=True,
normaliser="digits"``: the SSN of issue 11) against the same save of the same encrypted field
without the index. Each sample changes the SSN of the same rows and calls ``save()`` on each:
inside one transaction, so the time is the save's own work (encrypting, hashing under the index
key, the wider UPDATE and its index), and each in its own transaction, as a web request saves
(one commit, with its disk sync, per save).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from django.db import models, transaction

from bench.benchapp.models import IndexedSaveRecord, UnindexedSaveRecord
from bench.harness import Comparison, Target, Variant

from . import Options

PLAIN = "save in one transaction, EncryptedCharField"
INDEXED = "save in one transaction, EncryptedCharField(blind_index=True, unique=True)"
PLAIN_COMMIT = "save and commit, EncryptedCharField"
INDEXED_COMMIT = "save and commit, EncryptedCharField(blind_index=True, unique=True)"

SAVES = 1_000
# A commit syncs the disk; fewer saves keep a sample short.
COMMITTED_SAVES = 200


def build(options: Options) -> Comparison:
    saves = min(SAVES, options.rows)
    committed = min(COMMITTED_SAVES, saves)
    return Comparison(
        name="save() an 11-character SSN",
        unit="save",
        operations=saves,
        variants=[
            Variant(PLAIN, _saves(UnindexedSaveRecord, saves)),
            Variant(INDEXED, _saves(IndexedSaveRecord, saves), Target(max_ratio=1.3)),
            Variant(
                PLAIN_COMMIT,
                _saves(UnindexedSaveRecord, committed, atomic=False),
                operations=committed,
            ),
            Variant(
                INDEXED_COMMIT,
                _saves(IndexedSaveRecord, committed, atomic=False),
                Target(max_ratio=1.3, reference=PLAIN_COMMIT),
                operations=committed,
            ),
        ],
    )


def _saves(model: type[models.Model], count: int, atomic: bool = True) -> Callable[[], object]:
    # Each variant its own rows (the two of one model apart by their ids' offset).
    offset = 0 if atomic else SAVES
    model._default_manager.filter(pk__gt=offset, pk__lte=offset + count).delete()
    model._default_manager.bulk_create(
        model(pk=offset + index + 1, ssn=_ssn(0, offset + index)) for index in range(count)
    )
    rows: list[Any] = list(
        model._default_manager.filter(pk__gt=offset, pk__lte=offset + count).order_by("pk")
    )
    rounds = itertools.count(1)

    def save_all(round_: int) -> None:
        for index, row in enumerate(rows, offset):
            row.ssn = _ssn(round_, index)
            row.save()

    def run() -> int:
        # A new SSN for every row in every round: distinct across rows, so unique holds.
        round_ = next(rounds)
        if atomic:
            with transaction.atomic():
                save_all(round_)
        else:
            save_all(round_)
        return len(rows)

    return run


def _ssn(round_: int, index: int) -> str:
    digits = f"{round_ % 1000:03d}{index:06d}"
    return f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"
