"""A PKCS#11 token as this process uses it: the vendor's library loaded once, one logged-in
session per token shared by every ``Pkcs11`` provider on it, and one thread making every call.

PKCS#11 logs in per process and token, not per session (a second ``C_Login`` fails with
``CKR_USER_ALREADY_LOGGED_IN``; one session's ``C_Logout`` logs every session out), so the
providers on one token share its session. A session is not thread-safe and a call into the module
cannot be cancelled: calls go one at a time through the token's own thread, and a caller waits at
most its timeout. A forked child (Celery's prefork pool) must not use its parent's library state:
it re-initialises the library and opens a session of its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pkcs11 import Session, Token

logger = logging.getLogger("data_encryption.master_keys.pkcs11")

Result = TypeVar("Result")
# A secret key object: python-pkcs11 types get_key() as a plain Key and mixes encrypt() and
# decrypt() in at run time.
HsmKey = Any

# Errors after which a session that worked before is worth opening again, once: the HSM
# restarted or dropped the session, or something logged this process out of the token.
SESSION_LOST = (
    "SessionHandleInvalid",
    "SessionClosed",
    "DeviceRemoved",
    "UserNotLoggedIn",
    "ObjectHandleInvalid",
    "KeyHandleInvalid",
)


class ModuleNotLoadable(Exception):
    """The PKCS#11 module could not be loaded; the message is the loader's (a path, a reason)."""


class NotAnAesKey(Exception):
    """The secret key found by the label is not an AES key."""


def client() -> ModuleType:
    """python-pkcs11, imported only when a PKCS#11 master key is used (``ImportError`` when it
    is not installed)."""
    import pkcs11

    return pkcs11


_sessions: dict[tuple[str, str], TokenSession] = {}
_sessions_lock = threading.Lock()
_library_pids: dict[str, int] = {}
_library_lock = threading.Lock()


def _new_locks_in_child() -> None:
    # A thread of the parent may have held either lock at the fork; the child would wait forever.
    global _sessions_lock, _library_lock
    _sessions_lock, _library_lock = threading.Lock(), threading.Lock()


os.register_at_fork(after_in_child=_new_locks_in_child)


def token_session(module: str, token_label: str) -> TokenSession:
    """This process's session on the token ``token_label`` of ``module`` (made on first use; a
    forked child gets its own: its parent's session and thread are not its to use)."""
    with _sessions_lock:
        session = _sessions.get((module, token_label))
        if session is None or session.pid != os.getpid():
            session = _sessions[module, token_label] = TokenSession(module, token_label)
        return session


def _library(module: str) -> Any:
    """The loaded PKCS#11 module, initialised in this process."""
    pkcs11 = client()
    with _library_lock:
        try:
            library = pkcs11.lib(module)
        except pkcs11.PKCS11Error as error:
            raise ModuleNotLoadable(str(error)) from None
        if _library_pids.setdefault(module, os.getpid()) != os.getpid():
            # Loaded by the parent before a fork: PKCS#11 requires the child to initialise
            # again. A module that resets itself on fork (SoftHSM's library.reset_on_fork)
            # refuses the finalize as not initialised, which is what we want anyway.
            with contextlib.suppress(pkcs11.PKCS11Error):
                library.finalize()
            library.initialize()
            _library_pids[module] = os.getpid()
        return library


class TokenSession:
    """One token's session in this process and the thread that uses it.

    ``run_with_key`` and ``run_with_rw_session`` give an operation the key (or a read-write
    session) on the token's thread; a session that worked before and is lost meanwhile is opened
    again once. ``pin`` is called when the session is opened, on that thread.
    """

    def __init__(self, module: str, token_label: str) -> None:
        self.module = module
        self.token_label = token_label
        self.pid = os.getpid()
        self._token: Token | None = None
        self._session: Session | None = None
        self._keys: dict[str, HsmKey] = {}
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()

    def run_with_key(
        self,
        key_label: str,
        pin: Callable[[], str],
        operation: Callable[[HsmKey], Result],
        timeout: float,
    ) -> Result:
        def find_and_use(session: Session) -> Result:
            key = self._keys.get(key_label)
            if key is None:
                pkcs11 = client()
                key = session.get_key(object_class=pkcs11.ObjectClass.SECRET_KEY, label=key_label)
                if key.key_type != pkcs11.KeyType.AES:
                    raise NotAnAesKey
                self._keys[key_label] = key
            return operation(key)

        return self._call(lambda: self._retrying(pin, find_and_use), timeout)

    def run_with_rw_session(
        self, pin: Callable[[], str], operation: Callable[[Session], Result], timeout: float
    ) -> Result:
        def in_rw_session(session: Session) -> Result:
            assert self._token is not None
            # Opened without a PIN, it shares the logged-in session's login, and closing it
            # logs nobody out.
            writable = self._token.open(rw=True)
            try:
                return operation(writable)
            finally:
                writable.close()

        return self._call(lambda: self._retrying(pin, in_rw_session), timeout)

    # -- on the token's thread --------------------------------------------------------------------

    def _retrying(self, pin: Callable[[], str], use: Callable[[Session], Result]) -> Result:
        was_open = self._session is not None
        try:
            return use(self._logged_in(pin))
        except client().PKCS11Error as error:
            if not was_open or type(error).__name__ not in SESSION_LOST:
                raise
            logger.warning(
                "The PKCS#11 session on token %r (module %s) was lost (%s): opening a new one.",
                self.token_label,
                self.module,
                type(error).__name__,
            )
            self._session = None
            self._keys.clear()
            return use(self._logged_in(pin))

    def _logged_in(self, pin: Callable[[], str]) -> Session:
        if self._session is not None:
            return self._session
        pkcs11 = client()
        token = _library(self.module).get_token(token_label=self.token_label)
        try:
            session = token.open(user_pin=pin())
        except pkcs11.UserAlreadyLoggedIn:
            # Other code in this process logged in to the token: every session shares that login.
            # (The session whose C_Login failed stays open: python-pkcs11 returns no handle.)
            session = token.open()
        self._token, self._session = token, session
        logger.info("Opened a PKCS#11 session on token %r (module %s).", token.label, self.module)
        return session

    # -- the thread -------------------------------------------------------------------------------

    def _call(self, operation: Callable[[], Result], timeout: float) -> Result:
        """``operation()`` run on the token's thread; ``TimeoutError`` when it has not finished
        within ``timeout`` seconds (it may still finish later; the next calls wait behind it)."""
        with self._thread_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name=f"pkcs11 {self.token_label}", daemon=True
                )
                self._thread.start()
        job: Future[Result] = Future()
        self._jobs.put((job, operation))
        try:
            return job.result(timeout)
        except TimeoutError:
            job.cancel()
            raise

    def _serve(self) -> None:
        while True:
            job, operation = self._jobs.get()
            if not job.set_running_or_notify_cancel():
                continue  # its caller stopped waiting before it started
            try:
                job.set_result(operation())
            except Exception as error:
                job.set_exception(error)
