"""Real processes for the rotation tests: a writer that keeps changing rows while a rotation
runs, and the plumbing to start a command against the test's own database.

Run as ``python -m data_encryption.tests.processes writer --seconds 3`` with the environment
from ``child_environment()``; it prints the last value it wrote to each row as JSON.
"""

import json
import os
import random
import subprocess
import sys
import time

SETTINGS = "data_encryption.tests.settings"


def child_environment():
    """The environment a child process needs to use this test's database and keys."""
    from django.db import connection

    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = SETTINGS
    env["DATA_ENCRYPTION_TEST_CHILD_DB"] = str(connection.settings_dict["NAME"])
    return env


def start_command(*args):
    """Start ``manage.py <args>`` in a new process against the test database."""
    return subprocess.Popen(
        [sys.executable, "-m", "django", *args, f"--settings={SETTINGS}"],
        env=child_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_worker(name, **environment):
    """A real ``celery worker`` process (one pool process) for the test's database and Redis."""
    env = child_environment()
    env.update({key: str(value) for key, value in environment.items()})
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "data_encryption.tests.celery_app",
            "worker",
            "--concurrency=1",
            "--pool=prefork",
            f"--hostname={name}@%h",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def pool_children(pid):
    """The pool processes of a worker: the children of its main process."""
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as handle:
            children += [int(child) for child in handle.read().split()]
    return children


def start_writer(seconds, stop_file):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "data_encryption.tests.processes",
            "writer",
            str(seconds),
            stop_file,
        ],
        env=child_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def writer(seconds, stop_file):
    """Update random customers and patients until ``stop_file`` exists (or ``seconds`` pass)."""
    import django

    django.setup()
    from data_encryption.services import EncryptionService
    from data_encryption.tests.testapp.models import Customer, Patient

    customers = list(Customer.objects.values_list("pk", flat=True))
    patients = list(Patient.objects.values_list("pk", flat=True))
    last = {"customer": {}, "patient": {}}
    deadline = time.monotonic() + seconds
    counter = 0
    while time.monotonic() < deadline and not os.path.exists(stop_file):
        counter += 1
        pk = random.choice(customers)
        value = f"written-{counter}"
        Customer.objects.filter(pk=pk).update(_ssn=EncryptionService.encrypt(value))
        last["customer"][pk] = value
        pk = random.choice(patients)
        patient = Patient.objects.get(pk=pk)
        patient.notes = value
        patient.save(update_fields=["notes"])
        last["patient"][pk] = value
        time.sleep(0.002)
    print(json.dumps({"writes": counter, "last": last}))


if __name__ == "__main__":
    if sys.argv[1] == "writer":
        writer(float(sys.argv[2]), sys.argv[3])
