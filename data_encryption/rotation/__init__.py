"""The rotation wing: a new data key, every encrypted value moved onto it, old keys retired once
a census proves them unused. ``Rotation`` (in ``protocol``) runs the steps; each other module is
one step or one concept. docs/rotation.md describes the protocol."""

from .batch import Batch, examine_rows
from .census import LEGACY, MALFORMED, NULL, UNENCRYPTED, Census, census_label, census_totals
from .ledger import HEARTBEAT_SECONDS, RUN_COUNTERS, LockLost, RunLedger, holder_is_alive
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
    "RunLedger",
    "Table",
    "census_label",
    "census_totals",
    "chunk_bounds",
    "count_rows",
    "discover_models",
    "examine_rows",
    "holder_is_alive",
    "read_rows",
    "resolve_tables",
    "write_rows",
]
