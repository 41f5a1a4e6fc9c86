"""The django-encrypted-model-fields reader against the real library: rows written through its
fields, read back by our reader (which never imports it) as the library itself reads them."""

import datetime
import zoneinfo

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import TestCase, override_settings

from data_encryption import fields
from data_encryption.legacy import LegacyValueError, load_reader
from data_encryption.tests import peer_libraries as peers
from data_encryption.tests.peer_libraries import raw_value, same, shapes
from data_encryption.tests.testapp.models import EncryptedModelFieldsRow
from data_encryption.tests.utils import assert_no_material, new_fernet_key

NAME = "django-encrypted-model-fields"
PARIS = zoneinfo.ZoneInfo("Europe/Paris")

# column -> (our counterpart, value written through the library's field)
ROW = {
    "char": (fields.EncryptedCharField(max_length=50), "ünïcødé ✓ 𝄞"),
    "text": (fields.EncryptedTextField(), ""),
    "flag": (fields.EncryptedBooleanField(), False),
    "day": (fields.EncryptedDateField(), datetime.date(1, 1, 1)),
    "moment": (
        fields.EncryptedDateTimeField(),
        datetime.datetime(2024, 3, 31, 3, 0, 0, 999999, tzinfo=PARIS),
    ),
    "email": (fields.EncryptedEmailField(), "a.b@example.com"),
}


class EncryptedModelFieldsReaderTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        values = {name: value for name, (_, value) in ROW.items()}
        cls.row = EncryptedModelFieldsRow.objects.create(**values)
        cls.library_read = EncryptedModelFieldsRow.objects.get(pk=cls.row.pk)

    def raw(self, column):
        return raw_value(EncryptedModelFieldsRow, self.row.pk, column)

    def test_every_field_reads_as_the_library_reads_it(self):
        reader = load_reader(NAME)  # the library's own setting, FIELD_ENCRYPTION_KEY
        for column, (counterpart, value) in ROW.items():
            expected = getattr(self.library_read, column)
            self.assertEqual(same(expected), same(value))
            for shape in shapes(self.raw(column)):
                with self.subTest(column=column, shape=type(shape).__name__):
                    read = reader.read(shape, counterpart)
                    self.assertEqual(same(read), same(expected))
                    self.assertEqual(type(read), type(expected))

    def test_integers_as_its_cipher_stores_them(self):
        # Its integer fields cannot save on PostgreSQL under Django 5 (see the model): the
        # token is made as they make it, str() of the value through the library's own cipher.
        for field, value in [
            (fields.EncryptedIntegerField(), 2**31 - 1),
            (fields.EncryptedBigIntegerField(), -(2**63)),
        ]:
            token = peers.encrypted_model_fields.encrypt_str(str(value)).decode()
            for shape in shapes(token):
                with self.subTest(value=value, shape=type(shape).__name__):
                    self.assertEqual(load_reader(NAME).read(shape, field), value)

    @override_settings(TIME_ZONE="Europe/Paris")
    def test_a_naive_datetime_it_stored_is_utc(self):
        # On SQLite the library stored naive UTC text; the instant does not move with TIME_ZONE.
        read = load_reader(NAME).read(self.raw("moment"), ROW["moment"][0])
        self.assertEqual(same(read), same(ROW["moment"][1]))

    def test_a_token_under_any_key_of_the_list_reads(self):
        written_with = settings.FIELD_ENCRYPTION_KEY[0]
        for keys in ([new_fernet_key(), written_with], written_with, [written_with.encode()]):
            with self.subTest(keys=type(keys).__name__):
                reader = load_reader({"READER": NAME, "OPTIONS": {"FIELD_ENCRYPTION_KEY": keys}})
                self.assertEqual(reader.read(self.raw("char"), ROW["char"][0]), ROW["char"][1])

    def test_a_token_under_a_key_the_reader_lacks_names_the_setting(self):
        options = {"FIELD_ENCRYPTION_KEY": settings.FIELD_ENCRYPTION_KEY[1:]}
        reader = load_reader({"READER": NAME, "OPTIONS": options})
        with self.assertRaises(LegacyValueError) as caught:
            reader.read(self.raw("char"), ROW["char"][0])
        self.assertIn(f"A {NAME} token in this column was not made with", str(caught.exception))
        self.assertIn(
            "Add the key it was written with to FIELD_ENCRYPTION_KEY", str(caught.exception)
        )

    def test_a_token_of_text_that_is_not_the_fields_type_is_refused(self):
        token = Fernet(settings.FIELD_ENCRYPTION_KEY[0]).encrypt(b"secret words").decode()
        with self.assertRaises(LegacyValueError) as caught:
            load_reader(NAME).read(token, fields.EncryptedIntegerField())
        self.assertIn("is not a valid EncryptedIntegerField value", str(caught.exception))
        self.assertNotIn("secret", str(caught.exception))

    def test_missing_or_malformed_keys_are_refused_without_showing_them(self):
        bad = "not-a-key-but-secret"
        for keys, named in [
            (None, "needs FIELD_ENCRYPTION_KEY"),
            ([], "needs FIELD_ENCRYPTION_KEY"),
            (bad, "FIELD_ENCRYPTION_KEY is not a Fernet key"),
            ([new_fernet_key(), bad], "FIELD_ENCRYPTION_KEY[1] is not a Fernet key"),
        ]:
            with self.subTest(named=named), self.assertRaises(ImproperlyConfigured) as caught:
                load_reader({"READER": NAME, "OPTIONS": {"FIELD_ENCRYPTION_KEY": keys}})
            self.assertIn(named, str(caught.exception))
            self.assertNotIn(bad, str(caught.exception))

    def test_no_key_in_any_error_or_repr(self):
        reader = load_reader(
            {"READER": NAME, "OPTIONS": {"FIELD_ENCRYPTION_KEY": new_fernet_key()}}
        )
        texts = [repr(reader)]
        for column, (counterpart, _) in ROW.items():
            try:
                reader.read(self.raw(column), counterpart)
            except LegacyValueError as exc:
                texts += [str(exc), repr(exc)]
        self.assertEqual(len(texts), 1 + 2 * len(ROW))
        raws = [
            Fernet(key)._signing_key + Fernet(key)._encryption_key
            for key in settings.FIELD_ENCRYPTION_KEY
        ]
        assert_no_material(
            self, texts, raws + [key.encode() for key in settings.FIELD_ENCRYPTION_KEY]
        )
