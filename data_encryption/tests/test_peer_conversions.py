"""Switching from each peer library end to end, against the real libraries: ``peer_app``'s
migration 0001 creates its tables with the library's fields and rows are written through them;
then the model becomes ours, converted in the migration (``EncryptField(..., reader=...)``) or
online (0002's ``convert=False``, the columns in ``DATA_ENCRYPTION_LEGACY_COLUMNS``,
``encrypt_existing``). Every value reads back as the library read it, every stored value is an
envelope, the census finds no legacy value. Backwards, each value is written through the
library's field again (it is installed: its migration imports it) and reads as before;
``DecryptField`` to a plain field leaves with plain values instead."""

import datetime
import decimal
import importlib
import zoneinfo
from io import StringIO

from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings

from data_encryption.envelope import ValueKind, classify
from data_encryption.operations import DecryptField, EncryptField
from data_encryption.services import KeyRotationService
from data_encryption.tests.peer_libraries import same
from data_encryption.tests.throwaway_apps import ThrowawayAppTestCase

APP = "peer_app"
COLUMNS = importlib.import_module(
    f"data_encryption.tests.{APP}.migrations.0002_switch_to_ours"
).COLUMNS
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
UTC = datetime.UTC

# model -> rows written through the library's fields (a row of NULLs is added to each). The
# fernet-fields library stores False, 0 and "" as NULL, so none of those is written there.
ROWS = {
    "FernetRow": [
        {"char": "ünïcødé ✓ 𝄞", "text": "line one\nline two", "integer": -(2**31),
         "day": datetime.date(2024, 2, 29),
         "moment": datetime.datetime(2024, 10, 27, 2, 30, 0, 15, fold=1, tzinfo=PARIS)},
        {"char": "back\\slash 'q'", "text": "x", "integer": 2**31 - 1,
         "day": datetime.date(1, 1, 1), "moment": datetime.datetime(1970, 1, 1, tzinfo=UTC)},
    ],
    "CryptographyRow": [
        {"char": "ünïcødé ✓ 𝄞", "text": "", "amount": decimal.Decimal("-99999999.99"),
         "day": datetime.date(9999, 12, 31),
         "moment": datetime.datetime(2024, 3, 1, 9, 30, 0, 1, tzinfo=UTC)},
        {"char": "back\\slash", "text": "line\nbreak", "amount": decimal.Decimal("0.10"),
         "day": datetime.date(2024, 2, 29),
         "moment": datetime.datetime(1999, 12, 31, 23, 59, 59, tzinfo=PARIS)},
    ],
    "ModelFieldsRow": [
        {"char": "ünïcødé ✓ 𝄞", "text": "", "email": "a.b@example.com",
         "day": datetime.date(2024, 2, 29),
         "moment": datetime.datetime(2024, 3, 1, 9, 30, 0, 1, tzinfo=UTC)},
        {"char": "back\\slash", "text": "line\nbreak", "email": "a@ünï.example",
         "day": datetime.date(1, 1, 1),
         "moment": datetime.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=PARIS)},
    ],
}  # fmt: skip
NAMES = {model: [name for name, _ in columns] for (model, _), columns in COLUMNS.items()}
MODELS = {model.lower(): model for model in ROWS}
IN_TRANSITION = {
    f"{APP}.{MODELS[model]}.{name}": reader
    for (model, reader), columns in COLUMNS.items()
    for name, _ in columns
}


def plain_counterpart(field):
    """The Django field our encrypted ``field`` stands for, for ``DecryptField``."""
    _name, _path, args, kwargs = field.deconstruct()
    plain_type = next(
        base for base in type(field).__mro__ if base.__module__.startswith("django.db.models")
    )
    return plain_type(*args, **kwargs)


