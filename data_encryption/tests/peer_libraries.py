"""The peer libraries the legacy readers are tested against, imported for the test models.

django-cryptography 1.1, its current release, imports ``django.utils.baseconv`` (removed in
Django 5.0) for its ``TimestampSigner`` alone, which its fields never call. An empty stand-in for
that module lets the library's own field and crypto code run unchanged on Django 5.2 and 6.
"""

import sys
import types

try:
    import django.utils.baseconv  # noqa: F401  (Django < 5.0)
except ImportError:
    sys.modules["django.utils.baseconv"] = types.ModuleType("django.utils.baseconv")

import django_cryptography.fields as django_cryptography_fields
import encrypted_fields.fields as fernet_fields
import encrypted_model_fields.fields as encrypted_model_fields

__all__ = ["django_cryptography_fields", "encrypted_model_fields", "fernet_fields"]
