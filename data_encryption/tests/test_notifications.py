"""Notifications and signals: the email's sender, recipients, subject and body; templates a
project overrides; a notifier that fails never changes the outcome; one real SMTP server."""

import socket
import threading

from django.conf import settings
from django.core import mail
from django.dispatch import receiver
from django.test import TestCase, override_settings

from data_encryption.keys import unwrap_data_key
from data_encryption.master_key import parse_fernet_key
from data_encryption.models import DataKey
from data_encryption.notifications import EncryptionKeyRotationNotifier
from data_encryption.services import EncryptionService, KeyRotationService
from data_encryption.signals import (
    rotation_completed,
    rotation_failed,
    rotation_skipped,
    rotation_started,
)
from data_encryption.tests.testapp.models import Customer
from data_encryption.tests.utils import FreshKeyRingMixin, assert_no_material

FAST = {**settings.ENCRYPTION_KEY_ROTATION, "KEY_CACHE_SECONDS": 0}


class RecordingNotifier(EncryptionKeyRotationNotifier):
    """The contract's CustomNotifier: sends nowhere, remembers what it was given."""

    sent: list = []

    def send_key_rotation_notification(self, details):
        RecordingNotifier.sent.append(details)


class BrokenNotifier(EncryptionKeyRotationNotifier):
    def send_key_rotation_notification(self, details):
        raise RuntimeError("the chat service is down")


def all_key_material():
    raws = [
        parse_fernet_key(settings.DB_ENCRYPTION_KEY, "m"),
        parse_fernet_key(settings.PAYLOAD_ENCRYPTION_KEY, "p"),
    ]
    return raws + [unwrap_data_key(key) for key in DataKey.objects.exclude(wrapped_key=None)]


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class EmailTests(FreshKeyRingMixin, TestCase):
    def setUp(self):
        super().setUp()
        for i in range(3):
            Customer.objects.create(name=f"c{i}", _ssn=EncryptionService.encrypt(f"123-45-000{i}"))

    def test_completed_rotation_email(self):
        report = KeyRotationService().rotate()
        self.assertEqual(len(mail.outbox), 1)
        message = mail.outbox[0]
        self.assertEqual(message.from_email, "alerts@example.com")
        self.assertEqual(message.to, ["security@example.com"])
        self.assertEqual(
            message.subject,
            f"{settings.EMAIL_SUBJECT_PREFIX}Key rotation completed: "
            f"{report['records_processed']} records",
        )
        for text in (message.body, message.alternatives[0][0]):
            self.assertIn(report["new_key_id"], text)
            self.assertIn(report["key_backup_path"], text)
            self.assertIn("data_encryption_tests.Customer: 3 rows, 3 re-encrypted, 0 failed", text)
            self.assertNotIn("123-45-000", text)
            assert_no_material(self, [text], all_key_material())
        self.assertIn("Failed records:     0", message.body)
        self.assertEqual(message.alternatives[0][1], "text/html")
        self.assertEqual(report["notification"], {"sent": True, "error": ""})

    def test_failed_records_are_listed_by_pk(self):
        bad = Customer.objects.create(name="bad", _ssn=b"garbage")
        report = KeyRotationService().rotate()
        message = mail.outbox[0]
        self.assertIn("Key rotation completed with 1 failed records", message.subject)
        self.assertIn(f"data_encryption_tests.Customer pk={bad.pk} field=_ssn", message.body)
        self.assertEqual(report["status"], "failed")

    def test_failed_rotation_subject(self):
        with override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "BACKUP_DIR": None}):
            KeyRotationService().rotate()
        self.assertIn("Key rotation FAILED", mail.outbox[0].subject)
        self.assertIn("BACKUP_DIR", mail.outbox[0].body)

    @override_settings(EMAIL_SECURITY=["a@example.com", "b@example.com"])
    def test_recipient_list(self):
        KeyRotationService().rotate()
        self.assertEqual(mail.outbox[0].to, ["a@example.com", "b@example.com"])

    def test_dry_runs_are_not_announced(self):
        KeyRotationService().rotate(dry_run=True)
        self.assertEqual(mail.outbox, [])

    @override_settings(
        DATA_ENCRYPTION_NOTIFIER="data_encryption.tests.test_notifications.RecordingNotifier"
    )
    def test_a_custom_notifier_replaces_the_email(self):
        RecordingNotifier.sent.clear()
        report = KeyRotationService().rotate()
        self.assertEqual(mail.outbox, [])
        self.assertEqual(RecordingNotifier.sent, [report])

    @override_settings(
        DATA_ENCRYPTION_NOTIFIER="data_encryption.tests.test_notifications.BrokenNotifier"
    )
    def test_a_notifier_that_raises_does_not_change_the_outcome(self):
        report = KeyRotationService().rotate()
        self.assertEqual(report["status"], "completed")
        self.assertEqual(report["notification"], {"sent": False, "error": "RuntimeError"})

    @override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_TIMEOUT=2,
    )
    def test_a_mail_server_that_is_down_does_not_change_the_outcome(self):
        with socket.socket() as probe:  # a loopback port with nothing listening
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with override_settings(EMAIL_PORT=port):
            report = KeyRotationService().rotate()
        self.assertEqual(report["status"], "completed")
        self.assertFalse(report["notification"]["sent"])
        self.assertEqual(report["notification"]["error"], "ConnectionRefusedError")


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class SignalTests(FreshKeyRingMixin, TestCase):
    def listen(self, signal):
        received = []

        def handler(sender, **kwargs):
            received.append((sender, kwargs))

        signal.connect(handler)
        self.addCleanup(signal.disconnect, handler)
        return received

    def test_started_and_completed(self):
        started, completed = self.listen(rotation_started), self.listen(rotation_completed)
        report = KeyRotationService().rotate()
        self.assertEqual(started[0][0], KeyRotationService)
        self.assertEqual(started[0][1]["run_id"], report["run_id"])
        self.assertEqual(started[0][1]["trigger"], "api")
        self.assertFalse(started[0][1]["resumed"])
        self.assertEqual(completed[0][1]["report"], report)

    def test_failed_and_skipped(self):
        failed, skipped = self.listen(rotation_failed), self.listen(rotation_skipped)
        Customer.objects.create(name="bad", _ssn=b"garbage")
        KeyRotationService().rotate()
        self.assertEqual(len(failed), 1)
        self.assertEqual(failed[0][1]["report"]["failed_records"], 1)
        from django.utils import timezone

        from data_encryption.models import RotationRun

        RotationRun.objects.create(
            started_at=timezone.now(),
            heartbeat_at=timezone.now(),
            holder=f"elsewhere:{__import__('os').getpid()}:x",
        )
        KeyRotationService().rotate()
        self.assertEqual(skipped[0][1]["report"]["skipped"], "already_running")

    def test_a_receiver_that_raises_changes_nothing(self):
        @receiver(rotation_completed)
        def broken(sender, **kwargs):
            raise ValueError("slack is down")

        self.addCleanup(rotation_completed.disconnect, broken)
        report = KeyRotationService().rotate()
        self.assertEqual(report["status"], "completed")
        self.assertTrue(report["notification"]["sent"])


