"""Keys: the master key, the data keys it wraps, and the per-process key ring.

``DB_ENCRYPTION_KEY`` is the master key. It never encrypts field data; it wraps random 256-bit
data keys kept in the ``DataKey`` table. The ``KeyRing`` is this process's cache of the unwrapped
data keys: it is reloaded when older than ``KEY_CACHE_SECONDS`` (so a rotation made by another
process is picked up in bounded time) and once when a value names a key id it does not hold.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.db import IntegrityError, router, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from .ciphers import AeadCipher, generate_data_key
from .conf import encryption_settings, register_cache
from .exceptions import KeyConfigurationError, UnknownKeyError
from .models import DataKey, KeyState, format_key_id

logger = logging.getLogger("data_encryption")

WRAP_FORMAT_V1 = b"\x01"
_WRAP_INFO = b"data_encryption/key-wrap/v1"
_FINGERPRINT_INFO = b"data_encryption/master-key-fingerprint/v1"
_BACKUP_MAC_INFO = b"data_encryption/backup-mac/v1"


GENERATE_KEY_HINT = (
    'Generate one with: python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"'
)


def parse_fernet_key(value: str | bytes, setting: str) -> bytes:
    """Return the 32 raw bytes of a Fernet-compatible key, or raise naming the setting, never the
    value."""
    if isinstance(value, str):
        value = value.encode("ascii", "replace")
    if not isinstance(value, bytes):
        raise KeyConfigurationError(
            f"{setting} must be a string made by Fernet.generate_key(), not {type(value).__name__}."
        )
    try:
        raw = base64.urlsafe_b64decode(value)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise KeyConfigurationError(
            f"{setting} is not a Fernet key (32 bytes, URL-safe base64). {GENERATE_KEY_HINT}"
        )
    return raw


class MasterKey:
    """One master key: wraps and unwraps data keys, and names itself by a one-way fingerprint.

    The wrapping key is derived from the master key with HKDF, so the bytes that wrap data keys
    are never the bytes a legacy Fernet token was made with.
    """

    __slots__ = ("_fernet", "_mac_key", "_wrapper", "fingerprint", "setting")

    def __init__(self, value: str | bytes, setting: str = "DB_ENCRYPTION_KEY") -> None:
        raw = parse_fernet_key(value, setting)
        self.setting = setting
        self._wrapper = AeadCipher(_hkdf(raw, _WRAP_INFO))
        self.fingerprint = _hkdf(raw, _FINGERPRINT_INFO)[:8].hex()
        self._fernet = Fernet(base64.urlsafe_b64encode(raw))
        self._mac_key = _hkdf(raw, _BACKUP_MAC_INFO)

    def __repr__(self) -> str:
        return f"<MasterKey {self.setting} fingerprint={self.fingerprint}>"

    @property
    def fernet(self) -> Fernet:
        """The master key used as plain Fernet: only to read legacy values."""
        return self._fernet

    def wrap(self, key_id: int, data_key: bytes) -> bytes:
        return WRAP_FORMAT_V1 + self._wrapper.seal(data_key, _wrap_context(key_id))

    def sign(self, data: bytes) -> bytes:
        """HMAC-SHA256 of ``data`` under a key derived from this master key (key backups)."""
        mac = hmac.HMAC(self._mac_key, hashes.SHA256())
        mac.update(data)
        return mac.finalize()

    def verify(self, data: bytes, signature: bytes) -> bool:
        mac = hmac.HMAC(self._mac_key, hashes.SHA256())
        mac.update(data)
        try:
            mac.verify(signature)
        except InvalidSignature:
            return False
        return True

    def unwrap(self, key_id: int, wrapped: bytes) -> bytes:
        """Raise ``InvalidTag`` when this master key did not wrap it, or it was altered."""
        if wrapped[:1] != WRAP_FORMAT_V1:
            raise InvalidTag
        return self._wrapper.open(wrapped[1:], _wrap_context(key_id))


def _hkdf(raw: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(raw)


def _wrap_context(key_id: int) -> bytes:
    # Binds a wrapped key to its id: swapping wrapped keys between rows is detected.
    return _WRAP_INFO + b":" + key_id.to_bytes(4, "big")


class SettingsMasterKeyProvider:
    """Reads the master key and its fallbacks from ``DB_ENCRYPTION_KEY`` and
    ``DB_ENCRYPTION_KEY_FALLBACKS``. Name another class in ``DATA_ENCRYPTION_MASTER_KEY_PROVIDER``
    to fetch them elsewhere (a KMS, a secrets manager); it must return the same shape."""

    def master_keys(self) -> list[MasterKey]:
        """The current master key first, then the fallbacks in order."""
        current = encryption_settings.master_key
        if not current:
            raise KeyConfigurationError(
                "DB_ENCRYPTION_KEY is not set. Set it to a key made by Fernet.generate_key(); "
                "it is the master key that wraps the data keys."
            )
        keys = [MasterKey(current, "DB_ENCRYPTION_KEY")]
        for index, fallback in enumerate(encryption_settings.master_key_fallbacks):
            keys.append(MasterKey(fallback, f"DB_ENCRYPTION_KEY_FALLBACKS[{index}]"))
        return keys


_master_keys: list[MasterKey] | None = None


def master_keys() -> list[MasterKey]:
    """The configured master keys (current first), parsed once and cached until settings change."""
    global _master_keys
    if _master_keys is None:
        from django.conf import settings

        provider_path = getattr(settings, "DATA_ENCRYPTION_MASTER_KEY_PROVIDER", None)
        provider = import_string(provider_path)() if provider_path else SettingsMasterKeyProvider()
        _master_keys = provider.master_keys()
    return _master_keys


_legacy_fernet: MultiFernet | None = None


def legacy_fernet() -> MultiFernet:
    """Reads plain Fernet tokens made directly with the master key or one of its fallbacks.
    Built once (a rotation of a legacy column asks for it on every row)."""
    global _legacy_fernet
    if _legacy_fernet is None:
        _legacy_fernet = MultiFernet([key.fernet for key in master_keys()])
    return _legacy_fernet


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
    # The hot paths of envelope.seal/open_value: the AESGCM object by the 8-byte envelope
    # header, and the primary's header, so a value costs one dict lookup and one AEAD call.
    by_header: dict[bytes, AESGCM] = field(init=False, repr=False)
    primary_header: bytes = field(init=False, repr=False)
    primary_aead: AESGCM = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from .envelope import header_for

        self.by_header = {header_for(key_id): c.aead for key_id, c in self.ciphers.items()}
        self.primary_header = header_for(self.primary_id)
        self.primary_aead = self.ciphers[self.primary_id].aead

    def __repr__(self) -> str:
        ids = ", ".join(format_key_id(key_id) for key_id in sorted(self.ciphers))
        return f"<KeyRing primary={format_key_id(self.primary_id)} keys=[{ids}]>"


_ring: KeyRing | None = None
_ring_lock = threading.Lock()


@register_cache
def reset_key_ring() -> None:
    """Forget the cached ring and master keys; the next use reloads both."""
    global _ring, _master_keys, _legacy_fernet, _uncommitted_key_id
    _ring = None
    _master_keys = None
    _legacy_fernet = None
    _uncommitted_key_id = None


def key_ring() -> KeyRing:
    """The current key ring, reloaded when it is older than ``KEY_CACHE_SECONDS``."""
    ring = _ring
    if ring is None or time.monotonic() >= ring.expires_at:
        ring = _reload()
    return ring


def cipher_for(key_id: int) -> AeadCipher:
    """The cipher of data key ``key_id``: from the ring, else after one reload, else an error."""
    ring = _ring or key_ring()
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
    global _ring
    with _ring_lock:
        ring = load_key_ring()
        _ring = ring
        return ring


def key_database() -> str:
    return router.db_for_write(DataKey)


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
    return KeyRing(ciphers=ciphers, primary_id=primary_id, expires_at=time.monotonic() + lifetime)


def unwrap_data_key(row: DataKey) -> bytes:
    """The material of ``row``, unwrapped by whichever configured master key wrapped it."""
    wrapped = bytes(row.wrapped_key) if row.wrapped_key is not None else b""
    candidates = master_keys()
    # Try the key whose fingerprint matches first; then the rest (a fingerprint is a hint only).
    ordered = sorted(candidates, key=lambda key: key.fingerprint != row.master_key_fingerprint)
    for master in ordered:
        try:
            return master.unwrap(row.key_id, wrapped)
        except InvalidTag:
            continue
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
            if row.master_key_fingerprint == current.fingerprint:
                try:  # the fingerprint is a hint; prove it
                    current.unwrap(row.key_id, bytes(row.wrapped_key))
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
