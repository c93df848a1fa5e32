"""edgepose_export.int8: the one INT8 head decision of ONNX, OpenVINO and TFLite.

The converters' own tests (test_onnx.py, test_openvino.py, test_tflite.py) check it
on real quantizations; here the rule itself, on given measurements.
"""
from __future__ import annotations

import json
import math

import pytest

from edgepose_export.api import Tolerance
from edgepose_export.int8 import (Int8Decision, decide_int8_head, describe_int8, error_figures,
                                  head_candidates)

TOL = Tolerance(max_keypoint_error_px=3.0, min_oks=0.9)
OK = {"keypoint_error_px_mean": 1.0, "keypoint_error_px_p95": 2.0, "oks_mean": 0.99}
BAD = {"keypoint_error_px_mean": 9.0, "keypoint_error_px_p95": 12.0, "oks_mean": 0.5}
WORSE = {"keypoint_error_px_mean": 20.0, "keypoint_error_px_p95": 30.0, "oks_mean": 0.2}


class Measured:
    """``measure(depth)`` from a table, remembering which depths were measured."""

    def __init__(self, table):
        self.table, self.calls = table, []

    def __call__(self, depth):
        self.calls.append(depth)
        return self.table[depth]


def decide(table, tolerance=TOL, candidates=None):
    measure = Measured(table)
    decision = decide_int8_head(list(table) if candidates is None else candidates, measure,
                                tolerance)
    return decision, measure.calls


def test_the_fully_quantized_model_is_kept_when_within_and_nothing_else_is_measured():
    decision, calls = decide({0: OK, 1: OK})
    assert calls == [0]
    assert (decision.head, decision.head_depth, decision.within_tolerance) == ("int8", 0, True)
    assert decision.reason.startswith("the fully quantized model is within the tolerance")


def test_the_first_float_head_within_the_tolerance_is_kept():
    decision, calls = decide({0: BAD, 1: BAD, 2: OK, 4: OK}, candidates={
        0: [], 1: ["cls"], 2: ["cls", "mlp"], 4: ["cls", "mlp", "conv"]})
    assert calls == [0, 1, 2]
    assert (decision.head, decision.head_depth, decision.within_tolerance) == ("float", 2, True)
    assert decision.float_ops == ["cls", "mlp"]
    assert "head kept in float (2 operations, 2 weighted layer(s)" in decision.reason
    assert "the float head is within it" in decision.reason


@pytest.mark.parametrize("full, head, kept", [
    (OK, OK, 0), (BAD, OK, 1), (WORSE, BAD, 1), (BAD, WORSE, 0)])
def test_two_candidates_as_the_onnx_converter_has(full, head, kept):
    with_warning = not (full is OK or head is OK)
    if with_warning:
        with pytest.warns(RuntimeWarning, match="INT8 breaks the tolerance"):
            decision, _ = decide({0: full, 1: head})
    else:
        decision, _ = decide({0: full, 1: head})
    assert decision.head_depth == kept and decision.head == ("int8" if kept == 0 else "float")
    assert decision.within_tolerance == (not with_warning)


def test_when_nothing_is_within_the_lowest_error_is_kept_and_a_warning_says_so():
    with pytest.warns(RuntimeWarning, match=r"even with the head in float \(attempts: \["):
        decision, calls = decide({0: WORSE, 1: BAD, 2: WORSE})
    assert calls == [0, 1, 2] and decision.head_depth == 1 and not decision.within_tolerance
    assert decision.reason.startswith("no candidate is within the tolerance")
    with pytest.warns(RuntimeWarning):
        decision, _ = decide({0: BAD, 1: WORSE})
    assert decision.head == "int8" and "keeping the head in float did not reduce" in \
        decision.reason


def test_a_single_candidate_that_breaks_the_tolerance_says_no_head_was_separable():
    with pytest.warns(RuntimeWarning):
        decision, _ = decide({0: BAD})
    assert decision.head == "int8" and not decision.within_tolerance
    assert "no head could be separated" in decision.reason


