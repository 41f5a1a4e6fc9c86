"""Data keys: the random 256-bit keys that encrypt field values.

Each is stored in the ``DataKey`` table wrapped by the master key (see ``master_key``). The
``KeyRing`` is this process's cache of them, unwrapped: it is reloaded when older than
``KEY_CACHE_SECONDS`` (so a rotation made by another process is picked up in bounded time) and
once when a value names a key id it does not hold.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from time import monotonic

from cryptography.exceptions import InvalidTag
from django.db import IntegrityError, router, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from .ciphers import AeadCipher, generate_data_key
from .conf import encryption_settings, register_cache
from .envelope import format_key_id, header_for
from .exceptions import KeyConfigurationError, UnknownKeyError
from .master_key import master_keys, reset_master_keys, unwrap_with_any

# Documented at these paths before the master key had its own module (README, recovery runbook);
# they keep working for settings and scripts that name them.
from .master_key import MasterKey, SettingsMasterKeyProvider  # noqa: F401  isort: skip
from .models import DataKey, KeyState

logger = logging.getLogger("data_encryption")


@dataclass(slots=True)
class KeyRing:
    """This process's unwrapped data keys: ``ciphers`` by key id, and the primary's id.

    Built by ``load_key_ring``; treated as immutable once built, so readers need no lock.
    """

    ciphers: Mapping[int, AeadCipher]
    primary_id: int
    expires_at: float
    # Ids a value named that the last reload did not find: not worth another query until the
    # ring expires, or a corrupt column would cost one query per row.
    missing: set[int] = field(default_factory=set)
    # The hot paths of the encryptor: each key's AESGCM ``decrypt`` (bound once) by the 8-byte
    # envelope header, and the primary's header and ``encrypt``, so a value costs one dict
    # lookup and one AEAD call.
    decrypt_by_header: dict[bytes, Callable[[bytes, bytes, bytes], bytes]] = field(
        init=False, repr=False
    )
    primary_header: bytes = field(init=False, repr=False)
    primary_encrypt: Callable[[bytes, bytes, bytes], bytes] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.decrypt_by_header = {
            header_for(key_id): cipher.aead.decrypt for key_id, cipher in self.ciphers.items()
        }
        self.primary_header = header_for(self.primary_id)
        self.primary_encrypt = self.ciphers[self.primary_id].aead.encrypt

    def __repr__(self) -> str:
        ids = ", ".join(format_key_id(key_id) for key_id in sorted(self.ciphers))
        return f"<KeyRing primary={format_key_id(self.primary_id)} keys=[{ids}]>"


class RingCache:
    """Where this process keeps its ring: one attribute, so the per-value hot path
    (``encryptor``) reads it without a function call."""

    __slots__ = ("ring",)

    def __init__(self) -> None:
        self.ring: KeyRing | None = None


ring_cache = RingCache()
_ring_lock = threading.Lock()


@register_cache
def reset_key_ring() -> None:
    """Forget the cached ring and master keys; the next use reloads both."""
    global _uncommitted_key_id
    ring_cache.ring = None
    _uncommitted_key_id = None
    reset_master_keys()


def key_ring() -> KeyRing:
    """The current key ring, reloaded when it is older than ``KEY_CACHE_SECONDS``."""
    ring = ring_cache.ring
    if ring is None or monotonic() >= ring.expires_at:
        ring = _reload()
    return ring


def cipher_for(key_id: int) -> AeadCipher:
    """The cipher of data key ``key_id``: from the ring, else after one reload, else an error."""
    ring = ring_cache.ring or key_ring()
    cipher = ring.ciphers.get(key_id)
    if cipher is not None:
        return cipher
    if key_id not in ring.missing:
        ring = _reload()
        cipher = ring.ciphers.get(key_id)
        if cipher is not None:
            return cipher
        ring.missing.add(key_id)
    raise UnknownKeyError(
        f"The value was encrypted with data key {format_key_id(key_id)}, which this database "
        "does not hold (or it was destroyed). Restore the key from a key backup with "
        "'manage.py restore_encryption_keys <file>', or check that DATABASES points at the right "
        "database.",
        key_id=key_id,
    )


def _reload() -> KeyRing:
    with _ring_lock:
        ring = load_key_ring()
        ring_cache.ring = ring
        return ring


def key_database() -> str:
    return router.db_for_write(DataKey)


# Cold paths that hold data keys unwrapped are marked with Django's sensitive_variables (it covers
# the frames they call); the per-value paths of the encryptor are not (docs/security.md).
@sensitive_variables()
def load_key_ring(using: str | None = None) -> KeyRing:
    """Read and unwrap every usable data key; make the first primary key if there is none."""
    using = using or key_database()
    rows = list(DataKey.objects.using(using).exclude(state=KeyState.DESTROYED))
    if not any(row.state == KeyState.PRIMARY for row in rows):
        rows.append(ensure_primary_key(using))
    ciphers = {row.key_id: AeadCipher(unwrap_data_key(row)) for row in rows}
    primary_id = next(row.key_id for row in rows if row.state == KeyState.PRIMARY)
    lifetime = encryption_settings.key_cache_seconds
    if _uncommitted_key_id is not None:
        lifetime = 0.0
    return KeyRing(ciphers=ciphers, primary_id=primary_id, expires_at=monotonic() + lifetime)


@sensitive_variables()
def unwrap_data_key(row: DataKey) -> bytes:
    """The material of ``row``, unwrapped by whichever configured master key wrapped it."""
    wrapped = bytes(row.wrapped_key) if row.wrapped_key is not None else b""
    material = unwrap_with_any(row.key_id, wrapped, row.master_key_fingerprint)
    if material is not None:
        return material
    raise KeyConfigurationError(
        f"No configured master key can unwrap data key {row.hex_id} (it was wrapped by the master "
        f"key with fingerprint {row.master_key_fingerprint}). Put that key back in "
        "DB_ENCRYPTION_KEY or DB_ENCRYPTION_KEY_FALLBACKS."
    )


@dataclass(frozen=True)
class PendingKey:
    """A new data key, already wrapped, not yet stored (rotation backs it up first)."""

    key_id: int
    wrapped_key: bytes
    master_key_fingerprint: str

    def __repr__(self) -> str:
        return f"<PendingKey {format_key_id(self.key_id)}>"


def generate_wrapped_key(using: str) -> PendingKey:
    """Make new key material and wrap it under the current master key, with a free random id."""
    master = master_keys()[0]
    for _attempt in range(8):
        key_id = secrets.randbits(32)
        if key_id != 0 and not DataKey.objects.using(using).filter(key_id=key_id).exists():
            return PendingKey(key_id, master.wrap(key_id, generate_data_key()), master.fingerprint)
    raise RuntimeError("Could not find a free data key id in 8 attempts.")  # 2^-32 odds each


def create_data_key(
    using: str, *, state: str, now: datetime | None = None, pending: PendingKey | None = None
) -> DataKey:
    """Save a new data key (``pending`` if given, else a fresh one). The caller owns the
    transaction."""
    pending = pending or generate_wrapped_key(using)
    created = now or timezone.now()
    row = DataKey(
        key_id=pending.key_id,
        state=state,
        wrapped_key=pending.wrapped_key,
        master_key_fingerprint=pending.master_key_fingerprint,
        created_at=created,
        primary_since=created if state == KeyState.PRIMARY else None,
    )
    row.save(using=using, force_insert=True)
    logger.info("Created data key %s (%s).", row.hex_id, state)
    return row


def ensure_primary_key(using: str | None = None) -> DataKey:
    """Return the primary data key, making the first one if the table has none.

    Two processes racing here both try to insert; the partial unique index on ``state='primary'``
    lets exactly one win, and the loser reads the winner's key.
    """
    using = using or key_database()
    existing = DataKey.objects.using(using).filter(state=KeyState.PRIMARY).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic(using=using):
            row = create_data_key(using, state=KeyState.PRIMARY)
    except IntegrityError:
        return DataKey.objects.using(using).get(state=KeyState.PRIMARY)
    if transaction.get_connection(using).in_atomic_block:
        _hold_cache_until_commit(using, row.key_id)
    return row


# The id of a first key made inside a caller's transaction that has not committed yet. If that
# transaction rolls back the key is gone, so until the commit the ring is never cached: every
# use reloads and sees the truth.
_uncommitted_key_id: int | None = None


def _hold_cache_until_commit(using: str, key_id: int) -> None:
    global _uncommitted_key_id
    _uncommitted_key_id = key_id

    def committed() -> None:
        global _uncommitted_key_id
        if _uncommitted_key_id == key_id:
            _uncommitted_key_id = None

    transaction.on_commit(committed, using=using)


@sensitive_variables()
def rewrap_data_keys(using: str | None = None) -> tuple[list[int], list[int]]:
    """Re-wrap every stored data key under the current master key.

    For a master-key change: with the new key in ``DB_ENCRYPTION_KEY`` and the old one in
    ``DB_ENCRYPTION_KEY_FALLBACKS``, this touches a handful of rows, not the data. Returns
    ``(rewrapped ids, already current ids)``. Safe to rerun.
    """
    using = using or key_database()
    current = master_keys()[0]
    rewrapped, current_ids = [], []
    with transaction.atomic(using=using):
        rows = DataKey.objects.using(using).select_for_update().exclude(wrapped_key=None)
        for row in rows.order_by("created_at", "key_id"):
            wrapped = bytes(row.wrapped_key or b"")  # never None: excluded above
            if row.master_key_fingerprint == current.fingerprint:
                try:  # the fingerprint is a hint; prove it
                    current.unwrap(row.key_id, wrapped)
                    current_ids.append(row.key_id)
                    continue
                except InvalidTag:
                    pass
            material = unwrap_data_key(row)
            row.wrapped_key = current.wrap(row.key_id, material)
            row.master_key_fingerprint = current.fingerprint
            row.save(using=using, update_fields=["wrapped_key", "master_key_fingerprint"])
            rewrapped.append(row.key_id)
    for key_id in rewrapped:
        logger.info(
            "Re-wrapped data key %s under master key %s.",
            format_key_id(key_id),
            current.fingerprint,
        )
    reset_key_ring()
    return rewrapped, current_ids
