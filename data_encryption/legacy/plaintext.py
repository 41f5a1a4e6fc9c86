"""The plaintext reader: the values a plain column held before it became an encrypted field.

They come in two shapes. On PostgreSQL the column-type change renders each value as the UTF-8
text the encrypted field's own decoder reads (``b"12"``, ISO dates, JSON text...), so the field
parses it. On SQLite the values stay as Django's SQLite backend stored them for the plain field
(dynamically typed: numbers as numbers, date-times as naive UTC text...), so they are converted
exactly as that backend's converters and the plain field would.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from typing import Any

from django.conf import settings
from django.core import exceptions
from django.db import DEFAULT_DB_ALIAS, connections, models, router
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime, parse_time

from .base import PLAINTEXT, LegacyReader, LegacyValueError, UndecodableText, _label
from .direct import PlaintextPath, raw_column_path, text_path


class PlaintextReader(LegacyReader):
    """Reads the plain value of a column that is being encrypted in place. No options."""

    name = PLAINTEXT

    def read(self, raw: Any, field: models.Field) -> Any:
        if isinstance(raw, UndecodableText):
            raise LegacyValueError(
                f"A plaintext value of {_label(field)} is text that is not UTF-8; the row is "
                "left as it is. Fix the row, then run the conversion again."
            )
        if not hasattr(field, "from_plaintext"):
            return raw  # a raw column (the property pattern): its text or bytes as they are
        try:
            if isinstance(raw, (bytes, bytearray, memoryview)):
                return field.from_plaintext(bytes(raw))
            return _from_sqlite(raw, field)
        except UnicodeDecodeError:
            problem = "is not UTF-8 text"
        except json.JSONDecodeError:
            problem = "is not valid JSON"
        except (
            exceptions.ValidationError,
            ArithmeticError,
            TypeError,
            ValueError,
            RecursionError,
        ):
            problem = f"is not a {type(field).__name__} value"
        raise LegacyValueError(
            f"A plaintext value of {_label(field)} {problem}; the row is left as it is. Fix the "
            "row (or the field type), then run the conversion again."
        )

    def direct_path(self, field: models.Field) -> PlaintextPath | None:
        if type(self).read is not PlaintextReader.read:
            return None  # a subclass reads its own way
        if not hasattr(field, "from_plaintext") and not hasattr(field, "to_plaintext"):
            return raw_column_path(self, field)
        return text_path(self, field)


def _from_sqlite(raw: str | int | float, field: models.Field) -> Any:
    """What Django's SQLite backend and the plain field return for stored ``raw``
    (``django/db/backends/sqlite3/operations.py``, ``get_db_converters``)."""
    if isinstance(field, models.DateTimeField):
        return _datetime(raw, field)
    if isinstance(field, models.DateField):
        return _parsed(parse_date, raw, datetime.date)
    if isinstance(field, models.TimeField):
        return _parsed(parse_time, raw, datetime.time)
    if isinstance(field, models.DecimalField):
        return _decimal(raw, field)
    if isinstance(field, models.BooleanField) and raw in (0, 1):
        return bool(raw)
    if isinstance(field, models.UUIDField):
        return uuid.UUID(str(raw))
    if isinstance(field, models.DurationField) and isinstance(raw, int):
        return datetime.timedelta(microseconds=raw)  # stored as integer microseconds
    if isinstance(raw, str):
        # Text, JSON text, and numbers that a text column kept as text: the field's decoder
        # reads the value's UTF-8 bytes, as it reads a decrypted one.
        return field.from_plaintext(raw.encode("utf-8"))  # type: ignore[attr-defined]
    return field.to_python(raw)


def _datetime(raw: Any, field: models.Field) -> datetime.datetime:
    value = raw if isinstance(raw, datetime.datetime) else parse_datetime(str(raw))
    if value is None:
        raise ValueError("not a date-time")
    if settings.USE_TZ and timezone.is_naive(value):
        # Django's SQLite backend stores naive text in the connection's zone (UTC unless the
        # database's TIME_ZONE option says otherwise).
        value = timezone.make_aware(value, _connection_for(field).timezone)
    return value


def _parsed(parse: Any, raw: Any, kind: type) -> Any:
    value = raw if isinstance(raw, kind) else parse(str(raw))
    if value is None:
        raise ValueError(f"not a {kind.__name__}")
    return value


def _decimal(raw: Any, field: models.DecimalField) -> decimal.Decimal:
    # SQLite keeps 15 significant digits of a REAL; digits from float inaccuracy are dropped,
    # then the value is quantized to the field's places, as Django's converter does.
    if isinstance(raw, float):
        value = decimal.Context(prec=15).create_decimal_from_float(raw)
    else:
        value = decimal.Decimal(raw)
    if field.decimal_places is None:
        return value
    return value.quantize(decimal.Decimal(1).scaleb(-field.decimal_places), context=field.context)


def _connection_for(field: models.Field) -> Any:
    model = getattr(field, "model", None)
    alias = router.db_for_read(model) if model is not None else DEFAULT_DB_ALIAS
    return connections[alias or DEFAULT_DB_ALIAS]
