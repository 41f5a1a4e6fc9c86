"""Models the test suite encrypts: the contract's property pattern and every field type."""

from django.db import models

from data_encryption import fields
from data_encryption.services import EncryptionService
from data_encryption.tests import peer_libraries as peers


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


class PlainValues(models.Model):
    """Every plain field type, as a column holds it before it becomes encrypted: what the
    plaintext legacy reader reads."""

    text = models.TextField(null=True)
    char = models.CharField(max_length=10, null=True)
    email = models.EmailField(null=True)
    integer = models.IntegerField(null=True)
    big = models.BigIntegerField(null=True)
    decimal = models.DecimalField(max_digits=10, decimal_places=2, null=True)
    number = models.FloatField(null=True)
    flag = models.BooleanField(null=True)
    day = models.DateField(null=True)
    moment = models.DateTimeField(null=True)
    time = models.TimeField(null=True)
    duration = models.DurationField(null=True)
    uid = models.UUIDField(null=True)
    ip = models.GenericIPAddressField(null=True)
    document = models.JSONField(null=True)
    blob = models.BinaryField(null=True)


class FernetFieldsRow(models.Model):
    """Values written by django-fernet-encrypted-fields' own fields."""

    char = peers.fernet_fields.EncryptedCharField(max_length=50, null=True)
    text = peers.fernet_fields.EncryptedTextField(null=True)
    integer = peers.fernet_fields.EncryptedIntegerField(null=True)
    number = peers.fernet_fields.EncryptedFloatField(null=True)
    flag = peers.fernet_fields.EncryptedBooleanField(null=True)
    day = peers.fernet_fields.EncryptedDateField(null=True)
    moment = peers.fernet_fields.EncryptedDateTimeField(null=True)
    email = peers.fernet_fields.EncryptedEmailField(null=True)
    document = peers.fernet_fields.EncryptedJSONField(null=True)


class EncryptedModelFieldsRow(models.Model):
    """Values written by django-encrypted-model-fields' own fields. No integer columns: the
    library's integer fields cannot save on PostgreSQL under Django 5 (the backend adapts an
    integer by the internal type, "TextField"); integers are tested through its cipher."""

    char = peers.encrypted_model_fields.EncryptedCharField(max_length=50, null=True)
    text = peers.encrypted_model_fields.EncryptedTextField(null=True)
    flag = peers.encrypted_model_fields.EncryptedBooleanField(null=True)
    day = peers.encrypted_model_fields.EncryptedDateField(null=True)
    moment = peers.encrypted_model_fields.EncryptedDateTimeField(null=True)
    email = peers.encrypted_model_fields.EncryptedEmailField(null=True)


class DjangoCryptographyRow(models.Model):
    """Values written by django-cryptography's ``encrypt(...)`` fields. No integer column: the
    library's encrypted IntegerField fails Django's system checks on PostgreSQL (its validators
    ask the backend for the range of a "BinaryField"); integers are tested through its cipher."""

    char = peers.django_cryptography_fields.encrypt(models.CharField(max_length=50, null=True))
    text = peers.django_cryptography_fields.encrypt(models.TextField(null=True))
    decimal = peers.django_cryptography_fields.encrypt(
        models.DecimalField(max_digits=10, decimal_places=2, null=True)
    )
    number = peers.django_cryptography_fields.encrypt(models.FloatField(null=True))
    flag = peers.django_cryptography_fields.encrypt(models.BooleanField(null=True))
    day = peers.django_cryptography_fields.encrypt(models.DateField(null=True))
    moment = peers.django_cryptography_fields.encrypt(models.DateTimeField(null=True))
    document = peers.django_cryptography_fields.encrypt(models.JSONField(null=True))
    uid = peers.django_cryptography_fields.encrypt(models.UUIDField(null=True))
