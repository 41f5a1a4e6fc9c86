"""System checks of the key table: what the audit (``key_audit``) finds about each data key.

Database checks, so they run with ``manage.py check --database default`` and during ``migrate``.
Ids (the catalogue is in ``checks``, the package):

- E027 data keys no configured master key unwraps, per master-key fingerprint.
- E039 data keys and blind-index keys a master-key provider (KMS, HSM) failed to unwrap.
- E032 data keys whose metadata (state, dates, wrapped key, fingerprint) does not verify.
- E031 data keys whose metadata is not authenticated (no MAC).
- W003 the primary data key is not the newest key (a key pinned by hand).
- E035 blind-index keys no configured master key unwraps (queries and writes on indexed
  fields then fail), per master-key fingerprint.
- E036 blind-index keys whose metadata (slot, state, complete fields, ...) does not verify or is
  not authenticated: queries refuse to read them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError

from ..key_audit import (
    TAMPERED_ADVICE,
    UNAUTHENTICATED_ADVICE,
    KeyAudit,
    Metadata,
    audit_data_keys,
    audit_index_keys,
)
from ..keys import key_database
from ..models import KeyState


@register(Tags.database, Tags.security)
def check_data_keys(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """E027, E032, E031, W003: what the key table says about each data key (needs the
    database: ``manage.py check --database default``, and ``migrate``)."""
    audits = _audits(audit_data_keys, databases)
    return [] if audits is None else _key_audit_messages(audits)


def _audits(audit: Callable[[str], list[KeyAudit]], databases: Any) -> list[KeyAudit] | None:
    """``audit`` of the key database; ``None`` when there is nothing to say (the database was
    not asked for, is not migrated yet, or no master key is usable: E001, E002, E025 say why)."""
    using = key_database()
    if not databases or using not in databases:
        return None
    try:
        return audit(using)
    except (DatabaseError, ImproperlyConfigured):
        return None


@register(Tags.database, Tags.security)
def check_index_keys(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """E035, E036: what the key table says about each blind-index key (a database check, as
    ``check_data_keys``)."""
    audits = _audits(audit_index_keys, databases)
    if audits is None:
        return []
    messages: list[CheckMessage] = provider_failures(audits, "blind-index keys")
    unwrappable: dict[str, list[KeyAudit]] = {}
    for audit in audits:
        if audit.unwraps is False and not audit.problem:
            unwrappable.setdefault(audit.master_key_fingerprint, []).append(audit)
    for fingerprint, lost in unwrappable.items():
        messages.append(
            Error(
                f"No configured master key can unwrap blind-index keys {_ids(lost)}; they were "
                f"wrapped by the master key with fingerprint {fingerprint}, so queries and "
                "writes on indexed fields fail.",
                hint=f"Put the master key with fingerprint {fingerprint} back in "
                "DB_ENCRYPTION_KEY_FALLBACKS, then run 'manage.py rewrap_data_keys'; or restore "
                "them with 'manage.py restore_encryption_keys <file>'.",
                id="data_encryption.E035",
            )
        )
    bad = [a for a in audits if a.metadata != Metadata.VERIFIED and a.unwraps is not False]
    if bad:
        messages.append(
            Error(
                f"The metadata of blind-index keys {_ids(bad)} does not verify under any "
                "configured master key, or is not authenticated: their slot, state or complete "
                "fields may have been changed outside the application, so queries refuse to "
                "read them.",
                hint="Compare the blind-index keys with your latest key backup (restore lost "
                "ones with 'manage.py restore_encryption_keys <file>'); a row that is right as "
                "it stands can be signed with 'manage.py authenticate_data_keys <key id>'.",
                id="data_encryption.E036",
            )
        )
    return messages


def provider_failures(audits: list[KeyAudit], noun: str) -> list[CheckMessage]:
    """E039: keys a master-key provider (KMS, HSM) failed to unwrap, one error per distinct
    failure (its message names the provider, its key and what is wrong)."""
    failed: dict[str, list[KeyAudit]] = {}
    for audit in audits:
        if audit.unwraps is False and audit.problem:
            # The message begins with the key id; what follows is the same for each key.
            failed.setdefault(audit.problem.split(": ", 1)[-1], []).append(audit)
    return [
        Error(
            f"The master-key provider failed to unwrap {noun} {_ids(lost)}: {problem}",
            hint="Fix what the message names (credentials, the key's state, the PIN, the "
            "network), then rerun 'manage.py check --deploy', which makes one round trip to "
            "each configured provider. Nothing was changed.",
            id="data_encryption.E039",
        )
        for problem, lost in failed.items()
    ]


def _key_audit_messages(audits: list[KeyAudit]) -> list[CheckMessage]:
    messages: list[CheckMessage] = provider_failures(audits, "data keys")
    unwrappable: dict[str, list[KeyAudit]] = {}
    for audit in audits:
        if audit.unwraps is False and not audit.problem:
            unwrappable.setdefault(audit.master_key_fingerprint, []).append(audit)
    for fingerprint, lost in unwrappable.items():
        primary = [audit.hex_id for audit in lost if audit.state == KeyState.PRIMARY]
        messages.append(
            Error(
                f"No configured master key can unwrap data keys {_ids(lost)}; they were wrapped "
                f"by the master key with fingerprint {fingerprint}. Values under them cannot be "
                "decrypted"
                + (f", and nothing can be encrypted (primary: {primary[0]})." if primary else "."),
                hint=f"Put the master key with fingerprint {fingerprint} back in "
                "DB_ENCRYPTION_KEY_FALLBACKS, then run 'manage.py rewrap_data_keys'; or, if the "
                "rows were altered, restore them with 'manage.py restore_encryption_keys <file>'.",
                id="data_encryption.E027",
            )
        )
    for verdict, advice, error_id in (
        (Metadata.TAMPERED, TAMPERED_ADVICE, "data_encryption.E032"),
        (Metadata.UNAUTHENTICATED, UNAUTHENTICATED_ADVICE, "data_encryption.E031"),
    ):
        # A key that does not unwrap is E027's: its master key is gone, and its MAC with it.
        bad = [a for a in audits if a.metadata == verdict and a.unwraps is not False]
        if bad:
            messages.append(
                Error(
                    f"The metadata of data keys {_ids(bad)} "
                    + (
                        "does not verify under any configured master key: the rows were "
                        "changed outside the application (state, dates, wrapped key or "
                        "fingerprint), or signed by a master key no longer configured."
                        if verdict == Metadata.TAMPERED
                        else "is not authenticated (no MAC): migrated without "
                        "DB_ENCRYPTION_KEY, or the MAC was removed."
                    ),
                    hint=advice,
                    id=error_id,
                )
            )
    return messages + _pinned_primary_warnings(audits)


def _pinned_primary_warnings(audits: list[KeyAudit]) -> list[CheckMessage]:
    live = [audit for audit in audits if audit.state != KeyState.DESTROYED]
    primary = next((audit for audit in live if audit.state == KeyState.PRIMARY), None)
    newer = [audit for audit in live if primary and audit.created_at > primary.created_at]
    if primary is None or not newer:
        return []
    newest = max(newer, key=lambda audit: audit.created_at)
    return [
        Warning(
            f"Data key {primary.hex_id} is primary, but data key {newest.hex_id} "
            f"({newest.state}) was made after it, on {newest.created_at:%Y-%m-%d %H:%M}.",
            hint="A rotation always makes its new key primary, so an older primary was most "
            "likely set by hand, to pin encryption to it. Check the key table against your "
            "latest key backup, then run 'manage.py rotate_encryption_key'.",
            id="data_encryption.W003",
        )
    ]


def _ids(audits: list[KeyAudit]) -> str:
    return ", ".join(sorted(audit.hex_id for audit in audits))
