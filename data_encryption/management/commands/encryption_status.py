"""``manage.py encryption_status``: keys, values per key per model and field, blind-index keys
and whether each indexed field's index is complete, recent runs."""

from __future__ import annotations

import json
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from data_encryption.exceptions import KeyConfigurationError
from data_encryption.index_keys import SLOTS
from data_encryption.master_key import master_keys
from data_encryption.models import DataKey, IndexKey, IndexKeyState, RunKind, RunStatus
from data_encryption.rotation import census_totals
from data_encryption.rotation.conversion import columns_in_transition
from data_encryption.rotation.conversion_report import legacy_left
from data_encryption.rotation.history import recent_runs
from data_encryption.services import get_rotation_service_class

OK = ("verified", None)  # None: a key made while the report was read


def indexed_fields() -> list[Any]:
    """Every field with a blind index, on the model that declares it."""
    return [
        field
        for model in apps.get_models()
        for field in model._meta.local_concrete_fields
        if getattr(field, "blind_index", False)
    ]


def index_status(using: str, *, count_missing: bool = False) -> dict[str, Any]:
    """The blind-index keys, and per indexed field whether its index is complete under the
    active key (as ``complete_fields`` records it; with ``count_missing``, also the rows that
    have a value but no index, which reads each indexed table)."""
    service = get_rotation_service_class()(using=using)
    audits = {audit.key_id: audit for audit in service.index_key_audit()}
    rows = list(IndexKey.objects.using(using).order_by("-created_at", "-key_id"))
    keys = [
        {
            "key_id": row.hex_id,
            "slot": row.slot,
            "state": row.state,
            "since": row.state_since.isoformat(),
            "created_at": row.created_at.isoformat(),
            "master_key_fingerprint": row.master_key_fingerprint,
            "metadata": audits[row.key_id].metadata if row.key_id in audits else None,
            "unwraps": audits[row.key_id].unwraps if row.key_id in audits else None,
        }
        for row in rows
    ]
    active = next((row for row in rows if row.state == IndexKeyState.ACTIVE), None)
    fields = []
    for field in indexed_fields():
        context = field.index_record
        entry: dict[str, Any] = {
            "field": f"{field.model._meta.label}.{field.name}",
            "context": context,
            "complete": active is not None and context in active.complete_fields,
        }
        if count_missing and active is not None:
            column = field.index_columns[SLOTS.index(active.slot)]
            entry["rows_without_index"] = (
                field.model._base_manager.using(using)
                .filter(**{f"{field.name}__isnull": False, f"{column.name}__isnull": True})
                .count()
            )
        fields.append(entry)
    return {
        "index_keys": keys,
        "active_index_key": active.hex_id if active else None,
        "indexed_fields": fields,
    }


def master_key_status(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The configured master keys, current first: what each is (a local key's setting, a
    provider and its key, never key material) and how many data keys it wraps now."""
    return [
        {
            "fingerprint": master.fingerprint,
            "description": master.description,
            "setting": master.setting,
            "role": "wraps new keys" if index == 0 else "unwraps only",
            "data_keys": sum(key["master_key_fingerprint"] == master.fingerprint for key in keys),
        }
        for index, master in enumerate(master_keys())
    ]


def status_report(
    using: str, *, census: bool = True, runs: int = 5, count_missing: bool = False
) -> dict[str, Any]:
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
                "problem": audit.problem if audit else "",
            }
        )
    report: dict[str, Any] = {
        "master_keys": master_key_status(keys),
        "keys": keys,
        **index_status(using, count_missing=count_missing),
    }
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
        parser.add_argument(
            "--count-missing-index",
            action="store_true",
            dest="count_missing",
            help="Count each indexed field's rows that have a value but no blind index under "
            "the active index key (it reads every indexed table).",
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args: Any, **options: Any) -> None:
        using = options["database"]
        try:
            report = status_report(
                using, census=options["census"], count_missing=options["count_missing"]
            )
        except KeyConfigurationError as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        write, style = self.stdout.write, self.style
        write(style.MIGRATE_HEADING("Master keys"))
        for master in report["master_keys"]:
            write(
                f"  {master['fingerprint']}  {master['description']} ({master['setting']}): "
                f"{master['role']}, {master['data_keys']} data keys under it"
            )
        write(style.MIGRATE_HEADING("Data keys"))
        for key in report["keys"]:
            write(
                f"  {key['key_id']}  {key['state']:<12} {key['age_days']:>4} days old  "
                f"created {key['created_at'][:19]}" + self._problems(key)
            )
        if any(key["metadata"] not in OK or key["unwraps"] is False for key in report["keys"]):
            write(style.ERROR(f"  See 'manage.py check --database {using}' for what to do."))
        self._write_index_status(report, using)
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

    def _problems(self, key: dict[str, Any]) -> str:
        """What is wrong with a key's row, as a red note ("" when nothing)."""
        problems = [f"metadata {key['metadata']}"] if key["metadata"] not in OK else []
        if key["unwraps"] is False and key.get("problem"):
            problems.append(key["problem"])
        elif key["unwraps"] is False:
            problems.append(f"no master key unwraps it ({key['master_key_fingerprint']})")
        return self.style.ERROR(f"  [{'; '.join(problems)}]") if problems else ""

    def _write_index_status(self, report: dict[str, Any], using: str) -> None:
        if not report["index_keys"] and not report["indexed_fields"]:
            return  # no blind index here: nothing to say
        write, style = self.stdout.write, self.style
        write(style.MIGRATE_HEADING("Blind-index keys"))
        if not report["index_keys"]:
            write("  none yet (the first is made on first use)")
        for key in report["index_keys"]:
            write(
                f"  {key['key_id']}  slot {key['slot']}  {key['state']:<9} since "
                f"{key['since'][:19]}" + self._problems(key)
            )
        if report["indexed_fields"]:
            write(style.MIGRATE_HEADING("Indexed fields (under the active index key)"))
        for field in report["indexed_fields"]:
            missing = field.get("rows_without_index")
            if missing:
                state = style.WARNING(
                    f"{missing:,} rows without an index: run rebuild_blind_index {field['field']}"
                )
            elif field["complete"] or missing == 0:
                state = style.SUCCESS("complete")
            else:
                state = "not yet checked (the first query checks it; --count-missing-index)"
            write(f"  {field['field']}: {state}")
