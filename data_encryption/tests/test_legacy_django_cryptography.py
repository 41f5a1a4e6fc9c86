"""The django-cryptography reader against the real library: rows written through its
``encrypt(...)`` fields and values made by its own crypto primitives, read back by our reader
(which never imports it). The library runs unchanged, with a stand-in for the one Django module
it imports that Django 5 removed (see ``peer_libraries``)."""

import base64
import datetime
import decimal
import pickle
import uuid
import zoneinfo

import pytz
from cryptography.hazmat.primitives import hashes
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import TestCase
from django_cryptography.utils.crypto import FernetBytes, pbkdf2

from data_encryption import fields
from data_encryption.legacy import LegacyValueError, load_reader
from data_encryption.tests.peer_libraries import raw_value, same
from data_encryption.tests.test_legacy_plaintext import EncryptedUUIDStandIn
from data_encryption.tests.testapp.models import DjangoCryptographyRow
from data_encryption.tests.utils import assert_no_material

NAME = "django-cryptography"
PARIS = zoneinfo.ZoneInfo("Europe/Paris")

# column -> (our counterpart, value written through the library's field)
ROW = {
    "char": (fields.EncryptedCharField(max_length=50), "ünïcødé ✓ 𝄞"),
    "text": (fields.EncryptedTextField(), ""),
    "decimal": (
        fields.EncryptedDecimalField(max_digits=10, decimal_places=2),
        decimal.Decimal("-99999999.99"),
    ),
    "number": (fields.EncryptedFloatField(), 5e-324),
    "flag": (fields.EncryptedBooleanField(), False),
    "day": (fields.EncryptedDateField(), datetime.date(9999, 12, 31)),
    "moment": (
        fields.EncryptedDateTimeField(),
        datetime.datetime(2024, 10, 27, 2, 30, 0, 1, fold=1, tzinfo=PARIS),
    ),
    "document": (
        fields.EncryptedJSONField(),
        {"a": [1, 2.5, None, True, "ü 𝄞"], "nested": {"x": {"y": [], "z": {}}}},
    ),
    "uid": (EncryptedUUIDStandIn(), uuid.uuid4()),
}


def library_token(value, key=None):
    """A value as the library's own cipher stores it (its fields' ``_dump``)."""
    return FernetBytes(key).encrypt(pickle.dumps(value))


class DjangoCryptographyReaderTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        values = {name: value for name, (_, value) in ROW.items()}
        cls.row = DjangoCryptographyRow.objects.create(**values)
        cls.library_read = DjangoCryptographyRow.objects.get(pk=cls.row.pk)

    def raw(self, column):
        return raw_value(DjangoCryptographyRow, self.row.pk, column)

    def test_every_field_reads_as_the_library_reads_it(self):
        # The library's own settings: SECRET_KEY and the defaults. Imported, the library has
        # replaced settings.CRYPTOGRAPHY_KEY by the key it derived; once it is uninstalled the
        # setting is gone (None), and the reader derives the key itself.
        for reader in [
            load_reader(NAME),
            load_reader({"READER": NAME, "OPTIONS": {"CRYPTOGRAPHY_KEY": None}}),
        ]:
            self.check_every_field(reader)

    def check_every_field(self, reader):
        for column, (counterpart, value) in ROW.items():
            expected = getattr(self.library_read, column)
            self.assertEqual(same(expected), same(value))
            raw = self.raw(column)
            shapes = [
                raw,
                bytes(raw),
                memoryview(bytes(raw)),
                base64.b64encode(bytes(raw)).decode(),
            ]
            for shape in shapes:
                with self.subTest(column=column, shape=type(shape).__name__):
                    read = reader.read(shape, counterpart)
                    self.assertEqual(same(read), same(expected))
                    self.assertEqual(type(read), type(expected))

    def test_values_of_the_types_it_has_no_column_for_here(self):
        # Its IntegerField (all integer types) fails Django's checks on PostgreSQL: see the model.
        reader = load_reader(NAME)
        cases = [
            (fields.EncryptedIntegerField(), -(2**31)),
            (fields.EncryptedBigIntegerField(), 2**63 - 1),
            (EncryptedUUIDStandIn(), uuid.UUID(int=0)),
        ]
        for field, value in cases:
            with self.subTest(value=value):
                self.assertEqual(reader.read(library_token(value), field), value)

    def test_datetimes_pickled_with_pytz_zones_before_django_4(self):
        moments = [
            datetime.datetime(2020, 1, 1, 12, tzinfo=pytz.utc),
            pytz.timezone("Europe/Paris").localize(datetime.datetime(2020, 7, 1, 12)),
            pytz.timezone("America/New_York").localize(datetime.datetime(2020, 11, 1, 1, 30)),
        ]
        for moment in moments:
            with self.subTest(moment=moment):
                read = load_reader(NAME).read(library_token(moment), ROW["moment"][0])
                self.assertEqual(read, moment)
                self.assertEqual(read.utcoffset(), moment.utcoffset())

    def test_a_secret_key_fallback_reads_and_a_changed_cryptography_key_reads(self):
        options = {
            "SECRET_KEY": "a-newer-secret-key",
            "SECRET_KEY_FALLBACKS": [settings.SECRET_KEY],
        }
        reader = load_reader({"READER": NAME, "OPTIONS": options})
        self.assertEqual(reader.read(self.raw("char"), ROW["char"][0]), ROW["char"][1])
        # CRYPTOGRAPHY_KEY replaces SECRET_KEY as the source of the AES key (not of the MAC's).
        key = pbkdf2("an-own-cryptography-key", "django-cryptography", 30000)
        token = library_token("value", key)
        own = {"CRYPTOGRAPHY_KEY": "an-own-cryptography-key"}
        self.assertEqual(
            load_reader({"READER": NAME, "OPTIONS": own}).read(token, ROW["char"][0]), "value"
        )
        with self.assertRaises(LegacyValueError):
            load_reader(NAME).read(token, ROW["char"][0])

    def test_a_value_under_another_secret_key_or_altered_names_the_setting(self):
        altered = bytearray(bytes(self.raw("char")))
        altered[20] ^= 1
        other = load_reader({"READER": NAME, "OPTIONS": {"SECRET_KEY": "another-secret-key"}})
        for reader, raw in [(other, self.raw("char")), (load_reader(NAME), bytes(altered))]:
            with self.assertRaises(LegacyValueError) as caught:
                reader.read(raw, ROW["char"][0])
            self.assertIn(f"A {NAME} value in this column was not made", str(caught.exception))
            self.assertIn("to SECRET_KEY_FALLBACKS", str(caught.exception))

    def test_an_authentic_pickle_of_anything_but_a_field_value_is_refused(self):
        # Made with the library's own cipher and the right keys: only the unpickler stands guard.
        run_code = b"cos\nsystem\n(S'echo never run'\ntR."
        # bytearray(10**12): a pickle that names a size would allocate it.
        huge = b"cbuiltins\nbytearray\n(I1000000000000\ntR."
        for plaintext in [run_code, huge, pickle.dumps(ValueError("x")), pickle.dumps(print)]:
            token = FernetBytes().encrypt(plaintext)
            with (
                self.subTest(plaintext=plaintext[:12]),
                self.assertRaises(LegacyValueError) as caught,
            ):
                load_reader(NAME).read(token, ROW["char"][0])
            self.assertIn("is authentic but does not hold a field value", str(caught.exception))
            self.assertNotIn("system", str(caught.exception))

    def test_the_unpickler_builds_bytes_from_contents_never_from_a_size(self):
        from data_encryption.legacy.restricted_pickle import load_field_value

        for kind in ("bytes", "bytearray"):
            sized = f"cbuiltins\n{kind}\n(I5\ntR.".encode()
            with self.subTest(kind=kind), self.assertRaises(pickle.UnpicklingError):
                load_field_value(sized)
        self.assertEqual(load_field_value(pickle.dumps(bytearray(b"ab"), protocol=3)), b"ab")

    def test_a_value_that_is_not_the_libraries_is_refused(self):
        for raw in [b"plain secret", "plain secret", b"\x80" + b"\x00" * 40]:
            with self.subTest(raw=raw), self.assertRaises(LegacyValueError) as caught:
                load_reader(NAME).read(raw, ROW["char"][0])
            self.assertIn(f"is not a {NAME} value", str(caught.exception))
            self.assertNotIn("secret", str(caught.exception))

    def test_a_value_of_another_type_than_the_field_is_refused(self):
        with self.assertRaisesMessage(LegacyValueError, "is not a EncryptedDateField value"):
            load_reader(NAME).read(library_token([1, 2]), ROW["day"][0])

    def test_malformed_settings_are_refused_by_name(self):
        for options, named in [
            ({"SECRET_KEY": ""}, "SECRET_KEY must be"),
            ({"SECRET_KEY_FALLBACKS": "x"}, "SECRET_KEY_FALLBACKS must be a list"),
            ({"CRYPTOGRAPHY_SALT": 12}, "CRYPTOGRAPHY_SALT must be"),
            ({"CRYPTOGRAPHY_DIGEST": hashes.SHA512()}, "CRYPTOGRAPHY_DIGEST must be"),
            ({"CRYPTOGRAPHY_BACKEND": None}, "has no option CRYPTOGRAPHY_BACKEND"),
        ]:
            with self.subTest(named=named), self.assertRaisesMessage(ImproperlyConfigured, named):
                load_reader({"READER": NAME, "OPTIONS": options})

    def test_no_key_in_any_error_or_repr(self):
        reader = load_reader({"READER": NAME, "OPTIONS": {"SECRET_KEY": "another-secret-key"}})
        texts = [repr(reader), repr(reader._key_pairs())]
        for column, (counterpart, _) in ROW.items():
            try:
                reader.read(self.raw(column), counterpart)
            except LegacyValueError as exc:
                texts += [str(exc), repr(exc)]
        self.assertEqual(len(texts), 2 + 2 * len(ROW))
        own = load_reader(NAME)._key_pairs()[0]
        secrets = [settings.SECRET_KEY.encode(), b"another-secret-key", *own.encryption]
        assert_no_material(self, texts, secrets)
