"""Payload tokens: JSON values as Fernet tokens under ``PAYLOAD_ENCRYPTION_KEY``.

Unlike field values, a payload travels (URLs, emails, webhooks), so it keeps Fernet's
timestamped token format and its own key, never a data key or the master key. Each token names
the purpose it was made for inside its authenticated body, and every token expires.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.views.decorators.debug import sensitive_variables

from .conf import encryption_settings, register_cache, seconds_above_zero
from .exceptions import DecryptionError, KeyConfigurationError, PayloadExpired
from .master_key import parse_key_setting

# Fernet refuses tokens stamped this far in the future (clock skew between hosts); so do we.
_MAX_CLOCK_SKEW = 60

# The first byte of a token's body since tokens carry a purpose: ``\x01`` then the JSON array
# ``[purpose, value]``. JSON text never starts with it, so a body from before (bare JSON) is told
# apart without guessing.
_PURPOSE_BODY = b"\x01"
MAX_PURPOSE_LENGTH = 100

_payload_fernet: MultiFernet | None = None


@register_cache
def _reset_payload_fernet() -> None:
    global _payload_fernet
    _payload_fernet = None


@sensitive_variables()
def payload_fernet() -> MultiFernet:
    """``PAYLOAD_ENCRYPTION_KEY`` then its fallbacks, as one MultiFernet (cached)."""
    global _payload_fernet
    if _payload_fernet is None:
        current = encryption_settings.payload_key
        if not current:
            raise KeyConfigurationError(
                "PAYLOAD_ENCRYPTION_KEY is not set. Set it to a key made by "
                "Fernet.generate_key(), different from DB_ENCRYPTION_KEY."
            )
        named = parse_key_setting(
            current, encryption_settings.payload_key_fallbacks, "PAYLOAD_ENCRYPTION_KEY"
        )
        _payload_fernet = MultiFernet([Fernet(base64.urlsafe_b64encode(raw)) for raw, _ in named])
    return _payload_fernet


def _checked_purpose(purpose: Any) -> str:
    if not isinstance(purpose, str):
        raise TypeError(
            f"purpose must be a str naming what the token is for, such as 'password-reset', not "
            f"{type(purpose).__name__}."
        )
    if not purpose or len(purpose) > MAX_PURPOSE_LENGTH or not purpose.isprintable():
        raise ValueError(
            f"purpose must be 1 to {MAX_PURPOSE_LENGTH} printable characters naming what the "
            "token is for, such as 'password-reset'."
        )
    return purpose


@sensitive_variables()
def encrypt_payload(obj: Any, *, purpose: str, now: int | None = None) -> str:
    """Encrypt a JSON-serialisable value into a URL-safe text token under the payload key.

    ``purpose`` (such as ``"password-reset"``) is sealed inside the token; ``decrypt_payload``
    must be given the same one. ``now`` (seconds since the epoch) stamps the token; it defaults
    to the current time.
    """
    purpose = _checked_purpose(purpose)
    try:
        data = json.dumps([purpose, obj], separators=(",", ":"), sort_keys=True).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"encrypt_payload() takes a JSON-serialisable value: {exc}. Convert dates, "
            "decimals and objects to strings or numbers first."
        ) from None
    stamp = int(time.time()) if now is None else now
    return payload_fernet().encrypt_at_time(_PURPOSE_BODY + data, stamp).decode("ascii")


@sensitive_variables()
def decrypt_payload(
    token: str | bytes,
    *,
    purpose: str,
    max_age: float | timedelta | None = None,
    now: int | None = None,
) -> Any:
    """The value of a token made by ``encrypt_payload`` for ``purpose``.

    A token older than ``max_age`` seconds (default ``PAYLOAD_MAX_AGE_SECONDS``) raises
    ``PayloadExpired``. A token made for another purpose, made before tokens carried one,
    stamped in the future, altered, or made with another key raises ``DecryptionError``.
    """
    purpose = _checked_purpose(purpose)
    if max_age is None:
        limit = encryption_settings.payload_max_age_seconds
    else:
        limit = seconds_above_zero(max_age, "max_age")
    if isinstance(token, str):
        token = token.encode("ascii", "replace")
    if not isinstance(token, bytes):
        raise TypeError(f"decrypt_payload() takes a str token, not {type(token).__name__}.")
    fernet = payload_fernet()
    try:
        data = fernet.decrypt(token)
        stamped = fernet.extract_timestamp(token)
    except InvalidToken:
        raise DecryptionError(
            "The payload token is invalid: it was altered, truncated, or made with a key that "
            "is neither PAYLOAD_ENCRYPTION_KEY nor one of PAYLOAD_ENCRYPTION_KEY_FALLBACKS."
        ) from None
    age = (int(time.time()) if now is None else now) - stamped
    if age < -_MAX_CLOCK_SKEW:
        raise DecryptionError(
            "The payload token is stamped in the future; check the clocks of the hosts."
        )
    if not data.startswith(_PURPOSE_BODY):
        raise DecryptionError(
            "The payload token was made before tokens carried a purpose, so what it is for "
            "cannot be checked; it is refused. Make a new one with "
            f"encrypt_payload(value, purpose={purpose!r}) and send it again."
        )
    made_for, value = json.loads(data[len(_PURPOSE_BODY) :])
    if made_for != purpose:
        raise DecryptionError(
            f"The payload token was made for another purpose, not {purpose!r}; it is refused."
        )
    if age > limit:
        raise PayloadExpired(
            f"The payload token expired: it is {age} seconds old and max_age is {limit:.10g}."
        )
    return value
