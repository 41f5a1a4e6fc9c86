"""The app's tables: data keys (wrapped by the master key) and the rotation ledger (runs, their
chunks, the values they could not decrypt)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q
from django.utils import timezone

from .envelope import format_key_id
from .master_key import master_keys
from .master_keys.provider_key import register_stored_wraps


class KeyState:
    """The life of a data key: exactly one ``PRIMARY`` encrypts; ``DECRYPT_ONLY`` keys still
    read old rows; ``RETIRED`` keys are proven unused by a census; ``DESTROYED`` keys have had
    their material wiped after the retention period."""

    PRIMARY = "primary"
    DECRYPT_ONLY = "decrypt-only"
    RETIRED = "retired"
    DESTROYED = "destroyed"

    choices = [
        (PRIMARY, "primary (encrypts and decrypts)"),
        (DECRYPT_ONLY, "decrypt-only"),
        (RETIRED, "retired (no row uses it)"),
        (DESTROYED, "destroyed (material wiped)"),
    ]


class DataKey(models.Model):
    """One random 256-bit data key, stored only wrapped by the master key.

    ``key_id`` is the random 32-bit id written into every value the key encrypts. The material
    never leaves this row unwrapped; ``repr`` and ``str`` show the id and state only.
    """

    key_id = models.PositiveBigIntegerField(unique=True, editable=False)
    state = models.CharField(max_length=16, choices=KeyState.choices, default=KeyState.PRIMARY)
    wrapped_key = models.BinaryField(null=True, editable=False)
    # Which master key wrapped it (a one-way fingerprint, not the key), so a master key change can
    # tell which rows still need re-wrapping and an error can say which key is missing.
    master_key_fingerprint = models.CharField(max_length=16, editable=False)
    created_at = models.DateTimeField()
    primary_since = models.DateTimeField(null=True, blank=True)
    decrypt_only_since = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)
    # HMAC of every field above under a key derived from the master key (see
    # key_metadata_message): a row edited in the database (a retired key made primary again, a
    # key marked destroyed, dates moved) no longer verifies. Null: written before migration 0005
    # without a master key, or by hand; see docs/security.md.
    metadata_mac = models.BinaryField(null=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["state"],
                condition=Q(state="primary"),
                name="data_encryption_one_primary_key",
            )
        ]

    def __str__(self) -> str:
        return f"data key {self.hex_id} ({self.state})"

    def __repr__(self) -> str:
        return f"<DataKey {self.hex_id} state={self.state}>"

    @property
    def hex_id(self) -> str:
        return format_key_id(self.key_id)

    def save(self, **kwargs: Any) -> None:
        """Save, authenticating the metadata under the current master key: every legitimate
        transition (create, activate, demote, retire, destroy, restore, rewrap) goes through
        here, so only an edit made outside the application leaves a MAC that does not verify.
        Write key rows with ``save()``, never ``QuerySet.update()``."""
        sign_metadata(self, key_metadata_message, kwargs)
        super().save(**kwargs)


KEY_METADATA_V1 = b"data_encryption/key-metadata/v1\n"
KEY_DATES = ("created_at", "primary_since", "decrypt_only_since", "retired_at", "destroyed_at")


INDEX_KEY_METADATA_V1 = b"data_encryption/index-key-metadata/v1\n"
INDEX_KEY_DATES = ("created_at", "state_since")


def key_metadata_message(row: Any, using: str | None = None) -> bytes:
    """The bytes a data key's ``metadata_mac`` authenticates: its id, state, wrapped key,
    master-key fingerprint and every date, in one canonical spelling (JSON, sorted keys, dates
    in UTC to the microsecond), whatever the database hands back.

    Takes any object with ``DataKey``'s fields, so migration 0005's historical rows can be
    authenticated with the same bytes; ``using`` (default: the row's database) says how that
    database hands back dates. A change to these bytes needs a new version prefix.
    """
    return _metadata_message(KEY_METADATA_V1, row, KEY_DATES, {}, using)


def index_key_metadata_message(row: Any, using: str | None = None) -> bytes:
    """The bytes an index key's ``metadata_mac`` authenticates: what a data key's does (with
    the index key's own dates), plus its slot and ``complete_fields`` (sorted), under its own
    prefix, so no data key's MAC passes for an index key's."""
    extra = {"slot": row.slot, "complete_fields": sorted(row.complete_fields or ())}
    return _metadata_message(INDEX_KEY_METADATA_V1, row, INDEX_KEY_DATES, extra, using)


def _metadata_message(
    prefix: bytes, row: Any, dates: tuple[str, ...], extra: dict[str, Any], using: str | None
) -> bytes:
    connection = connections[using or row._state.db or DEFAULT_DB_ALIAS]
    wrapped = row.wrapped_key
    fields = {
        "key_id": row.key_id,
        "state": row.state,
        "wrapped_key": None if wrapped is None else bytes(wrapped).hex(),
        "master_key_fingerprint": row.master_key_fingerprint,
        **{name: _canonical_date(getattr(row, name), connection) for name in dates},
        **extra,
    }
    return prefix + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def sign_metadata(
    row: models.Model, message: Callable[[Any, str | None], bytes], save_kwargs: dict[str, Any]
) -> None:
    """Set ``row.metadata_mac`` for the ``save(**save_kwargs)`` about to run (and add it to its
    ``update_fields``): ``message`` of the row as that database will hand it back, signed by
    the current master key."""
    using = save_kwargs.get("using") or router.db_for_write(type(row), instance=row)
    row.metadata_mac = master_keys()[0].sign_metadata(message(row, using))  # type: ignore[attr-defined]
    if save_kwargs.get("update_fields") is not None:
        save_kwargs["update_fields"] = {*save_kwargs["update_fields"], "metadata_mac"}


def _canonical_date(value: datetime | None, connection: BaseDatabaseWrapper) -> str | None:
    if value is None:
        return None
    if timezone.is_naive(value) and (settings.USE_TZ or connection.features.supports_timezones):
        # A wall-clock time in TIME_ZONE: what Django stores for a naive value with USE_TZ on,
        # and what PostgreSQL hands back with USE_TZ off. (SQLite and MySQL with USE_TZ off
        # hand back what was stored, UTC for rows written with it on: taken as it is.)
        value = timezone.make_aware(value, timezone.get_default_timezone())
    if timezone.is_aware(value):
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds")


class RunStatus:
    """A rotation run's status. ``completed`` and ``failed`` are the contract's; ``running`` is a
    run in progress (or one whose process died, until the next run resumes it); ``skipped`` is a
    run that did nothing because another was running or none was due."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"

    choices = [
        (RUNNING, "running"),
        (COMPLETED, "completed"),
        (FAILED, "failed"),
        (SKIPPED, "skipped"),
    ]


class RunKind:
    """What a run does. A ``rotation`` makes a new key and moves every value onto it; a
    ``conversion`` (``encrypt_existing``) seals the legacy values of some columns in transition
    under the current primary key and makes no key; an ``index`` run (``rebuild_blind_index``,
    an index-key rotation) fills blind-index columns and changes no ciphertext. All hold the one
    lock."""

    ROTATION = "rotation"
    CONVERSION = "conversion"
    INDEX = "index"

    choices = [
        (ROTATION, "key rotation"),
        (CONVERSION, "conversion of legacy values"),
        (INDEX, "blind-index walk"),
    ]


class RotationRun(models.Model):
    """The ledger: one row per rotation run, with its phase, per-model progress and counts.

    At most one run is ``running`` at a time (a partial unique index): that row *is* the rotation
    lock. Its holder refreshes ``heartbeat_at`` at least every ``HEARTBEAT_SECONDS`` while it
    walks rows, and between phases; a run whose holder died is taken over by the next invocation,
    which resumes from the phase and its chunks' cursors.
    """

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    kind = models.CharField(max_length=16, choices=RunKind.choices, default=RunKind.ROTATION)
    # backup -> activate -> wait -> plan -> reencrypt [-> finishing] -> census -> done
    # ("finishing": a Celery final step claimed the run); a conversion starts at plan
    phase = models.CharField(max_length=16, default="backup")
    # A conversion's columns ("app_label.Model.field"), an index run's ("...field@slots"):
    # a run resumed must cover the same.
    columns = models.JSONField(default=list, blank=True)
    holder = models.CharField(max_length=200, help_text="host:pid:token of the process running it")
    trigger = models.CharField(max_length=32, default="api")
    old_key_ids = models.JSONField(default=list)
    new_key_id = models.PositiveBigIntegerField(null=True, blank=True)
    # The new key, wrapped, from before it is activated: so the backup can hold it and a crash
    # between backup and activation does not make a second key.
    new_wrapped_key = models.BinaryField(null=True, editable=False)
    new_key_fingerprint = models.CharField(max_length=16, blank=True, editable=False)
    retired_key_ids = models.JSONField(default=list)
    destroyed_key_ids = models.JSONField(default=list)
    key_backup_path = models.CharField(max_length=1000, blank=True)
    models_processed = models.PositiveIntegerField(default=0)
    records_processed = models.PositiveBigIntegerField(default=0)
    records_reencrypted = models.PositiveBigIntegerField(default=0)
    failed_records = models.PositiveBigIntegerField(default=0)
    # {"app_label.Model": {"rows": n, "reencrypted": n, "failed": n}}, summed from the chunks
    progress = models.JSONField(default=dict)
    census = models.JSONField(default=dict)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"],
                condition=Q(status="running"),
                name="data_encryption_one_running_rotation",
            )
        ]

    def __str__(self) -> str:
        return f"rotation {self.pk} ({self.status}) started {self.started_at:%Y-%m-%d %H:%M}"

    def __repr__(self) -> str:
        return f"<RotationRun {self.pk} status={self.status} phase={self.phase}>"


