"""Restoring keys from a backup file (``restore_encryption_keys``): missing data keys come back,
destroyed material comes back, and a key whose material is intact but whose state says it is
gone is made usable again; missing blind-index keys come back to their slots
(``index_restore``). Nothing is written unless the whole file is sound."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from ..index_keys import reset_index_key_ring
from ..keys import key_database, reset_key_ring
from ..master_key import unwrap_with_any
from ..models import DataKey, KeyState, format_key_id
from .document import BackupError, BackupKey, read_backup_file
from .index_restore import IndexKeyRestore, restore_index_keys

# States a key with intact material must not have: the ring skips a "destroyed" key and a census
# may retire it again, so after a restore such a key only decrypts.
_GONE = (KeyState.DESTROYED, KeyState.RETIRED)


@dataclass
class RestoreReport:
    restored: list[int] = field(default_factory=list)
    repaired: list[int] = field(default_factory=list)  # material intact, state made decrypt-only
    unchanged: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # destroyed in the backup: nothing to restore
    # None: the file predates index-key backups (version 1) and holds none.
    index_keys: IndexKeyRestore | None = None


def restore_backup(path: Path, *, using: str | None = None) -> RestoreReport:
    """Bring the keys of a backup file back into the key table. Idempotent.

    A missing key is inserted (as ``decrypt-only``, never a second primary); a destroyed key
    gets its material back; a key present with the same material but marked destroyed or retired
    becomes ``decrypt-only``; a key already present and usable is left alone. A key present with
    *different* material is a conflict and nothing is written.
    """
    using = using or key_database()
    loaded = read_backup_file(path)
    entries = loaded.keys
    report = RestoreReport()
    with transaction.atomic(using=using):
        existing = {
            row.key_id: row
            for row in DataKey.objects.using(using)
            .select_for_update()
            .filter(key_id__in=[entry.key_id for entry in entries])
        }
        for entry in entries:
            row = existing.get(entry.key_id)
            if entry.wrapped_key is None:
                report.skipped.append(entry.key_id)
            elif row is None:
                _insert(entry, using)
                report.restored.append(entry.key_id)
            elif row.wrapped_key is None:
                row.wrapped_key = entry.wrapped_key
                row.master_key_fingerprint = entry.master_key_fingerprint
                _make_decrypt_only(row, using)
                report.restored.append(entry.key_id)
            elif unwrap_with_any(row.key_id, bytes(row.wrapped_key)) != unwrap_with_any(
                entry.key_id, entry.wrapped_key
            ):
                raise BackupError(
                    f"Data key {format_key_id(entry.key_id)} in {path} differs from the key with "
                    "that id in the database; nothing was restored. Investigate before going on."
                )
            elif row.state in _GONE:
                _make_decrypt_only(row, using)
                report.repaired.append(entry.key_id)
            else:
                report.unchanged.append(entry.key_id)
        if loaded.version > 1:
            report.index_keys = restore_index_keys(loaded.index_keys, path, using)
    reset_key_ring()
    reset_index_key_ring()
    return report


def _make_decrypt_only(row: DataKey, using: str) -> None:
    # Saved whole (not a QuerySet.update), so whatever DataKey.save() keeps current stays so.
    row.state = KeyState.DECRYPT_ONLY
    row.decrypt_only_since = row.decrypt_only_since or timezone.now()
    row.retired_at = row.destroyed_at = None
    row.save(using=using)


def _insert(entry: BackupKey, using: str) -> None:
    has_primary = DataKey.objects.using(using).filter(state=KeyState.PRIMARY).exists()
    # The database's own primary stays primary; any other restored key only has to decrypt.
    state = KeyState.PRIMARY if entry.state == KeyState.PRIMARY and not has_primary else None
    row = DataKey(
        key_id=entry.key_id,
        state=state or KeyState.DECRYPT_ONLY,
        wrapped_key=entry.wrapped_key,
        master_key_fingerprint=entry.master_key_fingerprint,
        created_at=entry.dates["created_at"] or timezone.now(),
        primary_since=entry.dates["primary_since"],
        decrypt_only_since=None if state else entry.dates["decrypt_only_since"] or timezone.now(),
    )
    row.save(using=using, force_insert=True)
