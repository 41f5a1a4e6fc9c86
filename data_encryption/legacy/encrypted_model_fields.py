"""The reader of django-encrypted-model-fields (``encrypted_model_fields``), without the library.

Each value is a Fernet token, under the first key of ``FIELD_ENCRYPTION_KEY`` (one key or a
list: the library's MultiFernet reads with any), of ``str()`` of what the plain field would send
to the database: ``"1"``/``"0"`` for booleans, and for date-times naive UTC text on SQLite (its
adapter's form) or text with an offset on PostgreSQL.
"""

from __future__ import annotations

import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.core import exceptions
from django.db import models

from .base import LegacyReader
from .fernet_tokens import fernet_key_list, multi_fernet, not_a_token, open_token, token_bytes
from .stored_text import value_from_text

SETTING = "FIELD_ENCRYPTION_KEY"


class EncryptedModelFieldsReader(LegacyReader):
    """Reads values written by django-encrypted-model-fields. Option ``FIELD_ENCRYPTION_KEY``
    (one Fernet key or a list), defaulting to the setting of the same name."""

    name = "django-encrypted-model-fields"
    option_names: ClassVar[frozenset[str]] = frozenset({SETTING})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        keys = options[SETTING] if SETTING in options else getattr(settings, SETTING, None)
        if keys is None:
            raise exceptions.ImproperlyConfigured(
                f"The {self.name} legacy reader needs {SETTING}: the key (or list of keys) the "
                "library wrote with, in the reader's OPTIONS or as the setting itself."
            )
        self.fernet = multi_fernet(fernet_key_list(keys, SETTING, self.name))

    def read(self, raw: Any, field: models.Field) -> Any:
        plaintext = open_token(self.fernet, token_bytes(raw, self.name), self.name, SETTING)
        try:
            text = plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise not_a_token(self.name) from None
        # The library's SQLite adapter wrote aware date-times as naive UTC text.
        return value_from_text(text, field, self.name, naive_zone=datetime.UTC)
