"""The benchmark cases, by name. Each builder prepares its data and returns a ``Comparison``.

A new case is a module here with a ``build(options)`` function, registered in ``CASES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from bench.harness import Comparison


@dataclass(frozen=True)
class Options:
    """Sizes shared by every case; ``--quick`` shrinks them for a smoke run."""

    repeats: int = 7
    iterations: int = 20_000  # per-value cases: operations per sample
    rows: int = 10_000  # table cases: rows per table


def _lazy(module: str) -> Callable[[Options], Comparison]:
    # The case modules need Django set up, and a case's data is made only if the case runs.
    def build(options: Options) -> Comparison:
        case: Callable[[Options], Comparison] = import_module(f"{__name__}.{module}").build
        return case(options)

    return build


CASES: dict[str, Callable[[Options], Comparison]] = {
    "value": _lazy("per_value"),
    "load": _lazy("row_load"),
}
