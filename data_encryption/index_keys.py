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
import threading
from dataclasses import dataclass, field
from time import monotonic

from django.db import IntegrityError, router, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from .conf import encryption_settings, register_cache
from .envelope import format_key_id
from .exceptions import IndexKeyUnavailableError, KeyConfigurationError
from .key_audit import (
    Metadata,
    metadata_problem,
    metadata_verdict,
    require_verified_metadata,
    unwrap_row,
)
from .keys import PROVIDER_RETRY_SECONDS, PendingKey, generate_wrapped_key, rewrap_rows
from .master_key import master_keys
from .models import IndexKey, IndexKeyState

logger = logging.getLogger("data_encryption")

SLOTS = ("a", "b")
_FIELD_KEY_INFO = b"data_encryption/blind-index/v1\x00"


@dataclass(frozen=True, slots=True)
class SlotKey:
    """The key that fills one slot. ``material`` is ``None`` when no configured master key
    unwraps it; ``complete``: the field contexts whose index under it covers every row;
    ``refusal``: why no query may read its slot ("" when one may)."""

    key_id: int
    slot: str
    state: str
    material: bytes | None = field(repr=False)
    complete: frozenset[str] = field(repr=False)
    refusal: str = field(default="", repr=False)

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
        """The key queries read; ``IndexKeyUnavailableError`` when its row's metadata does not
        verify. Writes still hash under it (its material is authenticated by the wrap): only
        its state and ``complete_fields``, which decide what a query trusts, are in doubt."""
        key = self.slots[self.active_slot]
        if key.refusal:
            raise IndexKeyUnavailableError(key.refusal, key_id=key.key_id)
        return key

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


# (key id, verdict) pairs already logged: once per bad row, not per reload; forgotten with the
# ring, so a row still wrong after an operator's fix is logged again.
_refused: set[tuple[int, str]] = set()


@register_cache
def reset_index_key_ring() -> None:
    _cache.ring = None
    _refused.clear()


def index_key_ring() -> IndexKeyRing:
    """The current index key ring, reloaded when older than ``KEY_CACHE_SECONDS`` (so a switch
    made by an index-key rotation in another process is seen within that time)."""
    ring = _cache.ring
    if ring is None or monotonic() >= ring.expires_at:
        with _lock:
            previous = _cache.ring
            ring = _cache.ring = load_index_key_ring(previous=previous)
    return ring


def index_key_database() -> str:
    return router.db_for_write(IndexKey)


@sensitive_variables()
def load_index_key_ring(
    using: str | None = None, previous: IndexKeyRing | None = None
) -> IndexKeyRing:
    """Read and unwrap the live index keys, making the first one if there is none. A key whose
    provider (KMS, HSM) cannot be reached keeps its material from ``previous``, and the ring is
    reloaded after ``PROVIDER_RETRY_SECONDS``."""
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
    held = {key.key_id: key.material for key in previous.slots.values()} if previous else {}
    slots = {}
    for row in rows:
        got = unwrap_row(row) if row.wrapped_key is not None else None
        material = got.material if got else None
        if got and got.problem:
            lifetime = min(lifetime, PROVIDER_RETRY_SECONDS)
            if got.unavailable and held.get(row.key_id):
                material = held[row.key_id]  # a loaded process keeps working through an outage
        if material is None:
            logger.error(
                "Blind-index key %s (slot %s) cannot be unwrapped: %s",
                row.hex_id,
                row.slot,
                got.problem if got and got.problem else "no configured master key wraps it.",
            )
        slots[row.slot] = SlotKey(
            row.key_id,
            row.slot,
            row.state,
            material,
            frozenset(row.complete_fields or ()),
            read_refusal(row),
        )
    active = next(row.slot for row in rows if row.state == IndexKeyState.ACTIVE)
    return IndexKeyRing(slots, active, monotonic() + lifetime)


def read_refusal(row: IndexKey) -> str:
    """Why no query may read ``row``'s slot ("" when one may): its metadata does not verify, so
    its state (a filling key made active early, a retired one revived) or ``complete_fields``
    may have been set outside the application, and answers read from it could miss rows."""
    verdict = metadata_verdict(row)
    if verdict == Metadata.VERIFIED:
        return ""
    problem = metadata_problem(row.hex_id, verdict, "blind-index key")
    if (row.key_id, verdict) not in _refused:
        _refused.add((row.key_id, verdict))
        logger.error("%s Queries on indexed fields are refused until it is fixed.", problem)
    return (
        f"Refusing to answer a query from blind-index key {row.hex_id} (slot {row.slot}, "
        f"{row.state}). {problem} Compare the index key table with your latest key backup "
        "('manage.py restore_encryption_keys <file>' brings lost keys back); a row that is "
        "right as it stands can be signed with 'manage.py authenticate_data_keys "
        f"{row.hex_id}'."
    )


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


def generate_wrapped_index_key(using: str) -> PendingKey:
    """A new index key, wrapped under the current master key and not yet stored (so a key
    backup can hold it first); made as a data key is (``keys.generate_wrapped_key``)."""
    return generate_wrapped_key(using)


def create_index_key(
    using: str, *, slot: str, state: str, pending: PendingKey | None = None
) -> IndexKey:
    """Store a new index key (``pending``, as ``generate_wrapped_index_key`` made it and a
    backup holds it, or a fresh one) in ``slot``."""
    pending = pending or generate_wrapped_index_key(using)
    now = timezone.now()
    row = IndexKey(
        key_id=pending.key_id,
        slot=slot,
        state=state,
        wrapped_key=pending.wrapped_key,
        master_key_fingerprint=pending.master_key_fingerprint,
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
            # Signing the change must not vouch for an edit made outside the application.
            require_verified_metadata([row], "record a complete blind index")
            row.complete_fields = sorted({*row.complete_fields, context})
            row.save(using=using, update_fields=["complete_fields"])
    reset_index_key_ring()


def rewrap_index_keys(using: str | None = None) -> tuple[list[int], list[int]]:
    """Re-wrap every index key under the current master key (a master-key change), as
    ``keys.rewrap_data_keys`` does data keys: ``(rewrapped ids, already current ids)``; every
    row (retired keys' too) is re-signed, and one whose metadata does not verify stops it
    before anything is written. Safe to rerun."""
    using = using or index_key_database()
    with transaction.atomic(using=using):
        rows = IndexKey.objects.using(using).select_for_update().order_by("created_at", "key_id")
        done = rewrap_rows(rows, "re-wrap the index keys", using)
    reset_index_key_ring()
    return done
