"""Peak memory of a rotation: how much a process's peak resident size grows while it rotates a
table of a tenth of ``rotation_rows`` rows, then one of ``rotation_rows`` rows.

Every measurement is a fresh process (``python -m bench.cases.rotation_memory rotation <model>
<batch>``) that sets Django up, opens its connection, loads the key ring and imports the
rotation's modules, then reads its peak, runs one rotation of that table alone (as the rotation
case does) and reads its peak again. The growth is the difference: what the rotation added to
the peak. The conversion's memory case measures ``encrypt_existing`` in the same child.

Which peak: ``getrusage().ru_maxrss`` is the obvious one, but on Linux a child process inherits
its parent's peak at ``fork`` and keeps it across ``exec``, so in a child of the benchmark (which
has held a million values) it starts far above anything the rotation reaches and would always
show a growth of 0. So the child resets its own high-water mark (``/proc/self/clear_refs``) and
reads ``VmHWM`` from ``/proc/self/status``, the same peak for this process alone; ``ru_maxrss``
before and after is printed too. A batched walk should need the same memory whatever the size
of the table; ``memory_repeats`` processes per size, the median is reported.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from django.db import models

from bench.harness import Row

from . import Options

BUDGET_MIB = 32.0
# "The same at both sizes": the larger table may raise the peak by at most this much more.
SAME_WITHIN_MIB = 4.0


def build(options: Options) -> list[Row]:
    from bench.benchapp.models import RotationRecord, SmallRotationRecord
    from bench.cases.rotation import fill

    sizes = [
        (SmallRotationRecord, options.rotation_rows // 10),
        (RotationRecord, options.rotation_rows),
    ]
    return peak_growth_rows("rotation", sizes, fill, options)


def peak_growth_rows(
    work: str,
    sizes: Sequence[tuple[type[models.Model], int]],
    fill: Callable[[type[models.Model], int], None],
    options: Options,
) -> list[Row]:
    """One row per table size: the median growth of ``memory_repeats`` fresh processes doing
    ``work`` (``"rotation"`` or ``"conversion"``), each on the table ``fill`` has just filled."""
    growth: dict[int, float] = {}
    table = []
    for model, rows in sizes:
        samples = []
        for _ in range(options.memory_repeats):
            fill(model, rows)
            samples.append(measure_in_fresh_process(work, model, options.rotation_batch))
        growth[rows] = statistics.median(sample["after"] - sample["before"] for sample in samples)
        median = {
            name: statistics.median(sample[name] for sample in samples) for name in samples[0]
        }
        passed = growth[rows] < BUDGET_MIB
        target = f"< {BUDGET_MIB:.0f} MiB"
        if len(growth) > 1:
            smallest = min(growth)
            passed = passed and growth[rows] - growth[smallest] <= SAME_WITHIN_MIB
            target += f", and ≤ {smallest:,} rows' + {SAME_WITHIN_MIB:.0f} MiB"
        table.append(
            Row(
                case=(
                    f"{'encrypt_existing' if work == 'conversion' else work} peak memory growth: "
                    f"{rows:,} rows, batches of {options.rotation_batch:,} (fresh process)"
                ),
                median=(
                    f"{growth[rows]:.1f} MiB (VmHWM {median['before']:.1f} → "
                    f"{median['after']:.1f} MiB; ru_maxrss {median['maxrss_before']:.1f} → "
                    f"{median['maxrss_after']:.1f} MiB)"
                ),
                ratio="—",
                target=target,
                result="pass" if passed else "**FAIL**",
                passed=passed,
            )
        )
    return table


def measure_in_fresh_process(
    work: str, model: type[models.Model], batch_size: int
) -> dict[str, float]:
    """The child's peaks before and after its ``work`` (``"rotation"`` or ``"conversion"``) of
    ``model``'s table, in MiB."""
    done = subprocess.run(
        [sys.executable, "-m", __name__, work, model._meta.label, str(batch_size)],
        env=os.environ,  # bench.run put the database, the keys and the backup directory there
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory measurement failed:\n{done.stdout}\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: kib / 1024 for name, kib in result.items() if name != "rows"}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])  # "VmHWM:    65536 kB"
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> None:
    """Make this process's high-water mark its current resident size (Linux 4.0+)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def _child(work: str, label: str, batch_size: int) -> dict[str, Any]:
    import django

    django.setup()
    from django.apps import apps
    from django.db import connection

    import data_encryption.backups  # noqa: F401  (imported by the rotation; not its growth)
    from bench.cases.conversion import convert
    from bench.cases.rotation import rotate
    from data_encryption.keys import key_ring

    connection.ensure_connection()
    key_ring()
    model = apps.get_model(label)
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    _reset_peak()
    before = _status_kib("VmHWM")
    if work == "rotation":
        rows = rotate(model, batch_size)["records_processed"]
    else:
        rows = convert(model, batch_size)
    return {
        "rows": rows,
        "before": before,
        "after": _status_kib("VmHWM"),
        "maxrss_before": maxrss_before,
        "maxrss_after": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
