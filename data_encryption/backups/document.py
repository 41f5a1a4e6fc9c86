"""The key backup document: its JSON shape, its signature, and the strict parse that refuses a
malformed file with a ``BackupError`` saying what is wrong.

A document holds the *wrapped* data keys with their ids, states and dates, and (from version 2)
the live blind-index keys (``index_entries``), never plaintext keys, and is signed (HMAC) with a
key derived from the master key, so an altered file is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from django.utils.dateparse import parse_datetime

from ..exceptions import DataEncryptionError
from ..keys import PendingKey
from ..master_key import AnyMasterKey, master_keys, unwrap_with_any
from ..master_keys.provider_key import ProviderMasterKey
from ..models import DataKey, KeyState, format_key_id
from .index_entries import BackupIndexKey

FORMAT = "django-data-encryption/key-backup"
# 2 added "index_keys"; 3 added "master_keys" (each fingerprint the file names, described: a
# provider and its key, or a local key's setting). Both are signed with the rest; older files read.
VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
DATES = ("created_at", "primary_since", "decrypt_only_since", "retired_at", "destroyed_at")
PENDING = "pending"  # a rotation's new key, backed up before it becomes a DataKey row
STATES = frozenset(
    {KeyState.PRIMARY, KeyState.DECRYPT_ONLY, KeyState.RETIRED, KeyState.DESTROYED, PENDING}
)
_MAX_KEY_ID = 2**32 - 1


class BackupError(DataEncryptionError):
    """A backup could not be written, or a file cannot be restored (the message says why)."""


@dataclass(frozen=True)
class BackupKey:
    """One data key as a backup file holds it (wrapped; ``None`` once destroyed)."""

    key_id: int
    state: str
    wrapped_key: bytes | None
    master_key_fingerprint: str
    dates: dict[str, datetime | None]

    def __repr__(self) -> str:
        return f"<BackupKey {format_key_id(self.key_id)} {self.state}>"

    @classmethod
    def of_row(cls, row: DataKey) -> BackupKey:
        wrapped = bytes(row.wrapped_key) if row.wrapped_key is not None else None
        dates = {name: getattr(row, name) for name in DATES}
        return cls(row.key_id, row.state, wrapped, row.master_key_fingerprint, dates)

    @classmethod
    def of_pending(cls, pending: PendingKey, now: datetime) -> BackupKey:
        dates: dict[str, datetime | None] = {**dict.fromkeys(DATES), "created_at": now}
        return cls(
            pending.key_id, PENDING, pending.wrapped_key, pending.master_key_fingerprint, dates
        )

    def destroyed(self, at: datetime | None) -> BackupKey:
        """This key with its material dropped, as a destroyed key."""
        dates = {**self.dates, "destroyed_at": at or self.dates.get("destroyed_at")}
        return replace(self, state=KeyState.DESTROYED, wrapped_key=None, dates=dates)

    def entry(self) -> dict[str, Any]:
        """The JSON object of this key in a backup document."""
        entry: dict[str, Any] = {
            "key_id": self.key_id,
            "hex_id": format_key_id(self.key_id),
            "state": self.state,
            "master_key_fingerprint": self.master_key_fingerprint,
            "wrapped_key": (
                base64.b64encode(self.wrapped_key).decode() if self.wrapped_key else None
            ),
        }
        for name in DATES:
            value = self.dates.get(name)
            entry[name] = value.isoformat() if value else None
        return entry


def canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def signed_document(
    keys: Iterable[BackupKey],
    *,
    created_at: str,
    index_keys: Iterable[BackupIndexKey] = (),
) -> dict[str, Any]:
    """The signed JSON document holding ``keys`` and ``index_keys``, signed by the current
    master key."""
    master = master_keys()[0]
    keys, index_keys = list(keys), list(index_keys)
    body = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": created_at,
        "keys": [key.entry() for key in keys],
        "index_keys": [key.entry() for key in index_keys],
        "master_keys": master_key_names(
            [master.fingerprint]
            + [key.master_key_fingerprint for key in keys]
            + [key.master_key_fingerprint for key in index_keys]
        ),
    }
    return {
        **body,
        "signed_by": master.fingerprint,
        "signature": master.sign(canonical(body)).hex(),
    }


def master_key_names(fingerprints: Iterable[str]) -> dict[str, str]:
    """Each fingerprint, described by the configured master key that has it (``"aws-kms master
    key arn:..."``, ``"local master key DB_ENCRYPTION_KEY"``), or as not configured: what an
    operator restoring the file must configure. Names only, never key material."""
    described = {master.fingerprint: master.description for master in master_keys()}
    return {
        fingerprint: described.get(fingerprint, "not configured when this backup was written")
        for fingerprint in sorted(set(fingerprints))
    }


def document_bytes(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def backup_keys(
    rows: Iterable[DataKey], *, now: datetime, pending: PendingKey | None = None
) -> list[BackupKey]:
    """What a backup taken ``now`` holds: every key row, plus the pending new key if any."""
    keys = [BackupKey.of_row(row) for row in rows]
    if pending is not None:
        keys.append(BackupKey.of_pending(pending, now))
    return keys


def backup_document(
    rows: Iterable[DataKey], *, now: datetime, pending: PendingKey | None = None
) -> dict[str, Any]:
    """The signed JSON document of a backup: every key row, plus the pending new key if any."""
    return signed_document(backup_keys(rows, now=now, pending=pending), created_at=now.isoformat())


@dataclass(frozen=True)
class LoadedBackup:
    """A backup file whose signature was verified: its keys, and the master key that signed it."""

    path: Path
    created_at: str
    keys: list[BackupKey]
    signer: AnyMasterKey
    # Empty for a version 1 file, written before blind-index keys were backed up.
    index_keys: list[BackupIndexKey] = field(default_factory=list)
    version: int = VERSION


def load_backup(path: Path) -> LoadedBackup:
    """Parse ``path`` and verify its signature and shape (not yet that its keys unwrap)."""
    try:
        document = json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise BackupError(f"No such backup file: {path}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"{path} is not a key backup (unreadable JSON: {exc}).") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BackupError(f"{path} is not a django-data-encryption key backup.")
    version = document.get("version")
    if version not in READABLE_VERSIONS:
        raise BackupError(
            f"{path} is backup format version {version}; this release reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}. Upgrade django-data-encryption."
        )
    names = ("format", "version", "created_at", "keys") + (("index_keys",) if version > 1 else ())
    names += ("master_keys",) if version > 2 else ()
    body = {name: document.get(name) for name in names}
    try:
        signature = bytes.fromhex(str(document.get("signature", "")))
    except ValueError:
        signature = b""
    _learn_provider_secrets(body)
    signer = next((m for m in master_keys() if m.verify(canonical(body), signature)), None)
    if signer is None:  # keys made by two processes at once may carry two secrets: learn each
        _learn_provider_secrets(body, every=True)
        signer = next((m for m in master_keys() if m.verify(canonical(body), signature)), None)
    if signer is None:
        signed_by = document.get("signed_by")
        named = body.get("master_keys")
        named = named if isinstance(named, dict) else {}
        raise BackupError(
            f"{path} was altered, or was signed by a master key that is not configured (it "
            f"names the master key with fingerprint {signed_by}"
            + (f": {named[signed_by]}" if isinstance(named.get(signed_by), str) else "")
            + "). Configure that key (DB_ENCRYPTION_KEY or its fallbacks, or the provider in "
            "DATA_ENCRYPTION_MASTER_KEY_PROVIDER or its fallbacks) and retry."
        )
    # Signed is not the same as well-formed: a file written by a buggy or hostile tool holding
    # the master key is refused here, with what is wrong, rather than half-restored.
    if not isinstance(body["keys"], list):
        raise BackupError(f"{path}: 'keys' must be a list of keys.")
    named = body.get("master_keys", {})
    if not isinstance(named, dict) or not all(isinstance(v, str) for v in named.values()):
        raise BackupError(f"{path}: 'master_keys' must map fingerprints to descriptions.")
    keys = [_parsed_key(entry, index, path) for index, entry in enumerate(body["keys"])]
    index_keys = _parsed_index_keys(body.get("index_keys", []), path)
    seen: set[int] = set()
    for key_id in [key.key_id for key in keys] + [key.key_id for key in index_keys]:
        if key_id in seen:  # index key ids are distinct from data key ids too
            raise BackupError(
                f"{path}: key {format_key_id(key_id)} appears twice; a backup holds each key "
                "once. Do not restore this file."
            )
        seen.add(key_id)
    return LoadedBackup(Path(path), str(body["created_at"]), keys, signer, index_keys, version)


def _learn_provider_secrets(body: dict[str, Any], *, every: bool = False) -> None:
    """Let each provider master key learn its integrity secret (what signed the file) from the
    file's own wrapped keys: the database being restored into may hold none of them (``every``:
    from each of them, not the first alone)."""
    wraps = []
    for entry in [*(body.get("keys") or []), *(body.get("index_keys") or [])]:
        if isinstance(entry, dict) and isinstance(entry.get("key_id"), int):
            try:
                wrapped = _wrapped(entry.get("wrapped_key"), "")
            except BackupError:
                continue
            if wrapped:
                wraps.append((entry["key_id"], wrapped))
    for master in master_keys():
        if isinstance(master, ProviderMasterKey):
            master.learn_from(wraps, every=every)


def _parsed_index_keys(entries: Any, path: Path) -> list[BackupIndexKey]:
    if not isinstance(entries, list):
        raise BackupError(f"{path}: 'index_keys' must be a list of keys.")
    parsed = []
    for index, entry in enumerate(entries):
        try:
            parsed.append(BackupIndexKey.parsed(entry))
        except ValueError as exc:
            raise BackupError(f"{path}: index key #{index + 1} {exc}.") from None
    return parsed


def _parsed_key(entry: Any, index: int, path: Path) -> BackupKey:
    where = f"{path}: key #{index + 1}"
    if not isinstance(entry, dict):
        raise BackupError(f"{where} is not a JSON object.")
    missing = [
        name
        for name in ("key_id", "state", "master_key_fingerprint", "wrapped_key", *DATES)
        if name not in entry
    ]
    if missing:
        raise BackupError(f"{where} lacks {', '.join(missing)}.")
    key_id = entry["key_id"]
    if type(key_id) is not int or not 0 < key_id <= _MAX_KEY_ID:
        raise BackupError(f"{where}: key_id must be a whole number from 1 to {_MAX_KEY_ID}.")
    where = f"{path}: data key {format_key_id(key_id)}"
    if entry["state"] not in STATES:
        raise BackupError(
            f"{where} has the unknown state {str(entry['state'])[:40]!r} (known: "
            f"{', '.join(sorted(STATES))})."
        )
    if not isinstance(entry["master_key_fingerprint"], str):
        raise BackupError(f"{where}: master_key_fingerprint must be a string.")
    return BackupKey(
        key_id,
        entry["state"],
        _wrapped(entry["wrapped_key"], where),
        entry["master_key_fingerprint"],
        {name: _date(entry[name], name, where) for name in DATES},
    )


def _wrapped(value: Any, where: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BackupError(f"{where}: wrapped_key must be base64 text or null.")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BackupError(f"{where} is malformed (wrapped_key is not base64).") from None


def _date(value: Any, name: str, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:  # well formed, but no such date (a 13th month)
        parsed = None
    if parsed is None:
        raise BackupError(f"{where}: {name} must be an ISO 8601 date and time, or null.")
    return parsed


def read_backup(path: Path) -> list[BackupKey]:
    """Parse and verify a backup file: its signature, its shape, and that every key unwraps."""
    return read_backup_file(path).keys


def read_backup_file(path: Path) -> LoadedBackup:
    """``read_backup``, with the file's blind-index keys (verified alike) and its version."""
    loaded = load_backup(path)
    for noun, key in [("data key", key) for key in loaded.keys] + [
        ("blind-index key", key) for key in loaded.index_keys
    ]:
        if key.wrapped_key is not None and not unwrap_with_any(key.key_id, key.wrapped_key):
            raise BackupError(
                f"{path}: no configured master key unwraps {noun} {format_key_id(key.key_id)} "
                f"(wrapped by master key {key.master_key_fingerprint})."
            )
    return loaded
