"""Normalisers: what a value becomes before it is hashed into its blind index, so that values a
user considers equal ("123-45-6789" and "123456789", "Ann@Example.com" and "ann@example.com")
find each other. The stored ciphertext always keeps the value as it was given.

A normaliser takes the value's text and returns the text to hash. It refuses a value it cannot
normalise (``"digits"`` on text with no digit) with a ``ValidationError``: the form shows it on
the field, ``save()`` raises it, and a query for such a value matches no row.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string

Normaliser = Callable[[str], str]


def strip(text: str) -> str:
    """Leading and trailing white space removed."""
    return text.strip()


def lower(text: str) -> str:
    """Stripped and case-folded (``casefold``, so "Straße" matches "STRASSE")."""
    return text.strip().casefold()


def digits(text: str) -> str:
    """Only the digits (an SSN, a phone or a card number however it is punctuated)."""
    if not text.isascii():  # full-width and other compatibility digits become 0-9
        text = unicodedata.normalize("NFKC", text)
    found = "".join(filter(str.isdigit, text))
    if not found:
        raise ValidationError(
            "Enter a value with at least one digit.", code="blind_index_no_digits"
        )
    return found


def email(text: str) -> str:
    """An address with its domain lower-cased (domains are case-insensitive; the part before
    the ``@`` is, by the standard, not), white space stripped."""
    local, at, domain = text.strip().rpartition("@")
    return f"{local}{at}{domain.lower()}" if at else text.strip()


def email_lower(text: str) -> str:
    """A whole address lower-cased: what most sites treat as the same mailbox."""
    return text.strip().lower()


NAMED: dict[str, Normaliser] = {
    "strip": strip,
    "lower": lower,
    "digits": digits,
    "email": email,
    "email_lower": email_lower,
}

# Normalisers under which "=" in the admin's search_fields (an ``iexact`` lookup) is answered by
# the blind index: they fold case, so an exact match of the normalised value is a
# case-insensitive match of the value.
CASE_FOLDING = frozenset({"lower", "email_lower", "digits"})


def resolve(spec: str | Normaliser | None) -> Normaliser | None:
    """The function a field's ``normaliser=`` names: one of ``NAMED``, a dotted path to a
    function, or the function itself (it must be importable by its module and name, so that
    migrations can refer to it)."""
    if spec is None or callable(spec):
        return spec
    if spec in NAMED:
        return NAMED[spec]
    if "." in spec:
        try:
            found = import_string(spec)
        except ImportError as exc:
            raise ValueError(f"normaliser {spec!r} cannot be imported: {exc}") from None
        if callable(found):
            return found
    raise ValueError(
        f"normaliser {spec!r} is not one of {', '.join(sorted(NAMED))}, nor a dotted path to a "
        "function that takes the value's text and returns the text to index."
    )
