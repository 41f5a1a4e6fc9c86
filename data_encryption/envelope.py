"""The stored value's format: a self-describing envelope around AES-256-GCM ciphertext.

A value is ``ff 44 45 | version | key id (4) | nonce | ciphertext | tag`` (binary form) or
``de<version>:<key id hex>:<base64url>`` (ASCII form); the 8-byte header is the AEAD's associated
data, so it cannot be edited. Version 2 is bound to a context (the column it lives in): the
associated data is the header followed by the context, which is not stored. Its first bytes tell
an envelope from a legacy Fernet token or plaintext without trying a key. The format only, no
keys: ``encryptor`` seals and opens values; ``docs/format.md`` has the specification and vectors.
"""

from __future__ import annotations

import base64
import enum
import re
from dataclasses import dataclass

from .ciphers import NONCE_SIZE, TAG_SIZE
from .exceptions import DecryptionError

MAGIC = b"\xffDE"
VERSION_1 = 1  # unbound: the associated data is the header alone
VERSION_2 = 2  # bound: the associated data is the header, then the context's UTF-8 bytes
HEADER_V1 = MAGIC + bytes([VERSION_1])
HEADER_V2 = MAGIC + bytes([VERSION_2])
HEADER_SIZE = len(HEADER_V1) + 4
SEALED_OFFSET = HEADER_SIZE + NONCE_SIZE
# Where the binary header keeps the key id (4 bytes, big-endian), after the magic and version.
KEY_ID_BYTES = slice(len(HEADER_V1), HEADER_SIZE)
MIN_BINARY_SIZE = HEADER_SIZE + NONCE_SIZE + TAG_SIZE
ASCII_PREFIX_V1 = "de1:"
ASCII_PREFIX_V2 = "de2:"
_ASCII_PREFIXES = {ASCII_PREFIX_V1.encode(): VERSION_1, ASCII_PREFIX_V2.encode(): VERSION_2}
FERNET_TEXT_PREFIX = b"gAAAAA"

Binary = bytes | bytearray | memoryview


def format_key_id(key_id: int | None) -> str:
    """Key ids are shown as 8 lowercase hex digits everywhere (logs, reports, errors, admin)."""
    return "none" if key_id is None else f"{key_id:08x}"


class ValueKind(enum.Enum):
    """What a stored value is, judged from its first bytes alone."""

    ENVELOPE_BINARY = "envelope (binary form)"
    ENVELOPE_ASCII = "envelope (ASCII form)"
    LEGACY_FERNET = "legacy Fernet token"
    UNKNOWN = "not an encrypted value"


@dataclass(frozen=True)
class Envelope:
    """A parsed stored value: its version, data key id and the sealed bytes (nonce+ct+tag)."""

    version: int
    key_id: int
    sealed: bytes

    def __repr__(self) -> str:
        return f"<Envelope v{self.version} key={format_key_id(self.key_id)} {len(self.sealed)}B>"

    @property
    def header(self) -> bytes:
        return MAGIC + bytes([self.version]) + self.key_id.to_bytes(4, "big")

    @property
    def bound(self) -> bool:
        """Whether the value is bound to a context (version 2), so only that context opens it."""
        return self.version == VERSION_2

    def to_bytes(self) -> bytes:
        return self.header + self.sealed

    def to_ascii(self) -> str:
        encoded = base64.urlsafe_b64encode(self.sealed).rstrip(b"=").decode("ascii")
        return f"de{self.version}:{self.key_id:08x}:{encoded}"


