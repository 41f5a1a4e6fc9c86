"""The census: how many stored values sit under each key, read from their headers alone; and the
key retirement it allows (an old key is retired only when no value is under it, its material
destroyed after the retention period, then pruned from the key backups if the project says so)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..backups import BackupError, prune_backups
from ..conf import encryption_settings
from ..envelope import VERSION_1, ValueKind, classify, read_header
from ..legacy import PLAINTEXT, is_envelope, is_fernet_token
from ..models import DataKey, KeyState, RotationRun, format_key_id
from .progress import Progress
from .rows import pages
from .tables import Table

logger = logging.getLogger(__name__)

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


def census_label(raw: Any, *, bound: bool = False, legacy: str | None = None) -> str:
    """The census label of a stored value, from its header alone: a key id, or a kind. The key
    id comes from parsing the value canonically, never from bytes copied out of it. In a
    ``bound`` column, an unbound value is labelled ``unbound:<key id>`` (the next rotation
    binds it). In a column in transition, a value that is not an envelope is its reader's
    (``legacy``: ``plaintext`` or ``legacy:<library>``)."""
    if raw is None:
        return NULL
    if legacy is not None and not is_envelope(raw):
        # A Fernet token in a plaintext column is this app's own legacy token (read as one,
        # as the field reads it), not plaintext to seal as it is.
        if legacy == PLAINTEXT and is_fernet_token(raw):
            return LEGACY
        return legacy
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
    connection: Any,
    tables: Sequence[Table],
    batch_size: int,
    progress: Progress,
    on_page: Callable[[], None] = lambda: None,
) -> Census:
    """Values per key per model and field, from headers only (read-only, no decryption).
    ``on_page`` is called after each page (a rotation refreshes its heartbeat there)."""
    result: Census = {}
    for table in tables:
        progress.phase("census", table.label)
        counts: Counter[tuple[str, str]] = Counter()
        legacy_labels = {name: column.label for name, column in table.legacy.items()}
        for rows in pages(connection, table, batch_size):
            for row in rows:
                for (name, _column), raw in zip(table.columns, row[1:], strict=True):
                    label = census_label(
                        raw, bound=name in table.bindings, legacy=legacy_labels.get(name)
                    )
                    counts[(name, label)] += 1
            on_page()
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
    # The DataKey row is the key's only copy in the database; a run row that still holds one
    # (a run from before migration 0004) loses it with the key.
    if done.destroyed:
        runs = RotationRun.objects.using(using).filter(new_key_id__in=done.destroyed)
        runs.exclude(new_wrapped_key=None).update(new_wrapped_key=None)
    if totals.get(LEGACY):
        done.notes.append(f"{totals[LEGACY]} legacy Fernet values remain")
    if totals.get(UNENCRYPTED):
        done.notes.append(f"{totals[UNENCRYPTED]} values are not encrypted")
    waiting = sum(
        count
        for label, count in totals.items()
        if label == PLAINTEXT or label.startswith("legacy:")
    )
    if waiting:
        done.notes.append(f"{waiting} values in columns in transition wait for encrypt_existing")
    return done


def prune_backups_after_retirement(using: str) -> str:
    """With ``PRUNE_BACKUPS`` on, remove destroyed keys' material from every key backup; the
    note for the run's reason ("" when there is nothing to say). A failure is a note too: the
    keys are already retired or destroyed, and the next run (or ``prune_key_backups``) retries."""
    if not encryption_settings.prune_backups:
        return ""
    try:
        pruned = prune_backups(using=using)
    except (BackupError, OSError) as exc:
        logger.error("Pruning the key backups failed (%s); run prune_key_backups.", exc)
        return f"key backups not pruned ({type(exc).__name__}): run prune_key_backups"
    for path, why in pruned.left:
        logger.warning("Key backup %s was not pruned: %s", path, why)
    if pruned.rewritten or pruned.deleted or pruned.left:
        return f"key backups pruned: {pruned.summary()}"
    return ""
