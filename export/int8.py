"""One INT8 decision for every format: the head stays in float only where measurement says so.

Pose heads are where INT8 breaks (a SimCC model went from 5 px to 50 px of
keypoint error under NNCF's ``PERFORMANCE`` preset in a trial here; MMPose
issues 3148 and 3240). So every converter (ONNX, OpenVINO, TFLite) quantizes
the model fully first, measures it against the float model on the calibration
tensors and, when it breaks the tolerance, quantizes again with the head kept
in float, at increasing depth where the format can say how deep:

* ``head_depth`` 0: fully quantized (only nodes the caller excludes stay float);
* ``head_depth`` d >= 1: the head of ``d`` weighted layers from the outputs
  kept in float (OpenVINO: :func:`edgepose_export.openvino.head_scope`; TFLite:
  :func:`edgepose_export.tflite.tflite_head_scope`); ONNX has one head,
  :func:`edgepose_export.onnx.head_nodes`, depth 1.

:func:`decide_int8_head` takes the candidates in that order, stops at the first
within the tolerance and, when none is, keeps the one with the lowest mean
keypoint error. Its :class:`Int8Decision` goes into the card as
``provenance["int8"]`` in one format for the three (:meth:`Int8Decision.to_provenance`).
"""
from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgepose_export.api import Tolerance

__all__ = ["Int8Attempt", "Int8Decision", "decide_int8_head", "head_candidates",
           "error_figures", "describe_int8"]


def _number(value: Any) -> float | None:
    """A finite float rounded for the card, or None (undefined, not measured)."""
    if value is None:
        return None
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None


@dataclass(frozen=True)
class Int8Attempt:
    """One quantized candidate, measured against the float model.

    Attributes:
        head_depth: 0 fully quantized; d >= 1 the head of d weighted layers in float.
        float_ops: the names of the operations kept in float.
        keypoint_error_px_mean, keypoint_error_px_p95: keypoint error in
            model-input pixels (None: undefined).
        oks_mean: mean OKS against the float model (None: not measured by
            this format's measurement, or undefined).
        passed: within the tolerance.
    """

    head_depth: int
    float_ops: tuple[str, ...]
    keypoint_error_px_mean: float | None
    keypoint_error_px_p95: float | None
    oks_mean: float | None
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"head_depth": self.head_depth, "float_ops": len(self.float_ops),
                "keypoint_error_px_mean": self.keypoint_error_px_mean,
                "keypoint_error_px_p95": self.keypoint_error_px_p95,
                "oks_mean": self.oks_mean, "passed": self.passed}


@dataclass(frozen=True)
class Int8Decision:
    """Which candidate an INT8 conversion kept, and the measurements behind it.

    Attributes:
        head: ``"int8"`` (fully quantized kept) or ``"float"`` (a head kept in float).
        head_depth: the kept candidate's depth (0 when ``head == "int8"``).
        within_tolerance: the kept candidate is within ``tolerance``.
        reason: why, in words.
        tolerance: the limits the candidates were judged by.
        attempts: every candidate measured, in the order tried.
        oks_judged: the format's measurement gives OKS, and ``tolerance.min_oks``
            was checked (else only the keypoint error was).
    """

    head: str
    head_depth: int
    within_tolerance: bool
    reason: str
    tolerance: Tolerance
    attempts: tuple[Int8Attempt, ...] = field(default_factory=tuple)
    oks_judged: bool = True

    @property
    def chosen(self) -> Int8Attempt:
        """The attempt that was kept."""
        return next(a for a in self.attempts if a.head_depth == self.head_depth)

    @property
    def float_ops(self) -> list[str]:
        """The names of the operations the kept model computes in float."""
        return list(self.chosen.float_ops)

    def to_provenance(self, **extra: Any) -> dict[str, Any]:
        """The card's ``provenance["int8"]``: one format for ONNX, OpenVINO and TFLite.

        ``extra`` adds what the format says about itself (``engine``,
        ``measured_on``, ``measure``, ``inputs``).
        """
        return {"head": self.head, "head_depth": self.head_depth,
                "within_tolerance": self.within_tolerance, "reason": self.reason,
                "tolerance": {"max_keypoint_error_px": float(self.tolerance.max_keypoint_error_px),
                              "min_oks": (float(self.tolerance.min_oks) if self.oks_judged
                                          else None)},
                "float_ops": self.float_ops,
                "attempts": [a.to_dict() for a in self.attempts], **extra}


def error_figures(errors: np.ndarray) -> dict[str, float]:
    """Mean and p95 of per-keypoint errors (0 when no keypoint counts), for a ``measure``."""
    errors = np.asarray(errors, np.float64)
    if errors.size == 0:
        return {"keypoint_error_px_mean": 0.0, "keypoint_error_px_p95": 0.0}
    return {"keypoint_error_px_mean": float(errors.mean()),
            "keypoint_error_px_p95": float(np.percentile(errors, 95))}


def head_candidates(scope: Callable[[int], Sequence[str]], depths: Sequence[int],
                    always_float: Sequence[str] = ()) -> dict[int, list[str]]:
    """``{head_depth: names kept in float}``: 0 first, then each depth of ``depths``
    (>= 1, in order) whose head is larger than the one before (a head that does
    not grow has nothing new to try). ``always_float`` stay float in every one."""
    fixed = list(always_float)
    candidates = {0: fixed}
    previous = 0
    for depth in depths:
        if depth < 1 or depth in candidates:
            continue
        names = [n for n in scope(depth) if n not in set(fixed)]
        if len(names) <= previous:
            continue
        previous = len(names)
        candidates[depth] = fixed + names
    return candidates


