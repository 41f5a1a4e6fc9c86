"""The stored-value format: test vectors (also checked against docs/format.md), classification,
parsing and the header-only key id."""

import json
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.test import TestCase

from data_encryption.envelope import Envelope, ValueKind, classify, header_key_id, key_id_of, parse
from data_encryption.exceptions import DecryptionError
from data_encryption.services import EncryptionService
from data_encryption.tests.utils import FreshKeyRingMixin, install_data_key

VECTORS = json.loads((Path(__file__).parent / "format_vectors.json").read_text("utf-8"))["vectors"]
FORMAT_DOC = Path(__file__).resolve().parents[2] / "docs" / "format.md"


class VectorTests(FreshKeyRingMixin, TestCase):
    def test_vectors_follow_the_documented_layout(self):
        # Independent of our code: header || nonce || AESGCM(key).encrypt(nonce, pt, header).
        for vector in VECTORS:
            with self.subTest(vector["name"]):
                key = bytes.fromhex(vector["data_key_hex"])
                nonce = bytes.fromhex(vector["nonce_hex"])
                # Version 2 when bound: the context's UTF-8 bytes follow the header in the AAD.
                version = b"\x02" if "context" in vector else b"\x01"
                header = b"\xff\x44\x45" + version + vector["key_id"].to_bytes(4, "big")
                aad = header + vector.get("context", "").encode("utf-8")
                sealed = nonce + AESGCM(key).encrypt(
                    nonce, vector["plaintext"].encode("utf-8"), aad
                )
                self.assertEqual((header + sealed).hex(), vector["binary_hex"])
                self.assertEqual(len(header + sealed), 36 + len(vector["plaintext"].encode()))

    def test_vectors_decrypt_in_both_forms(self):
        keys = {vector["key_id"]: vector["data_key_hex"] for vector in VECTORS}
        for key_id, material_hex in keys.items():
            install_data_key(key_id, bytes.fromhex(material_hex))
        for vector in VECTORS:
            with self.subTest(vector["name"]):
                binary = bytes.fromhex(vector["binary_hex"])
                context = vector.get("context")
                self.assertEqual(EncryptionService.decrypt(binary, context), vector["plaintext"])
                self.assertEqual(
                    EncryptionService.decrypt(vector["ascii"], context=context), vector["plaintext"]
                )
                self.assertEqual(
                    EncryptionService.decrypt_bytes(binary, context=context),
                    vector["plaintext"].encode(),
                )
                self.assertEqual(EncryptionService.to_ascii(binary), vector["ascii"])
                self.assertEqual(parse(vector["ascii"]).to_bytes(), binary)

    def test_vectors_are_the_ones_in_docs_format_md(self):
        if not FORMAT_DOC.exists():
            self.skipTest("docs/ is not shipped with an installed package")
        doc = FORMAT_DOC.read_text("utf-8")
        for vector in VECTORS:
            with self.subTest(vector["name"]):
                for value in (
                    vector["data_key_hex"],
                    f"{vector['key_id']:08x}",
                    vector["nonce_hex"],
                    vector["binary_hex"],
                    vector["ascii"],
                    json.dumps(vector["plaintext"], ensure_ascii=False),
                    *([json.dumps(vector["context"])] if "context" in vector else []),
                ):
                    self.assertIn(value, doc)


class ClassifyTests(FreshKeyRingMixin, TestCase):
    def test_kinds_are_told_apart_by_prefix(self):
        binary = EncryptionService.encrypt("x")
        legacy = Fernet(Fernet.generate_key()).encrypt(b"x")
        self.assertIs(classify(binary), ValueKind.ENVELOPE_BINARY)
        self.assertIs(classify(memoryview(binary)), ValueKind.ENVELOPE_BINARY)
        self.assertIs(classify(EncryptionService.to_ascii(binary)), ValueKind.ENVELOPE_ASCII)
        self.assertIs(classify(legacy), ValueKind.LEGACY_FERNET)
        self.assertIs(classify(legacy.decode()), ValueKind.LEGACY_FERNET)
        for plaintext in ("123-45-6789", b"", "", b"\x00\x01", "de3:abc", "gAAA"):
            self.assertIs(classify(plaintext), ValueKind.UNKNOWN, plaintext)

    def test_classify_refuses_other_types(self):
        with self.assertRaisesMessage(TypeError, "Expected bytes, bytearray, memoryview or str"):
            classify(12)


