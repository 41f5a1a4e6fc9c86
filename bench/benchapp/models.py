"""The same row stored several ways; ``migrate --run-syncdb`` creates the tables (no migrations).

Each load model has a short ``name`` and a longer ``notes``, so the load benchmark compares like
with like: only the field classes differ. The rotation models hold one encrypted 11-byte value
(``EncryptedCharField``, an envelope of 47 bytes in a binary column) per row.
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


class RotationRecord(models.Model):
    """The rotation benchmark's table: one encrypted 11-byte value per row."""

    value = fields.EncryptedCharField(max_length=11)


class RotationFloorRecord(models.Model):
    """The rotation floor's table: the same stored bytes in a plain binary column, so the floor
    does the rotation's database work on an identical table without any decryption."""

    value = models.BinaryField()


class SmallRotationRecord(models.Model):
    """The same shape at a smaller size, for the memory measurement at 100,000 rows."""

    value = fields.EncryptedCharField(max_length=11)


class NaiveSaveRecord(models.Model):
    """The same shape, re-encrypted by ``for obj in Model.objects.all(): obj.save()``."""

    value = fields.EncryptedCharField(max_length=11)


class BulkUpdateRecord(models.Model):
    """The same shape, re-encrypted by ``QuerySet.iterator()`` + ``bulk_update()``."""

    value = fields.EncryptedCharField(max_length=11)


class ConversionRecord(models.Model):
    """The conversion benchmark's table: an ``EncryptedCharField`` column in transition (listed
    in ``DATA_ENCRYPTION_LEGACY_COLUMNS``) whose rows hold their 11-character plaintext, as the
    column-type change left them."""

    value = fields.EncryptedCharField(max_length=11)


class ConversionFloorRecord(models.Model):
    """The conversion floor's table: the same stored plaintext bytes in a plain binary column."""

    value = models.BinaryField()


class SmallConversionRecord(models.Model):
    """The same shape at a tenth of the size, for the memory measurement."""

    value = fields.EncryptedCharField(max_length=11)


class NaiveConversionRecord(models.Model):
    """The same shape, converted by ``for obj in Model.objects.all(): obj.save()``."""

    value = fields.EncryptedCharField(max_length=11)


class SearchRecord(models.Model):
    """The search benchmark's table: an 11-character SSN encrypted with a blind index, and the
    same value in a plain indexed column, so one row is fetched by either in the same table."""

    ssn = fields.EncryptedCharField(max_length=11, blind_index=True)
    plain_ssn = models.CharField(max_length=11, db_index=True)


class IndexedSaveRecord(models.Model):
    """The save benchmark's indexed row: an SSN as issue 11 shows it (unique, digits)."""

    ssn = fields.EncryptedCharField(
        max_length=11, blind_index=True, unique=True, normaliser="digits"
    )


class UnindexedSaveRecord(models.Model):
    """The same save without the blind index: the same encrypted field, nothing else."""

    ssn = fields.EncryptedCharField(max_length=11)


class IndexRecord(models.Model):
    """The index-rebuild benchmark's table: one encrypted, indexed 11-byte value per row."""

    value = fields.EncryptedCharField(max_length=11, blind_index=True)


class IndexFloorRecord(models.Model):
    """The index-rebuild floor's table: the same stored bytes and two index columns, plain."""

    value = models.BinaryField()
    # Indexed as the field's index columns are (partial: NULLs left out), so the floor's writes
    # maintain the same indexes.
    value_bidx_a = models.BinaryField(null=True)
    value_bidx_b = models.BinaryField(null=True)

    class Meta:
        indexes = [
            models.Index(
                fields=[name],
                name=f"floor_{name}",
                condition=models.Q(**{f"{name}__isnull": False}),
            )
            for name in ("value_bidx_a", "value_bidx_b")
        ]
