"""The Python value of a field for the text another library encrypted: ``str(value)`` of what
the plain field held (``12``, ``2024-03-01``, ``2024-03-01 09:30:00+00:00``, ``True``...), parsed
as the field's type. A date-time written without an offset is read in the zone its library wrote
it in."""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.core import exceptions
from django.db import models
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .base import LegacyValueError, _label


def value_from_text(
    text: str, field: models.Field, library: str, naive_zone: datetime.tzinfo | None = None
) -> Any:
    """``field``'s value for ``text``; a naive date-time is taken to be in ``naive_zone``
    (the default time zone when ``None``). A raw column (not an encrypted field) gets the text."""
    if not hasattr(field, "to_plaintext"):
        return text
    try:
        if isinstance(field, models.DateTimeField):
            parsed = parse_datetime(text)
            if parsed is None:
                raise ValueError("not a date-time")
            return in_current_zone_rules(parsed, naive_zone)
        return field.to_python(text)
    except (exceptions.ValidationError, TypeError, ValueError, OverflowError):
        raise LegacyValueError(
            f"A value decrypted by the {library} reader is not a valid {type(field).__name__} "
            f"value for {_label(field)}; the row is left as it is. Check that the column's "
            "field type matches the one the library used."
        ) from None


def in_current_zone_rules(
    value: datetime.datetime, naive_zone: datetime.tzinfo | None = None
) -> datetime.datetime:
    """``value`` as Django returns a date-time under the current ``USE_TZ``: aware (a naive one
    taken to be in ``naive_zone``, by default the default time zone) or naive wall-clock time
    in the default time zone."""
    if settings.USE_TZ:
        if timezone.is_naive(value):
            value = timezone.make_aware(value, naive_zone or timezone.get_default_timezone())
        return value
    if timezone.is_aware(value):
        value = timezone.make_naive(value, timezone.get_default_timezone())
    return value
