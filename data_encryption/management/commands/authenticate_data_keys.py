"""``manage.py authenticate_data_keys``: sign data-key and blind-index-key rows' metadata as they
stand, after an operator has checked them (rows migrated without a master key, or repaired by
hand)."""

from __future__ import annotations

import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from data_encryption.exceptions import KeyConfigurationError
from data_encryption.models import format_key_id
from data_encryption.services import get_rotation_service_class


class Command(BaseCommand):
    help = (
        "Authenticate the metadata (state, dates, wrapped key, fingerprint) of data keys and "
        "blind-index keys as they stand, under the current DB_ENCRYPTION_KEY. Without key ids: "
        "every key that has no MAC (migrated without a master key). With key ids: those keys, "
        "even if their MAC fails. Check the rows against your latest key backup first: this "
        "vouches for them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key_ids", nargs="*", help="Data key ids (8 hex digits).")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument(
            "--no-input",
            "--noinput",
            action="store_false",
            dest="interactive",
            help="Do not prompt the user for input of any kind.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        key_ids = [_parse_key_id(text) for text in options["key_ids"]] or None
        service = get_rotation_service_class()(using=options["database"])
        try:
            audits = service.key_audit() + service.index_key_audit()
        except KeyConfigurationError as exc:
            raise CommandError(str(exc)) from None
        chosen = [
            audit
            for audit in audits
            if (audit.key_id in key_ids if key_ids else audit.metadata == "unauthenticated")
        ]
        if key_ids and len(chosen) < len(set(key_ids)):
            raise _unknown(sorted(set(key_ids) - {audit.key_id for audit in chosen}))
        if not chosen:
            self.stdout.write("Every key's metadata is authenticated already.")
            return
        self.stdout.write("The metadata of these keys will be signed as it stands:")
        for audit in chosen:
            self.stdout.write(
                f"  {audit.hex_id}  {audit.state:<12} created {audit.created_at:%Y-%m-%d %H:%M}  "
                f"metadata {audit.metadata}"
            )
        if options["interactive"]:
            answer = input("Have you checked them against a key backup? Type 'yes' to continue: ")
            if answer != "yes":
                raise CommandError("Nothing was signed.")
        try:
            done = service.authenticate_keys(key_ids)
        except KeyConfigurationError as exc:
            raise CommandError(str(exc)) from None
        if done.unknown:  # deleted since the audit
            raise _unknown(done.unknown)
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(done.authenticated)} keys authenticated; {len(done.already)} were already."
            )
        )


def _parse_key_id(text: str) -> int:
    if not re.fullmatch(r"[0-9a-fA-F]{8}", text):
        raise CommandError(
            f"{text!r} is not a data key id (8 hex digits, as 'manage.py encryption_status' "
            "shows them)."
        )
    return int(text, 16)


def _unknown(key_ids: list[int]) -> CommandError:
    return CommandError(
        "No data key or blind-index key with id "
        + ", ".join(format_key_id(key_id) for key_id in key_ids)
        + "; nothing was signed. 'manage.py encryption_status' lists the keys."
    )
