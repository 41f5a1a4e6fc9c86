"""Blind-index keys: the random 256-bit keys under which indexed fields hash their values.

They are kept apart from data keys (a data-key rotation leaves every index valid) in the
``IndexKey`` table, wrapped by the master key like data keys. Each live key owns one of the two
index columns ("slots" ``a`` and ``b``) of every indexed field; see ``IndexKeyState`` for their
life and docs/search.md for why two. The ``IndexKeyRing`` is this process's cache of them,
unwrapped, reloaded like the data key ring every ``KEY_CACHE_SECONDS``.

A field's own key is derived from the index key and the field's context (``app_label.Model.field``),
so equal values of two fields never share an index value.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from dataclasses import dataclass, field
from time import monotonic

from django.db import IntegrityError, router, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from .ciphers import generate_data_key
from .conf import encryption_settings, register_cache
from .envelope import format_key_id
from .exceptions import IndexKeyUnavailableError, KeyConfigurationError
from .master_key import master_keys, rewrapped_for, unwrap_with_any
from .models import DataKey, IndexKey, IndexKeyState

logger = logging.getLogger("data_encryption")

SLOTS = ("a", "b")
_FIELD_KEY_INFO = b"data_encryption/blind-index/v1\x00"


@dataclass(frozen=True, slots=True)
class SlotKey:
    """The key that fills one slot. ``material`` is ``None`` when no configured master key
    unwraps it; ``complete``: the field contexts whose index under it covers every row."""

    key_id: int
    slot: str
    state: str
    material: bytes | None = field(repr=False)
    complete: frozenset[str] = field(repr=False)

    @property
    def hex_id(self) -> str:
        return format_key_id(self.key_id)

    def field_key(self, context: bytes) -> bytes:
        """The key of one field under this index key (HMAC-SHA256 of its context)."""
        if self.material is None:
            raise IndexKeyUnavailableError(
                f"Blind-index key {self.hex_id} (slot {self.slot}, {self.state}) is in the key "
                "table, but no configured master key unwraps it. Put the master key that "
                "wrapped it back in DB_ENCRYPTION_KEY_FALLBACKS, or restore the index keys from "
                "a key backup; 'manage.py encryption_status' lists the keys.",
                key_id=self.key_id,
            )
        return hmac.new(self.material, _FIELD_KEY_INFO + context, hashlib.sha256).digest()


@dataclass(slots=True)
class IndexKeyRing:
    """This process's live index keys by slot, and which slot queries read (the active key's)."""

    slots: dict[str, SlotKey]
    active_slot: str
    expires_at: float
    # Field keys derived so far, by (key id, context): one HMAC per field per ring, not per value.
    _field_keys: dict[tuple[int, bytes], bytes] = field(default_factory=dict, repr=False)

    @property
    def active(self) -> SlotKey:
        return self.slots[self.active_slot]

    def field_key(self, key: SlotKey, context: bytes) -> bytes:
        cached = self._field_keys.get((key.key_id, context))
        if cached is None:
            cached = self._field_keys[key.key_id, context] = key.field_key(context)
        return cached

    def __repr__(self) -> str:
        slots = ", ".join(f"{s}={k.hex_id}:{k.state}" for s, k in sorted(self.slots.items()))
        return f"<IndexKeyRing read={self.active_slot} {slots}>"


class _RingCache:
    __slots__ = ("ring",)

    def __init__(self) -> None:
        self.ring: IndexKeyRing | None = None


_cache = _RingCache()
_lock = threading.Lock()


@register_cache
def reset_index_key_ring() -> None:
    _cache.ring = None


def index_key_ring() -> IndexKeyRing:
    """The current index key ring, reloaded when older than ``KEY_CACHE_SECONDS`` (so a switch
    made by an index-key rotation in another process is seen within that time)."""
    ring = _cache.ring
    if ring is None or monotonic() >= ring.expires_at:
        with _lock:
            ring = _cache.ring = load_index_key_ring()
    return ring


def index_key_database() -> str:
    return router.db_for_write(IndexKey)


@sensitive_variables()
def load_index_key_ring(using: str | None = None) -> IndexKeyRing:
    """Read and unwrap the live index keys, making the first one if there is none."""
    master_keys()  # a malformed master key is reported as itself, before any query
    using = using or index_key_database()
    rows = list(IndexKey.objects.using(using).filter(state__in=IndexKeyState.LIVE))
    lifetime = encryption_settings.key_cache_seconds
    if not any(row.state == IndexKeyState.ACTIVE for row in rows):
        rows.append(ensure_active_index_key(using))
        if transaction.get_connection(using).in_atomic_block:
            # A first key made inside the caller's transaction is gone if it rolls back: the
            # ring is not kept past this use, so no later use hashes under a key nobody stored.
            lifetime = 0.0
    slots = {}
    for row in rows:
        material = None
        if row.wrapped_key is not None:
            material = unwrap_with_any(
                row.key_id, bytes(row.wrapped_key), row.master_key_fingerprint
            )
        if material is None:
            logger.error(
                "Blind-index key %s (slot %s) cannot be unwrapped by any configured master key.",
                row.hex_id,
                row.slot,
            )
        slots[row.slot] = SlotKey(
            row.key_id, row.slot, row.state, material, frozenset(row.complete_fields or ())
        )
    active = next(row.slot for row in rows if row.state == IndexKeyState.ACTIVE)
    return IndexKeyRing(slots, active, monotonic() + lifetime)


def ensure_active_index_key(using: str | None = None) -> IndexKey:
    """The active index key, making the first one (slot ``a``) if there is none. Two processes
    racing here both try; the partial unique index on ``state='active'`` lets one win."""
    using = using or index_key_database()
    existing = IndexKey.objects.using(using).filter(state=IndexKeyState.ACTIVE).first()
    if existing is not None:
        return existing
    taken = set(
        IndexKey.objects.using(using)
        .filter(state__in=IndexKeyState.LIVE)
        .values_list("slot", flat=True)
    )
    slot = next((s for s in SLOTS if s not in taken), None)
    if slot is None:  # both slots filling or draining and none active: a run was interrupted
        raise KeyConfigurationError(
            "No blind-index key is active, and both index slots are taken. Finish the "
            "interrupted index-key rotation with 'manage.py rotate_encryption_key --index-keys'."
        )
    try:
        with transaction.atomic(using=using):
            return create_index_key(using, slot=slot, state=IndexKeyState.ACTIVE)
    except IntegrityError:
        return IndexKey.objects.using(using).get(state=IndexKeyState.ACTIVE)


@sensitive_variables()
def create_index_key(using: str, *, slot: str, state: str) -> IndexKey:
    """Store a new index key, wrapped under the current master key. Its id is distinct from
    every data key's and index key's, so a wrapped key copied between the two tables (the wrap
    binds the id) never unwraps as the other."""
    master = master_keys()[0]
    for _attempt in range(8):
        key_id = secrets.randbits(32)
        if (
            key_id != 0
            and not IndexKey.objects.using(using).filter(key_id=key_id).exists()
            and not DataKey.objects.using(using).filter(key_id=key_id).exists()
        ):
            break
    else:
        raise RuntimeError("Could not find a free index key id in 8 attempts.")
    now = timezone.now()
    row = IndexKey(
        key_id=key_id,
        slot=slot,
        state=state,
        wrapped_key=master.wrap(key_id, generate_data_key()),
        master_key_fingerprint=master.fingerprint,
        created_at=now,
        state_since=now,
    )
    row.save(using=using, force_insert=True)
    logger.info("Created blind-index key %s (slot %s, %s).", row.hex_id, slot, state)
    return row


def mark_complete(key_id: int, context: str, using: str | None = None) -> None:
    """Record that every row of field ``context`` has its index under key ``key_id``."""
    using = using or index_key_database()
    with transaction.atomic(using=using):
        row = IndexKey.objects.using(using).select_for_update().get(key_id=key_id)
        if context not in row.complete_fields:
            row.complete_fields = sorted({*row.complete_fields, context})
            row.save(using=using, update_fields=["complete_fields"])
    reset_index_key_ring()


@sensitive_variables()
def rewrap_index_keys(using: str | None = None) -> list[int]:
    """Re-wrap every live index key under the current master key (a master-key change);
    returns the ids re-wrapped. Safe to rerun."""
    using = using or index_key_database()
    current = master_keys()[0]
    rewrapped = []
    with transaction.atomic(using=using):
        rows = IndexKey.objects.using(using).select_for_update().exclude(wrapped_key=None)
        for row in rows:
            assert row.wrapped_key is not None
            wrapped = rewrapped_for(
                current, row.key_id, bytes(row.wrapped_key), row.master_key_fingerprint
            )
            if wrapped is not None or row.master_key_fingerprint != current.fingerprint:
                row.wrapped_key = wrapped or row.wrapped_key
                row.master_key_fingerprint = current.fingerprint
                row.save(using=using, update_fields=["wrapped_key", "master_key_fingerprint"])
                rewrapped.append(row.key_id)
    reset_index_key_ring()
    return rewrapped
