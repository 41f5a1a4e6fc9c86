"""The settings object: defaults, one rule per rotation option applied at run time, and the one
loader behind every dotted-path extension point."""

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase, override_settings

from data_encryption.checks import check_master_key_provider
from data_encryption.conf import (
    ROTATION_DEFAULTS,
    ROTATION_OPTIONS,
    encryption_settings,
    load_class,
)
from data_encryption.master_key import MasterKey, get_provider_class, master_keys
from data_encryption.notifications import EncryptionKeyRotationNotifier, get_notifier
from data_encryption.services import KeyRotationService, get_rotation_service_class


class Elsewhere(EncryptionKeyRotationNotifier):
    pass


class KeysFromElsewhere:
    """A provider in the shape the seam asks for, inheriting nothing."""

    def master_keys(self):
        return [MasterKey(settings.DB_ENCRYPTION_KEY, "somewhere else")]


class RotationOptionTests(SimpleTestCase):
    def test_defaults_when_unset(self):
        with override_settings(ENCRYPTION_KEY_ROTATION=None):
            self.assertEqual(encryption_settings.batch_size, 5000)
            self.assertEqual(encryption_settings.chunk_rows, 100_000)
            self.assertEqual(encryption_settings.key_cache_seconds, 60.0)
            self.assertEqual(encryption_settings.lock_timeout_seconds, 3600.0)
            self.assertEqual(encryption_settings.retention_days, 30.0)
            self.assertEqual(encryption_settings.rotation_schedule, "monthly")
            self.assertEqual(encryption_settings.rotation_models, {})
            self.assertIs(encryption_settings.notify_skipped, False)
            self.assertIsNone(encryption_settings.backup_dir)
            self.assertEqual(
                encryption_settings.backup_filename_format, "encryption_key_{timestamp}.json"
            )

    def test_every_option_has_a_default_a_rule_and_its_own_id(self):
        self.assertEqual(set(ROTATION_DEFAULTS), set(ROTATION_OPTIONS))
        ids = [option.check_id for option in ROTATION_OPTIONS.values()]
        self.assertEqual(len(ids), len(set(ids)))
        for option in ROTATION_OPTIONS.values():
            with self.subTest(key=option.key):
                self.assertIsNone(option.problem(option.default))

    def test_configured_values_are_typed(self):
        configured = {
            **settings.ENCRYPTION_KEY_ROTATION,
            "BACKUP_DIR": "/tmp/keys",
            "MODELS": {"app.Model": ("_ssn",)},
            "RETENTION_DAYS": 0,
        }
        with override_settings(ENCRYPTION_KEY_ROTATION=configured):
            self.assertEqual(encryption_settings.backup_dir, Path("/tmp/keys"))
            self.assertEqual(encryption_settings.rotation_models, {"app.Model": ["_ssn"]})
            self.assertEqual(encryption_settings.retention_days, 0.0)

    def test_a_bad_value_is_refused_where_it_is_used_with_what_to_do(self):
        with override_settings(ENCRYPTION_KEY_ROTATION={"LOCK_TIMEOUT_SECONDS": 0}):
            with self.assertRaisesMessage(
                ImproperlyConfigured,
                "ENCRYPTION_KEY_ROTATION['LOCK_TIMEOUT_SECONDS'] must be a number of seconds "
                "greater than 0, not 0. The default is 3600.",
            ):
                _ = encryption_settings.lock_timeout_seconds
        with override_settings(ENCRYPTION_KEY_ROTATION=["monthly"]):
            with self.assertRaisesMessage(ImproperlyConfigured, "must be a dict"):
                _ = encryption_settings.batch_size

    def test_fallbacks_must_be_lists(self):
        with override_settings(DB_ENCRYPTION_KEY_FALLBACKS="a-key"):
            with self.assertRaisesMessage(ImproperlyConfigured, "must be a list of keys"):
                _ = encryption_settings.master_key_fallbacks


class EmailSettingsTests(SimpleTestCase):
    @override_settings(EMAIL_SECURITY="sec@example.com", EMAIL_FROM_ALERTS=None)
    def test_one_address_becomes_a_list_and_the_sender_defaults(self):
        self.assertEqual(encryption_settings.email_security, ["sec@example.com"])
        self.assertEqual(encryption_settings.email_from_alerts, settings.DEFAULT_FROM_EMAIL)

    @override_settings(EMAIL_SECURITY=None)
    def test_missing_security_address_says_what_to_set(self):
        with self.assertRaisesMessage(ImproperlyConfigured, "EMAIL_SECURITY is not set"):
            _ = encryption_settings.email_security


class LoadClassTests(SimpleTestCase):
    def test_loads_a_subclass(self):
        path = "data_encryption.tests.test_conf.Elsewhere"
        loaded = load_class("DATA_ENCRYPTION_NOTIFIER", path, EncryptionKeyRotationNotifier)
        self.assertIs(loaded, Elsewhere)

    def test_refuses_a_path_that_does_not_import_or_the_wrong_class(self):
        with self.assertRaisesMessage(
            ImproperlyConfigured, "DATA_ENCRYPTION_SERVICE 'nowhere.Nope' does not import"
        ):
            load_class("DATA_ENCRYPTION_SERVICE", "nowhere.Nope", KeyRotationService)
        with self.assertRaisesMessage(
            ImproperlyConfigured,
            "DATA_ENCRYPTION_SERVICE 'data_encryption.tests.test_conf.Elsewhere' is not a "
            "subclass of data_encryption.services.KeyRotationService.",
        ):
            load_class(
                "DATA_ENCRYPTION_SERVICE",
                "data_encryption.tests.test_conf.Elsewhere",
                KeyRotationService,
            )

    def test_the_extension_points_use_it(self):
        with override_settings(
            DATA_ENCRYPTION_NOTIFIER="data_encryption.tests.test_conf.Elsewhere"
        ):
            self.assertIsInstance(get_notifier(), Elsewhere)
        with override_settings(DATA_ENCRYPTION_NOTIFIER="data_encryption.models.DataKey"):
            with self.assertRaisesMessage(ImproperlyConfigured, "is not a subclass of"):
                get_notifier()
        with override_settings(DATA_ENCRYPTION_SERVICE="data_encryption.models.DataKey"):
            with self.assertRaisesMessage(ImproperlyConfigured, "is not a subclass of"):
                get_rotation_service_class()

    def test_the_master_key_provider_uses_it(self):
        path = "data_encryption.tests.test_conf.KeysFromElsewhere"
        with override_settings(DATA_ENCRYPTION_MASTER_KEY_PROVIDER=path):
            self.assertIs(get_provider_class(), KeysFromElsewhere)
            self.assertEqual(check_master_key_provider(), [])
            self.assertEqual([key.setting for key in master_keys()], ["somewhere else"])
        # The path the README named before the master key had its own module.
        old_path = "data_encryption.keys.SettingsMasterKeyProvider"
        with override_settings(DATA_ENCRYPTION_MASTER_KEY_PROVIDER=old_path):
            self.assertEqual(check_master_key_provider(), [])
            self.assertEqual(master_keys()[0].setting, "DB_ENCRYPTION_KEY")
        with override_settings(
            DATA_ENCRYPTION_MASTER_KEY_PROVIDER="data_encryption.models.DataKey"
        ):
            with self.assertRaisesMessage(ImproperlyConfigured, "is not a subclass of"):
                master_keys()
            self.assertEqual(
                [error.id for error in check_master_key_provider()], ["data_encryption.E025"]
            )
