"""Authenticate each data key's metadata (id, state, wrapped key, master-key fingerprint, dates)
with a MAC under a key derived from the master key, so a row edited in the database is seen.

Existing rows are authenticated as they stand at migrate time, with the configured master key.
Without one (``DB_ENCRYPTION_KEY`` unset while migrating) they stay null: ``manage.py check``
(E031) and ``encryption_status`` report them, the ring refuses to encrypt under an
unauthenticated primary, and ``manage.py authenticate_data_keys`` signs them once an operator has
checked them against a key backup.
"""

from django.core.exceptions import ImproperlyConfigured
from django.db import migrations, models


def authenticate_existing_keys(apps, schema_editor):
    from data_encryption.master_key import master_keys
    from data_encryption.models import key_metadata_message

    try:
        signer = master_keys()[0]
    except ImproperlyConfigured:  # no master key here: leave them for authenticate_data_keys
        return
    DataKey = apps.get_model("data_encryption", "DataKey")
    db = schema_editor.connection.alias
    for row in DataKey.objects.using(db).filter(metadata_mac=None):
        row.metadata_mac = signer.sign_metadata(key_metadata_message(row, db))
        row.save(using=db, update_fields=["metadata_mac"])


class Migration(migrations.Migration):
    dependencies = [
        ("data_encryption", "0004_forget_run_key_copies"),
    ]

    operations = [
        migrations.AddField(
            model_name="datakey",
            name="metadata_mac",
            field=models.BinaryField(editable=False, null=True),
        ),
        migrations.RunPython(
            authenticate_existing_keys, migrations.RunPython.noop, elidable=False
        ),
    ]
