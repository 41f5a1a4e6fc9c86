"""A process that inserts one ``Person`` with a given SSN when told to, for the test that two
processes inserting the same SSN, spelled differently, get exactly one ``IntegrityError``
(``test_blind_index_processes``).

Run as ``python -m data_encryption.tests.unique_inserter <folder> <name> <ssn>`` with the
environment from ``processes.child_environment()``: it writes ``<folder>/ready-<name>``, waits
for ``<folder>/go``, inserts in a transaction that it holds open a moment (so the two inserts
overlap), and prints ``inserted`` or ``IntegrityError``.
"""

import sys
import time
from pathlib import Path

HOLD_SECONDS = 0.5


def insert_when_told(folder, name, ssn):
    import django

    django.setup()
    from django.db import IntegrityError, connection, transaction

    from data_encryption.services import EncryptionService
    from data_encryption.tests.search_app.models import Person

    if connection.vendor == "sqlite":
        # A deferred SQLite transaction that has read (here: a key ring reloaded) cannot wait
        # for another's write lock and fails at once ("database is locked"); concurrent writers
        # on SQLite take the write lock at BEGIN, as Django's "transaction_mode" option offers.
        connection.settings_dict["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    EncryptionService.encrypt("warm-up")
    Person.objects.filter(ssn="0").exists()
    folder = Path(folder)
    (folder / f"ready-{name}").touch()
    deadline = time.monotonic() + 30
    while not (folder / "go").exists():
        if time.monotonic() > deadline:
            sys.exit("no go file within 30 s")
        time.sleep(0.005)
    try:
        with transaction.atomic():
            Person.objects.create(name=name, ssn=ssn)
            time.sleep(HOLD_SECONDS)
    except IntegrityError:
        print("IntegrityError")
    else:
        print("inserted")


if __name__ == "__main__":
    insert_when_told(*sys.argv[1:4])
