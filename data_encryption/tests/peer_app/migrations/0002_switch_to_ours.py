# Each peer library's field replaced by ours, the column's type changed and no row converted
# (online: the columns are in DATA_ENCRYPTION_LEGACY_COLUMNS, then encrypt_existing).
import data_encryption.fields
import data_encryption.operations
from django.db import migrations

F = data_encryption.fields
COLUMNS = {
    ("fernetrow", "django-fernet-encrypted-fields"): [
        ("char", F.EncryptedCharField(max_length=50, null=True)),
        ("text", F.EncryptedTextField(null=True)),
        ("integer", F.EncryptedIntegerField(null=True)),
        ("day", F.EncryptedDateField(null=True)),
        ("moment", F.EncryptedDateTimeField(null=True)),
    ],
    ("cryptographyrow", "django-cryptography"): [
        ("char", F.EncryptedCharField(max_length=50, null=True)),
        ("text", F.EncryptedTextField(null=True)),
        ("amount", F.EncryptedDecimalField(max_digits=10, decimal_places=2, null=True)),
        ("day", F.EncryptedDateField(null=True)),
        ("moment", F.EncryptedDateTimeField(null=True)),
    ],
    ("modelfieldsrow", "django-encrypted-model-fields"): [
        ("char", F.EncryptedCharField(max_length=50, null=True)),
        ("text", F.EncryptedTextField(null=True)),
        ("email", F.EncryptedEmailField(null=True)),
        ("day", F.EncryptedDateField(null=True)),
        ("moment", F.EncryptedDateTimeField(null=True)),
    ],
}


class Migration(migrations.Migration):

    dependencies = [
        ("peer_app", "0001_initial"),
        ("data_encryption", "0006_rotationrun_kind"),
    ]

    operations = [
        data_encryption.operations.EncryptField(
            model_name=model_name, name=name, field=field, reader=reader, convert=False
        )
        for (model_name, reader), columns in COLUMNS.items()
        for name, field in columns
    ]
