"""What a failed AWS KMS call means for ``AwsKms``, in words an operator can act on: whether the
service was out of reach (``MasterKeyUnavailable``) or refused (``MasterKeyProviderError``), and
what to check. Messages quote error codes and class names, never the service's text or a value.
botocore is imported inside the functions, so this module loads without it.
"""

from __future__ import annotations

from typing import Any, TypeGuard

_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "ExpiredToken",
        "IncompleteSignature",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "MissingAuthenticationToken",
    }
)
_UNAVAILABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "KMSInternalException",
        "DependencyTimeoutException",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_KEY_STATE_ADVICE = {
    "NotFoundException": (
        "no such key in this region for this account: check key_id, region_name (or the "
        "ARN's region) and that the credentials are for the key's account"
    ),
    "DisabledException": "the key is disabled: enable it in KMS, or name another key",
    "KMSInvalidStateException": (
        "the key cannot be used in its current state (pending deletion, pending import, "
        "unavailable): look at its KeyState (aws kms describe-key) and cancel the deletion or "
        "name another key"
    ),
    "InvalidKeyUsageException": (
        "the key is not a symmetric encryption key: a master key needs KeySpec "
        "SYMMETRIC_DEFAULT and KeyUsage ENCRYPT_DECRYPT"
    ),
}
_CREDENTIALS_ADVICE = (
    "check the credentials boto3 finds for this process (AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, the instance or task role), that they have not "
    "expired, that the clock is right, and that they belong to the key's account"
)
_PERMISSIONS_ADVICE = (
    "grant this process's role kms:Encrypt, kms:Decrypt and kms:DescribeKey on the key, in its "
    "IAM policy and in the key policy"
)


def is_client_error(exc: BaseException) -> TypeGuard[Any]:
    """Whether ``exc`` is the service's own answer (botocore's ``ClientError``)."""
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError)


def describe_client_error(exc: Any, operation: str) -> tuple[bool, str]:
    """(unavailable?, advice) for a ``ClientError`` that is not a wrong-key answer."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in _KEY_STATE_ADVICE:
        return False, f"{code}: {_KEY_STATE_ADVICE[code]}."
    if code in _CREDENTIAL_CODES:
        return False, f"KMS refused the credentials ({code}): {_CREDENTIALS_ADVICE}."
    if code == "AccessDeniedException":
        return False, f"{code}: this role may not call kms:{operation}: {_PERMISSIONS_ADVICE}."
    if code in _UNAVAILABLE_CODES or status >= 500:
        return True, (
            f"KMS is throttling or failing ({code or f'HTTP {status}'}) even after retries: "
            "try again later (a process with its keys loaded keeps working meanwhile); if it "
            "lasts, raise the account's KMS request quota or look at the AWS Health Dashboard."
        )
    if status in (401, 403):
        # A gateway or proxy (or moto's auth) answering in a shape the KMS client cannot read.
        return False, (
            f"HTTP {status} (credentials or permissions): {_CREDENTIALS_ADVICE}; and "
            f"{_PERMISSIONS_ADVICE}."
        )
    return False, (
        f"KMS refused the request ({code or f'HTTP {status}'}): check key_id and endpoint_url."
    )


def describe_library_error(
    exc: BaseException, endpoint: str, limits: str
) -> tuple[bool, str] | None:
    """(unavailable?, advice) for an error botocore raised before or instead of an answer, or
    ``None`` when ``exc`` is not botocore's."""
    from botocore import exceptions as botocore_errors

    name = type(exc).__name__
    if isinstance(exc, botocore_errors.SSLError):
        return False, (
            f"TLS to {endpoint} failed ({name}): check endpoint_url and the CA bundle "
            "(AWS_CA_BUNDLE)."
        )
    if isinstance(exc, botocore_errors.ConnectionError | botocore_errors.HTTPClientError):
        return True, (
            f"could not reach KMS at {endpoint} ({name}) within {limits}: check the network "
            "path (VPC endpoint, proxy, security group, DNS) and region_name/endpoint_url; a "
            "process with its keys loaded keeps working meanwhile."
        )
    credential_errors = (
        botocore_errors.NoCredentialsError,
        botocore_errors.PartialCredentialsError,
        botocore_errors.CredentialRetrievalError,
        botocore_errors.TokenRetrievalError,
    )
    if isinstance(exc, credential_errors):
        return False, f"no usable AWS credentials ({name}): {_CREDENTIALS_ADVICE}."
    if isinstance(exc, botocore_errors.ProfileNotFound | botocore_errors.ConfigParseError):
        return False, (
            f"the AWS profile could not be loaded ({name}): check profile_name and the AWS "
            "config files (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE)."
        )
    if isinstance(exc, botocore_errors.NoRegionError):
        return False, (
            "no AWS region: set OPTIONS['region_name'] (or AWS_DEFAULT_REGION), or name the "
            "key by its ARN, which carries its region."
        )
    if isinstance(exc, botocore_errors.BotoCoreError):
        return False, f"botocore failed ({name}): check key_id, region_name and endpoint_url."
    return None
