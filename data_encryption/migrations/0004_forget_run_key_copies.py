"""A data key lives in exactly one place, its DataKey row. Until now every rotation run kept a
copy of the key it made (``new_wrapped_key``, wrapped by the master key of that time), which
survived ``rewrap_data_keys`` and the key's destruction. Forget the copies of every run that is
over; a running run keeps its pending key until it activates it (the rotation then forgets it)."""

from django.db import migrations


def forget_key_copies(apps, schema_editor):
    RotationRun = apps.get_model("data_encryption", "RotationRun")
    db = schema_editor.connection.alias
    RotationRun.objects.using(db).exclude(status="running").update(new_wrapped_key=None)


class Migration(migrations.Migration):
    dependencies = [
        ("data_encryption", "0003_remove_rotationrun_dry_run"),
    ]

    operations = [
        migrations.RunPython(forget_key_copies, migrations.RunPython.noop, elidable=False),
    ]
