"""Settings for the app's own test suite.

Run it inside any project with::

    python manage.py test data_encryption --settings=data_encryption.tests.settings

The database is SQLite unless ``DATA_ENCRYPTION_TEST_DB=postgres``; then the libpq variables
(``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGDATABASE``) say where PostgreSQL is. Keys are generated
afresh at every run: no key is written down anywhere.
"""

import json
import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet

SECRET_KEY = Fernet.generate_key().decode()  # Django's own, irrelevant to this app
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"

# Generated once per run and put in the environment, so that the processes a test starts (a
# rotation to kill, a concurrent writer) share the keys and the backup directory.
DB_ENCRYPTION_KEY = os.environ.setdefault(
    "DATA_ENCRYPTION_TEST_DB_KEY", Fernet.generate_key().decode()
)
PAYLOAD_ENCRYPTION_KEY = os.environ.setdefault(
    "DATA_ENCRYPTION_TEST_PAYLOAD_KEY", Fernet.generate_key().decode()
)
ENCRYPTION_KEY_ROTATION = {
    "BACKUP_DIR": Path(
        os.environ.setdefault(
            "DATA_ENCRYPTION_TEST_BACKUP_DIR",
            tempfile.mkdtemp(prefix="data-encryption-test-backups-"),
        )
    ),
    "BACKUP_FILENAME_FORMAT": "encryption_key_{timestamp}.json",
    "KEY_ROTATION_SCHEDULE": "monthly",
    "MODELS": {"data_encryption_tests.Customer": ["_ssn"]},
    # Short, so rotations in tests wait little for other processes' key rings.
    "KEY_CACHE_SECONDS": 0.5,
    # Worker processes started by tests get small chunks and batches through the environment.
    "CHUNK_ROWS": int(os.environ.get("DATA_ENCRYPTION_TEST_CHUNK_ROWS", "100000")),
    "BATCH_SIZE": int(os.environ.get("DATA_ENCRYPTION_TEST_BATCH_SIZE", "1000")),
}
# Columns in transition: none, except in the processes a conversion test starts, which get the
# test's own through the environment (JSON).
DATA_ENCRYPTION_LEGACY_COLUMNS = json.loads(
    os.environ.get("DATA_ENCRYPTION_TEST_LEGACY_COLUMNS", "{}")
)
# The processes a master-key test starts (Celery workers) may be told that the master key is a
# provider's (the setting as JSON), and that they hold no local key at all.
if os.environ.get("DATA_ENCRYPTION_TEST_MASTER_KEY_PROVIDER"):
    DATA_ENCRYPTION_MASTER_KEY_PROVIDER = json.loads(
        os.environ["DATA_ENCRYPTION_TEST_MASTER_KEY_PROVIDER"]
    )
    DB_ENCRYPTION_KEY = None
# The peer libraries' own key settings, as their docs say (test_legacy_*), generated per run:
# django-fernet-encrypted-fields derives its keys from SECRET_KEY and SALT_KEY, django-cryptography
# from SECRET_KEY, and django-encrypted-model-fields reads FIELD_ENCRYPTION_KEY when imported.
SALT_KEY = [Fernet.generate_key().decode(), Fernet.generate_key().decode()]
FIELD_ENCRYPTION_KEY = [Fernet.generate_key().decode(), Fernet.generate_key().decode()]

EMAIL_FROM_ALERTS = "alerts@example.com"
EMAIL_SECURITY = "security@example.com"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "data_encryption",
    "data_encryption.tests.testapp",
    "data_encryption.tests.search_app",
]

# A process started by a test connects to that test's database directly.
_CHILD_DB = os.environ.get("DATA_ENCRYPTION_TEST_CHILD_DB")

if os.environ.get("DATA_ENCRYPTION_TEST_DB") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _CHILD_DB or os.environ.get("PGDATABASE", "postgres"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", ""),
            "PORT": os.environ.get("PGPORT", ""),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _CHILD_DB or os.path.join(tempfile.gettempdir(), "data_encryption_tests.db"),
            # A file, not memory: the processes that tests start must see the same database.
            "TEST": {
                "NAME": os.path.join(
                    tempfile.gettempdir(), f"data_encryption_test_{os.getpid()}.sqlite3"
                )
            },
            "OPTIONS": {"timeout": 30},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "data_encryption.tests.urls"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# Every log record of the run is kept and scanned for key material at the end (see runner.py).
TEST_RUNNER = "data_encryption.tests.runner.LeakCheckingRunner"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"capture": {"class": "data_encryption.tests.runner.CapturingHandler"}},
    "root": {"handlers": ["capture"], "level": "DEBUG"},
}

# Celery: a real Redis when the test command started one (the worker tests need it), else an
# in-memory broker for the in-process tests. See data_encryption/tests/celery_app.py.
_REDIS = os.environ.get("DATA_ENCRYPTION_TEST_REDIS_URL")
CELERY_BROKER_URL = _REDIS or "memory://"
CELERY_RESULT_BACKEND = _REDIS or "cache+memory://"
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 60}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