def _limits(tolerance: Tolerance, with_oks: bool) -> str:
    text = f"mean keypoint error <= {tolerance.max_keypoint_error_px} px"
    return text + (f", OKS >= {tolerance.min_oks}" if with_oks else "")


def _passes(err: float | None, oks: float | None, tolerance: Tolerance, oks_measured: bool
            ) -> bool:
    if err is None or err > tolerance.max_keypoint_error_px:
        return False
    if oks_measured:
        return oks is not None and oks >= tolerance.min_oks
    return True


def decide_int8_head(candidates: Mapping[int, Sequence[str]] | Sequence[int],
                     measure: Callable[[int], Mapping[str, Any]],
                     tolerance: Tolerance = Tolerance()) -> Int8Decision:
    """Tries the candidates in order; keeps the first within ``tolerance``.

    Args:
        candidates: head depths in order, fully quantized (0) first, or
            ``{depth: names kept in float}`` (:func:`head_candidates`).
        measure: ``measure(depth)`` quantizes that candidate and measures it
            against the float model: ``{"keypoint_error_px_mean": float,
            "keypoint_error_px_p95": float, "oks_mean": float (optional: a
            format that does not measure OKS leaves it out, and OKS is then
            not judged), "float_ops": [names] (optional)}``. NaN means
            undefined, which never passes.
        tolerance: the limits.

    Returns:
        The :class:`Int8Decision`. When no candidate is within the tolerance,
        the one with the lowest mean keypoint error is kept (the earliest on
        a tie) and a RuntimeWarning says so.

    Raises:
        ValueError: no candidates, or the first is not depth 0.
    """
    depths = list(candidates)
    if not depths or depths[0] != 0:
        raise ValueError(
            f"candidates must start with head depth 0 (fully quantized), got {depths}.")
    if any(d < 0 for d in depths) or len(set(depths)) != len(depths):
        raise ValueError(f"candidates must be distinct depths >= 0, got {depths}.")
    names = candidates if isinstance(candidates, Mapping) else {}
    attempts: list[Int8Attempt] = []
    oks_measured = False
    for depth in depths:
        figures = measure(depth)
        oks_measured = "oks_mean" in figures
        err, oks = _number(figures["keypoint_error_px_mean"]), _number(figures.get("oks_mean"))
        ops = figures.get("float_ops", names.get(depth, ()))
        attempts.append(Int8Attempt(
            head_depth=depth, float_ops=tuple(ops), keypoint_error_px_mean=err,
            keypoint_error_px_p95=_number(figures.get("keypoint_error_px_p95")), oks_mean=oks,
            passed=_passes(err, oks, tolerance, oks_measured)))
        if attempts[-1].passed:
            break
    limits = _limits(tolerance, oks_measured)
    last = attempts[-1]
    if last.passed:
        chosen = last
        if chosen.head_depth == 0:
            reason = f"the fully quantized model is within the tolerance ({limits})"
        else:
            reason = (f"head kept in float ({len(chosen.float_ops)} operations, "
                      f"{chosen.head_depth} weighted layer(s) from the outputs): the fully "
                      f"quantized model breaks the tolerance ({limits}); the float head is "
                      "within it")
    else:
        chosen = min(attempts, key=lambda a: math.inf if a.keypoint_error_px_mean is None
                     else a.keypoint_error_px_mean)
        if len(attempts) == 1:
            reason = (f"the fully quantized model breaks the tolerance ({limits}), and no head "
                      "could be separated from the rest of the graph")
        elif chosen.head_depth == 0:
            reason = (f"no candidate is within the tolerance ({limits}); the fully quantized "
                      "model has the lowest keypoint error, keeping the head in float did "
                      "not reduce it")
        else:
            reason = (f"no candidate is within the tolerance ({limits}); head kept in float "
                      f"({len(chosen.float_ops)} operations, {chosen.head_depth} weighted "
                      "layer(s) from the outputs), the lowest keypoint error")
        warnings.warn(
            f"INT8 breaks the tolerance ({limits}) even with the head in float (attempts: "
            f"{json.dumps([a.to_dict() for a in attempts])}). Use fp16, or more and more "
            "varied calibration images.", RuntimeWarning, stacklevel=2)
    return Int8Decision(head="int8" if chosen.head_depth == 0 else "float",
                        head_depth=chosen.head_depth, within_tolerance=chosen.passed,
                        reason=reason, tolerance=tolerance, attempts=tuple(attempts),
                        oks_judged=oks_measured)


def describe_int8(record: Mapping[str, Any]) -> str:
    """One line for people from a card's ``provenance["int8"]``."""
    def figures(a: Mapping[str, Any]) -> str:
        err, oks = a.get("keypoint_error_px_mean"), a.get("oks_mean")
        text = f"depth {a['head_depth']}: {'-' if err is None else f'{err:.2f}'} px"
        return text + ("" if oks is None else f", OKS {oks:.3f}")

    inputs = record.get("inputs")
    kind = ("calibration" if str(record.get("measured_on", "calibration")).startswith(
        "calibration") else "held-out")  # measure_inputs: tensors calibration did not see
    on = f" on {inputs} {kind} inputs" if inputs is not None else ""
    return (f"INT8 head kept in {record['head']} (head depth {record['head_depth']}, "
            f"{len(record.get('float_ops', []))} float ops); measured{on}: "
            f"{'; '.join(figures(a) for a in record.get('attempts', []))}; {record['reason']}")
