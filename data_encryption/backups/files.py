"""Backup files on disk: the private directory they live in, and writing a file so that it is
whole or absent (a temporary name, every byte written, fsync, rename, the directory fsynced),
then read back and verified before anything relies on it."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from datetime import datetime
from pathlib import Path

from django.utils import timezone

from ..conf import encryption_settings
from ..index_keys import create_index_key, generate_wrapped_index_key
from ..keys import PendingKey, key_database
from ..master_key import unwrap_with_any
from ..models import DataKey, IndexKey, IndexKeyState, format_key_id
from .document import (
    BackupError,
    BackupKey,
    backup_keys,
    document_bytes,
    read_backup_file,
    signed_document,
)
from .index_entries import BackupIndexKey


def backup_dir_problems(path: Path) -> list[tuple[str, str]]:
    """What makes the existing directory ``path`` unfit to hold key backups, each as (what is
    wrong, what to do); ``[]`` when nothing: not a directory, owned by another user, or open to
    group or others. The system check (E010, E011) and the writer apply this same rule."""
    try:
        status = os.stat(path)
    except OSError as exc:
        return [(f"BACKUP_DIR {path} cannot be read: {exc.strerror}.", "Check the path.")]
    if not stat.S_ISDIR(status.st_mode):
        return [(f"BACKUP_DIR {path} is not a directory.", "Point BACKUP_DIR at a directory.")]
    problems = []
    if status.st_uid != os.geteuid():
        # Whoever owns it can read every backup and swap files in (a symlink to another user's
        # directory passes a mode check): only this user's own directory will do.
        problems.append(
            (
                f"BACKUP_DIR {path} is owned by uid {status.st_uid}, not by the user this "
                f"process runs as (uid {os.geteuid()}).",
                f"Run: chown {os.geteuid()} {path} (or use a directory that user owns)",
            )
        )
    mode = stat.S_IMODE(status.st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        problems.append(
            (
                f"BACKUP_DIR {path} is accessible by group or others (mode {mode:04o}).",
                f"Run: chmod 700 {path}",
            )
        )
    return problems


def ensure_backup_dir(path: Path) -> None:
    """Create ``path`` and any missing parents, each mode 0700 whatever the umask; refuse a
    directory this user does not own or that others can reach."""
    missing = []
    candidate = path
    while not os.path.lexists(candidate) and candidate != candidate.parent:
        missing.append(candidate)
        candidate = candidate.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue  # made meanwhile by someone else: the checks below judge it
        except OSError as exc:
            raise BackupError(
                f"Cannot create BACKUP_DIR {path}: {exc.strerror} ({directory}). Create it "
                "(mode 0700) as the user that runs rotations."
            ) from None
        os.chmod(directory, 0o700)  # mkdir's mode went through the umask
    problems = [
        f"{problem} {fix}."
        for directory in [path, *missing[1:]]
        for problem, fix in backup_dir_problems(directory)
    ]
    if problems:
        raise BackupError(" ".join(dict.fromkeys(problems)) + " No key backup was written.")


def write_document(
    path: Path,
    keys: list[BackupKey],
    *,
    created_at: str,
    index_keys: list[BackupIndexKey] | None = None,
) -> None:
    """Put a backup of ``keys`` and ``index_keys``, signed by the current master key, at
    ``path`` (replacing any file there): written whole under a temporary name, fsynced, read
    back and verified (the signature, and every key unwrapping), renamed, and the directory
    fsynced. ``path`` holds the old file or the whole verified new one, whatever fails (a full
    disk, a crash)."""
    index_keys = index_keys or []
    every = [("data key", key) for key in keys] + [("blind-index key", key) for key in index_keys]
    for noun, key in every:  # a backup that cannot be read back is worse than none: it misleads
        if key.wrapped_key is not None and not unwrap_with_any(key.key_id, key.wrapped_key):
            raise BackupError(
                f"No configured master key can unwrap {noun} {format_key_id(key.key_id)} (it "
                f"was wrapped by the master key with fingerprint {key.master_key_fingerprint}), "
                f"so {path} was not written. Put that key back in DB_ENCRYPTION_KEY or "
                "DB_ENCRYPTION_KEY_FALLBACKS."
            )
    document = signed_document(keys, created_at=created_at, index_keys=index_keys)
    data = memoryview(document_bytes(document))
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            while data:  # os.write may write less than asked (a full disk, a file size limit)
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        _verify(temporary, [*keys, *index_keys], path)
        os.replace(temporary, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself is durable too
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise BackupError(
            f"Could not write the key backup {path}: {exc.strerror or type(exc).__name__}. "
            "Make room in BACKUP_DIR (or fix its permissions) and retry."
        ) from None
    finally:
        with contextlib.suppress(OSError):  # gone already once renamed
            os.unlink(temporary)


def _verify(written: Path, keys: list[BackupKey | BackupIndexKey], path: Path) -> None:
    try:
        loaded = read_backup_file(written)
        found: list[BackupKey | BackupIndexKey] = [*loaded.keys, *loaded.index_keys]
    except BackupError as exc:
        raise BackupError(f"The key backup {path} did not read back whole ({exc}).") from None
    if [(key.key_id, key.wrapped_key) for key in found] != [
        (key.key_id, key.wrapped_key) for key in keys
    ]:
        raise BackupError(f"The key backup {path} read back differs from what was written.")


def write_backup(
    *,
    now: datetime | None = None,
    pending: PendingKey | None = None,
    using: str | None = None,
    pending_index: tuple[PendingKey, str] | None = None,
) -> Path:
    """Write every data key and every live blind-index key (wrapped), ``pending`` (a new data
    key) and ``pending_index`` (a new index key and its slot) to a new file in ``BACKUP_DIR``;
    return its path once it is on disk and read back verified."""
    directory = encryption_settings.backup_dir
    if directory is None:
        raise BackupError(
            "ENCRYPTION_KEY_ROTATION['BACKUP_DIR'] is not set; a rotation writes a key backup "
            "before it changes anything. Set it to a directory only this service can read."
        )
    now = now or timezone.now()
    ensure_backup_dir(directory)
    using = using or key_database()
    rows = DataKey.objects.using(using).order_by("created_at", "key_id")
    keys = backup_keys(rows, now=now, pending=pending)
    index_keys = [
        BackupIndexKey.of_row(row)
        for row in IndexKey.objects.using(using)
        .filter(state__in=IndexKeyState.LIVE)
        .order_by("created_at", "key_id")
    ]
    if pending_index is not None:
        index_keys.append(BackupIndexKey.of_pending(*pending_index, now))
    name = encryption_settings.backup_filename_format.format(
        timestamp=now.strftime("%Y%m%dT%H%M%SZ")
    )
    path = _free_path(directory / name)
    write_document(path, keys, created_at=now.isoformat(), index_keys=index_keys)
    return path


def back_up_before_new_index_key(
    using: str, *, slot: str, state: str = IndexKeyState.FILLING, now: datetime | None = None
) -> tuple[IndexKey, Path]:
    """Make a new blind-index key for ``slot``, write and verify a key backup holding it (and
    every other key), then store it in ``state``: an index-key rotation's first step, so no
    index key exists that no backup holds. A crash between the two leaves a pending key in the
    backup that was never stored (a restore skips it) and nothing in the table."""
    pending = generate_wrapped_index_key(using)
    path = write_backup(now=now, using=using, pending_index=(pending, slot))
    return create_index_key(using, slot=slot, state=state, pending=pending), path


def _free_path(path: Path) -> Path:
    candidate, counter = path, 1
    while os.path.lexists(candidate):
        candidate = path.with_name(f"{path.stem}-{counter}{path.suffix}")
        counter += 1
    return candidate


def backup_files(directory: Path) -> list[Path]:
    """The files in ``directory`` that may be key backups (not the temporary ones), by name."""
    if not directory.is_dir():
        return []
    return sorted(
        entry
        for entry in directory.iterdir()
        if entry.is_file() and not entry.is_symlink() and not entry.name.startswith(".")
    )
