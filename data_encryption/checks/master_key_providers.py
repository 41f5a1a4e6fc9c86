"""Checks of the master-key providers (a KMS, an HSM: docs/master-keys.md).

- E040 (``check --deploy``) a configured provider fails its round trip: one wrap and unwrap of a
  random probe (and, for AWS KMS, the key's state), so a wrong key, credential or PIN is found
  at deploy time rather than at the first request.
- E041 an entry of ``DATA_ENCRYPTION_MASTER_KEY_FALLBACKS`` names no usable provider.
- W006 ``DB_ENCRYPTION_KEY`` is set while a provider is the master key: it only unwraps.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from ..conf import encryption_settings
from ..exceptions import MasterKeyProviderError
from ..master_key import FALLBACKS_SETTING, PROVIDER_SETTING, keys_of, master_keys, named_providers
from ..master_keys.provider_key import ProviderMasterKey


@register(Tags.security, deploy=True)
def check_provider_round_trip(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        configured = master_keys()
    except ImproperlyConfigured:
        return []  # E001, E025 and E041 say what is wrong with the settings
    errors: list[CheckMessage] = []
    for master in configured:
        if not isinstance(master, ProviderMasterKey):
            continue
        try:
            master.provider.check()
        except MasterKeyProviderError as exc:
            errors.append(
                Error(
                    f"{master.setting} ({master.description}) failed its round trip: {exc}",
                    hint="Fix what the message names; until then a process that starts cannot "
                    "unwrap the keys this master key wrapped. Nothing was changed.",
                    id="data_encryption.E040",
                )
            )
    return errors


@register(Tags.security)
def check_provider_fallbacks(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    fallbacks = getattr(settings, FALLBACKS_SETTING, None) or []
    if not isinstance(fallbacks, (list, tuple)):
        return [
            Error(
                f"{FALLBACKS_SETTING} must be a list of provider settings.",
                hint="Use [] for none, or [{'BACKEND': ..., 'OPTIONS': {...}}, ...].",
                id="data_encryption.E041",
            )
        ]
    errors: list[CheckMessage] = []
    for index, fallback in enumerate(fallbacks):
        try:
            keys_of(fallback, f"{FALLBACKS_SETTING}[{index}]")
        except ImproperlyConfigured as exc:
            errors.append(
                Error(
                    str(exc),
                    hint="Give the provider setting the master key had before, exactly as it "
                    "was, or remove the entry once 'manage.py rewrap_data_keys' has moved every "
                    "key off it.",
                    id="data_encryption.E041",
                )
            )
    return errors


@register(Tags.security)
def check_local_key_beside_provider(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not (named_providers() and encryption_settings.master_key):
        return []
    return [
        Warning(
            f"DB_ENCRYPTION_KEY is set, but {PROVIDER_SETTING} names the master key: the local "
            "key only unwraps the keys it wrapped.",
            hint="Run 'manage.py rewrap_data_keys' to move every key to the provider; once "
            "'manage.py encryption_status' shows no key under the local key, remove "
            "DB_ENCRYPTION_KEY (and DB_ENCRYPTION_KEY_FALLBACKS).",
            id="data_encryption.W006",
        )
    ]
