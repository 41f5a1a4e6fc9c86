"""The ``blind_index=`` option of an encrypted field: which types take it, what a value is
hashed as, and which lookups it then answers (``index_lookups``)."""

from __future__ import annotations

from typing import Any

from django.core import exceptions
from django.db import models

from ..blind_index import normalisers
from ..exceptions import BlindIndexError
from .index_columns import add_index_columns
from .index_lookups import BlindExact, BlindIExact, BlindIn


class BlindIndexOptions(models.Field):
    """The blind-index part of an encrypted field: its options (``blind_index``,
    ``normaliser``, ``unique``), its index columns, what a value is hashed as, and the
    lookups the index answers. ``EncryptedFieldMixin`` builds on it."""

    # What a blind index compares: "text" (normalisable), "value" (one canonical spelling), or
    # None (not supported).
    blind_index_kind: str | None = None
    default_normaliser: str | None = None
    # One per slot, set when the field joins its model (``index_columns.add_index_columns``).
    index_columns: tuple[Any, ...] = ()
    binding: Any  # the encrypted field's (``EncryptedFieldMixin.binding``)

    def __init__(
        self,
        *args: Any,
        blind_index: bool = False,
        normaliser: str | normalisers.Normaliser | None = None,
        **kwargs: Any,
    ) -> None:
        # With a blind index, unique=True is enforced on the index (``index_columns``).
        self.index_unique = bool(blind_index and kwargs.pop("unique", False))
        check_options(self, blind_index, normaliser, self.index_unique)
        self.blind_index = blind_index
        self.normaliser = normaliser
        if blind_index and normaliser is None:
            self.normaliser = self.default_normaliser
        self.normalise = normalisers.resolve(self.normaliser)
        self.normaliser_folds_case = folds_case(self.normaliser)
        super().__init__(*args, **kwargs)

    def contribute_to_class(
        self, cls: type[models.Model], name: str, private_only: bool = False, **kwargs: Any
    ) -> None:
        super().contribute_to_class(cls, name, private_only=private_only, **kwargs)
        if self.blind_index and not cls._meta.abstract:
            add_index_columns(self, cls, name)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        if self.blind_index:
            kwargs["blind_index"] = True
            if self.index_unique:
                kwargs["unique"] = True
            if self.normaliser != self.default_normaliser:
                kwargs["normaliser"] = self.normaliser
        return name, path, args, kwargs

    @property
    def index_context(self) -> bytes:
        """What the field's index key is derived from: the name its values are bound to."""
        assert self.binding is not None
        return bytes(self.binding.context)

    @property
    def index_record(self) -> str:
        """How the key table records this field's index as complete: its context, and its
        normaliser when it has one, so that changing the normaliser (which changes every index
        value) makes the field incomplete again instead of silently matching nothing."""
        context = self.index_context.decode()
        spec = self.normaliser
        if spec is None:
            return context
        name = spec if isinstance(spec, str) else f"{spec.__module__}.{spec.__qualname__}"
        return f"{context}#{name}"

    def index_input(self, value: Any, *, query: bool = False) -> bytes | None:
        return index_input(self, value, query=query)

    def saved_index_input(self, instance: models.Model) -> bytes | None:
        """``index_input`` of the value ``instance`` is saving, computed once per save: the
        checks before the save and each slot's column ask for it (a normaliser is not free)."""
        value = getattr(instance, self.attname)
        cache = instance.__dict__.setdefault("_blind_index_inputs", {})
        hit = cache.get(self.attname)
        if hit is not None and hit[0] is value:  # the same object: immutable values only
            return hit[1]
        data = self.index_input(value)
        cache[self.attname] = (value, data)
        return data

    def index_lookup(self, lookup_name: str) -> Any:
        """The lookup the blind index answers ``lookup_name`` with, else ``None``."""
        return index_lookup(self, lookup_name) if self.blind_index else None


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
