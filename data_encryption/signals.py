"""Signals: hang Slack, a pager or an audit log on rotations without subclassing anything.

Each is sent with ``sender`` set to the rotation service class (``KeyRotationService`` or the
subclass named by ``DATA_ENCRYPTION_SERVICE``). A receiver that raises is logged and ignored:
it never changes a rotation's outcome (they are sent with ``send_robust``).

Example::

    from django.dispatch import receiver
    from data_encryption.signals import rotation_failed

    @receiver(rotation_failed)
    def page_security(sender, report, **kwargs):
        post_to_slack(f"Key rotation failed: {report['reason']}")
"""

from django.dispatch import Signal

#: A rotation took the lock and is about to change keys (not sent for dry runs).
#: Arguments: ``run_id`` (int), ``trigger`` ("command", "celery", "api"), ``resumed`` (bool).
rotation_started = Signal()

#: A rotation (or a dry run) finished with status ``completed``.
#: Arguments: ``report`` (the dict the rotation returns; no key material, no plaintext).
rotation_completed = Signal()

#: A rotation finished with status ``failed``: some values could not be decrypted, or an error
#: stopped it. Arguments: ``report`` (as for ``rotation_completed``; see its ``reason``).
rotation_failed = Signal()

#: A rotation did nothing: another was running, or none was due (``report["skipped"]`` says
#: which). Arguments: ``report``.
rotation_skipped = Signal()
