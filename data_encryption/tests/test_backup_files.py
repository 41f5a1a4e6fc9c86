"""Key backup files on disk: written whole or not at all and verified before any key changes,
in a directory private to this user (review finding L5)."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.test import TestCase, TransactionTestCase, override_settings
from django.utils import timezone

from data_encryption.backups import backup_document
from data_encryption.keys import reset_key_ring
from data_encryption.master_key import master_keys
from data_encryption.models import DataKey, KeyState, RotationRun
from data_encryption.services import KeyRotationService
from data_encryption.tests.processes import child_environment
from data_encryption.tests.testapp.models import Customer
from data_encryption.tests.utils import FAST, FreshKeyRingMixin, make_customers, raw

# A rotation in a process whose files may not grow past a limit (RLIMIT_FSIZE) that the key
# backup needs but the database does not: a full disk, as far as the backup can tell.
FULL_DISK_ROTATION = """
import json, resource, signal, sys
import django
django.setup()
from data_encryption.services import KeyRotationService
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a short write, then EFBIG: not a killed process
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), hard))
print(json.dumps(KeyRotationService().rotate(), default=str))
"""


def add_filler_keys(count=3000):
    """Enough decrypt-only keys that a key backup outgrows what the database itself writes."""
    master = master_keys()[0]
    DataKey.objects.bulk_create(
        DataKey(
            key_id=key_id,
            state=KeyState.DECRYPT_ONLY,
            wrapped_key=master.wrap(key_id, os.urandom(32)),
            master_key_fingerprint=master.fingerprint,
            created_at=timezone.now(),
        )
        for key_id in range(1000, 1000 + count)
    )


def database_file_size():
    """The SQLite file's size once compacted (earlier tests leave free pages behind); 0 for a
    server database, whose files this process does not write."""
    if connection.vendor != "sqlite":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("VACUUM")
    return os.path.getsize(connection.settings_dict["NAME"])


def rotate_on_a_full_disk(case, limit, directory):
    """Run a rotation in a child process whose files may not grow past ``limit`` bytes, with
    ``directory`` as BACKUP_DIR; return its report."""
    env = {**child_environment(), "DATA_ENCRYPTION_TEST_BACKUP_DIR": directory}
    child = subprocess.run(
        [sys.executable, "-c", FULL_DISK_ROTATION, str(limit)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    case.assertEqual(child.returncode, 0, child.stderr)
    return json.loads(child.stdout.splitlines()[-1])


class FullDiskTests(FreshKeyRingMixin, TransactionTestCase):
    def setUp(self):
        super().setUp()
        if connection.vendor == "sqlite" and ":memory:" in str(connection.settings_dict["NAME"]):
            self.skipTest("needs a file database that other processes can open")

    def test_a_full_disk_fails_the_rotation_before_activation(self):
        # (exp14_shortwrite) "write_backup returned a 2048-byte file with no error", and the
        # rotation went on with a truncated backup.
        make_customers(3)
        add_filler_keys()
        values, keys = raw(Customer, "_ssn"), set(DataKey.objects.values_list("key_id", "state"))
        # Room for the database's own writes and its journal, not for the backup.
        limit = database_file_size() + 256 * 1024
        backup = backup_document(DataKey.objects.all(), now=timezone.now())
        self.assertGreater(len(json.dumps(backup, indent=2)), limit + 64 * 1024)
        directory = tempfile.mkdtemp(prefix="full-disk-")
        report = rotate_on_a_full_disk(self, limit, directory)
        self.assertEqual(report["status"], "failed")
        self.assertIn("Could not write the key backup", report["reason"])
        self.assertIn("File too large", report["reason"])
        run = RotationRun.objects.get()
        self.assertEqual(run.phase, "backup")  # never reached activation
        self.assertIsNone(run.new_wrapped_key)
        self.assertEqual(os.listdir(directory), [])  # no truncated file, no temporary one
        reset_key_ring()
        self.assertEqual(set(DataKey.objects.values_list("key_id", "state")), keys)
        self.assertEqual(raw(Customer, "_ssn"), values)


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class BackupDirectoryTests(FreshKeyRingMixin, TestCase):
    def rotate_into(self, directory):
        rotation = {**settings.ENCRYPTION_KEY_ROTATION, "BACKUP_DIR": directory}
        with override_settings(ENCRYPTION_KEY_ROTATION=rotation):
            return KeyRotationService().rotate()

    def test_created_directories_are_0700_whatever_the_umask(self):
        # (exp5_backups) parent directories were created under the umask: 0777 at umask 000.
        make_customers(1)
        base = Path(tempfile.mkdtemp())
        old_umask = os.umask(0)
        try:
            report = self.rotate_into(base / "common" / "backups" / "keys")
        finally:
            os.umask(old_umask)
        self.assertEqual(report["status"], "completed", report.get("reason"))
        for directory in ("common", "common/backups", "common/backups/keys"):
            mode = (base / directory).stat().st_mode & 0o777
            self.assertEqual(mode, 0o700, f"{directory}: {mode:04o}")
        self.assertEqual(Path(report["key_backup_path"]).stat().st_mode & 0o777, 0o600)

    def test_a_directory_owned_by_another_user_stops_the_rotation_before_any_change(self):
        # (exp5_backups) "a symlink to a uid-65534 directory was accepted".
        if os.geteuid() != 0:
            self.skipTest("needs root to give a directory to another user")
        make_customers(2)
        before = raw(Customer, "_ssn")
        base = Path(tempfile.mkdtemp())
        theirs = base / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, 65534, 65534)
        (base / "keys").symlink_to(theirs)
        report = self.rotate_into(base / "keys")
        self.assertEqual(report["status"], "failed")
        self.assertIn("is owned by uid 65534", report["reason"])
        self.assertEqual(raw(Customer, "_ssn"), before)
        self.assertEqual(list(theirs.iterdir()), [])
