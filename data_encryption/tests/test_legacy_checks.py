"""The check of DATA_ENCRYPTION_LEGACY_COLUMNS (E033): every wrong entry is named, with what to
do, and no option's value is shown."""

from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase, override_settings

from data_encryption.checks.legacy_columns import check_legacy_columns
from data_encryption.legacy import LegacyReader
from data_encryption.tests.utils import new_fernet_key

SETTING = "DATA_ENCRYPTION_LEGACY_COLUMNS"
EMF = "django-encrypted-model-fields"


def errors_for(columns):
    with override_settings(DATA_ENCRYPTION_LEGACY_COLUMNS=columns):
        return check_legacy_columns()


class LegacyColumnsCheckTests(SimpleTestCase):
    def test_correct_entries_pass(self):
        columns = {
            "data_encryption_tests.Patient.visits": "plaintext",
            "data_encryption_tests.patient.notes": {"READER": EMF},
            "data_encryption_tests.Patient.seen_at": {
                "READER": "data_encryption.legacy.plaintext.PlaintextReader"
            },
            # A raw column of ENCRYPTION_KEY_ROTATION["MODELS"] (the property pattern).
            "data_encryption_tests.Customer._ssn": "django-cryptography",
        }
        self.assertEqual(errors_for(columns), [])
        with override_settings(DATA_ENCRYPTION_LEGACY_COLUMNS=columns):
            self.assertEqual([e for e in run_checks() if e.id == "data_encryption.E033"], [])

    def test_each_wrong_entry_is_named(self):
        secret = new_fernet_key()
        cases = [
            ({"data_encryption_tests.Nobody.x": "plaintext"}, "not a field of an installed model"),
            ({"data_encryption_tests.Patient.nothing": "plaintext"}, "not a field of an installed"),
            ({"data_encryption_tests.Patient.name": "plaintext"}, "neither an encrypted field"),
            ({"data_encryption_tests.Patient.visits": "no.such.Reader"}, "does not import"),
            (
                {
                    "data_encryption_tests.Patient.visits": (
                        "data_encryption.fields.EncryptedCharField"
                    )
                },
                "is not a subclass of",
            ),
            ({"data_encryption_tests.Patient.visits": {"OPTIONS": {}}}, "a reader is a name"),
            (
                {
                    "data_encryption_tests.Patient.visits": {
                        "READER": "plaintext",
                        "OPTIONS": {"KEY": secret},
                    }
                },
                "has no option KEY",
            ),
            (
                {
                    "data_encryption_tests.Patient.visits": {
                        "READER": EMF,
                        "OPTIONS": {"FIELD_ENCRYPTION_KEY": secret[:-4]},
                    }
                },
                "FIELD_ENCRYPTION_KEY is not a Fernet key",
            ),
            (
                {
                    "data_encryption_tests.Patient.visits": {
                        "READER": EMF,
                        "OPTIONS": {"FIELD_ENCRYPTION_KEY": None},
                    }
                },
                "needs FIELD_ENCRYPTION_KEY",
            ),
        ]
        for columns, says in cases:
            label = next(iter(columns))
            with self.subTest(says=says):
                [error] = errors_for(columns)
                self.assertEqual(error.id, "data_encryption.E033")
                self.assertTrue(error.msg.startswith(f"{SETTING}[{label!r}]: "), error.msg)
                self.assertIn(says, error.msg)
                self.assertNotIn(secret[:-4], error.msg + str(error.hint))
                self.assertTrue(error.hint)

    def test_not_a_dict(self):
        [error] = errors_for(["data_encryption_tests.Patient.visits"])
        self.assertEqual(error.id, "data_encryption.E033")
        self.assertIn(f"{SETTING} must be a dict", error.msg)

    @override_settings(SALT_KEY=None)
    def test_missing_key_settings_of_the_old_library(self):
        [error] = errors_for(
            {"data_encryption_tests.Patient.notes": "django-fernet-encrypted-fields"}
        )
        self.assertIn("SALT_KEY must be a non-empty string", error.msg)

    def test_a_custom_readers_error_that_repeats_an_option_is_not_shown(self):
        columns = {
            "data_encryption_tests.Patient.visits": {
                "READER": "data_encryption.tests.test_legacy_checks.TalkativeReader",
                "OPTIONS": {"TOKEN": "a-secret-option-value"},
            }
        }
        [error] = errors_for(columns)
        self.assertIn("its reader refused its OPTIONS", error.msg)
        self.assertNotIn("a-secret-option-value", error.msg)


class TalkativeReader(LegacyReader):
    """A user's reader whose error quotes its option, as a careless one might."""

    name = "talkative"
    option_names = frozenset({"TOKEN"})

    def __init__(self, **options):
        super().__init__(**options)
        raise ImproperlyConfigured(f"TOKEN {options['TOKEN']} is not valid")

    def read(self, raw, field):
        return raw
