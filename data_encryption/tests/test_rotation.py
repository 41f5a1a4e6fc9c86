"""Rotation in one process: the contract's report, every protocol step, bad rows, resuming,
the lock, dry runs, backups and their restore, master-key re-wrapping, the commands."""

import io
import json
import os
import stat
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import TestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from data_encryption.backups import BackupError, read_backup, restore_backup
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
    write_rows,
)
from data_encryption.services import (
    EncryptionService,
    KeyRotationService,
    get_rotation_service_class,
)
from data_encryption.tests.runner import material_forms
from data_encryption.tests.testapp.models import Customer, Note, Patient
from data_encryption.tests.utils import FreshKeyRingMixin, new_fernet_key

FAST = {**settings.ENCRYPTION_KEY_ROTATION, "KEY_CACHE_SECONDS": 0}


def make_customers(count, start=0):
    customers = [
        Customer(name=f"c{i}", _ssn=EncryptionService.encrypt(f"{i:03d}-00-{i:04d}"))
        for i in range(start, start + count)
    ]
    Customer.objects.bulk_create(customers)
    return {c.pk: EncryptionService.decrypt(c._ssn) for c in Customer.objects.all()}


def make_patients(count):
    Patient.objects.bulk_create(
        [Patient(name=f"p{i}", notes=f"note {i}", visits=i, profile={"i": i}) for i in range(count)]
    )
    return {p.pk: (p.notes, p.visits, p.profile) for p in Patient.objects.all()}


def raw(model, column):
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {column} FROM {table} ORDER BY id")
        return {pk: bytes(value) if value is not None else None for pk, value in cursor.fetchall()}


