"""EncryptionService: the contract's encrypt/decrypt, bad input, payload tokens, and the
hand-written property pattern on a real model."""

import re

from cryptography.fernet import InvalidToken
from django.db import connection
from django.test import TestCase

from data_encryption.envelope import HEADER_V1, MIN_BINARY_SIZE
from data_encryption.exceptions import DecryptionError
from data_encryption.services import EncryptionService
from data_encryption.tests.testapp.models import Customer
from data_encryption.tests.utils import FreshKeyRingMixin


class EncryptDecryptTests(FreshKeyRingMixin, TestCase):
    def test_round_trip(self):
        for text in ("123-45-6789", "", "Zoë — 東京 🔐", "x" * 100_000, "\x00nul"):
            with self.subTest(length=len(text)):
                token = EncryptionService.encrypt(text)
                self.assertIsInstance(token, bytes)
                self.assertTrue(token.startswith(HEADER_V1))
                if text:
                    self.assertNotIn(text.encode(), token)
                self.assertEqual(EncryptionService.decrypt(token), text)

    def test_none_gives_none(self):
        self.assertIsNone(EncryptionService.encrypt(None))
        self.assertIsNone(EncryptionService.decrypt(None))

    def test_decrypt_accepts_every_binary_type_and_the_ascii_form(self):
        token = EncryptionService.encrypt("value")
        for form in (
            token,
            bytearray(token),
            memoryview(token),
            EncryptionService.to_ascii(token),
            EncryptionService.to_ascii(token).encode(),
        ):
            with self.subTest(type=type(form).__name__):
                self.assertEqual(EncryptionService.decrypt(form), "value")

    def test_same_plaintext_encrypts_differently(self):
        self.assertNotEqual(EncryptionService.encrypt("a"), EncryptionService.encrypt("a"))

    def test_encrypt_refuses_non_text(self):
        for value in (12, b"bytes", 1.5, ["a"]):
            with (
                self.subTest(value=value),
                self.assertRaisesMessage(
                    TypeError, f"takes a str (or None), not {type(value).__name__}"
                ),
            ):
                EncryptionService.encrypt(value)

    def test_bytes_api(self):
        token = EncryptionService.encrypt_bytes(b"\x00\xff")
        self.assertEqual(EncryptionService.decrypt_bytes(token), b"\x00\xff")
        with self.assertRaisesMessage(DecryptionError, "Use decrypt_bytes()"):
            EncryptionService.decrypt(token)
        with self.assertRaises(TypeError):
            EncryptionService.encrypt_bytes("text")


class BadInputTests(FreshKeyRingMixin, TestCase):
    def assertRefused(self, value, message=""):
        with self.assertRaisesMessage(DecryptionError, message) as caught:
            EncryptionService.decrypt(value)
        # Code written for the contract's Fernet-era errors still catches it.
        self.assertIsInstance(caught.exception, ValueError)
        self.assertIsInstance(caught.exception, InvalidToken)
        return caught.exception

    def test_empty_and_garbage(self):
        for value in (b"", "", b"garbage", "123-45-6789", b"\xff", b"\x80" * 60):
            with self.subTest(value=value):
                self.assertRefused(value, "not")

    def test_every_tampered_byte_is_detected(self):
        token = EncryptionService.encrypt("123-45-6789")
        for position in range(len(token)):
            tampered = bytearray(token)
            tampered[position] ^= 0x01
            with self.subTest(position=position):
                self.assertRefused(bytes(tampered))

    def test_truncated(self):
        token = EncryptionService.encrypt("123-45-6789")
        for length in range(len(token)):
            with self.subTest(length=length):
                self.assertRefused(token[:length])

    def test_message_names_the_key_id_but_not_the_plaintext(self):
        token = bytearray(EncryptionService.encrypt("123-45-6789"))
        token[-1] ^= 1
        error = self.assertRefused(bytes(token), "failed authentication")
        key_id = int.from_bytes(token[4:8], "big")
        self.assertIn(f"{key_id:08x}", str(error))
        self.assertEqual(error.key_id, key_id)
        self.assertNotIn("123-45-6789", str(error))

    def test_minimum_size(self):
        self.assertEqual(MIN_BINARY_SIZE, 36)
        self.assertEqual(len(EncryptionService.encrypt("")), 36)


class PropertyPatternTests(FreshKeyRingMixin, TestCase):
    """DESIGN §1's Customer: a BinaryField and a property, exactly as users write it."""

    def test_save_and_reload(self):
        customer = Customer(name="Ada")
        customer.ssn = "123-45-6789"
        customer.save()
        loaded = Customer.objects.get(pk=customer.pk)
        # PostgreSQL drivers may return memoryview; decrypt takes it as is.
        self.assertEqual(loaded.ssn, "123-45-6789")
        self.assertEqual(Customer.objects.values_list("name", flat=True).get(), "Ada")

    def test_column_holds_ciphertext(self):
        customer = Customer(name="Ada")
        customer.ssn = "123-45-6789"
        customer.save()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT _ssn FROM {Customer._meta.db_table} WHERE id = %s", [customer.pk]
            )
            raw = bytes(cursor.fetchone()[0])
        self.assertTrue(raw.startswith(HEADER_V1))
        self.assertNotIn(b"123-45-6789", raw)
        self.assertIsNone(re.search(rb"\d{3}-\d{2}-\d{4}", raw))

    def test_none(self):
        customer = Customer(name="No SSN")
        customer.ssn = None
        customer.save()
        self.assertIsNone(Customer.objects.get().ssn)
        self.assertEqual(Customer.objects.filter(_ssn__isnull=True).count(), 1)
