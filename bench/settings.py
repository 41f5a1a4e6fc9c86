"""Django settings for the benchmarks: SQLite in a temporary file (or PostgreSQL), keys made at
import.

``bench.run`` points ``BENCH_SQLITE_PATH`` at a temporary directory it deletes afterwards; other
users of these settings (``django-admin --settings=bench.settings``, mypy) get a file in the
system's temporary directory. With ``BENCH_DATABASE=postgres`` the database is PostgreSQL:
``BENCH_PG_NAME`` (a database ``bench.run`` creates and drops) on the server the libpq variables
name (``PGHOST``, ``PGPORT``, ``PGUSER``). No key is written down anywhere: every run generates
its own, and hands the master key to the processes it starts (the memory measurement) through
the environment, so they can read the run's data keys.
"""

import os
import secrets
import tempfile

from cryptography.fernet import Fernet

SECRET_KEY = Fernet.generate_key().decode()  # also what django-fernet-encrypted-fields derives from
SALT_KEY = secrets.token_hex(16)  # django-fernet-encrypted-fields' PBKDF2 salt
DEBUG = False  # with DEBUG, Django would record every query
USE_TZ = True
TIME_ZONE = "UTC"

DB_ENCRYPTION_KEY = os.environ.setdefault("BENCH_DB_ENCRYPTION_KEY", Fernet.generate_key().decode())
PAYLOAD_ENCRYPTION_KEY = Fernet.generate_key().decode()

ENCRYPTION_KEY_ROTATION = {
    "BACKUP_DIR": os.environ.get("BENCH_BACKUP_DIR")
    or os.path.join(tempfile.gettempdir(), "data_encryption_bench_backups"),
    # A rotation waits this long after activating its new key. It is also how long a process
    # keeps its key ring, and at 0 every field encryption would reload the ring from the
    # database, which would slow the loops the rotation is compared with. So it stays at the
    # default here and the rotation case sets it to 0 around each rotation it runs.
    "KEY_CACHE_SECONDS": int(os.environ.get("BENCH_KEY_CACHE_SECONDS", "60")),
    "BATCH_SIZE": int(os.environ.get("BENCH_BATCH_SIZE", "5000")),
    "CHUNK_ROWS": int(os.environ.get("BENCH_CHUNK_ROWS", "100000")),
}
# The conversion case's tables are in transition: their plaintext is read until converted.
DATA_ENCRYPTION_LEGACY_COLUMNS = {
    f"benchapp.{model}.value": "plaintext"
    for model in ("ConversionRecord", "SmallConversionRecord", "NaiveConversionRecord")
}
# The fan-out case's workers rotate its one table only (see bench/services.py).
if os.environ.get("BENCH_ONE_TABLE_SERVICE"):
    DATA_ENCRYPTION_SERVICE = "bench.services.RotationRecordOnly"

# Celery, for the fan-out case: a Redis that scripts/bench.sh starts. One task reserved per
# worker at a time (the setting docs/automation.md asks for), so chunks spread over workers.
CELERY_BROKER_URL = os.environ.get("BENCH_REDIS_URL", "memory://")
CELERY_RESULT_BACKEND = os.environ.get("BENCH_REDIS_URL", "cache+memory://")
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

INSTALLED_APPS = [
    "data_encryption",
    "bench.benchapp",
]

# A rotation emails its report when it ends; here the email goes to Django's in-memory outbox.
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
EMAIL_FROM_ALERTS = "bench@example.com"
EMAIL_SECURITY = "security@example.com"

if os.environ.get("BENCH_DATABASE") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("BENCH_PG_NAME") or os.environ.get("PGDATABASE", "postgres"),
            "USER": os.environ.get("PGUSER", ""),
            "HOST": os.environ.get("PGHOST", ""),
            "PORT": os.environ.get("PGPORT", ""),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("BENCH_SQLITE_PATH")
            or os.path.join(tempfile.gettempdir(), "data_encryption_bench.sqlite3"),
        }
    }

# The kms case keeps each master key's data keys in a SQLite database of its own, whatever the
# main database (bench/cases/kms.py routes the key tables there while it runs).
for _master_key in ("local", "kms"):
    DATABASES[f"keys_{_master_key}"] = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(
            os.environ.get("BENCH_KEY_DATABASES_DIR") or tempfile.gettempdir(),
            f"data_encryption_bench_keys_{_master_key}.sqlite3",
        ),
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