class PeerConversionTestCase(ThrowawayAppTestCase):
    app_label = APP
    app_module = f"data_encryption.tests.{APP}"

    def setUp(self):
        super().setUp()
        self.migrate("0001_initial")
        self.library_read = {}
        for model_name, rows in ROWS.items():
            with self.second_key(model_name):
                peer = self.state_model("0001_initial", model_name)  # fresh fields: fresh keys
                pks = [peer.objects.create(**row).pk for row in rows[:1]]
            peer = self.state_model("0001_initial", model_name)
            pks += [peer.objects.create(**row).pk for row in rows[1:]]
            pks.append(peer.objects.create().pk)
            self.library_read[model_name] = self.values(peer)
            for pk, row in zip(pks, rows, strict=False):  # the library reads what it wrote
                self.assertEqual(
                    {
                        name: same(value)
                        for name, value in self.library_read[model_name][pk].items()
                    },
                    {name: same(value) for name, value in row.items()},
                )

    def second_key(self, model_name):
        """The library's key list turned around, so a row is written under its second key
        (django-fernet-encrypted-fields' SALT_KEY list; the other two libraries fix their keys
        when imported)."""
        if model_name == "FernetRow":
            return override_settings(SALT_KEY=list(reversed(settings.SALT_KEY)))
        return override_settings()

    def values(self, model):
        names = NAMES[model.__name__.lower()]
        return {
            row.pk: {name: getattr(row, name) for name in names}
            for row in model.objects.order_by("pk")
        }

    def assert_reads_as_the_library_did(self, model):
        read = self.values(model)
        expected = self.library_read[model.__name__]
        self.assertEqual(
            {pk: {n: same(v) for n, v in row.items()} for pk, row in read.items()},
            {pk: {n: same(v) for n, v in row.items()} for pk, row in expected.items()},
        )

    def assert_all_envelopes(self, model):
        for name in NAMES[model.__name__.lower()]:
            for pk, value in self.raw_column(model, name).items():
                if pk == max(self.library_read[model.__name__]):  # the row of NULLs
                    self.assertIsNone(value, (name, pk))
                else:
                    self.assertIs(classify(value), ValueKind.ENVELOPE_BINARY, (name, pk))

    def assert_library_tokens(self, model):
        """Stored values are the library's again: no envelope, and its field reads them."""
        for name in NAMES[model.__name__.lower()]:
            for pk, value in self.raw_column(model, name).items():
                self.assertNotIn(
                    classify(value) if value is not None else None,
                    (ValueKind.ENVELOPE_BINARY, ValueKind.ENVELOPE_ASCII),
                    (name, pk),
                )
        self.assert_reads_as_the_library_did(model)


class InMigrationTests(PeerConversionTestCase):
    """``EncryptField(..., reader=<library>)``: every row converted in the migration."""

    def encrypt(self, model_name, reader, columns):
        state = MigrationExecutor(connection).loader.project_state((APP, "0001_initial"))
        steps = []
        for name, field in columns:
            operation = EncryptField(model_name, name, field.clone(), reader=reader)
            steps.append((operation, state, state := self.step(operation, state)))
        return steps, state

    def step(self, operation, state):
        new_state = state.clone()
        operation.state_forwards(APP, new_state)
        with connection.schema_editor() as editor:
            operation.database_forwards(APP, editor, state, new_state)
        return new_state

    def test_each_library_converted_in_the_migration_and_back(self):
        for (model_name, reader), columns in COLUMNS.items():
            with self.subTest(library=reader):
                steps, state = self.encrypt(model_name, reader, columns)
                ours = state.apps.get_model(APP, model_name)
                self.assert_all_envelopes(ours)
                self.assert_reads_as_the_library_did(ours)
                for operation, before, after in reversed(steps):
                    with connection.schema_editor() as editor:
                        operation.database_backwards(APP, editor, after, before)
                self.assert_library_tokens(self.state_model("0001_initial", MODELS[model_name]))

    def test_decrypt_field_leaves_each_library_for_plain_values(self):
        for (model_name, reader), columns in COLUMNS.items():
            with self.subTest(library=reader):
                _steps, state = self.encrypt(model_name, reader, columns)
                for name, field in columns:
                    state = self.step(
                        DecryptField(model_name, name, plain_counterpart(field)), state
                    )
                plain = state.apps.get_model(APP, model_name)
                self.assert_reads_as_the_library_did(plain)
                char = self.raw_column(plain, "char")
                expected = [row["char"] for row in ROWS[MODELS[model_name]]]
                self.assertEqual(sorted(v for v in char.values() if v), sorted(expected))


class OnlineTests(PeerConversionTestCase):
    """0002 (``convert=False``) deployed with the columns in transition, then
    ``encrypt_existing``; migrating back to 0001 afterwards."""

    def extra_settings(self):
        return {"DATA_ENCRYPTION_LEGACY_COLUMNS": IN_TRANSITION}

    def test_each_library_converted_online_and_back(self):
        from django.apps import apps

        self.migrate("0002_switch_to_ours")
        ours = {name: apps.get_model(APP, name) for name in ROWS}
        for model in ours.values():  # in transition: the readers read the library's values
            self.assert_reads_as_the_library_did(model)
        out = StringIO()
        call_command("encrypt_existing", *(f"{APP}.{name}" for name in ROWS), stdout=out)
        self.assertIn("failed records:     0", out.getvalue())
        census = KeyRotationService().census()
        for name, model in ours.items():
            with self.subTest(model=name):
                self.assert_all_envelopes(model)
                self.assert_reads_as_the_library_did(model)
                for column, counts in census[f"{APP}.{name}"].items():
                    self.assertFalse(
                        [label for label in counts if label.startswith(("legacy", "plain"))],
                        (column, counts),
                    )
        with override_settings(DATA_ENCRYPTION_LEGACY_COLUMNS={}):  # the transition is over
            for model in ours.values():
                self.assert_reads_as_the_library_did(model)
        self.migrate("0001_initial")
        for name in ROWS:
            self.assert_library_tokens(self.state_model("0001_initial", name))
