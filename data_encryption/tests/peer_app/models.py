"""A throwaway app, installed only by ``test_peer_conversions``: one model per peer library,
created with the library's fields (migration 0001) and switched to ours (0002:
``EncryptField(..., reader=<library>, convert=False)``); this is the state after 0002."""

from django.db import models

from data_encryption import fields

READERS = {
    "FernetRow": "django-fernet-encrypted-fields",
    "CryptographyRow": "django-cryptography",
    "ModelFieldsRow": "django-encrypted-model-fields",
}


class FernetRow(models.Model):
    char = fields.EncryptedCharField(max_length=50, null=True)
    text = fields.EncryptedTextField(null=True)
    integer = fields.EncryptedIntegerField(null=True)
    day = fields.EncryptedDateField(null=True)
    moment = fields.EncryptedDateTimeField(null=True)


class CryptographyRow(models.Model):
    char = fields.EncryptedCharField(max_length=50, null=True)
    text = fields.EncryptedTextField(null=True)
    amount = fields.EncryptedDecimalField(max_digits=10, decimal_places=2, null=True)
    day = fields.EncryptedDateField(null=True)
    moment = fields.EncryptedDateTimeField(null=True)


class ModelFieldsRow(models.Model):
    char = fields.EncryptedCharField(max_length=50, null=True)
    text = fields.EncryptedTextField(null=True)
    email = fields.EncryptedEmailField(null=True)
    day = fields.EncryptedDateField(null=True)
    moment = fields.EncryptedDateTimeField(null=True)
