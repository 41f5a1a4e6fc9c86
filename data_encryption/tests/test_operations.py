"""EncryptField and DecryptField on every supported type: forwards, every value is an envelope
that reads back as the original; backwards, the plain column (type, nullability, unique, index,
CHECK) and every stored value are exactly what they were."""

import datetime
import decimal
import uuid
from unittest import skipUnless

from django.db import connection, models
from django.test import override_settings

from data_encryption import fields
from data_encryption.operations import DecryptField, EncryptField
from data_encryption.tests.operations_support import OperationTestCase

UTC = datetime.UTC
EAST = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
NESTED = {"ü": [1, None, "naïve ☃", {"deep": [None, True, 1.5]}], "empty": {}}

# (name, plain field, encrypted field, values); every list has NULL unless the field refuses it.
TYPES = [
    ("text", models.TextField(null=True), fields.EncryptedTextField(null=True),
     ["", "héllo ✓ 𝄞", "back\\slash \\x41 'q'", "line\nbreak", None]),
    ("char", models.CharField(max_length=11, unique=True, null=True),
     fields.EncryptedCharField(max_length=11, null=True),
     ["", "123-45-6789", "ü" * 11, "\\x00", None]),
    ("email", models.EmailField(db_index=True, null=True), fields.EncryptedEmailField(null=True),
     ["a@example.com", "a@ünï.example", "", None, "b@example.com"]),
    ("integer", models.IntegerField(null=True), fields.EncryptedIntegerField(null=True),
     [-(2**31), 2**31 - 1, 0, None, 7]),
    ("big", models.BigIntegerField(db_index=True), fields.EncryptedBigIntegerField(),
     [-(2**63), 2**63 - 1, 0, -1, 1]),
    ("amount", models.DecimalField(max_digits=12, decimal_places=4, null=True),
     fields.EncryptedDecimalField(max_digits=12, decimal_places=4, null=True),
     [decimal.Decimal("-99999999.9999"), decimal.Decimal("0.0000"),
      decimal.Decimal("99999999.9999"), None, decimal.Decimal("12.3400")]),
    ("ratio", models.FloatField(null=True), fields.EncryptedFloatField(null=True),
     [0.1, -1e-300, 1.7976931348623157e308, None, float("inf")]),
    ("flag", models.BooleanField(null=True), fields.EncryptedBooleanField(null=True),
     [True, False, None, True, False]),
    ("day", models.DateField(null=True), fields.EncryptedDateField(null=True),
     [datetime.date(1, 1, 1), datetime.date(9999, 12, 31), datetime.date(2024, 2, 29), None,
      datetime.date(1970, 1, 1)]),
    ("moment", models.DateTimeField(null=True), fields.EncryptedDateTimeField(null=True),
     [datetime.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
      datetime.datetime(1999, 12, 31, 20, 0, tzinfo=EAST),
      datetime.datetime(2000, 1, 1, tzinfo=UTC), None,
      datetime.datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)]),
    ("document", models.JSONField(null=True), fields.EncryptedJSONField(null=True),
     [NESTED, [], "a string", None, 0]),
    ("blob", models.BinaryField(null=True), fields.EncryptedBinaryField(null=True),
     [b"", b"\x00\xff\xfe", b"\\x41", None, "ünïcode".encode()]),
]  # fmt: skip

# The field types added by issue 10: (name, type, options, values).
_NEW_TYPES = [
    ("small", "SmallIntegerField", {"null": True}, [-32768, 32767, 0, None, 5]),
    ("positive", "PositiveIntegerField", {}, [0, 2**31 - 1, 1, 2, 3]),
    ("psmall", "PositiveSmallIntegerField", {"null": True}, [0, 32767, None, 1, 2]),
    ("pbig", "PositiveBigIntegerField", {}, [0, 2**63 - 1, 1, 2, 3]),
    ("clock", "TimeField", {"null": True},
     [datetime.time(0, 0), datetime.time(23, 59, 59, 999999), None, datetime.time(12, 0, 1),
      datetime.time(0, 0, 0, 1)]),
    ("span", "DurationField", {"null": True},
     [datetime.timedelta(microseconds=-1), datetime.timedelta(days=-3, hours=5),
      datetime.timedelta(days=999999, microseconds=999999), None, datetime.timedelta(0)]),
    ("token", "UUIDField", {"null": True, "unique": True},
     [uuid.UUID(int=0), uuid.UUID("12345678-1234-5678-1234-567812345678"), None,
      uuid.UUID(int=2**128 - 1), uuid.UUID(int=7)]),
    ("address", "GenericIPAddressField", {"null": True},
     ["127.0.0.1", "2001:db8::1", None, "::ffff:10.0.0.1", "255.255.255.255"]),
    ("link", "URLField", {"null": True},
     ["https://example.com/ü?q=1", "", None, "http://x.org", "ftp://a.example/ü"]),
    ("slug", "SlugField", {"null": True}, ["a-b_c", "", None, "z" * 50, "x"]),
]  # fmt: skip
for _name, _type, _options, _values in _NEW_TYPES:
    # A plain SlugField is indexed; an encrypted one cannot be, nor unique.
    _plain_options = {**_options, **({"db_index": True} if _type == "SlugField" else {})}
    _new_options = {key: value for key, value in _options.items() if key != "unique"}
    _encrypted = getattr(fields, f"Encrypted{_type}")(**_new_options)
    TYPES.append((_name, getattr(models, _type)(**_plain_options), _encrypted, _values))

