"""``master_keys.AwsKms`` against moto's KMS server (started by the test command): the wrap bound
to the data key id, each refusal mapped to the exception and message the contract promises, the
time limits, the calls counted by the server, and nothing secret in a message, a repr or a log.
"""

import base64
import json
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from data_encryption.exceptions import MasterKeyProviderError, MasterKeyUnavailable, WrongMasterKey
from data_encryption.master_keys import AwsKms

from .kms_server import (
    KmsTestCase,
    count_kms_calls,
    create_key,
    kms_client,
    needs_kms,
    unique_name,
)

MATERIAL = bytes(range(32))


@needs_kms
class RoundTripTests(KmsTestCase):
    def test_unwrap_returns_what_wrap_was_given(self):
        provider = self.provider()
        for key_id, material in ((1, MATERIAL), (0xFFFFFFFF, os.urandom(64)), (7, b"k")):
            with self.subTest(key_id=key_id, size=len(material)):
                wrapped = provider.wrap(key_id, material)
                self.assertLessEqual(len(wrapped), 4000)
                if len(material) >= 16:  # a shorter one may turn up in any blob by chance
                    self.assertNotIn(material, wrapped)
                self.assertEqual(provider.unwrap(key_id, wrapped), material)

    def test_every_spelling_of_the_key_unwraps_the_same_blobs(self):
        alias = unique_name("alias/data-encryption")
        kms_client(self.url).create_alias(AliasName=alias, TargetKeyId=self.key["KeyId"])
        alias_arn = self.key["Arn"].split(":key/")[0] + ":" + alias
        wrapped = self.provider().wrap(3, MATERIAL)
        for spelling in (self.key["KeyId"], alias, alias_arn):
            with self.subTest(spelling=spelling):
                provider = self.provider(spelling)
                self.assertEqual(provider.key_name, spelling)
                self.assertEqual(provider.unwrap(3, wrapped), MATERIAL)
                self.assertEqual(provider.unwrap(3, provider.wrap(3, MATERIAL)), MATERIAL)

    def test_the_key_id_is_bound_to_the_wrap(self):
        provider = self.provider()
        wrapped = provider.wrap(5, MATERIAL)
        with self.assertRaises(WrongMasterKey) as caught:
            provider.unwrap(6, wrapped)
        self.assertIn(self.key["Arn"], str(caught.exception))
        self.assertIn("InvalidCiphertextException", str(caught.exception))

    def test_a_blob_of_another_kms_key_does_not_unwrap(self):
        other = self.provider(create_key(self.url)["Arn"])
        wrapped = other.wrap(5, MATERIAL)
        with count_kms_calls(self.url) as calls:
            with self.assertRaises(WrongMasterKey) as caught:
                self.provider().unwrap(5, wrapped)
        self.assertIn(self.key["Arn"], str(caught.exception))
        self.assertIn("another KMS key", str(caught.exception))
        # moto answers AccessDenied here (AWS: IncorrectKeyException); one probe round trip
        # under this key proves the key and the role are fine, so the blob is to blame.
        self.assertEqual(calls, {"Decrypt": 2, "Encrypt": 1})

    def test_an_altered_blob_does_not_unwrap(self):
        provider = self.provider()
        wrapped = provider.wrap(9, MATERIAL)
        # The first bytes name the KMS key, the rest are the IV, ciphertext and tag.
        for position in (0, 20, 40, 60, len(wrapped) - 1):
            altered = bytearray(wrapped)
            altered[position] ^= 0x01
            with self.subTest(position=position):
                with self.assertRaises(WrongMasterKey):
                    provider.unwrap(9, bytes(altered))
        for garbage in (wrapped[:30], wrapped + b"\x00", b"", b"x" * 7000):
            with self.subTest(size=len(garbage)):
                with self.assertRaises(WrongMasterKey):
                    provider.unwrap(9, garbage)

    def test_check_passes_for_an_enabled_symmetric_key(self):
        with count_kms_calls(self.url) as calls:
            self.provider().check()
        self.assertEqual(calls, {"DescribeKey": 1, "Encrypt": 1, "Decrypt": 1})

    def test_one_kms_call_per_wrap_and_per_unwrap(self):
        provider = self.provider()
        with count_kms_calls(self.url) as wraps:
            blobs = {key_id: provider.wrap(key_id, MATERIAL) for key_id in range(1, 4)}
        with count_kms_calls(self.url) as unwraps:
            for key_id, wrapped in blobs.items():
                provider.unwrap(key_id, wrapped)
        self.assertEqual(wraps, {"Encrypt": 3})
        self.assertEqual(unwraps, {"Decrypt": 3})

    def test_threads_share_one_client(self):
        provider = self.provider()
        wrapped = {key_id: provider.wrap(key_id, MATERIAL) for key_id in range(1, 9)}
        fresh = self.provider()
        start = threading.Barrier(8)

        def unwrap(key_id):
            start.wait()
            return fresh.unwrap(key_id, wrapped[key_id]), id(fresh._get_client())

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(unwrap, wrapped))
        self.assertEqual({material for material, _ in results}, {MATERIAL})
        self.assertEqual(len({client for _, client in results}), 1)

    def test_no_plaintext_in_botocore_debug_logs(self):
        material = os.urandom(32)
        forms = [material.hex(), base64.b64encode(material).decode()]
        provider = self.provider()
        with self.assertLogs("botocore", level="DEBUG") as logs:
            provider.unwrap(4, provider.wrap(4, material))
            provider.check()
        text = "\n".join(logs.output)
        self.assertIn("Response body", text)  # botocore did log at DEBUG: the test can fail
        for form in forms:
            self.assertNotIn(form, text)
        self.assertNotIn('"Plaintext"', text)


