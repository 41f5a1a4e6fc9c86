"""Per value: encrypt then decrypt an 11-byte value, ours against AESGCM and Fernet directly.

The baseline is the least any AES-GCM scheme can do in Python: one ``AESGCM`` built once, a
12-byte nonce from ``os.urandom``, one encrypt and one decrypt. The format reference is the
least code that makes this app's stored value: the same call plus the 8-byte header as
associated data, header + nonce + ciphertext joined into one value and split again to decrypt,
UTF-8 text in and out. ``EncryptionService`` is measured against that reference, so the target
bounds what our code adds (the key ring lookup, checks, dispatch), not what the format costs;
its ratio to bare ``AESGCM`` is still reported. ``Fernet`` is the common alternative. The
context-bound variant is the same service with ``context=`` (format version 2: the context joins
the header as associated data); its target bounds what binding costs against the context-free
calls of the same run.
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
REFERENCE = "same format, minimal: AESGCM + header"
SERVICE = "EncryptionService"
BOUND = "EncryptionService, context-bound"
CONTEXT = "customers.Customer.ssn"
FERNET = "Fernet"


def build(options: Options) -> Comparison:
    n = options.iterations
    return Comparison(
        name="11-byte value, encrypt+decrypt",
        operations=n,
        unit="value",
        variants=[
            Variant(AESGCM_DIRECT, _aesgcm_round_trips(n)),
            Variant(REFERENCE, _reference_round_trips(n)),
            Variant(SERVICE, _service_round_trips(n), Target(max_ratio=1.25, reference=REFERENCE)),
            Variant(BOUND, _bound_round_trips(n), Target(max_ratio=1.10, reference=SERVICE)),
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


def _reference_round_trips(n: int) -> Callable[[], object]:
    """The binary envelope (docs/format.md) written out by hand, under a key of its own."""
    ours = EncryptionService.encrypt(TEXT)
    assert ours is not None
    key_id = EncryptionService.key_id_of(ours)
    assert key_id is not None
    header = b"\xffDE\x01" + key_id.to_bytes(4, "big")  # magic, version 1, key id
    aead = AESGCM(AESGCM.generate_key(bit_length=256))

    def run() -> str:
        for _ in range(n):
            nonce = os.urandom(12)
            token = header + nonce + aead.encrypt(nonce, TEXT.encode(), header)
            text = aead.decrypt(token[8:20], token[20:], token[:8]).decode()
        return text

    nonce = os.urandom(12)
    token = header + nonce + aead.encrypt(nonce, TEXT.encode(), header)
    assert token[:8] == ours[:8] and len(token) == len(ours), "not the format of ours"
    assert run() == TEXT
    return run


def _service_round_trips(n: int) -> Callable[[], object]:
    def run() -> str | None:
        for _ in range(n):
            text = EncryptionService.decrypt(EncryptionService.encrypt(TEXT))
        return text

    assert run() == TEXT
    return run


def _bound_round_trips(n: int) -> Callable[[], object]:
    def run() -> str | None:
        for _ in range(n):
            token = EncryptionService.encrypt(TEXT, context=CONTEXT)
            text = EncryptionService.decrypt(token, context=CONTEXT)
        return text

    assert run() == TEXT
    bound = EncryptionService.encrypt(TEXT, context=CONTEXT)
    assert bound is not None and bound[3] == 2, "not a bound value"
    return run


def _fernet_round_trips(n: int) -> Callable[[], object]:
    fernet = Fernet(Fernet.generate_key())

    def run() -> bytes:
        for _ in range(n):
            plaintext = fernet.decrypt(fernet.encrypt(VALUE))
        return plaintext

    assert run() == VALUE
    return run
