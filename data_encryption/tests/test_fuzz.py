"""Property-based tests: random and mutated input to every entry point that reads stored bytes
(``EncryptionService.decrypt`` with and without a context, ``decrypt_bytes`` and each encrypted
field's ``from_db_value``). Only the documented exceptions may come out (``DecryptionError``);
a valid value always returns, and a bound value only in its own context.

Each entry point gets ``DATA_ENCRYPTION_FUZZ_EXAMPLES`` examples (300 by default, so one module
runs in seconds; ``scripts/test.sh`` sets 10,000 in one of its configurations). Every example
goes through every field, so each field's ``from_db_value`` sees all of them. The strategies
are built from bytes, hypothesis's cheapest draws: the cost per example is hypothesis's own.
"""

import os
import unittest

from django.db import connection
from django.test import TestCase

from data_encryption.exceptions import DecryptionError
from data_encryption.fields import ENCRYPTED_FIELD_TYPES
from data_encryption.services import EncryptionService
from data_encryption.tests.testapp.models import Patient
from data_encryption.tests.utils import FreshKeyRingMixin

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # hypothesis is a test extra; a host project may run without it
    given = None

EXAMPLES = int(os.environ.get("DATA_ENCRYPTION_FUZZ_EXAMPLES", "300"))
FIELDS = [field for field in Patient._meta.get_fields() if isinstance(field, ENCRYPTED_FIELD_TYPES)]
PREFIXES = [b"gAAAAA", b"de1:", b"de1:0000001f:", b"de2:", b"\xffDE\x01", b"\xffDE\x02", b"\xffDE"]
# Bound values in the examples are bound to the notes field's column, so that field opens them.
CONTEXT = "data_encryption_tests.Patient.notes"
# Plaintexts each field type can read (and some it cannot), for valid values to mutate.
PLAINTEXTS = ["", "x", "Zoë — 東京", "123-45-6789", "42", "-7", "12.50", "1", "0", "inf"]
PLAINTEXTS += ["2024-02-29", "2024-02-29T13:45:00+00:00", '{"a": [1, null]}', "[" * 3000]


def mutate(text, spec, context=None):
    """A valid envelope of ``text`` (bound to ``context``, if given), changed as ``spec`` says: its
    first byte picks truncation, an appended tail and the ASCII form; then (position, mask) pairs
    flip bits."""
    value = bytearray(EncryptionService.encrypt(text, context=context))
    flags, body = (spec[0], spec[1:]) if spec else (0, b"")
    flips, rest = body[:8], body[8:]
    for position, mask in zip(flips[::2], flips[1::2], strict=False):
        value[position % len(value)] ^= mask
    if flags & 1 and rest:
        value = value[: rest[0] % (len(value) + 1)]
    if flags & 2:
        value += rest[1:]
    if flags & 4 and value[:3] == b"\xffDE" and len(value) > 8:
        try:
            return EncryptionService.to_ascii(bytes(value))
        except DecryptionError:
            pass
    return bytes(value)


if given is not None:
    SETTINGS = settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    #: Anything a column or a client could hand over: random bytes and text, prefixes of every
    #: kind followed by garbage, in bytes or text, and valid values mutated (tagged "m").
    stored_values = st.one_of(
        st.binary(max_size=120),
        st.binary(max_size=120).map(lambda data: data.decode("utf-8", "replace")),
        st.tuples(st.sampled_from(PREFIXES), st.binary(max_size=80), st.booleans()).map(
            lambda parts: (
                parts[0] + parts[1] if parts[2] else (parts[0] + parts[1]).decode("latin-1")
            )
        ),
        st.tuples(st.just("m"), st.sampled_from(PLAINTEXTS), st.binary(max_size=24)),
        st.tuples(st.just("b"), st.sampled_from(PLAINTEXTS), st.binary(max_size=24)),
        st.binary(max_size=60).map(bytearray),
        st.binary(max_size=60).map(memoryview),
    )


def materialize(example):
    """The stored value an example stands for, the plaintext it gives if it decrypts, and the
    context it is bound to (``None``: unbound)."""
    if isinstance(example, tuple):
        tag, text, spec = example
        context = CONTEXT if tag == "b" else None
        return mutate(text, spec, context), text, context
    return example, None, None


def _fuzz(examine):
    """A test that hands ``EXAMPLES`` stored values to ``examine(test, value, plaintext)``."""

    @unittest.skipIf(given is None, "hypothesis is not installed")
    def test(self):
        # @given on a function inside the test, not on the method: hypothesis would otherwise
        # want a transaction per example, and these examples never write to the database.
        @SETTINGS
        @given(stored_values)
        def run(example):
            examine(self, *materialize(example))

        run()

    return test


def _decrypt(test, value, plaintext, context):
    try:
        result = EncryptionService.decrypt(value)
    except DecryptionError:
        return
    # Only an unchanged value (or its ASCII copy) decrypts, and never a bound one here.
    test.assertIsNone(context)
    test.assertEqual(result, plaintext)


def _decrypt_in_context(test, value, plaintext, context):
    try:
        result = EncryptionService.decrypt(value, context=CONTEXT)
    except DecryptionError:
        return
    test.assertEqual(result, plaintext)  # unbound values open in any context, bound in theirs


def _decrypt_in_another_context(test, value, plaintext, context):
    try:
        result = EncryptionService.decrypt(value, context=CONTEXT + "#1")
    except DecryptionError:
        return
    test.assertIsNone(context)  # a value bound elsewhere never opens here
    test.assertEqual(result, plaintext)


def _decrypt_bytes(test, value, plaintext, context):
    try:
        result = EncryptionService.decrypt_bytes(value, context=context)
    except DecryptionError:
        return
    test.assertEqual(result, plaintext.encode())


def _from_db_value(test, value, plaintext, context):
    for field in FIELDS:
        try:
            field.from_db_value(value, None, connection)
        except DecryptionError:
            pass


class DecryptFuzzTests(FreshKeyRingMixin, TestCase):
    test_decrypt_raises_only_decryption_error = _fuzz(_decrypt)
    test_decrypt_in_a_context_raises_only_decryption_error = _fuzz(_decrypt_in_context)
    test_decrypt_in_another_context_raises_only_decryption_error = _fuzz(
        _decrypt_in_another_context
    )
    test_decrypt_bytes_raises_only_decryption_error = _fuzz(_decrypt_bytes)


class FieldFuzzTests(FreshKeyRingMixin, TestCase):
    # Every example goes through all 12 field types: each from_db_value gets EXAMPLES values
    # (bound ones are bound to notes, so they are valid there and moved values elsewhere).
    test_from_db_value_raises_only_decryption_error = _fuzz(_from_db_value)
