"""The audit of the data-key table: per key, whether a configured master key unwraps it and
whether its metadata MAC verifies (see ``models.key_metadata_message``).

The ring (``keys``) acts on each key's verdict alone, so one bad row costs only its own values;
``manage.py check`` and ``encryption_status`` report the verdicts; ``authenticate_data_keys``
signs rows an operator has checked. Messages name key ids and master-key fingerprints only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from django.db import transaction

from .ciphers import AeadCipher
from .envelope import format_key_id
from .exceptions import KeyConfigurationError, MasterKeyProviderError, MasterKeyUnavailable
from .master_key import AnyMasterKey, unwrap_with_any, verify_metadata_with_any
from .models import (
    DataKey,
    IndexKey,
    KeyState,
    index_key_metadata_message,
    key_metadata_message,
)

logger = logging.getLogger("data_encryption")
# (key id, problem) pairs already logged: a bad key row is logged once, not once per value or
# reload; forgotten with the ring, so what is still wrong after an operator's fix is logged again.
_reported: set[tuple[int, str]] = set()
KeyRow = TypeVar("KeyRow", DataKey, IndexKey)


class Metadata:
    """What a key row's ``metadata_mac`` says about the row."""

    VERIFIED = "verified"  # made by this application under a configured master key
    TAMPERED = "tampered"  # the row was changed outside the application
    UNAUTHENTICATED = "unauthenticated"  # no MAC: migrated without a master key, or nulled


def metadata_message(row: DataKey | IndexKey) -> bytes:
    """What ``row``'s MAC authenticates: a data key's or an index key's message."""
    if isinstance(row, IndexKey):
        return index_key_metadata_message(row)
    return key_metadata_message(row)


def metadata_verdict(row: DataKey | IndexKey) -> str:
    """``Metadata.VERIFIED``, ``TAMPERED`` or ``UNAUTHENTICATED`` for ``row`` (a data key's or
    an index key's)."""
    if row.metadata_mac is None:
        return Metadata.UNAUTHENTICATED
    if verify_metadata_with_any(metadata_message(row), bytes(row.metadata_mac)):
        return Metadata.VERIFIED
    return Metadata.TAMPERED


def signed_by(master: AnyMasterKey, row: DataKey | IndexKey) -> bool:
    """Whether ``row``'s metadata MAC was made by ``master`` over the row as it stands."""
    mac = row.metadata_mac
    return mac is not None and master.verify_metadata(metadata_message(row), bytes(mac))


def require_verified_metadata(rows: Iterable[KeyRow], action: str) -> list[KeyRow]:
    """``rows``, once each one's metadata verifies; else ``KeyConfigurationError`` naming the
    rows that do not. What re-signs every row (a master-key change) must not vouch for edits
    nobody made through the application."""
    rows = list(rows)
    verdicts = [(row, metadata_verdict(row)) for row in rows]
    named = [
        f"{row.hex_id} ({verdict})"
        for row, verdict in verdicts
        # A key no master key unwraps has lost its master key, not (only) its MAC: the caller's
        # unwrap names that master key, which is what the operator must fix first.
        if verdict != Metadata.VERIFIED and (row.wrapped_key is None or unwrap_material(row))
    ]
    if named:
        raise KeyConfigurationError(
            f"Refusing to {action}: the metadata of {_noun(rows)}s {', '.join(named)} does not "
            "verify, and re-signing it would vouch for changes made outside the application. "
            "Check those rows against your latest key backup, then run "
            "'manage.py authenticate_data_keys <key id> ...' and retry."
        )
    return rows


def _noun(rows: list[KeyRow]) -> str:
    return "index key" if rows and isinstance(rows[0], IndexKey) else "data key"


def unwrap_material(row: DataKey | IndexKey) -> bytes | None:
    """The row's key material under whichever configured master key wrapped it, else ``None``."""
    wrapped = bytes(row.wrapped_key) if row.wrapped_key is not None else b""
    return unwrap_with_any(row.key_id, wrapped, row.master_key_fingerprint)


@dataclass(frozen=True)
class Unwrapped:
    """A key row's material, or why there is none: ``problem`` is a provider's error (a KMS or
    HSM that refused or could not be reached), "" when no configured master key wraps it."""

    material: bytes | None
    problem: str = ""
    unavailable: bool = False  # the provider could not be reached: worth asking again soon

    def __repr__(self) -> str:
        return f"<Unwrapped {'material' if self.material else 'none'} {self.problem!r}>"


