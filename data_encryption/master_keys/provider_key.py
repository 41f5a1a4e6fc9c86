"""A ``Provider`` (a KMS, an HSM) used as one of this app's master keys.

What the provider wraps for a key row is the key's material followed by this master key's
*integrity secret*: 32 random bytes, the same in every blob the master key wraps, from which the
key-metadata MACs and backup signatures are derived (as a local key derives them from itself).
So the secret costs no provider call of its own: unwrapping any key row yields it, and a cold
start with N keys makes N calls. A process that must sign before it has unwrapped anything (a
first key, a re-wrap) finds the secret in a stored row wrapped by this master key, or makes it
when there is none.

The stored blob is ``02 | 8-byte fingerprint | provider's bytes``: the fingerprint says which
configured master key to ask, so no other provider is ever called for it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Iterable
from time import monotonic
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from django.views.decorators.debug import sensitive_variables

from ..exceptions import MasterKeyProviderError, WrongMasterKey
from .local import BACKUP_MAC_INFO, METADATA_MAC_INFO, hkdf, hmac_sha256, verify_hmac
from .provider import Provider

PROVIDER_WRAP_FORMAT = b"\x02"
SECRET_BYTES = 32
# After a provider fails (unreachable, or refusing: a wrong PIN, a disabled key), the next calls
# within this many seconds fail at once with the same error: a ring load over many keys waits
# for one timeout, not one per key, and a wrong PIN is not retried into a locked token.
RETRY_AFTER_SECONDS = 5.0

# (key id, wrapped blob) of stored key rows wrapped by the master key with a fingerprint, oldest
# first: registered by ``models`` (this floor has no ORM) so a process can learn the integrity
# secret before its key ring is loaded.
StoredWraps = Callable[[str], Iterable[tuple[int, bytes]]]
_stored_wraps: StoredWraps | None = None


def register_stored_wraps(source: StoredWraps) -> None:
    global _stored_wraps
    _stored_wraps = source


def embedded_fingerprint(wrapped: bytes) -> str | None:
    """The fingerprint of the provider master key that wrapped ``wrapped``; ``None`` for a
    blob of another format (a local master key's)."""
    if wrapped[:1] != PROVIDER_WRAP_FORMAT or len(wrapped) < 10:
        return None
    return wrapped[1:9].hex()


class ProviderMasterKey:
    """One configured provider as a master key: what ``MasterKey`` offers (wrap, unwrap, sign,
    verify, sign_metadata, verify_metadata, fingerprint), its key held by the provider."""

    __slots__ = (
        "__weakref__",
        "_failure",
        "_failure_until",
        "_lock",
        "_made",
        "_secret_of",
        "provider",
        "setting",
    )

    fernet = None  # a key held elsewhere cannot read legacy Fernet values

    def __init__(self, provider: Provider, setting: str) -> None:
        self.provider = provider
        self.setting = setting
        # The secret each blob (key id, blob) carries, learned by wrapping or unwrapping it;
        # ``None`` for a blob that did not unwrap (it is not asked again).
        self._secret_of: dict[tuple[int, bytes], bytes | None] = {}
        self._made: bytes | None = None  # made here before any stored blob carried one
        self._lock = threading.RLock()
        self._failure: MasterKeyProviderError | None = None
        self._failure_until = 0.0
        _instances.add(self)

    def __repr__(self) -> str:
        return (
            f"<ProviderMasterKey {self.setting} {self.provider!r} fingerprint={self.fingerprint}>"
        )

    @property
    def fingerprint(self) -> str:
        return self.provider.fingerprint

    @property
    def description(self) -> str:
        return self.provider.description

    # -- wrapping --------------------------------------------------------------------------------

    @sensitive_variables()
    def wrap(self, key_id: int, data_key: bytes) -> bytes:
        secret = self.integrity_secret()
        body = self._call(self.provider.wrap, key_id, data_key + secret)
        wrapped = PROVIDER_WRAP_FORMAT + bytes.fromhex(self.fingerprint) + body
        with self._lock:
            self._secret_of[(key_id, wrapped)] = secret
        return wrapped

    @sensitive_variables()
    def unwrap(self, key_id: int, wrapped: bytes) -> bytes:
        """Raise ``InvalidTag`` when this master key did not wrap it (no call is made for another
        key's blob) or it was altered; ``MasterKeyProviderError`` when the provider fails."""
        if embedded_fingerprint(wrapped) != self.fingerprint:
            raise InvalidTag
        try:
            plain = self._call(self.provider.unwrap, key_id, wrapped[9:])
        except WrongMasterKey:
            raise InvalidTag from None
        if len(plain) <= SECRET_BYTES:
            raise InvalidTag
        with self._lock:
            self._secret_of[(key_id, wrapped)] = plain[-SECRET_BYTES:]
        return plain[:-SECRET_BYTES]

    def _call(self, method: Callable[[int, bytes], bytes], key_id: int, data: bytes) -> bytes:
        with self._lock:
            if self._failure is not None and monotonic() < self._failure_until:
                _raise_again(self._failure)
        try:
            return method(key_id, data)
        except MasterKeyProviderError as exc:
            with self._lock:
                self._failure, self._failure_until = exc, monotonic() + RETRY_AFTER_SECONDS
            raise

    # -- the integrity secret --------------------------------------------------------------------
    # Every process must sign with a secret that every other process can learn from the stored
    # rows. So a process signs with the secret of the oldest stored row this master key wrapped
    # (the same row for every process), never with one only it knows: not one it learned from
    # its own first key whose transaction rolled back. Two processes that made their first keys
    # at once, neither seeing the other's, leave rows carrying two secrets: each verifies, since
    # a MAC that no known secret verifies is tried again under the secrets of the stored rows
    # not unwrapped yet before it is called a forgery.

    def integrity_secret(self) -> bytes:
        """The secret this master key signs with: the one the oldest stored row it wrapped
        carries; with no such row, the first one learned (from a key backup being restored),
        else one made here for the first key it wraps."""
        with self._lock:
            for key_id, wrapped in _stored_wraps(self.fingerprint) if _stored_wraps else ():
                secret = self._secret_in(key_id, wrapped)
                if secret is not None:
                    return secret
            known = next((secret for secret in self._secret_of.values() if secret), None)
            if known is not None:
                return known
            if self._made is None:
                self._made = os.urandom(SECRET_BYTES)
            return self._made

    def _secret_in(self, key_id: int, wrapped: bytes) -> bytes | None:
        """The secret ``wrapped`` carries: known, else unwrapped once (``None`` when it does not
        unwrap: an altered row)."""
        if (key_id, wrapped) not in self._secret_of:
            try:
                self.unwrap(key_id, wrapped)
            except InvalidTag:
                self._secret_of[(key_id, wrapped)] = None
        return self._secret_of[(key_id, wrapped)]

    def _known_secrets(self) -> list[bytes]:
        with self._lock:
            if not any(self._secret_of.values()):
                # Unreachable or refusing: nothing can be verified under this key now; the
                # unwrap of the same rows reports the provider's error.
                with contextlib.suppress(MasterKeyProviderError):
                    self.integrity_secret()
            known = [secret for secret in self._secret_of.values() if secret is not None]
            return list(dict.fromkeys(known + ([self._made] if self._made else [])))

    def _learn_stored_secrets(self) -> list[bytes]:
        """The secrets of the stored rows this master key wrapped that were not unwrapped yet
        (each is asked once), for a MAC that no known secret verifies."""
        if _stored_wraps is None:
            return []
        return self._learn([wrap for wrap in _stored_wraps(self.fingerprint)])

    def _learn(self, wraps: Iterable[tuple[int, bytes]]) -> list[bytes]:
        learned = []
        with self._lock, contextlib.suppress(MasterKeyProviderError):
            for key_id, wrapped in wraps:
                if (key_id, wrapped) not in self._secret_of:
                    secret = self._secret_in(key_id, wrapped)
                    learned += [secret] if secret is not None else []
        return learned

    # -- signatures (what a local key derives from itself) ---------------------------------------

    def sign(self, data: bytes) -> bytes:
        """HMAC-SHA256 of ``data`` for a key backup's signature."""
        return self._mac(BACKUP_MAC_INFO, data)

    def verify(self, data: bytes, signature: bytes) -> bool:
        return self._verifies(BACKUP_MAC_INFO, data, signature)

    def sign_metadata(self, message: bytes) -> bytes:
        return self._mac(METADATA_MAC_INFO, message)

    def verify_metadata(self, message: bytes, mac: bytes) -> bool:
        return self._verifies(METADATA_MAC_INFO, message, mac)

    # Each purpose its own key, so a backup signature never passes for a key row's MAC.
    def _mac(self, purpose: bytes, data: bytes) -> bytes:
        return hmac_sha256(hkdf(self.integrity_secret(), purpose), data)

    def _verifies(self, purpose: bytes, data: bytes, mac: bytes) -> bool:
        return any(
            verify_hmac(hkdf(secret, purpose), data, mac) for secret in self._known_secrets()
        ) or any(
            verify_hmac(hkdf(secret, purpose), data, mac) for secret in self._learn_stored_secrets()
        )

    def learn_from(self, wraps: Iterable[tuple[int, bytes]], *, every: bool = False) -> None:
        """Learn the integrity secret from the first of ``wraps`` (key id, blob) this master key
        wrapped, when none is known: for a key backup read into a database that holds none of
        its keys. ``every``: from each of them not unwrapped yet (a file whose signature no
        known secret verifies, its keys made by two processes at once)."""
        mine = [wrap for wrap in wraps if embedded_fingerprint(wrap[1]) == self.fingerprint]
        if every:
            self._learn(mine)
            return
        with self._lock:
            if any(self._secret_of.values()):
                return
            for key_id, wrapped in mine:
                if self._secret_in(key_id, wrapped) is not None:
                    return


# A thread of a parent may hold a master key's lock at a fork (it holds it while it waits on the
# provider to learn the integrity secret): a forked child (Celery's prefork pool) would then
# wait on it forever. The child starts single-threaded, so it takes new locks.
_instances: weakref.WeakSet[ProviderMasterKey] = weakref.WeakSet()


def _new_locks_in_child() -> None:
    for master in list(_instances):
        master._lock = threading.RLock()


os.register_at_fork(after_in_child=_new_locks_in_child)


def _raise_again(failure: MasterKeyProviderError) -> NoReturn:
    # A new instance of the same class and message: re-raising the stored one would chain
    # tracebacks of unrelated calls onto it.
    raise type(failure)(str(failure))
