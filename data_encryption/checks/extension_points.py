"""Checks of the dotted-path extension points: the rotation service (E012), the notifier (E024)
and the master-key provider (E025)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured


def _class_errors(load: Callable[[], object], hint: str, error_id: str) -> list[Error]:
    """The error of an extension point whose dotted path does not load (``conf.load_class``)."""
    try:
        load()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint=hint, id=error_id)]
    return []


@register()
def check_service_class(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from ..services import get_rotation_service_class

    return _class_errors(
        get_rotation_service_class,
        "Give the dotted path of a KeyRotationService subclass, e.g. "
        "'yourapp.custom_rotation.CustomKeyRotationService'.",
        "data_encryption.E012",
    )


@register()
def check_notifier_class(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from ..notifications import get_notifier_class

    return _class_errors(
        get_notifier_class,
        "Give the dotted path of an EncryptionKeyRotationNotifier subclass, e.g. "
        "'yourapp.notifiers.SlackNotifier'.",
        "data_encryption.E024",
    )


@register(Tags.security)
def check_master_key_provider(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from ..master_key import validate_provider_setting

    return _class_errors(
        validate_provider_setting,
        "Give {'BACKEND': 'data_encryption.master_keys.AwsKms' (or .Pkcs11, or your "
        "master_keys.Provider subclass), 'OPTIONS': {...}} (docs/master-keys.md), or remove "
        "the setting to use DB_ENCRYPTION_KEY.",
        "data_encryption.E025",
    )