class RotationChunk(models.Model):
    """A primary-key range of one table that one worker re-encrypts: ``(lower, upper]``.

    A rotation splits each table into chunks (one per ``CHUNK_ROWS`` rows). One process works
    through them in order; Celery sends them to as many workers as there are. Each chunk keeps
    its own cursor, moved in the same transaction as its batch, so a chunk that is delivered
    again after its worker died resumes where the dead one stopped.
    """

    run = models.ForeignKey(RotationRun, on_delete=models.CASCADE, related_name="chunks")
    model = models.CharField(max_length=200)
    index = models.PositiveIntegerField()
    lower = models.JSONField(null=True, blank=True, help_text="exclusive; null: from the start")
    upper = models.JSONField(null=True, blank=True, help_text="inclusive; null: to the end")
    cursor = models.JSONField(null=True, blank=True)
    rows = models.PositiveBigIntegerField(default=0)
    reencrypted = models.PositiveBigIntegerField(default=0)
    failed = models.PositiveBigIntegerField(default=0)
    done = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True, help_text="who finished it")
    started_at = models.DateTimeField(null=True, blank=True, help_text="first batch began")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "model", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "model", "index"], name="data_encryption_chunk_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model} chunk {self.index} of rotation {self.run_id}"

    def __repr__(self) -> str:
        return f"<RotationChunk {self.model}#{self.index} done={self.done}>"


