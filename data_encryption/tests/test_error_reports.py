"""Django's error reports (the HTML that AdminEmailHandler mails and the 500 page renders) of
errors on cold paths show no key material, and of validation errors no plaintext: the review's
exp9 (L4). Frames of functions marked ``sensitive_variables`` show stars."""

import html
import re
import sys

from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import TestCase, override_settings
from django.utils import timezone
from django.views.debug import ExceptionReporter

from data_encryption.exceptions import DataEncryptionError, DecryptionError
from data_encryption.keys import rewrap_data_keys, unwrap_data_key
from data_encryption.master_key import MasterKey, master_keys, parse_fernet_key
from data_encryption.models import DataKey, KeyState
from data_encryption.services import EncryptionService
from data_encryption.tests.runner import material_forms
from data_encryption.tests.testapp.models import Patient
from data_encryption.tests.utils import FreshKeyRingMixin, new_fernet_key

# Built, not written out: the report quotes the source lines around each frame.
SECRET = "-".join(["SSN 123", "45", "6789"])


def report_of(call, *expected):
    """The text of Django's HTML error report of the exception ``call`` raises."""
    try:
        call()
    except expected:
        return html.unescape(ExceptionReporter(None, *sys.exc_info()).get_traceback_html())
    raise AssertionError(f"{call} raised none of {expected}")


class ErrorReportTests(FreshKeyRingMixin, TestCase):
    def assertNotShown(self, text, report):
        at = report.find(text)
        if at >= 0:  # only the neighbourhood: a report is pages long
            self.fail(f"shown in the report: ...{report[max(0, at - 300) : at + 100]}...")

    def assert_no_key(self, report, raws):
        for raw in raws:
            for form in material_forms(raw) | {repr(raw)[2:-1]}:
                self.assertNotShown(form, report)

    def test_the_report_shows_frame_variables(self):
        # What makes the other tests able to fail: the report lists each frame's locals.
        def leaky(secret_local):
            raise ValueError("boom")

        report = report_of(lambda: leaky(SECRET), ValueError)
        self.assertIn(SECRET, report)

    def test_a_malformed_fallback_master_key_shows_no_key(self):
        # The current key and the first fallback are sound; the second is not, and the frames
        # that parse them hold all three.
        self.current, self.previous = new_fernet_key(), new_fernet_key()
        with override_settings(
            DB_ENCRYPTION_KEY=self.current,
            DB_ENCRYPTION_KEY_FALLBACKS=[self.previous, self.previous[:-4]],
        ):
            report = report_of(master_keys, DataEncryptionError)
        self.assertIn("DB_ENCRYPTION_KEY_FALLBACKS[1] is not a Fernet key", report)
        self.assert_no_key(
            report, [parse_fernet_key(key, "k") for key in (self.current, self.previous)]
        )
        for text in (self.current, self.previous, self.previous[:-4]):
            self.assertNotShown(text, report)

    def test_a_malformed_master_key_given_directly_shows_no_key(self):
        report = report_of(lambda: MasterKey(settings.DB_ENCRYPTION_KEY[:-2]), DataEncryptionError)
        self.assertNotShown(settings.DB_ENCRYPTION_KEY[:-2], report)

    def test_a_rewrap_that_fails_half_way_shows_no_data_key(self):
        # The first key re-wraps (its material is in a local of rewrap_data_keys), then a key no
        # master key can unwrap stops it.
        self.old_master = settings.DB_ENCRYPTION_KEY
        EncryptionService.encrypt("x")  # the first data key, under the old master key
        sound = DataKey.objects.get(state=KeyState.PRIMARY)
        self.material = unwrap_data_key(sound)
        DataKey.objects.create(
            key_id=0x0BAD,
            state=KeyState.DECRYPT_ONLY,
            wrapped_key=b"\x01" + bytes(60),
            master_key_fingerprint="0" * 16,
            created_at=timezone.now(),
        )
        with override_settings(
            DB_ENCRYPTION_KEY=new_fernet_key(), DB_ENCRYPTION_KEY_FALLBACKS=[self.old_master]
        ):
            report = report_of(rewrap_data_keys, DataEncryptionError)
        self.assertIn("No configured master key can unwrap data key 00000bad", report)
        self.assert_no_key(report, [self.material, parse_fernet_key(self.old_master, "k")])
        # pprint splits a long bytes repr over lines, so the variable itself is looked at too.
        shown = re.findall(r'<td>material</td>\s*<td class="code"><pre>(.*?)</pre>', report, re.S)
        self.assertTrue(shown)
        self.assertEqual(set(shown), {"'********************'"})

    def test_a_payload_for_another_purpose_shows_no_value(self):
        token = EncryptionService.encrypt_payload({"ssn": SECRET}, purpose="unsubscribe")
        report = report_of(
            lambda: EncryptionService.decrypt_payload(token, purpose="password-reset"),
            DecryptionError,
        )
        self.assertIn("made for another purpose", report)
        self.assertNotShown(SECRET, report)

    def test_a_validation_error_shows_no_plaintext(self):
        report = report_of(
            lambda: Patient(name="p", visits=SECRET, balance=SECRET).full_clean(), ValidationError
        )
        self.assertIn("Patient.visits expected a value of type", report)
        self.assertNotShown(SECRET, report)