def unwrap_row(row: DataKey | IndexKey) -> Unwrapped:
    """``unwrap_material`` for a key ring: a provider's failure costs only this row, and says
    what to check."""
    try:
        return Unwrapped(unwrap_material(row))
    except MasterKeyUnavailable as exc:
        return Unwrapped(None, str(exc), unavailable=True)
    except MasterKeyProviderError as exc:
        return Unwrapped(None, str(exc))


def unwrap_failure(row: DataKey) -> str:
    """What a value under ``row``'s key is told when no configured master key unwraps it."""
    return (
        f"No configured master key can unwrap data key {row.hex_id} (it was wrapped by the "
        f"master key with fingerprint {row.master_key_fingerprint}), so values under it cannot "
        "be decrypted. Put that master key back in DB_ENCRYPTION_KEY or "
        "DB_ENCRYPTION_KEY_FALLBACKS; if the row's wrapped key was altered, restore it from a key "
        "backup with 'manage.py restore_encryption_keys <file>'."
    )


def metadata_problem(hex_id: str, verdict: str, noun: str = "data key") -> str:
    """What is wrong with a key row whose metadata verdict is not ``VERIFIED``."""
    if verdict == Metadata.UNAUTHENTICATED:
        return (
            f"The metadata of {noun} {hex_id} is not authenticated (no MAC): it was migrated "
            "without DB_ENCRYPTION_KEY, or its MAC was removed."
        )
    return (
        f"The metadata of {noun} {hex_id} (its state, dates, wrapped key or master-key "
        "fingerprint) does not verify under any configured master key: the row was changed "
        "outside the application, or its MAC was made by a master key no longer configured."
    )


# What to do about key rows whose metadata does not verify (the check's hint says the same).
TAMPERED_ADVICE = (
    "Compare the key table with your latest key backup (restore lost rows with "
    "'manage.py restore_encryption_keys <file>'). For a primary, run "
    "'manage.py rotate_encryption_key' to make a new primary from a sound state; a row "
    "that is right as it stands can be signed with 'manage.py authenticate_data_keys <key id>'."
)
UNAUTHENTICATED_ADVICE = (
    "Check the key table against your latest key backup, then run "
    "'manage.py authenticate_data_keys' to authenticate the rows as they stand."
)


def primary_refusal(row: DataKey, verdict: str, unwraps: bool, why: str = "") -> str:
    """Why nothing may be encrypted under the primary ``row`` ("" when it may)."""
    if not unwraps:
        return f"Cannot encrypt: the primary data key is unusable. {why or unwrap_failure(row)}"
    if verdict == Metadata.VERIFIED:
        return ""
    advice = TAMPERED_ADVICE if verdict == Metadata.TAMPERED else UNAUTHENTICATED_ADVICE
    return (
        f"Refusing to encrypt under the primary data key {row.hex_id}: a key made primary "
        f"outside the application (a retired one, to pin it) would defeat rotation. "
        f"{metadata_problem(row.hex_id, verdict)} {advice}"
    )


@dataclass
class RingKeys:
    """Key rows sorted for a key ring: the ciphers of those that unwrap, what a value under each
    of the others is told, the primary's id and why it may not encrypt ("" when it may)."""

    ciphers: dict[int, AeadCipher] = field(default_factory=dict)
    unusable: dict[int, str] = field(default_factory=dict)
    primary_id: int = 0
    refusal: str = ""
    # A provider failed for some key: the ring is reloaded soon rather than after
    # KEY_CACHE_SECONDS, so the keys come back as soon as the provider does.
    retry_soon: bool = False


