"""Unpickling that builds only what a field value can be: text, bytes, numbers, booleans, None,
``Decimal``, dates, times, date-times with their time zones, durations, ``UUID``, and the lists,
dicts and tuples of a JSON document. Any other global a pickle names is refused, so a pickle
cannot run code even if its authentication were somehow passed."""

from __future__ import annotations

import datetime
import decimal
import io
import pickle
import uuid
import zoneinfo
from typing import Any


def _zoneinfo_unpickler(owner: Any, name: str) -> Any:
    """``getattr`` as ``ZoneInfo``'s pickle uses it (``getattr(ZoneInfo, "_unpickle")``), and
    for nothing else."""
    if owner is zoneinfo.ZoneInfo and name == "_unpickle":
        return zoneinfo.ZoneInfo._unpickle  # type: ignore[attr-defined]
    raise pickle.UnpicklingError("refused attribute")


def _pytz_utc() -> datetime.tzinfo:
    return datetime.UTC


def _pytz_zone(
    zone: str, utcoffset: int | None = None, dstoffset: int | None = None, tzname: str = ""
) -> datetime.tzinfo:
    """A pytz zone as Django before 4.0 pickled it: a localized zone is a fixed offset (the
    same instant), a static one the zone itself. pytz itself is not needed."""
    if utcoffset is None:
        return zoneinfo.ZoneInfo(zone)
    offset = datetime.timedelta(seconds=utcoffset)
    return datetime.timezone(offset, tzname) if tzname else datetime.timezone(offset)


def _no_size(kind: type) -> Any:
    """``bytes``/``bytearray`` built from their contents only: ``bytearray(10**12)`` from a
    pickle would allocate whatever size it names."""

    def build(*args: Any) -> Any:
        if args and isinstance(args[0], int):
            raise pickle.UnpicklingError("a size, not contents")
        return kind(*args)

    return build


_ALLOWED: dict[tuple[str, str], Any] = {
    **{
        ("builtins", kind.__name__): kind
        for kind in (str, int, float, bool, list, dict, tuple, set, frozenset)
    },
    ("builtins", "bytes"): _no_size(bytes),
    ("builtins", "bytearray"): _no_size(bytearray),
    ("builtins", "getattr"): _zoneinfo_unpickler,
    ("decimal", "Decimal"): decimal.Decimal,
    **{
        ("datetime", kind.__name__): kind
        for kind in (
            datetime.date,
            datetime.datetime,
            datetime.time,
            datetime.timedelta,
            datetime.timezone,
        )
    },
    ("zoneinfo", "ZoneInfo"): zoneinfo.ZoneInfo,
    ("uuid", "UUID"): uuid.UUID,
    ("pytz", "_UTC"): _pytz_utc,
    ("pytz", "_p"): _pytz_zone,
}


class _FieldValueUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            # The names are left out: they come from the stored value.
            raise pickle.UnpicklingError("a type a field value cannot be") from None


def load_field_value(data: bytes) -> Any:
    """The value pickled in ``data``; ``pickle.UnpicklingError`` (or the error of a malformed
    pickle) for anything else."""
    return _FieldValueUnpickler(io.BytesIO(data)).load()
