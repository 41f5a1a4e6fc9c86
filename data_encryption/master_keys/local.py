"""A local master key: a Fernet-format key from settings (``DB_ENCRYPTION_KEY`` and its
fallbacks), held in this process. It wraps data keys with an AEAD under a key HKDF'd from it and
makes the key-metadata MACs and backup signatures under keys HKDF'd for those purposes alone.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.views.decorators.debug import sensitive_variables

from ..ciphers import AeadCipher
from ..exceptions import KeyConfigurationError

WRAP_FORMAT_V1 = b"\x01"
_WRAP_INFO = b"data_encryption/key-wrap/v1"
_FINGERPRINT_INFO = b"data_encryption/master-key-fingerprint/v1"
BACKUP_MAC_INFO = b"data_encryption/backup-mac/v1"
METADATA_MAC_INFO = b"data_encryption/key-metadata-mac/v1"


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
    current: str | bytes | None, fallbacks: Sequence[str | bytes], setting: str
) -> list[tuple[bytes, str]]:
    """``(raw key, name)`` for ``setting`` (unless ``current`` is empty) then each
    ``<setting>_FALLBACKS[i]``, in order; the name is what an error about that key says."""
    named = [(current, setting)] if current else []
    named += [(key, f"{setting}_FALLBACKS[{index}]") for index, key in enumerate(fallbacks)]
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
        self._wrapper = AeadCipher(hkdf(raw, _WRAP_INFO))
        self.fingerprint = hkdf(raw, _FINGERPRINT_INFO)[:8].hex()
        self._fernet = Fernet(base64.urlsafe_b64encode(raw))
        self._mac_key = hkdf(raw, BACKUP_MAC_INFO)
        # Its own key, so a backup signature can never pass for a key row's MAC or the reverse.
        self._metadata_mac_key = hkdf(raw, METADATA_MAC_INFO)

    def __repr__(self) -> str:
        return f"<MasterKey {self.setting} fingerprint={self.fingerprint}>"

    @property
    def description(self) -> str:
        """How messages, backups and ``encryption_status`` name this key."""
        return f"local master key {self.setting}"

    @property
    def fernet(self) -> Fernet:
        """The master key used as plain Fernet: only to read legacy values."""
        return self._fernet

    def wrap(self, key_id: int, data_key: bytes) -> bytes:
        return WRAP_FORMAT_V1 + self._wrapper.seal(data_key, _wrap_context(key_id))

    def sign(self, data: bytes) -> bytes:
        """HMAC-SHA256 of ``data`` under a key derived from this master key (key backups)."""
        return hmac_sha256(self._mac_key, data)

    def verify(self, data: bytes, signature: bytes) -> bool:
        return verify_hmac(self._mac_key, data, signature)

    def sign_metadata(self, message: bytes) -> bytes:
        """HMAC-SHA256 of a data key's metadata (``models.key_metadata_message``), under a key
        derived from this master key for that purpose alone."""
        return hmac_sha256(self._metadata_mac_key, message)

    def verify_metadata(self, message: bytes, mac: bytes) -> bool:
        return verify_hmac(self._metadata_mac_key, message, mac)

    def unwrap(self, key_id: int, wrapped: bytes) -> bytes:
        """Raise ``InvalidTag`` when this master key did not wrap it, or it was altered."""
        if wrapped[:1] != WRAP_FORMAT_V1:
            raise InvalidTag
        return self._wrapper.open(wrapped[1:], _wrap_context(key_id))


def hkdf(raw: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(raw)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def verify_hmac(key: bytes, data: bytes, signature: bytes) -> bool:
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
