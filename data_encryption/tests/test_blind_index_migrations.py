"""What ``makemigrations`` writes when a model's encrypted field gains ``blind_index=True``,
loses it, or turns ``unique`` on and off: the operations, their running on a populated table,
and nothing more to write afterwards (the detector is stable)."""

from django.apps.registry import Apps
from django.db import IntegrityError, migrations, models, transaction
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.state import ModelState, ProjectState

from data_encryption import fields
from data_encryption.exceptions import BlindIndexIncomplete
from data_encryption.fields.index_columns import index_name
from data_encryption.tests.operations_support import APP, OperationTestCase

SSNS = ["123-45-6789", "987 65 4321", None]


def plain_ssn():
    return fields.EncryptedCharField(max_length=11, null=True)


def indexed_ssn(unique):
    return fields.EncryptedCharField(
        max_length=11, null=True, blind_index=True, unique=unique, normaliser="digits"
    )


def declared(ssn):
    """A ``Customer`` declared with ``ssn`` (in a registry of its own), as an app's models.py
    would declare it; its table is the one the migration states make."""
    meta = type("Meta", (), {"app_label": APP, "apps": Apps()})
    attrs = {
        "__module__": __name__,
        "Meta": meta,
        "id": models.BigAutoField(primary_key=True),
        "name": models.CharField(max_length=20),
    }
    return type("Customer", (models.Model,), {**attrs, "ssn": ssn})


def changes(state, model):
    """The operations ``makemigrations`` would write to go from ``state`` to ``model``."""
    target = ProjectState()
    target.add_model(ModelState.from_model(model))
    found = MigrationAutodetector(state, target)._detect_changes()
    return [op for migration in found.get(APP, []) for op in migration.operations]


def described(operations):
    def name(op):
        if isinstance(op, (migrations.RemoveConstraint, migrations.RemoveIndex)):
            return op.name
        if isinstance(op, migrations.AddIndex):
            return op.index.name
        return getattr(op, "name", None) or op.constraint.name

    return [f"{type(op).__name__} {name(op)}" for op in operations]


class BlindIndexMigrationTests(OperationTestCase):
    model_name = "Customer"

    def migrate_to(self, state, model):
        """Apply what ``makemigrations`` writes for ``model``; the state after, checked stable."""
        operations = changes(state, model)
        for operation in operations:
            state = self.apply(operation, state)
        self.assertEqual(changes(state, model), [])
        return state, described(operations)

    def test_adding_removing_and_toggling_unique_on_a_populated_table(self):
        state = self.make_table([("name", models.CharField(max_length=20)), ("ssn", plain_ssn())])
        # make_table's id as a migration writes it (a model's primary key is not serialised).
        state.models[APP, "customer"].fields["id"] = models.BigAutoField(
            primary_key=True, serialize=False
        )
        before = self.model(state)
        for i, ssn in enumerate(SSNS):
            before.objects.create(name=f"c{i}", ssn=ssn)

        customer = declared(indexed_ssn(unique=True))
        state, written = self.migrate_to(state, customer)
        table = customer._meta.db_table
        self.assertEqual(
            sorted(written),
            sorted(
                [
                    "AlterField ssn",
                    "AddField ssn_bidx_a",
                    "AddField ssn_bidx_b",
                    f"AddConstraint {table}_ssn_bidx_a_uniq",
                    f"AddConstraint {table}_ssn_bidx_b_uniq",
                ]
            ),
        )
        # The rows written before have no index yet: queries say what to run.
        with self.assertRaises(BlindIndexIncomplete) as caught:
            list(customer.objects.filter(ssn="123456789"))
        self.assertIn(f"rebuild_blind_index {APP}.Customer.ssn", str(caught.exception))
        for row in customer.objects.all():
            row.save()
        self.assertEqual(customer.objects.get(ssn="123456789").name, "c0")
        with self.assertRaises(IntegrityError), transaction.atomic():
            customer.objects.create(name="dup", ssn="987654321")

        customer = declared(indexed_ssn(unique=False))
        state, written = self.migrate_to(state, customer)
        self.assertEqual(
            sorted(written),
            sorted(
                [
                    "AlterField ssn",
                    # Indexed, now that no constraint covers them.
                    f"AddIndex {index_name(customer, 'ssn_bidx_a')}",
                    f"AddIndex {index_name(customer, 'ssn_bidx_b')}",
                    f"RemoveConstraint {table}_ssn_bidx_a_uniq",
                    f"RemoveConstraint {table}_ssn_bidx_b_uniq",
                ]
            ),
        )
        customer.objects.create(name="dup", ssn="987654321")
        self.assertEqual(customer.objects.filter(ssn="987-65-4321").count(), 2)
        customer.objects.filter(name="dup").delete()

        customer = declared(indexed_ssn(unique=True))
        state, written = self.migrate_to(state, customer)
        self.assertIn(f"AddConstraint {table}_ssn_bidx_a_uniq", written)
        self.assertEqual(customer.objects.get(ssn="987654321").name, "c1")

        customer = declared(plain_ssn())
        state, written = self.migrate_to(state, customer)
        self.assertEqual(
            sorted(written),
            sorted(
                [
                    "AlterField ssn",
                    "RemoveField ssn_bidx_a",
                    "RemoveField ssn_bidx_b",
                    f"RemoveConstraint {table}_ssn_bidx_a_uniq",
                    f"RemoveConstraint {table}_ssn_bidx_b_uniq",
                ]
            ),
        )
        self.assertEqual(
            sorted(customer.objects.values_list("ssn", flat=True), key=str),
            sorted(SSNS, key=str),
        )
        self.assertNotIn("ssn_bidx_a", self.columns(customer))
