"""System checks: each id fires for its mistake, says what to do, and stays quiet otherwise."""

import os
import tempfile
from datetime import timedelta
from io import StringIO
from pathlib import Path
from unittest import skipUnless

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import SimpleTestCase, override_settings

from data_encryption.checks import (
    check_keys,
    check_notifier_class,
    check_payload_settings,
    check_rotation_settings,
    check_service_class,
)
from data_encryption.tests.utils import new_fernet_key


def ids(messages):
    return [message.id for message in messages]


class KeyCheckTests(SimpleTestCase):
    def test_valid_configuration_is_quiet(self):
        self.assertEqual(check_keys(), [])
        self.assertEqual(check_rotation_settings(), [])
        self.assertEqual(check_service_class(), [])

    def test_master_key_missing_or_malformed(self):
        with override_settings(DB_ENCRYPTION_KEY=None):
            self.assertEqual(ids(check_keys()), ["data_encryption.E001"])
        with override_settings(DB_ENCRYPTION_KEY="not-a-key"):
            errors = check_keys()
            self.assertEqual(ids(errors), ["data_encryption.E002"])
            self.assertIn("Fernet.generate_key()", errors[0].hint)
            self.assertNotIn("not-a-key", errors[0].msg + errors[0].hint)

    def test_payload_key_missing_or_malformed(self):
        with override_settings(PAYLOAD_ENCRYPTION_KEY=""):
            self.assertEqual(ids(check_keys()), ["data_encryption.E003"])
        with override_settings(PAYLOAD_ENCRYPTION_KEY="x" * 44):
            self.assertEqual(ids(check_keys()), ["data_encryption.E004"])

    def test_same_key_for_both_roles(self):
        key = new_fernet_key()
        with override_settings(DB_ENCRYPTION_KEY=key, PAYLOAD_ENCRYPTION_KEY=key.encode()):
            errors = check_keys()
            self.assertEqual(ids(errors), ["data_encryption.E005"])
            self.assertEqual(
                errors[0].msg, "DB_ENCRYPTION_KEY and PAYLOAD_ENCRYPTION_KEY are the same key."
            )

    def test_same_key_among_the_fallbacks(self):
        # The review's L2: E005 compared only the two current keys; a database key among the
        # payload fallbacks (or the reverse) went unreported.
        master, payload, shared = new_fernet_key(), new_fernet_key(), new_fernet_key()
        cases = (
            (
                {"PAYLOAD_ENCRYPTION_KEY_FALLBACKS": [new_fernet_key(), master]},
                ["DB_ENCRYPTION_KEY and PAYLOAD_ENCRYPTION_KEY_FALLBACKS[1] are the same key."],
            ),
            (
                {"DB_ENCRYPTION_KEY_FALLBACKS": [payload]},
                ["DB_ENCRYPTION_KEY_FALLBACKS[0] and PAYLOAD_ENCRYPTION_KEY are the same key."],
            ),
            (
                {
                    "DB_ENCRYPTION_KEY_FALLBACKS": [shared, "bad"],
                    "PAYLOAD_ENCRYPTION_KEY_FALLBACKS": [new_fernet_key(), shared.encode()],
                },
                [
                    "DB_ENCRYPTION_KEY_FALLBACKS[0] and PAYLOAD_ENCRYPTION_KEY_FALLBACKS[1] are "
                    "the same key."
                ],
            ),
        )
        for fallbacks, messages in cases:
            with (
                self.subTest(fallbacks=list(fallbacks)),
                override_settings(
                    DB_ENCRYPTION_KEY=master, PAYLOAD_ENCRYPTION_KEY=payload, **fallbacks
                ),
            ):
                errors = [e for e in check_keys() if e.id == "data_encryption.E005"]
                self.assertEqual([error.msg for error in errors], messages)
                for error in errors:
                    for key in (master, payload, shared):
                        self.assertNotIn(key, error.msg + error.hint)

    def test_malformed_fallbacks_are_named_by_index(self):
        with override_settings(DB_ENCRYPTION_KEY_FALLBACKS=[new_fernet_key(), "bad"]):
            errors = check_keys()
            self.assertEqual(ids(errors), ["data_encryption.E006"])
            self.assertIn("DB_ENCRYPTION_KEY_FALLBACKS[1]", errors[0].msg)
        with override_settings(PAYLOAD_ENCRYPTION_KEY_FALLBACKS=["bad"]):
            errors = check_keys()
            self.assertEqual(ids(errors), ["data_encryption.E007"])
            self.assertIn("PAYLOAD_ENCRYPTION_KEY_FALLBACKS[0]", errors[0].msg)
        with override_settings(DB_ENCRYPTION_KEY_FALLBACKS=new_fernet_key()):  # a str, not a list
            self.assertEqual(ids(check_keys()), ["data_encryption.E006"])


