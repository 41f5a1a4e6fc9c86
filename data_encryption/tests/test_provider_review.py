"""Reproductions from an outside review of issue 12 (a master key in a KMS or an HSM), each a
defect that was fixed: against moto's real KMS server, as the provider tests run.

Several processes are played in one by holding each one's master-key objects (what a process
keeps: its provider client and the integrity secret it learned) and swapping them in.
"""

import contextlib

from django.db import transaction

from data_encryption import keys as key_ring_module
from data_encryption import master_key as master_key_module
from data_encryption.backups import read_backup, write_backup
from data_encryption.index_keys import load_index_key_ring, reset_index_key_ring, rewrap_index_keys
from data_encryption.key_audit import Metadata, metadata_verdict
from data_encryption.keys import (
    create_data_key,
    generate_wrapped_key,
    rewrap_data_keys,
    warm_up_key_ring,
)
from data_encryption.models import DataKey, IndexKey, KeyState

from .kms_server import needs_kms
from .provider_moves import backup_settings
from .test_provider_master_keys import ProviderTestCase


class Rollback(Exception):
    pass


@contextlib.contextmanager
def process(keys):
    """Run the block as the process whose master-key objects are ``keys``: its own learned
    secrets, a key ring loaded afresh from the table."""
    master_key_module._master_keys = keys
    key_ring_module.ring_cache.ring = None
    reset_index_key_ring()
    try:
        yield
    finally:
        key_ring_module.ring_cache.ring = None


def new_process():
    """The master-key objects of a process that starts now (nothing learned)."""
    return master_key_module.configured_master_keys()


@needs_kms
class IntegritySecretTests(ProviderTestCase):
    @backup_settings()
    def test_a_first_key_rolled_back_leaves_no_secret_that_only_this_process_knows(self):
        # Process P makes the first key inside a transaction that rolls back (a failed request
        # on a fresh install). Meanwhile process Q makes the first key and commits.
        p_keys, q_keys = new_process(), new_process()
        with process(p_keys), contextlib.suppress(Rollback), transaction.atomic():
            warm_up_key_ring()
            self.assertEqual(DataKey.objects.count(), 1)
            raise Rollback
        self.assertEqual(DataKey.objects.count(), 0)
        with process(q_keys):
            warm_up_key_ring()
        # Later P makes a key (a rotation's) and writes a key backup.
        with process(p_keys):
            warm_up_key_ring()
            made = create_data_key("default", state=KeyState.DECRYPT_ONLY)
            path = write_backup()
        # A process that starts now verifies every row's metadata before it unwraps them...
        with process(new_process()):
            verdicts = {row.key_id: metadata_verdict(row) for row in DataKey.objects.all()}
            self.assertEqual(verdicts[made.key_id], Metadata.VERIFIED)
        # ...re-wraps them (a master-key move checks every row's metadata first)...
        with process(new_process()):
            rewrap_data_keys()
        # ...and opens P's backup, as a restore into an empty key table does.
        with process(new_process()):
            self.assertEqual(len(read_backup(path)), 2)

    @backup_settings()
    def test_first_keys_made_by_two_processes_at_once_verify_everywhere(self):
        # A wraps the first data key while the table is empty (so with a secret of its own);
        # before A's row is stored, B makes the first index key with another secret of its own.
        a_keys, b_keys = new_process(), new_process()
        with process(a_keys):
            pending = generate_wrapped_key("default")
        with process(b_keys):
            load_index_key_ring()
        with process(a_keys):
            create_data_key("default", state=KeyState.PRIMARY, pending=pending)
            path = write_backup()
        rows = [*DataKey.objects.all(), *IndexKey.objects.all()]
        self.assertEqual(len(rows), 2)
        with process(new_process()):
            verdicts = {row.key_id: metadata_verdict(row) for row in rows}
            self.assertEqual(set(verdicts.values()), {Metadata.VERIFIED}, verdicts)
        with process(new_process()):
            rewrap_data_keys()
            rewrap_index_keys()
        with process(new_process()):
            self.assertEqual(len(read_backup(path)), 1)
