"""System checks: the configuration mistakes we can see before any data is touched.

Ids are stable; each message says what is wrong and each hint what to do. Catalogue:

- E001 ``DB_ENCRYPTION_KEY`` is missing.           - E002 ``DB_ENCRYPTION_KEY`` is malformed.
- E003 ``PAYLOAD_ENCRYPTION_KEY`` is missing.      - E004 ``PAYLOAD_ENCRYPTION_KEY`` is malformed.
- E005 a key is used for both roles (any of ``DB_ENCRYPTION_KEY`` and its fallbacks is also one
  of ``PAYLOAD_ENCRYPTION_KEY`` and its fallbacks; the colliding entries are named).
- E006 an entry of ``DB_ENCRYPTION_KEY_FALLBACKS`` is malformed (its index is named).
- E007 an entry of ``PAYLOAD_ENCRYPTION_KEY_FALLBACKS`` is malformed.
- E008 ``ENCRYPTION_KEY_ROTATION`` has an unknown key.
- E009 ``KEY_ROTATION_SCHEDULE`` is not daily, weekly or monthly.
- E010 ``BACKUP_DIR`` is not private: owned by another user, or open to group or others.
- E011 ``BACKUP_DIR`` is not writable (or cannot be created).
- E012 ``DATA_ENCRYPTION_SERVICE`` does not import.
- E013 an index, unique constraint or unique_together includes an encrypted field (reported by
  the field itself).
- E014 ``ENCRYPTION_KEY_ROTATION`` is not a dict.
- E015 to E023: one ``ENCRYPTION_KEY_ROTATION`` key breaks its rule (the id is the key's, in
  ``conf.ROTATION_OPTIONS``; E009 is the schedule's): E015 ``BACKUP_DIR``, E016
  ``BACKUP_FILENAME_FORMAT``, E017 ``MODELS``, E018 ``BATCH_SIZE``, E019 ``KEY_CACHE_SECONDS``,
  E020 ``LOCK_TIMEOUT_SECONDS``, E021 ``RETENTION_DAYS``, E022 ``NOTIFY_SKIPPED``, E023
  ``CHUNK_ROWS``.
- E024 ``DATA_ENCRYPTION_NOTIFIER`` does not import or is not a notifier.
- E025 ``DATA_ENCRYPTION_MASTER_KEY_PROVIDER`` is malformed, does not import, or names neither a
  ``master_keys.Provider`` nor a class with ``master_keys()`` (E001 is not raised when it is set).
- E026 ``ENCRYPTION_KEY_ROTATION["PRUNE_BACKUPS"]`` is not True or False.
- E027 data keys no configured master key unwraps (database check, ``key_table``).
- E028 ``ENCRYPTION_KEY_ROTATION["ACCEPT_LEGACY_TOKENS"]`` is not True or False.
- E029 ``bind_to_pk=True`` on a model whose primary key the database assigns (by the field).
- E030 ``PAYLOAD_MAX_AGE_SECONDS`` is not a finite number of seconds greater than 0.
- E031 data keys whose metadata is not authenticated (database check, ``key_table``).
- E032 data keys whose metadata does not verify: edited outside the app (``key_table``).
- E033 an entry of ``DATA_ENCRYPTION_LEGACY_COLUMNS`` is wrong: not a dict, an unknown column, a
  column that is neither an encrypted field nor a raw column of ``MODELS``, a reader that does
  not load, bad options or missing key settings (``legacy_columns``).
- E034 an admin's ``search_fields`` searches an encrypted field with a lookup it refuses
  (``"ssn"``, an ``icontains``; ``"=ssn"`` is answered by a blind index) (``admin_search``).
- E035 blind-index keys no configured master key unwraps (database check, ``key_table``).
- E036 blind-index keys whose metadata does not verify or is not authenticated (``key_table``).
- E037 a blind index's normaliser is a function migrations cannot refer to (a lambda, a nested
  function; by the field).
- E038 ``ROTATE_INDEX_KEYS`` is not a bool (``rotation_settings``).
- E039 data keys or blind-index keys a master-key provider (KMS, HSM) failed to unwrap: its
  error, per distinct failure (database check, ``key_table``).
- E040 (``--deploy``) a configured master-key provider fails its round trip
  (``master_key_providers``).
- E041 an entry of ``DATA_ENCRYPTION_MASTER_KEY_FALLBACKS`` names no usable provider.
- W001 the primary data key is older than ``KEY_ROTATION_SCHEDULE`` allows (database check).
- W003 the primary data key is not the newest key: pinned by hand (``key_table``).
- W004 the last completed rotation's census found no legacy Fernet value, but
  ``ACCEPT_LEGACY_TOKENS`` is still on (database check).
- W006 ``DB_ENCRYPTION_KEY`` is set while a provider is the master key: it only unwraps.
- W005 a column in ``DATA_ENCRYPTION_LEGACY_COLUMNS`` whose last census found no legacy value
  left: the transition is over (database check, ``transition``).
"""

from __future__ import annotations

# Importing the modules registers their checks with Django.
from .admin_search import check_admin_search_fields
from .database import check_legacy_tokens_still_accepted, check_rotation_overdue
from .extension_points import check_master_key_provider, check_notifier_class, check_service_class
from .key_settings import check_keys, check_payload_settings
from .key_table import check_data_keys, check_index_keys
from .legacy_columns import check_legacy_columns
from .master_key_providers import (
    check_local_key_beside_provider,
    check_provider_fallbacks,
    check_provider_round_trip,
)
from .rotation_settings import check_rotation_settings
from .transition import check_transition_over

__all__ = [
    "check_admin_search_fields",
    "check_data_keys",
    "check_index_keys",
    "check_keys",
    "check_legacy_columns",
    "check_legacy_tokens_still_accepted",
    "check_local_key_beside_provider",
    "check_master_key_provider",
    "check_notifier_class",
    "check_payload_settings",
    "check_provider_fallbacks",
    "check_provider_round_trip",
    "check_rotation_overdue",
    "check_rotation_settings",
    "check_service_class",
    "check_transition_over",
]
