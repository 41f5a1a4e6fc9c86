"""The rotation history: recent runs with their counts and chunk progress, for status views."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Count, Q

from ..models import RotationChunk, RotationRun


def recent_runs(using: str, limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` runs with their counts and how many of their chunks are done."""
    recent: Sequence[RotationRun] = list(
        RotationRun.objects.using(using).order_by("-started_at", "-id")[:limit]
    )
    chunks: dict[int, dict[str, int]] = {
        row["run"]: {"total": row["total"], "done": row["done"]}
        for row in RotationChunk.objects.using(using)
        .filter(run__in=[run.pk for run in recent])
        .values("run")
        .annotate(total=Count("id"), done=Count("id", filter=Q(done=True)))
    }
    return [
        {
            "id": run.pk,
            "kind": run.kind,
            "status": run.status,
            "phase": run.phase,
            "chunks_done": chunks.get(run.pk, {}).get("done", 0),
            "chunks": chunks.get(run.pk, {}).get("total", 0),
            "started_at": run.started_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "records_processed": run.records_processed,
            "failed_records": run.failed_records,
            "reason": run.reason,
        }
        for run in recent
    ]
