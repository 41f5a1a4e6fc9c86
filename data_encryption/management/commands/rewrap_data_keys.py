"""``manage.py rewrap_data_keys``: finish a master-key change by re-wrapping the data keys."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from data_encryption.backups import BackupError
from data_encryption.exceptions import KeyConfigurationError
from data_encryption.models import format_key_id
from data_encryption.rotation import RotationRunning
from data_encryption.services import get_rotation_service_class


class Command(BaseCommand):
    help = (
        "Re-wrap every data key and blind-index key under the current DB_ENCRYPTION_KEY. Run it "
        "after putting the new master key in DB_ENCRYPTION_KEY and the old one in "
        "DB_ENCRYPTION_KEY_FALLBACKS; "
        "the key backup files are re-wrapped and re-signed too. Afterwards the fallback can be "
        "removed. Refuses while a rotation runs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args: Any, **options: Any) -> None:
        service = get_rotation_service_class()(using=options["database"])
        try:
            done = service.rewrap_master_key()
        except (BackupError, KeyConfigurationError, RotationRunning) as exc:
            raise CommandError(str(exc)) from None
        if done.backup_path is not None:
            self.stdout.write(f"Key backup (before re-wrapping): {done.backup_path}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(done.rewrapped)} data keys re-wrapped under master key {done.fingerprint}; "
                f"{len(done.current)} were already."
            )
        )
        for key_id in done.rewrapped:
            self.stdout.write(f"  {format_key_id(key_id)}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(done.index_rewrapped)} blind-index keys re-wrapped; "
                f"{len(done.index_current)} were already."
            )
        )
        for key_id in done.index_rewrapped:
            self.stdout.write(f"  {format_key_id(key_id)}")
        if done.pending_key_id is not None:
            self.stdout.write(
                f"The new key {format_key_id(done.pending_key_id)} of a rotation that stopped "
                "before activating it was re-wrapped too; rerun rotate_encryption_key to finish it."
            )
        if done.backups is not None:
            self.stdout.write(
                f"Key backup files re-wrapped and re-signed: {done.backups.summary()}"
            )
            for path, why in done.backups.left:
                self.stdout.write(self.style.WARNING(f"  not re-wrapped: {path}: {why}"))
            if done.backups.left:
                self.stdout.write(
                    self.style.WARNING(
                        "Until these files are re-wrapped (configure the master key that signed "
                        "them and rerun) or deleted, the old master key still opens them."
                    )
                )
        self.stdout.write(
            "Values written directly with the old master key (legacy Fernet tokens) still need "
            "it: run rotate_encryption_key before removing DB_ENCRYPTION_KEY_FALLBACKS."
        )
