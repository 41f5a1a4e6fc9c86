"""The encryptor: sealing and opening stored values, the per-value hot path.

``seal`` encrypts under the ring's primary data key; ``open_value`` reads either envelope form
or a legacy Fernet token. The format itself is ``envelope``'s; the keys come from ``keys``.
"""

from __future__ import annotations

from os import urandom

from cryptography.exceptions import InvalidTag

from .ciphers import NONCE_SIZE
from .envelope import (
    FERNET_TEXT_PREFIX,
    HEADER_SIZE,
    HEADER_V1,
    KEY_ID_BYTES,
    MIN_BINARY_SIZE,
    SEALED_OFFSET,
    Binary,
    as_bytes,
    format_key_id,
    parse,
)
from .exceptions import DecryptionError
from .keys import cached_ring, cipher_for, key_ring
from .master_key import legacy_fernet


def seal(plaintext: bytes) -> bytes:
    """Encrypt ``plaintext`` under the primary data key; return the binary form."""
    # The hot path: one cache check, one urandom, one AEAD call (see docs/benchmarks.md).
    ring = key_ring()
    header = ring.primary_header
    nonce = urandom(NONCE_SIZE)
    return header + nonce + ring.primary_aead.encrypt(nonce, plaintext, header)


def open_value(value: Binary | str) -> bytes:
    """Decrypt either envelope form or a legacy Fernet token; return the plaintext bytes."""
    ring = cached_ring()
    if ring is not None and type(value) is bytes:
        # The hot path: a binary value under a key the ring holds.
        header = value[:HEADER_SIZE]
        aead = ring.by_header.get(header)
        if aead is not None and len(value) >= MIN_BINARY_SIZE:
            try:
                return aead.decrypt(value[HEADER_SIZE:SEALED_OFFSET], value[SEALED_OFFSET:], header)
            except InvalidTag:
                raise _tampered(int.from_bytes(value[KEY_ID_BYTES], "big")) from None
    return _open(value)


def _open(value: Binary | str) -> bytes:
    data = as_bytes(value)
    if data[:4] == HEADER_V1 and len(data) >= MIN_BINARY_SIZE:  # the hot path, no parsing objects
        key_id = int.from_bytes(data[KEY_ID_BYTES], "big")
        header, sealed = data[:HEADER_SIZE], data[HEADER_SIZE:]
    elif data[:6] == FERNET_TEXT_PREFIX:
        return _open_legacy(data)
    else:
        envelope = parse(data)
        key_id, header, sealed = envelope.key_id, envelope.header, envelope.sealed
    cipher = cipher_for(key_id)
    try:
        return cipher.open(sealed, header)
    except InvalidTag:
        raise _tampered(key_id) from None


def _tampered(key_id: int) -> DecryptionError:
    return DecryptionError(
        f"The value under data key {format_key_id(key_id)} failed authentication: it was "
        "altered or truncated, or the key was replaced. Restore the row from a backup.",
        key_id=key_id,
    )


def _open_legacy(data: bytes) -> bytes:
    try:
        return legacy_fernet().decrypt(data)
    except Exception:  # InvalidToken, or a TypeError from a non-ASCII token
        raise DecryptionError(
            "The legacy Fernet token could not be decrypted with DB_ENCRYPTION_KEY or any "
            "DB_ENCRYPTION_KEY_FALLBACKS: it was altered, or it was made with another key."
        ) from None
