"""The plaintext reader's direct paths: for every field type that has one and every edge value,
the same plaintext as the generic path (read, validate, prepare, encode), or the same failure
with the same text; and no direct path where the generic one might differ."""

from django.core import validators
from django.core.exceptions import ValidationError
from django.test import SimpleTestCase

from data_encryption import fields
from data_encryption.legacy import LegacyColumn, load_reader, plaintext_from_legacy
from data_encryption.legacy.plaintext import PlaintextReader
from data_encryption.tests.testapp.models import Customer, Patient

READER = load_reader("plaintext")


def no_secret(value):
    if "secret" in value:
        raise ValidationError("no secrets here", code="secret")


def shouting(value):
    if value.isupper():
        raise TypeError("a validator's own bug")  # the generic path reports it as a failure


def unattached(field, name):
    field.set_attributes_from_name(name)
    return field


# The text fields, as a column in transition meets them: each of the module's classes, with and
# without max_length, with validators of the user's.
TEXT_FIELDS = {
    "EncryptedTextField": lambda: Patient._meta.get_field("notes"),
    "EncryptedCharField(max_length=10)": lambda: Patient._meta.get_field("code"),
    "EncryptedEmailField": lambda: Patient._meta.get_field("email"),
    "EncryptedURLField": lambda: Patient._meta.get_field("homepage"),
    "EncryptedSlugField": lambda: Patient._meta.get_field("slug"),
    "EncryptedCharField()": lambda: unattached(fields.EncryptedCharField(), "free"),
    "EncryptedCharField with validators": lambda: unattached(
        fields.EncryptedCharField(
            max_length=12,
            validators=[no_secret, shouting, validators.MaxLengthValidator(8)],
        ),
        "guarded",
    ),
    "EncryptedTextField with a callable limit": lambda: unattached(
        fields.EncryptedTextField(validators=[validators.MaxLengthValidator(lambda: 5)]),
        "limited",
    ),
}

TEXTS = [
    "",
    " ",
    "a",
    "0123456789",  # at max_length 10
    "01234567890",  # one past it
    "x" * 300,  # past the URL and slug fields' defaults
    "ünïcødé",  # 7 characters, 11 bytes: fits 10 by characters, not by bytes
    "日本語テキスト漢字",  # 9 characters, 27 bytes
    "日本語テキスト漢字字字",  # 11 characters
    "𝄞" * 10,  # 4-byte characters
    "\x00nul",
    "\ufeffbom",
    "line\nbreak\ttab",
    "secret",
    "ABC",
    "my-slug_1",
    "a.b+c@example.com",
    "https://example.com/path?q=1",
    "not an email or url",
]

# Bytes that are no UTF-8, or that a lenient decoder would accept.
NOT_UTF8 = [
    b"caf\xe9",
    b"\xff\xfe",
    b"\xc0\xaf",  # an overlong "/"
    b"\xed\xa0\x80",  # a surrogate, encoded
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"abc\x80",
    b"\xe6\x97",  # a character cut short
]

# What SQLite may hand over besides text, and other shapes a walk may meet.
OTHER_RAW = ["\ud800", "a\udfffb", 12, 1.5, bytearray(b"bytearray"), memoryview(b"memoryview")]


def outcome(path, raw):
    """What ``path`` does with ``raw``: ``("ok", plaintext)`` or ``("error", class, text)``."""
    try:
        return ("ok", bytes(path(raw)))
    except Exception as exc:
        return ("error", type(exc), str(exc))


class TextPathTests(SimpleTestCase):
    def test_each_field_and_value_gives_what_the_generic_path_gives(self):
        raws = [
            *(text.encode() for text in TEXTS),
            *TEXTS,
            *NOT_UTF8,
            *OTHER_RAW,
        ]
        for name, make_field in TEXT_FIELDS.items():
            column = LegacyColumn(READER, make_field())
            self.assertNotEqual(column.plaintext, column.generic_plaintext, name)
            for raw in raws:
                with self.subTest(field=name, raw=raw):
                    self.assertEqual(
                        outcome(column.plaintext, raw),
                        outcome(column.generic_plaintext, raw),
                    )

    def test_a_value_that_fits_is_sealed_as_stored(self):
        column = LegacyColumn(READER, Patient._meta.get_field("code"))
        for stored in ["ünïcødé".encode(), b"0123456789", b""]:  # the last two: at the limits
            with self.subTest(stored=stored):
                self.assertIs(column.plaintext(stored), stored)

    def test_the_failures_are_the_generic_paths_and_never_quote_the_value(self):
        column = LegacyColumn(READER, Patient._meta.get_field("code"))
        for raw, code in [
            (b"01234567890", "max_length 10"),
            ("01234567890", "max_length 10"),
            (b"caf\xe9", "is not UTF-8 text"),
        ]:
            with self.subTest(raw=raw):
                kind, _, text = outcome(column.plaintext, raw)
                self.assertEqual(kind, "error")
                self.assertIn(code, text)
                self.assertNotIn("0123", text)
                self.assertNotIn("caf", text)


class RawColumnPathTests(SimpleTestCase):
    def test_a_raw_columns_values_give_what_the_generic_path_gives(self):
        column = LegacyColumn(READER, Customer._meta.get_field("_ssn"))
        self.assertNotEqual(column.plaintext, column.generic_plaintext)
        for raw in [b"", b"123-45-6789", b"\xff\xfe", "text", "\ud800", 12, bytearray(b"ba")]:
            with self.subTest(raw=raw):
                self.assertEqual(
                    outcome(column.plaintext, raw),
                    outcome(lambda value: plaintext_from_legacy(READER, column.field, value), raw),
                )


class NoDirectPathTests(SimpleTestCase):
    """Where a direct path could differ from the generic one, the generic one is used."""

    def assertGeneric(self, reader, field):
        column = LegacyColumn(reader, field)
        self.assertEqual(column.plaintext, column.generic_plaintext)

    def test_a_subclass_of_a_text_field(self):
        class Upper(fields.EncryptedCharField):
            def to_plaintext(self, value):
                return str(value).upper().encode()

        self.assertGeneric(READER, unattached(Upper(max_length=5), "upper"))

    def test_a_text_field_that_validates_empty_values(self):
        field = unattached(fields.EncryptedCharField(max_length=5), "strict")
        field.empty_values = [None]
        self.assertGeneric(READER, field)

    def test_a_subclass_of_the_reader(self):
        class Trimming(PlaintextReader):
            def read(self, raw, field):
                return super().read(raw.strip(), field)

        self.assertGeneric(Trimming(), Patient._meta.get_field("code"))

    def test_other_field_types(self):
        for name in ("visits", "balance", "birth_date", "profile", "photo", "record_uuid"):
            with self.subTest(field=name):
                self.assertGeneric(READER, Patient._meta.get_field(name))

    def test_another_reader(self):
        reader = load_reader(
            {
                "READER": "django-encrypted-model-fields",
                "OPTIONS": {"FIELD_ENCRYPTION_KEY": "p" * 43 + "="},
            }
        )
        self.assertGeneric(reader, Patient._meta.get_field("code"))
