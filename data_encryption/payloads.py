"""Payload tokens: JSON values as Fernet tokens under ``PAYLOAD_ENCRYPTION_KEY``.

Unlike field values, a payload travels (URLs, emails, webhooks) and may expire, so it keeps
Fernet's timestamped token format and its own key, never a data key or the master key.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .conf import encryption_settings, register_cache
from .exceptions import DecryptionError, KeyConfigurationError, PayloadExpired
from .master_key import parse_key_setting

# Fernet refuses tokens stamped this far in the future (clock skew between hosts); so do we.
_MAX_CLOCK_SKEW = 60

_payload_fernet: MultiFernet | None = None


@register_cache
def _reset_payload_fernet() -> None:
    global _payload_fernet
    _payload_fernet = None


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


def encrypt_payload(obj: Any, *, now: int | None = None) -> str:
    """Encrypt a JSON-serialisable value into a URL-safe text token under the payload key.

    ``now`` (seconds since the epoch) stamps the token; it defaults to the current time.
    """
    try:
        data = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"encrypt_payload() takes a JSON-serialisable value: {exc}. Convert dates, "
            "decimals and objects to strings or numbers first."
        ) from None
    stamp = int(time.time()) if now is None else now
    return payload_fernet().encrypt_at_time(data, stamp).decode("ascii")


def decrypt_payload(
    token: str | bytes, max_age: float | None = None, *, now: int | None = None
) -> Any:
    """Decrypt a token made by ``encrypt_payload``.

    With ``max_age`` (seconds), a token older than that raises ``PayloadExpired``. Any other
    problem (altered, wrong key, not a token) raises ``DecryptionError``.
    """
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
    if max_age is not None:
        current = int(time.time()) if now is None else now
        age = current - stamped
        if age > max_age:
            raise PayloadExpired(
                f"The payload token expired: it is {age} seconds old and max_age is {max_age}."
            )
        if age < -_MAX_CLOCK_SKEW:
            raise DecryptionError(
                "The payload token is stamped in the future; check the clocks of the hosts."
            )
    return json.loads(data)
