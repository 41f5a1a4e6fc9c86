"""The rules settings follow: one ``RotationOption`` per ``ENCRYPTION_KEY_ROTATION`` key (its
default, what a value must be, the system check id that reports a breach), shared by the checks
and the code, and the payload tokens' expiry rule."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

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
    # Whether a rotation (the command, the scheduled Celery task) rotates the blind-index key too.
    _option("ROTATE_INDEX_KEYS", False, 38, BOOLEAN),
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
