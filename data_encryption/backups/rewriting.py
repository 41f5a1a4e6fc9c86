"""Rewriting the backup files already in ``BACKUP_DIR``: pruning the material of destroyed data
keys and retired index keys out of them (``prune_key_backups``, or after each rotation when
``PRUNE_BACKUPS`` is on), and re-wrapping them under a new master key (``rewrap_data_keys``).

A rewritten file is re-signed by the current master key, verified and replaced atomically (see
``files.write_document``); a file that pruning leaves with no key material is deleted. A file
that cannot be verified with the configured master keys is never rewritten (re-signing it would
vouch for whatever it holds): it is reported, with why, and left for a person to judge.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from ..conf import encryption_settings
from ..exceptions import KeyConfigurationError
from ..keys import key_database
from ..master_key import master_keys, rewrapped_for
from ..models import DataKey, IndexKey, IndexKeyState, KeyState
from .document import BackupError, BackupKey, LoadedBackup, load_backup
from .files import backup_files, write_document
from .index_entries import BackupIndexKey

AnyKey = TypeVar("AnyKey", BackupKey, BackupIndexKey)


@dataclass
class BackupRewrite:
    """What a pass over ``BACKUP_DIR`` did (or, in a dry run, would do)."""

    dry_run: bool = False
    rewritten: list[Path] = field(default_factory=list)
    deleted: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    left: list[tuple[Path, str]] = field(default_factory=list)  # not handled, and why
    key_ids: set[int] = field(default_factory=set)  # keys whose material was pruned or re-wrapped

    def summary(self) -> str:
        verb = "would be" if self.dry_run else "were"
        return (
            f"{len(self.rewritten)} backup files {verb} rewritten, {len(self.deleted)} deleted, "
            f"{len(self.unchanged)} left as they were"
            + (f"; {len(self.left)} could not be handled" if self.left else "")
            + "."
        )


# Given a verified file, the file as it should be instead (raise BackupError when it cannot say).
Change = Callable[[LoadedBackup], LoadedBackup]


def prune_backups(*, using: str | None = None, dry_run: bool = False) -> BackupRewrite:
    """Remove the material of every data key the database has destroyed, and of every
    blind-index key it has retired, from every backup file: a file still holding other keys'
    material is rewritten, one left with none is deleted."""
    using = using or key_database()
    destroyed: dict[int, datetime | None] = dict(
        DataKey.objects.using(using)
        .filter(state=KeyState.DESTROYED)
        .values_list("key_id", "destroyed_at")
    )
    retired = set(
        IndexKey.objects.using(using)
        .filter(state=IndexKeyState.RETIRED)
        .values_list("key_id", flat=True)
    )

    def without_destroyed(loaded: LoadedBackup) -> LoadedBackup:
        keys = [
            key.destroyed(destroyed[key.key_id])
            if key.wrapped_key is not None and key.key_id in destroyed
            else key
            for key in loaded.keys
        ]
        index_keys = [
            key.retired() if key.wrapped_key is not None and key.key_id in retired else key
            for key in loaded.index_keys
        ]
        return replace(loaded, keys=keys, index_keys=index_keys)

    return _rewrite_all(without_destroyed, dry_run=dry_run, delete_empty=True)


def rewrap_backups(*, dry_run: bool = False) -> BackupRewrite:
    """Re-wrap every key in every backup file under the current master key and re-sign the
    file, so that no backup needs (or yields anything to) an older master key."""
    current = master_keys()[0]

    def rewrapped_key(key: AnyKey, path: Path) -> AnyKey:
        try:
            wrapped = key.wrapped_key and rewrapped_for(
                current, key.key_id, key.wrapped_key, key.master_key_fingerprint
            )
        except KeyConfigurationError as exc:
            raise BackupError(f"{path}: {exc}") from None
        if not wrapped:
            return key
        return replace(key, wrapped_key=wrapped, master_key_fingerprint=current.fingerprint)

    def rewrapped(loaded: LoadedBackup) -> LoadedBackup:
        return replace(
            loaded,
            keys=[rewrapped_key(key, loaded.path) for key in loaded.keys],
            index_keys=[rewrapped_key(key, loaded.path) for key in loaded.index_keys],
        )

    return _rewrite_all(rewrapped, dry_run=dry_run, resign=True)


def _rewrite_all(
    change: Change, *, dry_run: bool, delete_empty: bool = False, resign: bool = False
) -> BackupRewrite:
    directory = encryption_settings.backup_dir
    if directory is None:
        raise BackupError(
            "ENCRYPTION_KEY_ROTATION['BACKUP_DIR'] is not set: no backups to rewrite."
        )
    current = master_keys()[0].fingerprint
    report = BackupRewrite(dry_run=dry_run)
    for path in backup_files(directory):
        try:
            loaded = load_backup(path)
            new = change(loaded)
        except BackupError as exc:
            report.left.append((path, str(exc)))
            continue
        before: list[BackupKey | BackupIndexKey] = [*loaded.keys, *loaded.index_keys]
        after: list[BackupKey | BackupIndexKey] = [*new.keys, *new.index_keys]
        changed = {key.key_id for old, key in zip(before, after, strict=True) if old != key}
        if delete_empty and changed and not any(key.wrapped_key for key in after):
            report.deleted.append(path)
            if not dry_run:
                os.unlink(path)
        elif changed or (resign and loaded.signer.fingerprint != current):
            if not dry_run:
                try:
                    write_document(
                        path, new.keys, created_at=loaded.created_at, index_keys=new.index_keys
                    )
                except BackupError as exc:
                    report.left.append((path, str(exc)))
                    continue
            report.rewritten.append(path)
        else:
            report.unchanged.append(path)
            continue
        report.key_ids |= changed
    return report
