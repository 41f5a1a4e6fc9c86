"""The conversion run (``KeyRotationService.encrypt_existing``): legacy values sealed in place,
envelopes left alone, resumed from its cursors, and the lock it shares with rotation."""

from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured
from django.test import TestCase, TransactionTestCase, override_settings
from django.utils import timezone

from data_encryption.keys import ensure_primary_key, reset_key_ring
from data_encryption.models import DataKey, RotationChunk, RotationRun, RunKind, RunStatus
from data_encryption.rotation.conversion import Conversion, conversion_tables
from data_encryption.services import KeyRotationService
from data_encryption.tests.conversion_utils import (
    LABEL,
    in_transition,
    insert_legacy,
    is_envelope,
    json_text,
    store_legacy,
    stored,
)
from data_encryption.tests.testapp.models import Patient
from data_encryption.tests.utils import FreshKeyRingMixin, install_data_key, make_primary

CODE = f"{LABEL}.code"


def seed(count=5):
    """``count`` Patients in the legacy form, with the values each should read as."""
    rows = [
        (f"a{i}", f"C-{i:08d}", f"note {i}", json_text({"i": i, "tags": ["x"]}), i * 7)
        for i in range(count)
    ]
    pks = insert_legacy(rows)
    expected = {
        pk: (code, notes, {"i": i, "tags": ["x"]}, i * 7)
        for i, (pk, (_, code, notes, _p, _v)) in enumerate(zip(pks, rows, strict=True))
    }
    return pks, expected


def read_back():
    return {row.pk: (row.code, row.notes, row.profile, row.visits) for row in Patient.objects.all()}


