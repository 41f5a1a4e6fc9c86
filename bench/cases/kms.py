"""A master key in AWS KMS (issue 12) against the local one: the provider must stay off the hot
path. KMS is moto's server on loopback (``BENCH_KMS_URL``; ``scripts/bench.sh kms`` starts it).

Each master key has 12 data keys (one primary, eleven decrypt-only) in a SQLite key table of its
own (the ``keys_local`` and ``keys_kms`` databases, chosen by a router), so the two rings differ
only in who unwrapped their keys. Switching between them is a settings change, which drops the
ring and the master keys as a new process would start without them: every sample begins cold,
untimed for the per-value samples. Measured, interleaved: encrypt+decrypt of distinct 64-byte
strings (``EncryptionService``, as the ``value`` case) under each ring, and under the local one
again as a control (its ratio to the baseline is the machine's noise); a cold start (the ring's
load) under each; then, counted by moto's recorder, the KMS calls of one cold start and of 10,000
values after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from django.core.management import call_command
from django.db import models
from django.test.utils import override_settings

from bench.harness import Comparison, Row, Target, Variant, format_seconds, measure, rows
from data_encryption import keys
from data_encryption.models import DataKey, KeyState
from data_encryption.services import EncryptionService

from . import Options

DATA_KEYS = 12
VALUE_BYTES = 64
COUNTED_VALUES = 10_000
LOCAL = "local master key (DB_ENCRYPTION_KEY)"
KMS = "AWS KMS master key (AwsKms, moto on loopback)"
CONTROL = "local master key again (control: the baseline's own ring)"


class KeyTableRouter:
    """Sends this app's tables (the key tables) to ``alias``; the benchmark's own tables stay."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def db_for_read(self, model: type[models.Model], **hints: Any) -> str | None:
        return self.alias if model._meta.app_label == "data_encryption" else None

    db_for_write = db_for_read


class MasterKeySetup:
    """Settings naming one master key, its key table in a database of its own."""

    active: override_settings | None = None  # the one enabled now, of either instance

    def __init__(self, alias: str, **overrides: Any) -> None:
        self.alias = alias
        self.override = override_settings(DATABASE_ROUTERS=[KeyTableRouter(alias)], **overrides)

    def activate(self) -> None:
        """A cold start: the settings change drops the ring and the master keys (and with them
        the KMS client), so the next use loads them as a new process would."""
        deactivate()
        self.override.enable()
        MasterKeySetup.active = self.override

    def warm(self) -> None:
        self.activate()
        EncryptionService.warm_up()


def deactivate() -> None:
    if MasterKeySetup.active is not None:
        MasterKeySetup.active.disable()
        MasterKeySetup.active = None


def build(options: Options) -> list[Row]:
    url = os.environ.get("BENCH_KMS_URL")
    if not url:
        raise RuntimeError(
            "The kms case needs BENCH_KMS_URL, the address of moto's KMS server: run it with "
            "'scripts/bench.sh kms', which starts one on loopback with dummy AWS credentials."
        )
    local = MasterKeySetup("keys_local")
    kms = MasterKeySetup(
        "keys_kms",
        DB_ENCRYPTION_KEY=None,  # KMS alone: no local key even to unwrap
        DATA_ENCRYPTION_MASTER_KEY_PROVIDER={
            "BACKEND": "data_encryption.master_keys.AwsKms",
            "OPTIONS": {"key_id": _create_kms_key(url), "endpoint_url": url},
        },
    )
    try:
        for setup in (local, kms):
            _fill_key_table(setup)
        per_value = _per_value(local, kms, options)
        cold_start = Comparison(
            name=f"cold start, {DATA_KEYS} data keys (the key ring's load)",
            unit="start",
            variants=[
                Variant(LOCAL, EncryptionService.warm_up, setup=local.activate),
                Variant(KMS, EncryptionService.warm_up, setup=kms.activate),
            ],
        )
        table = rows(measure(per_value, options.repeats))
        table += rows(measure(cold_start, options.repeats))
        table += _counted_rows(kms, url, options)
    finally:
        deactivate()
    return table


def _per_value(local: MasterKeySetup, kms: MasterKeySetup, options: Options) -> Comparison:
    texts = _texts(options.iterations)
    return Comparison(
        name=f"{VALUE_BYTES}-byte value, encrypt+decrypt, ring of {DATA_KEYS} data keys",
        operations=len(texts),
        unit="value",
        variants=[
            Variant(LOCAL, _round_trips(texts), setup=local.warm),
            Variant(KMS, _round_trips(texts), Target(max_ratio=1.05), setup=kms.warm),
            # The same work as the baseline: how far this machine moves a ratio of equals.
            Variant(CONTROL, _round_trips(texts), setup=local.warm),
        ],
    )


