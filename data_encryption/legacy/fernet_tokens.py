"""Fernet tokens that another library wrote: the token's bytes whatever shape the column gave
them, and opening one with any key of the old library's key list, so a failure names the library
and the setting to add the old key to (never a key, never the value)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.core.exceptions import ImproperlyConfigured

from .base import LegacyValueError


def token_bytes(raw: Any, library: str) -> bytes:
    """A text token as bytes: ``str`` from a text column (SQLite, PostgreSQL before the type
    change), or the UTF-8 bytes a bytea column holds after the type change."""
    if isinstance(raw, str):
        try:
            return raw.encode("ascii")
        except UnicodeEncodeError:
            raise not_a_token(library) from None
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw)
    raise not_a_token(library)


def not_a_token(library: str) -> LegacyValueError:
    return LegacyValueError(
        f"A value in this column is not a {library} token (it may be plaintext, or another "
        "library's value); the row is left as it is. Check the column's READER, or fix the row."
    )


def open_token(fernet: MultiFernet, token: bytes, library: str, key_setting: str) -> bytes:
    """The plaintext of ``token`` under any of ``fernet``'s keys."""
    if not token.startswith(b"gAAAAA"):
        raise not_a_token(library)
    try:
        return fernet.decrypt(token)
    except InvalidToken:
        raise LegacyValueError(
            f"A {library} token in this column was not made with any key the reader has, or was "
            f"altered; the row is left as it is. Add the key it was written with to "
            f"{key_setting} (in the reader's OPTIONS, or the setting itself) and run again."
        ) from None


def multi_fernet(keys: Sequence[bytes]) -> MultiFernet:
    """Every key of a key list, tried in order (the first is the one a library wrote with)."""
    return MultiFernet([Fernet(key) for key in keys])


def fernet_key_list(value: Any, setting: str, library: str) -> list[bytes]:
    """The Fernet keys of a setting that holds one key or a list of them, each checked; the
    error says which entry is wrong and never shows it."""
    entries = list(value) if isinstance(value, (list, tuple)) else [value]
    if not entries:
        raise ImproperlyConfigured(
            f"The {library} legacy reader needs {setting}: the key (or list of keys) the "
            "library wrote with."
        )
    keys = []
    for index, entry in enumerate(entries):
        key = entry.encode("ascii", "replace") if isinstance(entry, str) else entry
        if not isinstance(key, bytes) or not _is_fernet_key(key):
            where = setting if len(entries) == 1 else f"{setting}[{index}]"
            raise ImproperlyConfigured(
                f"The {library} legacy reader's {where} is not a Fernet key (32 url-safe "
                "base64-encoded bytes). Give the key exactly as the library's setting held it."
            )
        keys.append(key)
    return keys


def _is_fernet_key(key: bytes) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key)) == 32
    except ValueError:
        return False
