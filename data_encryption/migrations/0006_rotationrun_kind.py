"""Runs get a kind: a key ``rotation`` (every run before this migration) or a ``conversion``
(``encrypt_existing``), which share the one lock; a conversion records its columns."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("data_encryption", "0005_datakey_metadata_mac")]

    operations = [
        migrations.AddField(
            model_name="rotationrun",
            name="kind",
            field=models.CharField(
                choices=[("rotation", "key rotation"), ("conversion", "conversion of legacy values")],
                default="rotation",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="rotationrun",
            name="columns",
            field=models.JSONField(blank=True, default=list),
        ),
    ]
