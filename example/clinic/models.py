"""The demo's models: one written with the hand-made property pattern, one with fields."""

from django.db import models

from data_encryption.fields import (
    EncryptedCharField,
    EncryptedDateField,
    EncryptedJSONField,
    EncryptedTextField,
)
from data_encryption.services import EncryptionService


class Customer(models.Model):
    """The property pattern: a BinaryField and a property that encrypts and decrypts."""

    name = models.CharField(max_length=100)
    _ssn = models.BinaryField(null=True)

    @property
    def ssn(self) -> str | None:
        return EncryptionService.decrypt(self._ssn)

    @ssn.setter
    def ssn(self, value: str | None) -> None:
        self._ssn = EncryptionService.encrypt(value)

    def __str__(self) -> str:
        return self.name


class Patient(models.Model):
    """The same idea with encrypted fields declared instead of properties."""

    name = models.CharField(max_length=100)
    diagnosis = EncryptedTextField()
    # A blind index: found by exact value ("ins-0042-77" too), unique, still encrypted.
    insurance_number = EncryptedCharField(
        max_length=20, blind_index=True, unique=True, normaliser="lower"
    )
    birth_date = EncryptedDateField(null=True, blank=True)
    allergies = EncryptedJSONField(default=list, blank=True)

    def __str__(self) -> str:
        return self.name
