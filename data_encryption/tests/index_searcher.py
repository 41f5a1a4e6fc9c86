"""The searcher of the index-key rotation's process test: a process that keeps querying People
by SSN, inserting new ones and trying duplicates, while ``rotate_encryption_key
--index-keys-only`` runs and is killed. Its index key ring is cached as any process's is, so it
is often stale across a phase change. Run as ``python -m data_encryption.tests.index_searcher
ROWS STOP_FILE`` with the environment from ``processes.child_environment()``; it prints what it
did and every wrong answer as JSON.
"""

import json
import os
import random
import sys
import time


def search(rows, stop_file):
    import django

    django.setup()
    from django.db import OperationalError

    from data_encryption.tests.search_app.models import Person

    counts = {"queries": 0, "inserts": 0, "duplicates_refused": 0, "sqlite_busy": 0}
    wrong, inserted = [], {}
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not os.path.exists(stop_file):
        try:
            step(Person, counts, wrong, inserted, rows)
        except OperationalError as exc:
            # SQLite refuses a transaction that read and then writes while another process
            # commits (it would deadlock), at once and whatever its timeout: the application's
            # retry, not the index's doing. PostgreSQL never gets here.
            if "locked" not in str(exc):
                raise
            counts["sqlite_busy"] += 1
        time.sleep(0.002)
    print(json.dumps({**counts, "wrong": wrong[:20], "inserted": inserted}))


def step(Person, counts, wrong, inserted, rows):
    """One query, and every tenth query an insert and a duplicate."""
    from django.db import IntegrityError, transaction

    from data_encryption.exceptions import BlindIndexIncomplete

    number = random.randrange(rows)
    try:
        found = list(Person.objects.filter(ssn=f"{number:09d}").values_list("name", flat=True))
    except BlindIndexIncomplete as exc:
        wrong.append(f"incomplete: {exc}")
        return
    counts["queries"] += 1
    if found != [f"p{number}"]:
        wrong.append(f"ssn {number}: found {found}")
    if counts["queries"] % 10 == 0:
        value = f"8{len(inserted):08d}"
        person = Person.objects.create(name=f"s{len(inserted)}", ssn=value)
        inserted[value] = person.pk
        counts["inserts"] += 1
        if Person.objects.get(ssn=value).pk != person.pk:
            wrong.append(f"inserted {value} not found")
        try:
            with transaction.atomic():
                Person.objects.create(name="dup", ssn=f"{number:09d}")
            wrong.append(f"duplicate of ssn {number} accepted")
        except IntegrityError:
            counts["duplicates_refused"] += 1


if __name__ == "__main__":
    search(int(sys.argv[1]), sys.argv[2])
