"""moto's standalone KMS server, as the tests use it: its address (skip without it, fail when
the test command promised it), fresh keys, an AWS environment that reads nothing of the
developer's, the server-side count of KMS calls, and IAM auth switched on for a block.

``scripts/test.sh`` starts two servers (``start_moto`` in ``scripts/lib.sh``): an open one
(``DATA_ENCRYPTION_TEST_KMS_URL``) and one whose auth the credential tests switch on
(``DATA_ENCRYPTION_TEST_KMS_AUTH_URL``). Both live for a whole run of every matrix entry, so
names made on them (aliases, IAM users) carry a random suffix.
"""

import base64
import contextlib
import json
import os
import secrets
import tempfile
import unittest
import urllib.request
from collections import Counter
from unittest import mock

from django.test import SimpleTestCase

from data_encryption.master_keys import AwsKms

KMS_URL_VARIABLE = "DATA_ENCRYPTION_TEST_KMS_URL"
KMS_AUTH_URL_VARIABLE = "DATA_ENCRYPTION_TEST_KMS_AUTH_URL"
REQUIRE_SERVICES = os.environ.get("DATA_ENCRYPTION_TEST_REQUIRE_SERVICES") == "1"

#: The dummy credentials moto accepts while its auth is off.
TEST_ACCESS_KEY_ID = "testing"
TEST_SECRET_ACCESS_KEY = "testing"
TEST_REGION = "us-east-1"

# Every variable through which boto3 could find a developer's AWS setup or a real AWS.
_AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_KMS",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)


def needs_kms(test_class, variable=KMS_URL_VARIABLE):
    """Skips ``test_class`` when no KMS server was started, unless the test command said it
    would start one (then ``setUpClass`` fails through ``kms_url``)."""
    reason = f"needs {variable} (scripts/test.sh starts moto's KMS server)"
    return unittest.skipUnless(os.environ.get(variable) or REQUIRE_SERVICES, reason)(test_class)


def needs_kms_auth(test_class):
    """``needs_kms`` for the server whose IAM auth the tests switch on."""
    return needs_kms(test_class, KMS_AUTH_URL_VARIABLE)


class KmsTestCase(SimpleTestCase):
    """A fresh KMS key per class on the open server, in an AWS environment of dummy values;
    ``provider()`` makes an ``AwsKms`` for it (or for another key id) against that server."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.url = kms_url()
        cls.enterClassContext(aws_environment())
        cls.key = create_key(cls.url)

    def provider(self, key_id=None, **options):
        return AwsKms(key_id=key_id or self.key["Arn"], endpoint_url=self.url, **options)


def kms_url(*, auth: bool = False) -> str:
    variable = KMS_AUTH_URL_VARIABLE if auth else KMS_URL_VARIABLE
    url = os.environ.get(variable)
    if not url:
        raise AssertionError(
            f"DATA_ENCRYPTION_TEST_REQUIRE_SERVICES=1 but {variable} is not set: the test "
            "command must start moto's KMS server (start_moto in scripts/lib.sh)."
        )
    return url


@contextlib.contextmanager
def aws_environment(**variables):
    """boto3's whole environment for a block: the dummy credentials and region (or
    ``variables``; a value of ``None`` leaves that variable unset), empty config files, and the
    instance metadata service off, so nothing of the developer's ``~/.aws``, nor any address
    off this machine, is ever consulted."""
    with tempfile.TemporaryDirectory(prefix="data-encryption-aws-") as directory:
        empty = os.path.join(directory, "empty")
        open(empty, "w").close()
        values = {
            "AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": TEST_SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": TEST_REGION,
            "AWS_CONFIG_FILE": empty,
            "AWS_SHARED_CREDENTIALS_FILE": empty,
            "AWS_EC2_METADATA_DISABLED": "true",
            **variables,
        }
        with mock.patch.dict(os.environ):  # restores the whole environment afterwards
            for name in _AWS_VARIABLES:
                os.environ.pop(name, None)
            os.environ.update({name: value for name, value in values.items() if value is not None})
            yield


def kms_client(url: str, service: str = "kms"):
    """A boto3 client for the test's own setup (making keys, users), with the dummy
    credentials given explicitly so it works under any ``aws_environment``."""
    import boto3

    return boto3.client(
        service,
        region_name=TEST_REGION,
        endpoint_url=url,
        aws_access_key_id=TEST_ACCESS_KEY_ID,
        aws_secret_access_key=TEST_SECRET_ACCESS_KEY,
    )


def create_key(url: str, **options) -> dict:
    """A fresh KMS key on the server at ``url``: its ``KeyMetadata`` (``KeyId``, ``Arn``)."""
    return kms_client(url).create_key(Description="data_encryption test", **options)["KeyMetadata"]


def unique_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _moto_api(url: str, path: str, body: bytes | None = None) -> bytes:
    request = urllib.request.Request(
        f"{url}/moto-api/{path}",
        data=body,
        method="GET" if body is None else "POST",
        # Flask reads a form-encoded body as a form and leaves the raw data empty.
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


@contextlib.contextmanager
def kms_requests(url: str | None = None):
    """The KMS requests the server at ``url`` received during the block, as ``(operation,
    KeyId)`` pairs (``KeyId`` ``None`` when a request names none), filled when the block ends;
    recorded by the server itself (moto's recorder), so nothing in the process is wrapped.

    The recorder is the server's, not the test's: no other test may use the same server
    concurrently (Django's runner here is serial).
    """
    url = url or kms_url()
    requests: list = []
    _moto_api(url, "recorder/reset-recording", b"")
    _moto_api(url, "recorder/start-recording", b"")
    try:
        yield requests
    finally:
        _moto_api(url, "recorder/stop-recording", b"")
        for line in _moto_api(url, "recorder/download-recording").decode().splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            headers = {name.lower(): value for name, value in record["headers"].items()}
            service, _, operation = headers.get("x-amz-target", "").partition(".")
            if service != "TrentService":
                continue
            body = record.get("body") or ""
            if record.get("body_encoded"):
                body = base64.b64decode(body).decode()
            requests.append((operation, json.loads(body or "{}").get("KeyId")))


@contextlib.contextmanager
def count_kms_calls(url: str | None = None):
    """A ``Counter`` of the KMS operations (``"Decrypt"``, ``"Encrypt"``...) the server at
    ``url`` received during the block (``kms_requests``), filled when the block ends."""
    calls: Counter = Counter()
    with kms_requests(url) as requests:
        yield calls
    calls.update(operation for operation, _key_id in requests)


@contextlib.contextmanager
def enforced_auth(url: str):
    """moto's IAM auth on for the block: every request must be signed by an IAM access key the
    server knows, and be allowed by that user's policies."""
    _moto_api(url, "reset-auth", b"0")
    try:
        yield
    finally:
        _moto_api(url, "reset-auth", b"inf")
