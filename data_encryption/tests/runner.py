"""The test runner: Django's, plus a scan of everything logged for key material.

Every log record of the run is captured (see ``settings.LOGGING``). After the suite, and before
the test databases are dropped, the runner collects every key the run used (the settings' keys
and every data key in the database, unwrapped) and fails the run if any of them appears in the
captured log text or in the failure reports, in raw, hex or base64 form. It ends by printing a
plain ``N passed, N failed`` line.
"""

import base64
import logging
import os
import shutil
import sys
import unittest

from django.conf import settings
from django.db import DatabaseError
from django.test.runner import DiscoverRunner


class CapturingHandler(logging.Handler):
    """Keeps the formatted text of every record (exception tracebacks included)."""

    records: list = []

    def emit(self, record):
        try:
            CapturingHandler.records.append(self.format(record))
        except Exception:  # a record that cannot be formatted is still a record
            CapturingHandler.records.append(repr(record.__dict__))


def material_forms(raw):
    """The ways key bytes could be written down: raw, hex, base64 (both alphabets)."""
    forms = {raw.hex(), raw.hex().upper()}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode()
        forms.update({text, text.rstrip("=")})
    forms.add(raw.decode("latin-1"))
    return forms


_seen_cipher_keys: list = []


def record_cipher_keys():
    """Remember every key any AeadCipher is built with during the run (data keys, wrapping keys,
    test vectors), so the scan covers keys made and rolled back inside tests. Behaviour is
    unchanged: the original constructor runs."""
    from data_encryption.ciphers import AeadCipher

    original = AeadCipher.__init__

    def recording_init(self, key):
        _seen_cipher_keys.append(bytes(key))
        original(self, key)

    AeadCipher.__init__ = recording_init


def known_key_material():
    """Every key this run used: the settings' keys, every cipher key, the database's keys."""
    from data_encryption.keys import unwrap_data_key
    from data_encryption.master_key import master_keys, parse_fernet_key
    from data_encryption.models import DataKey

    raws = list(_seen_cipher_keys)
    for name in ("DB_ENCRYPTION_KEY", "PAYLOAD_ENCRYPTION_KEY"):
        value = getattr(settings, name, None)
        if value:
            raws.append(parse_fernet_key(value, name))
    master_keys()  # raises early if the settings were left broken by a test
    try:
        rows = list(DataKey.objects.exclude(wrapped_key=None))
    except DatabaseError:  # only SimpleTestCases ran: no test database, so no data keys
        rows = []
    for row in rows:
        try:
            raws.append(unwrap_data_key(row))
        except Exception:  # a test may leave a key wrapped by a master key it since dropped
            continue
    forms = set()
    for raw in raws:
        forms |= material_forms(raw)
    return forms


def find_leaks(texts, forms):
    return sorted({form[:6] + "…" for text in texts for form in forms if form in text})


class LeakCheckingRunner(DiscoverRunner):
    def setup_test_environment(self, **kwargs):
        super().setup_test_environment(**kwargs)
        record_cipher_keys()

    def teardown_test_environment(self, **kwargs):
        super().teardown_test_environment(**kwargs)
        # The key backups the run wrote went to a temporary directory the settings made.
        directory = str(settings.ENCRYPTION_KEY_ROTATION["BACKUP_DIR"])
        if os.path.basename(directory).startswith("data-encryption-test-backups-"):
            shutil.rmtree(directory, ignore_errors=True)

    def run_suite(self, suite, **kwargs):
        result = super().run_suite(suite, **kwargs)
        forms = known_key_material()
        reports = [text for _test, text in result.errors + result.failures]
        leaks = find_leaks(CapturingHandler.records + reports, forms)
        if leaks:
            print(
                f"KEY MATERIAL LEAKED into logs or reports ({len(leaks)} forms, shown "
                f"truncated: {', '.join(leaks)})",
                file=sys.stderr,
            )
            result.errors.append((_LeakCheck(), "key material found in captured output"))
        print(
            f"key material scan: {len(CapturingHandler.records)} log records, "
            f"{len(forms)} key forms, {len(leaks)} leaks",
            file=sys.stderr,
        )
        failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
        passed = result.testsRun - len(result.failures) - len(result.errors) - len(result.skipped)
        print(f"{passed} passed, {failed} failed, {len(result.skipped)} skipped", file=sys.stderr)
        return result


class _LeakCheck(unittest.TestCase):
    def runTest(self):  # pragma: no cover - a placeholder name in the result
        pass

    def __str__(self):
        return "key material scan (data_encryption.tests.runner)"
