"""Per value: encrypt then decrypt an 11-byte value, ours against AESGCM and Fernet directly.

The baseline is the least any AES-GCM scheme can do in Python: one ``AESGCM`` built once, a
12-byte nonce from ``os.urandom``, one encrypt and one decrypt. ``EncryptionService`` adds the
key ring lookup, the envelope header (authenticated as associated data) and UTF-8 text in and
out. ``Fernet`` is the common alternative.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench.harness import Comparison, Target, Variant
from data_encryption.services import EncryptionService

from . import Options

TEXT = "hello world"
VALUE = TEXT.encode()
assert len(VALUE) == 11

AESGCM_DIRECT = "AESGCM direct"
SERVICE = "EncryptionService"
FERNET = "Fernet"


def build(options: Options) -> Comparison:
    n = options.iterations
    return Comparison(
        name="11-byte value, encrypt+decrypt",
        operations=n,
        unit="value",
        variants=[
            Variant(AESGCM_DIRECT, _aesgcm_round_trips(n)),
            Variant(SERVICE, _service_round_trips(n), Target(max_ratio=1.5)),
            Variant(FERNET, _fernet_round_trips(n), Target(min_ratio=3.0, reference=SERVICE)),
        ],
    )


def _aesgcm_round_trips(n: int) -> Callable[[], object]:
    aead = AESGCM(AESGCM.generate_key(bit_length=256))

    def run() -> bytes:
        for _ in range(n):
            nonce = os.urandom(12)
            plaintext = aead.decrypt(nonce, aead.encrypt(nonce, VALUE, None), None)
        return plaintext

    assert run() == VALUE
    return run


def _service_round_trips(n: int) -> Callable[[], object]:
    def run() -> str | None:
        for _ in range(n):
            text = EncryptionService.decrypt(EncryptionService.encrypt(TEXT))
        return text

    assert run() == TEXT
    return run


def _fernet_round_trips(n: int) -> Callable[[], object]:
    fernet = Fernet(Fernet.generate_key())

    def run() -> bytes:
        for _ in range(n):
            plaintext = fernet.decrypt(fernet.encrypt(VALUE))
        return plaintext

    assert run() == VALUE
    return run
