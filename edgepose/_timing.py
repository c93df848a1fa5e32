"""Per-stage wall-clock timing of one pipeline call."""
from __future__ import annotations

from time import perf_counter_ns

__all__ = ["Stopwatch", "STAGES"]

#: The stages a pipeline call reports, in order.
STAGES = ("detect", "preprocess", "inference", "decode")


class Stopwatch:
    """Accumulates the time since the previous lap into named stages (ms)."""

    def __init__(self) -> None:
        self._start = self._last = perf_counter_ns()
        self.laps: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = perf_counter_ns()
        self.laps[stage] = self.laps.get(stage, 0.0) + (now - self._last) / 1e6
        self._last = now

    def result(self) -> dict[str, float]:
        """Every stage (0 if it did not run) and the total, in ms."""
        out = {stage: self.laps.get(stage, 0.0) for stage in STAGES}
        out["total"] = (perf_counter_ns() - self._start) / 1e6
        return out
