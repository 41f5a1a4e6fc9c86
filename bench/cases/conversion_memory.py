"""Peak memory of a conversion: how much a process's peak resident size grows while it converts a
table of a tenth of ``rotation_rows`` plaintext rows, then one of ``rotation_rows`` rows.

Measured as the rotation's memory case measures a rotation, in the same child process (see
``rotation_memory``: a fresh process per sample, its own high-water mark reset before the
conversion, ``VmHWM`` after).
"""

from __future__ import annotations

from bench.harness import Row

from . import Options
from .rotation_memory import peak_growth_rows


def build(options: Options) -> list[Row]:
    from bench.benchapp.models import ConversionRecord, SmallConversionRecord
    from bench.cases.conversion import fill_legacy

    sizes = [
        (SmallConversionRecord, options.rotation_rows // 10),
        (ConversionRecord, options.rotation_rows),
    ]
    return peak_growth_rows("conversion", sizes, fill_legacy, options)
