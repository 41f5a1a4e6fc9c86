"""One page of an index walk: each indexed value decrypted and hashed under the keys of the
slots being filled, decided without touching the database (``write_rows`` writes the result,
compare-and-swap on the ciphertext read)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from ..blind_index import digester
from ..encryptor import open_value
from ..exceptions import DecryptionError
from ..legacy import LegacyColumn, is_envelope
from .batch import failure_reason
from .index_tables import IndexTable

#: (slot, field key) per slot filled, for one field: derived once per walk, not per value.
SlotKeys = Sequence[tuple[str, bytes]]


@dataclass
class IndexBatch:
    """What one page needs written: per (index column, ciphertext column), the
    ``(digest, pk, ciphertext read)`` of each index value that is missing or wrong."""

    rows: int = 0
    last_pk: Any = None
    updates: dict[tuple[str, str], list[tuple[Any, Any, Any]]] = field(default_factory=dict)
    failures: list[tuple[Any, str, int | None, str]] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)  # ciphertext column -> field name

    @property
    def failed_rows(self) -> int:
        return len({pk for pk, *_ in self.failures})

    @property
    def rewrites(self) -> int:
        """Rows given an index value (a row counts once however many slots it got)."""
        return len({rewrite[1] for rewrites in self.updates.values() for rewrite in rewrites})

    def write_failed(self, pk: Any, column: Any, reason: str) -> None:
        """The database refused row ``pk``'s index (a unique slot: another row holds the same
        value); the row keeps what it had and becomes a failure of its field."""
        for rewrites in self.updates.values():
            rewrites[:] = [rewrite for rewrite in rewrites if rewrite[1] != pk]
        self.updates = {target: rewrites for target, rewrites in self.updates.items() if rewrites}
        name = self.fields.get(column[1], column[1])
        self.failures.append((pk, name, None, reason.replace("re-encrypted", "indexed")))


def examine_index_rows(
    rows: Iterable[Sequence[Any]],
    table: IndexTable,
    keys: dict[str, SlotKeys],
    *,
    only_missing: bool,
) -> IndexBatch:
    """Decide each row's index values: for each indexed field (``keys`` by field name: the
    slots to fill and their field keys), the digest of the row's value in each slot, written
    where the slot holds something else. ``only_missing`` (a rebuild) looks only at rows
    with a value and no index in one of those slots, without decrypting the others. A value
    that cannot be read or that its normaliser refuses is a failure, its row left as it is."""
    batch = IndexBatch()
    plans = []
    for number, indexed in enumerate(table.indexed):
        position = 1 + 3 * number  # the ciphertext; its slots follow in SLOTS order
        slot_positions = {"a": position + 1, "b": position + 2}
        targets: list[tuple[int, Any, tuple[str, str], list[tuple[Any, Any, Any]]]] = [
            (
                slot_positions[slot],
                digester(field_key),
                (indexed.slot_columns[slot], indexed.column),
                [],
            )
            for slot, field_key in keys.get(indexed.name, ())
        ]
        if targets:
            legacy = table.legacy.get(indexed.name)
            plans.append((indexed, position, targets, _index_input(indexed.field, legacy)))
        batch.fields[indexed.column] = indexed.name
    pk, count = None, 0
    for row in rows:
        pk = row[0]
        count += 1
        for indexed, position, targets, index_input in plans:
            raw = row[position]
            if raw is None:
                continue
            if only_missing:
                for slot, *_ in targets:
                    if row[slot] is None:
                        break
                else:
                    continue  # every slot filled has its index
            if type(raw) is memoryview:
                raw = bytes(raw)
            try:
                data = index_input(raw, pk)
            except Exception as exc:
                batch.failures.append((pk, indexed.name, None, _reason(exc)))
                continue
            for slot, keyed, _target, rewrites in targets:
                value = None if data is None else keyed(data)
                stored = row[slot]
                if value != (None if stored is None else bytes(stored)):
                    rewrites.append((value, pk, raw))
    batch.rows, batch.last_pk = count, pk
    for _indexed, _position, targets, _input in plans:
        for _slot, _key, target, rewrites in targets:
            if rewrites:
                batch.updates[target] = rewrites
    return batch


def _index_input(index_field: Any, legacy: LegacyColumn | None) -> Callable[[Any, Any], Any]:
    """What the field hashes for a stored value (``(raw, pk) -> bytes``): its value read as
    the field reads it (an envelope opened under the column's context, a legacy value through
    the column's reader), then normalised as a write would. Text, the common kind, takes a
    short path: its plaintext is its UTF-8 text, which the normaliser (if any) is given."""
    binding = index_field.binding
    per_row = bool(index_field.bind_to_pk)
    fixed_context = None if per_row else binding.context
    text = index_field.blind_index_kind == "text"
    normalise = index_field.normalise

    def index_input(raw: Any, pk: Any) -> Any:
        if legacy is not None and not is_envelope(raw):
            plaintext = legacy.plaintext(raw)
        else:
            plaintext = open_value(raw, binding.for_row(pk) if per_row else fixed_context)
        if text:
            value = plaintext.decode("utf-8")  # as from_plaintext reads it
            return plaintext if normalise is None else normalise(value).encode("utf-8")
        return index_field.index_input(index_field.from_plaintext_checked(plaintext))

    return index_input


def _reason(exc: Exception) -> str:
    """A failure's reason, never quoting the value."""
    if isinstance(exc, ValidationError):
        return (
            "the field's normaliser refuses the stored value, so it has no index; correct the "
            "row's value (a save through the model checks it), then rebuild the index"
        )
    if isinstance(exc, DecryptionError):
        return str(exc)[:300]
    return failure_reason(exc)
