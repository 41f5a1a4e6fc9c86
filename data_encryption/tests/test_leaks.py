"""Key material never shows: every error path's message and every object's repr are scanned for
the keys of this run (raw, hex and base64 forms). The runner also scans every log record of the
whole suite (see runner.py)."""

import logging

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import run_checks
from django.test import TestCase, override_settings

from data_encryption import keys
from data_encryption.ciphers import AeadCipher
from data_encryption.exceptions import DataEncryptionError
from data_encryption.keys import key_ring, unwrap_data_key
from data_encryption.master_key import MasterKey, parse_fernet_key
from data_encryption.models import DataKey, KeyState
from data_encryption.services import EncryptionService
from data_encryption.tests.runner import CapturingHandler, material_forms
from data_encryption.tests.utils import FreshKeyRingMixin, assert_no_material, new_fernet_key


class KeyMaterialTests(FreshKeyRingMixin, TestCase):
    def all_raw_keys(self):
        raws = [
            parse_fernet_key(settings.DB_ENCRYPTION_KEY, "m"),
            parse_fernet_key(settings.PAYLOAD_ENCRYPTION_KEY, "p"),
        ]
        raws += [unwrap_data_key(row) for row in DataKey.objects.exclude(wrapped_key=None)]
        return raws

    def test_material_forms_would_catch_a_leak(self):
        # The scan itself must be able to fail: a message holding a key in any form is caught.
        raw = parse_fernet_key(settings.DB_ENCRYPTION_KEY, "m")
        for form in material_forms(raw):
            with self.subTest(form=form[:4]), self.assertRaises(AssertionError):
                assert_no_material(self, [f"oops {form} leaked"], [raw])
        with self.assertRaises(AssertionError):
            assert_no_material(self, [settings.DB_ENCRYPTION_KEY], [raw])

    def test_error_messages_and_reprs(self):
        texts = []
        token = EncryptionService.encrypt("123-45-6789")

        def collect(call):
            try:
                call()
            except (DataEncryptionError, TypeError, ValueError) as exc:
                texts.extend([str(exc), repr(exc)])

        tampered = bytearray(token)
        tampered[-1] ^= 1
        collect(lambda: EncryptionService.decrypt(bytes(tampered)))
        collect(lambda: EncryptionService.decrypt(token[:20]))
        collect(lambda: EncryptionService.decrypt(b"garbage"))
        collect(lambda: EncryptionService.decrypt(Fernet(Fernet.generate_key()).encrypt(b"x")))
        collect(lambda: EncryptionService.decrypt_payload("nope", purpose="test"))
        collect(lambda: EncryptionService.encrypt(12))
        collect(lambda: MasterKey(settings.DB_ENCRYPTION_KEY[:-2]))
        collect(lambda: AeadCipher(b"short"))
        with override_settings(
            DB_ENCRYPTION_KEY=new_fernet_key(),
            DB_ENCRYPTION_KEY_FALLBACKS=[settings.DB_ENCRYPTION_KEY[:10]],
        ):
            collect(lambda: EncryptionService.decrypt(token))
        with override_settings(DB_ENCRYPTION_KEY=new_fernet_key()):
            collect(lambda: EncryptionService.decrypt(token))
        with override_settings(
            DB_ENCRYPTION_KEY=settings.DB_ENCRYPTION_KEY + "x",
            PAYLOAD_ENCRYPTION_KEY=settings.DB_ENCRYPTION_KEY,
        ):
            texts.extend(f"{m.msg} {m.hint}" for m in run_checks())
        self.assertGreaterEqual(len(texts), 20)

        primary = DataKey.objects.get(state=KeyState.PRIMARY)
        texts += [
            repr(primary),
            str(primary),
            repr(key_ring()),
            repr(keys.master_keys()),
            repr(AeadCipher(bytes(32))),
            repr(keys.key_ring().ciphers),
        ]
        assert_no_material(self, texts, self.all_raw_keys())
        for text in texts:
            self.assertNotIn("123-45-6789", text)

    def test_log_records_of_key_creation(self):
        start = len(CapturingHandler.records)
        logger = logging.getLogger("data_encryption")
        self.assertTrue(logger.isEnabledFor(logging.INFO))
        DataKey.objects.all().delete()
        EncryptionService.encrypt("x")  # makes and logs a first key
        new = CapturingHandler.records[start:]
        self.assertTrue(any("Created data key" in record for record in new), new)
        assert_no_material(self, new, self.all_raw_keys())
