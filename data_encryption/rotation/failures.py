"""A run's failures: the values a walk could not read or rewrite, each recorded as a
``RotationFailure`` row and a log line by model, pk and field (never the value; the row itself is
left as it was), and read back for the report."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..models import RotationFailure, RotationRun, format_key_id
from .report import MAX_FAILURES_IN_REPORT, ReportedFailure

logger = logging.getLogger(__name__)

#: One failure as a batch finds it: the row's pk, the field, the value's key id, why.
Failure = tuple[Any, str, int | None, str]


def record_failures(using: str, run: RotationRun, label: str, failures: Sequence[Failure]) -> None:
    """Record the failures of one batch of model ``label`` (in the batch's transaction); a
    failure recorded before (a batch walked again after a crash) is kept once."""
    if not failures:
        return
    RotationFailure.objects.using(using).bulk_create(
        [
            RotationFailure(
                run=run, model=label, pk_value=str(pk), field=name, key_id=key_id, error=error
            )
            for pk, name, key_id, error in failures
        ],
        ignore_conflicts=True,
    )
    for pk, name, key_id, _error in failures:
        logger.error(
            "%s %s: %s pk=%s field %s could not be read or re-encrypted (key %s); left as it was.",
            run.kind.capitalize(),
            run.pk,
            label,
            pk,
            name,
            format_key_id(key_id),
        )


def reported_failures(using: str, run: RotationRun) -> list[ReportedFailure]:
    """The first ``MAX_FAILURES_IN_REPORT`` failures, as the report lists them."""
    failures = RotationFailure.objects.using(using).filter(run_id=run.pk)
    return [
        ReportedFailure.of(
            failure.model, failure.pk_value, failure.field, failure.key_id, failure.error
        )
        for failure in failures[:MAX_FAILURES_IN_REPORT]
    ]
