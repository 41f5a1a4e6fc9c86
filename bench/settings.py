"""Django settings for the benchmarks: SQLite in a temporary file, keys made at import.

``bench.run`` points ``BENCH_SQLITE_PATH`` at a temporary directory it deletes afterwards; other
users of these settings (``django-admin --settings=bench.settings``, mypy) get a file in the
system's temporary directory. No key is written down anywhere: every run generates its own.
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

DB_ENCRYPTION_KEY = Fernet.generate_key().decode()
PAYLOAD_ENCRYPTION_KEY = Fernet.generate_key().decode()

INSTALLED_APPS = [
    "data_encryption",
    "bench.benchapp",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BENCH_SQLITE_PATH")
        or os.path.join(tempfile.gettempdir(), "data_encryption_bench.sqlite3"),
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
