"""Key backups: the key ring written to a file before a rotation changes anything, and read back
by ``restore_encryption_keys``.

A backup holds the *wrapped* data keys with their ids, states and dates, never plaintext keys,
so it is as safe to keep as the database itself and useless without the master key. It is
signed with a key derived from the master key, so an altered file is refused. Files are mode
0600 in a 0700 directory and are flushed to disk before the rotation goes on.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .conf import encryption_settings
from .exceptions import DataEncryptionError
from .keys import PendingKey, key_database, reset_key_ring
from .master_key import master_keys, unwrap_with_any
from .models import DataKey, KeyState, format_key_id

FORMAT = "django-data-encryption/key-backup"
VERSION = 1
_DATES = ("created_at", "primary_since", "decrypt_only_since", "retired_at", "destroyed_at")


class BackupError(DataEncryptionError):
    """A backup could not be written, or a file cannot be restored (the message says why)."""


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _key_entry(row: DataKey) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "key_id": row.key_id,
        "hex_id": row.hex_id,
        "state": row.state,
        "master_key_fingerprint": row.master_key_fingerprint,
        "wrapped_key": (
            base64.b64encode(bytes(row.wrapped_key)).decode() if row.wrapped_key else None
        ),
    }
    for name in _DATES:
        value = getattr(row, name)
        entry[name] = value.isoformat() if value else None
    return entry


def backup_document(
    rows: Iterable[DataKey], *, now: datetime, pending: PendingKey | None = None
) -> dict[str, Any]:
    """The signed JSON document of a backup: every key row, plus the pending new key if any."""
    keys = [_key_entry(row) for row in rows]
    if pending is not None:
        keys.append(
            {
                "key_id": pending.key_id,
                "hex_id": format_key_id(pending.key_id),
                "state": "pending",
                "master_key_fingerprint": pending.master_key_fingerprint,
                "wrapped_key": base64.b64encode(pending.wrapped_key).decode(),
                **dict.fromkeys(_DATES),
                "created_at": now.isoformat(),
            }
        )
    master = master_keys()[0]
    body = {"format": FORMAT, "version": VERSION, "created_at": now.isoformat(), "keys": keys}
    return {
        **body,
        "signed_by": master.fingerprint,
        "signature": master.sign(_canonical(body)).hex(),
    }


def ensure_backup_dir(path: Path) -> None:
    """Create ``path`` (mode 0700) if needed; refuse one that others can read."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(
            f"Cannot create BACKUP_DIR {path}: {exc.strerror}. Create it (mode 0700) as the "
            "user that runs rotations."
        ) from None
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BackupError(
            f"BACKUP_DIR {path} is accessible by group or others (mode {mode:04o}); refusing "
            f"to write key backups there. Run: chmod 700 {path}"
        )