def primary_id():
    return DataKey.objects.get(state=KeyState.PRIMARY).key_id


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
        # 30 batches of one row; the run row gets the protocol's few writes, not one per batch.
        self.assertLess(len(run_updates), 15)
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
        from data_encryption.keys import cipher_for
        from data_encryption.rotation import examine_rows, read_rows

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
class LockAndResumeTests(FreshKeyRingMixin, TestCase):
    def test_second_rotation_while_one_runs_is_skipped_without_touching_data(self):
        make_customers(5)
        before = raw(Customer, "_ssn")
        keys_before = DataKey.objects.count()
        live = RotationRun.objects.create(
            started_at=timezone.now(),
            heartbeat_at=timezone.now(),
            holder=f"elsewhere:{os.getpid()}:abcd",
        )
        report = KeyRotationService().rotate()
        self.assertEqual(report["status"], "skipped")
        self.assertEqual(report["skipped"], "already_running")
        self.assertIn(f"rotation {live.pk} is already running", report["reason"])
        self.assertEqual(raw(Customer, "_ssn"), before)
        self.assertEqual(DataKey.objects.count(), keys_before)

    def test_a_stale_heartbeat_is_taken_over(self):
        make_customers(5)
        stale = timezone.now() - timedelta(hours=2)
        RotationRun.objects.create(started_at=stale, heartbeat_at=stale, holder="gone:1:abcd")
        report = KeyRotationService().rotate()
        self.assertEqual(report["status"], "completed")
        self.assertTrue(report["resumed"])

    def test_a_run_left_by_a_dead_process_is_resumed_with_its_own_key(self):
        import socket
        import subprocess

        make_customers(20)
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()  # a pid on this host that no longer runs
        # What a rotation killed after activating its key and one committed batch leaves.
        service = KeyRotationService()
        tables = resolve_tables(service._load_model_configurations())
        rotation = Rotation(tables)
        run = rotation.start()
        self.assertEqual(run.phase, "reencrypt")
        chunk = RotationChunk.objects.get(run=run, model="data_encryption_tests.Customer")
        table = rotation.table(chunk.model)
        rows = read_rows(connection, table, None, 1)
        batch = examine_rows(
            rows, table.columns, run.new_key_id, cipher_for(run.new_key_id), rewrite=True
        )
        write_rows(connection, table, batch)
        first_pk = batch.last_pk
        RotationChunk.objects.filter(pk=chunk.pk).update(cursor=first_pk, rows=1, reencrypted=1)
        first_value = raw(Customer, "_ssn")[first_pk]
        RotationRun.objects.filter(pk=run.pk).update(
            holder=f"{socket.gethostname()}:{dead.pid}:dead"
        )
        keys_before = DataKey.objects.count()
        report = KeyRotationService().rotate()
        self.assertTrue(report["resumed"])
        self.assertEqual(report["run_id"], run.pk)
        self.assertEqual(report["status"], "completed")
        self.assertEqual(DataKey.objects.count(), keys_before)  # no second new key
        self.assertEqual(report["new_key_id"], f"{run.new_key_id:08x}")
        # Resumed from the cursor: the first row was not walked (or rewritten) again.
        self.assertEqual(report["models"]["data_encryption_tests.Customer"]["rows"], 20)
        self.assertEqual(report["models"]["data_encryption_tests.Customer"]["reencrypted"], 20)
        self.assertEqual(raw(Customer, "_ssn")[first_pk], first_value)
        self.assertEqual(report["retired_key_ids"], report["old_key_ids"])
        reset_key_ring()
        self.assertEqual(len({c.ssn for c in Customer.objects.all()}), 20)

    def test_lost_lock_stops_the_run(self):
        make_customers(3)
        tables = resolve_tables(KeyRotationService()._load_model_configurations())
        rotation = Rotation(tables)
        run = rotation._acquire()
        RotationRun.objects.filter(pk=run.pk).update(holder="someone-else:1:x")
        from data_encryption.rotation import LockLost

        with self.assertRaises(LockLost):
            rotation._backup(run)

    def test_waits_for_other_processes_key_rings(self):
        make_customers(2)
        slept = []
        now = [timezone.now()]

        def clock():
            return now[0]

        def sleep(seconds):
            slept.append(seconds)
            now[0] += timedelta(seconds=seconds)

        tables = resolve_tables(KeyRotationService()._load_model_configurations())
        with override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "KEY_CACHE_SECONDS": 12}):
            report = Rotation(tables, clock=clock, sleep=sleep).run()
        self.assertEqual(report["status"], "completed")
        self.assertEqual(slept, [5.0, 5.0, 2.0])


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


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class BackupTests(FreshKeyRingMixin, TestCase):
    def test_backup_file_mode_contents_and_no_plaintext_keys(self):
        make_customers(1)
        report = KeyRotationService().rotate()
        path = Path(report["key_backup_path"])
        self.assertEqual(stat.S_IMODE(path.stat().st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(path.parent.stat().st_mode), 0o700)
        self.assertRegex(path.name, r"^encryption_key_\d{8}T\d{6}Z(-\d+)?\.json$")
        document = json.loads(path.read_text())
        ids = {entry["hex_id"]: entry["state"] for entry in document["keys"]}
        self.assertEqual(ids[report["new_key_id"]], "pending")
        self.assertEqual(ids[report["old_key_ids"][0]], "primary")
        text = path.read_text()
        from data_encryption.keys import unwrap_data_key

        for key in DataKey.objects.all():
            for form in material_forms(unwrap_data_key(key)):
                self.assertNotIn(form, text)
        for form in material_forms(
            Fernet(settings.DB_ENCRYPTION_KEY)._signing_key
            + Fernet(settings.DB_ENCRYPTION_KEY)._encryption_key
        ):
            self.assertNotIn(form, text)

    def test_restore_brings_back_a_lost_key_and_is_idempotent(self):
        ssns = make_customers(5)
        report = KeyRotationService().rotate()
        new = primary_id()
        DataKey.objects.filter(key_id=new).delete()  # the key table lost its newest row
        DataKey.objects.filter(state=KeyState.RETIRED).update(state=KeyState.PRIMARY)
        reset_key_ring()
        with self.assertRaises(Exception):
            [c.ssn for c in Customer.objects.all()]
        out = StringIO()
        call_command("restore_encryption_keys", report["key_backup_path"], stdout=out)
        self.assertIn(f"restored:  {new:08x}", out.getvalue())
        self.assertEqual({c.pk: c.ssn for c in Customer.objects.all()}, ssns)
        out = StringIO()
        call_command("restore_encryption_keys", report["key_backup_path"], stdout=out)
        self.assertIn("restored:  none", out.getvalue())
        self.assertEqual(DataKey.objects.filter(state=KeyState.PRIMARY).count(), 1)

    def test_restore_brings_back_destroyed_material(self):
        make_customers(1)
        report = KeyRotationService().rotate()
        old = int(report["old_key_ids"][0], 16)
        stale = EncryptionService.encrypt  # noqa: F841
        DataKey.objects.filter(key_id=old).update(state=KeyState.DESTROYED, wrapped_key=None)
        restore = restore_backup(Path(report["key_backup_path"]))
        self.assertIn(old, restore.restored)
        self.assertEqual(DataKey.objects.get(key_id=old).state, KeyState.DECRYPT_ONLY)

    def test_altered_or_foreign_backups_are_refused(self):
        make_customers(1)
        path = Path(KeyRotationService().rotate()["key_backup_path"])
        document = json.loads(path.read_text())
        document["keys"][0]["state"] = "retired"
        altered = path.with_name("altered.json")
        altered.write_text(json.dumps(document))
        with self.assertRaisesMessage(CommandError, "was altered"):
            call_command("restore_encryption_keys", str(altered), stdout=StringIO())
        with override_settings(DB_ENCRYPTION_KEY=new_fernet_key()):
            with self.assertRaisesMessage(BackupError, "signed by a master key"):
                read_backup(path)
        with self.assertRaisesMessage(CommandError, "No such backup file"):
            call_command("restore_encryption_keys", "/nonexistent.json", stdout=StringIO())
        not_json = path.with_name("not.json")
        not_json.write_text("{")
        with self.assertRaisesMessage(CommandError, "is not a key backup"):
            call_command("restore_encryption_keys", str(not_json), stdout=StringIO())

    def test_backup_dir_readable_by_others_stops_the_rotation_before_any_change(self):
        import tempfile

        make_customers(2)
        before = raw(Customer, "_ssn")
        directory = Path(tempfile.mkdtemp())
        os.chmod(directory, 0o755)
        with override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "BACKUP_DIR": directory}):
            report = KeyRotationService().rotate()
        self.assertEqual(report["status"], "failed")
        self.assertIn("chmod 700", report["reason"])
        self.assertEqual(raw(Customer, "_ssn"), before)
        self.assertEqual(DataKey.objects.filter(state=KeyState.PRIMARY).count(), 1)
        self.assertEqual(list(directory.iterdir()), [])

    def test_missing_backup_dir_setting_fails_the_run_cleanly(self):
        make_customers(1)
        with override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "BACKUP_DIR": None}):
            report = KeyRotationService().rotate()
        self.assertEqual(report["status"], "failed")
        self.assertIn("BACKUP_DIR", report["reason"])


