"""A rotation's new data key from its making to its activation.

It is made and wrapped first and kept on the run row (``new_wrapped_key``) only until it is
activated, so the key backup can hold it and a crash before activation does not make a second
one. Activation inserts its DataKey row and forgets the run's copy in the same transaction: from
then on the key exists in one place in the database. A pending key wrapped before a master-key
change is re-wrapped under the current master key first.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from django.db import transaction

from ..backups import write_backup
from ..keys import PendingKey, create_data_key, generate_wrapped_key
from ..master_key import master_keys, rewrapped_for
from ..models import DataKey, KeyState, RotationRun
from .census import undestroyed_key_ids
from .ledger import RunLedger

logger = logging.getLogger(__name__)


def pending_key(run: RotationRun) -> PendingKey:
    """The run's new key as its backup step made it (wrapped; not yet a ``DataKey``)."""
    assert run.new_key_id is not None and run.new_wrapped_key is not None
    return PendingKey(run.new_key_id, bytes(run.new_wrapped_key), run.new_key_fingerprint)


def rewrapped_pending(pending: PendingKey) -> PendingKey:
    """``pending`` wrapped by the current master key (itself when it already is): a pending key
    made before ``rewrap_data_keys`` must not become a DataKey under the old master key."""
    current = master_keys()[0]
    key_id, wrapped = pending.key_id, pending.wrapped_key
    rewrapped = rewrapped_for(current, key_id, wrapped, pending.master_key_fingerprint)
    return pending if rewrapped is None else PendingKey(key_id, rewrapped, current.fingerprint)


def back_up_new_key(ledger: RunLedger, run: RotationRun, *, now: datetime) -> Path:
    """Make the run's new key (once; a resumed run keeps its own), then write and verify the
    key backup holding it; the run moves on to ``activate``. Nothing else has changed yet."""
    if run.new_key_id is None:
        pending = generate_wrapped_key(ledger.using)
        ledger.update(
            run,
            new_key_id=pending.key_id,
            new_wrapped_key=pending.wrapped_key,
            new_key_fingerprint=pending.master_key_fingerprint,
            old_key_ids=undestroyed_key_ids(ledger.using),
        )
    path = write_backup(now=now, pending=pending_key(run), using=ledger.using)
    ledger.update(run, key_backup_path=str(path), phase="activate")
    logger.info("Rotation %s: key backup written to %s.", run.pk, path)
    return path


def activate_new_key(ledger: RunLedger, run: RotationRun, *, now: datetime) -> None:
    """Make the pending key primary and forget the run's copy of it, in one transaction."""
    using = ledger.using
    assert run.new_key_id is not None  # set by back_up_new_key, in the same run
    with transaction.atomic(using=using):
        ledger.heartbeat(run)  # write first: SQLite then takes its write lock up front
        # rewrap_data_keys may have re-wrapped the pending key since this process read it.
        run.refresh_from_db(using=using, fields=["new_wrapped_key", "new_key_fingerprint"])
        keys = DataKey.objects.using(using)
        if not keys.filter(key_id=run.new_key_id).exists():
            for old in keys.select_for_update().filter(state=KeyState.PRIMARY):
                old.state, old.decrypt_only_since = KeyState.DECRYPT_ONLY, now
                old.save(using=using)  # a save, so DataKey.save() sees every change
            pending = rewrapped_pending(pending_key(run))
            create_data_key(using, state=KeyState.PRIMARY, now=now, pending=pending)
        ledger.update(run, phase="wait", new_wrapped_key=None)


def forget_activated_copy(ledger: RunLedger, run: RotationRun) -> None:
    """A run resumed past activation that still holds its key's copy (one left running by a
    release before this one) forgets it."""
    if run.phase not in ("backup", "activate") and run.new_wrapped_key is not None:
        ledger.update(run, new_wrapped_key=None)


def rewrap_stalled_pending(run: RotationRun | None, using: str) -> int | None:
    """Re-wrap the pending key of a run a dead process left (``rotation_lock`` yields it) under
    the current master key; its id when it was re-wrapped, else ``None``."""
    if run is None or run.new_wrapped_key is None:
        return None
    pending = pending_key(run)
    current = rewrapped_pending(pending)
    if current is pending:
        return None
    RotationRun.objects.using(using).filter(pk=run.pk).update(
        new_wrapped_key=current.wrapped_key, new_key_fingerprint=current.master_key_fingerprint
    )
    return current.key_id
