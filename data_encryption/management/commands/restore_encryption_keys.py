"""``manage.py restore_encryption_keys <file>``: bring data keys back from a key backup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from data_encryption.backups import BackupError, read_backup, restore_backup
from data_encryption.exceptions import KeyConfigurationError
from data_encryption.models import format_key_id


class Command(BaseCommand):
    help = (
        "Restore data keys from a key backup written by a rotation. Verifies the file's "
        "signature and that every key unwraps with the configured master keys; idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("backup_file", type=Path)
        parser.add_argument(
            "--dry-run", action="store_true", help="Verify the file and list its keys only."
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["backup_file"]
        try:
            if options["dry_run"]:
                entries = read_backup(path)
                self.stdout.write(self.style.SUCCESS(f"{path} is valid: {len(entries)} keys."))
                for entry in entries:
                    material = "wrapped" if entry.wrapped_key else "no material"
                    self.stdout.write(
                        f"  {format_key_id(entry.key_id)}  {entry.state:<12} {material}"
                    )
                return
            report = restore_backup(path, using=options["database"])
        except (BackupError, KeyConfigurationError) as exc:
            raise CommandError(str(exc)) from None
        ids = lambda values: ", ".join(format_key_id(v) for v in values) or "none"  # noqa: E731
        self.stdout.write(self.style.SUCCESS(f"Restored keys from {path}."))
        self.stdout.write(f"  restored:  {ids(report.restored)}")
        if report.repaired:
            self.stdout.write(f"  made decrypt-only (material intact): {ids(report.repaired)}")
        self.stdout.write(f"  unchanged: {ids(report.unchanged)}")
        if report.skipped:
            self.stdout.write(f"  skipped (destroyed in the backup): {ids(report.skipped)}")
