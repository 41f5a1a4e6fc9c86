"""Encrypted identifiers: UUIDs and IP addresses."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from .base import EncryptedFieldMixin
from .messages import field_label


class EncryptedUUIDField(EncryptedFieldMixin, models.UUIDField):
    """Encrypted ``UUIDField``: the hyphenated lower-case form, ``str(uuid)``."""

    description = _("Encrypted universally unique identifier")
    blind_index_kind = "value"

    def to_plaintext(self, value: Any) -> bytes:
        return str(value).encode("ascii")

    def from_plaintext(self, plaintext: bytes) -> uuid.UUID:
        text = plaintext.decode("ascii")
        value = uuid.UUID(text)
        if str(value) != text:  # 32 bare hex digits or braces: not what this field writes
            raise ValueError("not written by this field")
        return value


class EncryptedGenericIPAddressField(EncryptedFieldMixin, models.GenericIPAddressField):
    """Encrypted ``GenericIPAddressField``: the text the plain field stores (IPv6 compressed,
    ``::ffff:a.b.c.d`` unpacked with ``unpack_ipv4``); ``""`` is stored as NULL, as there."""

    description = _("Encrypted IP address")

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return None if value == "" else value

    def to_plaintext(self, value: Any) -> bytes:
        # The plain field's column (inet on PostgreSQL) refuses what is not an address; refused
        # here too, so that every stored value reads back.
        try:
            ipaddress.ip_address(value)
            valid = True
        except ValueError:
            valid = False
        if not valid:  # raised outside the except block: its message quotes the value
            raise ValueError(
                f"{field_label(self)} holds an IP address, and this value is not one. Validate "
                "with full_clean() before saving."
            )
        return str(value).encode("ascii")

    def from_plaintext(self, plaintext: bytes) -> str:
        text = plaintext.decode("ascii")
        ipaddress.ip_address(text)
        return text
