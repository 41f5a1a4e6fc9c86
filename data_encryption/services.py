"""Services: the Python API of the app.

``EncryptionService`` is the contract's entry point for encrypting values (called on the class).
Field values are encrypted with the primary data key (envelope encryption, see ``keys``);
payloads are Fernet tokens under ``PAYLOAD_ENCRYPTION_KEY`` (see ``payloads``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import envelope, payloads
from .blind_index import Normaliser, read_digest, resolve
from .conf import encryption_settings, load_class
from .encryptor import context_bytes, decrypt_text, encrypt_text, open_value, seal
from .index_keys import reset_index_key_ring
from .key_audit import (
    Authentication,
    KeyAudit,
    audit_data_keys,
    audit_index_keys,
    authenticate_data_keys,
)
from .keys import key_database, reset_key_ring, warm_up_key_ring
from .legacy.columns import decrypt_column
from .models import DataKey, KeyState, RunStatus
from .rotation import (
    Census,
    Progress,
    Rotation,
    RotationReport,
    discover_models,
    resolve_tables,
)
from .rotation.conversion import Conversion, conversion_tables
from .rotation.conversion_report import ConversionReport
from .rotation.index_key_rotation import index_key_rotation, with_index_key_rotation
from .rotation.index_walk import rebuild_walk
from .rotation.master_key_change import MasterKeyRewrap, finish_master_key_change
from .schedule import next_due, rotation_due

logger = logging.getLogger("data_encryption")


class EncryptionService:
    """Encrypt and decrypt values. Every method is a classmethod: call it on the class."""

    # The contract's two verbs are the encryptor's functions themselves, not wrappers: these are
    # the per-value hot path, and a wrapper would cost a Python call per value. Both take an
    # optional ``context=`` (a str naming where the value lives, e.g. "customers.Customer.ssn"):
    # a value encrypted with one decrypts only with the same, so a copy moved elsewhere fails.
    encrypt = staticmethod(encrypt_text)
    decrypt = staticmethod(decrypt_text)
    decrypt_column = staticmethod(decrypt_column)  # a raw column's, by name (legacy.columns)

    @classmethod
    def encrypt_bytes(cls, value: bytes, context: str | None = None) -> bytes:
        """Encrypt raw bytes; the binary counterpart of ``encrypt`` (``context`` binds the
        value to where it lives, as there)."""
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"encrypt_bytes() takes bytes, not {type(value).__name__}; use encrypt() for text."
            )
        return seal(bytes(value), None if context is None else context_bytes(context))

    @classmethod
    def decrypt_bytes(
        cls, value: bytes | bytearray | memoryview | str, context: str | None = None
    ) -> bytes:
        """Decrypt to raw bytes, whatever the plaintext is (``context``: as ``decrypt``)."""
        return open_value(value, None if context is None else context_bytes(context))

    @classmethod
    def warm_up(cls) -> None:
        """Load the data keys now (one query), so the first encrypted value of this process costs
        none: for a worker that wants its first request as fast as the rest, and for tests that
        count queries (``data_encryption.testing.KeyRingWarmedUp``; docs/testing.md)."""
        warm_up_key_ring()

    @classmethod
    def to_ascii(cls, value: bytes | bytearray | memoryview) -> str:
        """The ASCII form of a binary envelope (for text columns, JSON, URLs)."""
        return envelope.parse(value).to_ascii()

    @classmethod
    @sensitive_variables()
    def blind_index(
        cls, value: str | None, name: str, normaliser: str | Normaliser | None = None
    ) -> str | None:
        """The blind index of ``value`` under the active index key, as hex (32 digits), for a
        hand-written index column beside a property-pattern ciphertext; ``None`` for ``None``.

        ``name`` is the context the field key is derived from: the same as an indexed field
        with ``context=name`` (and the same ``normaliser``) stores, so equal values of two
        names never share an index value. A normaliser's ``ValidationError`` goes to the caller.
        An index-key rotation does not reach a hand-written column (docs/search.md): recompute
        it, by setting each row's value again, once the rotation has switched keys."""
        if value is None:
            return None
        normalise = resolve(normaliser)
        text = normalise(value) if normalise is not None else value
        return read_digest(context_bytes(name), text.encode("utf-8")).hex()

    @classmethod
    def key_id_of(cls, value: bytes | bytearray | memoryview | str) -> int | None:
        """Which data key made ``value``, from its header alone (``None`` for legacy Fernet)."""
        return envelope.key_id_of(value)

    # The payload's frames are cold and hold its value: hidden from Django's error reports.
    @classmethod
    @sensitive_variables()
    def encrypt_payload(cls, obj: Any, *, purpose: str, now: int | None = None) -> str:
        """A URL-safe text token of ``obj`` (JSON) under the payload key, for ``purpose`` only;
        ``now`` stamps it."""
        return payloads.encrypt_payload(obj, purpose=purpose, now=now)

    @classmethod
    @sensitive_variables()
    def decrypt_payload(
        cls,
        token: str | bytes,
        *,
        purpose: str,
        max_age: float | timedelta | None = None,
        now: int | None = None,
    ) -> Any:
        """The value of a token made by ``encrypt_payload`` for ``purpose``; ``PayloadExpired``
        past ``max_age`` seconds (default ``PAYLOAD_MAX_AGE_SECONDS``), ``DecryptionError`` for
        any other problem, a token made for another purpose included (see ``payloads``)."""
        return payloads.decrypt_payload(token, purpose=purpose, max_age=max_age, now=now)


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
        return discover_models()

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

    def perform_rotation(
        self,
        *,
        dry_run: bool = False,
        models: Sequence[str] | None = None,
        trigger: str = "api",
        index_keys: bool | None = None,
    ) -> RotationReport:
        """Run a rotation now, in this process, announce it and return its typed report.
        ``index_keys`` (default ``ROTATE_INDEX_KEYS``) rotates the blind-index key after it."""
        report = self.rotation(dry_run=dry_run, models=models, trigger=trigger).run()
        return self.announce(self.then_index_keys(report, index_keys, trigger=trigger))

    def then_index_keys(
        self, report: RotationReport, index_keys: bool | None = None, *, trigger: str = "api"
    ) -> RotationReport:
        """After a completed data-key rotation, the index-key rotation when ``index_keys``
        (default ``ROTATE_INDEX_KEYS``) says so; the report tells of both."""
        if index_keys is None:
            index_keys = encryption_settings.rotate_index_keys
        if not index_keys or report.dry_run or report.status != RunStatus.COMPLETED:
            return report
        return with_index_key_rotation(report, self.rotate_index_keys(trigger=trigger))

    def rotate_index_keys(self, *, trigger: str = "api") -> RotationReport:
        """Rotate the blind-index key now (docs/search.md), resuming an interrupted one."""
        return index_key_rotation(self.using, self.batch_size, self.progress, trigger).run()

    def rebuild_blind_index(
        self,
        labels: Sequence[str] = (),
        *,
        dry_run: bool = False,
        recompute: bool = False,
        trigger: str = "api",
    ) -> RotationReport | dict[str, int]:
        """Index the rows of ``labels``' indexed fields (all by default) that lack an index
        (``recompute``: every row, rewriting an index another key wrote); with ``dry_run``,
        count the rows that lack one per field instead."""
        walk = rebuild_walk(
            labels, self.using, self.batch_size, self.progress, trigger, recompute=recompute
        )
        return walk.missing() if dry_run else walk.run()

    def rotate(
        self,
        *,
        dry_run: bool = False,
        models: Sequence[str] | None = None,
        trigger: str = "api",
    ) -> dict[str, Any]:
        """Run a rotation now, in this process, announce it and return its report (a dict)."""
        return self.perform_rotation(dry_run=dry_run, models=models, trigger=trigger).as_dict()

    def rotate_encryption_key_monthly(self, **options: Any) -> dict[str, Any]:
        """The contract's name for ``rotate``: rotates now (``rotate_if_due`` checks the
        schedule first)."""
        return self.rotate(**options)

    def skip_unless_due(self, *, force: bool = False) -> RotationReport | None:
        """``None`` when ``KEY_ROTATION_SCHEDULE`` says a rotation is due (or ``force``);
        otherwise the announced report of a run skipped as not due."""
        if force:
            return None
        using, now = self.using or key_database(), timezone.now()
        if rotation_due(using, now):
            return None
        schedule = encryption_settings.rotation_schedule
        return self.announce(RotationReport.not_due(next_due(using), schedule, now=now))

    def rotate_if_due(self, *, force: bool = False, trigger: str = "api") -> dict[str, Any]:
        """Rotate now if the schedule says one is due (or ``force``), as the Celery task does
        without Celery; otherwise return the not-due report."""
        not_due = self.skip_unless_due(force=force)
        report = self.perform_rotation(trigger=trigger) if not_due is None else not_due
        return report.as_dict()

    def encrypt_existing(
        self, columns: Sequence[str], *, dry_run: bool = False, trigger: str = "api"
    ) -> ConversionReport:
        """Convert the legacy values of ``columns`` (``"app_label.Model.field"``, or
        ``"app_label.Model"`` for each of its columns in ``DATA_ENCRYPTION_LEGACY_COLUMNS``) in
        place, online: the rotation's walk and lock, no new key (see ``rotation.conversion``)."""
        tables = conversion_tables(columns, self._load_model_configurations())
        conversion = Conversion(
            tables,
            using=self.using,
            batch_size=self.batch_size,
            dry_run=dry_run,
            progress=self.progress,
            trigger=trigger,
            sender=type(self),
        )
        return conversion.run()

    def primary_key_id(self) -> str | None:
        """The primary data key's id (8 hex digits); ``None`` before the first is made."""
        keys = DataKey.objects.using(self.using or key_database())
        primary = keys.filter(state=KeyState.PRIMARY).first()
        return primary.hex_id if primary else None

    def key_audit(self) -> list[KeyAudit]:
        """Each data key's verdicts, newest first: whether a configured master key unwraps it
        and whether its metadata MAC verifies (what ``encryption_status`` shows)."""
        return audit_data_keys(self.using or key_database())

    def index_key_audit(self) -> list[KeyAudit]:
        """Each blind-index key's verdicts, newest first (as ``key_audit``)."""
        return audit_index_keys(self.using or key_database())

    def authenticate_keys(self, key_ids: list[int] | None = None) -> Authentication:
        """Sign key rows' metadata as they stand (see ``key_audit.authenticate_data_keys``):
        without ``key_ids``, the rows that have no MAC; with them, those rows (data keys' or
        blind-index keys')."""
        done = authenticate_data_keys(self.using or key_database(), key_ids)
        reset_key_ring()
        reset_index_key_ring()
        return done

    def census(self) -> Census:
        """Values per key id per model and field, from the headers alone (read-only)."""
        return self.rotation().census()

    def rewrap_master_key(self) -> MasterKeyRewrap:
        """Finish a master-key change: back up, then re-wrap every data key and key backup file
        under the current ``DB_ENCRYPTION_KEY``, holding the rotation lock (``RotationRunning``
        while a rotation runs; see ``rotation.master_key_change``)."""
        return finish_master_key_change(self.using or key_database())

    def announce(self, report: RotationReport) -> RotationReport:
        """Send the outcome's signal and the notification; return ``report`` with its
        ``notification`` (and ``reminder`` when the primary key is overdue).

        Dry runs are not announced. Neither a receiver nor the notifier can change the outcome.
        """
        if report.dry_run:
            return report
        from .notifications import notify
        from .schedule import overdue_reminder
        from .signals import rotation_completed, rotation_failed, rotation_skipped

        if report.status != RunStatus.COMPLETED:
            reminder = overdue_reminder(self.using or key_database(), timezone.now())
            if reminder:
                report = replace(report, reminder=reminder)
        details = report.as_dict()  # what receivers and the notifier are given (the contract's)
        name, signal = {
            RunStatus.COMPLETED: ("rotation_completed", rotation_completed),
            RunStatus.SKIPPED: ("rotation_skipped", rotation_skipped),
        }.get(report.status, ("rotation_failed", rotation_failed))
        for receiver, response in signal.send_robust(sender=type(self), report=details):
            if isinstance(response, Exception):
                logger.error(
                    "A %s receiver (%r) raised %s; the rotation's outcome is unchanged.",
                    name,
                    receiver,
                    type(response).__name__,
                )
        report = replace(report, notification=notify(report, details))
        # Receivers may keep ``details``: it ends up as the report ``rotate()`` returns.
        details.update(report.as_dict())
        return report


def get_rotation_service_class() -> type[KeyRotationService]:
    """The class named by ``DATA_ENCRYPTION_SERVICE`` (default ``KeyRotationService``)."""
    return load_class(
        "DATA_ENCRYPTION_SERVICE", encryption_settings.service_path, KeyRotationService
    )
