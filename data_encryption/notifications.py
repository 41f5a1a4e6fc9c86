"""Notifications: an email to the security team after every rotation.

``EncryptionKeyRotationNotifier.send_key_rotation_notification(details)`` sends the report from
``EMAIL_FROM_ALERTS`` to ``EMAIL_SECURITY`` (a string or a list) through Django's mail system,
as plain text and HTML rendered from templates a project can override
(``data_encryption/email/rotation_subject.txt``, ``rotation.txt``, ``rotation.html``). Name a
subclass in ``DATA_ENCRYPTION_NOTIFIER`` to replace it. ``notify()`` is what rotations call: it
never lets a notifier's failure change a rotation's outcome.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from .conf import encryption_settings, load_class
from .models import RunStatus
from .rotation import Notification, RotationReport

logger = logging.getLogger("data_encryption.notifications")


class EncryptionKeyRotationNotifier:
    """Emails a rotation report. Override ``send_key_rotation_notification`` to send elsewhere,
    or the templates to change the words."""

    subject_template = "data_encryption/email/rotation_subject.txt"
    text_template = "data_encryption/email/rotation.txt"
    html_template = "data_encryption/email/rotation.html"

    def recipients(self) -> list[str]:
        return encryption_settings.email_security

    def sender(self) -> str:
        return encryption_settings.email_from_alerts

    def context(self, details: dict[str, Any]) -> dict[str, Any]:
        return {
            "report": details,
            "models": sorted((details.get("models") or {}).items()),
            "reminder": details.get("reminder"),
        }

    def send_key_rotation_notification(self, details: dict[str, Any]) -> None:
        """Send the report ``details`` (the dict a rotation returns). Raise on failure."""
        context = self.context(details)
        subject = render_to_string(self.subject_template, context).strip().replace("\n", " ")
        message = EmailMultiAlternatives(
            subject=f"{encryption_settings.email_subject_prefix}{subject}",
            body=render_to_string(self.text_template, context),
            from_email=self.sender(),
            to=self.recipients(),
        )
        message.attach_alternative(render_to_string(self.html_template, context), "text/html")
        message.send(fail_silently=False)


def get_notifier_class() -> type[EncryptionKeyRotationNotifier]:
    """The class named by ``DATA_ENCRYPTION_NOTIFIER`` (default: the email notifier)."""
    return load_class(
        "DATA_ENCRYPTION_NOTIFIER", encryption_settings.notifier_path, EncryptionKeyRotationNotifier
    )


def get_notifier() -> EncryptionKeyRotationNotifier:
    """An instance of the class named by ``DATA_ENCRYPTION_NOTIFIER``."""
    return get_notifier_class()()


def should_notify(report: RotationReport) -> bool:
    """Every real outcome is announced; a skipped run (already running, not due) only when
    ``ENCRYPTION_KEY_ROTATION["NOTIFY_SKIPPED"]`` is true or a reminder is due."""
    if report.status != RunStatus.SKIPPED:
        return True
    return bool(encryption_settings.notify_skipped or report.reminder)


def notify(report: RotationReport, details: dict[str, Any] | None = None) -> Notification:
    """Send the notification for ``report`` (as ``details``, its dict, when the caller made it
    already) and say whether that worked.

    A notifier that raises, or a mail server that is down, is logged; the rotation's status is
    left as it was.
    """
    if not should_notify(report):
        return Notification(sent=False, skipped=True)
    try:
        get_notifier().send_key_rotation_notification(
            report.as_dict() if details is None else details
        )
    except Exception as exc:
        # The exception's text is left out of the report: a mail server's reply may quote the
        # message, and the class name is enough to act on.
        logger.exception("The key rotation notification was not sent.")
        return Notification(sent=False, error=type(exc).__name__)
    return Notification(sent=True)
