"""Models of the blind-index tests (``test_blind_index*``): indexed fields of every supported
kind, unique and not, with and without a normaliser, a child model (multi-table inheritance),
and a plain column beside each to compare queries with."""

import uuid

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
    # The normalised values, plain (``test_blind_index_equivalence``).
    plain_code = models.CharField(max_length=40, null=True)
    plain_number = models.BigIntegerField(null=True)
    plain_born = models.DateField(null=True)
    plain_ref = models.UUIDField(null=True)
    plain_label = models.TextField(null=True)


class Visit(models.Model):
    """Rows that point at a ``Person``: lookups through a relation (``person__ssn=``)."""

    person = models.ForeignKey(Person, models.CASCADE, related_name="visits")
    place = models.CharField(max_length=20)


def compact_upper(text):
    """A module-level normaliser, named by dotted path in ``Contact.phone`` and passed as the
    function itself in ``Contact.code``."""
    return "".join(text.split()).upper()


class Contact(models.Model):
    """An abstract base whose indexed fields two concrete children inherit."""

    phone = fields.EncryptedCharField(
        max_length=30,
        blind_index=True,
        unique=True,
        normaliser="data_encryption.tests.search_app.models.compact_upper",
    )
    code = fields.EncryptedCharField(
        max_length=30, blind_index=True, normaliser=compact_upper, null=True
    )

    class Meta:
        abstract = True


class Supplier(Contact):
    pass


class Client(Contact):
    pass


class PersonProxy(Person):
    class Meta:
        proxy = True


class BoundCard(models.Model):
    """An indexed field whose ciphertext is bound to its row's primary key."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    number = fields.EncryptedCharField(
        max_length=30, blind_index=True, unique=True, normaliser="digits", bind_to_pk=True
    )
