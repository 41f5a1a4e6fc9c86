"""The SoftHSM token that the test command initialises (scripts/lib.sh, ``start_softhsm``), for
the PKCS#11 master-key tests: its provider options, a fresh key per test class, and a function
run in a forked child (a fresh PKCS#11 login, as in a Celery prefork worker)."""

import json
import logging
import os
import secrets
import unittest
import warnings

from django.test import SimpleTestCase

from data_encryption.master_keys import Pkcs11

MODULE_ENV = "DATA_ENCRYPTION_TEST_PKCS11_MODULE"
TOKEN_ENV = "DATA_ENCRYPTION_TEST_PKCS11_TOKEN"
# The provider reads the PIN from this variable itself: the tests name it in ``pin_env``.
PIN_ENV = "DATA_ENCRYPTION_TEST_PKCS11_PIN"
REQUIRE_SERVICES = os.environ.get("DATA_ENCRYPTION_TEST_REQUIRE_SERVICES") == "1"


def hsm_options(key_label, **overrides):
    """``Pkcs11``'s options for ``key_label`` in the test token."""
    options = {
        "module": os.environ[MODULE_ENV],
        "token_label": os.environ[TOKEN_ENV],
        "key_label": key_label,
        "pin_env": PIN_ENV,
    }
    options.update(overrides)
    return options


def provider_setting(options):
    """``DATA_ENCRYPTION_MASTER_KEY_PROVIDER`` naming this provider, for ``override_settings``."""
    return {"BACKEND": "data_encryption.master_keys.Pkcs11", "OPTIONS": dict(options)}


def fresh_label(purpose="master"):
    return f"test-{purpose}-{secrets.token_hex(4)}"


def create_key(purpose="master"):
    """A new AES key in the test token under a fresh label; its provider."""
    return Pkcs11.create_key(**hsm_options(fresh_label(purpose)))


MISSING = [name for name in (MODULE_ENV, TOKEN_ENV, PIN_ENV) if not os.environ.get(name)]


class SoftHsmTestCase(SimpleTestCase):
    """Skips when the test command did not start SoftHSM (``make test-one``), fails when it
    should have (``DATA_ENCRYPTION_TEST_REQUIRE_SERVICES=1``). Each class gets its own key:
    ``cls.provider``, with ``cls.options``."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if MISSING and not REQUIRE_SERVICES:
            unittest.skip(f"needs SoftHSM ({MODULE_ENV}; scripts/test.sh starts it)")(cls)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if MISSING:
            raise AssertionError(
                f"{', '.join(MISSING)} not set while DATA_ENCRYPTION_TEST_REQUIRE_SERVICES=1:"
                " scripts/test.sh starts SoftHSM (start_softhsm in scripts/lib.sh)"
            )
        cls.provider = create_key()
        cls.options = hsm_options(cls.provider.key_label)


class LogCapture(logging.Handler):
    """Every record at any level, formatted with its traceback, from the root logger down."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.texts = []

    def emit(self, record):
        self.texts.append(self.format(record))

    def __enter__(self):
        root = logging.getLogger()
        self._level = root.level
        root.addHandler(self)
        root.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc_info):
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._level)


def run_in_fork(function):
    """``function()`` called in a forked child: ``{"result": ...}`` (JSON) or ``{"error": class
    name, "message": ...}``, and ``"logs"``, the child's log records."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a process with threads (the token's thread is one):
        # the child never uses the parent's threads, which is what is being tested.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never returns into the test runner
        try:
            os.close(read_end)
            with LogCapture() as logs:
                try:
                    outcome = {"result": function()}
                except Exception as error:
                    outcome = {"error": type(error).__name__, "message": str(error)}
            outcome["logs"] = logs.texts
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(json.dumps(outcome).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(data)