@in_transition()
class ConversionTests(FreshKeyRingMixin, TestCase):
    def test_every_legacy_value_is_sealed_and_reads_the_same(self):
        pks, expected = seed(5)
        self.assertEqual(read_back(), expected)  # during the transition, through the reader
        report = KeyRotationService(batch_size=2).encrypt_existing([LABEL])
        self.assertEqual(report.status, RunStatus.COMPLETED, report.reason)
        self.assertEqual(report.records_processed, 5)
        self.assertEqual(report.records_reencrypted, 20)  # four columns
        self.assertEqual(report.failed_records, 0)
        for pk in pks:
            for name in ("code", "notes", "profile", "visits"):
                self.assertTrue(is_envelope(stored(pk, name)), (pk, name))
        self.assertEqual(read_back(), expected)
        # Outside the transition, the values still read: they are ours now.
        with override_settings(DATA_ENCRYPTION_LEGACY_COLUMNS={}):
            self.assertEqual(read_back(), expected)
        as_dict = report.as_dict()
        self.assertEqual(as_dict["kind"], "conversion")
        self.assertEqual(as_dict["records_converted"], 20)
        self.assertEqual(as_dict["models"], {LABEL: {"rows": 5, "converted": 20, "failed": 0}})
        self.assertEqual(
            as_dict["legacy_left"],
            {f"{LABEL}.{name}": 0 for name in sorted(as_dict["census"][LABEL])},
        )
        self.assertNotIn("new_key_id", as_dict)
        self.assertIn("the transition is over; remove them from DATA_ENCRYPTION", report.reason)
        run = RotationRun.objects.get()
        self.assertEqual((run.kind, run.phase, run.new_key_id), (RunKind.CONVERSION, "done", None))
        self.assertEqual(DataKey.objects.count(), 1)  # no key made

    def test_envelopes_under_any_key_are_left_byte_for_byte(self):
        pks, _ = seed(3)
        primary = ensure_primary_key()
        # Row 0 written by the application under an old key (primary back then), row 1 since.
        make_primary(install_data_key(0x0D0D0D0D, b"\x07" * 32))
        reset_key_ring()
        Patient.objects.filter(pk=pks[0]).update(code="C-55555555")
        make_primary(primary)
        reset_key_ring()
        Patient.objects.filter(pk=pks[1]).update(code="C-66666666")
        written = [stored(pks[0], "code"), stored(pks[1], "code")]
        report = KeyRotationService().encrypt_existing([CODE])
        self.assertEqual(report.records_reencrypted, 1)  # only row 2's legacy value
        self.assertEqual([stored(pks[0], "code"), stored(pks[1], "code")], written)
        self.assertEqual(report.census[LABEL]["code"], {"0d0d0d0d": 1, primary.hex_id: 2})
        self.assertEqual(Patient.objects.get(pk=pks[0]).code, "C-55555555")

    def test_a_model_alone_converts_its_columns_in_transition_only(self):
        pks, _ = seed(1)
        with in_transition({CODE: "plaintext"}):
            report = KeyRotationService().encrypt_existing([LABEL])
            self.assertEqual(report.columns, (CODE,))
            self.assertTrue(is_envelope(stored(pks[0], "code")))
            self.assertFalse(is_envelope(stored(pks[0], "notes")))

    def test_a_killed_conversion_is_resumed_from_its_cursors(self):
        pks, expected = seed(9)
        rotation_options = {"CHUNK_ROWS": 3, "BATCH_SIZE": 2}
        from django.conf import settings

        with override_settings(
            ENCRYPTION_KEY_ROTATION={**settings.ENCRYPTION_KEY_ROTATION, **rotation_options}
        ):
            service = KeyRotationService(batch_size=2)
            first = Conversion(conversion_tables([LABEL], service._load_model_configurations()))
            run = first.start()
            chunks = first.pending_chunks(run)
            self.assertEqual(len(chunks), 4)  # (None, 3], (3, 6], (6, 9], (9, None)
            first.process_chunk(run, chunks[0])  # then the process dies
            self.assertTrue(is_envelope(stored(pks[0], "code")))
            self.assertFalse(is_envelope(stored(pks[3], "code")))
            # A live holder keeps the lock...
            refused = service.encrypt_existing([LABEL])
            self.assertEqual(refused.status, RunStatus.SKIPPED)
            self.assertIn(f"conversion {run.pk} of {LABEL}.code, {LABEL}.notes", refused.reason)
            # ... until its heartbeat is older than LOCK_TIMEOUT_SECONDS.
            age(run)
            report = service.encrypt_existing([LABEL])
        self.assertEqual(report.status, RunStatus.COMPLETED, report.reason)
        self.assertTrue(report.resumed)
        self.assertEqual(report.run_id, run.pk)
        self.assertEqual(report.records_processed, 9)  # each row walked once
        self.assertEqual(report.records_reencrypted, 36)
        self.assertEqual(read_back(), expected)
        self.assertTrue(all(chunk.done for chunk in RotationChunk.objects.filter(run=run)))

    def test_a_dry_run_writes_nothing_and_says_what_would_happen(self):
        pks, _ = seed(3)
        store_legacy(pks[1], code="123-45-67890-too-long")
        before = [stored(pk, "code") for pk in pks]
        report = KeyRotationService().encrypt_existing([CODE], dry_run=True)
        self.assertEqual([stored(pk, "code") for pk in pks], before)
        self.assertFalse(RotationRun.objects.exists())
        self.assertEqual((report.records_reencrypted, report.failed_records), (2, 1))
        self.assertEqual(report.status, RunStatus.FAILED)
        self.assertEqual([(f.pk, f.field) for f in report.failures], [(str(pks[1]), "code")])
        self.assertIn("2 values would be converted and 1 rows would fail", report.reason)
        self.assertEqual(report.legacy_left, {CODE: 3})


@in_transition()
class ColumnChoiceTests(TestCase):
    def test_a_column_not_in_transition_is_refused_with_what_to_do(self):
        with (
            in_transition({CODE: "plaintext"}),
            self.assertRaisesMessage(
                ImproperlyConfigured,
                f"{LABEL}.notes is not in DATA_ENCRYPTION_LEGACY_COLUMNS. Add it with the reader "
                f'of its current values (e.g. "{LABEL}.notes": "plaintext") and deploy first: the '
                "application must read both forms before any value is converted.",
            ),
        ):
            KeyRotationService().encrypt_existing([f"{LABEL}.notes"])

    def test_a_model_with_no_column_in_transition_is_refused(self):
        with self.assertRaisesMessage(
            ImproperlyConfigured, "data_encryption_tests.Note has no column in DATA_ENCRYPTION"
        ):
            KeyRotationService().encrypt_existing(["data_encryption_tests.Note"])

    def test_a_plain_column_is_refused(self):
        name = f"{LABEL}.name"
        with (
            in_transition({name: "plaintext"}),
            self.assertRaisesMessage(ImproperlyConfigured, "is not a column that rotation covers"),
        ):
            KeyRotationService().encrypt_existing([name])

    def test_labels_that_name_nothing_are_refused(self):
        for label, message in [
            ("nope.Model.field", "no installed model nope.Model"),
            (f"{LABEL}.nothing", "has no field 'nothing'"),
            ("justonepart", "name a column as app_label.Model.field"),
        ]:
            with self.subTest(label), self.assertRaisesMessage(ImproperlyConfigured, message):
                KeyRotationService().encrypt_existing([label])


