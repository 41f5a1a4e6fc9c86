"""Encrypted fields' errors never repeat the value: Django's own say ``Field 'visits' expected a
number but got '123-45-6789'`` (the review's L4, exp16)."""

import datetime
import warnings

from django.core.exceptions import ValidationError
from django.test import SimpleTestCase, TestCase

from data_encryption.fields import EncryptedIntegerField
from data_encryption.fields.messages import HIDDEN
from data_encryption.tests.testapp.models import Patient

SECRET = "SSN 123-45-6789"

# Each field given text it cannot hold: what Django's message calls the type, and the class
# Django raises (kept, so code written for the plain fields catches the same).
NOT_THEIR_TYPE = {
    "visits": ("Integer", ValueError),
    "big": ("Big (8 byte) integer", ValueError),
    "balance": ("Decimal number", ValidationError),
    "score": ("Floating point number", ValueError),
    "active": ("Boolean (Either True or False)", ValidationError),
    "birth_date": ("Date (without time)", ValidationError),
    "seen_at": ("Date (with time)", ValidationError),
}


def chain(exc):
    """``exc`` and every exception chained to it (cause or context)."""
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def texts_of(exc):
    texts = []
    for error in chain(exc):
        texts += [str(error), repr(error)]
        if isinstance(error, ValidationError):
            for item in error.error_list if not hasattr(error, "error_dict") else []:
                texts.append(repr(item.params))
            if hasattr(error, "error_dict"):
                for items in error.error_dict.values():
                    texts += [repr(item.params) for item in items]
    return "\n".join(texts)


class SaveErrorTests(TestCase):
    def test_saving_a_value_of_the_wrong_type_does_not_repeat_it(self):
        for name, (expected, error_class) in NOT_THEIR_TYPE.items():
            with self.subTest(field=name):
                with self.assertRaises(error_class) as caught:
                    Patient.objects.create(name="p", **{name: SECRET})
                text = texts_of(caught.exception)
                self.assertNotIn(SECRET, text)
                self.assertIn(f"Patient.{name} expected a value of type '{expected}'", text)
                self.assertIn("not repeated here because the field is encrypted", text)
        with self.assertRaises(TypeError) as caught:
            Patient.objects.create(name="p", visits=[SECRET])
        self.assertNotIn(SECRET, texts_of(caught.exception))

    def test_update_does_not_repeat_the_value(self):
        patient = Patient.objects.create(name="p", visits=1)
        with self.assertRaises(ValueError) as caught:
            Patient.objects.filter(pk=patient.pk).update(visits=SECRET)
        self.assertNotIn(SECRET, texts_of(caught.exception))

    def test_a_naive_datetime_warning_names_the_field_not_the_value(self):
        naive = datetime.datetime(1970, 1, 1, 12, 34, 56)
        for value in (naive, naive.date()):
            with (
                self.subTest(value=value),
                warnings.catch_warnings(record=True) as caught,
            ):
                warnings.simplefilter("always")
                patient = Patient.objects.create(name="p", seen_at=value)
                messages = [str(warning.message) for warning in caught]
                self.assertTrue(messages)
                for message in messages:
                    self.assertIn("Patient.seen_at received a naive datetime", message)
                    self.assertNotIn("1970", message)
                patient.refresh_from_db()
                expected = (
                    naive
                    if isinstance(value, datetime.datetime)
                    else naive.replace(hour=0, minute=0, second=0)
                )
                self.assertEqual(patient.seen_at, expected.replace(tzinfo=datetime.UTC))


class FullCleanTests(TestCase):
    def messages(self, **values):
        with self.assertRaises(ValidationError) as caught:
            Patient(name="p", **values).full_clean()
        self.assertNotIn(SECRET, texts_of(caught.exception))
        return caught.exception

    def test_full_clean_does_not_repeat_the_value(self):
        for name, (expected, _) in NOT_THEIR_TYPE.items():
            with self.subTest(field=name):
                error = self.messages(**{name: SECRET})
                [message] = error.message_dict[name]
                self.assertEqual(
                    message,
                    f"Patient.{name} expected a value of type '{expected}', and the value given "
                    "is not one; it is not repeated here because the field is encrypted.",
                )
                self.assertIn(error.error_dict[name][0].code, {"invalid", "invalid_date"})

    def test_validators_keep_their_message_without_the_value_in_params(self):
        error = self.messages(email=SECRET, code=SECRET)
        self.assertEqual(error.message_dict["email"], ["Enter a valid email address."])
        [email] = error.error_dict["email"]
        self.assertEqual(email.params, {"value": HIDDEN})
        # The length validator shows the length, not the value: kept.
        self.assertEqual(
            error.message_dict["code"], ["Ensure this value has at most 10 characters (it has 15)."]
        )
        self.assertEqual(error.error_dict["code"][0].params["value"], HIDDEN)
        error = Patient(name="p", visits=2**40)
        with self.assertRaises(ValidationError) as caught:
            error.full_clean()
        [visits] = caught.exception.error_dict["visits"]
        self.assertEqual(visits.params["value"], HIDDEN)
        self.assertEqual(visits.params["show_value"], HIDDEN)
        self.assertNotIn(str(2**40), texts_of(caught.exception))

    def test_json_validation_does_not_hold_the_value(self):
        error = self.messages(profile={"ssn": SECRET, "bad": object()})
        self.assertEqual(error.message_dict["profile"], ["Value must be valid JSON."])


class UnboundFieldTests(SimpleTestCase):
    def test_a_field_not_on_a_model_names_itself(self):
        with self.assertRaisesMessage(ValueError, "visits expected a value of type 'Integer'"):
            EncryptedIntegerField(name="visits").get_prep_value(SECRET)
