"""What the master-key move tests share (``test_master_key_moves*``): settings naming a provider
as the only master key, a database test case with a fresh KMS key per class on moto's server,
values of every kind written and read back afresh, snapshots of the key tables, the re-wrap and
status commands.
"""

import itertools
import json
import tempfile
from io import StringIO
from pathlib import Path

from cryptography.exceptions import InvalidTag
from django.conf import settings
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connection
from django.test import TestCase, override_settings

from data_encryption.backups import BackupError, read_backup
from data_encryption.envelope import key_id_of
from data_encryption.index_keys import reset_index_key_ring
from data_encryption.keys import create_data_key, reset_key_ring
from data_encryption.master_key import MasterKey
from data_encryption.master_keys import AwsKms
from data_encryption.master_keys.local import WRAP_FORMAT_V1
from data_encryption.master_keys.provider_key import PROVIDER_WRAP_FORMAT
from data_encryption.models import DataKey, IndexKey, KeyState
from data_encryption.tests.kms_server import KmsTestCase, create_key, kms_url
from data_encryption.tests.search_app.models import Person
from data_encryption.tests.testapp.models import Customer, Patient
from data_encryption.tests.utils import FAST, FreshKeyRingMixin, make_primary

BACKEND = "data_encryption.master_keys.AwsKms"


def kms_setting(arn, url=None):
    """A ``DATA_ENCRYPTION_MASTER_KEY_PROVIDER`` value naming the KMS key ``arn`` on moto."""
    return {"BACKEND": BACKEND, "OPTIONS": {"key_id": arn, "endpoint_url": url or kms_url()}}


def kms_fingerprint(arn):
    return AwsKms(key_id=arn, endpoint_url=kms_url()).fingerprint


def kms_only(arn, **more):
    """Settings in which the KMS key ``arn`` is the only master key."""
    return provider_only(kms_setting(arn), **more)


def provider_only(setting, **more):
    """Settings in which the provider ``setting`` names is the only master key."""
    return override_settings(
        DATA_ENCRYPTION_MASTER_KEY_PROVIDER=setting,
        DATA_ENCRYPTION_MASTER_KEY_FALLBACKS=[],
        DB_ENCRYPTION_KEY=None,
        DB_ENCRYPTION_KEY_FALLBACKS=[],
        **more,
    )


def backup_settings(**values):
    """FAST, with a backup directory of the test's own: a re-wrap rewrites every file there."""
    directory = Path(tempfile.mkdtemp(prefix="moves-"))
    return override_settings(ENCRYPTION_KEY_ROTATION={**FAST, "BACKUP_DIR": directory, **values})


class KmsDatabaseTestCase(FreshKeyRingMixin, KmsTestCase, TestCase):
    """A database test case with its own KMS key (``self.key``) on moto's server."""

    def fresh_kms_key(self):
        return create_key(self.url)


# Person.ssn is unique: each call of write_values takes its own numbers.
_batches = itertools.count(100)


def write_values(tag="v"):
    """Values of each kind under the current primary key: the property pattern (Customer), field
    types (Patient) and blind-indexed fields (Person). Returns what ``read_values`` should give."""
    batch = next(_batches) % 1000
    for index in range(3):
        Customer.objects.create(name=f"{tag}{index}", _ssn=_encrypt(f"{tag}-ssn-{index}"))
        Patient.objects.create(
            name=f"{tag}{index}", notes=f"{tag} note {index}", visits=index, profile={"i": index}
        )
        Person.objects.create(
            name=f"{tag}{index}", ssn=f"{batch:03d}-00-{index:04d}", email=f"{tag}{index}@x.io"
        )
    return read_values()


def _encrypt(text):
    from data_encryption.services import EncryptionService

    return EncryptionService.encrypt(text)


def read_values():
    """Every value, decrypted by key rings loaded afresh from the key tables."""
    reset_key_ring()
    reset_index_key_ring()
    return {
        "customers": {c.name: c.ssn for c in Customer.objects.all()},
        "patients": {p.name: (p.notes, p.visits, p.profile) for p in Patient.objects.all()},
        "people": {p.name: (p.ssn, p.email) for p in Person.objects.all()},
    }


def assert_found_by_blind_index(testcase, values):
    """Each person of ``values`` (from ``read_values``) is found by a lookup on its indexed
    fields, which hash the value under the index key: the index key ring must hold it."""
    testcase.assertTrue(values["people"])
    for name, (ssn, email) in values["people"].items():
        testcase.assertEqual(Person.objects.get(ssn=ssn).name, name)
        testcase.assertEqual(Person.objects.get(email=email).name, name)


def write_under_two_local_keys(testcase):
    """Values under the local key's first data key, then under a second one."""
    first = write_values("first")
    make_primary(create_data_key("default", state=KeyState.DECRYPT_ONLY))
    reset_key_ring()
    values = merged(first, write_values("second"))
    testcase.assertEqual(len({key_id_of(c._ssn) for c in Customer.objects.all()}), 2)
    return values


def merged(*values):
    """``read_values`` results of several writes, as one."""
    return {part: {k: v for each in values for k, v in each[part].items()} for part in values[0]}