def sort_key_rows(rows: Iterable[DataKey], previous: Mapping[int, AeadCipher] = {}) -> RingKeys:
    """Each row on its own verdicts, so one bad row costs only its own values. A tampered or
    unauthenticated key still decrypts: its material is authenticated by the wrap (bound to its
    id), so what it decrypts is genuine; refusing would turn any edit of a date into an outage
    of its values. Only the primary refuses, since its state decides what gets encrypted.

    ``previous``: the ciphers of the ring being replaced. A key whose provider cannot be reached
    now keeps its cipher from there: a loaded process keeps working through an outage."""
    keys = RingKeys()
    for row in rows:
        got, verdict = unwrap_row(row), metadata_verdict(row)
        cipher = AeadCipher(got.material) if got.material is not None else None
        if got.problem:
            keys.retry_soon = True
            if got.unavailable and row.key_id in previous:
                cipher = previous[row.key_id]
                _report_once(row, "unavailable", f"{got.problem} Keeping this process's copy.")
        why = got.problem or unwrap_failure(row)
        if cipher is None:
            keys.unusable[row.key_id] = why
            _report_once(row, "unwrap", why)
        else:
            keys.ciphers[row.key_id] = cipher
            if verdict != Metadata.VERIFIED:  # (one that does not unwrap lost its master key)
                _report_once(row, verdict, metadata_problem(row.hex_id, verdict))
        if row.state == KeyState.PRIMARY:
            keys.primary_id = row.key_id
            keys.refusal = primary_refusal(row, verdict, cipher is not None, why)
    return keys


def _report_once(row: DataKey, problem: str, message: str) -> None:
    if (row.key_id, problem) not in _reported:
        _reported.add((row.key_id, problem))
        logger.error("%s See 'manage.py check --database %s'.", message, row._state.db)


def forget_reported_keys() -> None:
    _reported.clear()


@dataclass(frozen=True)
class KeyAudit:
    """One key row's verdicts. ``unwraps`` is ``None`` for a destroyed key (no material)."""

    key_id: int
    state: str
    master_key_fingerprint: str
    created_at: datetime
    metadata: str
    unwraps: bool | None
    problem: str = ""  # a provider's error when it does not unwrap because the provider failed

    @property
    def hex_id(self) -> str:
        return format_key_id(self.key_id)

    @property
    def sound(self) -> bool:
        return self.metadata == Metadata.VERIFIED and self.unwraps is not False


def audit_data_keys(using: str) -> list[KeyAudit]:
    """Every key row's verdicts, newest first. Unwraps each key's material and forgets it."""
    rows = DataKey.objects.using(using).order_by("-created_at", "-key_id")
    return [_audit(row, row.state == KeyState.DESTROYED) for row in rows]


def audit_index_keys(using: str) -> list[KeyAudit]:
    """Every blind-index key row's verdicts, newest first (``unwraps`` is ``None`` for a
    retired key, whose material is wiped)."""
    rows = IndexKey.objects.using(using).order_by("-created_at", "-key_id")
    return [_audit(row, row.wrapped_key is None) for row in rows]


def _audit(row: DataKey | IndexKey, wiped: bool) -> KeyAudit:
    got = None if wiped else unwrap_row(row)
    return KeyAudit(
        row.key_id,
        row.state,
        row.master_key_fingerprint,
        row.created_at,
        metadata_verdict(row),
        None if got is None else got.material is not None,
        "" if got is None else got.problem,
    )


@dataclass
class Authentication:
    """What ``authenticate_data_keys`` did, by key id."""

    authenticated: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)  # their MAC verified: left alone
    unknown: list[int] = field(default_factory=list)  # no such row: nothing done at all


def authenticate_data_keys(using: str, key_ids: list[int] | None = None) -> Authentication:
    """Sign the metadata of key rows (data keys' and blind-index keys') as they stand now,
    under the current master key.

    Without ``key_ids``: every row with no MAC (migrated without a master key). With them: those
    rows even when their MAC fails, for an operator who has checked (or repaired) them against a
    key backup. Signing vouches for the row: never run it on rows nobody has looked at. The
    caller resets the key ring (``keys.reset_key_ring``; ``keys`` imports this module).
    """
    done = Authentication()
    with transaction.atomic(using=using):
        found: dict[int, DataKey | IndexKey] = {}
        for model in (DataKey, IndexKey):  # ids are distinct across the two tables
            rows = model.objects.using(using).select_for_update()
            if key_ids is None:
                rows = rows.filter(metadata_mac=None)
            else:
                rows = rows.filter(key_id__in=key_ids)
            found.update((row.key_id, row) for row in rows.order_by("created_at", "key_id"))
        done.unknown = [key_id for key_id in key_ids or [] if key_id not in found]
        if done.unknown:
            return done
        for row in found.values():
            if metadata_verdict(row) == Metadata.VERIFIED:
                done.already.append(row.key_id)
            else:
                row.save(using=using, update_fields=["metadata_mac"])  # save() signs it
                done.authenticated.append(row.key_id)
    return done