def test_oks_is_judged_only_where_the_format_measures_it():
    low_oks = {"keypoint_error_px_mean": 1.0, "oks_mean": 0.5}
    with pytest.warns(RuntimeWarning):
        decision, _ = decide({0: low_oks})
    assert not decision.attempts[0].passed and "OKS >= 0.9" in decision.reason
    # OpenVINO and TFLite measure the keypoint error only
    decision, _ = decide({0: {"keypoint_error_px_mean": 1.0}})
    assert decision.within_tolerance and decision.attempts[0].oks_mean is None
    assert "OKS" not in decision.reason
    assert decision.to_provenance()["tolerance"] == {"max_keypoint_error_px": 3.0,
                                                     "min_oks": None}


def test_an_undefined_error_never_passes_and_ranks_last():
    nan = {"keypoint_error_px_mean": math.nan, "oks_mean": math.nan}
    with pytest.warns(RuntimeWarning):
        decision, _ = decide({0: nan, 1: BAD})
    assert decision.attempts[0].keypoint_error_px_mean is None
    assert decision.head_depth == 1
    assert decision.attempts[0].to_dict()["keypoint_error_px_mean"] is None


def test_the_limit_itself_is_within():
    edge = {"keypoint_error_px_mean": 3.0, "oks_mean": 0.9}
    decision, _ = decide({0: edge})
    assert decision.within_tolerance


def test_candidates_must_start_fully_quantized():
    with pytest.raises(ValueError, match=r"must start with head depth 0 \(fully quantized\), "
                                         r"got \[1, 2\]"):
        decide_int8_head([1, 2], Measured({}), TOL)
    with pytest.raises(ValueError, match=r"must start with head depth 0"):
        decide_int8_head([], Measured({}), TOL)
    with pytest.raises(ValueError, match=r"distinct depths >= 0, got \[0, 1, 1\]"):
        decide_int8_head([0, 1, 1], Measured({}), TOL)


def test_one_provenance_format():
    decision, _ = decide({0: BAD, 1: OK}, candidates={0: ["kept"], 1: ["kept", "head"]})
    record = decision.to_provenance(engine="e", measured_on="calibration tensors", inputs=7)
    assert json.loads(json.dumps(record, allow_nan=False)) == record
    assert set(record) == {"head", "head_depth", "within_tolerance", "reason", "tolerance",
                           "float_ops", "attempts", "engine", "measured_on", "inputs"}
    assert record["tolerance"] == {"max_keypoint_error_px": 3.0, "min_oks": 0.9}
    assert record["float_ops"] == ["kept", "head"]
    assert record["attempts"] == [
        {"head_depth": 0, "float_ops": 1, "keypoint_error_px_mean": 9.0,
         "keypoint_error_px_p95": 12.0, "oks_mean": 0.5, "passed": False},
        {"head_depth": 1, "float_ops": 2, "keypoint_error_px_mean": 1.0,
         "keypoint_error_px_p95": 2.0, "oks_mean": 0.99, "passed": True}]
    assert isinstance(decision, Int8Decision) and decision.chosen is decision.attempts[1]
    line = describe_int8(record)
    assert line.startswith("INT8 head kept in float (head depth 1, 2 float ops); measured on 7 "
                           "calibration inputs: depth 0: 9.00 px, OKS 0.500; depth 1: 1.00 px")


def test_head_candidates_keep_only_heads_that_grow():
    heads = {1: ["a"], 2: ["a"], 4: ["a", "b", "c"], 8: ["a", "b", "c"]}
    got = head_candidates(heads.__getitem__, (1, 2, 4, 8), always_float=["x"])
    assert got == {0: ["x"], 1: ["x", "a"], 4: ["x", "a", "b", "c"]}
    # an empty head (nothing separable) is no candidate; neither are depths < 1
    assert head_candidates(lambda d: [], (1, 2)) == {0: []}
    assert head_candidates(heads.__getitem__, (0, -1, 1)) == {0: [], 1: ["a"]}


def test_error_figures_mean_and_p95():
    import numpy as np

    errors = np.arange(101, dtype=np.float64)
    assert error_figures(errors) == {"keypoint_error_px_mean": 50.0,
                                     "keypoint_error_px_p95": 95.0}
    assert error_figures(np.zeros(0)) == {"keypoint_error_px_mean": 0.0,
                                          "keypoint_error_px_p95": 0.0}
