"""The ``blind_index=`` option of an encrypted field: which types take it, what a value is
hashed as, and which lookups it then answers (``index_lookups``)."""

from __future__ import annotations

from typing import Any

from django.core import exceptions

from ..blind_index import normalisers
from ..exceptions import BlindIndexError
from .index_lookups import BlindExact, BlindIExact, BlindIn


def check_options(field: Any, blind_index: bool, normaliser: Any, unique: bool) -> None:
    """Refuse, where the field is declared, what a blind index cannot do on this type."""
    name = type(field).__name__
    if not blind_index:
        if normaliser is not None:
            raise exceptions.ImproperlyConfigured(
                f"{name}: normaliser= says how a value is indexed; add blind_index=True, or "
                "remove it."
            )
        return
    kind = field.blind_index_kind
    if kind is None:
        raise exceptions.ImproperlyConfigured(
            f"{name} cannot have a blind index: it is supported on the text, integer, date and "
            "UUID fields, whose values have one exact spelling to compare. Remove "
            "blind_index=True."
        )
    if normaliser is not None and kind != "text":
        raise exceptions.ImproperlyConfigured(
            f"{name}: a normaliser applies to text fields; {name} values are compared in their "
            "canonical form already. Remove normaliser=."
        )
    try:
        normalisers.resolve(normaliser)
    except ValueError as exc:
        raise exceptions.ImproperlyConfigured(f"{name}: {exc}") from None


def index_input(field: Any, value: Any, *, query: bool = False) -> bytes | None:
    """The bytes a value is hashed as: its normalised text (text fields), else its canonical
    plaintext (``7`` and ``"007"`` of an integer field are both ``b"7"``). A value that does
    not fit the field raises as the field would for it (``filter(number="abc")`` as Django's
    ``IntegerField`` does). A value the normaliser refuses raises its ``ValidationError`` on a
    write, and is ``None`` (no row matches) in a query: the admin searches every field with
    the same term."""
    if value is None:
        return None
    prepared = field.get_prep_value(value)
    if prepared is None:
        return None
    normalise = field.normalise
    if normalise is None:
        if query and field.blind_index_kind == "text":
            return str(prepared).encode("utf-8")
        return field.to_plaintext(prepared)
    try:
        normalised = normalise(str(prepared))
    except exceptions.ValidationError:
        if query:
            return None
        raise
    if not isinstance(normalised, str):
        raise BlindIndexError(
            f"{field.model.__name__}.{field.name}: its normaliser "
            f"{getattr(normalise, '__qualname__', normalise)!r} returned "
            f"{type(normalised).__name__}, not str. A normaliser takes the value's text and "
            "returns the text to index; make it return a str (or raise ValidationError for a "
            "value it refuses)."
        )
    return normalised.encode("utf-8")


def index_lookup(field: Any, lookup_name: str) -> Any:
    """The lookup class an indexed field answers ``lookup_name`` with, else ``None``."""
    if lookup_name == "exact":
        return BlindExact
    if lookup_name == "in":
        return BlindIn
    if lookup_name == "iexact" and field.normaliser_folds_case:
        return BlindIExact
    return None


def folds_case(spec: Any) -> bool:
    return isinstance(spec, str) and spec in normalisers.CASE_FOLDING
