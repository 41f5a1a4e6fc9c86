"""``master_keys.AwsKms``'s configuration and credentials: the options the constructor refuses,
a missing boto3, no credentials or region, and, against a moto server whose IAM auth is on,
unknown or wrong access keys and a role without KMS permissions, each a
``MasterKeyProviderError`` that says what to check and never quotes a secret.
"""

import json
import os
import subprocess
import sys
import tempfile

from django.test import SimpleTestCase

from data_encryption.exceptions import MasterKeyProviderError, MasterKeyUnavailable
from data_encryption.master_keys import AwsKms

from .kms_server import (
    KmsTestCase,
    aws_environment,
    create_key,
    enforced_auth,
    kms_client,
    kms_url,
    needs_kms,
    needs_kms_auth,
    unique_name,
)

MATERIAL = bytes(range(32))


class OptionTests(SimpleTestCase):
    """What the constructor refuses, with no server."""

    ARN = "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

    def test_credentials_in_options_are_refused_without_echoing_them(self):
        for option in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token"):
            with self.subTest(option):
                with self.assertRaises(MasterKeyProviderError) as caught:
                    AwsKms(key_id=self.ARN, **{option: "s3cr3t-VALUE"})
                message = str(caught.exception)
                self.assertIn(option, message)
                self.assertIn("AWS_ACCESS_KEY_ID", message)
                self.assertNotIn("s3cr3t-VALUE", message)

    def test_unknown_options_are_named(self):
        with self.assertRaisesMessage(MasterKeyProviderError, "unknown option(s) regoin"):
            AwsKms(key_id=self.ARN, regoin="eu-central-1")

    def test_bad_values_are_refused(self):
        bad = [
            {"key_id": ""},
            {"key_id": "arn:aws:s3:::bucket"},
            {"key_id": self.ARN, "region_name": "us-east-1"},
            {"key_id": self.ARN, "connect_timeout": 0},
            {"key_id": self.ARN, "read_timeout": "5"},
            {"key_id": self.ARN, "max_attempts": 0},
            {"key_id": self.ARN, "max_attempts": True},
        ]
        for options in bad:
            with self.subTest(**options):
                with self.assertRaises(MasterKeyProviderError):
                    AwsKms(**options)

    def test_the_region_comes_from_the_key_arn(self):
        self.assertEqual(AwsKms(key_id=self.ARN).region_name, "eu-central-1")
        self.assertEqual(AwsKms(key_id="alias/x", region_name="sa-east-1").region_name, "sa-east-1")

    def test_names_and_fingerprint(self):
        provider = AwsKms(key_id=self.ARN)
        self.assertEqual(provider.kind, "aws-kms")
        self.assertEqual(provider.key_name, self.ARN)
        self.assertEqual(provider.description, f"aws-kms master key {self.ARN}")
        self.assertEqual(repr(provider), f"<AwsKms {self.ARN}>")
        self.assertRegex(provider.fingerprint, r"^[0-9a-f]{16}$")
        self.assertEqual(provider.fingerprint, AwsKms(key_id=self.ARN).fingerprint)
        self.assertNotEqual(provider.fingerprint, AwsKms(key_id="alias/x").fingerprint)

    def test_without_boto3_the_package_imports_and_the_provider_says_what_to_install(self):
        script = (
            "import sys\n"
            "sys.modules['boto3'] = sys.modules['botocore'] = None  # as if not installed\n"
            "import data_encryption.master_keys as m\n"
            "try:\n"
            "    m.AwsKms(key_id='alias/x', region_name='us-east-1')\n"
            "except Exception as exc:\n"
            "    print(type(exc).__name__, exc)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("MasterKeyProviderError", result.stdout)
        self.assertIn("pip install django-data-encryption[aws]", result.stdout)
        self.assertIn("alias/x", result.stdout)


@needs_kms
class MissingCredentialTests(KmsTestCase):
    def test_no_credentials_anywhere(self):
        with aws_environment(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None):
            with self.assertRaises(MasterKeyProviderError) as caught:
                self.provider().check()
        self.assertIn("NoCredentialsError", str(caught.exception))
        self.assertIn("AWS_ACCESS_KEY_ID", str(caught.exception))

    def test_a_profile_that_does_not_exist(self):
        with self.assertRaisesMessage(MasterKeyProviderError, "check profile_name"):
            self.provider(profile_name="no-such-profile").check()

    def test_no_region_for_a_bare_key_id(self):
        with aws_environment(AWS_DEFAULT_REGION=None):
            with self.assertRaisesMessage(MasterKeyProviderError, "region_name"):
                self.provider(self.key["KeyId"]).check()


@needs_kms_auth
class EnforcedAuthTests(SimpleTestCase):
    """moto's IAM auth switched on for the class on its own server: users and access keys are
    made while it is off, then every request must be signed by a key the server knows."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.url = kms_url(auth=True)
        cls.key = create_key(cls.url)
        iam = kms_client(cls.url, "iam")
        profiles = {}
        for role, actions in (
            ("app", ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"]),
            ("viewer", ["kms:DescribeKey"]),
        ):
            user = unique_name(f"data-encryption-{role}")
            iam.create_user(UserName=user)
            policy = {"Version": "2012-10-17"}
            policy["Statement"] = [{"Effect": "Allow", "Action": actions, "Resource": "*"}]
            iam.put_user_policy(UserName=user, PolicyName="kms", PolicyDocument=json.dumps(policy))
            access_key = iam.create_access_key(UserName=user)["AccessKey"]
            profiles[role] = (access_key["AccessKeyId"], access_key["SecretAccessKey"])
        cls.secrets = [secret for _, secret in profiles.values()]
        profiles["wrong-secret"] = (profiles["app"][0], "not-the-secret-" + "x" * 25)
        profiles["unknown-key"] = ("AKIAIOSFODNN7EXAMPLE", "y" * 40)
        directory = cls.enterClassContext(tempfile.TemporaryDirectory())
        credentials = os.path.join(directory, "credentials")
        with open(credentials, "w") as file:
            for name, (access_key_id, secret) in profiles.items():
                file.write(
                    f"[{name}]\naws_access_key_id = {access_key_id}\n"
                    f"aws_secret_access_key = {secret}\n"
                )
        cls.enterClassContext(aws_environment(AWS_SHARED_CREDENTIALS_FILE=credentials))
        # Made while auth is off: a blob the denied roles must fail to unwrap.
        cls.wrapped = cls.provider_for(None).wrap(1, MATERIAL)
        cls.enterClassContext(enforced_auth(cls.url))

    @classmethod
    def provider_for(cls, profile):
        return AwsKms(key_id=cls.key["Arn"], endpoint_url=cls.url, profile_name=profile)

    def assertRefused(self, profile, action, *fragments):
        provider = self.provider_for(profile)
        with self.assertRaises(MasterKeyProviderError) as caught:
            action(provider)
        error = caught.exception
        self.assertNotIsInstance(error, MasterKeyUnavailable)
        for fragment in (self.key["Arn"], *fragments):
            self.assertIn(fragment, str(error))
        for secret in self.secrets:
            self.assertNotIn(secret, str(error))
            self.assertNotIn(secret, repr(provider))

    def test_auth_is_enforced_and_a_permitted_role_works(self):
        provider = self.provider_for("app")
        provider.check()
        self.assertEqual(provider.unwrap(1, self.wrapped), MATERIAL)
        self.assertEqual(provider.unwrap(2, provider.wrap(2, MATERIAL)), MATERIAL)
        with self.assertRaises(MasterKeyProviderError):  # the dummy credentials no longer pass
            self.provider_for(None).check()

    def test_an_access_key_the_service_does_not_know(self):
        for action in (AwsKms.check, lambda provider: provider.unwrap(1, self.wrapped)):
            self.assertRefused("unknown-key", action, "credentials")

    def test_a_wrong_secret_access_key(self):
        for action in (AwsKms.check, lambda provider: provider.unwrap(1, self.wrapped)):
            self.assertRefused("wrong-secret", action, "credentials")

    def test_a_role_without_kms_permissions(self):
        # Not a WrongMasterKey: the blob is this key's, the role may not use it.
        for action in (
            AwsKms.check,
            lambda provider: provider.unwrap(1, self.wrapped),
            lambda provider: provider.wrap(1, MATERIAL),
        ):
            self.assertRefused("viewer", action, "kms:Encrypt, kms:Decrypt and kms:DescribeKey")
