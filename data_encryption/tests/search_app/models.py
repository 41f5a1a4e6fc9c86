"""Models of the blind-index tests (``test_blind_index*``): indexed fields of every supported
kind, unique and not, with and without a normaliser, a child model (multi-table inheritance),
and a plain column beside each to compare queries with."""

from django.db import models

from data_encryption import fields


class Person(models.Model):
    name = models.CharField(max_length=50, blank=True)
    ssn = fields.EncryptedCharField(
        max_length=11, blind_index=True, unique=True, normaliser="digits", null=True, blank=True
    )
    email = fields.EncryptedEmailField(blind_index=True, null=True, blank=True)
    # The normalised values, plain, for the tests to compare queries against.
    plain_ssn = models.CharField(max_length=11, null=True, blank=True)
    plain_email = models.CharField(max_length=254, null=True, blank=True)

    def __str__(self):
        return self.name


class Employee(Person):
    badge = fields.EncryptedIntegerField(blind_index=True, null=True)


class Record(models.Model):
    """One indexed field of each kind, no normaliser, not unique."""

    code = fields.EncryptedCharField(max_length=40, blind_index=True, null=True)
    number = fields.EncryptedBigIntegerField(blind_index=True, null=True)
    born = fields.EncryptedDateField(blind_index=True, null=True)
    ref = fields.EncryptedUUIDField(blind_index=True, null=True)
    label = fields.EncryptedTextField(blind_index=True, normaliser="lower", null=True)
    note = fields.EncryptedTextField(null=True)
