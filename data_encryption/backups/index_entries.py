"""The blind-index keys of a key backup: each live index key (wrapped, never plaintext) with its
slot, state, dates and the fields whose index under it was complete, as the signed document holds
them (``document``), and the strict parse of one entry.

A backup holds every index key that is not retired (a retired key's material is wiped with its
slot's values, so there is nothing to keep), plus the pending key an index-key rotation is
about to store (``files.back_up_before_new_index_key``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from ..index_keys import SLOTS
from ..keys import PendingKey
from ..models import IndexKey, IndexKeyState, format_key_id

PENDING = "pending"  # made and backed up, not yet stored in the IndexKey table
INDEX_STATES = frozenset({*IndexKeyState.LIVE, IndexKeyState.RETIRED, PENDING})
_MAX_KEY_ID = 2**32 - 1
_FIELDS = (
    "key_id",
    "slot",
    "state",
    "master_key_fingerprint",
    "wrapped_key",
    "created_at",
    "state_since",
    "complete_fields",
)


@dataclass(frozen=True)
class BackupIndexKey:
    """One blind-index key as a backup file holds it (wrapped; ``None`` once retired)."""

    key_id: int
    slot: str
    state: str
    wrapped_key: bytes | None
    master_key_fingerprint: str
    created_at: datetime
    state_since: datetime
    complete_fields: tuple[str, ...]

    def __repr__(self) -> str:
        return f"<BackupIndexKey {format_key_id(self.key_id)} slot={self.slot} {self.state}>"

    @property
    def hex_id(self) -> str:
        return format_key_id(self.key_id)

    @classmethod
    def of_row(cls, row: IndexKey) -> BackupIndexKey:
        wrapped = bytes(row.wrapped_key) if row.wrapped_key is not None else None
        return cls(
            row.key_id,
            row.slot,
            row.state,
            wrapped,
            row.master_key_fingerprint,
            row.created_at,
            row.state_since,
            tuple(sorted(row.complete_fields or ())),
        )

    @classmethod
    def of_pending(cls, pending: PendingKey, slot: str, now: datetime) -> BackupIndexKey:
        return cls(
            pending.key_id,
            slot,
            PENDING,
            pending.wrapped_key,
            pending.master_key_fingerprint,
            now,
            now,
            (),
        )

    def retired(self) -> BackupIndexKey:
        """This key with its material dropped, as the database holds a retired key."""
        return replace(self, state=IndexKeyState.RETIRED, wrapped_key=None)

    def entry(self) -> dict[str, Any]:
        """The JSON object of this key in a backup document."""
        return {
            "key_id": self.key_id,
            "hex_id": self.hex_id,
            "slot": self.slot,
            "state": self.state,
            "master_key_fingerprint": self.master_key_fingerprint,
            "wrapped_key": (
                base64.b64encode(self.wrapped_key).decode() if self.wrapped_key else None
            ),
            "created_at": self.created_at.isoformat(),
            "state_since": self.state_since.isoformat(),
            "complete_fields": list(self.complete_fields),
        }

    @classmethod
    def parsed(cls, entry: Any) -> BackupIndexKey:
        """The key ``entry`` (a JSON object) describes; ``ValueError`` saying what is wrong."""
        if not isinstance(entry, dict):
            raise ValueError("is not a JSON object")
        missing = [name for name in _FIELDS if name not in entry]
        if missing:
            raise ValueError(f"lacks {', '.join(missing)}")
        key_id = entry["key_id"]
        if type(key_id) is not int or not 0 < key_id <= _MAX_KEY_ID:
            raise ValueError(f"key_id must be a whole number from 1 to {_MAX_KEY_ID}")
        if entry["slot"] not in SLOTS:
            raise ValueError(f"{format_key_id(key_id)}: slot must be one of {', '.join(SLOTS)}")
        if entry["state"] not in INDEX_STATES:
            raise ValueError(
                f"{format_key_id(key_id)} has the unknown state {str(entry['state'])[:40]!r} "
                f"(known: {', '.join(sorted(INDEX_STATES))})"
            )
        fields = entry["complete_fields"]
        if not isinstance(fields, list) or not all(isinstance(name, str) for name in fields):
            raise ValueError(f"{format_key_id(key_id)}: complete_fields must be a list of names")
        if not isinstance(entry["master_key_fingerprint"], str):
            raise ValueError(f"{format_key_id(key_id)}: master_key_fingerprint must be a string")
        return cls(
            key_id,
            entry["slot"],
            entry["state"],
            _wrapped(entry["wrapped_key"], key_id),
            entry["master_key_fingerprint"],
            _date(entry["created_at"], "created_at", key_id),
            _date(entry["state_since"], "state_since", key_id),
            tuple(sorted(fields)),
        )


def _wrapped(value: Any, key_id: int) -> bytes | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"{format_key_id(key_id)}: wrapped_key must be base64 text or null"
        ) from None


def _date(value: Any, name: str, key_id: int) -> datetime:
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:  # well formed, but no such date
        parsed = None
    if parsed is None:
        raise ValueError(f"{format_key_id(key_id)}: {name} must be an ISO 8601 date and time")
    return parsed
