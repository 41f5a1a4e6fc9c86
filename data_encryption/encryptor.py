"""The encryptor: sealing and opening stored values, the per-value hot path.

``seal`` encrypts under the ring's primary data key; ``open_value`` reads either envelope form
or a legacy Fernet token. The format itself is ``envelope``'s; the keys come from ``keys``.
"""

from __future__ import annotations

from collections.abc import Callable
from os import urandom
from time import monotonic

from cryptography.exceptions import InvalidTag

from .ciphers import NONCE_SIZE
from .conf import encryption_settings
from .envelope import (
    FERNET_TEXT_PREFIX,
    HEADER_SIZE,
    HEADER_V1,
    HEADER_V2,
    KEY_ID_BYTES,
    MIN_BINARY_SIZE,
    SEALED_OFFSET,
    Binary,
    as_bytes,
    format_key_id,
    parse,
)
from .exceptions import DecryptionError
from .keys import KeyRing, cipher_for, key_ring, ring_cache
from .master_key import legacy_fernet


def context_bytes(context: str) -> bytes:
    """The associated data a context adds to a bound value (version 2): its UTF-8 bytes.

    A context names where a value lives (``app_label.Model.field``), never a secret.
    """
    if not isinstance(context, str):
        raise TypeError(
            f"context must be a str naming where the value lives, such as "
            f"'app_label.Model.field', not {type(context).__name__}."
        )
    if not context:
        raise ValueError("context must not be empty; pass None for a value bound to nothing.")
    return context.encode()


class BoundKey:
    """One data key's bound path: its AEAD ``decrypt``, its version 2 header, and the associated
    data (header + context) of each context met so far."""

    __slots__ = ("aad_by_context", "decrypt", "header")

    # Contexts are column names, a handful; a caller that makes one per row is not cached.
    MAX_CONTEXTS = 256

    def __init__(self, header: bytes, decrypt: Callable[[bytes, bytes, bytes], bytes]) -> None:
        self.header, self.decrypt = header, decrypt
        self.aad_by_context: dict[str, bytes] = {}

    def aad(self, context: str) -> bytes:
        """The associated data of this key's values in ``context`` (checked, then cached)."""
        aad = self.header + context_bytes(context)
        if len(self.aad_by_context) < self.MAX_CONTEXTS:
            self.aad_by_context[context] = aad
        return aad


class BoundPaths:
    """The ring's hot paths for bound values (version 2): each key's ``BoundKey`` by its version
    2 header, and the primary's. Derived from the ring the first time a bound value meets it,
    and again whenever the ring is replaced, so ``keys`` knows nothing of them and the unbound
    paths pay nothing for them."""

    __slots__ = ("by_header", "primary", "ring")

    def __init__(self) -> None:
        self.ring: KeyRing | None = None
        self.by_header: dict[bytes, BoundKey] = {}
        self.primary = BoundKey(b"", _no_key)

    def follow(self, ring: KeyRing) -> BoundPaths:
        by_header = {}
        for header, decrypt in ring.decrypt_by_header.items():
            bound_header = HEADER_V2 + header[4:]
            by_header[bound_header] = BoundKey(bound_header, decrypt)
        self.by_header = by_header
        self.primary = by_header[HEADER_V2 + ring.primary_header[4:]]
        self.ring = ring
        return self


