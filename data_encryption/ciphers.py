"""Ciphers: the two primitives this app uses, both from ``cryptography``.

``AeadCipher`` is AES-256-GCM under one key, built once per key and reused (constructing
``AESGCM`` on every call is a measurable share of a small value's cost). Fernet is used only
where its token format is the point: payload tokens and legacy values.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_SIZE = 12
TAG_SIZE = 16
KEY_SIZE = 32


def generate_data_key() -> bytes:
    """A fresh random 256-bit key from the operating system's CSPRNG."""
    return AESGCM.generate_key(bit_length=KEY_SIZE * 8)


class AeadCipher:
    """AES-256-GCM under one key: ``seal`` returns nonce + ciphertext + tag; ``open`` reverses it.

    ``open`` raises ``cryptography.exceptions.InvalidTag`` when the input was altered, was made
    under another key or with other associated data; callers turn that into their own error.
    """

    __slots__ = ("aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"An AES-256-GCM key is {KEY_SIZE} bytes; this one has {len(key)}.")
        self.aead = AESGCM(key)

    def __repr__(self) -> str:
        return "<AeadCipher AES-256-GCM>"

    def seal(self, plaintext: bytes, associated_data: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self.aead.encrypt(nonce, plaintext, associated_data)

    def open(self, sealed: bytes, associated_data: bytes) -> bytes:
        if len(sealed) < NONCE_SIZE + TAG_SIZE:
            raise InvalidTag
        return self.aead.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], associated_data)
