"""Reproductions from an outside review of issue 12 (a master key in a KMS or an HSM), each a
defect that was fixed: against moto's real KMS server, as the provider tests run.

Several processes are played in one by holding each one's master-key objects (what a process
keeps: its provider client and the integrity secret it learned) and swapping them in.
"""

import contextlib
import os
import signal
import threading
import time
import warnings

from django.db import transaction

from data_encryption import keys as key_ring_module
from data_encryption import master_key as master_key_module
from data_encryption.backups import read_backup, write_backup
from data_encryption.exceptions import MasterKeyProviderError
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
from .tcp_relay import TcpRelay
from .test_provider_master_keys import ProviderTestCase, kms_setting


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


def exits_within(pid, seconds):
    """Whether the forked child ``pid`` exits within ``seconds`` (else it is killed)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return False


@needs_kms
class ForkTests(ProviderTestCase):
    def test_a_child_forked_while_a_thread_waits_on_the_provider_can_use_the_master_key(self):
        # A prefork parent (Celery, a preloading server) forks while one of its threads learns
        # the integrity secret from a KMS that hangs: that thread holds the master key's lock.
        row = create_data_key("default", state=KeyState.PRIMARY)
        relay = TcpRelay(self.url)
        self.addCleanup(relay.close)
        setting = kms_setting(
            self.arn, relay.url, connect_timeout=0.5, read_timeout=2.0, max_attempts=1
        )
        (master,) = master_key_module.keys_of(setting, "DATA_ENCRYPTION_MASTER_KEY_PROVIDER")
        relay.blackhole()
        wraps = [(row.key_id, bytes(row.wrapped_key))]

        def learn():
            with contextlib.suppress(MasterKeyProviderError):  # (the KMS times out)
                master.learn_from(wraps)

        waiting = threading.Thread(target=learn)
        waiting.start()
        self.addCleanup(waiting.join)
        while master._lock.acquire(blocking=False):  # until the thread holds it
            master._lock.release()
            time.sleep(0.01)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # (3.12+: a fork with threads)
            pid = os.fork()
        if pid == 0:  # the child: takes the lock once, and never returns into the test runner
            try:
                master.learn_from([])
            finally:
                os._exit(0)
        self.assertTrue(
            exits_within(pid, 5.0), "the child waits forever on a lock its parent's thread held"
        )
