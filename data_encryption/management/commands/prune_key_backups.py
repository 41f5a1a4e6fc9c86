"""``manage.py prune_key_backups``: remove destroyed keys' material from the key backup files."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from data_encryption.backups import BackupError, prune_backups
from data_encryption.models import format_key_id


class Command(BaseCommand):
    help = (
        "Remove the material of every data key the database has destroyed from the key backup "
        "files in BACKUP_DIR: a file that still holds other keys is rewritten (re-signed, still "
        "restorable for them), one left with no key material is deleted. Destroying a key is "
        "crypto-erasure only once no backup holds it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Say what would change; change nothing."
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not ask for confirmation.",
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args: Any, **options: Any) -> None:
        using = options["database"]
        try:
            plan = prune_backups(using=using, dry_run=True)
            if not options["dry_run"] and (plan.rewritten or plan.deleted):
                if options["interactive"] and not self._confirmed(plan.summary()):
                    self.stdout.write("Pruning cancelled.")
                    return
                done = prune_backups(using=using)
            else:  # a dry run, or nothing to prune
                done = replace(plan, dry_run=options["dry_run"])
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        verbosity = options["verbosity"]
        for label, paths in (("rewritten", done.rewritten), ("deleted", done.deleted)):
            for path in paths if verbosity >= 1 else ():
                self.stdout.write(f"  {label}: {path}")
        for path, why in done.left:
            self.stdout.write(self.style.WARNING(f"  left as it was: {path}: {why}"))
        if done.key_ids and verbosity >= 1:
            ids = ", ".join(format_key_id(key_id) for key_id in sorted(done.key_ids))
            self.stdout.write(f"Destroyed keys removed from the backups: {ids}")
        self.stdout.write(self.style.SUCCESS(done.summary()))

    def _confirmed(self, summary: str) -> bool:
        self.stdout.write(
            f"{summary.replace('would be', 'will be')}\n"
            "The material of destroyed data keys will be gone from the key backups for good.\n"
        )
        return input("Type 'yes' to continue, or 'no' to cancel: ") == "yes"
