"""``manage.py restore_encryption_keys <file>``: bring data keys back from a key backup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from data_encryption.backups import BackupError, read_backup_file, restore_backup
from data_encryption.exceptions import KeyConfigurationError
from data_encryption.models import format_key_id


class Command(BaseCommand):
    help = (
        "Restore data keys and blind-index keys from a key backup written by a rotation. "
        "Verifies the file's signature and that every key unwraps with the configured master "
        "keys; idempotent."
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
                loaded = read_backup_file(path)
                self.stdout.write(
                    self.style.SUCCESS(
                        f"{path} is valid: {len(loaded.keys)} keys, "
                        f"{len(loaded.index_keys)} blind-index keys."
                    )
                )
                for entry in loaded.keys:
                    material = "wrapped" if entry.wrapped_key else "no material"
                    self.stdout.write(
                        f"  {format_key_id(entry.key_id)}  {entry.state:<12} {material}"
                    )
                for index_key in loaded.index_keys:
                    self.stdout.write(
                        f"  {index_key.hex_id}  blind-index key, slot {index_key.slot}, "
                        f"{index_key.state}"
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
        index = report.index_keys
        if index is None:
            self.stdout.write(
                self.style.WARNING(
                    "This backup holds no blind-index keys (written before they were backed "
                    "up); the index keys in the database were left as they are. If they were "
                    "lost, queries on indexed fields cannot be answered from the old index: "
                    "build it under the current index key with 'manage.py rebuild_blind_index'."
                )
            )
            return
        self.stdout.write(f"  blind-index keys restored:  {ids(index.restored)}")
        self.stdout.write(f"  blind-index keys unchanged: {ids(index.unchanged)}")
        if index.skipped:
            self.stdout.write(
                "  blind-index keys skipped (retired, or never stored): " + ids(index.skipped)
            )
