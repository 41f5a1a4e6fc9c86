"""The benchmarks' Celery app: ``celery -A bench.celery_app worker``, as a project's own
``celery.py`` would be. The broker and result backend come from ``BENCH_REDIS_URL`` (see
``bench/settings.py``); the fan-out case starts the workers."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

app = Celery("data_encryption_bench")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["data_encryption"])
