"""The configured master keys: which ones settings name, in what order, and unwrapping a key row
under whichever of them wrapped it.

A master key never encrypts field data; it wraps the random data keys (and blind-index keys)
that do (see ``keys``). It is a local key from ``DB_ENCRYPTION_KEY`` (``master_keys.local``) or a
key held by a provider, a KMS or an HSM (``master_keys.provider_key``). The first configured key
wraps and signs; every one unwraps and verifies. Nothing here touches the database.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.fernet import MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.views.decorators.debug import sensitive_variables

from .conf import encryption_settings, load_class, register_cache
from .envelope import format_key_id
from .exceptions import KeyConfigurationError, MasterKeyProviderError
from .master_keys.local import (  # noqa: F401  (their documented import path is this module)
    GENERATE_KEY_HINT,
    WRAP_FORMAT_V1,
    MasterKey,
    parse_fernet_key,
    parse_key_setting,
)
from .master_keys.provider import Provider
from .master_keys.provider_key import ProviderMasterKey, embedded_fingerprint

AnyMasterKey = MasterKey | ProviderMasterKey
PROVIDER_SETTING = "DATA_ENCRYPTION_MASTER_KEY_PROVIDER"
FALLBACKS_SETTING = "DATA_ENCRYPTION_MASTER_KEY_FALLBACKS"


@runtime_checkable
class MasterKeyProvider(Protocol):
    """The first seam for master keys (before ``master_keys.Provider``): a class whose
    ``master_keys()`` returns ``MasterKey`` objects, current first. Still accepted in
    ``DATA_ENCRYPTION_MASTER_KEY_PROVIDER``, as a dotted path or a ``BACKEND``."""

    def master_keys(self) -> list[MasterKey]: ...


class SettingsMasterKeyProvider:
    """Reads the master key and its fallbacks from ``DB_ENCRYPTION_KEY`` and
    ``DB_ENCRYPTION_KEY_FALLBACKS``: the default when no provider is named."""

    @sensitive_variables()
    def master_keys(self) -> list[MasterKey]:
        """The current master key first, then the fallbacks in order."""
        current = encryption_settings.master_key
        if not current:
            raise KeyConfigurationError(
                "DB_ENCRYPTION_KEY is not set. Set it to a key made by Fernet.generate_key(); "
                "it is the master key that wraps the data keys. Or name a KMS or HSM in "
                f"{PROVIDER_SETTING} (docs/master-keys.md)."
            )
        return _local_keys(current)


@sensitive_variables()
def _local_keys(current: str | bytes | None) -> list[MasterKey]:
    """``DB_ENCRYPTION_KEY`` (when set; with a provider named it may not be) and its fallbacks."""
    named = parse_key_setting(
        current, encryption_settings.master_key_fallbacks, "DB_ENCRYPTION_KEY"
    )
    return [MasterKey.from_raw(raw, name) for raw, name in named]


def provider_spec(value: Any, setting: str) -> tuple[type, dict[str, Any]]:
    """``(class, options)`` named by a provider setting: a dotted path, or ``{"BACKEND": path,
    "OPTIONS": {...}}``. ``ImproperlyConfigured`` naming the setting when it is neither."""
    options: dict[str, Any] = {}
    if isinstance(value, str):
        path = value
    elif isinstance(value, dict) and isinstance(value.get("BACKEND"), str):
        unknown = set(value) - {"BACKEND", "OPTIONS"}
        options = value.get("OPTIONS", {})
        options = {} if options is None else options
        if unknown or not isinstance(options, dict):  # (an OPTIONS of another type)
            raise ImproperlyConfigured(
                f"{setting} takes only 'BACKEND' (a dotted path) and 'OPTIONS' (a dict of the "
                f"provider's options), not {sorted(unknown) or type(options).__name__}."
            )
        path = value["BACKEND"]
    else:
        raise ImproperlyConfigured(
            f"{setting} must be a dotted path or {{'BACKEND': '<dotted path>', 'OPTIONS': "
            "{...}}, e.g. {'BACKEND': 'data_encryption.master_keys.AwsKms', 'OPTIONS': "
            "{'key_id': 'arn:aws:kms:...'}}."
        )
    cls = load_class(setting, path, object)
    if not (issubclass(cls, Provider) or issubclass(cls, MasterKeyProvider)):
        raise ImproperlyConfigured(
            f"{setting} {path!r} is not a subclass of data_encryption.master_keys.Provider, "
            "nor a class with a master_keys() method."
        )
    return cls, dict(options)


def keys_of(value: Any, setting: str) -> list[AnyMasterKey]:
    """The master keys a provider setting names (a ``Provider`` gives one)."""
    cls, options = provider_spec(value, setting)
    try:
        made = cls(**options)
    except TypeError as exc:
        raise ImproperlyConfigured(
            f"{setting}: {cls.__name__} refuses its OPTIONS: {exc}."
        ) from None
    if isinstance(made, Provider):
        return [ProviderMasterKey(made, setting)]
    return list(made.master_keys())


def named_providers() -> bool:
    """Whether settings name a provider (else ``DB_ENCRYPTION_KEY`` is the master key)."""
    return bool(getattr(settings, PROVIDER_SETTING, None))


def configured_master_keys() -> list[AnyMasterKey]:
    """The master keys settings name, current first: the provider's (else the local
    ``DB_ENCRYPTION_KEY`` and its fallbacks), then each of
    ``DATA_ENCRYPTION_MASTER_KEY_FALLBACKS``, then, when a provider is named, a local
    ``DB_ENCRYPTION_KEY`` and its fallbacks, which then only unwrap."""
    value = getattr(settings, PROVIDER_SETTING, None)
    keys = keys_of(value, PROVIDER_SETTING) if value else []
    if not keys:
        keys = list(SettingsMasterKeyProvider().master_keys())
    fallbacks = getattr(settings, FALLBACKS_SETTING, None) or []
    if not isinstance(fallbacks, (list, tuple)):
        raise ImproperlyConfigured(f"{FALLBACKS_SETTING} must be a list of provider settings.")
    for index, fallback in enumerate(fallbacks):
        keys += keys_of(fallback, f"{FALLBACKS_SETTING}[{index}]")
    if isinstance(keys[0], ProviderMasterKey):  # a MasterKeyProvider class owns its whole list
        keys += _local_keys(encryption_settings.master_key)
    return keys


def get_provider_class() -> type:
    """The class ``DATA_ENCRYPTION_MASTER_KEY_PROVIDER`` names (default: the settings')."""
    value = getattr(settings, PROVIDER_SETTING, None)
    if not value:
        return SettingsMasterKeyProvider
    return provider_spec(value, PROVIDER_SETTING)[0]


def validate_provider_setting() -> None:
    """``ImproperlyConfigured`` when ``DATA_ENCRYPTION_MASTER_KEY_PROVIDER`` is malformed, names
    no provider, or a ``Provider`` refuses its OPTIONS (made, not called: no round trip)."""
    value = getattr(settings, PROVIDER_SETTING, None)
    if value:
        cls, _options = provider_spec(value, PROVIDER_SETTING)
        if issubclass(cls, Provider):
            keys_of(value, PROVIDER_SETTING)


_master_keys: list[AnyMasterKey] | None = None
_legacy_fernet: MultiFernet | None = None


@register_cache
def reset_master_keys() -> None:
    """Forget the configured master keys (and their provider clients and sessions)."""
    global _master_keys, _legacy_fernet
    _master_keys = None
    _legacy_fernet = None


def master_keys() -> list[AnyMasterKey]:
    """The configured master keys (current first), made once and cached until settings change:
    a provider's client and session live as long as the process."""
    global _master_keys
    if _master_keys is None:
        _master_keys = configured_master_keys()
    return _master_keys


def legacy_fernet() -> MultiFernet:
    """Reads plain Fernet tokens made directly with a local master key (current or fallback).
    Built once (a rotation of a legacy column asks for it on every row)."""
    global _legacy_fernet
    if _legacy_fernet is None:
        fernets = [key.fernet for key in master_keys() if isinstance(key, MasterKey)]
        if not fernets:
            raise KeyConfigurationError(
                "This value is a legacy Fernet token made with a local master key, and no local "
                "master key is configured (the master key is held by a provider). Put the key it "
                "was made with in DB_ENCRYPTION_KEY_FALLBACKS to read it."
            )
        _legacy_fernet = MultiFernet(fernets)
    return _legacy_fernet


def unwrap_with_any(key_id: int, wrapped: bytes, fingerprint: str | None = None) -> bytes | None:
    """The key material ``wrapped`` under whichever configured master key wrapped it, else
    ``None``. A provider's blob names its master key, so only that one is asked; a local one is
    tried under each local key, the one named by ``fingerprint`` first (a hint only).

    ``MasterKeyProviderError`` (naming the key id) when the provider that holds it fails."""
    candidates = master_keys()
    owner = embedded_fingerprint(wrapped)
    if owner is not None:
        candidates = [key for key in candidates if key.fingerprint == owner]
    else:
        candidates = [key for key in candidates if isinstance(key, MasterKey)]
        if fingerprint is not None:
            candidates = sorted(candidates, key=lambda key: key.fingerprint != fingerprint)
    for master in candidates:
        try:
            return master.unwrap(key_id, wrapped)
        except InvalidTag:
            continue
        except MasterKeyProviderError as exc:
            raise type(exc)(
                f"Cannot unwrap key {format_key_id(key_id)} with {master.description} "
                f"({master.setting}): {exc}"
            ) from None
    return None


def rewrapped_for(
    master: AnyMasterKey, key_id: int, wrapped: bytes, fingerprint: str | None = None
) -> bytes | None:
    """Key ``wrapped`` wrapped by ``master`` instead; ``None`` when ``master`` already wraps it.
    ``KeyConfigurationError`` when no configured master key unwraps it."""
    if owned_by(master, wrapped):
        try:
            master.unwrap(key_id, wrapped)
            return None
        except InvalidTag:
            pass
    material = unwrap_with_any(key_id, wrapped, fingerprint)
    if material is None:
        raise KeyConfigurationError(
            f"No configured master key can unwrap data key {format_key_id(key_id)} (it was "
            f"wrapped by the master key with fingerprint {fingerprint}). Configure that key again: "
            "a local key in DB_ENCRYPTION_KEY or DB_ENCRYPTION_KEY_FALLBACKS, a provider in "
            f"{PROVIDER_SETTING} or {FALLBACKS_SETTING} (a key backup names it)."
        )
    return master.wrap(key_id, material)


def owned_by(master: AnyMasterKey, wrapped: bytes) -> bool:
    """Whether ``wrapped`` is in ``master``'s format (a provider's blob names its key): no call
    is made to find out."""
    owner = embedded_fingerprint(wrapped)
    if isinstance(master, ProviderMasterKey):
        return owner == master.fingerprint
    return owner is None


def verify_metadata_with_any(message: bytes, mac: bytes) -> bool:
    """Whether any configured master key (current or fallback) made ``mac`` over ``message``:
    a master-key change does not make every key row look tampered before it is re-wrapped."""
    # Local keys first: a provider's master key that fails to verify asks the stored rows it has
    # not unwrapped for their secrets, a cost a row signed by a local key need not pay.
    masters = sorted(master_keys(), key=lambda master: isinstance(master, ProviderMasterKey))
    return any(master.verify_metadata(message, mac) for master in masters)