class HeaderTests(FreshKeyRingMixin, TestCase):
    def test_key_id_is_read_from_the_header_without_a_key(self):
        value = bytes.fromhex(VECTORS[0]["binary_hex"])  # its key is not in the ring
        self.assertEqual(key_id_of(value), 0x01020304)
        self.assertEqual(key_id_of(VECTORS[2]["ascii"]), 0xFEDCBA98)
        self.assertEqual(EncryptionService.key_id_of(bytearray(value)), 0x01020304)

    def test_key_id_of_a_fresh_value_is_the_primary(self):
        from data_encryption.models import DataKey, KeyState

        primary = DataKey.objects.get(state=KeyState.PRIMARY)
        self.assertEqual(key_id_of(EncryptionService.encrypt("x")), primary.key_id)

    def test_key_id_of_a_legacy_token_is_none(self):
        self.assertIsNone(key_id_of(Fernet(Fernet.generate_key()).encrypt(b"x")))

    def test_key_id_of_plaintext_is_an_error(self):
        with self.assertRaisesMessage(DecryptionError, "The value is not encrypted"):
            key_id_of("123-45-6789")

    def test_parse(self):
        value = bytes.fromhex(VECTORS[0]["binary_hex"])
        parsed = parse(value)
        self.assertEqual(parsed, Envelope(1, 0x01020304, value[8:]))
        self.assertEqual(parsed.header, value[:8])
        self.assertEqual(repr(parsed), "<Envelope v1 key=01020304 39B>")

    def test_unsupported_version(self):
        value = bytearray.fromhex(VECTORS[0]["binary_hex"])
        value[3] = 3
        with self.assertRaisesMessage(DecryptionError, "Unsupported envelope version 3"):
            parse(bytes(value))
        with self.assertRaisesMessage(DecryptionError, "Unsupported envelope version 3"):
            EncryptionService.decrypt(bytes(value))

    def test_truncated(self):
        value = bytes.fromhex(VECTORS[0]["binary_hex"])
        for length in (3, 4, 8, 20, 35):
            with self.subTest(length=length), self.assertRaises(DecryptionError):
                parse(value[:length])

    def test_malformed_ascii(self):
        for text in (
            "de1:",
            "de1:0102:AAAA",
            "de1:zzzzzzzz:AAAA",
            "de1:01020304:***",
            "de1:01020304:AAAA",
            "de1:01020304:a:b",
        ):
            with self.subTest(text=text), self.assertRaises(DecryptionError):
                parse(text)


class HeaderKeyIdTests(FreshKeyRingMixin, TestCase):
    def test_reads_either_form_and_never_raises(self):
        token = EncryptionService.encrypt("x")
        key_id = key_id_of(token)
        ascii_form = EncryptionService.to_ascii(token)
        self.assertEqual(header_key_id(token), key_id)
        self.assertEqual(header_key_id(ascii_form), key_id)
        self.assertEqual(header_key_id(ascii_form.encode()), key_id)  # ASCII kept in bytes
        for junk in (b"", b"\xffDE", "de1:John Smith, DOB 1970", "de1:0x00001f:AAAA", b"gAAAAA"):
            with self.subTest(junk=junk):
                self.assertIsNone(header_key_id(junk))

    def test_census_labels_come_from_the_header_never_from_copied_bytes(self):
        from data_encryption.rotation import MALFORMED, census_label

        # A plaintext that merely starts like the ASCII form used to give the label "John Smi".
        self.assertEqual(census_label("de1:John Smith, DOB 1970-01-01"), MALFORMED)
        token = EncryptionService.encrypt("x")
        label = f"{key_id_of(token):08x}"
        self.assertEqual(census_label(token), label)
        self.assertEqual(census_label(EncryptionService.to_ascii(token).encode()), label)


class CanonicalAsciiTests(FreshKeyRingMixin, TestCase):
    """security.md I1 and M1: the ASCII form has one spelling per value; every other spelling of
    the key id or the base64 part is refused (it used to decrypt, or raise OverflowError)."""

    def setUp(self):
        super().setUp()
        material = bytes(range(32))
        install_data_key(0x1F, material)
        header = b"\xffDE\x01" + (0x1F).to_bytes(4, "big")
        nonce = b"\xff" * 12  # base64url of 0xff bytes is "_", whose standard spelling is "/"
        self.binary = header + nonce + AESGCM(material).encrypt(nonce, b"x", header)
        self.canonical = EncryptionService.to_ascii(self.binary)

    def test_the_canonical_spelling_decrypts(self):
        self.assertTrue(self.canonical.startswith("de1:0000001f:____"))
        self.assertEqual(EncryptionService.decrypt(self.canonical), "x")
        self.assertEqual(header_key_id(self.canonical), 0x1F)

    def test_other_spellings_of_the_key_id_are_refused(self):
        sealed = self.canonical.split(":", 2)[2]
        for key_id in ("0000001F", "0x00001f", " 000001f", "+000001f", "0_00001f", "-0000001"):
            value = f"de1:{key_id}:{sealed}"
            with self.subTest(key_id=key_id):
                with self.assertRaisesMessage(DecryptionError, "Malformed ASCII envelope"):
                    EncryptionService.decrypt(value)
                self.assertIsNone(header_key_id(value))

    def test_other_spellings_of_the_base64_part_are_refused(self):
        prefix, sealed = self.canonical[:13], self.canonical[13:]
        self.assertEqual(len(sealed) % 4, 3)  # 29 bytes: the last character carries 2 spare bits
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        last_with_spare_bit = alphabet[alphabet.index(sealed[-1]) | 1]
        for spelling in (
            sealed + "=",  # padding
            sealed.replace("_", "/"),  # the standard alphabet
            sealed[:10] + "*" + sealed[10:],  # junk
            sealed[:10] + "\n" + sealed[10:],
            sealed[:-1] + last_with_spare_bit,  # a spare bit set
            sealed + ":" + sealed,
        ):
            with self.subTest(spelling=spelling):
                self.assertNotEqual(spelling, sealed)
                with self.assertRaises(DecryptionError):
                    EncryptionService.decrypt(prefix + spelling)
                self.assertIsNone(header_key_id(prefix + spelling))
