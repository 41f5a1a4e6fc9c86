"""Checks of the key settings: each key present and well formed, fallbacks too, and no key
used in both roles (E001-E007)."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured
from django.views.decorators.debug import sensitive_variables

from ..conf import encryption_settings
from ..exceptions import KeyConfigurationError
from ..master_key import GENERATE_KEY_HINT, named_providers, parse_fernet_key


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
    errors = []
    # With a provider named (a KMS, an HSM) the local key is optional: only unwraps if set.
    if encryption_settings.master_key or not named_providers():
        errors += _key_errors(
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