class RotationFailure(models.Model):
    """A value a rotation could not decrypt: where it is and why, never the value itself."""

    run = models.ForeignKey(RotationRun, on_delete=models.CASCADE, related_name="failures")
    model = models.CharField(max_length=200)
    pk_value = models.CharField(max_length=200)
    field = models.CharField(max_length=200)
    key_id = models.PositiveBigIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300)

    class Meta:
        ordering = ["model", "pk_value", "field"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "model", "pk_value", "field"], name="data_encryption_failure_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model} pk={self.pk_value} field={self.field}: {self.error}"


class IndexKeyState:
    """The life of a blind-index key (docs/search.md). Each key fills one of the two index
    columns ("slots") of every indexed field: ``FILLING`` is written on every save while a walk
    back-fills it, and read by nobody; ``ACTIVE`` (exactly one) is complete, written and read;
    ``DRAINING`` was active until the last switch and is still written, for processes that have
    not yet seen the switch; ``RETIRED`` is written as NULL and its slot is cleared."""

    FILLING = "filling"
    ACTIVE = "active"
    DRAINING = "draining"
    RETIRED = "retired"
    LIVE = (FILLING, ACTIVE, DRAINING)

    choices = [
        (FILLING, "filling (written, being built)"),
        (ACTIVE, "active (written and queried)"),
        (DRAINING, "draining (written until every process has switched)"),
        (RETIRED, "retired (cleared)"),
    ]


