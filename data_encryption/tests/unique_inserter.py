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
    from django.conf import settings
    from django.db import IntegrityError, transaction
    from django.test import override_settings

    from data_encryption.services import EncryptionService
    from data_encryption.tests.search_app.models import Person

    # Both key rings loaded before the race and kept through it (the test settings reload them
    # every 0.5 s), so that the transaction below only writes: on SQLite a transaction that
    # read first cannot wait for the other's write lock ("database is locked" at once), which
    # would test SQLite's locking rather than the unique index.
    rotation = {**settings.ENCRYPTION_KEY_ROTATION, "KEY_CACHE_SECONDS": 600}
    override_settings(ENCRYPTION_KEY_ROTATION=rotation).enable()
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
