"""Data keys: the random 256-bit keys that encrypt field values.

Each is stored in the ``DataKey`` table wrapped by the master key (see ``master_key``). The
``KeyRing`` is this process's cache of them, unwrapped: it is reloaded when older than
``KEY_CACHE_SECONDS`` (so a rotation made by another process is picked up in bounded time) and
once when a value names a key id it does not hold. A key it cannot use (no master key unwraps
it) costs only the values under it; a primary that is unusable or whose metadata does not verify
(see ``key_audit``) refuses to encrypt, while every sound key still decrypts.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from time import monotonic

from django.db import IntegrityError, router, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from .ciphers import AeadCipher, generate_data_key
from .conf import encryption_settings, register_cache
from .envelope import format_key_id, header_for
from .exceptions import KeyConfigurationError, KeyUnavailableError, UnknownKeyError
from .key_audit import (
    KeyRow,
    forget_reported_keys,
    require_verified_metadata,
    signed_by,
    sort_key_rows,
    unwrap_failure,
    unwrap_material,
)
from .master_key import master_keys, reset_master_keys, rewrapped_for
from .missing_keys import MissingKeyIds

# Documented at these paths before the master key had its own module (README, recovery runbook);
# they keep working for settings and scripts that name them.
from .master_key import MasterKey, SettingsMasterKeyProvider  # noqa: F401  isort: skip
from .models import DataKey, IndexKey, KeyState

logger = logging.getLogger("data_encryption")
# How soon a ring is reloaded after a provider (KMS, HSM) failed for one of its keys.
PROVIDER_RETRY_SECONDS = 10.0


@dataclass(slots=True)
class KeyRing:
    """This process's unwrapped data keys: ``ciphers`` by key id, and the primary's id.

    ``unusable``: the keys the table holds that no configured master key unwraps, each with what
    a value under it is told. ``refusal``: why the primary may not encrypt ("" when it may).
    Built by ``load_key_ring``; treated as immutable once built, so readers need no lock.
    """

    ciphers: Mapping[int, AeadCipher]
    primary_id: int
    expires_at: float
    unusable: Mapping[int, str] = field(default_factory=dict)
    refusal: str = ""
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
        if self.refusal:
            # The refusal sits where the AEAD call would: the hot path checks nothing more.
            self.primary_encrypt = _refuse(self.refusal)
        else:
            self.primary_encrypt = self.ciphers[self.primary_id].aead.encrypt

    def __repr__(self) -> str:
        ids = ", ".join(format_key_id(key_id) for key_id in sorted(self.ciphers))
        unusable = ", ".join(format_key_id(key_id) for key_id in sorted(self.unusable))
        return f"<KeyRing primary={format_key_id(self.primary_id)} keys=[{ids}]" + (
            f" unusable=[{unusable}]>" if unusable else ">"
        )


def _refuse(message: str) -> Callable[[bytes, bytes, bytes], bytes]:
    def refuse(nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
        raise KeyConfigurationError(message)

    return refuse


class RingCache:
    """Where this process keeps its ring: one attribute, so the per-value hot path
    (``encryptor``) reads it without a function call."""

    __slots__ = ("ring",)

    def __init__(self) -> None:
        self.ring: KeyRing | None = None


ring_cache = RingCache()
missing_key_ids = MissingKeyIds()
_ring_lock = threading.Lock()


@register_cache
def reset_key_ring() -> None:
    """Forget the cached ring and master keys; the next use reloads both."""
    global _uncommitted_key_id
    ring_cache.ring = None
    _uncommitted_key_id = None
    missing_key_ids.clear()
    forget_reported_keys()
    reset_master_keys()


def key_ring() -> KeyRing:
    """The current key ring, reloaded when it is older than ``KEY_CACHE_SECONDS``."""
    ring = ring_cache.ring
    if ring is None or monotonic() >= ring.expires_at:
        ring = _reload()
    return ring


def warm_up_key_ring() -> KeyRing:
    """Load this process's ring now (making the first data key if the table has none), so the
    next ``KEY_CACHE_SECONDS`` of encrypting and decrypting cost no query for keys: the first
    encrypted value of a process otherwise pays one. Public as ``EncryptionService.warm_up``."""
    return _reload()


def cipher_for(key_id: int) -> AeadCipher:
    """The cipher of data key ``key_id``: from the ring, else after one reload (at most once
    per id per ``KEY_CACHE_SECONDS``), else ``UnknownKeyError`` (``KeyUnavailableError`` for a
    key the table holds but no configured master key unwraps)."""
    ring = ring_cache.ring or key_ring()
    cipher = ring.ciphers.get(key_id)
    if cipher is not None:
        return cipher
    if key_id not in ring.unusable and key_id not in missing_key_ids:
        ring = _reload()
        cipher = ring.ciphers.get(key_id)
        if cipher is not None:
            return cipher
        if key_id not in ring.unusable:
            missing_key_ids.add(key_id, encryption_settings.key_cache_seconds)
    if key_id in ring.unusable:
        raise KeyUnavailableError(ring.unusable[key_id], key_id=key_id)
    raise UnknownKeyError(
        f"The value was encrypted with data key {format_key_id(key_id)}, which this database "
        "does not hold (or it was destroyed). Restore the key from a key backup with "
        "'manage.py restore_encryption_keys <file>', or check that DATABASES points at the right "
        "database.",
        key_id=key_id,
    )


def _reload() -> KeyRing:
    with _ring_lock:
        previous = ring_cache.ring
        ring = load_key_ring(previous=previous.ciphers if previous else None)
        ring_cache.ring = ring
        return ring


def key_database() -> str:
    return router.db_for_write(DataKey)


# Cold paths that hold data keys unwrapped are marked with Django's sensitive_variables (it covers
# the frames they call); the per-value paths of the encryptor are not (docs/security.md).
@sensitive_variables()
def load_key_ring(
    using: str | None = None, previous: Mapping[int, AeadCipher] | None = None
) -> KeyRing:
    """Read and unwrap every data key that is not destroyed, key by key: one that no master key
    unwraps is left out (its values fail alone) and logged once; a tampered or unauthenticated
    key still decrypts (its material is authenticated by the wrap) but is logged, and a primary
    that is either refuses to encrypt. Makes the first primary key if there is none.

    Each key costs one unwrap (one call to a KMS or an HSM). When a provider cannot be reached,
    the keys of ``previous`` (the ring this one replaces) are kept, and the ring is reloaded
    after ``PROVIDER_RETRY_SECONDS`` rather than ``KEY_CACHE_SECONDS``."""
    global _uncommitted_key_id
    # The master keys first: a malformed DB_ENCRYPTION_KEY (or fallback) is reported as itself,
    # before any query, not as whatever the query meets first (e.g. a test that has no database).
    master_keys()
    using = using or key_database()
    rows = list(DataKey.objects.using(using).exclude(state=KeyState.DESTROYED))
    if not any(row.state == KeyState.PRIMARY for row in rows):
        rows.append(ensure_primary_key(using))
    keys = sort_key_rows(rows, previous or {})
    if _uncommitted_key_id is not None and (
        all(row.key_id != _uncommitted_key_id for row in rows)
        or not transaction.get_connection(using).in_atomic_block
    ):
        # Absent: its transaction rolled back. Present outside any transaction: committed.
        _uncommitted_key_id = None
    lifetime = 0.0 if _uncommitted_key_id is not None else encryption_settings.key_cache_seconds
    if keys.retry_soon:
        lifetime = min(lifetime, PROVIDER_RETRY_SECONDS)
    return KeyRing(
        keys.ciphers, keys.primary_id, monotonic() + lifetime, keys.unusable, keys.refusal
    )


@sensitive_variables()
def unwrap_data_key(row: DataKey) -> bytes:
    """The material of ``row``, unwrapped by whichever configured master key wrapped it."""
    material = unwrap_material(row)
    if material is not None:
        return material
    raise KeyConfigurationError(unwrap_failure(row))


@dataclass(frozen=True)
class PendingKey:
    """A new data key, already wrapped, not yet stored (rotation backs it up first)."""

    key_id: int
    wrapped_key: bytes
    master_key_fingerprint: str

    def __repr__(self) -> str:
        return f"<PendingKey {format_key_id(self.key_id)}>"


def generate_wrapped_key(using: str) -> PendingKey:
    """Make new key material (a data key's or a blind-index key's) and wrap it under the
    current master key, with a random id no data key and no index key has: the wrap binds the
    id, so a wrapped key copied between the two tables never unwraps as the other."""
    master = master_keys()[0]
    for _attempt in range(8):
        key_id = secrets.randbits(32)
        if (
            key_id != 0
            and not DataKey.objects.using(using).filter(key_id=key_id).exists()
            and not IndexKey.objects.using(using).filter(key_id=key_id).exists()
        ):
            return PendingKey(key_id, master.wrap(key_id, generate_data_key()), master.fingerprint)
    raise RuntimeError("Could not find a free key id in 8 attempts.")  # 2^-32 odds each


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
    ``(rewrapped ids, already current ids)``. Safe to rerun. Every row's metadata (destroyed
    keys' too) is re-authenticated under the current master key; a row whose metadata does not
    verify stops it before anything is written (``key_audit.require_verified_metadata``).
    """
    using = using or key_database()
    current = master_keys()[0]
    with transaction.atomic(using=using):
        rows = DataKey.objects.using(using).select_for_update().order_by("created_at", "key_id")
        rewrapped, current_ids = rewrap_rows(rows, "re-wrap the data keys", using)
    for key_id in rewrapped:
        logger.info(
            "Re-wrapped data key %s under master key %s.",
            format_key_id(key_id),
            current.fingerprint,
        )
    reset_key_ring()
    return rewrapped, current_ids