def _no_key(nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
    raise InvalidTag  # BoundPaths before its first ring: never called


bound_paths = BoundPaths()


def seal(plaintext: bytes, context: bytes | None = None) -> bytes:
    """Encrypt ``plaintext`` under the primary data key; return the binary form. With a
    ``context`` (``context_bytes``), the value is bound to it (version 2)."""
    # The hot path: one cache check, one urandom, one AEAD call (see docs/benchmarks.md). The
    # ring is read as an attribute, not through key_ring(): a call costs a tenth of the AEAD's.
    ring = ring_cache.ring
    if ring is None or monotonic() >= ring.expires_at:
        ring = key_ring()
    nonce = urandom(NONCE_SIZE)
    if context is None:
        header = ring.primary_header
        return header + nonce + ring.primary_encrypt(nonce, plaintext, header)
    primary = (bound_paths if bound_paths.ring is ring else bound_paths.follow(ring)).primary
    header = primary.header
    return header + nonce + ring.primary_encrypt(nonce, plaintext, header + context)


def encrypt_text(value: str | None, context: str | None = None) -> bytes | None:
    """Encrypt ``value`` under the primary data key; ``None`` gives ``None``.

    Returns the binary envelope (see ``docs/format.md``), ready for a ``BinaryField``. With a
    ``context`` (a str naming where the value lives), the value is bound to it: only
    ``decrypt_text(..., context=<the same>)`` opens it.
    """
    # EncryptionService.encrypt is this function itself, so a value pays for one Python call;
    # hence seal()'s body again, for the common case, a str.
    if type(value) is str:
        ring = ring_cache.ring
        if ring is None or monotonic() >= ring.expires_at:
            ring = key_ring()
        nonce = urandom(NONCE_SIZE)
        if context is None:
            header = ring.primary_header
            return header + nonce + ring.primary_encrypt(nonce, value.encode(), header)
        # A bound value: the associated data (version 2 header + context) is cached per context
        # while the ring lasts; the first use of a context checks it (context_bytes).
        primary = (bound_paths if bound_paths.ring is ring else bound_paths.follow(ring)).primary
        aad = primary.aad_by_context.get(context) or primary.aad(context)
        return primary.header + nonce + ring.primary_encrypt(nonce, value.encode(), aad)
    if value is None:
        return None
    if isinstance(value, str):  # a str subclass
        return seal(str(value).encode(), None if context is None else context_bytes(context))
    raise TypeError(
        f"EncryptionService.encrypt() takes a str (or None), not {type(value).__name__}. "
        "Convert the value to text first, or use an encrypted model field for its type."
    )


def decrypt_text(value: Binary | str | None, context: str | None = None) -> str | None:
    """Decrypt a value made by ``encrypt_text`` (either form) or a legacy Fernet token.

    ``None`` gives ``None``. A value bound to a context opens only with that ``context``; a
    value bound to none (version 1, or legacy) opens with or without one. Raises
    ``DecryptionError`` (also a ``ValueError`` and an ``InvalidToken``) when the value cannot be
    decrypted, ``TypeError`` when it is not bytes or text.
    """
    # EncryptionService.decrypt is this function itself; open_value()'s hot path is repeated
    # here so that a binary value under a key the ring holds costs one Python call.
    ring = ring_cache.ring
    try:
        if ring is not None and type(value) is bytes:
            header = value[:HEADER_SIZE]
            if context is not None:  # a bound value, usually: its path first
                bound = bound_paths if bound_paths.ring is ring else bound_paths.follow(ring)
                key = bound.by_header.get(header)
                if key is not None and len(value) >= MIN_BINARY_SIZE:
                    aad = key.aad_by_context.get(context) or key.aad(context)
                    try:
                        sealed = value[SEALED_OFFSET:]
                        return key.decrypt(value[HEADER_SIZE:SEALED_OFFSET], sealed, aad).decode()
                    except InvalidTag:
                        raise _tampered(int.from_bytes(value[KEY_ID_BYTES], "big")) from None
            decrypt = ring.decrypt_by_header.get(header)
            if decrypt is not None and len(value) >= MIN_BINARY_SIZE:
                try:
                    sealed = value[SEALED_OFFSET:]
                    return decrypt(value[HEADER_SIZE:SEALED_OFFSET], sealed, header).decode()
                except InvalidTag:
                    raise _tampered(int.from_bytes(value[KEY_ID_BYTES], "big")) from None
        if value is None:
            return None
        return open_value(value, None if context is None else context_bytes(context)).decode()
    except UnicodeDecodeError:
        raise DecryptionError(
            "The value decrypted, but to bytes that are not UTF-8 text: it was made by "
            "encrypt_bytes() or an EncryptedBinaryField. Use decrypt_bytes()."
        ) from None


def open_value(value: Binary | str, context: bytes | None = None) -> bytes:
    """Decrypt either envelope form or a legacy Fernet token; return the plaintext bytes.

    ``context`` (``context_bytes``) opens a bound value (version 2); unbound values ignore it.
    """
    ring = ring_cache.ring  # as last loaded, even if expired: its keys still decrypt
    if ring is not None and type(value) is bytes:
        # The hot path: a binary value under a key the ring holds.
        header = value[:HEADER_SIZE]
        if context is not None:  # a bound column's value, usually bound
            bound = bound_paths if bound_paths.ring is ring else bound_paths.follow(ring)
            key = bound.by_header.get(header)
            if key is not None and len(value) >= MIN_BINARY_SIZE:
                try:
                    sealed = value[SEALED_OFFSET:]
                    return key.decrypt(value[HEADER_SIZE:SEALED_OFFSET], sealed, header + context)
                except InvalidTag:
                    raise _tampered(int.from_bytes(value[KEY_ID_BYTES], "big")) from None
        decrypt = ring.decrypt_by_header.get(header)
        if decrypt is not None and len(value) >= MIN_BINARY_SIZE:
            try:
                return decrypt(value[HEADER_SIZE:SEALED_OFFSET], value[SEALED_OFFSET:], header)
            except InvalidTag:
                raise _tampered(int.from_bytes(value[KEY_ID_BYTES], "big")) from None
    return _open(value, context)


def _open(value: Binary | str, context: bytes | None) -> bytes:
    data = as_bytes(value)
    if data[:4] == HEADER_V1 and len(data) >= MIN_BINARY_SIZE:  # the hot path, no parsing objects
        key_id = int.from_bytes(data[KEY_ID_BYTES], "big")
        header, sealed, aad = data[:HEADER_SIZE], data[HEADER_SIZE:], data[:HEADER_SIZE]
    elif data[:6] == FERNET_TEXT_PREFIX:
        return _open_legacy(data)
    else:
        envelope = parse(data)
        key_id, header, sealed = envelope.key_id, envelope.header, envelope.sealed
        aad = header
        if envelope.bound:
            if context is None:
                raise DecryptionError(
                    f"The value under data key {format_key_id(key_id)} is bound to the column "
                    "it was written for; read it through that field, or pass the context it "
                    "was encrypted with (decrypt(value, context=...)).",
                    key_id=key_id,
                )
            aad = header + context
    cipher = cipher_for(key_id)
    try:
        return cipher.open(sealed, aad)
    except InvalidTag:
        raise _tampered(key_id) from None


def _tampered(key_id: int) -> DecryptionError:
    return DecryptionError(
        f"The value under data key {format_key_id(key_id)} failed authentication: it was "
        "altered or truncated, copied from another column or row, or the key was replaced. "
        "Restore the row from a backup.",
        key_id=key_id,
    )


def _open_legacy(data: bytes) -> bytes:
    if not encryption_settings.accept_legacy_tokens:
        raise DecryptionError(
            "The value is a legacy Fernet token, and ENCRYPTION_KEY_ROTATION"
            "['ACCEPT_LEGACY_TOKENS'] is off, so legacy tokens are no longer read. Turn it on "
            "again to read it (and let a rotation rewrite it as an envelope)."
        )
    try:
        return legacy_fernet().decrypt(data)
    except Exception:  # InvalidToken, or a TypeError from a non-ASCII token
        raise DecryptionError(
            "The legacy Fernet token could not be decrypted with DB_ENCRYPTION_KEY or any "
            "DB_ENCRYPTION_KEY_FALLBACKS: it was altered, or it was made with another key."
        ) from None
