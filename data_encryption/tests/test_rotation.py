"""Rotation in one process: the contract's report, every protocol step, bad rows, dry runs
and scope, retention, and which models a rotation finds."""

from pathlib import Path

from cryptography.fernet import Fernet
from django.conf import settings
from django.db import connection
from django.test import TestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from data_encryption.envelope import key_id_of
from data_encryption.keys import cipher_for, reset_key_ring
from data_encryption.models import (
    DataKey,
    KeyState,
    RotationChunk,
    RotationFailure,
    RotationRun,
    RunStatus,
)
from data_encryption.rotation import (
    Rotation,
    examine_rows,
    read_rows,
    resolve_tables,
)
from data_encryption.services import (
    EncryptionService,
    KeyRotationService,
    get_rotation_service_class,
)
from data_encryption.tests.testapp.models import Customer, Note, Patient
from data_encryption.tests.utils import (
    FAST,
    FreshKeyRingMixin,
    make_customers,
    make_patients,
    primary_id,
    raw,
)


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class RotateTests(FreshKeyRingMixin, TestCase):
    def test_a_run_that_fails_mid_walk_reports_the_chunks_exact_counts(self):
        make_customers(6)
        tables = resolve_tables(KeyRotationService()._load_model_configurations())
        with override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "CHUNK_ROWS": 3}):
            rotation = Rotation(tables)
            run = rotation.start()
        customers = [c for c in rotation.pending_chunks(run) if c.model.endswith(".Customer")]
        rotation.process_chunk(run, customers[0])  # three customers re-encrypted
        # The run row's live counts lag (as they may, by up to a second per process), and a
        # chunk of a model no longer configured stops the walk.
        RotationRun.objects.filter(pk=run.pk).update(records_processed=0, records_reencrypted=0)
        RotationChunk.objects.create(run=run, model="data_encryption_tests.Gone", index=0)
        report = rotation.finish(run)
        self.assertEqual(report["status"], "failed")
        self.assertIn("data_encryption_tests.Gone", report["reason"])
        rows = Customer.objects.count() + Patient.objects.count()
        self.assertEqual(report["records_processed"], rows)
        run.refresh_from_db()
        self.assertEqual((run.records_processed, run.records_reencrypted), (rows, rows))

    def test_run_row_is_not_written_per_batch_and_its_totals_are_exact(self):
        make_customers(30)
        with CaptureQueriesContext(connection) as queries:
            report = KeyRotationService(batch_size=1).rotate()
        run_updates = [
            query["sql"]
            for query in queries.captured_queries
            if query["sql"].startswith('UPDATE "data_encryption_rotationrun"')
        ]
        # 30 batches of one row; the run row gets the protocol's few writes (some per table: six
        # tables have encrypted fields), not one per batch.
        self.assertLess(len(run_updates), 20)
        run = RotationRun.objects.get(pk=report["run_id"])
        rows = 30 + Patient.objects.count()
        self.assertEqual((run.records_processed, run.records_reencrypted), (rows, rows))
        self.assertEqual(report["records_processed"], rows)

    def test_report_has_the_contract_keys(self):
        make_customers(5)
        report = KeyRotationService().rotate_encryption_key_monthly()
        self.assertEqual(report["status"], "completed")
        self.assertIsInstance(report["timestamp"], str)
        self.assertEqual(timezone.datetime.fromisoformat(report["timestamp"]).tzinfo is None, False)
        self.assertIsInstance(report["models_processed"], int)
        self.assertEqual(report["records_processed"], 5 + Patient.objects.count())
        self.assertEqual(report["failed_records"], 0)
        self.assertTrue(Path(report["key_backup_path"]).is_file())
        for extra in (
            "new_key_id",
            "old_key_ids",
            "retired_key_ids",
            "models",
            "census",
            "duration_seconds",
            "dry_run",
            "run_id",
        ):
            self.assertIn(extra, report)

    def test_every_value_moves_to_the_new_key_and_the_old_key_retires(self):
        ssns = make_customers(30)
        patients = make_patients(20)
        old = primary_id()
        report = KeyRotationService().rotate()
        new = primary_id()
        self.assertNotEqual(old, new)
        self.assertEqual(report["new_key_id"], f"{new:08x}")
        self.assertEqual(report["retired_key_ids"], [f"{old:08x}"])
        self.assertEqual(DataKey.objects.get(key_id=old).state, KeyState.RETIRED)
        self.assertEqual({key_id_of(v) for v in raw(Customer, "_ssn").values()}, {new})
        self.assertEqual({key_id_of(v) for v in raw(Patient, "notes").values()}, {new})
        reset_key_ring()
        self.assertEqual({c.pk: c.ssn for c in Customer.objects.all()}, ssns)
        self.assertEqual(
            {p.pk: (p.notes, p.visits, p.profile) for p in Patient.objects.all()}, patients
        )
        self.assertEqual(
            report["models"]["data_encryption_tests.Customer"],
            {"rows": 30, "reencrypted": 30, "failed": 0},
        )
        self.assertEqual(
            report["census"]["data_encryption_tests.Customer"]["_ssn"], {f"{new:08x}": 30}
        )
        self.assertEqual(
            report["census"]["data_encryption_tests.Patient"]["visits"], {f"{new:08x}": 20}
        )
        self.assertEqual(report["census"]["data_encryption_tests.Patient"]["photo"], {"null": 20})

    def test_retired_keys_still_decrypt(self):
        make_customers(1)
        stale = EncryptionService.encrypt("kept somewhere else")
        KeyRotationService().rotate()
        reset_key_ring()
        self.assertEqual(EncryptionService.decrypt(stale), "kept somewhere else")

    def test_a_rerun_skips_values_already_on_the_primary(self):
        make_customers(10)
        KeyRotationService().rotate()
        run = RotationRun.objects.create(
            started_at=timezone.now(),
            heartbeat_at=timezone.now(),
            holder="x:1:y",
            status=RunStatus.COMPLETED,
        )
        self.assertTrue(run.pk)
        # Rows under the current primary are skipped by a pass that targets it.
        tables = resolve_tables(KeyRotationService()._load_model_configurations())

        table = next(t for t in tables if t.label == "data_encryption_tests.Customer")
        rows = read_rows(connection, table, None, 100)
        batch = examine_rows(
            rows, table.columns, primary_id(), cipher_for(primary_id()), rewrite=True
        )
        self.assertEqual(batch.rewrites, 0)
        self.assertEqual(batch.rows, 10)

    def test_legacy_fernet_values_are_upgraded(self):
        token = Fernet(settings.DB_ENCRYPTION_KEY).encrypt(b"123-45-6789")
        customer = Customer.objects.create(name="legacy", _ssn=token)
        report = KeyRotationService().rotate()
        value = raw(Customer, "_ssn")[customer.pk]
        self.assertEqual(key_id_of(value), primary_id())
        self.assertEqual(Customer.objects.get().ssn, "123-45-6789")
        self.assertEqual(report["failed_records"], 0)

    def test_ascii_values_stay_ascii(self):
        ascii_value = EncryptionService.to_ascii(EncryptionService.encrypt("text form"))
        customer = Customer.objects.create(name="ascii", _ssn=ascii_value.encode())
        KeyRotationService().rotate()
        self.assertEqual(Customer.objects.get(pk=customer.pk).ssn, "text form")

    def test_nulls_are_left_alone(self):
        Customer.objects.create(name="none", _ssn=None)
        report = KeyRotationService().rotate()
        self.assertIsNone(Customer.objects.get().ssn)
        self.assertEqual(report["census"]["data_encryption_tests.Customer"]["_ssn"], {"null": 1})

    def test_required_field_with_default(self):
        Note.objects.create(title="t", body="secret")
        KeyRotationService().rotate()
        self.assertEqual(Note.objects.get().body, "secret")

    def test_ledger_records_the_run(self):
        make_customers(3)
        report = KeyRotationService().rotate()
        run = RotationRun.objects.get(pk=report["run_id"])
        self.assertEqual(run.status, RunStatus.COMPLETED)
        self.assertEqual(run.phase, "done")
        self.assertIsNotNone(run.finished_at)
        self.assertEqual(run.records_processed, report["records_processed"])
        self.assertEqual(
            run.progress["data_encryption_tests.Customer"],
            {"rows": 3, "reencrypted": 3, "failed": 0},
        )
        self.assertFalse(run.chunks.filter(done=False).exists())
        self.assertEqual(f"{run.new_key_id:08x}", report["new_key_id"])

    def test_batches_of_one(self):
        ssns = make_customers(7)
        KeyRotationService(batch_size=1).rotate()
        reset_key_ring()
        self.assertEqual({c.pk: c.ssn for c in Customer.objects.all()}, ssns)


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class CorruptionTests(FreshKeyRingMixin, TestCase):
    def test_damaged_rows_are_reported_untouched_and_block_retirement(self):
        make_customers(20)
        old = primary_id()
        damaged = sorted(Customer.objects.values_list("pk", flat=True))[3:6]
        for pk in damaged:
            value = bytearray(raw(Customer, "_ssn")[pk])
            value[-1] ^= 0xFF
            Customer.objects.filter(pk=pk).update(_ssn=bytes(value))
        before = raw(Customer, "_ssn")
        report = KeyRotationService().rotate()
        after = raw(Customer, "_ssn")
        self.assertEqual(report["status"], "failed")
        self.assertEqual(report["failed_records"], 3)
        self.assertEqual(sorted(int(f["pk"]) for f in report["failures"]), damaged)
        self.assertEqual({f["field"] for f in report["failures"]}, {"_ssn"})
        self.assertEqual({f["key_id"] for f in report["failures"]}, {f"{old:08x}"})
        for pk in damaged:
            self.assertEqual(after[pk], before[pk])  # byte for byte
        self.assertEqual(DataKey.objects.get(key_id=old).state, KeyState.DECRYPT_ONLY)
        self.assertEqual(report["retired_key_ids"], [])
        self.assertIn("3 rows could not be decrypted", report["reason"])
        self.assertEqual(
            sorted(int(pk) for pk in RotationFailure.objects.values_list("pk_value", flat=True)),
            damaged,
        )
        for failure in report["failures"]:  # where, never what
            self.assertNotIn("-00-", failure["error"])

    def test_unknown_key_and_garbage_values(self):
        make_customers(2)
        Customer.objects.create(name="garbage", _ssn=b"not encrypted at all")
        report = KeyRotationService().rotate()
        self.assertEqual(report["failed_records"], 1)
        self.assertEqual(
            raw(Customer, "_ssn")[Customer.objects.get(name="garbage").pk], b"not encrypted at all"
        )


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class DryRunAndScopeTests(FreshKeyRingMixin, TestCase):
    def test_dry_run_reads_and_decrypts_but_writes_nothing(self):
        make_customers(4)
        Customer.objects.create(name="bad", _ssn=b"\xffDE\x01garbage-garbage-garbage-garbage-xx")
        before, keys_before = (
            raw(Customer, "_ssn"),
            list(DataKey.objects.values_list("key_id", "state")),
        )
        backups_before = set(settings.ENCRYPTION_KEY_ROTATION["BACKUP_DIR"].glob("*"))
        report = KeyRotationService().rotate(dry_run=True)
        self.assertTrue(report["dry_run"])
        self.assertEqual(report["failed_records"], 1)
        self.assertEqual(report["records_reencrypted"], 4 + 0)
        self.assertEqual(report["retired_key_ids"], [])
        self.assertEqual(raw(Customer, "_ssn"), before)
        self.assertEqual(list(DataKey.objects.values_list("key_id", "state")), keys_before)
        self.assertFalse(RotationRun.objects.exists())
        self.assertEqual(
            set(settings.ENCRYPTION_KEY_ROTATION["BACKUP_DIR"].glob("*")), backups_before
        )

    def test_limited_to_some_models_retires_nothing(self):
        make_customers(3)
        make_patients(3)
        old = primary_id()
        report = KeyRotationService().rotate(models=["data_encryption_tests.Customer"])
        self.assertEqual(report["status"], "completed")
        self.assertEqual(list(report["models"]), ["data_encryption_tests.Customer"])
        self.assertEqual(report["retired_key_ids"], [])
        self.assertIn("limited to some models", report["reason"])
        self.assertEqual(DataKey.objects.get(key_id=old).state, KeyState.DECRYPT_ONLY)
        self.assertEqual({key_id_of(v) for v in raw(Patient, "notes").values()}, {old})

    def test_unknown_model_is_refused(self):
        from django.core.exceptions import ImproperlyConfigured

        with self.assertRaisesMessage(ImproperlyConfigured, "No encrypted fields are configured"):
            KeyRotationService().rotate(models=["auth.User"])