class MasterKeyRotationTests(FreshKeyRingMixin, TestCase):
    def test_rewrap_then_drop_the_fallback(self):
        ssns = make_customers(3)
        old_master, new_master = settings.DB_ENCRYPTION_KEY, new_fernet_key()
        with override_settings(
            DB_ENCRYPTION_KEY=new_master, DB_ENCRYPTION_KEY_FALLBACKS=[old_master]
        ):
            out = StringIO()
            call_command("rewrap_data_keys", stdout=out)
            self.assertIn("1 data keys re-wrapped", out.getvalue())
            out = StringIO()
            call_command("rewrap_data_keys", stdout=out)
            self.assertIn("0 data keys re-wrapped", out.getvalue())
        with override_settings(DB_ENCRYPTION_KEY=new_master):
            self.assertEqual({c.pk: c.ssn for c in Customer.objects.all()}, ssns)
        with self.assertRaises(Exception):
            reset_key_ring()
            [c.ssn for c in Customer.objects.all()]

    def test_rewrap_without_the_old_key_says_which_is_missing(self):
        with override_settings(DB_ENCRYPTION_KEY=new_fernet_key()):
            with self.assertRaisesMessage(CommandError, "No configured master key can unwrap"):
                call_command("rewrap_data_keys", stdout=StringIO())


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class CommandTests(FreshKeyRingMixin, TestCase):
    def call(self, *args, stdin=""):
        out, err = StringIO(), StringIO()
        saved = sys.stdin
        sys.stdin = io.StringIO(stdin)
        try:
            call_command("rotate_encryption_key", *args, stdout=out, stderr=err)
        finally:
            sys.stdin = saved
        return out.getvalue()

    def test_asks_before_rotating(self):
        make_customers(2)
        old = primary_id()
        output = self.call(stdin="no\n")
        self.assertIn("Type 'yes' to continue, or 'no' to cancel: ", output)
        self.assertIn("Rotation cancelled.", output)
        self.assertEqual(primary_id(), old)
        output = self.call(stdin="yes\n")
        self.assertIn("Rotation completed.", output)
        self.assertNotEqual(primary_id(), old)

    def test_closed_stdin_is_a_no(self):
        make_customers(1)
        old = primary_id()
        self.call(stdin="")
        self.assertEqual(primary_id(), old)

    def test_force_and_no_input_do_not_ask(self):
        make_customers(1)
        self.assertIn("Rotation completed.", self.call("--force"))
        self.assertIn("Rotation completed.", self.call("--no-input"))

    def test_summary_and_plain_progress_lines(self):
        make_customers(3)
        output = self.call("--force", "--batch-size", "2")
        self.assertIn("data_encryption_tests.Customer: 3 rows\n", output)
        self.assertIn("data_encryption_tests.Customer: 3 rows done", output)
        self.assertIn("  records processed:  3\n", output)
        self.assertIn("  failed records:     0\n", output)
        self.assertIn("  key backup:         ", output)

    @override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "CHUNK_ROWS": 2})
    def test_progress_counts_the_whole_table_across_its_chunks(self):
        make_customers(5)
        output = self.call("--force", "--batch-size", "2")
        self.assertEqual(output.count("data_encryption_tests.Customer: 5 rows\n"), 1)
        self.assertEqual(output.count("data_encryption_tests.Customer: 5 rows done"), 1)
        chunks = RotationChunk.objects.filter(model="data_encryption_tests.Customer")
        self.assertEqual(chunks.count(), 3)
        for chunk in chunks:  # when each chunk's walk began and ended, for the ledger
            self.assertTrue(chunk.done)
            self.assertLessEqual(chunk.started_at, chunk.finished_at)

    def test_dry_run(self):
        make_customers(3)
        old = primary_id()
        output = self.call("--dry-run")
        self.assertIn("Dry run completed.", output)
        self.assertIn("  would re-encrypt:   3\n", output)
        self.assertEqual(primary_id(), old)

    def test_failed_rotation_exits_non_zero(self):
        make_customers(1)
        Customer.objects.create(name="bad", _ssn=b"garbage")
        with self.assertRaisesMessage(CommandError, "1 rows could not be decrypted"):
            self.call("--force")

    def test_already_running_exits_non_zero(self):
        RotationRun.objects.create(
            started_at=timezone.now(),
            heartbeat_at=timezone.now(),
            holder=f"elsewhere:{os.getpid()}:x",
        )
        with self.assertRaisesMessage(CommandError, "is already running"):
            self.call("--force")

    def test_json_and_model_and_bad_batch_size(self):
        make_customers(2)
        report = json.loads(
            self.call("--force", "--json", "--model", "data_encryption_tests.Customer")
        )
        self.assertEqual(report["records_processed"], 2)
        with self.assertRaisesMessage(CommandError, "--batch-size must be a positive"):
            self.call("--force", "--batch-size", "0")

    def test_encryption_status(self):
        make_customers(2)
        KeyRotationService().rotate()
        out = StringIO()
        call_command("encryption_status", "--json", stdout=out)
        status = json.loads(out.getvalue())
        self.assertEqual([k["state"] for k in status["keys"]], ["primary", "retired"])
        self.assertEqual(
            status["census"]["data_encryption_tests.Customer"]["_ssn"], {f"{primary_id():08x}": 2}
        )
        self.assertEqual(status["runs"][0]["status"], "completed")
        chunks = RotationChunk.objects.filter(run_id=status["runs"][0]["id"]).count()
        self.assertEqual(
            (status["runs"][0]["chunks_done"], status["runs"][0]["chunks"]), (chunks, chunks)
        )
        out = StringIO()
        call_command("encryption_status", stdout=out)
        self.assertIn(
            f"  data_encryption_tests.Customer._ssn: {primary_id():08x}: 2", out.getvalue()
        )

    def test_encryption_status_shows_a_running_rotation_progress(self):
        make_customers(5)
        tables = resolve_tables(KeyRotationService()._load_model_configurations())
        with override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "CHUNK_ROWS": 2}):
            rotation = Rotation(tables)
            run = rotation.start()
        customers = [c for c in rotation.pending_chunks(run) if c.model.endswith(".Customer")]
        rotation.process_chunk(run, customers[0])  # the first two customers
        total = RotationChunk.objects.filter(run=run).count()
        out = StringIO()
        call_command("encryption_status", "--no-census", stdout=out)
        self.assertIn(
            f"running    {run.started_at:%Y-%m-%dT%H:%M:%S}  2 records, 0 failed, "
            f"phase reencrypt, 1/{total} chunks done",
            out.getvalue(),
        )


