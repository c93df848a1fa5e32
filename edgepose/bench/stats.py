"""Latency statistics: percentiles, summaries and drift over a sustained run.

Percentiles use linear interpolation between the two nearest ranks (NumPy's
default ``method="linear"``), so ``percentile(x, 90)`` equals
``numpy.percentile(x, 90)``. All times are milliseconds.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["LatencySummary", "PERCENTILES", "drift", "percentile", "summarize", "summarize_stages"]

#: The percentiles every summary reports.
PERCENTILES = (50, 90, 99)

#: A sustained run of at least this many seconds compares its first and last minute.
_MINUTE_S = 60.0
#: Shorter runs compare the first and last fifth of the window.
_WINDOW_FRACTION = 0.2


def _sorted_finite(values: Iterable[float], what: str) -> list[float]:
    data = sorted(float(v) for v in values)
    if not data:
        raise ValueError(f"{what} needs at least one value, got none.")
    bad = [v for v in data if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{what} needs finite values, got {bad[0]!r}.")
    return data


def _percentile_sorted(data: Sequence[float], q: float) -> float:
    rank = (len(data) - 1) * q / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (rank - lo)


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, interpolated linearly
    between the nearest ranks as ``numpy.percentile`` does by default.

    Raises:
        ValueError: no values, a non-finite value, or ``q`` outside [0, 100].
    """
    if not (isinstance(q, (int, float)) and 0.0 <= q <= 100.0):
        raise ValueError(f"q must be a number in [0, 100], got {q!r}.")
    return _percentile_sorted(_sorted_finite(values, "percentile"), float(q))


@dataclass(frozen=True)
class LatencySummary:
    """Summary of one stage's latencies over the timed runs (milliseconds).

    Attributes:
        n: number of runs.
        p50, p90, p99: percentiles (linear interpolation).
        mean, min, max: over the runs.
    """

    n: int
    p50: float
    p90: float
    p99: float
    mean: float
    min: float
    max: float

    def to_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "p50": self.p50, "p90": self.p90, "p99": self.p99,
                "mean": self.mean, "min": self.min, "max": self.max}


def summarize(values_ms: Iterable[float]) -> LatencySummary:
    """p50, p90, p99, mean, min and max of latencies in ms.

    Raises:
        ValueError: no values, or a non-finite value.
    """
    data = _sorted_finite(values_ms, "summarize")
    p50, p90, p99 = (_percentile_sorted(data, q) for q in PERCENTILES)
    return LatencySummary(n=len(data), p50=p50, p90=p90, p99=p99,
                          mean=math.fsum(data) / len(data), min=data[0], max=data[-1])


def drift(start_s: Sequence[float], total_ms: Sequence[float]) -> dict[str, object] | None:
    """Latency drift over a sustained run: p50 early in the window versus late.

    Runs of at least two minutes compare the first minute with the last
    minute; shorter ones compare the first and the last 20% of the window
    (``label`` says which). A slower end (positive ``change_pct``) on a
    device that heats up is thermal throttling.

    Args:
        start_s: when each run started, seconds since the window began.
        total_ms: each run's total latency, ms.

    Returns:
        ``{"label", "window_s", "first_p50_ms", "last_p50_ms", "change_pct",
        "first_n", "last_n"}``, or None if either part holds no run.

    Raises:
        ValueError: the sequences differ in length.
    """
    if len(start_s) != len(total_ms):
        raise ValueError(f"start_s and total_ms must have the same length, got {len(start_s)} "
                         f"and {len(total_ms)}.")
    if not start_s:
        return None
    t0 = start_s[0]
    ends = [s - t0 + ms / 1e3 for s, ms in zip(start_s, total_ms)]
    window = max(ends)
    if window >= 2 * _MINUTE_S:
        span, label = _MINUTE_S, "first minute vs last minute"
    else:
        span, label = _WINDOW_FRACTION * window, "first 20% vs last 20% of the window"
    first = [ms for s, ms in zip(start_s, total_ms) if s - t0 < span]
    last = [ms for s, ms, e in zip(start_s, total_ms, ends) if s - t0 >= window - span]
    if not first or not last:
        return None
    a, b = percentile(first, 50), percentile(last, 50)
    return {"label": label, "window_s": window, "first_p50_ms": a, "last_p50_ms": b,
            "change_pct": 100.0 * (b - a) / a if a > 0 else None,
            "first_n": len(first), "last_n": len(last)}


def summarize_stages(samples: Mapping[str, Sequence[float]]) -> dict[str, LatencySummary]:
    """:func:`summarize` of every stage that has samples."""
    return {stage: summarize(values) for stage, values in samples.items() if len(values)}
