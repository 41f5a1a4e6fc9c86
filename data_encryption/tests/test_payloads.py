"""Payload tokens: Fernet under PAYLOAD_ENCRYPTION_KEY, bound to a purpose, always expiring;
clock skew, wrong keys, tokens from before purposes."""

import time
from datetime import timedelta

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import TestCase, override_settings

from data_encryption.exceptions import DecryptionError, KeyConfigurationError, PayloadExpired
from data_encryption.payloads import payload_fernet
from data_encryption.services import EncryptionService
from data_encryption.tests.utils import new_fernet_key

RESET = "password-reset"
NOW = 2_000_000_000
DAY = 86_400


def make(obj, purpose=RESET, now=NOW):
    return EncryptionService.encrypt_payload(obj, purpose=purpose, now=now)


def read(token, purpose=RESET, now=NOW, **options):
    return EncryptionService.decrypt_payload(token, purpose=purpose, now=now, **options)


class PayloadTests(TestCase):
    def test_round_trip_of_json_values(self):
        for obj in ({"user": 7, "scopes": ["a", "b"]}, [1, 2.5, None], "text", 12, True, None):
            with self.subTest(obj=obj):
                token = EncryptionService.encrypt_payload(obj, purpose=RESET)
                self.assertIsInstance(token, str)
                self.assertRegex(token, r"^[A-Za-z0-9_\-=]+$")  # safe in a URL
                self.assertEqual(EncryptionService.decrypt_payload(token, purpose=RESET), obj)

    def test_expiry_is_enforced(self):
        token = make({"a": 1}, now=1_000_000)
        self.assertEqual(read(token, max_age=60, now=1_000_060), {"a": 1})
        with self.assertRaisesMessage(PayloadExpired, "61 seconds old and max_age is 60."):
            read(token, max_age=60, now=1_000_061)
        with self.assertRaisesMessage(DecryptionError, "stamped in the future"):
            read(token, max_age=60, now=1_000_000 - 61)
        self.assertEqual(read(token, max_age=timedelta(minutes=1), now=1_000_060), {"a": 1})

    def test_fallback_keys_read_old_tokens(self):
        old = new_fernet_key()
        with override_settings(PAYLOAD_ENCRYPTION_KEY=old):
            token = make("before the change")
        with override_settings(PAYLOAD_ENCRYPTION_KEY=new_fernet_key()):
            with self.assertRaises(DecryptionError):
                read(token)
            with override_settings(PAYLOAD_ENCRYPTION_KEY_FALLBACKS=[old]):
                self.assertEqual(read(token), "before the change")

    def test_payload_key_is_not_the_database_key(self):
        token = Fernet(settings.DB_ENCRYPTION_KEY).encrypt(b'"x"')
        with self.assertRaisesMessage(DecryptionError, "payload token is invalid"):
            EncryptionService.decrypt_payload(token, purpose=RESET)

    def test_bad_tokens(self):
        token = make({"a": 1})
        for bad in (
            "",
            "nope",
            token[:-3],
            token[:10] + ("B" if token[10] == "A" else "A") + token[11:],
            "é" * 10,
        ):
            with self.subTest(bad=bad), self.assertRaises(DecryptionError):
                read(bad)
        with self.assertRaises(TypeError):
            read(12)

    def test_unserialisable_value(self):
        with self.assertRaisesMessage(TypeError, "JSON-serialisable"):
            make({"when": object()})

    def test_missing_or_malformed_payload_key(self):
        with (
            override_settings(PAYLOAD_ENCRYPTION_KEY=None),
            self.assertRaisesMessage(KeyConfigurationError, "PAYLOAD_ENCRYPTION_KEY is not set"),
        ):
            make(1)
        with (
            override_settings(PAYLOAD_ENCRYPTION_KEY="short"),
            self.assertRaisesMessage(
                KeyConfigurationError, "PAYLOAD_ENCRYPTION_KEY is not a Fernet key"
            ),
        ):
            make(1)