ROWS = 5


def _fresh(field):
    _name, _path, args, kwargs = field.deconstruct()
    return type(field)(*args, **kwargs)


class EveryTypeTests(OperationTestCase):
    types = TYPES

    def setUp(self):
        super().setUp()
        self.state = self.make_table([(name, _fresh(plain)) for name, plain, _, _ in self.types])
        model = self.model(self.state)
        model.objects.bulk_create(
            [
                model(**{name: values[row] for name, _, _, values in self.types})
                for row in range(ROWS)
            ]
        )
        self.originals = self.values(self.state)
        self.stored = {name: self.raw_rows(model, name) for name, *_ in self.types}
        self.described = self.columns(model)
        self.constrained = self.constraints(model)

    def values(self, state):
        model = self.model(state)
        names = [name for name, *_ in self.types]
        return {row["id"]: row for row in model.objects.order_by("id").values("id", *names)}

    def encrypt_all(self):
        operations, state = [], self.state
        for name, _plain, encrypted, _values in self.types:
            operation = EncryptField(self.model_name.lower(), name, _fresh(encrypted))
            operations.append((operation, state, state := self.apply(operation, state)))
        return operations, state

    def test_forwards_every_value_is_an_envelope_that_reads_back(self):
        _operations, state = self.encrypt_all()
        model = self.model(state)
        for name, *_ in self.types:
            self.assertEqual(self.columns(model)[name][0], "BinaryField", name)
            self.assert_all_envelopes(model, name)
        self.assertEqual(self.constraints(model), [])  # unique, index, CHECK: all dropped
        self.assertEqual(self.values(state), self.originals)

    def test_backwards_gives_the_plain_columns_and_values_back(self):
        operations, _state = self.encrypt_all()
        for operation, before, after in reversed(operations):
            self.unapply(operation, before, after)
        model = self.model(self.state)
        self.assertEqual(self.columns(model), self.described)
        self.assertEqual(self.constraints(model), self.constrained)
        self.assertEqual(self.values(self.state), self.originals)
        for name, *_ in self.types:
            self.assertEqual(self.raw_rows(model, name), self.stored[name], name)

    def test_decrypt_field_leaves_the_library_and_comes_back(self):
        _operations, encrypted_state = self.encrypt_all()
        state = encrypted_state
        for name, plain, _encrypted, _values in self.types:
            operation = DecryptField(self.model_name.lower(), name, _fresh(plain))
            state = self.apply(operation, state)
        model = self.model(state)
        self.assertEqual(self.columns(model), self.described)
        self.assertEqual(self.constraints(model), self.constrained)
        self.assertEqual(self.values(state), self.originals)
        name, plain, encrypted, _values = self.types[0]
        operation = DecryptField(self.model_name.lower(), name, _fresh(plain))
        before = self.apply(EncryptField(self.model_name.lower(), name, _fresh(encrypted)), state)
        after = self.apply(operation, before)
        self.unapply(operation, before, after)  # DecryptField backwards: EncryptField forwards
        self.assert_all_envelopes(self.model(before), name)
        self.assertEqual(self.values(before), self.originals)


@override_settings(USE_TZ=False, TIME_ZONE="America/New_York")
class NaiveDateTimeTests(EveryTypeTests):
    """Without time zone support, datetimes are wall-clock times in TIME_ZONE."""

    types = [
        ("moment", models.DateTimeField(null=True), fields.EncryptedDateTimeField(null=True),
         [datetime.datetime(2024, 3, 10, 2, 30), datetime.datetime(1999, 12, 31, 23, 59, 59, 1),
          None, datetime.datetime(2024, 11, 3, 1, 30), datetime.datetime(2000, 7, 1)]),
    ]  # fmt: skip


@skipUnless(connection.vendor == "postgresql", "SQLite stores durations in 64-bit microseconds")
class ExtremeDurationTests(OperationTestCase):
    """PostgreSQL's interval holds ``timedelta.max`` and ``min`` (999,999,999 days), far past
    64-bit microseconds: both convert and come back exactly."""

    values = [datetime.timedelta.max, datetime.timedelta.min, None, datetime.timedelta(0)]

    def test_the_largest_durations_convert_both_ways(self):
        state = self.make_table([("span", models.DurationField(null=True))])
        model = self.model(state)
        model.objects.bulk_create([model(span=value) for value in self.values])
        stored = self.raw_rows(model, "span")
        operation = EncryptField("everything", "span", fields.EncryptedDurationField(null=True))
        after = self.apply(operation, state)
        self.assert_all_envelopes(self.model(after), "span")
        read = self.model(after).objects.order_by("id").values_list("span", flat=True)
        self.assertEqual(list(read), self.values)
        self.unapply(operation, state, after)
        self.assertEqual(self.raw_rows(model, "span"), stored)
        back = DecryptField("everything", "span", models.DurationField(null=True))
        self.apply(back, self.apply(operation, state))
        self.assertEqual(self.raw_rows(model, "span"), stored)
