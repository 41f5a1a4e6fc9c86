"""``manage.py rebuild_blind_index``: a thin door onto the service's ``rebuild_blind_index``."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from data_encryption.exceptions import DataEncryptionError
from data_encryption.models import RunStatus
from data_encryption.rotation import RotationReport

from .rotate_encryption_key import add_walk_arguments, walk_service


class Command(BaseCommand):
    help = (
        "Give every row of the indexed fields a blind index under the active index key (and a "
        "key being filled), in batches, while the application keeps running; then mark each "
        "field complete, so its queries answer. Run it after adding blind_index=True to a field "
        "that has rows, or after converting one from plaintext. Killed, it resumes when run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "fields",
            nargs="*",
            metavar="APP_LABEL.MODEL[.FIELD]",
            help="The indexed fields to build (a model alone: each of its indexed fields); "
            "every indexed field when none is named.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count the rows that have a value but no index; write nothing.",
        )
        parser.add_argument(
            "--recompute",
            action="store_true",
            help="Compute every row's index, not only the missing ones, and rewrite those that "
            "differ: for index values written under a key that was lost (restored database).",
        )
        add_walk_arguments(parser, "index")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        service = walk_service(self, options)
        try:
            outcome = service.rebuild_blind_index(
                options["fields"],
                dry_run=options["dry_run"],
                recompute=options["recompute"],
                trigger="command",
            )
        except (ImproperlyConfigured, DataEncryptionError) as exc:
            raise CommandError(str(exc)) from None
        if isinstance(outcome, dict):
            self._missing(outcome, options["json"])
            return
        if options["json"]:
            self.stdout.write(json.dumps(outcome.as_dict(), indent=2, default=str))
        else:
            self._summary(outcome)
        if outcome.status == RunStatus.SKIPPED:
            raise CommandError(f"Nothing was done: {outcome.reason}.")
        if outcome.failed_records:
            raise CommandError(
                f"{outcome.failed_records} rows could not be indexed (listed above by pk, each "
                "left as it was); their fields stay incomplete, so their queries refuse."
            )
        if outcome.status != RunStatus.COMPLETED:
            raise CommandError(f"The rebuild failed: {outcome.reason or 'see the report above'}.")

    def _missing(self, counts: dict[str, int], as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps({"dry_run": True, "missing": counts}, indent=2))
            return
        self.stdout.write(self.style.SUCCESS("Dry run: rows with a value but no index."))
        for label, count in counts.items():
            self.stdout.write(f"  {label}: {count:,}")

    def _summary(self, report: RotationReport) -> None:
        write, style = self.stdout.write, self.style
        painter = {RunStatus.COMPLETED: style.SUCCESS, RunStatus.SKIPPED: style.WARNING}.get(
            report.status, style.ERROR
        )
        write(painter(f"Rebuild {report.status}."))
        if report.status == RunStatus.SKIPPED:
            write(f"  {report.reason}")
            return
        if report.resumed:
            write(style.WARNING("  Resumed a rebuild that a dead process had left running."))
        write(f"  index keys:         {report.new_key_id}")
        write(f"  records processed:  {report.records_processed:,}")
        write(f"  indexed:            {report.records_reencrypted:,}")
        failed = report.failed_records
        write((style.ERROR if failed else str)(f"  failed records:     {failed:,}"))
        for failure in report.failures:
            write(
                style.ERROR(
                    f"    {failure.model} pk={failure.pk} field={failure.field}: {failure.error}"
                )
            )
        write(f"  duration:           {report.duration_seconds or 0:.2f}s")
        if report.reason:
            write(f"  note:               {report.reason}")
