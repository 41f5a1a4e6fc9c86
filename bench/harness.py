"""The measuring harness: variants of one case timed side by side, compared by median.

A ``Comparison`` is one case (say, "load 10,000 rows") done several ways. Its first ``Variant`` is
the baseline. ``measure`` times every variant in the same process, interleaved: each repeat runs
every variant once, in an order that rotates between repeats, so drift on a shared machine lands
on all variants alike. Times are medians of the repeats; ratios are medians of the per-repeat
ratios, and a ``Target`` bounds one variant's ratio to another's, the only kind of claim a noisy
machine supports.

Some variants are too slow to sample every round (the naive save loop on PostgreSQL takes over a
minute): ``Variant.repeats`` limits them to the first rounds, and their ratios pair only the
rounds they ran in. A variant that times itself (a rotation, whose setup and census are not the
walk being measured) returns ``Timed`` from ``run``; its other parts are reported beside it.
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
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
class Timed:
    """What a ``run`` that times itself returns: the seconds that count as its sample, and other
    parts of the same run by name (reported as rows of their own, with no target)."""

    seconds: float
    parts: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Variant:
    """One way of doing the case; ``run`` is one timed sample (``Comparison.operations`` ops).

    ``operations`` overrides the comparison's count for this variant (per-operation times stay
    comparable). ``setup`` runs untimed before every run of this variant, warm-up included.
    ``repeats`` limits the variant to the first rounds; ``warmup=False`` skips its untimed run.
    """

    name: str
    run: Callable[[], object]
    target: Target | None = None
    operations: int | None = None
    setup: Callable[[], object] | None = None
    repeats: int | None = None
    warmup: bool = True


@dataclass(frozen=True)
class Comparison:
    """One case, its variants (the first is the baseline), and what one operation is."""

    name: str
    variants: Sequence[Variant]
    operations: int = 1  # per sample; reported times are per operation
    unit: str = "op"
    rate: bool = False  # also show operations per second
    repeats: int | None = None  # rounds, when not the run's ``--repeats``

    def operations_of(self, variant: Variant) -> int:
        return variant.operations or self.operations

    @property
    def baseline(self) -> Variant:
        return self.variants[0]


@dataclass
class Measurement:
    """The samples (seconds per operation, by round) of every variant of one comparison, and of
    the parts that self-timed variants reported (named ``"<variant>: <part>"``)."""

    comparison: Comparison
    samples: dict[str, dict[int, float]] = field(default_factory=dict)
    parts: dict[str, list[str]] = field(default_factory=dict)  # variant -> its part names

    def median(self, name: str) -> float:
        return statistics.median(self.samples[name].values())

    def ratio(self, name: str, reference: str | None = None) -> float:
        """The median over rounds of ``name``'s time over ``reference``'s in the same round.

        Pairing by round cancels drift slower than one round (another job starting, the
        host throttling), which a ratio of two medians would keep.
        """
        mine = self.samples[name]
        theirs = self.samples[reference or self.comparison.baseline.name]
        return statistics.median(mine[i] / theirs[i] for i in sorted(mine.keys() & theirs.keys()))


def measure(comparison: Comparison, repeats: int) -> Measurement:
    """Run every variant once untimed (caches, key ring, page cache), then ``repeats`` rounds
    (or the comparison's own number)."""
    repeats = comparison.repeats or repeats
    variants = list(comparison.variants)
    for variant in variants:
        if variant.warmup:
            if variant.setup is not None:
                variant.setup()
            variant.run()
    result = Measurement(comparison, {variant.name: {} for variant in variants})
    for repeat in range(repeats):
        shift = repeat % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            if variant.repeats is not None and repeat >= variant.repeats:
                continue
            operations = comparison.operations_of(variant)
            seconds, parts = _time_once(variant)
            result.samples[variant.name][repeat] = seconds / operations
            for part, part_seconds in parts.items():
                name = f"{variant.name}: {part}"
                result.samples.setdefault(name, {})[repeat] = part_seconds / operations
                if part not in result.parts.setdefault(variant.name, []):
                    result.parts[variant.name].append(part)
    return result


def _time_once(variant: Variant) -> tuple[float, Mapping[str, float]]:
    if variant.setup is not None:
        variant.setup()
    # Collect first so no variant pays for garbage another one left; the collector stays on
    # during the sample, as it would in an application.
    gc.collect()
    start = time.perf_counter()
    outcome = variant.run()
    elapsed = time.perf_counter() - start
    if isinstance(outcome, Timed):
        return outcome.seconds, outcome.parts
    return elapsed, {}


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
        table.append(_row(measurement, variant.name, name, target_text, result_text, passed))
        for part in measurement.parts.get(variant.name, []):
            sample = f"{variant.name}: {part}"
            table.append(_row(measurement, sample, sample, "—", "—", None))
    return table


def _row(
    measurement: Measurement,
    sample: str,
    name: str,
    target: str,
    result: str,
    passed: bool | None,
) -> Row:
    comparison = measurement.comparison
    seconds = measurement.median(sample)
    median = f"{format_seconds(seconds)}/{comparison.unit}"
    if comparison.rate:
        median += f" ({1 / seconds:,.0f} {comparison.unit}s/s)"
    return Row(
        case=f"{comparison.name}: {name}",
        median=median,
        ratio=f"{measurement.ratio(sample):.2f}x",
        target=target,
        result=result,
        passed=passed,
    )


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
    if variant.setup is not None:
        variant.setup()
    profiler = cProfile.Profile()
    profiler.runcall(variant.run)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats(pstats.SortKey.TIME).print_stats(limit)
    return out.getvalue()