def as_bytes(value: Binary | str) -> bytes:
    """A stored value as bytes, whichever column type it was read from."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    raise TypeError(
        f"Expected bytes, bytearray, memoryview or str, not {type(value).__name__}. Pass the "
        "value read from the encrypted column."
    )


def classify(value: Binary | str) -> ValueKind:
    """Tell an envelope from a legacy Fernet token from anything else, by its prefix only."""
    data = as_bytes(value)
    if data[:3] == MAGIC:
        return ValueKind.ENVELOPE_BINARY
    if data[:4] in _ASCII_PREFIXES:
        return ValueKind.ENVELOPE_ASCII
    if data[:6] == FERNET_TEXT_PREFIX:
        return ValueKind.LEGACY_FERNET
    return ValueKind.UNKNOWN


def parse(value: Binary | str) -> Envelope:
    """Parse either form of an envelope without decrypting it.

    Raises ``DecryptionError`` when the value is not a well-formed envelope of a known version.
    """
    data = as_bytes(value)
    kind = classify(data)
    if kind is ValueKind.ENVELOPE_BINARY:
        version = data[3] if len(data) > 3 else -1
        if version not in (VERSION_1, VERSION_2):
            raise DecryptionError(
                f"Unsupported envelope version {version}; upgrade django-data-encryption."
            )
        if len(data) < MIN_BINARY_SIZE:
            raise DecryptionError(
                f"The encrypted value is truncated ({len(data)} bytes; at least "
                f"{MIN_BINARY_SIZE} expected)."
            )
        return Envelope(version, int.from_bytes(data[KEY_ID_BYTES], "big"), data[HEADER_SIZE:])
    if kind is ValueKind.ENVELOPE_ASCII:
        return _parse_ascii(data)
    if kind is ValueKind.LEGACY_FERNET:
        raise DecryptionError("The value is a legacy Fernet token, not a data_encryption envelope.")
    raise DecryptionError(
        "The value is not encrypted: it has no data_encryption header and is not a Fernet token."
    )


# The one spelling of each part of the ASCII form: 8 lowercase hex digits, then base64url with
# no padding and nothing else (a length of 1 mod 4 is never valid base64).
_ASCII_KEY_ID = re.compile(rb"[0-9a-f]{8}")
_ASCII_SEALED = re.compile(rb"[A-Za-z0-9_-]*")


def _parse_ascii(data: bytes) -> Envelope:
    # Canonical parsing: a value has one spelling, so no other text (upper-case hex, a sign, a
    # "0x", junk in the base64, padding, stray low bits) reaches the key lookup or a census.
    parts = data.split(b":", 2)
    if (
        len(parts) != 3
        or not _ASCII_KEY_ID.fullmatch(parts[1])
        or not _ASCII_SEALED.fullmatch(parts[2])
        or len(parts[2]) % 4 == 1
    ):
        raise DecryptionError(
            "Malformed ASCII envelope: expected 'de<version>:<8 lowercase hex digits>:<base64url "
            "without padding>'."
        )
    key_id = int(parts[1], 16)
    # The pattern and length checks leave nothing b64decode could refuse.
    sealed = base64.b64decode(parts[2] + b"=" * (-len(parts[2]) % 4), b"-_", validate=True)
    if base64.urlsafe_b64encode(sealed).rstrip(b"=") != parts[2]:
        raise DecryptionError(
            f"Malformed ASCII envelope under key {format_key_id(key_id)}: the base64 part is "
            "not in its canonical spelling.",
            key_id=key_id,
        )
    if len(sealed) < NONCE_SIZE + TAG_SIZE:
        raise DecryptionError(
            f"The encrypted value is truncated (key {format_key_id(key_id)}).", key_id=key_id
        )
    return Envelope(_ASCII_PREFIXES[data[:4]], key_id, sealed)


def key_id_of(value: Binary | str) -> int | None:
    """The id of the data key that made ``value``, read from its header alone.

    ``None`` for a legacy Fernet token (made with the master key itself, no data key). Raises
    ``DecryptionError`` when the value is neither.
    """
    if classify(value) is ValueKind.LEGACY_FERNET:
        return None
    return parse(value).key_id


def header_for(key_id: int, version: int = VERSION_1) -> bytes:
    """The 8-byte binary header of a value under ``key_id`` (version 1: unbound; 2: bound)."""
    return MAGIC + bytes([version]) + key_id.to_bytes(4, "big")


def associated_data(header: bytes, context: bytes | None) -> bytes:
    """What the AEAD authenticates besides the plaintext: the header, then for a bound value
    (version 2) its context. The header is fixed-size, so the two never run into each other."""
    return header if context is None else header + context


def read_header(value: Binary | str) -> tuple[int, int] | None:
    """``(version, key id)`` of a well-formed envelope in either form, read without a key and
    without raising; ``None`` for anything else (a census counts such values by kind, never by
    bytes copied out of them). An ASCII value is parsed whole, canonically."""
    try:
        data = as_bytes(value)
    except TypeError:
        return None
    if data[:3] == MAGIC and data[3:4] in (b"\x01", b"\x02") and len(data) >= MIN_BINARY_SIZE:
        return data[3], int.from_bytes(data[KEY_ID_BYTES], "big")
    if data[:4] in _ASCII_PREFIXES:
        try:
            envelope = _parse_ascii(data)
        except DecryptionError:
            return None
        return envelope.version, envelope.key_id
    return None


def header_key_id(value: Binary | str) -> int | None:
    """The key id that a well-formed envelope's header names (see ``read_header``), else
    ``None``."""
    header = read_header(value)
    return None if header is None else header[1]
