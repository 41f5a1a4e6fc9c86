"""The app's configuration: registers system checks and makes the first data key at migrate."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


class DataEncryptionConfig(AppConfig):
    name = "data_encryption"
    verbose_name = "Data encryption"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the system checks and the setting_changed hook.
        from . import checks, conf  # noqa: F401

        post_migrate.connect(_make_first_data_key, sender=self)


def _make_first_data_key(using: str, **kwargs: Any) -> None:
    """A fresh install has a primary data key as soon as ``migrate`` has run."""
    from django.db import router

    from .exceptions import KeyConfigurationError
    from .keys import ensure_primary_key
    from .models import DataKey

    if not router.allow_migrate_model(using, apps.get_model("data_encryption", "DataKey")):
        return
    if router.db_for_write(DataKey) != using:
        return
    try:
        ensure_primary_key(using)
    except KeyConfigurationError:
        # No usable master key yet: `manage.py check` says why; the key is made on first use.
        return
