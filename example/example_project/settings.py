"""A small project that uses data_encryption exactly as the README says, on SQLite.

Keys come from the environment (DB_ENCRYPTION_KEY, PAYLOAD_ENCRYPTION_KEY) as they would in
production. For the demo, when they are not set, a pair is generated once into
example/.demo-keys.json (mode 0600, ignored by git).
"""

import json
import os
from pathlib import Path

from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parent.parent


def demo_keys() -> dict:
    path = BASE_DIR / ".demo-keys.json"
    if not path.exists():
        keys = {name: Fernet.generate_key().decode() for name in ("db", "payload")}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(keys, handle)
    return json.loads(path.read_text())


def env(name: str, demo_name: str) -> str:
    return os.environ.get(name) or demo_keys()[demo_name]


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = True
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "data_encryption",
    "clinic",
]

# --- data_encryption: the integration from the README, verbatim -------------------------------
DB_ENCRYPTION_KEY = env("DB_ENCRYPTION_KEY", "db")  # Fernet-compatible key
PAYLOAD_ENCRYPTION_KEY = env("PAYLOAD_ENCRYPTION_KEY", "payload")
ENCRYPTION_KEY_ROTATION = {
    "BACKUP_DIR": BASE_DIR / "common" / "backups" / "keys",
    "BACKUP_FILENAME_FORMAT": "encryption_key_{timestamp}.json",
    "KEY_ROTATION_SCHEDULE": "monthly",  # or "weekly" / "daily"
    # The property pattern's raw column, so rotation re-encrypts it too (encrypted fields are
    # found by themselves).
    "MODELS": {"clinic.Customer": ["_ssn"]},
    # How long a process may keep using a cached primary key. A rotation waits this long
    # before walking rows; the default is 60 seconds, the demo has one process.
    "KEY_CACHE_SECONDS": 1,
}
EMAIL_FROM_ALERTS = "alerts@yourdomain.com"
EMAIL_SECURITY = "security@yourdomain.com"
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
# ------------------------------------------------------------------------------------------------

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "example_project.urls"
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
STATIC_URL = "static/"
