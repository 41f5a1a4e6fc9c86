"""``Pkcs11``: a master key that never leaves an HSM, used through its PKCS#11 module.

Each key is wrapped inside the token with AES-GCM under an AES key found by its label, the data
key's id as associated data. The blob is ``01 | 12-byte IV | ciphertext | 16-byte tag``. The user
PIN comes from an environment variable read when the session is opened; it is never an option.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn

from django.views.decorators.debug import sensitive_variables

from ..envelope import format_key_id
from ..exceptions import MasterKeyProviderError, MasterKeyUnavailable, WrongMasterKey
from .pkcs11_tokens import HsmKey, ModuleNotLoadable, NotAnAesKey, client, token_session
from .provider import Provider, key_context

if TYPE_CHECKING:
    from pkcs11 import Session

BLOB_VERSION = b"\x01"
IV_BYTES = 12
TAG_BITS = 128
PROBE_KEY_ID = 0  # check()'s round trip: a wrap bound to it is never stored
OPTIONS = ("module", "token_label", "key_label", "pin_env", "timeout")

# python-pkcs11's errors by what they mean here. A GCM tag that does not verify is
# CKR_GENERAL_ERROR in SoftHSM and CKR_ENCRYPTED_DATA_INVALID in most HSMs.
NOT_THIS_KEYS_BLOB = {"GeneralError", "EncryptedDataInvalid", "EncryptedDataLenRange"}
UNREACHABLE = {
    "DeviceError",
    "DeviceMemory",
    "DeviceRemoved",
    "TokenNotPresent",
    "TokenNotRecognised",
    "SessionHandleInvalid",
    "SessionClosed",
    "SessionCount",
}


class Pkcs11(Provider):
    """An AES key in a PKCS#11 token (an HSM, SoftHSM), found by ``token_label`` and
    ``key_label`` through the vendor's library ``module``; the user PIN in the environment
    variable named by ``pin_env``. ``timeout``: the seconds a caller waits for the module."""

    kind = "pkcs11"

    def __init__(
        self,
        *,
        module: str | os.PathLike[str] | None = None,
        token_label: str | None = None,
        key_label: str | None = None,
        pin_env: str = "PKCS11_PIN",
        timeout: float = 10.0,
        **others: object,
    ) -> None:
        named = f"pkcs11 master key {token_label}/{key_label}"
        if {"pin", "user_pin", "so_pin"} & others.keys():
            raise MasterKeyProviderError(
                f"{named}: the PIN is never an option (settings end up in repositories and "
                "tracebacks): put the user PIN in an environment variable and name the variable "
                "in the pin_env option (default PKCS11_PIN)."
            )
        if others:
            raise MasterKeyProviderError(
                f"{named}: unknown option(s) {', '.join(sorted(others))}: its options are "
                f"{', '.join(OPTIONS)}."
            )
        for option, value, meaning in (
            ("module", module, "the path of the HSM vendor's PKCS#11 library"),
            ("token_label", token_label, "the label of the token holding the key"),
            ("key_label", key_label, "the label of the AES key in the token"),
            ("pin_env", pin_env, "the name of the environment variable holding the user PIN"),
        ):
            if not value or not isinstance(value, (str, os.PathLike)):
                raise MasterKeyProviderError(f"{named}: the option {option} must be {meaning}.")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise MasterKeyProviderError(f"{named}: the option timeout must be seconds (> 0).")
        assert module and token_label and key_label
        self.module = os.fspath(module)
        self.token_label = str(token_label)
        self.key_label = str(key_label)
        self.pin_env = str(pin_env)
        self.timeout = float(timeout)

    @property
    def key_name(self) -> str:
        return f"{self.token_label}/{self.key_label}"

    # -- the contract ---------------------------------------------------------------------------

    def wrap(self, key_id: int, plaintext: bytes) -> bytes:
        return self._wrap(key_id, plaintext, shown_id=key_id)

    def unwrap(self, key_id: int, wrapped: bytes) -> bytes:
        return self._unwrap(key_id, bytes(wrapped), shown_id=key_id)

    def check(self) -> None:
        probe = os.urandom(32)
        wrapped = self._wrap(PROBE_KEY_ID, probe, shown_id=None)
        if self._unwrap(PROBE_KEY_ID, wrapped, shown_id=None) != probe:
            raise MasterKeyProviderError(
                f"{self.description}: a wrap and unwrap round trip returned other bytes: check "
                f"the HSM (module {self.module})."
            )

    # -- wrapping in the token --------------------------------------------------------------------

    @sensitive_variables()
    def _wrap(self, key_id: int, plaintext: bytes, *, shown_id: int | None) -> bytes:
        pkcs11 = self._client()
        iv = os.urandom(IV_BYTES)
        params = pkcs11.GCMParams(iv, key_context(key_id).encode(), TAG_BITS)
        sealed = self._with_key(
            shown_id,
            lambda key: key.encrypt(
                plaintext, mechanism=pkcs11.Mechanism.AES_GCM, mechanism_param=params
            ),
        )
        return BLOB_VERSION + iv + sealed

    @sensitive_variables()
    def _unwrap(self, key_id: int, wrapped: bytes, *, shown_id: int | None) -> bytes:
        if wrapped[:1] != BLOB_VERSION or len(wrapped) < 1 + IV_BYTES + TAG_BITS // 8:
            raise self._wrong_key(key_id, "it is not a blob this provider makes")
        pkcs11 = self._client()
        iv, sealed = wrapped[1 : 1 + IV_BYTES], wrapped[1 + IV_BYTES :]
        params = pkcs11.GCMParams(iv, key_context(key_id).encode(), TAG_BITS)

        def decrypt(key: HsmKey) -> bytes | None:
            try:
                return key.decrypt(
                    sealed, mechanism=pkcs11.Mechanism.AES_GCM, mechanism_param=params
                )
            except pkcs11.PKCS11Error as error:
                if type(error).__name__ in NOT_THIS_KEYS_BLOB:
                    return None  # told apart here: the same errors elsewhere mean other things
                raise

        plaintext = self._with_key(shown_id, decrypt)
        if plaintext is None:
            raise self._wrong_key(
                key_id, "it was not wrapped by this key for this key id, or it was altered"
            )
        return plaintext

    # -- making the key ---------------------------------------------------------------------------

    @classmethod
    def create_key(cls, **options: Any) -> Pkcs11:
        """Generate this provider's master key in the token and return the provider: AES-256,
        stored on the token (TOKEN, PRIVATE), SENSITIVE and not EXTRACTABLE (its value can never
        be read), ENCRYPT and DECRYPT only, not MODIFIABLE. Refuses a label already in use."""
        provider = cls(**options)
        pkcs11 = provider._client()
        attribute = pkcs11.Attribute
        template = {attribute.SENSITIVE: True, attribute.EXTRACTABLE: False}
        template[attribute.PRIVATE] = True
        template[attribute.MODIFIABLE] = False

        def generate(session: Session) -> bool:
            if any(True for _ in session.get_objects({attribute.LABEL: provider.key_label})):
                return False
            session.generate_key(
                pkcs11.KeyType.AES,
                256,
                label=provider.key_label,
                store=True,
                capabilities=pkcs11.MechanismFlag.ENCRYPT | pkcs11.MechanismFlag.DECRYPT,
                template=template,
            )
            return True

        created = provider._run(
            None,
            lambda session: session.run_with_rw_session(provider._pin, generate, provider.timeout),
        )
        if not created:
            raise MasterKeyProviderError(
                f"{provider.description}: token {provider.token_label!r} already has an object "
                f"labelled {provider.key_label!r}: use it as it is, or choose another key_label."
            )
        return provider

    # -- calls and their errors -------------------------------------------------------------------

    def _client(self) -> ModuleType:
        try:
            return client()
        except ImportError:
            raise MasterKeyProviderError(
                f"{self.description} needs python-pkcs11: "
                "pip install django-data-encryption[pkcs11]"
            ) from None

    def _pin(self) -> str:
        pin = os.environ.get(self.pin_env)
        if not pin:
            raise MasterKeyProviderError(
                f"{self.description}: the environment variable {self.pin_env} (the pin_env "
                f"option) is {'empty' if pin == '' else 'not set'}: set it to the user PIN of "
                f"token {self.token_label!r} in every process that uses this master key."
            )
        return pin

    def _with_key(self, key_id: int | None, operation: Any) -> Any:
        return self._run(
            key_id,
            lambda session: session.run_with_key(
                self.key_label, self._pin, operation, self.timeout
            ),
        )

    def _run(self, key_id: int | None, call: Any) -> Any:
        pkcs11 = self._client()
        self._pin()  # a missing variable is this provider's error, even on a shared session
        try:
            return call(token_session(self.module, self.token_label))
        except TimeoutError:
            self._fail(
                key_id,
                f"the PKCS#11 module gave no answer within {self.timeout:g} s (the timeout "
                "option): check the HSM is up and reachable",
                unavailable=True,
            )
        except ModuleNotLoadable as error:
            self._fail(
                key_id,
                f"the PKCS#11 module could not be loaded ({error}): check the module option "
                "names the HSM vendor's PKCS#11 library, installed on this host",
            )
        except NotAnAesKey:
            self._fail(key_id, f"the key labelled {self.key_label!r} is not an AES key")
        except pkcs11.PKCS11Error as error:
            name = type(error).__name__
            self._fail(key_id, self._explain(name), unavailable=name in UNREACHABLE)

    def _explain(self, name: str) -> str:
        token, label, pin_env = self.token_label, self.key_label, self.pin_env
        if name in {"PinIncorrect", "PinInvalid", "PinLenRange"}:
            return f"token {token!r} refused the PIN in {pin_env} ({name}): check that variable"
        if name in {"PinLocked", "PinExpired", "UserPinNotInitialized"}:
            return f"the user PIN of token {token!r} cannot log in ({name}): ask the HSM's admin"
        if name == "NoSuchToken":
            return (
                f"the module has no token labelled {token!r}: check token_label, and that the "
                "token is initialised and visible to this host (pkcs11-tool --list-slots)"
            )
        if name == "NoSuchKey":
            return (
                f"token {token!r} has no secret key labelled {label!r}: check key_label, or "
                "create the key (Pkcs11.create_key, or pkcs11-tool --keygen)"
            )
        if name in {"MultipleObjectsReturned", "MultipleTokensReturned"}:
            return f"more than one object answers to that label ({name}): labels must be unique"
        if name in UNREACHABLE:
            return f"the token is unreachable ({name}): check the HSM is up and connected"
        return (
            f"the HSM refused the request ({name}): check the key is an AES key allowed to "
            "ENCRYPT and DECRYPT, and that the token supports AES-GCM"
        )

    def _fail(self, key_id: int | None, problem: str, *, unavailable: bool = False) -> NoReturn:
        # No data key id here: the app adds the one it was unwrapping ("Cannot unwrap key ...
        # with ..."), and repeats this error for the next keys during its back-off, where an id
        # of the first key would name the wrong one.
        error = MasterKeyUnavailable if unavailable else MasterKeyProviderError
        raise error(f"{self.description}: {problem} (module {self.module}).") from None

    def _wrong_key(self, key_id: int, reason: str) -> WrongMasterKey:
        return WrongMasterKey(
            f"{self.description} does not unwrap data key {format_key_id(key_id)}: {reason} "
            "(another configured master key may)."
        )
