"""Key metadata that cannot be edited unseen (L7): the MAC on each DataKey row, what the ring does
with a row that fails it, the key-table checks (E027, E032, E031, W003), encryption_status,
authenticate_data_keys, and migration 0005."""

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import TestCase, TransactionTestCase, override_settings
from django.utils import timezone

from data_encryption.backups import restore_backup
from data_encryption.ciphers import generate_data_key
from data_encryption.exceptions import KeyConfigurationError
from data_encryption.key_audit import Metadata, audit_data_keys, signed_by
from data_encryption.keys import reset_key_ring
from data_encryption.master_key import MasterKey, master_keys
from data_encryption.models import KEY_DATES, DataKey, KeyState, key_metadata_message
from data_encryption.services import EncryptionService, KeyRotationService
from data_encryption.tests.test_keys import seal_with, store_key
from data_encryption.tests.testapp.models import Customer
from data_encryption.tests.utils import (
    FAST,
    FreshKeyRingMixin,
    make_customers,
    new_fernet_key,
    primary_id,
)

KEY_CHECKS = {"data_encryption.E027", "data_encryption.E032", "data_encryption.E031"}
KEY_CHECKS |= {"data_encryption.W003"}


def key_checks():
    """The key-table messages of ``manage.py check --database default``, by id."""
    return {
        message.id: message
        for message in run_checks(databases=["default"])
        if message.id in KEY_CHECKS
    }


def tamper(key_id, **changes):
    """An edit made in the database, outside the application (what a DB writer can do)."""
    DataKey.objects.filter(key_id=key_id).update(**changes)
    reset_key_ring()


def verdicts():
    return {audit.key_id: audit.metadata for audit in audit_data_keys("default")}


def status():
    out = StringIO()
    call_command("encryption_status", "--json", "--no-census", stdout=out)
    return {key["key_id"]: key for key in json.loads(out.getvalue())["keys"]}


@override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "RETENTION_DAYS": 0})
class LegitimateTransitionTests(FreshKeyRingMixin, TestCase):
    def assert_all_verified(self):
        self.assertEqual(set(verdicts().values()), {Metadata.VERIFIED})
        self.assertEqual(key_checks(), {})

    def test_every_transition_of_the_application_re_authenticates(self):
        ssns = make_customers(3)
        self.assert_all_verified()  # created (by migrate's first key)
        first = primary_id()
        backup = KeyRotationService().rotate()["key_backup_path"]  # activate, demote, retire
        self.assertEqual(DataKey.objects.get(key_id=first).state, KeyState.RETIRED)
        self.assert_all_verified()
        KeyRotationService().rotate()  # destroy
        self.assertEqual(DataKey.objects.get(key_id=first).state, KeyState.DESTROYED)
        self.assert_all_verified()
        self.assertIn(first, restore_backup(Path(backup)).restored)  # restore
        self.assert_all_verified()
        old, new_text = master_keys()[0], new_fernet_key()
        new = MasterKey(new_text)
        with override_settings(
            DB_ENCRYPTION_KEY=new_text, DB_ENCRYPTION_KEY_FALLBACKS=[settings.DB_ENCRYPTION_KEY]
        ):
            # Rows signed by the old master key still verify under the fallback.
            self.assert_all_verified()
            call_command("rewrap_data_keys", stdout=StringIO())  # rewrap
            rows = DataKey.objects.all()
            self.assertTrue(all(signed_by(new, row) for row in rows))  # destroyed ones too
            self.assertFalse(any(signed_by(old, row) for row in rows))
        with override_settings(DB_ENCRYPTION_KEY=new_text):  # the fallback removed
            self.assert_all_verified()
            self.assertEqual({c.pk: c.ssn for c in Customer.objects.all()}, ssns)


