"""Encrypted numbers: the integers (small, regular, big, and their positive kinds), decimal,
float, boolean."""

from __future__ import annotations

import decimal
from typing import Any

from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.backends.utils import format_number
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from .base import EncryptedFieldMixin


class _EncryptedIntegerMixin(EncryptedFieldMixin):
    # The range of the unencrypted type: the backends' range check keys on the internal type,
    # which is now BinaryField, so the range is taken from the type this field stands for.
    range_of = "IntegerField"
    blind_index_kind = "value"

    @cached_property
    def validators(self) -> list[Any]:
        from django.core import validators

        low, high = BaseDatabaseOperations.integer_field_ranges[self.range_of]
        return [
            *self.default_validators,
            *self._validators,  # type: ignore[attr-defined]  # Field's own, absent from stubs
            validators.MinValueValidator(low),
            validators.MaxValueValidator(high),
        ]

    def from_plaintext(self, plaintext: bytes) -> int:
        return int(plaintext)


class EncryptedIntegerField(_EncryptedIntegerMixin, models.IntegerField):
    """Encrypted ``IntegerField`` (32-bit range, like the plain field)."""

    description = _("Encrypted integer")


class EncryptedBigIntegerField(_EncryptedIntegerMixin, models.BigIntegerField):
    """Encrypted ``BigIntegerField`` (64-bit range)."""

    description = _("Encrypted big (8 byte) integer")

    range_of = "BigIntegerField"


class EncryptedSmallIntegerField(_EncryptedIntegerMixin, models.SmallIntegerField):
    """Encrypted ``SmallIntegerField`` (16-bit range)."""

    description = _("Encrypted small integer")

    range_of = "SmallIntegerField"


class EncryptedPositiveIntegerField(_EncryptedIntegerMixin, models.PositiveIntegerField):
    """Encrypted ``PositiveIntegerField`` (0 to 2**31 - 1; ``full_clean`` refuses negatives)."""

    description = _("Encrypted positive integer")

    range_of = "PositiveIntegerField"


class EncryptedPositiveSmallIntegerField(_EncryptedIntegerMixin, models.PositiveSmallIntegerField):
    """Encrypted ``PositiveSmallIntegerField`` (0 to 32767)."""

    description = _("Encrypted positive small integer")

    range_of = "PositiveSmallIntegerField"


class EncryptedPositiveBigIntegerField(_EncryptedIntegerMixin, models.PositiveBigIntegerField):
    """Encrypted ``PositiveBigIntegerField`` (0 to 2**63 - 1)."""

    description = _("Encrypted positive big integer")

    range_of = "PositiveBigIntegerField"


class EncryptedDecimalField(EncryptedFieldMixin, models.DecimalField):
    """Encrypted ``DecimalField``; stored quantized to ``decimal_places`` like the plain field."""

    description = _("Encrypted decimal number")

    def to_plaintext(self, value: Any) -> bytes:
        try:
            text = format_number(value, self.max_digits, self.decimal_places)
        except decimal.InvalidOperation:
            raise ValueError(
                f"{self.model.__name__}.{self.name} holds at most {self.max_digits} digits, "
                f"{self.decimal_places} of them after the decimal point; this value has more "
                "before it. Validate with full_clean() or make the field wider."
            ) from None
        assert text is not None  # format_number maps only None to None
        return text.encode("ascii")

    def from_plaintext(self, plaintext: bytes) -> decimal.Decimal:
        return decimal.Decimal(plaintext.decode("ascii"))


class EncryptedFloatField(EncryptedFieldMixin, models.FloatField):
    """Encrypted ``FloatField``; the exact float round-trips."""

    description = _("Encrypted floating point number")

    def to_plaintext(self, value: Any) -> bytes:
        return repr(float(value)).encode("ascii")

    def from_plaintext(self, plaintext: bytes) -> float:
        return float(plaintext)


class EncryptedBooleanField(EncryptedFieldMixin, models.BooleanField):
    """Encrypted ``BooleanField``."""

    description = _("Encrypted boolean (either True or False)")

    def to_plaintext(self, value: Any) -> bytes:
        return b"1" if value else b"0"

    def from_plaintext(self, plaintext: bytes) -> bool:
        if plaintext not in (b"0", b"1"):
            raise ValueError("not a boolean")
        return plaintext == b"1"
