"""The census: how many stored values sit under each key, read from their headers alone; and the
key retirement it allows (an old key is retired only when no value is under it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..envelope import VERSION_1, ValueKind, classify, read_header
from ..models import DataKey, KeyState, format_key_id
from .progress import Progress
from .rows import pages
from .tables import Table

# Census labels for values that are not under a data key.
NULL = "null"
LEGACY = "legacy-fernet"
UNENCRYPTED = "not-encrypted"
# Starts like an envelope but is not one (bad version, truncated, a non-canonical ASCII form).
MALFORMED = "malformed"
# Prefix of the label of an unbound value (format version 1, written before values were bound)
# in a column whose values are bound: "unbound:<key id>". It is still under that key.
UNBOUND = "unbound:"

#: Values per label (a key id, or one of the labels above) per field per model label.
Census = dict[str, dict[str, dict[str, int]]]


def census_label(raw: Any, *, bound: bool = False) -> str:
    """The census label of a stored value, from its header alone: a key id, or a kind. The key
    id comes from parsing the value canonically, never from bytes copied out of it. In a
    ``bound`` column, an unbound value is labelled ``unbound:<key id>`` (the next rotation
    binds it)."""
    if raw is None:
        return NULL
    if not isinstance(raw, (bytes, bytearray, memoryview, str)):
        return UNENCRYPTED
    kind = classify(raw)
    if kind is ValueKind.LEGACY_FERNET:
        return LEGACY
    if kind is ValueKind.UNKNOWN:
        return UNENCRYPTED
    header = read_header(raw)
    if header is None:
        return MALFORMED
    version, key_id = header
    return (UNBOUND if bound and version == VERSION_1 else "") + format_key_id(key_id)


def values_under_key(totals: dict[str, int], hex_id: str) -> int:
    """How many values a census found under key ``hex_id``, bound or not."""
    return totals.get(hex_id, 0) + totals.get(UNBOUND + hex_id, 0)


def per_field(table: Table, counts: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """``{field: {label: values}}`` from counts keyed by ``(field, label)``, labels sorted."""
    fields: dict[str, dict[str, int]] = {name: {} for name, _ in table.columns}
    for (name, label), count in sorted(counts.items()):
        fields[name][label] = count
    return fields


def count_census(
    connection: Any, tables: Sequence[Table], batch_size: int, progress: Progress
) -> Census:
    """Values per key per model and field, from headers only (read-only, no decryption)."""
    result: Census = {}
    for table in tables:
        progress.phase("census", table.label)
        counts: Counter[tuple[str, str]] = Counter()
        for rows in pages(connection, table, batch_size):
            for row in rows:
                for (name, _column), raw in zip(table.columns, row[1:], strict=True):
                    counts[(name, census_label(raw, bound=name in table.bindings))] += 1
        result[table.label] = per_field(table, counts)
    return result


def census_totals(census: Census) -> dict[str, int]:
    """Values per label over every model and field."""
    totals: Counter[str] = Counter()
    for fields in census.values():
        for labels in fields.values():
            totals.update(labels)
    return dict(totals)


def undestroyed_key_ids(using: str) -> list[int]:
    """The ids of every data key whose material still exists (what a new key replaces)."""
    keys = DataKey.objects.using(using).exclude(state=KeyState.DESTROYED)
    return list(keys.values_list("key_id", flat=True))


@dataclass
class Retirement:
    """What ``retire_keys`` did: the keys it retired and destroyed, and why others stayed."""

    retired: list[int] = field(default_factory=list)
    destroyed: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def retire_keys(
    using: str, totals: dict[str, int], *, blocker: str, now: datetime, retention: timedelta
) -> Retirement:
    """Retire every old key the census shows unused, and destroy the material of keys retired
    longer than ``retention``. ``blocker`` (why no key may go: failed rows, a partial census)
    stops both. Call it in a transaction; the keys are locked for update."""
    done = Retirement()
    keys = DataKey.objects.using(using).select_for_update()
    for key in keys.exclude(state__in=[KeyState.PRIMARY, KeyState.DESTROYED]):
        in_use = values_under_key(totals, key.hex_id)
        if blocker or in_use:
            done.notes.append(
                f"key {key.hex_id} stays {key.state}: "
                + (blocker or f"{in_use} values are still under it")
            )
            continue
        if key.state == KeyState.DECRYPT_ONLY:
            key.state, key.retired_at = KeyState.RETIRED, now
            key.save(using=using, update_fields=["state", "retired_at"])
            done.retired.append(key.key_id)
        elif key.retired_at is not None and now - key.retired_at >= retention:
            key.state, key.destroyed_at, key.wrapped_key = KeyState.DESTROYED, now, None
            key.save(using=using, update_fields=["state", "destroyed_at", "wrapped_key"])
            done.destroyed.append(key.key_id)
    if totals.get(LEGACY):
        done.notes.append(f"{totals[LEGACY]} legacy Fernet values remain")
    if totals.get(UNENCRYPTED):
        done.notes.append(f"{totals[UNENCRYPTED]} values are not encrypted")
    return done
