"""System checks: the configuration mistakes we can see before any data is touched.

Ids are stable; each message says what is wrong and each hint what to do. Catalogue:

- E001 ``DB_ENCRYPTION_KEY`` is missing.           - E002 ``DB_ENCRYPTION_KEY`` is malformed.
- E003 ``PAYLOAD_ENCRYPTION_KEY`` is missing.      - E004 ``PAYLOAD_ENCRYPTION_KEY`` is malformed.
- E005 a key is used for both roles (any of ``DB_ENCRYPTION_KEY`` and its fallbacks is also one
  of ``PAYLOAD_ENCRYPTION_KEY`` and its fallbacks; the colliding entries are named).
- E006 an entry of ``DB_ENCRYPTION_KEY_FALLBACKS`` is malformed (its index is named).
- E007 an entry of ``PAYLOAD_ENCRYPTION_KEY_FALLBACKS`` is malformed.
- E008 ``ENCRYPTION_KEY_ROTATION`` has an unknown key.
- E009 ``KEY_ROTATION_SCHEDULE`` is not daily, weekly or monthly.
- E010 ``BACKUP_DIR`` is not private: owned by another user, or open to group or others.
- E011 ``BACKUP_DIR`` is not writable (or cannot be created).
- E012 ``DATA_ENCRYPTION_SERVICE`` does not import.
- E013 an index, unique constraint or unique_together includes an encrypted field (reported by
  the field itself).
- E014 ``ENCRYPTION_KEY_ROTATION`` is not a dict.
- E015 to E023: one ``ENCRYPTION_KEY_ROTATION`` key breaks its rule (the id is the key's, in
  ``conf.ROTATION_OPTIONS``; E009 is the schedule's): E015 ``BACKUP_DIR``, E016
  ``BACKUP_FILENAME_FORMAT``, E017 ``MODELS``, E018 ``BATCH_SIZE``, E019 ``KEY_CACHE_SECONDS``,
  E020 ``LOCK_TIMEOUT_SECONDS``, E021 ``RETENTION_DAYS``, E022 ``NOTIFY_SKIPPED``, E023
  ``CHUNK_ROWS``.
- E024 ``DATA_ENCRYPTION_NOTIFIER`` does not import or is not a notifier.
- E025 ``DATA_ENCRYPTION_MASTER_KEY_PROVIDER`` does not import or has no ``master_keys()``.
- E026 ``ENCRYPTION_KEY_ROTATION["PRUNE_BACKUPS"]`` is not True or False.
- E030 ``PAYLOAD_MAX_AGE_SECONDS`` is not a finite number of seconds greater than 0.
- E027, E029, E031, W003: the key table itself (``key_checks``; database checks): keys no
  configured master key unwraps, key metadata that does not verify or is not authenticated, a
  primary that is not the newest key.
- W001 the primary data key is older than ``KEY_ROTATION_SCHEDULE`` allows (database check).
- E028 ``ACCEPT_LEGACY_TOKENS`` is not True or False (``conf.ROTATION_OPTIONS``).
- E029 ``bind_to_pk=True`` on a model whose primary key the database assigns (by the field).
- W004 the last completed rotation's census found no legacy Fernet value, but
  ``ACCEPT_LEGACY_TOKENS`` is still on (database check).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.views.decorators.debug import sensitive_variables

from .conf import ROTATION_OPTIONS, encryption_settings
from .exceptions import KeyConfigurationError
from .master_key import GENERATE_KEY_HINT, parse_fernet_key


def _key_errors(value: Any, setting: str, missing_id: str, malformed_id: str) -> list[Error]:
    if not value:
        return [
            Error(
                f"{setting} is not set.",
                hint=f"Set it from the environment. {GENERATE_KEY_HINT}",
                id=missing_id,
            )
        ]
    try:
        parse_fernet_key(value, setting)
    except KeyConfigurationError:
        return [
            Error(
                f"{setting} is not a valid Fernet key (32 bytes, URL-safe base64).",
                hint=GENERATE_KEY_HINT,
                id=malformed_id,
            )
        ]
    return []


def _fallback_errors(setting: str, error_id: str) -> list[Error]:
    try:
        values = getattr(encryption_settings, FALLBACK_PROPERTIES[setting])
    except ImproperlyConfigured:
        return [Error(f"{setting} must be a list of keys.", hint="Use [] for none.", id=error_id)]
    errors = []
    for index, value in enumerate(values):
        try:
            parse_fernet_key(value, f"{setting}[{index}]")
        except KeyConfigurationError:
            errors.append(
                Error(
                    f"{setting}[{index}] is not a valid Fernet key.",
                    hint="Put the exact previous key there, or remove the entry.",
                    id=error_id,
                )
            )
    return errors


FALLBACK_PROPERTIES = {
    "DB_ENCRYPTION_KEY_FALLBACKS": "master_key_fallbacks",
    "PAYLOAD_ENCRYPTION_KEY_FALLBACKS": "payload_key_fallbacks",
}


@register(Tags.security)
def check_keys(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors = _key_errors(
        encryption_settings.master_key,
        "DB_ENCRYPTION_KEY",
        "data_encryption.E001",
        "data_encryption.E002",
    )
    errors += _key_errors(
        encryption_settings.payload_key,
        "PAYLOAD_ENCRYPTION_KEY",
        "data_encryption.E003",
        "data_encryption.E004",
    )
    errors += _shared_key_errors()
    errors += _fallback_errors("DB_ENCRYPTION_KEY_FALLBACKS", "data_encryption.E006")
    errors += _fallback_errors("PAYLOAD_ENCRYPTION_KEY_FALLBACKS", "data_encryption.E007")
    return errors


@sensitive_variables()
def _parsed_entries(setting: str) -> list[tuple[str, bytes]]:
    """``(entry name, raw key)`` of ``setting`` and each of its fallbacks that parses (the
    malformed ones have their own checks)."""
    values = [(setting, getattr(encryption_settings, ROLE_PROPERTIES[setting]))]
    try:
        fallbacks = getattr(encryption_settings, FALLBACK_PROPERTIES[f"{setting}_FALLBACKS"])
    except ImproperlyConfigured:
        fallbacks = []
    values += [(f"{setting}_FALLBACKS[{index}]", value) for index, value in enumerate(fallbacks)]
    entries = []
    for name, value in values:
        try:
            entries.append((name, parse_fernet_key(value, name)))
        except KeyConfigurationError:
            continue
    return entries


ROLE_PROPERTIES = {"DB_ENCRYPTION_KEY": "master_key", "PAYLOAD_ENCRYPTION_KEY": "payload_key"}


@sensitive_variables()
def _shared_key_errors() -> list[Error]:
    """E005 for each entry of the master-key settings that is also an entry of the payload-key
    settings, fallbacks included: a payload key that can read the database (or the reverse)."""
    masters = _parsed_entries("DB_ENCRYPTION_KEY")
    payloads = _parsed_entries("PAYLOAD_ENCRYPTION_KEY")
    return [
        Error(
            f"{master_name} and {payload_name} are the same key.",
            hint="Give each role its own keys, so a leaked payload key cannot read the database "
            "and a database value cannot pass as a payload token. Generate a new key for the "
            "payload setting (tokens made with the shared key stop working), or remove the "
            "fallback entry.",
            id="data_encryption.E005",
        )
        for master_name, master in masters
        for payload_name, payload in payloads
        if master == payload
    ]


@register()
def check_payload_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E030: ``PAYLOAD_MAX_AGE_SECONDS``, the expiry every payload token gets by default."""
    try:
        _ = encryption_settings.payload_max_age_seconds
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint="Set it to how long a payload token stays valid, in seconds (86400 is a "
                "day), or remove it.",
                id="data_encryption.E030",
            )
        ]
    return []


