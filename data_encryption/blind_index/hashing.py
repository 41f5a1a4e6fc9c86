"""The blind index of a value: HMAC-SHA256 under the field's own key, cut to 16 bytes.

16 bytes (128 bits) keep accidental collisions out of reach (about 1 in 10^20 for a billion
distinct values, so a unique index never refuses two different values) while halving the
index's size against the full digest; docs/search.md weighs shorter ones.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from ..index_keys import SLOTS, index_key_ring

DIGEST_BYTES = 16


def digest(field_key: bytes, data: bytes) -> bytes:
    return hmac.new(field_key, data, hashlib.sha256).digest()[:DIGEST_BYTES]


def digester(field_key: bytes) -> Callable[[bytes], bytes]:
    """``digest`` under one field key, for hashing many values (an index walk): the key's inner
    and outer SHA-256 states are made once (RFC 2104) and copied per value, which costs about a
    third of a fresh HMAC. Same bytes as ``digest``."""
    size = hashlib.sha256().block_size
    if len(field_key) > size:  # as HMAC does with a key longer than a block
        field_key = hashlib.sha256(field_key).digest()
    block = field_key.ljust(size, b"\x00")
    inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
    outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))

    def keyed(data: bytes) -> bytes:
        state = inner.copy()
        state.update(data)
        result = outer.copy()
        result.update(state.digest())
        return result.digest()[:DIGEST_BYTES]

    return keyed


def read_digest(context: bytes, data: bytes) -> bytes:
    """What a query compares the index with: ``data``'s digest under the active key."""
    ring = index_key_ring()
    return _digester(ring.field_key(ring.active, context))(data)


def write_digests(context: bytes, data: bytes | None) -> tuple[bytes | None, ...]:
    """What a write stores in each slot: ``data``'s digest under each live key (``None`` for
    a NULL value and for a slot no live key fills)."""
    return tuple(slot_digest(context, data, slot) for slot in SLOTS)


def slot_digest(context: bytes, data: bytes | None, slot: str) -> bytes | None:
    """What a write stores in one slot (see ``write_digests``)."""
    if data is None:
        return None
    ring = index_key_ring()
    key = ring.slots.get(slot)
    return None if key is None else _digester(ring.field_key(key, context))(data)


# Each field key's digester, made once: a save or a query hashes with the HMAC states copied,
# not rebuilt. Keyed by the field key itself, so a key the ring no longer holds is never used.
_digesters: dict[bytes, Callable[[bytes], bytes]] = {}


def _digester(field_key: bytes) -> Callable[[bytes], bytes]:
    found = _digesters.get(field_key)
    if found is None:
        if len(_digesters) > 1024:  # keys of rotated-out index keys, over a long life
            _digesters.clear()
        found = _digesters[field_key] = digester(field_key)
    return found
