# The migration docs/adoption.md shows for the property pattern, online: the plain column renamed
# to the raw one, then its type changed with no row converted (encrypt_existing does that).
import data_encryption.operations
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("property_app", "0001_initial"),
        ("data_encryption", "0006_rotationrun_kind"),
    ]

    operations = [
        migrations.RenameField(model_name="customer", old_name="ssn", new_name="_ssn"),
        data_encryption.operations.EncryptField(
            model_name="customer",
            name="_ssn",
            field=models.BinaryField(null=True),
            convert=False,
        ),
    ]
