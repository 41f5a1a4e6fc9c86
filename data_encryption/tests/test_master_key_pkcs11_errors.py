"""The PKCS#11 master key's refusals against the SoftHSM2 token the test command initialises:
each bad option or missing piece gives an error naming the provider, its key and what to check,
and the PIN appears in no message, repr or log line. The wrong PIN is tried in a forked child,
whose first login is its own."""

import os
import subprocess
import sys
from unittest import mock

from django.test import SimpleTestCase

from data_encryption.exceptions import MasterKeyProviderError, MasterKeyUnavailable, WrongMasterKey
from data_encryption.master_keys import Pkcs11
from data_encryption.master_keys.pkcs11_tokens import token_session
from data_encryption.tests.hsm_token import PIN_ENV, LogCapture, SoftHsmTestCase, run_in_fork

MATERIAL = bytes(range(64))


class ConfigurationErrorTests(SoftHsmTestCase):
    def assert_refused(self, options, *expected, key_id=None, error=MasterKeyProviderError):
        provider = Pkcs11(**options)
        with self.assertRaises(error) as caught:
            if key_id is None:
                provider.check()
            else:
                provider.unwrap(key_id, self.provider.wrap(key_id, MATERIAL))
        self.assertNotIsInstance(caught.exception, MasterKeyUnavailable)
        for text in (provider.description, *expected):
            self.assertIn(text, str(caught.exception))
        return str(caught.exception)

    def test_missing_key_label(self):
        options = dict(self.options, key_label="no-such-key")
        self.assert_refused(options, "has no secret key labelled 'no-such-key'", "create_key")
        # The app names the data key it was unwrapping; the provider's error, repeated for every
        # key during the back-off, names none.
        self.assertNotIn("0000002a", self.assert_refused(options, key_id=42))

    def test_missing_token(self):
        options = dict(self.options, token_label="no-such-token")
        self.assert_refused(options, "no token labelled 'no-such-token'", "token_label")

    def test_missing_module(self):
        options = dict(self.options, module="/nonexistent/libpkcs11.so")
        self.assert_refused(options, "/nonexistent/libpkcs11.so", "could not be loaded")

    def test_missing_or_empty_pin_variable(self):
        options = dict(self.options, pin_env="DATA_ENCRYPTION_TEST_NO_SUCH_PIN")
        with mock.patch.dict(os.environ):
            os.environ.pop("DATA_ENCRYPTION_TEST_NO_SUCH_PIN", None)
            self.assert_refused(options, "DATA_ENCRYPTION_TEST_NO_SUCH_PIN", "is not set")
            os.environ["DATA_ENCRYPTION_TEST_NO_SUCH_PIN"] = ""
            self.assert_refused(options, "DATA_ENCRYPTION_TEST_NO_SUCH_PIN", "is empty")

    def test_wrong_pin(self):
        # In a child: a process's first login is where a PIN is checked (PKCS#11 logs in per
        # process and token), and this one's is already done. SoftHSM counts no failures, so
        # the token stays usable (asserted after).
        wrong_pin = "wrong-" + os.environ[PIN_ENV]
        options = dict(self.options, pin_env="DATA_ENCRYPTION_TEST_WRONG_PIN")

        def in_child():
            os.environ["DATA_ENCRYPTION_TEST_WRONG_PIN"] = wrong_pin
            Pkcs11(**options).check()

        outcome = run_in_fork(in_child)
        self.assertEqual(outcome.get("error"), "MasterKeyProviderError", outcome)
        self.assertIn(
            "refused the PIN in DATA_ENCRYPTION_TEST_WRONG_PIN (PinIncorrect)", outcome["message"]
        )
        for text in (outcome["message"], *outcome["logs"]):
            self.assertNotIn(wrong_pin, text)
        self.provider.check()

    def test_the_pin_is_never_an_option(self):
        for name in ("pin", "user_pin", "so_pin"):
            with self.subTest(name), self.assertRaises(MasterKeyProviderError) as caught:
                Pkcs11(**dict(self.options, **{name: "s3cret-pin-value"}))
            self.assertIn("the PIN is never an option", str(caught.exception))
            self.assertIn("pin_env", str(caught.exception))
            self.assertNotIn("s3cret-pin-value", str(caught.exception))

    def test_options_are_checked(self):
        cases = {
            "unknown option(s) pin_file": dict(self.options, pin_file="/tmp/pin"),
            "module must be": dict(self.options, module=None),
            "token_label must be": dict(self.options, token_label=""),
            "key_label must be": {k: v for k, v in self.options.items() if k != "key_label"},
            "timeout must be seconds": dict(self.options, timeout=0),
        }
        for expected, options in cases.items():
            with self.subTest(expected), self.assertRaises(MasterKeyProviderError) as caught:
                Pkcs11(**options)
            self.assertIn(expected, str(caught.exception))


class SecretTests(SoftHsmTestCase):
    def test_the_pin_appears_nowhere(self):
        pin = os.environ[PIN_ENV]
        texts = [repr(self.provider), str(vars(self.provider))]
        with LogCapture() as logs:
            wrapped = self.provider.wrap(21, MATERIAL)
            self.provider.unwrap(21, wrapped)
            session = token_session(self.options["module"], self.options["token_label"])
            session._call(lambda: session._session.close(), 10)  # a reopen logs in again
            self.provider.unwrap(21, wrapped)
            for options in (
                dict(self.options, key_label="nope"),
                dict(self.options, token_label="nope"),
            ):
                try:
                    Pkcs11(**options).unwrap(21, wrapped)
                except MasterKeyProviderError as error:
                    texts.append(str(error))
            try:
                self.provider.unwrap(22, wrapped)
            except WrongMasterKey as error:
                texts.append(str(error))
        texts += logs.texts
        self.assertGreaterEqual(len(logs.texts), 1)
        self.assertEqual(len(texts), 2 + 3 + len(logs.texts))
        for text in texts:
            self.assertNotIn(pin, text)
            self.assertNotIn(MATERIAL.hex(), text)


class WithoutTheLibraryTests(SimpleTestCase):
    """No SoftHSM needed: python-pkcs11 made unimportable in a child interpreter."""

    def test_import_works_and_use_says_what_to_install(self):
        code = (
            "import sys; sys.modules['pkcs11'] = None\n"
            "from data_encryption.master_keys import Pkcs11\n"
            "from data_encryption.exceptions import MasterKeyProviderError\n"
            "provider = Pkcs11(module='/x.so', token_label='t', key_label='k', pin_env='P')\n"
            "try:\n"
            "    provider.wrap(1, b'k' * 32)\n"
            "except MasterKeyProviderError as error:\n"
            "    print(error)\n"
        )
        finished = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, P="1234"),
        )
        self.assertEqual(finished.returncode, 0, finished.stderr)
        self.assertEqual(
            finished.stdout.strip(),
            "pkcs11 master key t/k needs python-pkcs11: pip install django-data-encryption[pkcs11]",
        )
