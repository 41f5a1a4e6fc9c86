"""The django-fernet-encrypted-fields reader against the real library: rows written through its
fields, read back by our reader (which never imports it) as the library itself reads them."""

import datetime
import zoneinfo

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import TestCase

from data_encryption import fields
from data_encryption.legacy import LegacyValueError, load_reader
from data_encryption.tests.peer_libraries import raw_value, same, shapes
from data_encryption.tests.testapp.models import FernetFieldsRow
from data_encryption.tests.utils import assert_no_material, new_fernet_key

NAME = "django-fernet-encrypted-fields"
PARIS = zoneinfo.ZoneInfo("Europe/Paris")

# column -> (our counterpart, value written through the library's field)
ROW = {
    "char": (fields.EncryptedCharField(max_length=50), "ünïcødé ✓ 𝄞"),
    "text": (fields.EncryptedTextField(), "line one\nline two"),
    "integer": (fields.EncryptedIntegerField(), -(2**31)),
    "number": (fields.EncryptedFloatField(), 0.1),
    "flag": (fields.EncryptedBooleanField(), True),
    "day": (fields.EncryptedDateField(), datetime.date(2024, 2, 29)),
    "moment": (
        fields.EncryptedDateTimeField(),
        datetime.datetime(2024, 10, 27, 2, 30, 0, 15, fold=1, tzinfo=PARIS),
    ),
    "email": (fields.EncryptedEmailField(), "a.b@example.com"),
    "document": (fields.EncryptedJSONField(), {"a": [1, "x", {"b": 2.5}], "c": "ü", "d": True}),
}


class FernetFieldsReaderTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.row = FernetFieldsRow.objects.create(
            **{name: value for name, (_, value) in ROW.items()}
        )
        cls.library_read = FernetFieldsRow.objects.get(pk=cls.row.pk)

    def raw(self, column):
        return raw_value(FernetFieldsRow, self.row.pk, column)

    def test_every_field_reads_as_the_library_reads_it(self):
        reader = load_reader(NAME)  # the library's own settings, SALT_KEY and SECRET_KEY
        for column, (counterpart, value) in ROW.items():
            expected = getattr(self.library_read, column)
            for shape in shapes(self.raw(column)):
                with self.subTest(column=column, shape=type(shape).__name__):
                    self.assertEqual(reader.read(shape, counterpart), expected)
            if column != "document":
                self.assertEqual(same(expected), same(value))

    def test_its_json_field_comes_back_as_the_library_returned_it_leaves_as_strings(self):
        read = load_reader(NAME).read(self.raw("document"), ROW["document"][0])
        self.assertEqual(read, {"a": ["1", "x", {"b": "2.5"}], "c": "ü", "d": "True"})

    def test_any_salt_of_a_salt_list_and_any_secret_key_fallback_reads(self):
        old_salt = settings.SALT_KEY[0]
        for options in [
            {"SALT_KEY": [new_fernet_key(), old_salt]},
            {
                "SALT_KEY": old_salt,
                "SECRET_KEY": "new",
                "SECRET_KEY_FALLBACKS": [settings.SECRET_KEY],
            },
        ]:
            with self.subTest(options=sorted(options)):
                reader = load_reader({"READER": NAME, "OPTIONS": options})
                self.assertEqual(reader.read(self.raw("char"), ROW["char"][0]), ROW["char"][1])

    def test_a_token_under_a_key_the_reader_lacks_names_the_settings(self):
        reader = load_reader({"READER": NAME, "OPTIONS": {"SALT_KEY": settings.SALT_KEY[1]}})
        for column in ("char", "document"):
            with self.subTest(column=column), self.assertRaises(LegacyValueError) as caught:
                reader.read(self.raw(column), ROW[column][0])
            self.assertIn(
                f"A {NAME} token in this column was not made with any key the reader has",
                str(caught.exception),
            )
            self.assertIn("SECRET_KEY_FALLBACKS or SALT_KEY", str(caught.exception))

    def test_a_value_that_is_not_a_token_is_refused(self):
        with self.assertRaisesMessage(LegacyValueError, f"is not a {NAME} token"):
            load_reader(NAME).read("plain secret", ROW["char"][0])

    def test_missing_or_malformed_settings_are_refused_by_name(self):
        for options, named in [
            ({"SALT_KEY": None}, "SALT_KEY"),
            ({"SALT_KEY": []}, "SALT_KEY"),
            ({"SECRET_KEY": ""}, "SECRET_KEY"),
            ({"SECRET_KEY_FALLBACKS": "not-a-list"}, "SECRET_KEY_FALLBACKS"),
        ]:
            with self.subTest(named=named), self.assertRaisesMessage(ImproperlyConfigured, named):
                load_reader({"READER": NAME, "OPTIONS": options})

    def test_no_key_in_any_error_or_repr(self):
        reader = load_reader({"READER": NAME, "OPTIONS": {"SALT_KEY": [new_fernet_key()]}})
        texts = [repr(reader)]
        for column, (counterpart, _) in ROW.items():
            try:
                reader.read(self.raw(column), counterpart)
            except LegacyValueError as exc:
                texts += [str(exc), repr(exc)]
        self.assertEqual(len(texts), 1 + 2 * len(ROW))
        own = load_reader(NAME)
        secrets = [s.encode() for s in [*settings.SALT_KEY, settings.SECRET_KEY]]
        derived = [f._signing_key + f._encryption_key for f in own.fernet._fernets]
        assert_no_material(self, texts, secrets + derived)
