"""The rotation wing: a new data key, every encrypted value moved onto it, old keys retired once
a census proves them unused. ``Rotation`` (in ``protocol``) runs the steps; each other module is
one step or one concept. docs/rotation.md describes the protocol."""

from .batch import Batch, examine_rows
from .census import LEGACY, MALFORMED, NULL, UNENCRYPTED, Census, census_label, census_totals
from .ledger import HEARTBEAT_SECONDS, RUN_COUNTERS, RunLedger
from .lock import LockLost, RotationRunning, holder_is_alive, rotation_lock
from .new_key import pending_key, rewrap_stalled_pending, rewrapped_pending
from .progress import Progress
from .protocol import Rotation
from .report import MAX_FAILURES_IN_REPORT, Notification, ReportedFailure, RotationReport
from .rows import chunk_bounds, count_rows, read_rows, write_rows
from .tables import ModelConfiguration, Table, discover_models, resolve_tables

__all__ = [
    "HEARTBEAT_SECONDS",
    "LEGACY",
    "MALFORMED",
    "MAX_FAILURES_IN_REPORT",
    "NULL",
    "RUN_COUNTERS",
    "UNENCRYPTED",
    "Batch",
    "Census",
    "LockLost",
    "ModelConfiguration",
    "Notification",
    "Progress",
    "ReportedFailure",
    "Rotation",
    "RotationReport",
    "RotationRunning",
    "RunLedger",
    "Table",
    "census_label",
    "census_totals",
    "chunk_bounds",
    "count_rows",
    "discover_models",
    "examine_rows",
    "holder_is_alive",
    "pending_key",
    "read_rows",
    "resolve_tables",
    "rewrap_stalled_pending",
    "rewrapped_pending",
    "rotation_lock",
    "write_rows",
]