class RealSmtpServerTests(FreshKeyRingMixin, TestCase):
    """Once, the whole way: Django's SMTP backend to a real SMTP server on loopback."""

    def setUp(self):
        super().setUp()
        try:
            from aiosmtpd.controller import Controller
        except ImportError:
            self.skipTest("aiosmtpd is not installed (test extra)")
        self.received = []
        received, lock = self.received, threading.Lock()

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                with lock:
                    received.append(envelope)
                return "250 OK"

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        self.addCleanup(self.controller.stop)

    def test_notification_arrives(self):
        port = self.port
        Customer.objects.create(name="c", _ssn=EncryptionService.encrypt("123-45-6789"))
        with override_settings(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=port,
            EMAIL_TIMEOUT=5,
            EMAIL_SECURITY=["security@example.com", "ciso@example.com"],
            ENCRYPTION_KEY_ROTATION=FAST,
        ):
            report = KeyRotationService().rotate()
        self.assertEqual(report["notification"], {"sent": True, "error": ""})
        self.assertEqual(len(self.received), 1)
        envelope = self.received[0]
        self.assertEqual(envelope.mail_from, "alerts@example.com")
        self.assertEqual(sorted(envelope.rcpt_tos), ["ciso@example.com", "security@example.com"])
        from email import message_from_bytes, policy

        message = message_from_bytes(envelope.content, policy=policy.default)
        self.assertIn("Key rotation completed: 1 records", message["Subject"])
        body = message.get_body(("plain",)).get_content()
        self.assertIn("Records processed:  1", body)
        self.assertIn(report["new_key_id"], body)
        self.assertNotIn("123-45-6789", body)
        assert_no_material(self, [envelope.content.decode("utf-8", "replace")], all_key_material())
