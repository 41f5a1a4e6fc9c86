"""Encrypted dates and date-times (aware or naive, as ``USE_TZ`` says)."""

from __future__ import annotations

import datetime
import warnings
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .base import EncryptedFieldMixin
from .messages import field_label


class EncryptedDateField(EncryptedFieldMixin, models.DateField):
    """Encrypted ``DateField`` (ISO 8601)."""

    description = _("Encrypted date (without time)")
    blind_index_kind = "value"

    def to_plaintext(self, value: Any) -> bytes:
        return value.isoformat().encode("ascii")

    def from_plaintext(self, plaintext: bytes) -> datetime.date:
        return datetime.date.fromisoformat(plaintext.decode("ascii"))


class _DateTimeFieldWarningWithoutValue(models.DateTimeField):
    """``DateTimeField`` whose warning about a naive datetime names the field, not the value
    (Django's prints the value, here the plaintext). The conversion is Django's."""

    def to_python(self, value: Any) -> Any:
        if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
            value = self._aware(datetime.datetime(value.year, value.month, value.day))
        return super().to_python(value)

    def get_prep_value(self, value: Any) -> Any:
        return super().get_prep_value(self._aware(self.to_python(value)))

    def _aware(self, value: Any) -> Any:
        if value is not None and settings.USE_TZ and timezone.is_naive(value):
            warnings.warn(
                f"DateTimeField {field_label(self)} received a naive datetime while time zone "
                "support is active (the value is not shown: the field is encrypted).",
                RuntimeWarning,
                stacklevel=3,
            )
            value = timezone.make_aware(value, timezone.get_default_timezone())
        return value


class EncryptedDateTimeField(EncryptedFieldMixin, _DateTimeFieldWarningWithoutValue):
    """Encrypted ``DateTimeField`` (ISO 8601). With ``USE_TZ``, stored and returned in UTC,
    as the plain field does; without it, naive wall-clock times in ``TIME_ZONE``. A value written
    under the other setting is converted on read, so turning ``USE_TZ`` on needs no migration."""

    description = _("Encrypted date (with time)")

    def to_plaintext(self, value: Any) -> bytes:
        if timezone.is_aware(value):
            if settings.USE_TZ:
                value = value.astimezone(datetime.UTC)
            else:  # wall-clock time in TIME_ZONE, as PostgreSQL stores it for the plain field
                value = timezone.make_naive(value, timezone.get_default_timezone())
        return value.isoformat().encode("ascii")

    def from_plaintext(self, plaintext: bytes) -> datetime.datetime:
        value = datetime.datetime.fromisoformat(plaintext.decode("ascii"))
        if settings.USE_TZ and timezone.is_naive(value):
            # Written while USE_TZ was False: a wall-clock time in TIME_ZONE.
            value = timezone.make_aware(value, timezone.get_default_timezone())
            value = value.astimezone(datetime.UTC)
        elif not settings.USE_TZ and timezone.is_aware(value):
            value = timezone.make_naive(value, timezone.get_default_timezone())
        return value