class TerminalProgressTests(TestCase):
    def test_bar_with_rate_and_eta_on_a_terminal(self):
        from django.core.management.base import OutputWrapper

        from data_encryption.management.commands.rotate_encryption_key import TerminalProgress

        buffer = StringIO()
        progress = TerminalProgress(OutputWrapper(buffer), is_terminal=True, verbosity=1)
        progress.start_table("app.Model", 1000, 0)
        progress.last_draw = 0.0  # draw now, not in 0.1 s
        progress.advance("app.Model", 500)
        progress.advance("app.Model", 500)
        progress.end_table("app.Model")
        text = buffer.getvalue()
        self.assertRegex(
            text,
            r"\rapp\.Model \[#{15}\.{15}\]  50\.0% 500/1,000 rows [\d,]+ rows/s "
            r"ETA \d+:\d\d",
        )
        last_line = text.rsplit("\r", 1)[-1]
        self.assertRegex(
            last_line, r"^app\.Model \[#{30}\] 100\.0% 1,000/1,000 rows .* ETA 0:00\n$"
        )

    def test_quiet_at_verbosity_zero(self):
        from django.core.management.base import OutputWrapper

        from data_encryption.management.commands.rotate_encryption_key import TerminalProgress

        buffer = StringIO()
        progress = TerminalProgress(OutputWrapper(buffer), is_terminal=False, verbosity=0)
        progress.phase("backup", "x")
        progress.start_table("a.B", 3, 0)
        progress.advance("a.B", 3)
        progress.end_table("a.B")
        self.assertEqual(buffer.getvalue(), "")
