"""``manage.py rotate_encryption_key``: a thin door onto ``KeyRotationService.rotate``."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    OutputWrapper,
)
from django.db import DEFAULT_DB_ALIAS

from data_encryption.conf import ROTATION_OPTIONS
from data_encryption.models import RunStatus
from data_encryption.rotation import Progress, RotationReport
from data_encryption.services import get_rotation_service_class


class TerminalProgress(Progress):
    """A progress bar with rows/s and an ETA on a terminal; a few plain lines otherwise."""

    WIDTH = 30

    def __init__(self, stream: OutputWrapper, is_terminal: bool, verbosity: int) -> None:
        self.stream, self.is_terminal, self.verbosity = stream, is_terminal, verbosity
        self.total = self.done = self.started_with = 0
        self.started = self.last_draw = 0.0

    def phase(self, name: str, detail: str = "") -> None:
        if self.verbosity >= 1:
            self._line(f"{name}: {detail}" if detail else name)

    def start_table(self, label: str, total: int, done: int) -> None:
        self.label, self.total, self.done, self.started_with = label, total, done, done
        self.started = self.last_draw = time.monotonic()
        if self.verbosity >= 1 and not self.is_terminal:
            resumed = f" (resuming after {done:,})" if done else ""
            self._line(f"{label}: {total:,} rows{resumed}")

    def advance(self, label: str, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if self.verbosity >= 1 and self.is_terminal and now - self.last_draw >= 0.1:
            self.last_draw = now
            self._draw(now)

    def end_table(self, label: str) -> None:
        if self.verbosity < 1:
            return
        if self.is_terminal:
            self._draw(time.monotonic())
            self.stream.write("")  # OutputWrapper ends the bar's line
        else:
            elapsed = max(time.monotonic() - self.started, 1e-9)
            rate = (self.done - self.started_with) / elapsed
            self._line(f"{label}: {self.done:,} rows done ({rate:,.0f} rows/s)")

    def _draw(self, now: float) -> None:
        total = max(self.total, self.done, 1)
        filled = int(self.WIDTH * self.done / total)
        elapsed = max(now - self.started, 1e-9)
        rate = (self.done - self.started_with) / elapsed
        eta = (total - self.done) / rate if rate else 0.0
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
            f"{100 * self.done / total:5.1f}% {self.done:,}/{total:,} rows "
            f"{rate:,.0f} rows/s ETA {int(eta) // 60}:{int(eta) % 60:02d}",
            ending="",
        )
        self.stream.flush()

    def _line(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def add_walk_arguments(parser: CommandParser, verb: str) -> None:
    """``--batch-size`` and ``--database``, as every command that walks tables takes them."""
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="Rows per batch (one transaction each). Default ENCRYPTION_KEY_ROTATION"
        f"['BATCH_SIZE'] or {ROTATION_OPTIONS['BATCH_SIZE'].default}.",
    )
    parser.add_argument(
        "--database",
        default=DEFAULT_DB_ALIAS,
        help=f'The database to {verb}. Defaults to the "default" database.',
    )


def walk_service(command: BaseCommand, options: dict[str, Any]) -> Any:
    """The rotation service a command that walks tables calls, from the options of
    ``add_walk_arguments``, with the progress bar on a terminal (none with ``--json``)."""
    batch_size = options["batch_size"]
    if batch_size is not None and batch_size < 1:
        raise CommandError("--batch-size must be a positive number of rows.")
    is_terminal = hasattr(command.stdout, "isatty") and command.stdout.isatty()
    verbosity = 0 if options.get("json") else options["verbosity"]
    return get_rotation_service_class()(
        using=options["database"],
        batch_size=batch_size,
        progress=TerminalProgress(command.stdout, is_terminal, verbosity),
    )


class Command(BaseCommand):
    help = (
        "Rotate the data encryption key: back up the keys, make a new primary key, re-encrypt "
        "every configured field in batches, retire old keys the census proves unused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Read and decrypt everything and report what would happen; write nothing.",
        )
        parser.add_argument("--force", action="store_true", help="Do not ask for confirmation.")
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not prompt the user for input of any kind (here, the same as --force).",
        )
        add_walk_arguments(parser, "rotate")
        parser.add_argument(
            "--model",
            action="append",
            dest="models",
            metavar="APP_LABEL.MODEL",
            help="Only these models (repeatable). Such a run retires no key.",
        )
        parser.add_argument(
            "--index-keys",
            action="store_true",
            default=None,
            help="Rotate the blind-index key too, after the data key (default "
            "ENCRYPTION_KEY_ROTATION['ROTATE_INDEX_KEYS']).",
        )
        parser.add_argument(
            "--index-keys-only",
            action="store_true",
            help="Rotate only the blind-index key (or finish an interrupted index-key rotation).",
        )
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = options["batch_size"]
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be a positive number of rows.")
        dry_run, verbosity = options["dry_run"], options["verbosity"]
        is_terminal = hasattr(self.stdout, "isatty") and self.stdout.isatty()
        progress = TerminalProgress(self.stdout, is_terminal, 0 if options["json"] else verbosity)
        service = get_rotation_service_class()(
            using=options["database"], batch_size=batch_size, progress=progress
        )
        asks = not dry_run and not options["force"] and options["interactive"]
        if options["index_keys_only"]:
            if dry_run or options["models"]:
                raise CommandError("--index-keys-only takes neither --dry-run nor --model.")
            report = service.rotate_index_keys(trigger="command")
        elif asks and not self._confirm(service.primary_key_id(), options["database"]):
            self.stdout.write("Rotation cancelled.")
            return
        else:
            report = service.perform_rotation(
                dry_run=dry_run,
                models=options["models"],
                trigger="command",
                index_keys=options["index_keys"],
            )
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2, default=str))
        else:
            self._summary(report)
        if report.status == RunStatus.SKIPPED:
            raise CommandError(f"Nothing was done: {report.reason}.")
        if report.status != RunStatus.COMPLETED:
            raise CommandError(f"Rotation failed: {report.reason or 'see the report above'}.")

    def _confirm(self, primary: str | None, database: str) -> bool:
        self.stdout.write(
            f"This makes a new data key (the primary is now {primary or 'none'}) and re-encrypts "
            f"every configured encrypted field in database '{database}'. A key backup is written "
            "first. The application keeps running meanwhile."
        )
        try:
            self.stdout.write("Type 'yes' to continue, or 'no' to cancel: ", ending="")
            self.stdout.flush()
            answer = input()
        except EOFError:
            self.stderr.write(
                "No answer (standard input is closed). Pass --force or --no-input to rotate "
                "without a prompt."
            )
            return False
        return answer.strip().lower() == "yes"

    def _summary(self, report: RotationReport) -> None:
        write, style = self.stdout.write, self.style
        title = "Dry run" if report.dry_run else "Rotation"
        status = report.status
        painter = {RunStatus.COMPLETED: style.SUCCESS, RunStatus.SKIPPED: style.WARNING}.get(
            status, style.ERROR
        )
        write(painter(f"{title} {status}."))
        if status == RunStatus.SKIPPED:
            write(f"  {report.reason}")
            return
        if report.resumed:
            write(style.WARNING("  Resumed a rotation that a dead process had left running."))
        write(f"  new primary key:    {report.new_key_id or '(none: dry run)'}")
        retired_label = "would retire:" if report.dry_run else "retired keys:"
        write(f"  {retired_label:<19} {', '.join(report.retired_key_ids) or 'none'}")
        if report.destroyed_key_ids:
            write(f"  destroyed keys:     {', '.join(report.destroyed_key_ids)}")
        write(f"  models processed:   {report.models_processed}")
        write(f"  records processed:  {report.records_processed:,}")
        verb = "would re-encrypt" if report.dry_run else "re-encrypted"
        write(f"  {verb + ':':<19} {report.records_reencrypted:,}")
        failed = report.failed_records
        write((style.ERROR if failed else str)(f"  failed records:     {failed:,}"))
        for label, counts in report.models.items():
            write(
                f"    {label}: {counts['rows']:,} rows, {counts['reencrypted']:,} re-encrypted, "
                f"{counts['failed']:,} failed"
            )
        for failure in report.failures:
            write(
                style.ERROR(
                    f"    could not decrypt {failure.model} pk={failure.pk} "
                    f"field={failure.field} (key {failure.key_id or 'unknown'})"
                )
            )
        if report.key_backup_path:
            write(f"  key backup:         {report.key_backup_path}")
        write(f"  duration:           {report.duration_seconds or 0:.2f}s")
        if report.reason:
            write(f"  note:               {report.reason}")