@sensitive_variables()
def rewrap_rows(rows: Iterable[KeyRow], action: str, using: str) -> tuple[list[int], list[int]]:
    """Re-wrap key rows (data keys' or index keys', locked by the caller's transaction) under
    the current master key and re-sign every one of them; ``(rewrapped ids, already current
    ids)``. Rows whose metadata does not verify stop it before anything is written."""
    current = master_keys()[0]
    rewrapped, current_ids = [], []
    for row in require_verified_metadata(rows, action):
        if row.wrapped_key is not None:
            wrapped = rewrapped_for(
                current, row.key_id, bytes(row.wrapped_key), row.master_key_fingerprint
            )
            # A stale fingerprint (the key already unwraps under the current master key) is
            # mended like a re-wrap: the fingerprint is what tells the next change which rows
            # still need one.
            if wrapped is not None or row.master_key_fingerprint != current.fingerprint:
                row.wrapped_key = wrapped or row.wrapped_key
                row.master_key_fingerprint = current.fingerprint
                row.save(using=using)  # save() authenticates under the current master key
                rewrapped.append(row.key_id)
                continue
            current_ids.append(row.key_id)
        if not signed_by(current, row):  # e.g. a destroyed key's, by the old master key
            row.save(using=using)
    return rewrapped, current_ids
