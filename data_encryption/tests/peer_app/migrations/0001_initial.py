# The peer libraries, django-cryptography's stand-in for a module Django removed first.
from data_encryption.tests import peer_libraries  # noqa: F401

import django_cryptography.fields
import encrypted_fields.fields
import encrypted_model_fields.fields
from django.db import migrations, models


def _id():
    return ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"))


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="FernetRow",
            fields=[
                _id(),
                ("char", encrypted_fields.fields.EncryptedCharField(max_length=50, null=True)),
                ("text", encrypted_fields.fields.EncryptedTextField(null=True)),
                ("integer", encrypted_fields.fields.EncryptedIntegerField(null=True)),
                ("day", encrypted_fields.fields.EncryptedDateField(null=True)),
                ("moment", encrypted_fields.fields.EncryptedDateTimeField(null=True)),
            ],
        ),
        migrations.CreateModel(
            name="CryptographyRow",
            fields=[
                _id(),
                ("char", django_cryptography.fields.encrypt(models.CharField(max_length=50, null=True))),
                ("text", django_cryptography.fields.encrypt(models.TextField(null=True))),
                ("amount", django_cryptography.fields.encrypt(models.DecimalField(decimal_places=2, max_digits=10, null=True))),
                ("day", django_cryptography.fields.encrypt(models.DateField(null=True))),
                ("moment", django_cryptography.fields.encrypt(models.DateTimeField(null=True))),
            ],
        ),
        migrations.CreateModel(
            name="ModelFieldsRow",
            fields=[
                _id(),
                ("char", encrypted_model_fields.fields.EncryptedCharField(null=True)),
                ("text", encrypted_model_fields.fields.EncryptedTextField(null=True)),
                ("email", encrypted_model_fields.fields.EncryptedEmailField(null=True)),
                ("day", encrypted_model_fields.fields.EncryptedDateField(null=True)),
                ("moment", encrypted_model_fields.fields.EncryptedDateTimeField(null=True)),
            ],
        ),
    ]
