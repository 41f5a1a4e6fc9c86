"""One batch of rows: what rotation does with each value, decided without touching the database."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..ciphers import AeadCipher
from ..encryptor import open_value
from ..envelope import HEADER_SIZE, KEY_ID_BYTES, MAGIC, header_for, header_key_id, parse
from ..exceptions import DecryptionError
from ..models import format_key_id
from .census import NULL, census_label


@dataclass
class Batch:
    """What one batch of rows needs: the writes, the failures and the census of its values."""

    rows: int = 0
    last_pk: Any = None
    updates: dict[str, list[tuple[Any, Any, Any]]] = field(default_factory=dict)
    failures: list[tuple[Any, str, int | None, str]] = field(default_factory=list)
    census: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Column name -> field name, to report a failed write by field.
    fields: dict[str, str] = field(default_factory=dict)

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
                self.census[(field_name, census_label(rewrite[2]))] += 1
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
) -> Batch:
    """Decide, row by row, what rotation does with each value (pure: no database access).

    Values under ``key_id`` are counted and left. Others are decrypted; with ``rewrite`` they
    are re-sealed under ``key_id`` in the form they were stored in (ASCII for text columns). A
    value that does not decrypt becomes a failure and is left as it is.
    """
    # This runs once per stored value, so the common value, a binary envelope, takes a short
    # path: it is counted under its 4 key id bytes (each distinct id is formatted once, at the
    # end, into the label census_label gives it) and sealed with one bound call. Anything
    # else gets its label from census_label. The decisions are the same for both.
    batch = Batch()
    target_label = format_key_id(key_id)
    target_id = None if key_id is None else key_id.to_bytes(4, "big")
    header = None if key_id is None else header_for(key_id)
    seal = cipher.seal if rewrite and cipher is not None and key_id is not None else None
    names = [name for name, _ in columns]
    counts: list[Counter[bytes | str]] = [Counter() for _ in columns]
    updates: list[list[tuple[Any, Any, Any]]] = [[] for _ in columns]
    for row in rows:
        pk = row[0]
        batch.rows += 1
        for name, counted, rewrites, raw in zip(names, counts, updates, row[1:], strict=True):
            token: bytes | str
            if type(raw) is bytes and raw[:3] == MAGIC and len(raw) >= HEADER_SIZE:
                token = raw[KEY_ID_BYTES]
            else:
                if isinstance(raw, memoryview):
                    raw = bytes(raw)
                token = census_label(raw)
            if token in (target_id, NULL, target_label):
                counted[token] += 1
                continue
            try:
                plaintext = open_value(raw)
                if seal is None or header is None:
                    counted[token] += 1
                    continue
                sealed = header + seal(plaintext, header)
                new: Any = parse(sealed).to_ascii() if isinstance(raw, str) else sealed
            except Exception as exc:
                # Whatever one value does (garbage, a header no parser expected, a bug), it is
                # that value's failure, never the run's; the row is left as it is.
                batch.failures.append((pk, name, header_key_id(raw), failure_reason(exc)))
                counted[token] += 1
                continue
            rewrites.append((new, pk, raw))
            counted[target_label] += 1
        batch.last_pk = pk
    for name, (_, column), counted, rewrites in zip(names, columns, counts, updates, strict=True):
        for token, count in counted.items():
            if isinstance(token, bytes):
                token = format_key_id(int.from_bytes(token, "big"))
            batch.census[(name, token)] += count
        if rewrites:
            batch.updates[column] = rewrites
        batch.fields[column] = name
    return batch


def failure_reason(exc: Exception) -> str:
    """What a failure records of ``exc``: our ``DecryptionError`` text (written never to hold
    key material or plaintext), else the exception's class alone, since its text may quote
    the value."""
    if isinstance(exc, DecryptionError):
        return str(exc)[:300]
    return f"{type(exc).__name__} while decrypting or re-encrypting the value"