def write_backup(
    *, now: datetime | None = None, pending: PendingKey | None = None, using: str | None = None
) -> Path:
    """Write every data key (wrapped) and ``pending`` to a new file in ``BACKUP_DIR``; return
    its path once it is on disk."""
    directory = encryption_settings.backup_dir
    if directory is None:
        raise BackupError(
            "ENCRYPTION_KEY_ROTATION['BACKUP_DIR'] is not set; a rotation writes a key backup "
            "before it changes anything. Set it to a directory only this service can read."
        )
    now = now or timezone.now()
    ensure_backup_dir(directory)
    rows = DataKey.objects.using(using or key_database()).order_by("created_at", "key_id")
    data = (json.dumps(backup_document(rows, now=now, pending=pending), indent=2) + "\n").encode()
    name = encryption_settings.backup_filename_format.format(
        timestamp=now.strftime("%Y%m%dT%H%M%SZ")
    )
    path = _exclusive_path(directory / name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the file's directory entry is durable too
    finally:
        os.close(dir_fd)
    return path


def _exclusive_path(path: Path) -> Path:
    candidate, counter = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{counter}{path.suffix}")
        counter += 1
    return candidate


@dataclass
class BackupKey:
    key_id: int
    state: str
    wrapped_key: bytes | None
    master_key_fingerprint: str
    dates: dict[str, datetime | None]

    def __repr__(self) -> str:
        return f"<BackupKey {format_key_id(self.key_id)} {self.state}>"


@dataclass
class RestoreReport:
    restored: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # destroyed in the backup: nothing to restore


def read_backup(path: Path) -> list[BackupKey]:
    """Parse and verify a backup file: its signature, and that every key unwraps."""
    try:
        document = json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise BackupError(f"No such backup file: {path}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"{path} is not a key backup (unreadable JSON: {exc}).") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BackupError(f"{path} is not a django-data-encryption key backup.")
    if document.get("version") != VERSION:
        raise BackupError(
            f"{path} is backup format version {document.get('version')}; this release reads "
            f"version {VERSION}. Upgrade django-data-encryption."
        )
    body = {name: document.get(name) for name in ("format", "version", "created_at", "keys")}
    try:
        signature = bytes.fromhex(str(document.get("signature", "")))
    except ValueError:
        signature = b""
    if not any(master.verify(_canonical(body), signature) for master in master_keys()):
        raise BackupError(
            f"{path} was altered, or was signed by a master key that is neither "
            f"DB_ENCRYPTION_KEY nor one of DB_ENCRYPTION_KEY_FALLBACKS (it names the master key "
            f"with fingerprint {document.get('signed_by')}). Configure that key and retry."
        )
    return [_verified_key(entry, path) for entry in body["keys"] or []]


def _verified_key(entry: dict[str, Any], path: Path) -> BackupKey:
    key_id = int(entry["key_id"])
    wrapped = None
    if entry.get("wrapped_key"):
        try:
            wrapped = base64.b64decode(entry["wrapped_key"], validate=True)
        except (binascii.Error, ValueError):
            raise BackupError(f"{path}: data key {format_key_id(key_id)} is malformed.") from None
        if not unwrap_with_any(key_id, wrapped):
            raise BackupError(
                f"{path}: no configured master key unwraps data key {format_key_id(key_id)} "
                f"(wrapped by master key {entry.get('master_key_fingerprint')})."
            )
    dates = {name: parse_datetime(entry[name]) if entry.get(name) else None for name in _DATES}
    return BackupKey(key_id, entry["state"], wrapped, entry["master_key_fingerprint"], dates)


def restore_backup(path: Path, *, using: str | None = None) -> RestoreReport:
    """Bring the keys of a backup file back into the key table. Idempotent.

    A missing key is inserted (as ``decrypt-only``, never a second primary); a destroyed key
    gets its material back; a key already present with the same material is left alone. A key
    present with *different* material is a conflict and nothing is written.
    """
    using = using or key_database()
    entries = read_backup(path)
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
                row.state = KeyState.DECRYPT_ONLY
                row.destroyed_at = None
                row.save(using=using)
                report.restored.append(entry.key_id)
            elif unwrap_with_any(row.key_id, bytes(row.wrapped_key)) == unwrap_with_any(
                entry.key_id, entry.wrapped_key
            ):
                report.unchanged.append(entry.key_id)
            else:
                raise BackupError(
                    f"Data key {format_key_id(entry.key_id)} in {path} differs from the key with "
                    "that id in the database; nothing was restored. Investigate before going on."
                )
    reset_key_ring()
    return report


def _insert(entry: BackupKey, using: str) -> None:
    state = entry.state
    has_primary = DataKey.objects.using(using).filter(state=KeyState.PRIMARY).exists()
    if state == "pending" or (state == KeyState.PRIMARY and has_primary):
        # The database's own primary stays primary; a restored key only has to decrypt.
        state = KeyState.DECRYPT_ONLY
    DataKey.objects.using(using).create(
        key_id=entry.key_id,
        state=state,
        wrapped_key=entry.wrapped_key,
        master_key_fingerprint=entry.master_key_fingerprint,
        created_at=entry.dates["created_at"] or timezone.now(),
        primary_since=entry.dates["primary_since"],
        decrypt_only_since=entry.dates["decrypt_only_since"] or timezone.now(),
        retired_at=entry.dates["retired_at"],
    )
