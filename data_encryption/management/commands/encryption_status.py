"""``manage.py encryption_status``: keys, values per key per model and field, recent runs."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from data_encryption.exceptions import KeyConfigurationError
from data_encryption.models import DataKey, RunKind, RunStatus
from data_encryption.rotation import census_totals
from data_encryption.rotation.conversion import columns_in_transition
from data_encryption.rotation.conversion_report import legacy_left
from data_encryption.rotation.history import recent_runs
from data_encryption.services import get_rotation_service_class

OK = ("verified", None)  # None: a key made while the report was read


def status_report(using: str, *, census: bool = True, runs: int = 5) -> dict[str, Any]:
    """What ``encryption_status`` shows, as data. Read-only."""
    now = timezone.now()
    service = get_rotation_service_class()(using=using)
    audits = {audit.key_id: audit for audit in service.key_audit()}
    keys = []
    for key in DataKey.objects.using(using).order_by("-created_at"):
        audit = audits.get(key.key_id)  # None: a key made between the two reads
        keys.append(
            {
                "key_id": key.hex_id,
                "state": key.state,
                "age_days": (now - key.created_at).days,
                "created_at": key.created_at.isoformat(),
                "primary_since": key.primary_since.isoformat() if key.primary_since else None,
                "retired_at": key.retired_at.isoformat() if key.retired_at else None,
                "destroyed_at": key.destroyed_at.isoformat() if key.destroyed_at else None,
                "master_key_fingerprint": key.master_key_fingerprint,
                "metadata": audit.metadata if audit else None,
                "unwraps": audit.unwraps if audit else None,
            }
        )
    report: dict[str, Any] = {"keys": keys}
    if census:
        counts = service.census()
        report["census"] = counts
        report["values_per_key"] = census_totals(counts)
        # Columns in transition: the legacy values encrypt_existing has yet to convert.
        report["legacy_left"] = legacy_left(counts, columns_in_transition())
    report["runs"] = recent_runs(using, runs)
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
        using = options["database"]
        try:
            report = status_report(using, census=options["census"])
        except KeyConfigurationError as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        write, style = self.stdout.write, self.style
        write(style.MIGRATE_HEADING("Data keys"))
        for key in report["keys"]:
            problems = [f"metadata {key['metadata']}"] if key["metadata"] not in OK else []
            if key["unwraps"] is False:
                problems.append(f"no master key unwraps it ({key['master_key_fingerprint']})")
            write(
                f"  {key['key_id']}  {key['state']:<12} {key['age_days']:>4} days old  "
                f"created {key['created_at'][:19]}"
                + (style.ERROR(f"  [{'; '.join(problems)}]") if problems else "")
            )
        if any(key["metadata"] not in OK or key["unwraps"] is False for key in report["keys"]):
            write(style.ERROR(f"  See 'manage.py check --database {using}' for what to do."))
        if "census" in report:
            write(style.MIGRATE_HEADING("Values per key"))
            for label, fields in report["census"].items():
                for name, counts in fields.items():
                    shown = ", ".join(f"{k}: {v:,}" for k, v in counts.items()) or "no rows"
                    write(f"  {label}.{name}: {shown}")
        if report.get("legacy_left"):
            write(style.MIGRATE_HEADING("Columns in transition"))
            for column, left in report["legacy_left"].items():
                write(
                    f"  {column}: {left:,} legacy values left (run encrypt_existing {column})"
                    if left
                    else style.SUCCESS(
                        f"  {column}: none left; the transition is over: remove it from "
                        "DATA_ENCRYPTION_LEGACY_COLUMNS and deploy"
                    )
                )
        write(style.MIGRATE_HEADING("Recent runs"))
        if not report["runs"]:
            write("  none yet")
        for run in report["runs"]:
            write(
                f"  #{run['id']} {run['status']:<10} {run['started_at'][:19]}  "
                + ("conversion, " if run["kind"] == RunKind.CONVERSION else "")
                + f"{run['records_processed']:,} records, {run['failed_records']:,} failed"
                + (
                    f", phase {run['phase']}, {run['chunks_done']}/{run['chunks']} chunks done"
                    if run["status"] == RunStatus.RUNNING
                    else ""
                )
                + (f"  ({run['reason']})" if run["reason"] else "")
            )