class PayloadSettingsCheckTests(SimpleTestCase):
    def test_payload_max_age_must_be_a_finite_number_above_zero(self):
        self.assertEqual(check_payload_settings(), [])  # the default: a day
        for good in (3600, 0.5, timedelta(days=7)):
            with self.subTest(value=good), override_settings(PAYLOAD_MAX_AGE_SECONDS=good):
                self.assertEqual(check_payload_settings(), [])
        for bad in (0, -1, float("nan"), float("inf"), "3600", None, True):
            with self.subTest(value=bad), override_settings(PAYLOAD_MAX_AGE_SECONDS=bad):
                errors = check_payload_settings()
                self.assertEqual(ids(errors), ["data_encryption.E030"])
                self.assertIn("PAYLOAD_MAX_AGE_SECONDS must be a", errors[0].msg)
                self.assertIn("86400 is a day", errors[0].hint)


class RotationSettingsCheckTests(SimpleTestCase):
    def rotation(self, **values):
        return override_settings(
            ENCRYPTION_KEY_ROTATION={**settings.ENCRYPTION_KEY_ROTATION, **values}
        )

    def test_unknown_key(self):
        with self.rotation(BACKUP_DIRECTORY="/tmp"):
            errors = check_rotation_settings()
            self.assertEqual(ids(errors), ["data_encryption.E008"])
            self.assertIn("'BACKUP_DIRECTORY'", errors[0].msg)
            self.assertIn("BACKUP_DIR", errors[0].hint)

    def test_schedule(self):
        for good in ("daily", "weekly", "monthly"):
            with self.rotation(KEY_ROTATION_SCHEDULE=good):
                self.assertEqual(check_rotation_settings(), [])
        with self.rotation(KEY_ROTATION_SCHEDULE="yearly"):
            errors = check_rotation_settings()
            self.assertEqual(ids(errors), ["data_encryption.E009"])
            self.assertEqual(errors[0].hint, "Use 'daily', 'weekly' or 'monthly'.")

    def test_not_a_dict_and_bad_values(self):
        # One id per fault: E014 is "not a dict"; each key has its own id for a value that
        # breaks its rule.
        with override_settings(ENCRYPTION_KEY_ROTATION=["monthly"]):
            self.assertEqual(ids(check_rotation_settings()), ["data_encryption.E014"])
        with self.rotation(BATCH_SIZE="1000"):
            self.assertEqual(ids(check_rotation_settings()), ["data_encryption.E018"])
        with self.rotation(BACKUP_FILENAME_FORMAT="keys.json"):
            self.assertEqual(ids(check_rotation_settings()), ["data_encryption.E016"])

    def test_each_rotation_key_has_its_own_check_id(self):
        bad = {
            "BACKUP_DIR": 7,
            "BACKUP_FILENAME_FORMAT": "a/{timestamp}",
            "KEY_ROTATION_SCHEDULE": "yearly",
            "MODELS": {"app.Model": "_ssn"},
            "BATCH_SIZE": 0,
            "KEY_CACHE_SECONDS": -1,
            "LOCK_TIMEOUT_SECONDS": 0,
            "RETENTION_DAYS": "30",
            "NOTIFY_SKIPPED": "yes",
            "CHUNK_ROWS": 0,
            "PRUNE_BACKUPS": "yes",
        }
        seen = set()
        for key, value in bad.items():
            with self.subTest(key=key), self.rotation(**{key: value}):
                errors = check_rotation_settings()
                self.assertEqual(len(errors), 1, errors)
                self.assertIn(repr(key), errors[0].msg)
                seen.add(errors[0].id)
        self.assertEqual(len(seen), len(bad))

    def test_the_code_applies_the_rule_the_check_reports(self):
        # BATCH_SIZE=0 used to pass the checks and fail only when a rotation ran; CHUNK_ROWS
        # was not checked at all (0 gave "OFFSET -1").
        from data_encryption.conf import encryption_settings

        for key, attribute in (("BATCH_SIZE", "batch_size"), ("CHUNK_ROWS", "chunk_rows")):
            with self.subTest(key=key), self.rotation(**{key: 0}):
                self.assertEqual(
                    [error.msg for error in check_rotation_settings()],
                    [
                        f"ENCRYPTION_KEY_ROTATION[{key!r}] must be a whole number of at least 1, "
                        "not 0."
                    ],
                )
                with self.assertRaisesMessage(ImproperlyConfigured, "at least 1, not 0."):
                    getattr(encryption_settings, attribute)
            with self.rotation(**{key: 250}):
                self.assertEqual(getattr(encryption_settings, attribute), 250)

    def test_backup_dir_readable_by_others(self):
        with tempfile.TemporaryDirectory() as directory:
            os.chmod(directory, 0o755)
            with self.rotation(BACKUP_DIR=directory):
                errors = check_rotation_settings()
                self.assertEqual(ids(errors), ["data_encryption.E010"])
                self.assertEqual(errors[0].hint, f"Run: chmod 700 {directory}")
            os.chmod(directory, 0o700)
            with self.rotation(BACKUP_DIR=Path(directory)):
                self.assertEqual(check_rotation_settings(), [])
            with self.rotation(BACKUP_DIR=Path(directory) / "not" / "yet"):
                self.assertEqual(check_rotation_settings(), [])  # created at first rotation

    def test_prune_backups_is_a_boolean_with_its_own_id(self):
        with self.rotation(PRUNE_BACKUPS=True):
            self.assertEqual(check_rotation_settings(), [])
        with self.rotation(PRUNE_BACKUPS="yes"):
            errors = check_rotation_settings()
            self.assertEqual(ids(errors), ["data_encryption.E026"])
            self.assertEqual(
                errors[0].msg,
                "ENCRYPTION_KEY_ROTATION['PRUNE_BACKUPS'] must be True or False, not 'yes'.",
            )

    @skipUnless(os.geteuid() == 0, "needs root to give a directory to another user")
    def test_backup_dir_owned_by_another_user(self):
        # (exp5_backups) A symlink to another user's 0700 directory passed the mode check.
        with tempfile.TemporaryDirectory() as directory:
            theirs = Path(directory) / "theirs"
            theirs.mkdir(mode=0o700)
            os.chown(theirs, 65534, 65534)
            link = Path(directory) / "keys"
            link.symlink_to(theirs)
            with self.rotation(BACKUP_DIR=link):
                errors = check_rotation_settings()
            self.assertEqual(ids(errors), ["data_encryption.E010"])
            self.assertEqual(
                errors[0].msg,
                f"BACKUP_DIR {link} is owned by uid 65534, not by the user this process runs as "
                "(uid 0).",
            )
            self.assertEqual(
                errors[0].hint, f"Run: chown 0 {link} (or use a directory that user owns)"
            )

    def test_backup_dir_not_writable(self):
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "file"
            path.write_text("")
            with self.rotation(BACKUP_DIR=path):
                self.assertEqual(ids(check_rotation_settings()), ["data_encryption.E011"])
            if os.geteuid() != 0:  # root can write anywhere
                os.chmod(directory, 0o500)
                with self.rotation(BACKUP_DIR=Path(directory) / "sub"):
                    self.assertEqual(ids(check_rotation_settings()), ["data_encryption.E011"])
                os.chmod(directory, 0o700)


