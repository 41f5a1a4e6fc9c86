"""django-data-encryption: encrypted model fields with envelope keys and safe key rotation."""

__version__ = "0.1.0"
