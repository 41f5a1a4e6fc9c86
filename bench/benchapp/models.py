"""The same row stored several ways; ``migrate --run-syncdb`` creates the tables (no migrations).

Each model has a short ``name`` and a longer ``notes``, so the load benchmark compares like with
like: only the field classes differ.
"""

from django.db import models
from encrypted_fields import fields as fernet_fields

from bench.benchapp.fields import BareAesGcmField
from data_encryption import fields


class PlainRecord(models.Model):
    """The baseline: the plain Django fields."""

    name = models.CharField(max_length=100)
    notes = models.TextField()


class EnvelopeRecord(models.Model):
    """This app's encrypted fields (AES-256-GCM envelope in a binary column)."""

    name = fields.EncryptedCharField(max_length=100)
    notes = fields.EncryptedTextField()


class FernetFieldsRecord(models.Model):
    """django-fernet-encrypted-fields (a Fernet token in a text column)."""

    name = fernet_fields.EncryptedCharField(max_length=100)
    notes = fernet_fields.EncryptedTextField()


class BareAesGcmRecord(models.Model):
    """The floor: one ``AESGCM.decrypt`` per value and nothing else (see ``fields``)."""

    name = BareAesGcmField()
    notes = BareAesGcmField()