class PurposeTests(TestCase):
    def test_a_token_made_for_another_purpose_is_refused(self):
        # The review's exp6: an "unsubscribe" token was accepted as a "reset" one.
        token = make({"user": 5}, purpose="unsubscribe")
        self.assertEqual(read(token, purpose="unsubscribe"), {"user": 5})
        with self.assertRaisesMessage(
            DecryptionError, "made for another purpose, not 'password-reset'"
        ):
            read(token, purpose=RESET)
        for near in ("Unsubscribe", "unsubscribe ", "unsub"):
            with self.subTest(purpose=near), self.assertRaises(DecryptionError):
                read(token, purpose=near)

    def test_purpose_is_required_on_both_sides(self):
        token = make(1)
        with self.assertRaisesMessage(TypeError, "purpose"):
            EncryptionService.encrypt_payload(1)
        with self.assertRaisesMessage(TypeError, "purpose"):
            EncryptionService.decrypt_payload(token)
        with self.assertRaisesMessage(TypeError, "takes 2 positional arguments but 3 were given"):
            EncryptionService.decrypt_payload(token, 3600)  # the old positional max_age

    def test_a_purpose_is_a_short_printable_str(self):
        for bad, error in (
            ("", ValueError),
            ("x" * 101, ValueError),
            ("reset\n", ValueError),
            (b"reset", TypeError),
            (None, TypeError),
            (7, TypeError),
        ):
            with self.subTest(purpose=bad):
                with self.assertRaisesMessage(error, "purpose must be"):
                    make(1, purpose=bad)
                with self.assertRaisesMessage(error, "purpose must be"):
                    read("token", purpose=bad)
        self.assertEqual(read(make(1, purpose="x" * 100), purpose="x" * 100), 1)

    def test_tokens_made_before_purposes_are_refused_with_what_to_do(self):
        # What encrypt_payload made before tokens carried a purpose: bare JSON.
        old = payload_fernet().encrypt_at_time(b'{"user":5}', NOW).decode()
        with self.assertRaisesMessage(
            DecryptionError,
            "made before tokens carried a purpose, so what it is for cannot be checked; it is "
            "refused. Make a new one with encrypt_payload(value, purpose='password-reset')",
        ):
            read(old)

    def test_a_database_key_among_the_payload_keys_reads_no_database_value(self):
        # The review's L2: with DB_ENCRYPTION_KEY in the payload fallbacks, a legacy database
        # value (plain Fernet under the master key) decrypted as a payload. Check E005 reports
        # the setting (test_checks); this shows the token is refused even so.
        legacy_value = Fernet(settings.DB_ENCRYPTION_KEY).encrypt(b'"123-45-6789"')
        with override_settings(PAYLOAD_ENCRYPTION_KEY_FALLBACKS=[settings.DB_ENCRYPTION_KEY]):
            with self.assertRaises(DecryptionError) as caught:
                read(legacy_value, now=int(time.time()))
        self.assertNotIn("123-45-6789", str(caught.exception))


class ExpiryTests(TestCase):
    def test_an_expiry_applies_without_max_age(self):
        # The review's exp6: a ten-year-old token was accepted when no max_age was given.
        token = make({"user": 5}, now=NOW - 10 * 365 * DAY)
        with self.assertRaisesMessage(PayloadExpired, "max_age is 86400."):
            read(token)
        token = make({"user": 5}, now=NOW - DAY)
        self.assertEqual(read(token), {"user": 5})
        with self.assertRaises(PayloadExpired):
            read(token, now=NOW + 1)

    def test_the_default_expiry_comes_from_the_setting(self):
        token = make("x", now=NOW - 120)
        with override_settings(PAYLOAD_MAX_AGE_SECONDS=60):
            with self.assertRaisesMessage(PayloadExpired, "120 seconds old and max_age is 60."):
                read(token)
            self.assertEqual(read(token, max_age=120), "x")  # max_age wins over the setting
        with override_settings(PAYLOAD_MAX_AGE_SECONDS=float("nan")):
            with self.assertRaisesMessage(ImproperlyConfigured, "PAYLOAD_MAX_AGE_SECONDS must"):
                read(token)

    def test_max_age_must_be_a_finite_number_above_zero(self):
        # The review's exp6: max_age=nan never expired; max_age="3600" raised a bare TypeError.
        token = make("x", now=NOW - 10 * 365 * DAY)
        for bad in (float("nan"), float("inf"), float("-inf"), 0, 0.0, -1, 10**400):
            with (
                self.subTest(max_age=bad),
                self.assertRaisesMessage(
                    ValueError, "max_age must be a finite number of seconds greater than 0"
                ),
            ):
                read(token, max_age=bad)
        for bad in ("3600", b"3600", True, [3600]):
            with (
                self.subTest(max_age=bad),
                self.assertRaisesMessage(TypeError, "max_age must be a number of seconds"),
            ):
                read(token, max_age=bad)

    def test_a_token_from_the_future_is_refused_without_max_age(self):
        # The review's exp6: a token stamped 30 days ahead was accepted when no max_age was given.
        token = make({"user": 5}, now=NOW + 30 * DAY)
        with self.assertRaisesMessage(DecryptionError, "stamped in the future"):
            read(token)
        self.assertEqual(read(make(1, now=NOW + 60)), 1)  # within the clock skew
        with self.assertRaisesMessage(DecryptionError, "stamped in the future"):
            read(make(1, now=NOW + 61))
