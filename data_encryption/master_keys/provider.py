"""The public contract of a master-key provider: a master key held elsewhere (a KMS, an HSM) that
wraps and unwraps key material for this app and never hands the key itself over.

Write one for another service by subclassing ``Provider`` (docs/master-keys.md has the whole
contract); name it in ``DATA_ENCRYPTION_MASTER_KEY_PROVIDER = {"BACKEND": "<dotted path>",
"OPTIONS": {...}}``, the options being its constructor's keyword arguments.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import ClassVar

from ..envelope import format_key_id


class Provider(ABC):
    """A master key in a KMS or an HSM, as this app uses it.

    This app calls ``unwrap`` once per data key (and blind-index key) per process start or key
    ring reload, ``wrap`` once per new key or re-wrap, and ``check`` from ``manage.py check
    --deploy``: never once per value. Calls may come from several threads at once.

    What a provider must guarantee:

    - ``wrap(key_id, plaintext)`` returns bytes that only ``unwrap`` with the same key and the
      same ``key_id`` turns back into ``plaintext``: the key id is bound to the wrap (an
      encryption context, the AAD of an AEAD), so a wrapped key copied onto another row never
      unwraps there. The plaintext is up to 64 bytes; the result up to 4,000 bytes.
    - ``unwrap`` raises ``WrongMasterKey`` when the blob is not its key's for that id (or was
      altered), ``MasterKeyUnavailable`` when the service cannot be reached in time, and
      ``MasterKeyProviderError`` for every other refusal (credentials, permissions, a disabled or
      missing key, a wrong PIN); every message names ``self.description`` and what to check,
      and no data key id (the app adds the one it was unwrapping).
    - Nothing it raises, logs or returns in ``repr`` holds key material, plaintext or secrets
      (PINs, credentials). Every network call has a timeout: a call never hangs.
    """

    #: A short name of the kind of provider, e.g. ``"aws-kms"``; part of the fingerprint.
    kind: ClassVar[str]

    @property
    @abstractmethod
    def key_name(self) -> str:
        """The master key's public name (a key ARN, ``token/label``): in messages, backups and
        ``encryption_status``. Never secret."""

    @abstractmethod
    def wrap(self, key_id: int, plaintext: bytes) -> bytes:
        """``plaintext`` encrypted under the master key, bound to ``key_id``."""

    @abstractmethod
    def unwrap(self, key_id: int, wrapped: bytes) -> bytes:
        """What ``wrap(key_id, ...)`` made ``wrapped`` from."""

    @abstractmethod
    def check(self) -> None:
        """One round trip proving the key can wrap and unwrap now (for ``check --deploy``);
        raises ``MasterKeyProviderError`` (or ``MasterKeyUnavailable``) saying what is wrong."""

    @property
    def description(self) -> str:
        """How messages name this master key: its kind and key name."""
        return f"{self.kind} master key {self.key_name}"

    @property
    def fingerprint(self) -> str:
        """16 hex characters naming this master key in key rows, wrapped blobs and backups: a
        hash of its kind and key name, so it is the same in every process and names the key the
        way settings do (list an old spelling as a fallback before changing it)."""
        digest = hashlib.sha256(f"{self.kind}:{self.key_name}".encode()).digest()
        return digest[:8].hex()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key_name}>"


def key_context(key_id: int) -> str:
    """The text a provider binds a wrap to (a KMS encryption context value, the AAD of a GCM
    wrap): the key id as this app prints it everywhere."""
    return f"data_encryption/key-wrap/v2:{format_key_id(key_id)}"
