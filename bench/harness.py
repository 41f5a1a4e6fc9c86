"""The measuring harness: variants of one case timed side by side, compared by median.

A ``Comparison`` is one case (say, "load 10,000 rows") done several ways. Its first ``Variant`` is
the baseline. ``measure`` times every variant in the same process, interleaved: each repeat runs
every variant once, in an order that rotates between repeats, so drift on a shared machine lands
on all variants alike. Times are medians of the repeats; ratios are medians of the per-repeat
ratios, and a ``Target`` bounds one variant's ratio to another's, the only kind of claim a noisy
machine supports.
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Target:
    """The variant's time over ``reference``'s must lie within ``[min_ratio, max_ratio]``.

    ``reference`` names another variant of the same comparison; ``None`` means the baseline.
    """

    max_ratio: float | None = None
    min_ratio: float | None = None
    reference: str | None = None

    def met(self, ratio: float) -> bool:
        if self.max_ratio is not None and ratio > self.max_ratio:
            return False
        return self.min_ratio is None or ratio >= self.min_ratio

    def describe(self, reference_name: str) -> str:
        bounds = []
        if self.min_ratio is not None:
            bounds.append(f"≥ {self.min_ratio:.2f}x")
        if self.max_ratio is not None:
            bounds.append(f"≤ {self.max_ratio:.2f}x")
        return f"{' and '.join(bounds)} {reference_name}"


@dataclass(frozen=True)
class Variant:
    """One way of doing the case; ``run`` is one timed sample (``Comparison.operations`` ops)."""

    name: str
    run: Callable[[], object]
    target: Target | None = None


@dataclass(frozen=True)
class Comparison:
    """One case, its variants (the first is the baseline), and what one operation is."""

    name: str
    variants: Sequence[Variant]
    operations: int = 1  # per sample; reported times are per operation
    unit: str = "op"

    @property
    def baseline(self) -> Variant:
        return self.variants[0]


@dataclass
class Measurement:
    """The samples (seconds per operation) of every variant of one comparison."""

    comparison: Comparison
    samples: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.samples[name])

    def ratio(self, name: str, reference: str | None = None) -> float:
        """The median over repeats of ``name``'s time over ``reference``'s in the same repeat.

        Pairing by repeat cancels drift slower than one repeat (another job starting, the
        host throttling), which a ratio of two medians would keep.
        """
        pairs = zip(
            self.samples[name],
            self.samples[reference or self.comparison.baseline.name],
            strict=True,
        )
        return statistics.median(mine / theirs for mine, theirs in pairs)


def measure(comparison: Comparison, repeats: int) -> Measurement:
    """Run every variant once untimed (caches, key ring, page cache), then ``repeats`` rounds."""
    variants = list(comparison.variants)
    for variant in variants:
        variant.run()
    result = Measurement(comparison, {variant.name: [] for variant in variants})
    for repeat in range(repeats):
        shift = repeat % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            result.samples[variant.name].append(_time_once(variant) / comparison.operations)
    return result


def _time_once(variant: Variant) -> float:
    # Collect first so no variant pays for garbage another one left; the collector stays on
    # during the sample, as it would in an application.
    gc.collect()
    start = time.perf_counter()
    variant.run()
    return time.perf_counter() - start


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    case: str
    median: str
    ratio: str
    target: str
    result: str
    passed: bool | None


def rows(measurement: Measurement) -> list[Row]:
    comparison = measurement.comparison
    baseline = comparison.baseline.name
    table = []
    for variant in comparison.variants:
        name = f"{variant.name} (baseline)" if variant.name == baseline else variant.name
        target_text, result_text, passed = "—", "—", None
        if variant.target is not None:
            reference = variant.target.reference or baseline
            ratio = measurement.ratio(variant.name, reference)
            passed = variant.target.met(ratio)
            target_text = variant.target.describe(reference)
            result_text = "pass" if passed else "**FAIL**"
            if reference != baseline:
                result_text += f" ({ratio:.2f}x)"
        table.append(
            Row(
                case=f"{comparison.name}: {name}",
                median=f"{format_seconds(measurement.median(variant.name))}/{comparison.unit}",
                ratio=f"{measurement.ratio(variant.name):.2f}x",
                target=target_text,
                result=result_text,
                passed=passed,
            )
        )
    return table


def markdown_table(table: Sequence[Row]) -> str:
    lines = [
        "| case | median | vs baseline | target | result |",
        "|---|---:|---:|---|---|",
    ]
    lines += [f"| {r.case} | {r.median} | {r.ratio} | {r.target} | {r.result} |" for r in table]
    return "\n".join(lines)


def format_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def profile(variant: Variant, limit: int = 15) -> str:
    """The ``limit`` functions with the most time of their own in one run of ``variant``."""
    profiler = cProfile.Profile()
    profiler.runcall(variant.run)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats(pstats.SortKey.TIME).print_stats(limit)
    return out.getvalue()
