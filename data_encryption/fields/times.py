"""Encrypted times of day and durations."""

from __future__ import annotations

import datetime
from typing import Any

from django.db import models
from django.utils.duration import duration_microseconds
from django.utils.translation import gettext_lazy as _

from .base import EncryptedFieldMixin
from .messages import field_label


class EncryptedTimeField(EncryptedFieldMixin, models.TimeField):
    """Encrypted ``TimeField`` (ISO 8601, naive). Like the plain field on SQLite and MySQL, a
    time with a ``tzinfo`` is refused: a time of day has no date to resolve its offset."""

    description = _("Encrypted time")

    def to_plaintext(self, value: Any) -> bytes:
        if value.tzinfo is not None:
            raise ValueError(
                f"{field_label(self)} stores times without a time zone, and this time has a "
                "tzinfo. Convert it to the wall-clock time you mean and pass "
                "value.replace(tzinfo=None)."
            )
        return value.isoformat().encode("ascii")

    def from_plaintext(self, plaintext: bytes) -> datetime.time:
        value = datetime.time.fromisoformat(plaintext.decode("ascii"))
        if value.tzinfo is not None:
            raise ValueError("not written by this field")  # never seen: replaced by the caller
        return value


class _DurationFromText(models.DurationField):
    """``DurationField`` that converts what a form or fixture hands over (``"1 02:03:04"``,
    ISO 8601) before it is stored, as the plain field's column does on PostgreSQL."""

    def get_prep_value(self, value: Any) -> Any:
        return self.to_python(super().get_prep_value(value))


class EncryptedDurationField(EncryptedFieldMixin, _DurationFromText):
    """Encrypted ``DurationField``: the total microseconds as a decimal integer (exact, what the
    plain field stores on SQLite)."""

    description = _("Encrypted duration")

    def get_db_converters(self, connection: Any) -> list[Any]:
        # DurationField adds the backend's microseconds-to-timedelta converter where durations
        # are stored as integers (SQLite); the column holds an envelope here.
        return models.Field.get_db_converters(self, connection)

    def to_plaintext(self, value: Any) -> bytes:
        return str(duration_microseconds(value)).encode("ascii")

    def from_plaintext(self, plaintext: bytes) -> datetime.timedelta:
        return datetime.timedelta(microseconds=int(plaintext))
