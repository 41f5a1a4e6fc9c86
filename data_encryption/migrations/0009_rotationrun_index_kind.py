"""Runs get a third kind: ``index``, a walk that fills blind-index columns (``rebuild_blind_index``
and the walk of an index-key rotation); it records its fields and slots in ``columns``."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("data_encryption", "0008_indexkey_metadata_mac")]

    operations = [
        migrations.AlterField(
            model_name="rotationrun",
            name="kind",
            field=models.CharField(
                choices=[
                    ("rotation", "key rotation"),
                    ("conversion", "conversion of legacy values"),
                    ("index", "blind-index walk"),
                ],
                default="rotation",
                max_length=16,
            ),
        ),
    ]
