"""A throwaway app, installed only by the tests of the property pattern in transition
(``test_property_pattern_transition``): DESIGN §1's ``Customer``, its ``_ssn`` filled in place
from a plain ``ssn`` column (see its migrations)."""

from django.db import models

from data_encryption.services import EncryptionService

COLUMN = "property_app.Customer._ssn"


class Customer(models.Model):
    name = models.CharField(max_length=100)
    _ssn = models.BinaryField(null=True)

    @property
    def ssn(self):
        return EncryptionService.decrypt_column(self._ssn, COLUMN)

    @ssn.setter
    def ssn(self, value):
        self._ssn = EncryptionService.encrypt(value)
