"""The app's settings: one object, ``encryption_settings``, through which every setting is read.

Nothing is cached, so ``override_settings`` just works. Each ``ENCRYPTION_KEY_ROTATION`` key has
one rule (``rules.RotationOption``) that both the system checks and the code apply, so a value
the checks accept is a value the code runs with. Objects built *from* settings (the key ring,
Fernet instances) are cached elsewhere and dropped on ``setting_changed`` (``register_cache``);
``load_class`` loads every dotted-path extension point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .rules import (
    PAYLOAD_MAX_AGE_DEFAULT,
    ROTATION_DEFAULTS,
    ROTATION_OPTIONS,
    SCHEDULES,
    RotationOption,
    Rule,
    seconds_above_zero,
)
from .settings import SETTING_NAMES, EncryptionSettings, encryption_settings

__all__ = [
    "PAYLOAD_MAX_AGE_DEFAULT",
    "ROTATION_DEFAULTS",
    "ROTATION_OPTIONS",
    "SCHEDULES",
    "SETTING_NAMES",
    "EncryptionSettings",
    "RotationOption",
    "Rule",
    "encryption_settings",
    "load_class",
    "register_cache",
    "reset_caches",
    "seconds_above_zero",
]

T = TypeVar("T")


def load_class(setting: str, path: str, base: type[T]) -> type[T]:
    """The class at dotted ``path`` (the value of ``setting``), which must subclass ``base``.

    The one loader behind every extension point (the rotation service, the notifier, the
    master-key provider), so each refuses a bad path with the same kind of sentence.
    """
    try:
        loaded = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"{setting} {path!r} does not import: {exc}.") from None
    if not (isinstance(loaded, type) and issubclass(loaded, base)):
        raise ImproperlyConfigured(
            f"{setting} {path!r} is not a subclass of {base.__module__}.{base.__qualname__}."
        )
    return loaded


# Caches built from settings register a reset function here; all are cleared whenever one of our
# settings changes (override_settings in tests, or a project changing settings at run time).
_cache_resetters: list[Callable[[], None]] = []


def register_cache(reset: Callable[[], None]) -> Callable[[], None]:
    """Register ``reset`` to run when a setting this app reads changes. Usable as a decorator."""
    _cache_resetters.append(reset)
    return reset


def reset_caches() -> None:
    for reset in _cache_resetters:
        reset()


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in SETTING_NAMES:
        reset_caches()
