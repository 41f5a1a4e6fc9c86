"""Models the test suite encrypts: the contract's property pattern and every field type."""

from django.db import models

from data_encryption import fields
from data_encryption.services import EncryptionService


class Customer(models.Model):
    """The hand-written property pattern of DESIGN §1, exactly as users write it."""

    name = models.CharField(max_length=100)
    _ssn = models.BinaryField(null=True)

    @property
    def ssn(self):
        return EncryptionService.decrypt(self._ssn)

    @ssn.setter
    def ssn(self, value):
        self._ssn = EncryptionService.encrypt(value)


class Patient(models.Model):
    """One of every encrypted field type."""

    name = models.CharField(max_length=100)
    notes = fields.EncryptedTextField(null=True, blank=True)
    code = fields.EncryptedCharField(max_length=10, null=True, blank=True)
    email = fields.EncryptedEmailField(null=True, blank=True)
    visits = fields.EncryptedIntegerField(null=True, blank=True)
    big = fields.EncryptedBigIntegerField(null=True, blank=True)
    balance = fields.EncryptedDecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    score = fields.EncryptedFloatField(null=True, blank=True)
    active = fields.EncryptedBooleanField(null=True, blank=True)
    birth_date = fields.EncryptedDateField(null=True, blank=True)
    seen_at = fields.EncryptedDateTimeField(null=True, blank=True)
    profile = fields.EncryptedJSONField(null=True, blank=True)
    photo = fields.EncryptedBinaryField(null=True, blank=True)

    def __str__(self):
        return self.name


class Note(models.Model):
    """A required encrypted field with a default, for the non-null paths."""

    title = models.CharField(max_length=50)
    body = fields.EncryptedTextField(default="")


class Applicant(models.Model):
    """A table adopting the app: each encrypted column here was a plain one (``CharField``,
    ``TextField``, ``JSONField``, ``IntegerField``) whose values the conversion tests put back
    in their pre-conversion form and convert with ``encrypt_existing``."""

    name = models.CharField(max_length=100)
    ssn = fields.EncryptedCharField(max_length=11, null=True, blank=True)
    notes = fields.EncryptedTextField(null=True, blank=True)
    profile = fields.EncryptedJSONField(null=True, blank=True)
    visits = fields.EncryptedIntegerField(null=True, blank=True)
