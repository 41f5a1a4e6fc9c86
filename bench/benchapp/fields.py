"""A floor for the load benchmark: the least work an AES-GCM model field can do.

``BareAesGcmField`` stores ``nonce + ciphertext + tag`` under one process-wide key made at
import, with no key id, header or associated data, and decrypts in ``from_db_value`` with one
``AESGCM.decrypt`` call. It is not a design anyone should ship (the key dies with the process);
it shows how close to plain fields any field built on ``cryptography``'s AESGCM can get.
"""

from __future__ import annotations

import os
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.db import models

_AEAD = AESGCM(AESGCM.generate_key(bit_length=256))


class BareAesGcmField(models.BinaryField):
    """Text in Python, ``nonce + AES-256-GCM ciphertext`` in a binary column."""

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if value is None:
            return None
        nonce = os.urandom(12)
        return nonce + _AEAD.encrypt(nonce, value.encode(), None)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        return _AEAD.decrypt(value[:12], value[12:], None).decode()

    def to_python(self, value: Any) -> Any:
        return value
