"""Error messages of encrypted fields that never repeat the value.

Django's fields put the rejected value in their messages (``Field 'visits' expected a number but
got '123-45-6789'``, ``“%(value)s” value must be a decimal number``) and in the params of their
``ValidationError``s. For an encrypted field that value is the plaintext, and these messages end
up in logs, error reports and API responses; here they are rebuilt with the field's name and what
it expects instead.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.functional import Promise

# What stands for the value in the params of an error whose message does not print it.
HIDDEN = "(not shown: the field is encrypted)"


def field_label(field: models.Field) -> str:
    """``Model.field`` (``field`` alone before the field is bound to a model)."""
    model = getattr(field, "model", None)
    name = field.name or type(field).__name__
    return f"{model.__name__}.{name}" if model is not None else name


def expected_type(field: models.Field) -> str:
    """What the field holds, in Django's words: the ``description`` of the plain field it stands
    for (``Integer``, ``Date (without time)``, ``Decimal number``...; an encrypted field's own
    says ``Encrypted integer``), as the admin documentation renders it."""
    description = str(_plain_description(type(field)) or field.description)
    try:
        return description % field.__dict__
    except (KeyError, TypeError, ValueError):
        return description


def _plain_description(field_class: type[models.Field]) -> Any:
    """The first ``description`` text up the class's bases that is not an encrypted field's
    (Django's ``Field`` has a property there, not a text)."""
    for base in field_class.__mro__:
        described = vars(base).get("description")
        if isinstance(described, str | Promise) and not base.__module__.startswith(_OURS):
            return described
    return None


_OURS = __name__.rpartition(".")[0] + "."  # data_encryption.fields.


def value_not_shown(field: models.Field) -> str:
    return (
        f"{field_label(field)} expected a value of type {expected_type(field)!r}, and the value "
        "given is not one; it is not repeated here because the field is encrypted."
    )


def error_without_value(field: models.Field, error: Exception) -> Exception:
    """``error`` (a ``TypeError``, ``ValueError`` or ``ValidationError`` raised for ``field``)
    rebuilt without the value: a message that would print it is replaced by one naming the field
    and the type it expects; params that hold it are replaced by ``HIDDEN``. Codes are kept, so
    forms and callers that look at them see no difference."""
    if not isinstance(error, ValidationError):
        return type(error)(value_not_shown(field))
    if hasattr(error, "error_dict"):
        return ValidationError(
            {
                name: [_one_without_value(field, e) for e in errors]
                for name, errors in error.error_dict.items()
            }
        )
    if hasattr(error, "message"):  # a single error, which has a code callers may read
        return _one_without_value(field, error)
    return ValidationError([_one_without_value(field, e) for e in error.error_list])


def _one_without_value(field: models.Field, error: ValidationError) -> ValidationError:
    params = dict(error.params or {})
    if "value" not in params:
        return error
    value = params["value"]
    # Min/MaxValueValidator show the value itself; the length validators show its length.
    hidden = {name for name, param in params.items() if param is value}
    message = str(error.message)
    if any(f"%({name})" in message for name in hidden):
        return ValidationError(value_not_shown(field), code=error.code)
    for name in hidden:
        params[name] = HIDDEN
    return ValidationError(error.message, code=error.code, params=params)
