"""``AwsKms``: a master key in AWS KMS. Each data key is wrapped with KMS ``Encrypt`` and
unwrapped with ``Decrypt``, its key id bound as the encryption context, so no process ever holds
the master key. boto3 (``pip install django-data-encryption[aws]``) is imported on first use;
credentials come from boto3's usual chain, never from settings.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
from typing import Any

from ..exceptions import MasterKeyProviderError, MasterKeyUnavailable, WrongMasterKey
from .aws_kms_errors import describe_client_error, describe_library_error, is_client_error
from .provider import Provider, key_context

#: The encryption-context key every wrap is bound under; its value is ``key_context(key_id)``.
CONTEXT_KEY = "data_encryption:key"
#: ``check()``'s probe is bound to a context no data key id can have.
PROBE_CONTEXT = "data_encryption/check-probe"

_CLIENT_METHODS = {"Encrypt": "encrypt", "Decrypt": "decrypt", "DescribeKey": "describe_key"}
#: KMS refuses a ciphertext blob longer than this before looking at it.
_MAX_CIPHERTEXT = 6144
_CREDENTIAL_OPTIONS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):\d{12}:(?:key|alias)/\S+")


class AwsKms(Provider):
    """A symmetric AWS KMS key (``KeySpec`` ``SYMMETRIC_DEFAULT``, ``KeyUsage``
    ``ENCRYPT_DECRYPT``) named by its key ARN, key id, alias ARN or ``alias/<name>``.

    Every call has ``connect_timeout`` and ``read_timeout`` (seconds) and at most
    ``max_attempts`` attempts (botocore's standard retry mode, which backs off between them), so
    an unreachable KMS fails within about ``max_attempts * (connect_timeout + read_timeout)``
    seconds plus a backoff of a second or two: never a hang.
    """

    kind = "aws-kms"

    def __init__(
        self,
        *,
        key_id: str,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        max_attempts: int = 2,
        profile_name: str | None = None,
        **unknown_options: Any,
    ) -> None:
        if not isinstance(key_id, str) or not key_id.strip():
            raise MasterKeyProviderError(
                "AwsKms needs OPTIONS['key_id']: the KMS key's ARN, key id, alias ARN or "
                "'alias/<name>'."
            )
        self.key_id = key_id
        _refuse_unknown_options(key_id, unknown_options)
        arn = _KEY_ARN.fullmatch(key_id)
        if key_id.startswith("arn:") and arn is None:
            raise MasterKeyProviderError(
                f"{self.description}: key_id is not a KMS key or alias ARN "
                "(arn:aws:kms:<region>:<account>:key/<id> or .../alias/<name>)."
            )
        arn_region = arn.group("region") if arn else None
        if region_name and arn_region and region_name != arn_region:
            raise MasterKeyProviderError(
                f"{self.description}: region_name {region_name!r} is not the key ARN's region "
                f"{arn_region!r}; remove region_name or make them agree."
            )
        self.region_name = region_name or arn_region
        self.endpoint_url = endpoint_url
        self.profile_name = profile_name
        self.connect_timeout = _positive(self, "connect_timeout", connect_timeout)
        self.read_timeout = _positive(self, "read_timeout", read_timeout)
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise MasterKeyProviderError(
                f"{self.description}: max_attempts must be a whole number of at least 1."
            )
        self.max_attempts = max_attempts
        self._client: Any = None
        self._client_pid = 0
        self._client_lock = threading.Lock()
        _import_boto3(self.description)  # a missing boto3 fails here, at settings load
        _hide_plaintext_from_botocore_logs()

    @property
    def key_name(self) -> str:
        return self.key_id

    @property
    def endpoint(self) -> str:
        """Where the calls go, for messages: the endpoint URL once known, else the region."""
        if self._client is not None:
            return str(self._client.meta.endpoint_url)
        return self.endpoint_url or f"the KMS endpoint of region {self.region_name or '(default)'}"

    @property
    def limits(self) -> str:
        """The time limits of every call, for messages."""
        return (
            f"connect_timeout={self.connect_timeout:g}s, read_timeout={self.read_timeout:g}s, "
            f"max_attempts={self.max_attempts}"
        )

    def wrap(self, key_id: int, plaintext: bytes) -> bytes:
        if not isinstance(plaintext, bytes) or not 1 <= len(plaintext) <= 4096:
            raise ValueError("AwsKms.wrap takes 1 to 4096 bytes of key material.")
        return self._encrypt(plaintext, key_context(key_id))

    def unwrap(self, key_id: int, wrapped: bytes) -> bytes:
        if not 1 <= len(wrapped) <= _MAX_CIPHERTEXT:
            raise WrongMasterKey(
                f"{self.description} does not unwrap this wrapped key: {len(wrapped)} bytes is "
                "not the size of a KMS ciphertext."
            )
        try:
            return self._decrypt(bytes(wrapped), key_context(key_id))
        except _AccessDeniedOnDecrypt:
            # KMS answers AccessDenied both when this role may not use the key and when the blob
            # names another key (moto always, AWS for a key it cannot see): a probe round trip
            # under this key tells the two apart. It passes only if the key and this role's
            # permissions are fine, so the blob is what is wrong.
            self._round_trip()
            raise WrongMasterKey(
                f"{self.description} does not unwrap this wrapped key: it was made under another "
                "KMS key."
            ) from None

    def check(self) -> None:
        metadata = self._call("DescribeKey", KeyId=self.key_id)["KeyMetadata"]
        # KMS's defaults stand in for fields an answer leaves out (moto omits KeyUsage).
        state = metadata.get("KeyState")
        usage = metadata.get("KeyUsage", "ENCRYPT_DECRYPT")
        spec = metadata.get("KeySpec", "SYMMETRIC_DEFAULT")
        if state != "Enabled":
            raise MasterKeyProviderError(
                f"{self.description} is {state}, not Enabled: KMS refuses to encrypt or decrypt "
                "with it. Enable it (or cancel its deletion), or name another key."
            )
        if usage != "ENCRYPT_DECRYPT" or spec != "SYMMETRIC_DEFAULT":
            raise MasterKeyProviderError(
                f"{self.description} is a {spec} key for {usage}: a master key must be a "
                "symmetric encryption key (KeySpec SYMMETRIC_DEFAULT, KeyUsage ENCRYPT_DECRYPT)."
            )
        self._round_trip()

    def _round_trip(self) -> None:
        probe = secrets.token_bytes(32)
        try:
            echoed = self._decrypt(self._encrypt(probe, PROBE_CONTEXT), PROBE_CONTEXT)
        except _AccessDeniedOnDecrypt as exc:
            _, advice = describe_client_error(exc.__cause__, "Decrypt")
            raise MasterKeyProviderError(f"{self.description}: Decrypt failed: {advice}") from None
        except WrongMasterKey:
            raise MasterKeyProviderError(
                f"{self.description} could not decrypt what it had just encrypted: check that "
                "key_id names one key (not an alias being moved to another)."
            ) from None
        if not secrets.compare_digest(echoed, probe):
            raise MasterKeyProviderError(
                f"{self.description} decrypted a probe to different bytes: {self.endpoint} is "
                "not answering as KMS does; check endpoint_url."
            )

    def _encrypt(self, plaintext: bytes, context: str) -> bytes:
        response = self._call(
            "Encrypt",
            KeyId=self.key_id,
            Plaintext=plaintext,
            EncryptionContext={CONTEXT_KEY: context},
        )
        return bytes(response["CiphertextBlob"])

    def _decrypt(self, wrapped: bytes, context: str) -> bytes:
        response = self._call(
            "Decrypt",
            CiphertextBlob=wrapped,
            KeyId=self.key_id,
            EncryptionContext={CONTEXT_KEY: context},
        )
        return bytes(response["Plaintext"])

    def _call(self, operation: str, **params: Any) -> Any:
        """One KMS operation, its failures turned into this app's exceptions."""
        try:
            client = self._get_client()
            return getattr(client, _CLIENT_METHODS[operation])(**params)
        except Exception as exc:
            if is_client_error(exc):
                code = exc.response.get("Error", {}).get("Code", "")
                if code in ("InvalidCiphertextException", "IncorrectKeyException"):
                    raise WrongMasterKey(
                        f"{self.description} does not unwrap this wrapped key ({code}): it was "
                        "made under another key or for another data key, or was altered."
                    ) from None
                if code == "AccessDeniedException" and operation == "Decrypt":
                    raise _AccessDeniedOnDecrypt from exc
                unavailable, advice = describe_client_error(exc, operation)
            else:
                described = describe_library_error(exc, self.endpoint, self.limits)
                if described is None:
                    raise
                unavailable, advice = described
            error = MasterKeyUnavailable if unavailable else MasterKeyProviderError
            raise error(f"{self.description}: {operation} failed: {advice}") from exc

    def _get_client(self) -> Any:
        # boto3 clients are thread-safe, sessions are not: one client per provider object and
        # process, made once under a lock by whichever thread needs it first. A forked child
        # (Celery's prefork workers) makes its own: the parent's pooled connections are the
        # parent's sockets, and two processes reading one socket would swap their answers.
        if self._client is None or self._client_pid != os.getpid():
            with self._client_lock:
                if self._client is None or self._client_pid != os.getpid():
                    boto3, botocore_config = _import_boto3(self.description)
                    session = boto3.session.Session(profile_name=self.profile_name)
                    self._client = session.client(
                        "kms",
                        region_name=self.region_name,
                        endpoint_url=self.endpoint_url,
                        config=botocore_config.Config(
                            connect_timeout=self.connect_timeout,
                            read_timeout=self.read_timeout,
                            retries={"max_attempts": self.max_attempts, "mode": "standard"},
                        ),
                    )
                    self._client_pid = os.getpid()
        return self._client


class _AccessDeniedOnDecrypt(Exception):
    """Decrypt answered AccessDenied: ``unwrap`` finds out whether the blob or the role is
    to blame."""


def _refuse_unknown_options(key_id: str, options: dict[str, Any]) -> None:
    # Only option names are quoted: a value may be a secret.
    credentials = sorted(name for name in options if name in _CREDENTIAL_OPTIONS)
    if credentials:
        raise MasterKeyProviderError(
            f"aws-kms master key {key_id}: credentials do not belong in settings "
            f"(got {', '.join(credentials)}): give the process an IAM role (instance profile, "
            "task role) or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE in its "
            "environment; boto3 finds them."
        )
    if options:
        raise MasterKeyProviderError(
            f"aws-kms master key {key_id}: unknown option(s) {', '.join(sorted(options))}; "
            "AwsKms takes key_id, region_name, endpoint_url, connect_timeout, read_timeout, "
            "max_attempts and profile_name."
        )


def _positive(provider: AwsKms, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise MasterKeyProviderError(
            f"{provider.description}: {name} must be a number of seconds above 0."
        )
    return float(value)


def _import_boto3(description: str) -> tuple[Any, Any]:
    try:
        import boto3
        import botocore.config
    except ImportError:
        raise MasterKeyProviderError(
            f"{description} needs boto3, which is not installed: "
            "pip install django-data-encryption[aws]"
        ) from None
    return boto3, botocore.config


class _KmsPlaintextFilter(logging.Filter):
    """Drops botocore's DEBUG records of a request or response body that carries ``Plaintext``
    (KMS Encrypt's input, Decrypt's output: data keys), so a DEBUG log never holds one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return '"Plaintext"' not in record.getMessage()


_PLAINTEXT_FILTER = _KmsPlaintextFilter()


def _hide_plaintext_from_botocore_logs() -> None:
    for name in ("botocore.endpoint", "botocore.parsers"):
        logger = logging.getLogger(name)
        if _PLAINTEXT_FILTER not in logger.filters:
            logger.addFilter(_PLAINTEXT_FILTER)
