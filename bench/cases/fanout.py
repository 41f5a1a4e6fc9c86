"""Fan-out: the same scheduled rotation on one Celery worker and on two, side by side.

PostgreSQL only, with a Redis broker (``BENCH_REDIS_URL``; ``scripts/bench.sh`` starts one). The
table is ``RotationRecord`` with ``fanout_rows`` rows (400,000 by default) of one encrypted
11-byte value. A sample is one real rotation through the task a project schedules:

1. untimed: ``VACUUM`` and ``CHECKPOINT`` the table, start N ``celery worker`` processes (one
   pool process each, ``worker_prefetch_multiplier = 1``, ``KEY_CACHE_SECONDS = 0`` so the run
   does not wait for key rings, and ``DATA_ENCRYPTION_SERVICE`` limited to this table, see
   ``bench/services.py``) and wait until all N answer a ping;
2. ``rotate_encryption_key_task.delay(force=True)``: a worker takes the lock, backs the keys up,
   activates the new key and plans the table's chunks (``CHUNK_ROWS``: the app's default of
   100,000, so four full chunks and an empty open-ended one; 12,500 with ``--quick``), then
   sends them to the workers in a chord whose final step takes the census and records the run;
3. the bench waits for the run to end, checks it completed with every row re-encrypted, and
   stops the workers.

The sample is the *re-encryption walk*, read from the ledger the workers wrote, not from a clock
in this process: from the first chunk's ``started_at`` to the last chunk's ``finished_at``. The
whole run (``RotationRun.started_at`` to ``finished_at``: backup, activation, planning, walk,
census, ledger and email; the serial parts do not get faster with more workers) is reported
beside it. Rounds alternate which variant goes first; the ratio is the median of per-round
ratios.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.db.models import Max, Min

from bench.benchapp.models import RotationRecord
from bench.harness import Comparison, Row, Target, Timed, Variant
from data_encryption.models import RotationChunk, RotationRun, RunStatus

from . import Options
from .rotation import _settle, fill

ONE = "1 worker: re-encryption walk"
TWO = "2 workers: re-encryption walk"
WHOLE = "whole run"
SPEEDUP = 1.6  # the target: two workers give at least 1.6x one worker's throughput


def build(options: Options) -> Comparison | list[Row]:
    if connection.vendor != "postgresql" or not os.environ.get("BENCH_REDIS_URL"):
        return [
            Row(
                case="fan-out over Celery workers",
                median="not run",
                ratio="—",
                target=f"2 workers ≥ {SPEEDUP}x 1 worker's throughput",
                result="needs --database postgres and BENCH_REDIS_URL (scripts/bench.sh)",
                passed=None,
            )
        ]
    rows = options.fanout_rows
    fill(RotationRecord, rows)
    return Comparison(
        name=(
            f"Celery fan-out, rotate {rows:,} rows in chunks of {options.fanout_chunk_rows:,}, "
            "PostgreSQL"
        ),
        operations=rows,
        unit="row",
        rate=True,
        repeats=options.fanout_repeats,
        variants=[
            _variant(ONE, 1, options, None),
            _variant(TWO, 2, options, Target(max_ratio=1 / SPEEDUP)),
        ],
    )


def _variant(name: str, workers: int, options: Options, target: Target | None) -> Variant:
    pool = _Workers(workers, options.rotation_batch, options.fanout_chunk_rows)
    settle = _settle(RotationRecord)

    def setup() -> None:
        settle()
        pool.start()

    def run() -> Timed:
        try:
            return _rotate_on_workers(options.fanout_rows)
        except Exception as exc:
            raise RuntimeError(f"{name}: {exc}\nworkers' stderr:\n{pool.output()}") from exc
        finally:
            pool.stop()

    return Variant(name, run, target, setup=setup, warmup=False)


def _rotate_on_workers(rows: int, timeout: float = 900.0) -> Timed:
    from data_encryption.tasks import rotate_encryption_key_task

    previous = RotationRun.objects.order_by("-id").values_list("id", flat=True).first() or 0
    started = rotate_encryption_key_task.delay(force=True).get(timeout=timeout)
    assert started.get("status") == RunStatus.RUNNING, started  # it fanned out
    deadline = time.monotonic() + timeout
    while True:
        run = RotationRun.objects.filter(pk=started["run_id"]).first()
        if run is not None and run.status != RunStatus.RUNNING:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"rotation {started['run_id']} did not end within {timeout:.0f} s")
        time.sleep(0.25)  # the times come from the ledger, so polling slowly costs nothing
    assert run.pk > previous and run.status == RunStatus.COMPLETED, (run.status, run.reason)
    assert run.records_reencrypted == rows and run.failed_records == 0, run.records_reencrypted
    assert run.finished_at is not None
    walk = RotationChunk.objects.filter(run=run).aggregate(
        first=Min("started_at"), last=Max("finished_at")
    )
    return Timed(
        (walk["last"] - walk["first"]).total_seconds(),
        {WHOLE: (run.finished_at - run.started_at).total_seconds()},
    )


class _Workers:
    """N ``celery worker`` processes of ``bench.celery_app`` against the bench's database."""

    def __init__(self, count: int, batch_size: int, chunk_rows: int) -> None:
        self.count, self.batch_size, self.chunk_rows = count, batch_size, chunk_rows
        self.processes: list[subprocess.Popen[bytes]] = []
        # Their stderr (Celery's warnings, a traceback) is shown only if something goes wrong.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (kept for the whole run)

    def start(self) -> None:
        from bench.celery_app import app

        env = {
            **os.environ,  # bench.run put the database, the keys and the backup directory there
            "BENCH_KEY_CACHE_SECONDS": "0",
            "BENCH_BATCH_SIZE": str(self.batch_size),
            "BENCH_CHUNK_ROWS": str(self.chunk_rows),
            "BENCH_ONE_TABLE_SERVICE": "1",
        }
        app.control.purge()
        for index in range(self.count):
            self.processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "bench.celery_app",
                        "worker",
                        "--concurrency=1",
                        "--pool=prefork",
                        f"--hostname=bench{index}@%h",
                        "--loglevel=WARNING",
                        "--without-gossip",
                        "--without-mingle",
                        "--without-heartbeat",
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=self.log,
                    start_new_session=True,  # so stop() can signal the pool process too
                )
            )
        try:
            _wait_until(lambda: len(app.control.ping(timeout=0.5) or []) >= self.count, 60.0)
        except BaseException:  # Ctrl-C included: they run in their own sessions
            self.stop()
            raise

    def output(self) -> str:
        """The end of what the workers wrote to stderr."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        self.processes = []
        self.log.seek(0)
        self.log.truncate()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Signal a worker and its pool process (its session's group), if any of them is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def _wait_until(condition: Callable[[], Any], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Celery workers did not answer within {seconds:.0f} s")
