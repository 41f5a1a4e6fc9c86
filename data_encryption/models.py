"""The app's tables: data keys (wrapped by the master key) and, later, rotation runs."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


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


def format_key_id(key_id: int | None) -> str:
    """Key ids are shown as 8 lowercase hex digits everywhere (logs, reports, errors, admin)."""
    return "none" if key_id is None else f"{key_id:08x}"
