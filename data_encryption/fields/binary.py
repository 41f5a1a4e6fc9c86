"""The encrypted binary field: the plaintext is the bytes themselves."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from .base import EncryptedFieldMixin


class EncryptedBinaryField(EncryptedFieldMixin, models.BinaryField):
    """Encrypted ``BinaryField``: the plaintext is the bytes themselves."""

    description = _("Encrypted raw binary data")

    def to_plaintext(self, value: Any) -> bytes:
        return bytes(value)

    def from_plaintext(self, plaintext: bytes) -> bytes:
        return plaintext