@override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "RETENTION_DAYS": 0})
class RetentionTests(FreshKeyRingMixin, TestCase):
    def test_retired_material_is_destroyed_after_the_retention_period(self):
        make_customers(2)
        first = primary_id()
        KeyRotationService().rotate()
        self.assertEqual(DataKey.objects.get(key_id=first).state, KeyState.RETIRED)
        report = KeyRotationService().rotate()
        destroyed = DataKey.objects.get(key_id=first)
        self.assertEqual(destroyed.state, KeyState.DESTROYED)
        self.assertIsNone(destroyed.wrapped_key)
        self.assertEqual(report["destroyed_key_ids"], [f"{first:08x}"])
        reset_key_ring()
        self.assertEqual(len({c.ssn for c in Customer.objects.all()}), 2)


class ConfigurationTests(TestCase):
    def test_default_configuration_finds_fields_and_listed_raw_columns(self):
        configuration = dict(KeyRotationService()._load_model_configurations())
        self.assertEqual(configuration[Customer], ["_ssn"])
        self.assertEqual(configuration[Note], ["body"])
        self.assertIn("notes", configuration[Patient])
        self.assertIn("photo", configuration[Patient])
        self.assertNotIn("name", configuration[Patient])

    def test_unknown_model_or_field(self):
        from django.core.exceptions import ImproperlyConfigured

        with override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "MODELS": {"nope.Model": ["x"]}}):
            with self.assertRaisesMessage(ImproperlyConfigured, "'nope.Model'"):
                KeyRotationService()._load_model_configurations()
        with self.assertRaisesMessage(ImproperlyConfigured, "has no field '_sn'"):
            resolve_tables([(Customer, ["_sn"])])

    def test_custom_service_subclass_is_used(self):
        with override_settings(
            DATA_ENCRYPTION_SERVICE="data_encryption.tests.test_rotation.CustomersOnly"
        ):
            self.assertIs(get_rotation_service_class(), CustomersOnly)
        with override_settings(
            DATA_ENCRYPTION_SERVICE="data_encryption.services.EncryptionService"
        ):
            from django.core.exceptions import ImproperlyConfigured

            with self.assertRaisesMessage(ImproperlyConfigured, "not a subclass"):
                get_rotation_service_class()


class CustomersOnly(KeyRotationService):
    def _load_model_configurations(self):
        return [(Customer, ["_ssn"])]
