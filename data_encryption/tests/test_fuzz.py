"""Property-based tests: random and mutated input to ``decrypt`` and to every encrypted field's
``from_db_value``. Only the documented exceptions may come out; a valid value always returns."""

import unittest

from django.db import connection

from data_encryption.exceptions import DecryptionError
from data_encryption.fields import ENCRYPTED_FIELD_TYPES
from data_encryption.services import EncryptionService
from data_encryption.tests.testapp.models import Patient
from data_encryption.tests.utils import FreshKeyRingMixin

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from hypothesis.extra.django import TestCase
except ImportError:  # hypothesis is a test extra; a host project may run without it
    from django.test import TestCase

    given = None

FIELDS = [field for field in Patient._meta.get_fields() if isinstance(field, ENCRYPTED_FIELD_TYPES)]
SETTINGS = (
    dict(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck)) if given else {}
)


def mutations():
    """A valid envelope, then bit flips, truncation, extension, splices."""
    return st.tuples(
        st.text(max_size=40),
        st.lists(st.tuples(st.integers(0, 200), st.integers(1, 255)), max_size=4),
        st.one_of(st.none(), st.integers(0, 80)),
        st.binary(max_size=8),
        st.booleans(),
    )


def mutate(text, flips, cut, tail, as_ascii):
    value = bytearray(EncryptionService.encrypt(text))
    for position, mask in flips:
        value[position % len(value)] ^= mask
    if cut is not None:
        value = value[:cut]
    value += tail
    if as_ascii and value[:3] == b"\xffDE" and len(value) > 8:
        try:
            return EncryptionService.to_ascii(bytes(value))
        except DecryptionError:
            return bytes(value)
    return bytes(value)


@unittest.skipIf(given is None, "hypothesis is not installed")
class DecryptFuzzTests(FreshKeyRingMixin, TestCase):
    if given is not None:

        @settings(**SETTINGS)
        @given(st.one_of(st.binary(max_size=120), st.text(max_size=120)))
        def test_random_input_raises_only_decryption_error(self, value):
            try:
                EncryptionService.decrypt(value)
            except DecryptionError:
                pass

        @settings(**SETTINGS)
        @given(mutations())
        def test_mutated_envelopes(self, mutation):
            value = mutate(*mutation)
            try:
                result = EncryptionService.decrypt(value)
            except DecryptionError:
                return
            # Only an unchanged value (or an ASCII copy of it) may decrypt.
            self.assertEqual(result, mutation[0])

        @settings(**SETTINGS)
        @given(
            st.sampled_from(["gAAAAA", "de1:", "de1:01020304:", "\xffDE\x01"]), st.text(max_size=80)
        )
        def test_prefixes_followed_by_garbage(self, prefix, rest):
            for value in (prefix + rest, (prefix + rest).encode("utf-8", "surrogatepass")):
                try:
                    EncryptionService.decrypt(value)
                except DecryptionError:
                    pass


@unittest.skipIf(given is None, "hypothesis is not installed")
class FieldFuzzTests(FreshKeyRingMixin, TestCase):
    if given is not None:

        @settings(**SETTINGS)
        @given(st.sampled_from(FIELDS), st.one_of(st.binary(max_size=80), mutations()))
        def test_from_db_value_raises_only_decryption_error(self, field, raw):
            if isinstance(raw, tuple):
                raw = mutate(*raw)
            try:
                field.from_db_value(raw, None, connection)
            except DecryptionError:
                pass

        @settings(**SETTINGS)
        @given(st.sampled_from(FIELDS), st.text(max_size=30))
        def test_plaintext_of_the_wrong_type_is_a_decryption_error(self, field, text):
            raw = EncryptionService.encrypt(text)
            try:
                field.from_db_value(raw, None, connection)
            except DecryptionError:
                pass
