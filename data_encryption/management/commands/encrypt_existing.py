"""``manage.py encrypt_existing``: a thin door onto ``KeyRotationService.encrypt_existing``."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from data_encryption.legacy import SETTING
from data_encryption.models import RunStatus
from data_encryption.rotation.conversion_report import ConversionReport

from .rotate_encryption_key import add_walk_arguments, walk_service


class Command(BaseCommand):
    help = (
        "Encrypt the existing values of columns in transition (listed in "
        f"{SETTING}) in place, in batches, while the application keeps running. Killed, it "
        "resumes where it stopped when run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "columns",
            nargs="+",
            metavar="APP_LABEL.MODEL[.FIELD]",
            help="The columns to convert; a model alone means each of its columns in transition.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Read and check every legacy value and report what would be converted and what "
            "would fail; write nothing.",
        )
        add_walk_arguments(parser, "convert")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        service = walk_service(self, options)
        try:
            report = service.encrypt_existing(
                options["columns"], dry_run=options["dry_run"], trigger="command"
            )
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2, default=str))
        else:
            self._summary(report)
        if report.status == RunStatus.SKIPPED:
            raise CommandError(f"Nothing was done: {report.reason}.")
        if report.failed_records:
            verb = "would fail" if report.dry_run else "could not be converted"
            raise CommandError(
                f"{report.failed_records} rows {verb} (listed above by pk, each left as it was)."
            )
        if report.status != RunStatus.COMPLETED:
            raise CommandError(f"Conversion failed: {report.reason or 'see the report above'}.")

    def _summary(self, report: ConversionReport) -> None:
        write, style = self.stdout.write, self.style
        title = "Dry run" if report.dry_run else "Conversion"
        painter = {RunStatus.COMPLETED: style.SUCCESS, RunStatus.SKIPPED: style.WARNING}.get(
            report.status, style.ERROR
        )
        write(painter(f"{title} {report.status}."))
        if report.status == RunStatus.SKIPPED:
            write(f"  {report.reason}")
            return
        if report.resumed:
            write(style.WARNING("  Resumed a conversion that a dead process had left running."))
        write(f"  columns:            {', '.join(report.columns)}")
        write(f"  records processed:  {report.records_processed:,}")
        verb = "would convert:" if report.dry_run else "converted:"
        write(f"  {verb:<19} {report.records_reencrypted:,}")
        failed = report.failed_records
        write((style.ERROR if failed else str)(f"  failed records:     {failed:,}"))
        for failure in report.failures:
            write(
                style.ERROR(
                    f"    {failure.model} pk={failure.pk} field={failure.field}: {failure.error}"
                )
            )
        if failed > len(report.failures):
            write(
                style.ERROR(f"    ... and {failed - len(report.failures):,} more (see the admin)")
            )
        write(f"  duration:           {report.duration_seconds or 0:.2f}s")
        heading = "Census before the conversion" if report.dry_run else "Census"
        write(style.MIGRATE_HEADING(heading))
        for label, fields in report.census.items():
            for name, counts in fields.items():
                shown = ", ".join(f"{k}: {v:,}" for k, v in counts.items()) or "no rows"
                write(f"  {label}.{name}: {shown}")
        if not report.dry_run and report.reason:
            painter = style.SUCCESS if not any(report.legacy_left.values()) else style.WARNING
            write(painter(f"  {report.reason[:1].upper()}{report.reason[1:]}."))
