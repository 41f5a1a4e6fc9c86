"""Checks of ``ENCRYPTION_KEY_ROTATION``: each key against its rule (E008, E009, E014-E023, E026,
E028) and ``BACKUP_DIR`` on disk (E010, E011)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from ..conf import ROTATION_OPTIONS, encryption_settings


@register()
def check_rotation_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Every ``ENCRYPTION_KEY_ROTATION`` key against the rule the code applies to it (one id per
    key, from ``conf.ROTATION_OPTIONS``), and ``BACKUP_DIR`` on disk."""
    try:
        configured = encryption_settings.rotation_configured
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint="See the README for its keys.", id="data_encryption.E014")]
    errors = [
        Error(
            f"ENCRYPTION_KEY_ROTATION has an unknown key {key!r}.",
            hint="Known keys: " + ", ".join(sorted(ROTATION_OPTIONS)) + ".",
            id="data_encryption.E008",
        )
        for key in sorted(set(configured) - set(ROTATION_OPTIONS))
    ]
    for option, problem in encryption_settings.rotation_problems():
        errors.append(Error(problem, hint=option.advice(), id=option.check_id))
    if configured.get("BACKUP_DIR") and ROTATION_OPTIONS["BACKUP_DIR"].rule.accepts(
        configured["BACKUP_DIR"]
    ):
        errors += _backup_dir_errors(Path(configured["BACKUP_DIR"]))
    return errors


def _backup_dir_errors(path: Path) -> list[Error]:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == path:
        if not path.is_dir():
            return [
                Error(
                    f"BACKUP_DIR {path} is not a directory.",
                    hint="Point BACKUP_DIR at a directory.",
                    id="data_encryption.E011",
                )
            ]
        from ..backups import backup_dir_problems

        # The rule the backup writer applies before writing: owned by this user, mode 0700.
        errors = [
            Error(problem, hint=fix, id="data_encryption.E010")
            for problem, fix in backup_dir_problems(path)
        ]
        if not os.access(path, os.W_OK | os.X_OK):
            errors.append(
                Error(
                    f"BACKUP_DIR {path} is not writable by this process.",
                    hint="Make the directory owned by the user that runs Django and rotations.",
                    id="data_encryption.E011",
                )
            )
        return errors
    # Not there yet: it is created (mode 0700) at the first rotation if its parent allows.
    if not os.access(existing, os.W_OK | os.X_OK):
        return [
            Error(
                f"BACKUP_DIR {path} does not exist and cannot be created under {existing}.",
                hint="Create it (mode 0700) as the user that runs rotations.",
                id="data_encryption.E011",
            )
        ]
    return []
