"""The app's configuration: one object that reads Django settings on every access.

Nothing here is cached, so ``override_settings`` just works. Objects built *from* settings (the
key ring, Fernet instances) are cached elsewhere and dropped on ``setting_changed``; see
``reset_caches``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

SCHEDULES = ("daily", "weekly", "monthly")

# Every key ENCRYPTION_KEY_ROTATION understands, with its default. A key not listed here is a
# typo the system checks report (data_encryption.E008).
ROTATION_DEFAULTS: dict[str, Any] = {
    "BACKUP_DIR": None,
    "BACKUP_FILENAME_FORMAT": "encryption_key_{timestamp}.json",
    "KEY_ROTATION_SCHEDULE": "monthly",
    # Raw BinaryField columns of the hand-written property pattern: {"app_label.Model": ["_ssn"]}.
    "MODELS": {},
    "BATCH_SIZE": 5000,
    # How long a process may keep encrypting with a primary key that is no longer primary.
    "KEY_CACHE_SECONDS": 60,
    # A rotation lock older than this (its holder died) may be taken over.
    "LOCK_TIMEOUT_SECONDS": 3600,
    # Days a retired key's material is kept before it may be destroyed.
    "RETENTION_DAYS": 30,
    # Also email when a scheduled run did nothing (another was running, or none was due).
    "NOTIFY_SKIPPED": False,
    # Celery: tables with more rows than this are split into chunks for several workers.
    "CHUNK_ROWS": 100_000,
}

SETTING_NAMES = frozenset(
    {
        "DB_ENCRYPTION_KEY",
        "DB_ENCRYPTION_KEY_FALLBACKS",
        "PAYLOAD_ENCRYPTION_KEY",
        "PAYLOAD_ENCRYPTION_KEY_FALLBACKS",
        "ENCRYPTION_KEY_ROTATION",
        "DATA_ENCRYPTION_SERVICE",
        "DATA_ENCRYPTION_NOTIFIER",
        "DATA_ENCRYPTION_MASTER_KEY_PROVIDER",
        "EMAIL_FROM_ALERTS",
        "EMAIL_SECURITY",
        "USE_TZ",
        "DATABASES",
    }
)


class EncryptionSettings:
    """Typed, defaulted access to this app's settings. Read fresh from ``django.conf.settings``."""

    @property
    def master_key(self) -> str | bytes | None:
        return getattr(settings, "DB_ENCRYPTION_KEY", None) or None

    @property
    def master_key_fallbacks(self) -> Sequence[str | bytes]:
        return list(getattr(settings, "DB_ENCRYPTION_KEY_FALLBACKS", None) or [])

    @property
    def payload_key(self) -> str | bytes | None:
        return getattr(settings, "PAYLOAD_ENCRYPTION_KEY", None) or None

    @property
    def payload_key_fallbacks(self) -> Sequence[str | bytes]:
        return list(getattr(settings, "PAYLOAD_ENCRYPTION_KEY_FALLBACKS", None) or [])

    @property
    def rotation(self) -> dict[str, Any]:
        """``ENCRYPTION_KEY_ROTATION`` merged over the defaults."""
        configured = getattr(settings, "ENCRYPTION_KEY_ROTATION", None) or {}
        return {**ROTATION_DEFAULTS, **configured}

    @property
    def backup_dir(self) -> Path | None:
        value = self.rotation["BACKUP_DIR"]
        return Path(value) if value else None

    @property
    def key_cache_seconds(self) -> float:
        return float(self.rotation["KEY_CACHE_SECONDS"])

    @property
    def service_path(self) -> str:
        return getattr(settings, "DATA_ENCRYPTION_SERVICE", None) or (
            "data_encryption.services.KeyRotationService"
        )


encryption_settings = EncryptionSettings()

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
