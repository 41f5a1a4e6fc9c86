"""Peak memory of a conversion: how much a process's peak resident size grows while it converts a
table of a tenth of ``rotation_rows`` plaintext rows, then one of ``rotation_rows`` rows.

Measured as the rotation's memory case measures a rotation (see ``rotation_memory``: a fresh
process per sample, its own high-water mark reset before the conversion, ``VmHWM`` after).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from typing import Any

from django.db import models

from bench.harness import Row

from . import Options
from .rotation_memory import BUDGET_MIB, SAME_WITHIN_MIB, _reset_peak, _status_kib


def build(options: Options) -> list[Row]:
    from bench.benchapp.models import ConversionRecord, SmallConversionRecord
    from bench.cases.conversion import fill_legacy

    growth: dict[int, float] = {}
    table = []
    for model, rows in [
        (SmallConversionRecord, options.rotation_rows // 10),
        (ConversionRecord, options.rotation_rows),
    ]:
        samples = []
        for _ in range(options.memory_repeats):
            fill_legacy(model, rows)
            samples.append(_measure_in_fresh_process(model, options.rotation_batch))
        growth[rows] = statistics.median(sample["after"] - sample["before"] for sample in samples)
        before = statistics.median(sample["before"] for sample in samples)
        after = statistics.median(sample["after"] for sample in samples)
        passed = growth[rows] < BUDGET_MIB
        target = f"< {BUDGET_MIB:.0f} MiB"
        if len(growth) > 1:
            smallest = min(growth)
            passed = passed and growth[rows] - growth[smallest] <= SAME_WITHIN_MIB
            target += f", and ≤ {smallest:,} rows' + {SAME_WITHIN_MIB:.0f} MiB"
        table.append(
            Row(
                case=(
                    f"encrypt_existing peak memory growth: {rows:,} rows, batches of "
                    f"{options.rotation_batch:,} (fresh process)"
                ),
                median=f"{growth[rows]:.1f} MiB (VmHWM {before:.1f} → {after:.1f} MiB)",
                ratio="—",
                target=target,
                result="pass" if passed else "**FAIL**",
                passed=passed,
            )
        )
    return table


def _measure_in_fresh_process(model: type[models.Model], batch_size: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", __name__, model._meta.label, str(batch_size)],
        env=os.environ,  # bench.run put the database, the keys and the backup directory there
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory measurement failed:\n{done.stdout}\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: kib / 1024 for name, kib in result.items() if name != "rows"}


def _child(label: str, batch_size: int) -> dict[str, Any]:
    import django

    django.setup()
    from django.apps import apps
    from django.db import connection

    from bench.cases.conversion import convert
    from data_encryption.keys import key_ring

    connection.ensure_connection()
    key_ring()
    model = apps.get_model(label)
    _reset_peak()
    before = _status_kib("VmHWM")
    rows = convert(model, batch_size)
    return {"rows": rows, "before": before, "after": _status_kib("VmHWM")}


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1], int(sys.argv[2]))))
