"""Authenticate each index key's metadata (id, slot, state, wrapped key, master-key fingerprint,
dates, complete fields) with a MAC, as 0005 did for data keys. Rows are signed as they stand at
migrate time with the configured master key; without one they stay null, and the ring refuses
to answer queries from them until ``manage.py authenticate_data_keys`` signs them."""

from django.core.exceptions import ImproperlyConfigured
from django.db import migrations, models


def authenticate_existing_index_keys(apps, schema_editor):
    from data_encryption.master_key import master_keys
    from data_encryption.models import index_key_metadata_message

    try:
        signer = master_keys()[0]
    except ImproperlyConfigured:  # no master key here: leave them for authenticate_data_keys
        return
    IndexKey = apps.get_model("data_encryption", "IndexKey")
    db = schema_editor.connection.alias
    for row in IndexKey.objects.using(db).filter(metadata_mac=None):
        row.metadata_mac = signer.sign_metadata(index_key_metadata_message(row, db))
        row.save(using=db, update_fields=["metadata_mac"])


class Migration(migrations.Migration):
    dependencies = [
        ("data_encryption", "0007_indexkey"),
    ]

    operations = [
        migrations.AddField(
            model_name="indexkey",
            name="metadata_mac",
            field=models.BinaryField(editable=False, null=True),
        ),
        migrations.RunPython(
            authenticate_existing_index_keys, migrations.RunPython.noop, elidable=False
        ),
    ]
