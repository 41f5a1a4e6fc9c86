"""``manage.py encryption_status``: keys, values per key per model and field, recent runs."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Count, Q
from django.utils import timezone

from data_encryption.models import DataKey, RotationChunk, RotationRun
from data_encryption.rotation import Rotation, census_totals, resolve_tables
from data_encryption.services import get_rotation_service_class


def status_report(using: str, *, census: bool = True, runs: int = 5) -> dict[str, Any]:
    """What ``encryption_status`` shows, as data. Read-only."""
    now = timezone.now()
    keys = [
        {
            "key_id": key.hex_id,
            "state": key.state,
            "age_days": (now - key.created_at).days,
            "created_at": key.created_at.isoformat(),
            "primary_since": key.primary_since.isoformat() if key.primary_since else None,
            "retired_at": key.retired_at.isoformat() if key.retired_at else None,
            "destroyed_at": key.destroyed_at.isoformat() if key.destroyed_at else None,
            "master_key_fingerprint": key.master_key_fingerprint,
        }
        for key in DataKey.objects.using(using).order_by("-created_at")
    ]
    report: dict[str, Any] = {"keys": keys}
    if census:
        service = get_rotation_service_class()(using=using)
        tables = resolve_tables(service._load_model_configurations())
        counts = Rotation(tables, using=using).census()
        report["census"] = counts
        report["values_per_key"] = census_totals(counts)
    recent = list(RotationRun.objects.using(using).order_by("-started_at", "-id")[:runs])
    chunks = {
        row["run"]: row
        for row in RotationChunk.objects.using(using)
        .filter(run__in=[run.pk for run in recent])
        .values("run")
        .annotate(total=Count("id"), done=Count("id", filter=Q(done=True)))
    }
    report["runs"] = [
        {
            "id": run.pk,
            "status": run.status,
            "phase": run.phase,
            "chunks_done": chunks.get(run.pk, {}).get("done", 0),
            "chunks": chunks.get(run.pk, {}).get("total", 0),
            "started_at": run.started_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "records_processed": run.records_processed,
            "failed_records": run.failed_records,
            "dry_run": run.dry_run,
            "reason": run.reason,
        }
        for run in recent
    ]
    return report


class Command(BaseCommand):
    help = "Show each data key with its state and age, values per key per field, and recent runs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print JSON for machines.")
        parser.add_argument(
            "--no-census",
            action="store_false",
            dest="census",
            help="Skip counting values (it reads every configured column).",
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args: Any, **options: Any) -> None:
        report = status_report(options["database"], census=options["census"])
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        write, style = self.stdout.write, self.style
        write(style.MIGRATE_HEADING("Data keys"))
        for key in report["keys"]:
            write(
                f"  {key['key_id']}  {key['state']:<12} {key['age_days']:>4} days old  "
                f"created {key['created_at'][:19]}"
            )
        if "census" in report:
            write(style.MIGRATE_HEADING("Values per key"))
            for label, fields in report["census"].items():
                for name, counts in fields.items():
                    shown = ", ".join(f"{k}: {v:,}" for k, v in counts.items()) or "no rows"
                    write(f"  {label}.{name}: {shown}")
        write(style.MIGRATE_HEADING("Recent rotations"))
        if not report["runs"]:
            write("  none yet")
        for run in report["runs"]:
            write(
                f"  #{run['id']} {run['status']:<10} {run['started_at'][:19]}  "
                f"{run['records_processed']:,} records, {run['failed_records']:,} failed"
                + (
                    f", phase {run['phase']}, {run['chunks_done']}/{run['chunks']} chunks done"
                    if run["status"] == "running"
                    else ""
                )
                + (f"  ({run['reason']})" if run["reason"] else "")
            )
