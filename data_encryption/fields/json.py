"""The encrypted JSON field: the whole document is one encrypted value."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core import exceptions
from django.db import models
from django.utils.translation import gettext_lazy as _

from .base import EncryptedFieldMixin


class EncryptedJSONField(EncryptedFieldMixin, models.Field):
    """Encrypted JSON: any JSON-serialisable value, with optional ``encoder``/``decoder`` classes.

    Python ``None`` is stored as SQL ``NULL``; key and containment lookups are not available.
    """

    description = _("Encrypted JSON object")
    empty_strings_allowed = False
    default_error_messages = {"invalid": _("Value must be valid JSON.")}

    def __init__(
        self,
        *args: Any,
        encoder: type[json.JSONEncoder] | None = None,
        decoder: type[json.JSONDecoder] | None = None,
        **kwargs: Any,
    ) -> None:
        if encoder is not None and not callable(encoder):
            raise ValueError("The encoder parameter must be a callable object.")
        if decoder is not None and not callable(decoder):
            raise ValueError("The decoder parameter must be a callable object.")
        self.encoder = encoder
        self.decoder = decoder
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        if self.encoder is not None:
            kwargs["encoder"] = self.encoder
        if self.decoder is not None:
            kwargs["decoder"] = self.decoder
        return name, path, args, kwargs

    def to_plaintext(self, value: Any) -> bytes:
        return json.dumps(value, cls=self.encoder).encode("utf-8")

    def from_plaintext(self, plaintext: bytes) -> Any:
        return json.loads(plaintext, cls=self.decoder)

    def validate(self, value: Any, model_instance: models.Model | None) -> None:
        super().validate(value, model_instance)
        try:
            json.dumps(value, cls=self.encoder)
        except TypeError:
            raise exceptions.ValidationError(
                self.error_messages["invalid"], code="invalid", params={"value": value}
            ) from None

    def value_to_string(self, obj: models.Model) -> Any:
        return self.value_from_object(obj)

    def formfield(self, **kwargs: Any) -> Any:
        return super().formfield(
            **{
                "form_class": forms.JSONField,
                "encoder": self.encoder,
                "decoder": self.decoder,
                **kwargs,
            }
        )
