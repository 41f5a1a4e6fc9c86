"""``manage.py rewrap_data_keys``: finish a master-key change by re-wrapping the data keys."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from data_encryption.backups import BackupError, write_backup
from data_encryption.conf import encryption_settings
from data_encryption.exceptions import KeyConfigurationError
from data_encryption.keys import rewrap_data_keys
from data_encryption.master_key import master_keys
from data_encryption.models import format_key_id


class Command(BaseCommand):
    help = (
        "Re-wrap every data key under the current DB_ENCRYPTION_KEY. Run it after putting the "
        "new master key in DB_ENCRYPTION_KEY and the old one in DB_ENCRYPTION_KEY_FALLBACKS; "
        "afterwards the fallback can be removed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args: Any, **options: Any) -> None:
        using = options["database"]
        try:
            if encryption_settings.backup_dir is not None:
                path = write_backup(using=using)
                self.stdout.write(f"Key backup (before re-wrapping): {path}")
            rewrapped, current = rewrap_data_keys(using)
        except (BackupError, KeyConfigurationError) as exc:
            raise CommandError(str(exc)) from None
        fingerprint = master_keys()[0].fingerprint
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(rewrapped)} data keys re-wrapped under master key {fingerprint}; "
                f"{len(current)} were already."
            )
        )
        for key_id in rewrapped:
            self.stdout.write(f"  {format_key_id(key_id)}")
        self.stdout.write(
            "Values written directly with the old master key (legacy Fernet tokens) still need "
            "it: run rotate_encryption_key before removing DB_ENCRYPTION_KEY_FALLBACKS."
        )
