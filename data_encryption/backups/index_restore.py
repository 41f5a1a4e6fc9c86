"""Restoring blind-index keys from a backup file, inside ``restore.restore_backup``'s transaction.

A missing key comes back to its slot in its backed-up state, with no field recorded complete,
so the first query per field checks the index covers every row before answering from it. A key
the database holds is left as it is: its row is newer than the backup. Refused, so that nothing
at all is restored: a key whose material differs from the database's, a key whose slot another
live key holds, and a second active key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.utils import timezone

from ..master_key import unwrap_with_any
from ..models import IndexKey, IndexKeyState
from .document import BackupError
from .index_entries import PENDING, BackupIndexKey

_REBUILD = "'manage.py rebuild_blind_index'"


@dataclass
class IndexKeyRestore:
    """What a restore did with a file's blind-index keys, by key id."""

    restored: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    # Never stored (a rotation's pending key), retired in the file or in the database.
    skipped: list[int] = field(default_factory=list)


def restore_index_keys(entries: list[BackupIndexKey], path: Path, using: str) -> IndexKeyRestore:
    """Bring back the index keys of ``entries`` the table lacks (see the module); raises
    ``BackupError`` (the caller's transaction then writes nothing) on a conflict."""
    done = IndexKeyRestore()
    keys = IndexKey.objects.using(using).select_for_update()
    existing = {row.key_id: row for row in keys.filter(key_id__in=[e.key_id for e in entries])}
    live = {row.slot: row for row in keys.filter(state__in=IndexKeyState.LIVE)}
    for entry in entries:
        row = existing.get(entry.key_id)
        if row is not None and row.wrapped_key is not None and entry.wrapped_key is not None:
            if unwrap_with_any(row.key_id, bytes(row.wrapped_key)) != unwrap_with_any(
                entry.key_id, entry.wrapped_key
            ):
                raise BackupError(
                    f"Blind-index key {entry.hex_id} in {path} differs from the key with that id "
                    "in the database; nothing was restored. Investigate before going on."
                )
            done.unchanged.append(entry.key_id)
        elif row is not None or entry.wrapped_key is None or entry.state == PENDING:
            # Retired in the database (its slot was cleared: its material would index nothing)
            # or in the file, or a rotation's new key that was never stored.
            done.skipped.append(entry.key_id)
        else:
            _refuse_conflict(entry, live, path)
            live[entry.slot] = _insert(entry, using)
            done.restored.append(entry.key_id)
    return done


def _refuse_conflict(entry: BackupIndexKey, live: dict[str, IndexKey], path: Path) -> None:
    holder = live.get(entry.slot)
    if holder is not None:
        raise BackupError(
            f"Blind-index key {entry.hex_id} in {path} belongs in slot {entry.slot}, which the "
            f"database's index key {holder.hex_id} ({holder.state}) holds, so the slot's "
            "values are hashed under that key now; nothing was restored. Keep the database's "
            f"key and build every index under it with {_REBUILD}."
        )
    active = next((row for row in live.values() if row.state == IndexKeyState.ACTIVE), None)
    if entry.state == IndexKeyState.ACTIVE and active is not None:
        raise BackupError(
            f"Blind-index key {entry.hex_id} in {path} was active, and the database's index key "
            f"{active.hex_id} is active now; nothing was restored. Keep the database's key and "
            f"build every index under it with {_REBUILD}."
        )


def _insert(entry: BackupIndexKey, using: str) -> IndexKey:
    row = IndexKey(
        key_id=entry.key_id,
        slot=entry.slot,
        state=entry.state,
        wrapped_key=entry.wrapped_key,
        master_key_fingerprint=entry.master_key_fingerprint,
        created_at=entry.created_at,
        state_since=timezone.now(),
        complete_fields=[],  # rows written since the backup may lack it: queries check first
    )
    row.save(using=using, force_insert=True)  # save() signs it under the current master key
    return row