@needs_kms
class ForkTests(KmsTestCase):
    def test_a_forked_child_makes_its_own_client(self):
        # Celery's prefork workers fork after the parent may have used the provider: the
        # parent's pooled connections are its sockets, never to be read by a child as well.
        from .hsm_token import run_in_fork

        provider = self.provider()
        wrapped = provider.wrap(3, MATERIAL)  # the parent's client, with a pooled connection
        parent_client = id(provider._get_client())

        def in_child():
            fresh = id(provider._get_client()) != parent_client
            return [fresh, provider.unwrap(3, wrapped) == MATERIAL]

        self.assertEqual(run_in_fork(in_child).get("result"), [True, True])
        self.assertEqual(provider.unwrap(3, wrapped), MATERIAL)  # the parent's still works


@needs_kms
class KeyRefusalTests(KmsTestCase):
    def assertRefused(self, action, *fragments):
        with self.assertRaises(MasterKeyProviderError) as caught:
            action()
        self.assertNotIsInstance(caught.exception, MasterKeyUnavailable)
        for fragment in fragments:
            self.assertIn(fragment, str(caught.exception))
        return caught.exception

    def test_a_key_arn_that_does_not_exist(self):
        missing = self.key["Arn"].rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
        provider = self.provider(missing)
        wrapped = self.provider().wrap(2, MATERIAL)
        for action in (provider.check, lambda: provider.unwrap(2, wrapped)):
            self.assertRefused(action, missing, "NotFoundException", "check key_id")
        self.assertRefused(lambda: provider.wrap(2, MATERIAL), missing, "NotFoundException")

    def test_an_alias_that_does_not_exist(self):
        self.assertRefused(self.provider("alias/no-such-alias").check, "alias/no-such-alias")

    def test_a_key_arn_of_another_region(self):
        elsewhere = self.key["Arn"].replace(":us-east-1:", ":eu-west-1:")
        self.assertRefused(self.provider(elsewhere).check, elsewhere, "NotFoundException")

    def test_a_disabled_key_fails_check_naming_its_state(self):
        key = create_key(self.url)
        kms_client(self.url).disable_key(KeyId=key["KeyId"])  # moto 500s on an ARN here
        self.assertRefused(self.provider(key["Arn"]).check, key["Arn"], "is Disabled", "Enable")

    def test_a_key_pending_deletion_fails_check_naming_its_state(self):
        key = create_key(self.url)
        kms_client(self.url).schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
        self.assertRefused(self.provider(key["Arn"]).check, key["Arn"], "is PendingDeletion")

    def test_a_key_policy_that_denies_this_role(self):
        deny = {"Effect": "Deny", "Principal": "*", "Action": ["kms:DescribeKey"], "Resource": "*"}
        policy = json.dumps({"Version": "2012-10-17", "Statement": [deny]})
        key = create_key(self.url, Policy=policy)
        self.assertRefused(
            self.provider(key["Arn"]).check,
            key["Arn"],
            "AccessDeniedException",  # moto checks key policies on DescribeKey alone
            "kms:Encrypt, kms:Decrypt and kms:DescribeKey on the key",
        )

    def test_a_key_that_is_not_a_symmetric_encryption_key_fails_check(self):
        for options in (
            {"KeyUsage": "SIGN_VERIFY", "KeySpec": "RSA_2048"},
            {"KeyUsage": "ENCRYPT_DECRYPT", "KeySpec": "RSA_2048"},
        ):
            with self.subTest(**options):
                key = create_key(self.url, **options)
                self.assertRefused(
                    self.provider(key["Arn"]).check, key["Arn"], "RSA_2048", "SYMMETRIC_DEFAULT"
                )


@needs_kms
class UnreachableTests(KmsTestCase):
    LIMITS = {"connect_timeout": 0.5, "read_timeout": 0.5, "max_attempts": 2}
    # Generous: the limits times ten, so a slow machine never fails it and a hang always does.
    BOUND = 10 * LIMITS["max_attempts"] * (LIMITS["connect_timeout"] + LIMITS["read_timeout"])

    def assertUnavailable(self, endpoint_url):
        provider = AwsKms(key_id=self.key["Arn"], endpoint_url=endpoint_url, **self.LIMITS)
        wrapped = self.provider().wrap(1, MATERIAL)
        actions = {
            "check": provider.check,
            "wrap": lambda: provider.wrap(1, MATERIAL),
            "unwrap": lambda: provider.unwrap(1, wrapped),
        }
        for name, action in actions.items():
            with self.subTest(name):
                started = time.monotonic()
                with self.assertRaises(MasterKeyUnavailable) as caught:
                    action()
                self.assertLess(time.monotonic() - started, self.BOUND)
                message = str(caught.exception)
                for fragment in (self.key["Arn"], endpoint_url, "read_timeout=0.5s"):
                    self.assertIn(fragment, message)

    def test_a_closed_port(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.assertUnavailable(f"http://127.0.0.1:{port}")

    def test_a_server_that_never_answers(self):
        # The kernel accepts connections into the backlog; nobody ever reads or replies.
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(16)
            self.assertUnavailable(f"http://127.0.0.1:{silent.getsockname()[1]}")
