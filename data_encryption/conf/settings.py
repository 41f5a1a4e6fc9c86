"""``encryption_settings``: typed, defaulted access to every setting this app reads, fresh from
``django.conf.settings`` on each access (so ``override_settings`` just works)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .rules import (
    PAYLOAD_MAX_AGE_DEFAULT,
    ROTATION_OPTIONS,
    RotationOption,
    seconds_above_zero,
)

SETTING_NAMES = frozenset(
    {
        "DB_ENCRYPTION_KEY",
        "DB_ENCRYPTION_KEY_FALLBACKS",
        "PAYLOAD_ENCRYPTION_KEY",
        "PAYLOAD_ENCRYPTION_KEY_FALLBACKS",
        "PAYLOAD_MAX_AGE_SECONDS",
        "ENCRYPTION_KEY_ROTATION",
        "DATA_ENCRYPTION_SERVICE",
        "DATA_ENCRYPTION_NOTIFIER",
        "DATA_ENCRYPTION_MASTER_KEY_PROVIDER",
        "DATA_ENCRYPTION_MASTER_KEY_FALLBACKS",
        "DATA_ENCRYPTION_LEGACY_COLUMNS",
        "EMAIL_FROM_ALERTS",
        "EMAIL_SECURITY",
        "USE_TZ",
        "DATABASES",
        # The peer libraries' settings, read by the legacy readers as their defaults.
        "SECRET_KEY",
        "SECRET_KEY_FALLBACKS",
        "SALT_KEY",
        "FIELD_ENCRYPTION_KEY",
        "CRYPTOGRAPHY_KEY",
        "CRYPTOGRAPHY_SALT",
        "CRYPTOGRAPHY_DIGEST",
    }
)


class EncryptionSettings:
    """Typed, defaulted access to this app's settings, read fresh from ``django.conf.settings``.

    A value that breaks its rule raises ``ImproperlyConfigured`` naming the setting (the system
    checks report the same rule earlier, with its id).
    """

    # -- keys -----------------------------------------------------------------------------------

    @property
    def master_key(self) -> str | bytes | None:
        return getattr(settings, "DB_ENCRYPTION_KEY", None) or None

    @property
    def master_key_fallbacks(self) -> Sequence[str | bytes]:
        return self._list("DB_ENCRYPTION_KEY_FALLBACKS")

    @property
    def payload_key(self) -> str | bytes | None:
        return getattr(settings, "PAYLOAD_ENCRYPTION_KEY", None) or None

    @property
    def payload_key_fallbacks(self) -> Sequence[str | bytes]:
        return self._list("PAYLOAD_ENCRYPTION_KEY_FALLBACKS")

    @property
    def payload_max_age_seconds(self) -> float:
        """``PAYLOAD_MAX_AGE_SECONDS``: the expiry of payload tokens checked without ``max_age``."""
        value = getattr(settings, "PAYLOAD_MAX_AGE_SECONDS", PAYLOAD_MAX_AGE_DEFAULT)
        try:
            return seconds_above_zero(value, "PAYLOAD_MAX_AGE_SECONDS")
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(
                f"{exc} The default is {PAYLOAD_MAX_AGE_DEFAULT} (a day)."
            ) from None

    # -- columns in transition -------------------------------------------------------------------

    @property
    def legacy_columns(self) -> Mapping[str, Any]:
        """``DATA_ENCRYPTION_LEGACY_COLUMNS``: ``{"app_label.Model.field": reader spec}``."""
        value = getattr(settings, "DATA_ENCRYPTION_LEGACY_COLUMNS", None) or {}
        if not isinstance(value, Mapping):
            raise ImproperlyConfigured(
                "DATA_ENCRYPTION_LEGACY_COLUMNS must be a dict: "
                '{"app_label.Model.field": "plaintext" or a reader}; use {} for none.'
            )
        return value

    def _list(self, name: str) -> list[Any]:
        value = getattr(settings, name, None) or []
        if not isinstance(value, (list, tuple)):
            raise ImproperlyConfigured(f"{name} must be a list of keys; use [] for none.")
        return list(value)

    # -- ENCRYPTION_KEY_ROTATION ----------------------------------------------------------------

    @property
    def rotation_configured(self) -> Mapping[str, Any]:
        """``ENCRYPTION_KEY_ROTATION`` as the project wrote it (``{}`` when unset)."""
        configured = getattr(settings, "ENCRYPTION_KEY_ROTATION", None) or {}
        if not isinstance(configured, Mapping):
            raise ImproperlyConfigured(
                "ENCRYPTION_KEY_ROTATION must be a dict; see the README for its keys."
            )
        return configured

    def rotation_problems(self) -> Iterator[tuple[RotationOption, str]]:
        """Every key whose configured value breaks its rule, with the sentence saying so."""
        configured = self.rotation_configured
        for key, option in ROTATION_OPTIONS.items():
            problem = option.problem(configured.get(key, option.default))
            if problem:
                yield option, problem

    def rotation_option(self, key: str) -> Any:
        """The value of one ``ENCRYPTION_KEY_ROTATION`` key, defaulted and checked."""
        option = ROTATION_OPTIONS[key]
        value = self.rotation_configured.get(key, option.default)
        problem = option.problem(value)
        if problem:
            raise ImproperlyConfigured(f"{problem} {option.advice()}")
        return value

    @property
    def backup_dir(self) -> Path | None:
        value = self.rotation_option("BACKUP_DIR")
        return Path(value) if value else None

    @property
    def backup_filename_format(self) -> str:
        return str(self.rotation_option("BACKUP_FILENAME_FORMAT"))

    @property
    def rotation_schedule(self) -> str:
        return str(self.rotation_option("KEY_ROTATION_SCHEDULE"))

    @property
    def rotation_models(self) -> dict[str, list[str]]:
        return {label: list(names) for label, names in self.rotation_option("MODELS").items()}

    @property
    def rotation_contexts(self) -> dict[str, dict[str, str]]:
        """The contexts of ``MODELS`` raw columns given in its dict form (``{"app.Model":
        {"_ssn": "customer.ssn"}}``): what ``EncryptionService.encrypt(..., context=)`` binds
        their values to, so a rotation rewrites them bound the same way."""
        return {
            label: {name: context for name, context in names.items() if context}
            for label, names in self.rotation_option("MODELS").items()
            if isinstance(names, Mapping)
        }

    @property
    def batch_size(self) -> int:
        return int(self.rotation_option("BATCH_SIZE"))

    @property
    def key_cache_seconds(self) -> float:
        return float(self.rotation_option("KEY_CACHE_SECONDS"))

    @property
    def lock_timeout_seconds(self) -> float:
        return float(self.rotation_option("LOCK_TIMEOUT_SECONDS"))

    @property
    def retention_days(self) -> float:
        return float(self.rotation_option("RETENTION_DAYS"))

    @property
    def notify_skipped(self) -> bool:
        return bool(self.rotation_option("NOTIFY_SKIPPED"))

    @property
    def chunk_rows(self) -> int:
        return int(self.rotation_option("CHUNK_ROWS"))

    @property
    def prune_backups(self) -> bool:
        return bool(self.rotation_option("PRUNE_BACKUPS"))

    @property
    def accept_legacy_tokens(self) -> bool:
        return bool(self.rotation_option("ACCEPT_LEGACY_TOKENS"))

    @property
    def rotate_index_keys(self) -> bool:
        return bool(self.rotation_option("ROTATE_INDEX_KEYS"))

    # -- notifications --------------------------------------------------------------------------

    @property
    def email_from_alerts(self) -> str:
        return getattr(settings, "EMAIL_FROM_ALERTS", None) or settings.DEFAULT_FROM_EMAIL

    @property
    def email_security(self) -> list[str]:
        """The security team's addresses (``EMAIL_SECURITY``, a string or a list)."""
        configured = getattr(settings, "EMAIL_SECURITY", None)
        if not configured:
            raise ImproperlyConfigured(
                "EMAIL_SECURITY is not set: set it to the security team's address (or a list)."
            )
        return [configured] if isinstance(configured, str) else list(configured)

    @property
    def email_subject_prefix(self) -> str:
        return str(settings.EMAIL_SUBJECT_PREFIX)

    # -- extension points (dotted paths) --------------------------------------------------------

    @property
    def service_path(self) -> str:
        return getattr(settings, "DATA_ENCRYPTION_SERVICE", None) or (
            "data_encryption.services.KeyRotationService"
        )

    @property
    def notifier_path(self) -> str:
        return getattr(settings, "DATA_ENCRYPTION_NOTIFIER", None) or (
            "data_encryption.notifications.EncryptionKeyRotationNotifier"
        )

    @property
    def master_key_provider_path(self) -> str:
        return getattr(settings, "DATA_ENCRYPTION_MASTER_KEY_PROVIDER", None) or (
            "data_encryption.master_key.SettingsMasterKeyProvider"
        )


encryption_settings = EncryptionSettings()
