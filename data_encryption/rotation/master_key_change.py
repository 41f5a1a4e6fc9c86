"""The end of a master-key change (``rewrap_data_keys``): every data key and blind-index key, the
pending key of a rotation a dead process left, and every key backup file moved under the current
``DB_ENCRYPTION_KEY``, holding the rotation lock, so the old master key opens nothing the
project still keeps. docs/rotation.md has the steps."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..backups import BackupRewrite, prune_backups, rewrap_backups, write_backup
from ..conf import encryption_settings
from ..index_keys import rewrap_index_keys
from ..keys import rewrap_data_keys
from ..master_key import master_keys
from .lock import rotation_lock
from .new_key import pending_key, rewrap_stalled_pending

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MasterKeyRewrap:
    """What ``rewrap_master_key`` did: the backup it wrote first (``None`` without
    ``BACKUP_DIR``), the keys it re-wrapped, those already under the master key ``fingerprint``,
    the pending key of a stalled rotation it re-wrapped, and what it did to the backup files."""

    backup_path: Path | None
    rewrapped: list[int]
    current: list[int]
    fingerprint: str
    pending_key_id: int | None = None
    backups: BackupRewrite | None = None
    index_rewrapped: list[int] = field(default_factory=list)  # index keys, as the data keys
    index_current: list[int] = field(default_factory=list)


def finish_master_key_change(using: str) -> MasterKeyRewrap:
    """Holding the rotation lock (``RotationRunning`` while a rotation runs): back the keys up
    (when ``BACKUP_DIR`` is set), re-wrap every data key, and the pending key of a rotation a
    dead process left, under the current ``DB_ENCRYPTION_KEY``. Then re-wrap every key backup
    file and re-sign it (after pruning destroyed keys out of them when ``PRUNE_BACKUPS`` is on)."""
    backup_dir = encryption_settings.backup_dir
    backup_path = None
    with rotation_lock(using, "rewrap_data_keys") as stalled:
        if backup_dir is not None:
            pending = None
            if stalled is not None and stalled.new_wrapped_key is not None:
                pending = pending_key(stalled)  # the stalled rotation's key is backed up too
            backup_path = write_backup(using=using, pending=pending)
            logger.info("Key backup written to %s before re-wrapping.", backup_path)
        rewrapped, current = rewrap_data_keys(using)
        index_rewrapped, index_current = rewrap_index_keys(using)
        pending_id = rewrap_stalled_pending(stalled, using)
    backups = None
    if backup_dir is not None:
        if encryption_settings.prune_backups:
            prune_backups(using=using)
        backups = rewrap_backups()
    return MasterKeyRewrap(
        backup_path,
        rewrapped,
        current,
        master_keys()[0].fingerprint,
        pending_key_id=pending_id,
        backups=backups,
        index_rewrapped=index_rewrapped,
        index_current=index_current,
    )
