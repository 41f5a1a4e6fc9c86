"""Joins the test app's migrations from the issue-10 branches (legacy readers, new field types);
the lead renumbers them at merge, and this file goes then."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("data_encryption_tests", "0002_legacy_readers"),
        ("data_encryption_tests", "0002_new_field_types"),
    ]
    operations = []
