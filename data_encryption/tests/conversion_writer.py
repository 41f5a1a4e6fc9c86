"""The writer of the conversion's process test: a process that updates random Patients through
the ORM while ``encrypt_existing`` runs and is killed. Run as
``python -m data_encryption.tests.conversion_writer SECONDS STOP_FILE`` with the environment
from ``processes.child_environment()``; it prints the last value it wrote to each row as JSON.
"""

import json
import os
import random
import sys
import time


def writer(seconds, stop_file):
    """Update random Patients through the ORM, a read and ``save()`` or an ``update()``, until
    ``stop_file`` exists (or ``seconds`` pass); print the last value written to each."""
    import django

    django.setup()
    from data_encryption.tests.testapp.models import Patient

    pks = list(Patient.objects.values_list("pk", flat=True))
    last = {"code": {}, "notes": {}}
    deadline = time.monotonic() + seconds
    counter = 0
    while time.monotonic() < deadline and not os.path.exists(stop_file):
        counter += 1
        pk = random.choice(pks)
        patient = Patient.objects.get(pk=pk)  # a legacy value reads through the reader
        patient.code = f"w-{counter}"[:10]
        patient.save(update_fields=["code"])
        last["code"][pk] = patient.code
        pk = random.choice(pks)
        Patient.objects.filter(pk=pk).update(notes=f"written note {counter}")
        last["notes"][pk] = f"written note {counter}"
        time.sleep(0.002)
    print(json.dumps({"writes": counter, **last}))


if __name__ == "__main__":
    writer(float(sys.argv[1]), sys.argv[2])
