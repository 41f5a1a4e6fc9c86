"""Services: the Python API of the app.

``EncryptionService`` is the contract's entry point for encrypting values (called on the class).
Field values are encrypted with the primary data key (envelope encryption, see ``keys``);
payloads are Fernet tokens under ``PAYLOAD_ENCRYPTION_KEY`` (see ``payloads``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.utils import timezone

from . import envelope, payloads
from .conf import encryption_settings, load_class
from .encryptor import open_value, seal
from .exceptions import DecryptionError
from .models import RunStatus
from .rotation import Progress, Rotation, resolve_tables

logger = logging.getLogger("data_encryption")


class EncryptionService:
    """Encrypt and decrypt values. Every method is a classmethod: call it on the class."""

    @classmethod
    def encrypt(cls, value: str | None) -> bytes | None:
        """Encrypt ``value`` under the primary data key; ``None`` gives ``None``.

        Returns the binary envelope (see ``docs/format.md``), ready for a ``BinaryField``.
        """
        # The common case first: this and decrypt() are the per-value hot path.
        if type(value) is str:
            return seal(value.encode())
        if value is None:
            return None
        if isinstance(value, str):
            return seal(str(value).encode())
        raise TypeError(
            f"EncryptionService.encrypt() takes a str (or None), not {type(value).__name__}. "
            "Convert the value to text first, or use an encrypted model field for its type."
        )

    @classmethod
    def decrypt(cls, value: bytes | bytearray | memoryview | str | None) -> str | None:
        """Decrypt a value made by ``encrypt`` (either form) or a legacy Fernet token.

        ``None`` gives ``None``. Raises ``DecryptionError`` (also a ``ValueError`` and an
        ``InvalidToken``) when the value cannot be decrypted.
        """
        if value is None:
            return None
        try:
            return open_value(value).decode()
        except UnicodeDecodeError:
            raise DecryptionError(
                "The value decrypted, but to bytes that are not UTF-8 text: it was made by "
                "encrypt_bytes() or an EncryptedBinaryField. Use decrypt_bytes()."
            ) from None

    @classmethod
    def encrypt_bytes(cls, value: bytes) -> bytes:
        """Encrypt raw bytes; the binary counterpart of ``encrypt``."""
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"encrypt_bytes() takes bytes, not {type(value).__name__}; use encrypt() for text."
            )
        return seal(bytes(value))

    @classmethod
    def decrypt_bytes(cls, value: bytes | bytearray | memoryview | str) -> bytes:
        """Decrypt to raw bytes, whatever the plaintext is."""
        return open_value(value)

    @classmethod
    def to_ascii(cls, value: bytes | bytearray | memoryview) -> str:
        """The ASCII form of a binary envelope (for text columns, JSON, URLs)."""
        return envelope.parse(value).to_ascii()

    @classmethod
    def key_id_of(cls, value: bytes | bytearray | memoryview | str) -> int | None:
        """Which data key made ``value``, from its header alone (``None`` for legacy Fernet)."""
        return envelope.key_id_of(value)

    @classmethod
    def encrypt_payload(cls, obj: Any, *, now: int | None = None) -> str:
        """A URL-safe text token of ``obj`` (JSON) under the payload key; ``now`` stamps it."""
        return payloads.encrypt_payload(obj, now=now)

    @classmethod
    def decrypt_payload(
        cls, token: str | bytes, max_age: float | None = None, *, now: int | None = None
    ) -> Any:
        """The value of a token made by ``encrypt_payload``; ``PayloadExpired`` past ``max_age``
        seconds, ``DecryptionError`` for any other problem (see ``payloads``)."""
        return payloads.decrypt_payload(token, max_age, now=now)


class KeyRotationService:
    """Rotates the data key and re-encrypts every configured field (see ``rotation``).

    Subclass it and override ``_load_model_configurations`` to choose the models; name the
    subclass in ``DATA_ENCRYPTION_SERVICE`` and the management command, the Celery task and
    ``get_rotation_service()`` all use it.
    """

    def __init__(
        self,
        *,
        using: str | None = None,
        batch_size: int | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.using = using
        self.batch_size = batch_size
        self.progress = progress

    def _load_model_configurations(self) -> list[tuple[type[models.Model], list[str]]]:
        """``[(Model, ["field", ...]), ...]``: every model with encrypted fields, plus the raw
        columns named in ``ENCRYPTION_KEY_ROTATION["MODELS"]`` (``{"app.Model": ["_ssn"]}``)."""
        from .fields import EncryptedFieldMixin

        found: dict[type[models.Model], list[str]] = {}
        for model in apps.get_models():
            names = [
                model_field.name
                for model_field in model._meta.local_concrete_fields
                if isinstance(model_field, EncryptedFieldMixin)
            ]
            if names:
                found[model] = names
        listed = encryption_settings.rotation_models
        for label, names in dict(listed).items():
            try:
                model = apps.get_model(label)
            except (LookupError, ValueError):
                raise ImproperlyConfigured(
                    f"ENCRYPTION_KEY_ROTATION['MODELS'] names {label!r}, which is not an "
                    "installed model. Use 'app_label.ModelName'."
                ) from None
            existing = found.setdefault(model, [])
            existing.extend(name for name in names if name not in existing)
        return list(found.items())

    def rotation(
        self,
        *,
        dry_run: bool = False,
        models: Sequence[str] | None = None,
        trigger: str = "api",
        holder: str | None = None,
    ) -> Rotation:
        """The ``Rotation`` over the configured models (``models`` limits it to some
        ``"app_label.Model"`` labels; such a run re-encrypts but retires no key, since its census
        cannot see the other models)."""
        tables = resolve_tables(self._load_model_configurations())
        full_scope = True
        if models:
            wanted = {label.lower() for label in models}
            known = {table.label.lower() for table in tables}
            unknown = sorted(wanted - known)
            if unknown:
                raise ImproperlyConfigured(
                    f"No encrypted fields are configured on {', '.join(unknown)}. Configured: "
                    f"{', '.join(sorted(table.label for table in tables)) or 'none'}."
                )
            tables = [table for table in tables if table.label.lower() in wanted]
            full_scope = False
        return Rotation(
            tables,
            using=self.using,
            batch_size=self.batch_size,
            dry_run=dry_run,
            full_scope=full_scope,
            progress=self.progress,
            trigger=trigger,
            holder=holder,
            sender=type(self),
        )

    def rotate(
        self,
        *,
        dry_run: bool = False,
        models: Sequence[str] | None = None,
        trigger: str = "api",
    ) -> dict[str, Any]:
        """Run a rotation now, in this process, announce it and return its report."""
        report = self.rotation(dry_run=dry_run, models=models, trigger=trigger).run()
        return self.announce(report)

    def announce(self, report: dict[str, Any]) -> dict[str, Any]:
        """Send the outcome's signal and the notification; return ``report`` with
        ``notification`` (and ``reminder`` when the primary key is overdue) added.

        Dry runs are not announced. Neither a receiver nor the notifier can change the outcome.
        """
        if report.get("dry_run"):
            return report
        from .keys import key_database
        from .notifications import notify
        from .schedule import overdue_reminder
        from .signals import rotation_completed, rotation_failed, rotation_skipped

        if report["status"] != RunStatus.COMPLETED:
            reminder = overdue_reminder(self.using or key_database(), timezone.now())
            if reminder:
                report["reminder"] = reminder
        name, signal = {
            RunStatus.COMPLETED: ("rotation_completed", rotation_completed),
            RunStatus.SKIPPED: ("rotation_skipped", rotation_skipped),
        }.get(report["status"], ("rotation_failed", rotation_failed))
        for receiver, response in signal.send_robust(sender=type(self), report=report):
            if isinstance(response, Exception):
                logger.error(
                    "A %s receiver (%r) raised %s; the rotation's outcome is unchanged.",
                    name,
                    receiver,
                    type(response).__name__,
                )
        return notify(report)

    def rotate_encryption_key_monthly(self, **options: Any) -> dict[str, Any]:
        """The contract's name for ``rotate``: rotates now (the schedule is checked by the
        Celery task, not here)."""
        return self.rotate(**options)


def get_rotation_service_class() -> type[KeyRotationService]:
    """The class named by ``DATA_ENCRYPTION_SERVICE`` (default ``KeyRotationService``)."""
    return load_class(
        "DATA_ENCRYPTION_SERVICE", encryption_settings.service_path, KeyRotationService
    )
