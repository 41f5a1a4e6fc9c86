"""The encryptor: sealing and opening stored values, the per-value hot path.

``seal`` encrypts under the ring's primary data key; ``open_value`` reads either envelope form
or a legacy Fernet token. The format itself is ``envelope``'s; the keys come from ``keys``.
"""

from __future__ import annotations

from os import urandom
from time import monotonic

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
from .keys import cipher_for, key_ring, ring_cache
from .master_key import legacy_fernet


def seal(plaintext: bytes) -> bytes:
    """Encrypt ``plaintext`` under the primary data key; return the binary form."""
    # The hot path: one cache check, one urandom, one AEAD call (see docs/benchmarks.md). The
    # ring is read as an attribute, not through key_ring(): a call costs a tenth of the AEAD's.
    ring = ring_cache.ring
    if ring is None or monotonic() >= ring.expires_at:
        ring = key_ring()
    header = ring.primary_header
    nonce = urandom(NONCE_SIZE)
    return header + nonce + ring.primary_encrypt(nonce, plaintext, header)


def encrypt_text(value: str | None) -> bytes | None:
    """Encrypt ``value`` under the primary data key; ``None`` gives ``None``.

    Returns the binary envelope (see ``docs/format.md``), ready for a ``BinaryField``.
    """
    # EncryptionService.encrypt is this function itself, so a value pays for one Python call;
    # hence seal()'s body again, for the common case, a str.
    if type(value) is str:
        ring = ring_cache.ring
        if ring is None or monotonic() >= ring.expires_at:
            ring = key_ring()
        header = ring.primary_header
        nonce = urandom(NONCE_SIZE)
        return header + nonce + ring.primary_encrypt(nonce, value.encode(), header)
    if value is None:
        return None
    if isinstance(value, str):  # a str subclass
        return seal(str(value).encode())
    raise TypeError(
        f"EncryptionService.encrypt() takes a str (or None), not {type(value).__name__}. "
        "Convert the value to text first, or use an encrypted model field for its type."
    )


def decrypt_text(value: Binary | str | None) -> str | None:
    """Decrypt a value made by ``encrypt_text`` (either form) or a legacy Fernet token.

    ``None`` gives ``None``. Raises ``DecryptionError`` (also a ``ValueError`` and an
    ``InvalidToken``) when the value cannot be decrypted.
    """
    # EncryptionService.decrypt is this function itself; open_value()'s hot path is repeated
    # here so that a binary value under a key the ring holds costs one Python call.
    ring = ring_cache.ring
    try:
        if ring is not None and type(value) is bytes:
            header = value[:HEADER_SIZE]
            decrypt = ring.decrypt_by_header.get(header)
            if decrypt is not None and len(value) >= MIN_BINARY_SIZE:
                try:
                    sealed = value[SEALED_OFFSET:]
                    return decrypt(value[HEADER_SIZE:SEALED_OFFSET], sealed, header).decode()
                except InvalidTag:
                    raise _tampered(int.from_bytes(value[KEY_ID_BYTES], "big")) from None
        if value is None:
            return None
        return open_value(value).decode()
    except UnicodeDecodeError:
        raise DecryptionError(
            "The value decrypted, but to bytes that are not UTF-8 text: it was made by "
            "encrypt_bytes() or an EncryptedBinaryField. Use decrypt_bytes()."
        ) from None


def open_value(value: Binary | str) -> bytes:
    """Decrypt either envelope form or a legacy Fernet token; return the plaintext bytes."""
    ring = ring_cache.ring  # as last loaded, even if expired: its keys still decrypt
    if ring is not None and type(value) is bytes:
        # The hot path: a binary value under a key the ring holds.
        header = value[:HEADER_SIZE]
        decrypt = ring.decrypt_by_header.get(header)
        if decrypt is not None and len(value) >= MIN_BINARY_SIZE:
            try:
                return decrypt(value[HEADER_SIZE:SEALED_OFFSET], value[SEALED_OFFSET:], header)
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
