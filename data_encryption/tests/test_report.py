"""RotationReport: one constructor per outcome, and the contract's dict each one makes."""

from dataclasses import FrozenInstanceError, replace
from datetime import UTC, datetime, timedelta

from django.test import SimpleTestCase

from data_encryption.models import RotationRun, RunStatus
from data_encryption.rotation import Notification, ReportedFailure, RotationReport

UTC = UTC
NOW = datetime(2026, 11, 29, 3, 0, 5, tzinfo=UTC)
CONTRACT = [
    "status",
    "timestamp",
    "models_processed",
    "records_processed",
    "failed_records",
    "key_backup_path",
]
RAN = [
    *CONTRACT,
    "run_id",
    "dry_run",
    "resumed",
    "started_at",
    "duration_seconds",
    "records_reencrypted",
    "new_key_id",
    "old_key_ids",
    "retired_key_ids",
    "destroyed_key_ids",
    "models",
    "census",
    "failures",
    "reason",
]
MODELS = {
    "app.Customer": {"rows": 5, "reencrypted": 4, "failed": 1},
    "app.Note": {"rows": 2, "reencrypted": 2, "failed": 0},
}


def finished_run():
    return RotationRun(
        pk=7,
        started_at=NOW - timedelta(seconds=2),
        finished_at=NOW,
        heartbeat_at=NOW,
        status=RunStatus.FAILED,
        phase="done",
        holder="host:1:abcd",
        old_key_ids=[0x0A0B0C0D],
        new_key_id=0x11223344,
        retired_key_ids=[],
        destroyed_key_ids=[0x01],
        key_backup_path="/backups/k.json",
        models_processed=2,
        records_processed=7,
        records_reencrypted=6,
        failed_records=1,
        census={"app.Customer": {"_ssn": {"11223344": 4, "0a0b0c0d": 1}}},
        reason="key 0a0b0c0d stays decrypt-only: 1 rows could not be decrypted",
    )


class FromRunTests(SimpleTestCase):
    def report(self, **options):
        failure = ReportedFailure.of("app.Customer", 3, "_ssn", 0x0A0B0C0D, "tampered")
        arguments = {
            "failures": [failure],
            "models": MODELS,
            "tables": 2,
            "resumed": True,
            "now": NOW + timedelta(hours=1),
            **options,
        }
        return RotationReport.from_run(finished_run(), **arguments)

    def test_the_contract_keys_then_the_run_keys(self):
        plain = self.report().as_dict()
        self.assertEqual(list(plain), RAN)
        self.assertEqual(
            plain,
            {
                "status": "failed",
                "timestamp": NOW.isoformat(),
                "models_processed": 2,
                "records_processed": 7,
                "failed_records": 1,
                "key_backup_path": "/backups/k.json",
                "run_id": 7,
                "dry_run": False,
                "resumed": True,
                "started_at": (NOW - timedelta(seconds=2)).isoformat(),
                "duration_seconds": 2.0,  # the run's own start and end
                "records_reencrypted": 6,
                "new_key_id": "11223344",
                "old_key_ids": ["0a0b0c0d"],
                "retired_key_ids": [],
                "destroyed_key_ids": ["00000001"],
                "models": MODELS,
                "census": {"app.Customer": {"_ssn": {"11223344": 4, "0a0b0c0d": 1}}},
                "failures": [
                    {
                        "model": "app.Customer",
                        "pk": "3",
                        "field": "_ssn",
                        "key_id": "0a0b0c0d",
                        "error": "tampered",
                    }
                ],
                "reason": "key 0a0b0c0d stays decrypt-only: 1 rows could not be decrypted",
            },
        )

    def test_this_process_time_and_an_unfinished_run(self):
        run = finished_run()
        run.finished_at, run.models_processed = None, 0
        report = RotationReport.from_run(
            run, failures=[], models={}, tables=3, resumed=False, now=NOW, elapsed=0.12345
        )
        self.assertEqual(report.timestamp, NOW)
        self.assertEqual(report.duration_seconds, 0.123)
        self.assertEqual(report.models_processed, 3)  # the tables, until the run records it

    def test_reads_as_a_read_only_mapping(self):
        report = self.report()
        self.assertEqual(report["status"], "failed")
        self.assertEqual(report["failures"][0]["pk"], "3")
        self.assertEqual(dict(report), report.as_dict())
        with self.assertRaises(KeyError):
            report["next_due"]  # not a key of a run's report
        with self.assertRaises(FrozenInstanceError):
            report.status = "completed"
        report.as_dict()["models"]["app.Note"]["rows"] = 99
        self.assertEqual(report.models["app.Note"]["rows"], 2)  # as_dict() hands out copies

    def test_what_is_added_after_the_run_comes_last(self):
        report = replace(
            self.report(),
            workers=("w1@host", "w2@host"),
            reminder="the primary data key is old",
            notification=Notification(sent=False, error="RuntimeError"),
        )
        plain = report.as_dict()
        self.assertEqual(list(plain), [*RAN, "workers", "reminder", "notification"])
        self.assertEqual(plain["workers"], ["w1@host", "w2@host"])
        self.assertEqual(plain["notification"], {"sent": False, "error": "RuntimeError"})
        self.assertEqual(
            Notification(sent=False, skipped=True).as_dict(),
            {"sent": False, "error": "", "skipped": True},
        )


