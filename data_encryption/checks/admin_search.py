"""The check that an admin's ``search_fields`` asks of an encrypted field only what it can
answer (E034): a plain ``"ssn"`` entry is an ``icontains`` search, which no ciphertext (and no
blind index) can answer, so the changelist would fail on the first search rather than here."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core import exceptions
from django.core.checks import Error, Tags, register

from ..exceptions import EncryptedLookupError

# The lookup the admin builds for each search_fields prefix (ModelAdmin.get_search_results).
PREFIX_LOOKUPS = {"^": "istartswith", "=": "iexact", "@": "search"}


@register(Tags.admin)
def check_admin_search_fields(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E034: a ``search_fields`` entry whose lookup an encrypted field refuses."""
    if not apps.is_installed("django.contrib.admin"):
        return []
    from django.contrib.admin.sites import all_sites

    errors = []
    for site in all_sites:
        for model, model_admin in site._registry.items():
            if app_configs is not None and model._meta.app_config not in app_configs:
                continue
            for entry in model_admin.search_fields or ():
                refusal = _refusal(model, str(entry))
                if refusal is not None:
                    errors.append(
                        Error(
                            f"{type(model_admin).__name__}.search_fields has {entry!r}: {refusal}",
                            hint=(
                                "Search an encrypted field by its whole value: give it "
                                "blind_index=True and a normaliser that folds case (such as "
                                "'lower', 'email_lower' or 'digits'), and write '=<field>' in "
                                "search_fields; or remove the entry (docs/search.md)."
                            ),
                            obj=type(model_admin),
                            id="data_encryption.E034",
                        )
                    )
    return errors


def _refusal(model: Any, entry: str) -> str | None:
    """Why the encrypted field that ``entry`` searches refuses the admin's lookup, or ``None``."""
    lookup = PREFIX_LOOKUPS.get(entry[:1], "icontains")
    path = entry[1:] if entry[:1] in PREFIX_LOOKUPS else entry
    opts, field = model._meta, None
    for part in path.split("__"):
        if field is not None and not field.is_relation:
            lookup = part  # "ssn__exact": an explicit lookup
            break
        try:
            field = opts.get_field(part)
        except exceptions.FieldDoesNotExist:
            return None  # Django's own admin checks report it
        if field.is_relation and field.related_model is not None:
            opts = field.related_model._meta
    if field is None or not hasattr(field, "blind_index"):
        return None
    try:
        field.get_lookup(lookup)
    except EncryptedLookupError:
        return (
            f"{field.model.__name__}.{field.name} is encrypted, so the admin's '{lookup}' "
            "search cannot be answered."
        )
    return None
