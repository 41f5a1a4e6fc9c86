"""Key backups: the key ring written to a file before a rotation changes anything, read back by
``restore_encryption_keys``, and kept in line with the key table (``prune_key_backups``, and the
re-wrap of a master-key change).

A backup holds the *wrapped* data keys with their ids, states and dates, and the live blind-index
keys with their slots (``index_entries``; ``index_restore``), never plaintext keys.
One noun per module: ``document`` (the signed JSON and its strict parse), ``files`` (the private
directory and the whole-or-nothing write), ``restore``, ``rewriting`` (pruning and re-wrapping).
"""

from .document import (
    FORMAT,
    VERSION,
    BackupError,
    BackupKey,
    LoadedBackup,
    backup_document,
    load_backup,
    read_backup,
    read_backup_file,
)
from .files import (
    back_up_before_new_index_key,
    backup_dir_problems,
    backup_files,
    ensure_backup_dir,
    write_backup,
)
from .index_entries import BackupIndexKey
from .index_restore import IndexKeyRestore
from .restore import RestoreReport, restore_backup
from .rewriting import BackupRewrite, prune_backups, rewrap_backups

__all__ = [
    "FORMAT",
    "VERSION",
    "BackupError",
    "BackupIndexKey",
    "BackupKey",
    "BackupRewrite",
    "IndexKeyRestore",
    "LoadedBackup",
    "RestoreReport",
    "back_up_before_new_index_key",
    "backup_dir_problems",
    "backup_document",
    "backup_files",
    "ensure_backup_dir",
    "load_backup",
    "prune_backups",
    "read_backup",
    "read_backup_file",
    "restore_backup",
    "rewrap_backups",
    "write_backup",
]