def age(run):
    """Make ``run``'s holder look dead: the heartbeat a day old (the holder is gone in these
    tests, so this is the same as waiting out LOCK_TIMEOUT_SECONDS)."""
    RotationRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(days=1))


def running_run(kind, **fields):
    now = timezone.now()
    return RotationRun.objects.create(
        kind=kind, started_at=now, heartbeat_at=now, holder="elsewhere:1:abcd", **fields
    )


@in_transition()
class SharedLockTests(FreshKeyRingMixin, TransactionTestCase):
    def test_a_conversion_waits_for_a_live_rotation(self):
        rotation = running_run(RunKind.ROTATION)
        report = KeyRotationService().encrypt_existing([CODE])
        self.assertEqual(report.status, RunStatus.SKIPPED)
        self.assertIn(f"rotation {rotation.pk} holds the lock", report.reason)
        self.assertIn("a conversion and a rotation never run at once", report.reason)

    def test_a_conversion_refuses_a_dead_rotation_only_a_rotation_can_finish(self):
        rotation = running_run(RunKind.ROTATION, phase="reencrypt")
        age(rotation)
        pks, _ = seed(1)
        report = KeyRotationService().encrypt_existing([CODE])
        self.assertEqual(report.status, RunStatus.SKIPPED)
        self.assertIn("run rotate_encryption_key to finish it", report.reason)
        rotation.refresh_from_db()
        self.assertEqual((rotation.status, rotation.phase), (RunStatus.RUNNING, "reencrypt"))
        self.assertFalse(is_envelope(stored(pks[0], "code")))

    def test_a_rotation_waits_for_a_live_conversion(self):
        conversion = running_run(RunKind.CONVERSION, phase="reencrypt", columns=[CODE])
        report = KeyRotationService().rotate()
        self.assertEqual(report["status"], "skipped")
        self.assertIn(f"conversion {conversion.pk} is already running", report["reason"])
        self.assertIn("a rotation and a conversion never run at once", report["reason"])

    def test_a_rotation_closes_a_dead_conversion_and_converts_the_rest_itself(self):
        ensure_primary_key()
        pks, expected = seed(3)
        conversion = running_run(RunKind.CONVERSION, phase="reencrypt", columns=[CODE])
        age(conversion)
        report = KeyRotationService().rotate()
        self.assertEqual(report["status"], "completed", report["reason"])
        conversion.refresh_from_db()
        self.assertEqual(conversion.status, RunStatus.FAILED)
        self.assertIn("closed when a rotation took the lock", conversion.reason)
        self.assertTrue(all(is_envelope(stored(pk, "code")) for pk in pks))
        self.assertEqual(read_back(), expected)

    def test_a_conversion_of_other_columns_closes_a_dead_one(self):
        dead = running_run(RunKind.CONVERSION, phase="reencrypt", columns=[f"{LABEL}.notes"])
        age(dead)
        seed(1)
        report = KeyRotationService().encrypt_existing([CODE])
        self.assertEqual(report.status, RunStatus.COMPLETED, report.reason)
        self.assertFalse(report.resumed)
        self.assertNotEqual(report.run_id, dead.pk)
        dead.refresh_from_db()
        self.assertEqual(dead.status, RunStatus.FAILED)

    def test_a_completed_conversion_does_not_count_as_a_rotation(self):
        from data_encryption.schedule import rotation_due

        seed(1)
        KeyRotationService().encrypt_existing([CODE])
        self.assertTrue(rotation_due("default", timezone.now()))
