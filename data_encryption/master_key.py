"""The master key: parsing, derivation, wrapping, and where the key comes from.

``DB_ENCRYPTION_KEY`` (then ``DB_ENCRYPTION_KEY_FALLBACKS``) never encrypts field data; a
``MasterKey`` wraps the random data keys that do (see ``keys``). Nothing here touches the
database, so a provider that fetches the key elsewhere (a KMS) plugs in without the ORM.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.views.decorators.debug import sensitive_variables

from .ciphers import AeadCipher
from .conf import encryption_settings, load_class, register_cache
from .exceptions import KeyConfigurationError

WRAP_FORMAT_V1 = b"\x01"
_WRAP_INFO = b"data_encryption/key-wrap/v1"
_FINGERPRINT_INFO = b"data_encryption/master-key-fingerprint/v1"
_BACKUP_MAC_INFO = b"data_encryption/backup-mac/v1"
_METADATA_MAC_INFO = b"data_encryption/key-metadata-mac/v1"


GENERATE_KEY_HINT = (
    'Generate one with: python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"'
)


# Functions that hold a master key in a local are marked with Django's sensitive_variables, so
# its error reports (AdminEmailHandler, the 500 page's report) show stars instead; the mark
# covers the frames they call too. See docs/security.md, "Error reports and logs".
@sensitive_variables()
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


@sensitive_variables()
def parse_key_setting(
    current: str | bytes, fallbacks: Sequence[str | bytes], setting: str
) -> list[tuple[bytes, str]]:
    """``(raw key, name)`` for ``setting`` then each ``<setting>_FALLBACKS[i]``, in order; the
    name is what an error about that key says."""
    named = [(current, setting)] + [
        (key, f"{setting}_FALLBACKS[{index}]") for index, key in enumerate(fallbacks)
    ]
    return [(parse_fernet_key(value, name), name) for value, name in named]


class MasterKey:
    """One master key: wraps and unwraps data keys, and names itself by a one-way fingerprint.

    The wrapping key is derived from the master key with HKDF, so the bytes that wrap data keys
    are never the bytes a legacy Fernet token was made with.
    """

    __slots__ = ("_fernet", "_mac_key", "_metadata_mac_key", "_wrapper", "fingerprint", "setting")

    @sensitive_variables()
    def __init__(self, value: str | bytes, setting: str = "DB_ENCRYPTION_KEY") -> None:
        self._derive(parse_fernet_key(value, setting), setting)

    @classmethod
    @sensitive_variables()
    def from_raw(cls, raw: bytes, setting: str) -> MasterKey:
        """The master key whose 32 bytes ``parse_fernet_key`` already read from ``setting``."""
        key = cls.__new__(cls)
        key._derive(raw, setting)
        return key

    def _derive(self, raw: bytes, setting: str) -> None:
        self.setting = setting
        self._wrapper = AeadCipher(_hkdf(raw, _WRAP_INFO))
        self.fingerprint = _hkdf(raw, _FINGERPRINT_INFO)[:8].hex()
        self._fernet = Fernet(base64.urlsafe_b64encode(raw))
        self._mac_key = _hkdf(raw, _BACKUP_MAC_INFO)
        # Its own key, so a backup signature can never pass for a key row's MAC or the reverse.
        self._metadata_mac_key = _hkdf(raw, _METADATA_MAC_INFO)

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
        return _verify_hmac(self._mac_key, data, signature)

    def sign_metadata(self, message: bytes) -> bytes:
        """HMAC-SHA256 of a data key's metadata (``models.key_metadata_message``), under a key
        derived from this master key for that purpose alone."""
        mac = hmac.HMAC(self._metadata_mac_key, hashes.SHA256())
        mac.update(message)
        return mac.finalize()

    def verify_metadata(self, message: bytes, mac: bytes) -> bool:
        return _verify_hmac(self._metadata_mac_key, message, mac)

    def unwrap(self, key_id: int, wrapped: bytes) -> bytes:
        """Raise ``InvalidTag`` when this master key did not wrap it, or it was altered."""
        if wrapped[:1] != WRAP_FORMAT_V1:
            raise InvalidTag
        return self._wrapper.open(wrapped[1:], _wrap_context(key_id))


def _hkdf(raw: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(raw)


def _verify_hmac(key: bytes, data: bytes, signature: bytes) -> bool:
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    try:
        mac.verify(signature)  # constant time
    except InvalidSignature:
        return False
    return True


def _wrap_context(key_id: int) -> bytes:
    # Binds a wrapped key to its id: swapping wrapped keys between rows is detected.
    return _WRAP_INFO + b":" + key_id.to_bytes(4, "big")


@runtime_checkable
class MasterKeyProvider(Protocol):
    """Where the master keys come from: the seam a KMS or secrets-manager provider plugs into.
    Any class with this method qualifies; it need not inherit from anything."""

    def master_keys(self) -> list[MasterKey]: ...


class SettingsMasterKeyProvider:
    """Reads the master key and its fallbacks from ``DB_ENCRYPTION_KEY`` and
    ``DB_ENCRYPTION_KEY_FALLBACKS``. Name another class in ``DATA_ENCRYPTION_MASTER_KEY_PROVIDER``
    to fetch them elsewhere (a KMS, a secrets manager); it must return the same shape."""

    @sensitive_variables()
    def master_keys(self) -> list[MasterKey]:
        """The current master key first, then the fallbacks in order."""
        current = encryption_settings.master_key
        if not current:
            raise KeyConfigurationError(
                "DB_ENCRYPTION_KEY is not set. Set it to a key made by Fernet.generate_key(); "
                "it is the master key that wraps the data keys."
            )
        named = parse_key_setting(
            current, encryption_settings.master_key_fallbacks, "DB_ENCRYPTION_KEY"
        )
        return [MasterKey.from_raw(raw, name) for raw, name in named]


def get_provider_class() -> type[MasterKeyProvider]:
    """The class named by ``DATA_ENCRYPTION_MASTER_KEY_PROVIDER`` (default: the settings)."""
    path = encryption_settings.master_key_provider_path
    # mypy refuses a Protocol as type[T] (type-abstract); issubclass() accepts it at run time.
    return load_class(
        "DATA_ENCRYPTION_MASTER_KEY_PROVIDER",
        path,
        MasterKeyProvider,  # type: ignore[type-abstract]
    )


def _provider() -> MasterKeyProvider:
    return get_provider_class()()


_master_keys: list[MasterKey] | None = None
_legacy_fernet: MultiFernet | None = None


@register_cache
def reset_master_keys() -> None:
    """Forget the parsed master keys; the next use asks the provider again."""
    global _master_keys, _legacy_fernet
    _master_keys = None
    _legacy_fernet = None


def master_keys() -> list[MasterKey]:
    """The configured master keys (current first), parsed once and cached until settings change."""
    global _master_keys
    if _master_keys is None:
        _master_keys = _provider().master_keys()
    return _master_keys


def legacy_fernet() -> MultiFernet:
    """Reads plain Fernet tokens made directly with the master key or one of its fallbacks.
    Built once (a rotation of a legacy column asks for it on every row)."""
    global _legacy_fernet
    if _legacy_fernet is None:
        _legacy_fernet = MultiFernet([key.fernet for key in master_keys()])
    return _legacy_fernet


def unwrap_with_any(key_id: int, wrapped: bytes, fingerprint: str | None = None) -> bytes | None:
    """The data key ``wrapped`` under whichever configured master key wrapped it, else ``None``.

    The master key named by ``fingerprint`` is tried first; it is a hint only, so the rest follow.
    """
    candidates = master_keys()
    if fingerprint is not None:
        candidates = sorted(candidates, key=lambda key: key.fingerprint != fingerprint)
    for master in candidates:
        try:
            return master.unwrap(key_id, wrapped)
        except InvalidTag:
            continue
    return None


def rewrapped_for(
    master: MasterKey, key_id: int, wrapped: bytes, fingerprint: str | None = None
) -> bytes | None:
    """Data key ``wrapped`` wrapped by ``master`` instead; ``None`` when ``master`` already
    wraps it. ``KeyConfigurationError`` when no configured master key unwraps it."""
    try:
        master.unwrap(key_id, wrapped)
        return None
    except InvalidTag:
        pass
    material = unwrap_with_any(key_id, wrapped, fingerprint)
    if material is None:
        raise KeyConfigurationError(
            f"No configured master key can unwrap data key {key_id:08x} (it was wrapped by the "
            f"master key with fingerprint {fingerprint}). Put that key back in "
            "DB_ENCRYPTION_KEY or DB_ENCRYPTION_KEY_FALLBACKS."
        )
    return master.wrap(key_id, material)


def verify_metadata_with_any(message: bytes, mac: bytes) -> bool:
    """Whether any configured master key (current or fallback) made ``mac`` over ``message``:
    a master-key change does not make every key row look tampered before it is re-wrapped."""
    return any(master.verify_metadata(message, mac) for master in master_keys())