def key_rows():
    """Both key tables as they stand, every column but the surrogate primary key (wrapped keys
    and MACs as bytes)."""

    def row_values(model):
        names = [f.attname for f in model._meta.concrete_fields if not f.primary_key]
        rows = model.objects.order_by("key_id").values_list(*names)
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]

    return {"data": row_values(DataKey), "index": row_values(IndexKey)}


def wrapped_rows():
    """(model, key id, wrapped key, fingerprint) of every key row that holds material."""
    rows = []
    for model in (DataKey, IndexKey):
        for row in model.objects.exclude(wrapped_key=None).order_by("key_id"):
            rows.append((model, row.key_id, bytes(row.wrapped_key), row.master_key_fingerprint))
    return rows


def assert_all_wrapped_by(testcase, fingerprint, *, provider):
    """Every key row that holds material names ``fingerprint`` and is in that master key's
    format (a provider's blob: ``02 | fingerprint | ...``; a local key's: ``01 | ...``)."""
    rows = wrapped_rows()
    testcase.assertTrue(any(model is DataKey for model, *_ in rows))
    testcase.assertTrue(any(model is IndexKey for model, *_ in rows))
    for model, key_id, wrapped, row_fingerprint in rows:
        with testcase.subTest(table=model.__name__, key=f"{key_id:08x}"):
            testcase.assertEqual(row_fingerprint, fingerprint)
            if provider:
                testcase.assertEqual(wrapped[:1], PROVIDER_WRAP_FORMAT)
                testcase.assertEqual(wrapped[1:9].hex(), fingerprint)
            else:
                testcase.assertEqual(wrapped[:1], WRAP_FORMAT_V1)
    return rows


def status_master_keys():
    """``encryption_status --json``'s master keys, by fingerprint."""
    out = StringIO()
    call_command("encryption_status", "--json", stdout=out)
    return {entry["fingerprint"]: entry for entry in json.loads(out.getvalue())["master_keys"]}


def rewrap():
    """``manage.py rewrap_data_keys``; its output."""
    out = StringIO()
    call_command("rewrap_data_keys", stdout=out)
    return out.getvalue()


def backup_paths():
    return sorted(Path(settings.ENCRYPTION_KEY_ROTATION["BACKUP_DIR"]).iterdir())


def check_messages(*, deploy=False):
    """This app's system-check messages (the database checks included) by id."""
    messages = run_checks(include_deployment_checks=deploy, databases=[connection.alias])
    found = {}
    for message in messages:
        if message.id and message.id.startswith("data_encryption."):
            found.setdefault(message.id.removeprefix("data_encryption."), []).append(message.msg)
    return found


def assert_local_to_provider_move(testcase, setting, fingerprint, description):
    """The documented move from the local key to the provider ``setting`` names (the master key
    with ``fingerprint`` and ``description``), proven: the provider named beside the local key,
    ``rewrap_data_keys``, every key row and key backup under the provider; then the provider
    alone reads, finds and writes every value, and the local key alone opens nothing."""
    local = settings.DB_ENCRYPTION_KEY
    local_fingerprint = MasterKey(local).fingerprint
    expected = write_under_two_local_keys(testcase)
    assert_all_wrapped_by(testcase, local_fingerprint, provider=False)
    # Step 1: name the provider, keep DB_ENCRYPTION_KEY where it is.
    with override_settings(DATA_ENCRYPTION_MASTER_KEY_PROVIDER=setting):
        messages = check_messages(deploy=True)
        testcase.assertIn("W006", messages)
        testcase.assertFalse({"E027", "E039", "E040", "E041"} & set(messages), messages)
        output = rewrap()
        testcase.assertIn(f"2 data keys re-wrapped under master key {fingerprint}", output)
        testcase.assertIn("1 blind-index keys re-wrapped", output)
        assert_all_wrapped_by(testcase, fingerprint, provider=True)
        status = status_master_keys()
        testcase.assertEqual(status[local_fingerprint]["data_keys"], 0)
        testcase.assertEqual(status[fingerprint]["data_keys"], 2)
        testcase.assertEqual(status[fingerprint]["description"], description)
    # Step 2: the local key removed everywhere; the provider alone.
    with provider_only(setting):
        testcase.assertEqual(read_values(), expected)
        assert_found_by_blind_index(testcase, expected)
        expected = merged(expected, write_values("after"))
        testcase.assertEqual(read_values(), expected)
        assert_found_by_blind_index(testcase, expected)
        messages = check_messages(deploy=True)
        testcase.assertFalse({"W006", "E027", "E032", "E039", "E040"} & set(messages), messages)
        for path in backup_paths():  # the backups were re-wrapped and re-signed too
            for key in read_backup(path):
                if key.wrapped_key is not None:
                    testcase.assertEqual(key.wrapped_key[1:9].hex(), fingerprint)
    # The local key alone unwraps nothing any more: no row, no backup.
    testcase.assertTrue(backup_paths())
    with override_settings(DB_ENCRYPTION_KEY=local):
        testcase.assertIn(fingerprint, " ".join(check_messages()["E027"]))
        old = MasterKey(local)
        for _model, key_id, wrapped, _fingerprint in wrapped_rows():
            with testcase.subTest(key=f"{key_id:08x}"), testcase.assertRaises(InvalidTag):
                old.unwrap(key_id, wrapped)
        for path in backup_paths():
            with testcase.assertRaisesMessage(BackupError, description):
                read_backup(path)
