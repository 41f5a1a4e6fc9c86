"""The app's settings: one object, ``encryption_settings``, through which every setting is read.

Nothing here is cached, so ``override_settings`` just works. Each ``ENCRYPTION_KEY_ROTATION``
key has one rule (``RotationOption``) that both the system checks and the code apply, so a value
the checks accept is a value the code runs with. Objects built *from* settings (the key ring,
Fernet instances) are cached elsewhere and dropped on ``setting_changed`` (``register_cache``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

SCHEDULES = ("daily", "weekly", "monthly")


@dataclass(frozen=True)
class Rule:
    """What a setting's value must be: a phrase for the error, and the test."""

    requirement: str  # completes "ENCRYPTION_KEY_ROTATION['KEY'] must be ..."
    accepts: Callable[[Any], bool]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


WHOLE_FROM_ONE = Rule("a whole number of at least 1", lambda v: type(v) is int and v >= 1)
SECONDS = Rule("a number of seconds, 0 or more", lambda v: _number(v) and v >= 0)
SECONDS_ABOVE_ZERO = Rule("a number of seconds greater than 0", lambda v: _number(v) and v > 0)
DAYS = Rule("a number of days, 0 or more", lambda v: _number(v) and v >= 0)
BOOLEAN = Rule("True or False", lambda v: isinstance(v, bool))
DIRECTORY = Rule("a directory path", lambda v: v is None or isinstance(v, (str, os.PathLike)))
FILE_NAME = Rule(
    "a file name containing '{timestamp}'",
    lambda v: isinstance(v, str) and "{timestamp}" in v and "/" not in v,
)
SCHEDULE = Rule("'daily', 'weekly' or 'monthly'", lambda v: v in SCHEDULES)


def _model_columns(value: Any) -> bool:
    def columns(names: Any) -> bool:
        if isinstance(names, Mapping):  # {"_ssn": "customer.ssn"}: the column's context
            return all(
                isinstance(name, str)
                and (context is None or (isinstance(context, str) and context))
                for name, context in names.items()
            )
        return isinstance(names, (list, tuple)) and all(isinstance(name, str) for name in names)

    return isinstance(value, Mapping) and all(
        isinstance(label, str) and columns(names) for label, names in value.items()
    )


MODEL_COLUMNS = Rule(
    "a dict of 'app_label.Model' to a list of field names, or to a dict of field name to the "
    "context its values are bound to (or None)",
    _model_columns,
)


@dataclass(frozen=True)
class RotationOption:
    """One key of ``ENCRYPTION_KEY_ROTATION``: its default, its rule, and the system check id
    that reports a value breaking the rule."""

    key: str
    default: Any
    check_id: str
    rule: Rule
    hint: str = ""

    def problem(self, value: Any) -> str | None:
        """The sentence saying what is wrong with ``value``, or ``None`` when it is fine."""
        if self.rule.accepts(value):
            return None
        requirement = self.rule.requirement
        return f"ENCRYPTION_KEY_ROTATION[{self.key!r}] must be {requirement}, not {value!r}."

    def advice(self) -> str:
        return self.hint or f"The default is {self.default!r}."


def _option(key: str, default: Any, number: int, rule: Rule, hint: str = "") -> RotationOption:
    return RotationOption(key, default, f"data_encryption.E{number:03d}", rule, hint)


# fmt: off
ROTATION_OPTIONS: dict[str, RotationOption] = {option.key: option for option in (
    _option("BACKUP_DIR", None, 15, DIRECTORY,
            "Point it at a directory only the user that runs rotations can read."),
    _option("BACKUP_FILENAME_FORMAT", "encryption_key_{timestamp}.json", 16, FILE_NAME,
            "For example 'encryption_key_{timestamp}.json'."),
    _option("KEY_ROTATION_SCHEDULE", "monthly", 9, SCHEDULE,
            "Use 'daily', 'weekly' or 'monthly'."),
    # Raw columns of the hand-written property pattern.
    _option("MODELS", {}, 17, MODEL_COLUMNS,
            "For example {'yourapp.Customer': ['_ssn']}, or {'yourapp.Customer': "
            "{'_ssn': 'customer.ssn'}} when its values are encrypted with context='customer.ssn'."),
    # Rows per batch; each batch is one transaction holding its rows' locks.
    _option("BATCH_SIZE", 5000, 18, WHOLE_FROM_ONE),
    # How long a process may keep encrypting with a primary key that is no longer primary.
    _option("KEY_CACHE_SECONDS", 60, 19, SECONDS),
    # A rotation lock whose heartbeat is older than this (its holder died) may be taken over.
    _option("LOCK_TIMEOUT_SECONDS", 3600, 20, SECONDS_ABOVE_ZERO),
    # Days a retired key's material is kept before it may be destroyed.
    _option("RETENTION_DAYS", 30, 21, DAYS),
    # Also email when a scheduled run did nothing (another was running, or none was due).
    _option("NOTIFY_SKIPPED", False, 22, BOOLEAN),
    # Tables with more rows than this are split into chunks, for several Celery workers.
    _option("CHUNK_ROWS", 100_000, 23, WHOLE_FROM_ONE),
    # After a rotation's retirement step, remove destroyed keys' material from the key backups
    # (what `manage.py prune_key_backups` does): destroy is crypto-erasure only once they are.
    _option("PRUNE_BACKUPS", False, 26, BOOLEAN),
    # Whether plain Fernet tokens made with DB_ENCRYPTION_KEY (before this app) are still read.
    # Turn it off once a rotation's census shows none left: a planted old token is then refused.
    _option("ACCEPT_LEGACY_TOKENS", True, 28, BOOLEAN,
            "Leave it True until the census shows no 'legacy-fernet' values, then set False."),
)}
# fmt: on

# How long a payload token is accepted when decrypt_payload() is given no max_age: a day.
PAYLOAD_MAX_AGE_DEFAULT = 86_400


def seconds_above_zero(value: Any, name: str) -> float:
    """``value`` (a number or a ``timedelta``) as a finite number of seconds greater than 0.

    ``TypeError`` for anything that is not a number, ``ValueError`` for ``nan``, infinities, 0
    and negatives; both name ``name``. One rule for the ``PAYLOAD_MAX_AGE_SECONDS`` setting and
    the ``max_age`` argument, so an expiry can never be switched off by accident.
    """
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be a number of seconds (an int, a float or a timedelta), not "
            f"{type(value).__name__}."
        )
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond any float
        seconds = math.inf
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(
            f"{name} must be a finite number of seconds greater than 0, not {value!r}."
        )
    return seconds


ROTATION_DEFAULTS: dict[str, Any] = {
    key: option.default for key, option in ROTATION_OPTIONS.items()
}

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
        "EMAIL_FROM_ALERTS",
        "EMAIL_SECURITY",
        "USE_TZ",
        "DATABASES",
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