class IndexKey(models.Model):
    """One random 256-bit blind-index key, stored only wrapped by the master key (as data keys
    are, under an id of its own). Each indexed field hashes under a key derived from it and
    the field's name, so equal values of two fields have unrelated index values."""

    key_id = models.PositiveBigIntegerField(unique=True, editable=False)
    slot = models.CharField(max_length=1, choices=[("a", "a"), ("b", "b")])
    state = models.CharField(max_length=16, choices=IndexKeyState.choices)
    # NULL once retired: a retired key's material is wiped with its slot's values.
    wrapped_key = models.BinaryField(null=True, editable=False)
    master_key_fingerprint = models.CharField(max_length=16, editable=False)
    created_at = models.DateTimeField()
    state_since = models.DateTimeField()
    # The fields ("app_label.Model.field" contexts) whose index under this key is known to cover
    # every row: recorded by the walk that built it, or by the first query that checked it.
    complete_fields = models.JSONField(default=list, blank=True)
    # As DataKey.metadata_mac (index_key_metadata_message): a filling key made active early, a
    # retired key revived or complete_fields edited in the database no longer verifies.
    metadata_mac = models.BinaryField(null=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["state"],
                condition=Q(state="active"),
                name="data_encryption_one_active_index_key",
            ),
            models.UniqueConstraint(
                fields=["slot"],
                condition=Q(state__in=["filling", "active", "draining"]),
                name="data_encryption_one_live_index_key_per_slot",
            ),
        ]

    def __str__(self) -> str:
        return f"index key {self.hex_id} (slot {self.slot}, {self.state})"

    def __repr__(self) -> str:
        return f"<IndexKey {self.hex_id} slot={self.slot} state={self.state}>"

    @property
    def hex_id(self) -> str:
        return format_key_id(self.key_id)

    def save(self, **kwargs: Any) -> None:
        """Save, authenticating the metadata under the current master key (as ``DataKey.save``;
        write index key rows with ``save()``, never ``QuerySet.update()``)."""
        sign_metadata(self, index_key_metadata_message, kwargs)
        super().save(**kwargs)


def stored_wraps(fingerprint: str) -> list[tuple[int, bytes]]:
    """(key id, wrapped key) of the key rows wrapped by the master key with ``fingerprint``,
    data keys then index keys, oldest first: where a provider's master key finds the secret it
    signs with (the first row's) and the secrets of rows it has not unwrapped
    (``master_keys.provider_key``)."""
    found: list[tuple[int, bytes]] = []
    for model in (DataKey, IndexKey):
        using = router.db_for_write(model)
        if model._meta.db_table not in connections[using].introspection.table_names():
            continue  # a migration before the table's (0005 signs data keys before 0007)
        rows = (
            model.objects.using(using)
            .filter(master_key_fingerprint=fingerprint, wrapped_key__isnull=False)
            .order_by("created_at", "key_id")
            .values_list("key_id", "wrapped_key")
        )
        found += [(key_id, bytes(wrapped)) for key_id, wrapped in rows if wrapped is not None]
    return found


register_stored_wraps(stored_wraps)
