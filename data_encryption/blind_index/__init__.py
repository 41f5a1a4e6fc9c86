"""Blind indexes: a keyed hash of a value kept beside its ciphertext, so that a query can find
rows by exact value (and the database can keep values unique) without decrypting anything.
See docs/search.md. ``normalisers`` says what a value becomes before it is hashed; ``hashing``
computes the hash under the index keys of ``index_keys``."""

from __future__ import annotations

from .hashing import DIGEST_BYTES, digest, digester, read_digest, slot_digest, write_digests
from .normalisers import NAMED as NAMED_NORMALISERS
from .normalisers import Normaliser, resolve

__all__ = [
    "DIGEST_BYTES",
    "NAMED_NORMALISERS",
    "Normaliser",
    "digest",
    "digester",
    "read_digest",
    "resolve",
    "slot_digest",
    "write_digests",
]
