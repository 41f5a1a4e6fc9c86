"""The Celery app of the test suite, as a project would write its own ``celery.py``.

Workers started by the tests run ``celery -A data_encryption.tests.celery_app worker``.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "data_encryption.tests.settings")

app = Celery("data_encryption_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["data_encryption"])