class ServiceCheckTests(SimpleTestCase):
    def test_service_that_does_not_import(self):
        with override_settings(DATA_ENCRYPTION_SERVICE="yourapp.custom_rotation.Nope"):
            errors = check_service_class()
            self.assertEqual(ids(errors), ["data_encryption.E012"])
            self.assertIn("yourapp.custom_rotation.Nope", errors[0].msg)

    def test_notifier_that_is_not_a_notifier(self):
        with override_settings(DATA_ENCRYPTION_NOTIFIER="data_encryption.models.DataKey"):
            errors = check_notifier_class()
            self.assertEqual(ids(errors), ["data_encryption.E024"])
            self.assertIn("is not a subclass of", errors[0].msg)
        with override_settings(DATA_ENCRYPTION_NOTIFIER="yourapp.nope.Notifier"):
            self.assertEqual(ids(check_notifier_class()), ["data_encryption.E024"])
        self.assertEqual(check_notifier_class(), [])


class CheckCommandTests(SimpleTestCase):
    def test_manage_py_check_is_clean_and_runs_our_checks(self):
        call_command("check", stdout=StringIO())  # raises SystemCheckError on any error
        with override_settings(DB_ENCRYPTION_KEY=None):
            from django.core.management.base import SystemCheckError

            with self.assertRaisesMessage(SystemCheckError, "data_encryption.E001"):
                call_command("check", stdout=StringIO())