class SkippedTests(SimpleTestCase):
    def test_already_running(self):
        running = RotationRun(pk=4, holder="elsewhere:12:ab", heartbeat_at=NOW)
        plain = RotationReport.already_running(running, now=NOW).as_dict()
        self.assertEqual(list(plain), [*CONTRACT, "run_id", "dry_run", "skipped", "reason"])
        self.assertEqual(
            {key: plain[key] for key in CONTRACT},
            {
                "status": "skipped",
                "timestamp": NOW.isoformat(),
                "models_processed": 0,
                "records_processed": 0,
                "failed_records": 0,
                "key_backup_path": "",
            },
        )
        self.assertEqual((plain["run_id"], plain["dry_run"]), (4, False))
        self.assertEqual(plain["skipped"], "already_running")
        self.assertEqual(
            plain["reason"],
            f"rotation 4 is already running (held by elsewhere:12:ab, last heartbeat "
            f"{NOW.isoformat()})",
        )

    def test_already_running_when_the_other_run_is_not_found(self):
        plain = RotationReport.already_running(None, now=NOW).as_dict()
        self.assertIsNone(plain["run_id"])
        self.assertEqual(plain["reason"], "another rotation started at the same moment")

    def test_not_due(self):
        due = NOW + timedelta(days=3)
        plain = RotationReport.not_due(due, "monthly", now=NOW).as_dict()
        self.assertEqual(
            list(plain), ["status", "skipped", *CONTRACT[1:], "dry_run", "next_due", "reason"]
        )
        self.assertEqual((plain["status"], plain["skipped"]), ("skipped", "not_due"))
        self.assertEqual((plain["records_processed"], plain["key_backup_path"]), (0, ""))
        self.assertEqual(plain["next_due"], due.isoformat())
        self.assertEqual(
            plain["reason"],
            f"no rotation is due: the schedule is monthly and the next is due at "
            f"{due.isoformat()}; pass force=True to rotate now",
        )
        never = RotationReport.not_due(None, "weekly", now=NOW).as_dict()
        self.assertIsNone(never["next_due"])
        self.assertIn("the next is due at once one completes", never["reason"])


class DryRunTests(SimpleTestCase):
    def test_counts_are_the_models_sums(self):
        failures = [ReportedFailure.of("app.Customer", pk, "_ssn", None, "x") for pk in range(150)]
        report = RotationReport.from_dry_run(
            models=MODELS,
            census={},
            failures=failures,
            old_key_ids=[1, 2],
            would_retire=[],
            now=NOW,
            elapsed=1.0,
        )
        plain = report.as_dict()
        self.assertEqual(list(plain), RAN)
        self.assertEqual(plain["status"], "failed")
        self.assertEqual(
            (plain["records_processed"], plain["records_reencrypted"], plain["failed_records"]),
            (7, 6, 1),
        )
        self.assertEqual(plain["models_processed"], 2)
        self.assertEqual(
            (plain["run_id"], plain["dry_run"], plain["new_key_id"]), (None, True, None)
        )
        self.assertEqual(plain["old_key_ids"], ["00000001", "00000002"])
        self.assertEqual(len(plain["failures"]), 100)
        self.assertIsNone(plain["failures"][0]["key_id"])
        self.assertEqual(
            plain["reason"], "dry run: 1 rows could not be decrypted; no key would be retired"
        )

    def test_a_clean_dry_run(self):
        clean = {"app.Note": {"rows": 2, "reencrypted": 2, "failed": 0}}
        report = RotationReport.from_dry_run(
            models=clean,
            census={},
            failures=[],
            old_key_ids=[1],
            would_retire=[1],
            now=NOW,
            elapsed=0.0,
        )
        self.assertEqual(report.status, "completed")
        self.assertEqual(report["retired_key_ids"], ["00000001"])
        self.assertEqual(report.reason, "dry run: nothing was written")
