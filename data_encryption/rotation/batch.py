"""One batch of rows: what rotation does with each value, decided without touching the database."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..ciphers import AeadCipher
from ..encryptor import open_value
from ..envelope import (
    ASCII_PREFIX_V1,
    ASCII_PREFIX_V2,
    FERNET_TEXT_PREFIX,
    HEADER_SIZE,
    HEADER_V1,
    HEADER_V2,
    MAGIC,
    MIN_BINARY_SIZE,
    VERSION_1,
    VERSION_2,
    associated_data,
    header_for,
    header_key_id,
    parse,
)
from ..exceptions import BlindIndexError, DecryptionError
from ..fields.binding import ColumnBinding
from ..legacy import PLAINTEXT, LegacyColumn
from ..models import format_key_id
from .census import LEGACY, NULL, UNBOUND, census_label
from .indexes import IndexedColumn


@dataclass
class Batch:
    """What one batch of rows needs: the writes, the failures and the census of its values."""

    rows: int = 0
    last_pk: Any = None
    updates: dict[str, list[tuple[Any, Any, Any]]] = field(default_factory=dict)
    failures: list[tuple[Any, str, int | None, str]] = field(default_factory=list)
    census: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Column name -> field name, to report a failed write by field; the bound fields' names.
    fields: dict[str, str] = field(default_factory=dict)
    bound: set[str] = field(default_factory=set)
    # The census label of legacy values, by field name, for the columns in transition.
    legacy_labels: dict[str, str] = field(default_factory=dict)

    @property
    def failed_rows(self) -> int:
        return len({pk for pk, *_ in self.failures})

    @property
    def rewrites(self) -> int:
        return sum(len(params) for params in self.updates.values())

    def write_failed(self, pk: Any, column: str, reason: str) -> None:
        """The database refused to write row ``pk`` (its ``column`` first): the row keeps every
        value it had, so its rewrites are dropped and it becomes one failure."""
        name = self.fields.get(column, column)
        key_id = None
        for updated, rewrites in self.updates.items():
            for rewrite in [rewrite for rewrite in rewrites if rewrite[1] == pk]:
                rewrites.remove(rewrite)
                field_name = self.fields.get(updated, updated)
                self.census[(field_name, census_label(rewrite[0]))] -= 1
                old_label = census_label(
                    rewrite[2],
                    bound=field_name in self.bound,
                    legacy=self.legacy_labels.get(field_name),
                )
                self.census[(field_name, old_label)] += 1
                if updated == column:
                    key_id = header_key_id(rewrite[2])
        self.updates = {column: rewrites for column, rewrites in self.updates.items() if rewrites}
        self.failures.append((pk, name, key_id, reason))


def examine_rows(
    rows: Iterable[Sequence[Any]],
    columns: Sequence[tuple[str, str]],
    key_id: int | None,
    cipher: AeadCipher | None,
    *,
    rewrite: bool,
    bindings: Mapping[str, ColumnBinding] | None = None,
    legacy: Mapping[str, LegacyColumn] | None = None,
    encrypted: Collection[str] = (),
    only_legacy: bool = False,
    indexes: Mapping[str, IndexedColumn] | None = None,
) -> Batch:
    """Decide, row by row, what rotation does with each value (pure: no database access).

    Values under ``key_id`` in their column's form (bound to the column's context when
    ``bindings`` names one, by field) are counted and left. Others are decrypted (a value from
    before the column was ours, in a column ``legacy`` names, is read by its reader); with
    ``rewrite`` they are re-sealed under ``key_id``, bound as their column says, in the form they
    were stored in (ASCII for text columns; always binary in the ``encrypted`` fields' columns).
    ``only_legacy`` (a conversion) leaves every envelope, under any key, as it is. A legacy
    value of a field in ``indexes`` (by name) is rewritten with its blind index, one value per
    index column after ``(new, pk, old)``. A value that cannot be read, indexed or re-sealed
    becomes a failure and is left as it is.
    """
    # This runs once per stored value, so the common values take short paths: a binary envelope
    # is counted under its 8 header bytes (each distinct header is turned into its label once,
    # at the end); a conversion's bytes that are no envelope get their reader's label without
    # census_label; a column's fixed associated data is made once; a rewrite is counted at the
    # end. Anything else gets its label from census_label. The decisions are the same for all.
    batch = Batch()
    target_label = format_key_id(key_id)
    seal = cipher.seal if rewrite and cipher is not None and key_id is not None else None
    plans = [
        _Column(
            name,
            column,
            (bindings or {}).get(name),
            key_id,
            (legacy or {}).get(name),
            binary=name in encrypted,
            only_legacy=only_legacy,
            index=(indexes or {}).get(name),
        )
        for name, column in columns
    ]
    # Each row is (pk, one value per column), as read_rows selects it; indexing it is far
    # cheaper per row than zip(plans, row[1:]).
    positions = list(enumerate(plans, 1))
    pk, count = None, 0
    for row in rows:
        pk = row[0]
        count += 1
        for position, plan in positions:
            raw = row[position]
            if type(raw) is memoryview:
                raw = bytes(raw)
            token: bytes | str
            if (
                plan.legacy is not None
                and type(raw) is bytes
                and not raw.startswith(_ENVELOPE_STARTS)
            ):
                token = plan.legacy.label  # census_label's verdict, inline
            elif type(raw) is bytes and raw[:4] in _HEADERS and len(raw) >= MIN_BINARY_SIZE:
                token = raw[:HEADER_SIZE]
            else:
                token = census_label(raw, bound=plan.binding is not None, legacy=plan.legacy_label)
            if token != plan.legacy_label and (
                (plan.only_legacy and token != plan.own_token) or token in plan.kept
            ):
                plan.counts[token] += 1
                continue
            try:
                row_context = plan.row_context
                context = plan.context if row_context is None else row_context(pk)
                if plan.legacy is not None and token == plan.legacy_label:
                    plaintext = plan.legacy.plaintext(raw)
                elif token == plan.own_token:
                    # A Fernet token in a plaintext column: this app's legacy token when it
                    # opens as one (as the field reads it), else the column's plaintext.
                    try:
                        plaintext = open_value(raw, context)
                    except DecryptionError:
                        plaintext = plan.legacy.plaintext(raw)  # type: ignore[union-attr]
                else:
                    plaintext = open_value(raw, context)
                if seal is None or plan.target_header is None:
                    plan.counts[token] += 1
                    continue
                sealed = plan.target_header + seal(
                    plaintext,
                    plan.associated_data
                    if row_context is None
                    else associated_data(plan.target_header, context),
                )
                new: Any = sealed
                if isinstance(raw, str) and not plan.binary:
                    new = parse(sealed).to_ascii()
                # A legacy value had no index (an envelope has its own already).
                if plan.index is not None and token in (plan.legacy_label, plan.own_token):
                    plan.rewrites.append((new, pk, raw, *plan.index.digests(plaintext)))
                    continue
            except Exception as exc:
                # Whatever one value does (garbage, a header no parser expected, a bug), it is
                # that value's failure, never the run's; the row is left as it is.
                batch.failures.append((pk, plan.name, header_key_id(raw), failure_reason(exc)))
                plan.counts[token] += 1
                continue
            plan.rewrites.append((new, pk, raw))
    batch.rows, batch.last_pk = count, pk
    for plan in plans:
        for token, count in plan.counts.items():
            batch.census[(plan.name, plan.label(token))] += count
        if plan.rewrites:
            batch.census[(plan.name, target_label)] += len(plan.rewrites)
            batch.updates[plan.column] = plan.rewrites
        batch.fields[plan.column] = plan.name
        if plan.binding is not None:
            batch.bound.add(plan.name)
        if plan.legacy_label is not None:
            batch.legacy_labels[plan.name] = plan.legacy_label
    return batch


_HEADERS = (HEADER_V1, HEADER_V2)
# How either form of envelope starts (envelope.classify): bytes starting otherwise are none.
# Bytes that census_label must judge: envelopes, and Fernet tokens (this app's legacy tokens).
_ENVELOPE_STARTS = (MAGIC, ASCII_PREFIX_V1.encode(), ASCII_PREFIX_V2.encode(), FERNET_TEXT_PREFIX)


class _Column:
    """One column's part of a batch: where its values should end up, and what was found."""

    def __init__(
        self,
        name: str,
        column: str,
        binding: ColumnBinding | None,
        key_id: int | None,
        legacy: LegacyColumn | None = None,
        *,
        binary: bool = False,
        only_legacy: bool = False,
        index: IndexedColumn | None = None,
    ) -> None:
        self.name, self.column, self.binding, self.index = name, column, binding, index
        self.legacy, self.binary, self.only_legacy = legacy, binary, only_legacy
        self.legacy_label = None if legacy is None else legacy.label
        # The label of this app's legacy tokens in a plaintext column, which even a conversion
        # opens (they are not the column's plaintext); never matches in any other column.
        self.own_token = LEGACY if legacy is not None and legacy.label == PLAINTEXT else None
        version = VERSION_1 if binding is None else VERSION_2
        self.target_header = None if key_id is None else header_for(key_id, version)
        # The tokens of values left as they are: already where they should be, or NULL.
        self.kept = {self.target_header, NULL, format_key_id(key_id)} - {None}
        # A column's context, and so its associated data, is fixed unless bound to each row.
        per_row = binding is not None and binding.pk_field is not None
        self.row_context = binding.for_row if per_row else None  # type: ignore[union-attr]
        self.context = None if binding is None or per_row else binding.context
        self.associated_data = (
            b""  # nothing is sealed without a target
            if self.target_header is None
            else associated_data(self.target_header, self.context)
        )
        self.counts: Counter[bytes | str] = Counter()
        self.rewrites: list[tuple[Any, Any, Any]] = []

    def label(self, token: bytes | str) -> str:
        """The census label of a token: a label already, or a binary value's 8 header bytes."""
        if isinstance(token, str):
            return token
        unbound = self.binding is not None and token[3] == VERSION_1
        return (UNBOUND if unbound else "") + format_key_id(int.from_bytes(token[4:], "big"))


def failure_reason(exc: Exception) -> str:
    """What a failure records of ``exc``: our ``DecryptionError`` text (written never to hold
    key material or plaintext), else the exception's class alone, since its text may quote
    the value."""
    if isinstance(exc, (DecryptionError, BlindIndexError)):
        return str(exc)[:300]
    return f"{type(exc).__name__} while decrypting or re-encrypting the value"