@register()
def check_rotation_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Every ``ENCRYPTION_KEY_ROTATION`` key against the rule the code applies to it (one id per
    key, from ``conf.ROTATION_OPTIONS``), and ``BACKUP_DIR`` on disk."""
    try:
        configured = encryption_settings.rotation_configured
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint="See the README for its keys.", id="data_encryption.E014")]
    errors = [
        Error(
            f"ENCRYPTION_KEY_ROTATION has an unknown key {key!r}.",
            hint="Known keys: " + ", ".join(sorted(ROTATION_OPTIONS)) + ".",
            id="data_encryption.E008",
        )
        for key in sorted(set(configured) - set(ROTATION_OPTIONS))
    ]
    for option, problem in encryption_settings.rotation_problems():
        errors.append(Error(problem, hint=option.advice(), id=option.check_id))
    if configured.get("BACKUP_DIR") and ROTATION_OPTIONS["BACKUP_DIR"].rule.accepts(
        configured["BACKUP_DIR"]
    ):
        errors += _backup_dir_errors(Path(configured["BACKUP_DIR"]))
    return errors


def _backup_dir_errors(path: Path) -> list[Error]:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == path:
        if not path.is_dir():
            return [
                Error(
                    f"BACKUP_DIR {path} is not a directory.",
                    hint="Point BACKUP_DIR at a directory.",
                    id="data_encryption.E011",
                )
            ]
        from .backups import backup_dir_problems

        # The rule the backup writer applies before writing: owned by this user, mode 0700.
        errors = [
            Error(problem, hint=fix, id="data_encryption.E010")
            for problem, fix in backup_dir_problems(path)
        ]
        if not os.access(path, os.W_OK | os.X_OK):
            errors.append(
                Error(
                    f"BACKUP_DIR {path} is not writable by this process.",
                    hint="Make the directory owned by the user that runs Django and rotations.",
                    id="data_encryption.E011",
                )
            )
        return errors
    # Not there yet: it is created (mode 0700) at the first rotation if its parent allows.
    if not os.access(existing, os.W_OK | os.X_OK):
        return [
            Error(
                f"BACKUP_DIR {path} does not exist and cannot be created under {existing}.",
                hint="Create it (mode 0700) as the user that runs rotations.",
                id="data_encryption.E011",
            )
        ]
    return []


def _class_errors(load: Callable[[], object], hint: str, error_id: str) -> list[Error]:
    """The error of an extension point whose dotted path does not load (``conf.load_class``)."""
    try:
        load()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint=hint, id=error_id)]
    return []


@register()
def check_service_class(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from .services import get_rotation_service_class

    return _class_errors(
        get_rotation_service_class,
        "Give the dotted path of a KeyRotationService subclass, e.g. "
        "'yourapp.custom_rotation.CustomKeyRotationService'.",
        "data_encryption.E012",
    )


@register()
def check_notifier_class(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from .notifications import get_notifier_class

    return _class_errors(
        get_notifier_class,
        "Give the dotted path of an EncryptionKeyRotationNotifier subclass, e.g. "
        "'yourapp.notifiers.SlackNotifier'.",
        "data_encryption.E024",
    )


@register(Tags.security)
def check_master_key_provider(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from .master_key import get_provider_class

    return _class_errors(
        get_provider_class,
        "Give the dotted path of a class with a master_keys() method, or remove the setting "
        "to read DB_ENCRYPTION_KEY.",
        "data_encryption.E025",
    )


@register(Tags.database)
def check_rotation_overdue(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[Warning]:
    """W001: the primary key is older than the schedule allows. Needs the database, so it runs
    with ``manage.py check --database default`` (and during ``migrate``)."""
    from django.db import DatabaseError
    from django.utils import timezone

    from .keys import key_database
    from .schedule import overdue_reminder

    using = key_database()
    if not databases or using not in databases:
        return []
    try:
        reminder = overdue_reminder(using, timezone.now())
    except DatabaseError:  # not migrated yet: nothing to say
        return []
    if reminder is None:
        return []
    return [
        Warning(
            f"Key rotation is overdue: {reminder}",
            hint="Run 'manage.py rotate_encryption_key', then fix the schedule.",
            id="data_encryption.W001",
        )
    ]


@register(Tags.database, Tags.security)
def check_legacy_tokens_still_accepted(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[Warning]:
    """W004: no legacy Fernet value is left (by the last completed rotation's census), yet
    legacy tokens are still read, so a token planted from an old dump would be too."""
    from django.db import DatabaseError

    from .keys import key_database
    from .models import RotationRun, RunStatus
    from .rotation.census import LEGACY, census_totals

    using = key_database()
    if not databases or using not in databases:
        return []
    try:
        if not encryption_settings.accept_legacy_tokens:
            return []
    except ImproperlyConfigured:  # E028 says so
        return []
    try:
        last = (
            RotationRun.objects.using(using)
            .filter(status=RunStatus.COMPLETED)
            .order_by("-finished_at", "-pk")
            .first()
        )
    except DatabaseError:  # not migrated yet: nothing to say
        return []
    if last is None or not last.census or census_totals(last.census).get(LEGACY, 0):
        return []
    return [
        Warning(
            "The last completed key rotation found no legacy Fernet token, but "
            "ENCRYPTION_KEY_ROTATION['ACCEPT_LEGACY_TOKENS'] is still True, so a legacy token "
            "written into the database (from an old dump, say) would still be read.",
            hint="Set ENCRYPTION_KEY_ROTATION['ACCEPT_LEGACY_TOKENS'] = False.",
            id="data_encryption.W004",
        )
    ]