@override_settings(ENCRYPTION_KEY_ROTATION=FAST)
class TamperingTests(FreshKeyRingMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.material = generate_data_key()
        self.key = store_key(0x70000001, self.material)
        self.value = seal_with(0x70000001, self.material, "under the old key")

    def test_a_retired_key_made_primary_again_is_refused(self):
        # exp3_keys #6: flipped back to primary, the old key encrypted every new value (pinned).
        ssns = make_customers(2)
        pinned = DataKey.objects.get(state=KeyState.PRIMARY)
        KeyRotationService().rotate()
        self.assertEqual(DataKey.objects.get(pk=pinned.pk).state, KeyState.RETIRED)
        sound = DataKey.objects.get(state=KeyState.PRIMARY)
        tamper(sound.key_id, state=KeyState.DECRYPT_ONLY)
        tamper(pinned.key_id, state=KeyState.PRIMARY)
        with self.assertRaisesMessage(KeyConfigurationError, f"data key {pinned.hex_id}") as err:
            EncryptionService.encrypt("new value")
        self.assertIn("manage.py rotate_encryption_key", str(err.exception))
        self.assertIn("restore_encryption_keys", str(err.exception))
        self.assertEqual({c.pk: c.ssn for c in Customer.objects.all()}, ssns)  # reads go on
        found = key_checks()
        self.assertEqual(set(found), {"data_encryption.E032", "data_encryption.W003"})
        self.assertIn(pinned.hex_id, found["data_encryption.E032"].msg)
        self.assertIn(sound.hex_id, found["data_encryption.E032"].msg)
        self.assertIn(f"Data key {pinned.hex_id} is primary", found["data_encryption.W003"].msg)
        # The documented way out: a rotation from here makes a sound primary, and its demotion
        # and retirement re-authenticate the rows it moves.
        call_command("rotate_encryption_key", "--force", stdout=StringIO())
        self.assertNotIn(primary_id(), (pinned.key_id, sound.key_id))
        EncryptionService.encrypt("new value")
        self.assertEqual(key_checks(), {})

    def test_edits_made_in_the_database_are_detected(self):
        original = DataKey.objects.filter(key_id=self.key.key_id).values().get()
        del original["id"], original["key_id"]
        other = master_keys()[0].wrap(self.key.key_id, generate_data_key())
        edits = {
            "marked destroyed": {"state": KeyState.DESTROYED},
            "made retired": {"state": KeyState.RETIRED},
            "created earlier": {"created_at": self.key.created_at - timedelta(days=400)},
            "retired long ago": {"retired_at": self.key.created_at - timedelta(days=90)},
            "destroyed_at set": {"destroyed_at": self.key.created_at},
            "fingerprint changed": {"master_key_fingerprint": "0" * 16},
            "material replaced": {"wrapped_key": other},
        }
        for name, changes in edits.items():
            with self.subTest(name):
                tamper(self.key.key_id, **changes)
                self.assertEqual(verdicts()[self.key.key_id], Metadata.TAMPERED)
                found = key_checks()
                self.assertEqual(set(found), {"data_encryption.E032"})
                self.assertIn(self.key.hex_id, found["data_encryption.E032"].msg)
                self.assertIn("authenticate_data_keys", found["data_encryption.E032"].hint)
                self.assertEqual(status()[self.key.hex_id]["metadata"], Metadata.TAMPERED)
                tamper(self.key.key_id, **original)  # the MAC is over values: put back, it verifies
                self.assertEqual(key_checks(), {})

    def test_a_tampered_key_that_is_not_primary_still_decrypts(self):
        # Its material is authenticated by the wrap, so what it decrypts is genuine; refusing
        # would turn an edited date into an outage of its values (docs/security.md).
        tamper(self.key.key_id, retired_at=timezone.now())
        with self.assertLogs("data_encryption", "ERROR") as logs:
            self.assertEqual(EncryptionService.decrypt(self.value), "under the old key")
            self.assertEqual(EncryptionService.decrypt(EncryptionService.encrypt("x")), "x")
        self.assertIn(f"data key {self.key.hex_id}", logs.output[0])
        self.assertIn("does not verify", logs.output[0])

    def test_an_unauthenticated_primary_refuses_until_it_is_authenticated(self):
        primary = DataKey.objects.get(state=KeyState.PRIMARY)
        tamper(primary.key_id, metadata_mac=None)
        with self.assertRaisesMessage(KeyConfigurationError, "authenticate_data_keys"):
            EncryptionService.encrypt("x")
        self.assertEqual(set(key_checks()), {"data_encryption.E031"})
        out = StringIO()
        call_command("authenticate_data_keys", "--no-input", stdout=out)
        self.assertIn(f"{primary.hex_id}  primary", out.getvalue())
        self.assertIn("1 keys authenticated; 0 were already.", out.getvalue())
        self.assertEqual(EncryptionService.decrypt(EncryptionService.encrypt("x")), "x")
        self.assertEqual(key_checks(), {})

    def test_authenticate_signs_a_tampered_row_only_when_named(self):
        tamper(self.key.key_id, retired_at=timezone.now())
        out = StringIO()
        call_command("authenticate_data_keys", "--no-input", stdout=out)
        self.assertIn("already", out.getvalue())
        self.assertEqual(verdicts()[self.key.key_id], Metadata.TAMPERED)
        call_command("authenticate_data_keys", self.key.hex_id, "--no-input", stdout=StringIO())
        self.assertEqual(verdicts()[self.key.key_id], Metadata.VERIFIED)
        with self.assertRaisesMessage(
            CommandError, "No data key or blind-index key with id 0badc0de"
        ):
            call_command("authenticate_data_keys", "0badc0de", "--no-input", stdout=StringIO())
        with self.assertRaisesMessage(CommandError, "'-0000001' is not a data key id"):
            call_command("authenticate_data_keys", "-0000001", "--no-input", stdout=StringIO())

    def test_rewrap_refuses_rows_whose_metadata_does_not_verify(self):
        tamper(self.key.key_id, state=KeyState.RETIRED)
        before = dict(DataKey.objects.values_list("key_id", "master_key_fingerprint"))
        with override_settings(
            DB_ENCRYPTION_KEY=new_fernet_key(),
            DB_ENCRYPTION_KEY_FALLBACKS=[settings.DB_ENCRYPTION_KEY],
        ):
            with self.assertRaisesMessage(CommandError, f"{self.key.hex_id} (tampered)") as err:
                call_command("rewrap_data_keys", stdout=StringIO())
        self.assertIn("authenticate_data_keys", str(err.exception))
        self.assertEqual(
            dict(DataKey.objects.values_list("key_id", "master_key_fingerprint")), before
        )

    def test_keys_no_master_key_unwraps_are_listed_with_their_master_key(self):
        gone = MasterKey(new_fernet_key())
        store_key(0x70000002, generate_data_key(), master=gone)
        store_key(0x70000003, generate_data_key(), master=gone, state=KeyState.RETIRED)
        found = key_checks()
        self.assertEqual(set(found), {"data_encryption.E027"})
        self.assertIn("70000002, 70000003", found["data_encryption.E027"].msg)
        self.assertIn(f"fingerprint {gone.fingerprint}", found["data_encryption.E027"].msg)
        self.assertNotIn("nothing can be encrypted", found["data_encryption.E027"].msg)
        self.assertIn("DB_ENCRYPTION_KEY_FALLBACKS", found["data_encryption.E027"].hint)
        self.assertIs(status()["70000002"]["unwraps"], False)
        out = StringIO()
        call_command("encryption_status", "--no-census", stdout=out)
        self.assertIn(f"[no master key unwraps it ({gone.fingerprint})]", out.getvalue())
        self.assertIn("See 'manage.py check --database default' for what to do.", out.getvalue())

    def test_a_primary_that_is_not_the_newest_key_warns(self):
        self.assertEqual(key_checks(), {})
        primary = DataKey.objects.get(state=KeyState.PRIMARY)
        primary.created_at = self.key.created_at - timedelta(days=1)  # pinned and re-signed
        primary.save()
        found = key_checks()
        self.assertEqual(set(found), {"data_encryption.W003"})
        self.assertIn(
            f"data key {self.key.hex_id} (decrypt-only)", found["data_encryption.W003"].msg
        )

    def test_the_mac_is_never_shown(self):
        mac = DataKey.objects.get(key_id=self.key.key_id).metadata_mac
        out = StringIO()
        call_command("encryption_status", "--json", stdout=out)
        self.assertNotIn(bytes(mac).hex(), out.getvalue())
        self.assertNotIn("metadata_mac", repr(self.key) + str(self.key))


class MetadataMessageTests(TestCase):
    def test_same_bytes_whatever_the_time_zone_and_each_field_counts(self):
        row = DataKey(
            key_id=1,
            state=KeyState.PRIMARY,
            wrapped_key=b"w",
            master_key_fingerprint="f" * 16,
            created_at=timezone.now(),
        )
        message = key_metadata_message(row)
        row.created_at = row.created_at.astimezone(ZoneInfo("Asia/Kolkata"))
        self.assertEqual(key_metadata_message(row), message)
        for name, value in [
            ("key_id", 2),
            ("state", KeyState.RETIRED),
            ("wrapped_key", b"x"),
            ("wrapped_key", None),
            ("master_key_fingerprint", "e" * 16),
            ("created_at", row.created_at + timedelta(microseconds=1)),
            ("primary_since", row.created_at),
            ("decrypt_only_since", row.created_at),
            ("retired_at", row.created_at),
            ("destroyed_at", row.created_at),
        ]:
            changed = DataKey(**{**{f: getattr(row, f) for f in _FIELDS}, name: value})
            self.assertNotEqual(key_metadata_message(changed), message, name)

    def test_rows_verify_whatever_use_tz_and_time_zone_say_when_read(self):
        # PostgreSQL hands dates back naive in TIME_ZONE with USE_TZ off, SQLite as stored.
        primary = DataKey.objects.get(state=KeyState.PRIMARY)
        primary.primary_since = timezone.now() - timedelta(days=200)  # another UTC offset
        primary.save()
        for use_tz, zone in [(False, "America/Chicago"), (False, "UTC"), (True, "Asia/Tokyo")]:
            with (
                self.subTest(use_tz=use_tz, zone=zone),
                self.settings(USE_TZ=use_tz, TIME_ZONE=zone),
            ):
                reset_key_ring()
                self.assertEqual(set(verdicts().values()), {Metadata.VERIFIED})
                EncryptionService.encrypt("x")
        reset_key_ring()


_FIELDS = ["key_id", "state", "wrapped_key", "master_key_fingerprint", *KEY_DATES]


class MigrationTests(TransactionTestCase):
    """0005 authenticates the rows that exist when it runs."""

    before, after = (
        ("data_encryption", "0004_forget_run_key_copies"),
        (
            "data_encryption",
            "0005_datakey_metadata_mac",
        ),
    )

    def setUp(self):
        reset_key_ring()
        self.addCleanup(reset_key_ring)
        self.addCleanup(self.migrate_to_latest)  # leave the schema as the other tests want it

    def migrate(self, target):
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate([target])
        return executor.loader.project_state([target]).apps

    def migrate_to_latest(self):
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes("data_encryption"))

    def old_rows(self):
        apps = self.migrate(self.before)
        OldDataKey = apps.get_model("data_encryption", "DataKey")
        OldDataKey.objects.all().delete()
        master = master_keys()[0]
        for key_id, state, age in [(0x80000001, KeyState.PRIMARY, 0), (0x80000002, "retired", 9)]:
            OldDataKey.objects.create(
                key_id=key_id,
                state=state,
                wrapped_key=master.wrap(key_id, generate_data_key()),
                master_key_fingerprint=master.fingerprint,
                created_at=timezone.now() - timedelta(days=age),
            )

    def test_existing_rows_are_authenticated_with_the_configured_master_key(self):
        self.old_rows()
        self.migrate(self.after)
        self.assertEqual(verdicts(), {0x80000001: Metadata.VERIFIED, 0x80000002: Metadata.VERIFIED})
        EncryptionService.encrypt("x")

    def test_without_a_master_key_rows_stay_unauthenticated_until_authenticated(self):
        self.old_rows()
        with override_settings(DB_ENCRYPTION_KEY=None):
            self.migrate(self.after)
        self.assertEqual(set(verdicts().values()), {Metadata.UNAUTHENTICATED})
        with self.assertRaisesMessage(KeyConfigurationError, "authenticate_data_keys"):
            EncryptionService.encrypt("x")
        self.assertEqual(set(key_checks()), {"data_encryption.E031"})
        self.migrate_to_latest()  # the command reads the index keys' table too
        call_command("authenticate_data_keys", "--no-input", stdout=StringIO())
        self.assertEqual(set(verdicts().values()), {Metadata.VERIFIED})
        EncryptionService.encrypt("x")