def _texts(count: int) -> list[str]:
    """``count`` distinct strings of ``VALUE_BYTES`` bytes, the same in every run."""
    rng = random.Random(12)
    texts = [rng.randbytes(VALUE_BYTES // 2).hex() for _ in range(count)]
    assert len(set(texts)) == count and all(len(text.encode()) == VALUE_BYTES for text in texts)
    return texts


def _round_trips(texts: list[str]) -> Callable[[], object]:
    encrypt, decrypt = EncryptionService.encrypt, EncryptionService.decrypt

    def run() -> int:
        same = 0
        for text in texts:
            same += decrypt(encrypt(text)) == text
        return same

    return run


def _fill_key_table(setup: MasterKeySetup) -> None:
    """The setup's key database, migrated, holding a primary and eleven decrypt-only keys."""
    call_command("migrate", database=setup.alias, run_syncdb=True, verbosity=0)
    setup.activate()
    keys.ensure_primary_key(setup.alias)  # made and wrapped by this setup's master key
    while DataKey.objects.using(setup.alias).count() < DATA_KEYS:
        keys.create_data_key(setup.alias, state=KeyState.DECRYPT_ONLY)
    setup.warm()
    assert _round_trips(["x" * VALUE_BYTES])() == 1
    ring = keys.key_ring()
    assert len(ring.ciphers) == DATA_KEYS and not ring.unusable and not ring.refusal, ring


def _counted_rows(kms: MasterKeySetup, url: str, options: Options) -> list[Row]:
    """One cold start and 10,000 values after it, their KMS calls counted by the server."""
    kms.activate()
    with kms_calls(url) as cold_calls:
        start = time.perf_counter()
        ring = keys.warm_up_key_ring()
        seconds = time.perf_counter() - start
    if len(ring.ciphers) != DATA_KEYS or not cold_calls:
        raise RuntimeError(
            f"The counted cold start unwrapped {len(ring.ciphers)} of {DATA_KEYS} keys and the "
            f"server recorded {sum(cold_calls.values())} KMS calls: the count cannot be trusted "
            "(is moto's recorder on? scripts/lib.sh start_moto sets MOTO_RECORDER_FILEPATH)."
        )
    round_trips = _round_trips(_texts(COUNTED_VALUES))
    with kms_calls(url) as warm_calls:
        assert round_trips() == COUNTED_VALUES
    return [
        _count_row(
            f"cold start, {DATA_KEYS} data keys: {KMS}: KMS calls (one start, "
            f"{format_seconds(seconds)})",
            cold_calls,
            DATA_KEYS,
        ),
        _count_row(
            f"{COUNTED_VALUES:,} values (encrypt+decrypt) after the cold start: {KMS}: KMS calls",
            warm_calls,
            0,
        ),
    ]


def _count_row(case: str, calls: Counter[str], most: int) -> Row:
    total = sum(calls.values())
    by_operation = ", ".join(f"{name} {count}" for name, count in sorted(calls.items()))
    passed = total <= most
    return Row(
        case=case,
        median=f"{total} calls" + (f" ({by_operation})" if by_operation else ""),
        ratio="—",
        target=f"≤ {most} calls",
        result="pass" if passed else "**FAIL**",
        passed=passed,
    )


def _create_kms_key(url: str) -> str:
    """A fresh symmetric KMS key on the server, for this run: its ARN."""
    import boto3

    client = boto3.client("kms", endpoint_url=url)
    return str(client.create_key(Description="data_encryption bench")["KeyMetadata"]["Arn"])


@contextlib.contextmanager
def kms_calls(url: str) -> Iterator[Counter[str]]:
    """A ``Counter`` of the KMS operations the server at ``url`` received in the block, by
    name, filled when the block ends; counted by the server itself (moto's recorder), so nothing
    in this process is wrapped. (``data_encryption/tests/kms_server.py`` counts the same way.)"""
    calls: Counter[str] = Counter()
    _moto_api(url, "recorder/reset-recording", b"")
    _moto_api(url, "recorder/start-recording", b"")
    try:
        yield calls
    finally:
        _moto_api(url, "recorder/stop-recording", b"")
        for line in _moto_api(url, "recorder/download-recording").decode().splitlines():
            if line.strip():
                headers = {
                    name.lower(): value for name, value in json.loads(line)["headers"].items()
                }
                service, _, operation = headers.get("x-amz-target", "").partition(".")
                if service == "TrentService":
                    calls[operation] += 1


def _moto_api(url: str, path: str, body: bytes | None = None) -> bytes:
    request = urllib.request.Request(
        f"{url}/moto-api/{path}",
        data=body,
        method="GET" if body is None else "POST",
        headers={"Content-Type": "text/plain"},  # Flask would read a form body as a form
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())
