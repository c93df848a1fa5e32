"""Seeded fuzz of the parameters a model card or a caller controls (issue 14).

Every call either returns the NumPy reference's result (the parameters are
all in range) or raises ValueError/TypeError whose message names the bad
parameter (one of them is out of range) -- never a crash, a hang, an
OverflowError from the Cython layer or "the C core rejected its arguments".
Values are drawn from lists of valid and invalid ones, including sizes
beyond int32, thresholds beyond float32 and non-numbers.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgepose import ops
from tests.ops.test_heatmap import TOL_PX, _blobs
from tests.ops.test_paf import assert_same_persons
from tests.paf_reference import group_paf_ref
from tests.references import (
    decode_heatmap_ref,
    decode_simcc_ref,
    nms_boxes_ref,
    oks_nms_ref,
    soft_oks_nms_ref,
)

NAN, INF = float("nan"), float("inf")
SEED = 20261203

# name: (valid values, invalid values)
PAF_PARAMS = {
    "heatmap_threshold": ([-1e39, -1.0, 0.0, 0.1, 0.5, 1e39], [NAN, INF, "x", None]),
    "peak_radius": ([0, 1, 3, 7, 10**7, 2**62, np.int64(2), 4.0], [-1, 1.5, True, "3"]),
    "max_peaks": ([1, 3, 100, 46341, 65536, 2**31, 2**62, 2**70], [0, -5, 2.5, False]),
    "samples": ([2, 5, 10, 200], [1, 0, 1001, 10**9, 2**64]),
    "min_paf_score": ([-1e39, -1.0, 0.05, 0.5, 1e39], [NAN, -INF]),
    "min_good_ratio": ([0.0, 0.5, 0.9, 1.0], [-0.1, 1.1, NAN]),
    "min_parts": ([0, 2, 3, 2**40], [-1, 0.5]),
    "min_person_score": ([-1e39, 0.0, 0.5, 1e39], [INF, NAN]),
    "min_peak_distance": ([0.0, 1.5, 1e39], [-1.0, INF]),
    "distance_prior": ([0.0, 0.5, 1e39], [-1.0, NAN]),
    "stride": ([1.0, 8.0, -2.0, 1e-30], [1e38, NAN]),
    "offset": ([0.0, -0.75, 1e30], [3.5e38, INF]),
}


def _draw(rng, table, n_params, p_invalid):
    """Some parameters of the table: {name: value}, and the invalid names."""
    names = rng.choice(sorted(table), size=n_params, replace=False)
    chosen, invalid = {}, set()
    for name in names:
        valid, bad = table[name]
        if rng.random() < p_invalid:
            chosen[name] = bad[rng.integers(len(bad))]
            invalid.add(name)
        else:
            chosen[name] = valid[rng.integers(len(valid))]
    return chosen, invalid


def _names_one_of(message: str, names) -> bool:
    """The message starts with one of the names (or the stride/offset pair)."""
    heads = set(names) | ({"stride and offset"} if names & {"stride", "offset"} else set())
    return any(message.startswith(h + " ") for h in heads)


def _expect_error_or_result(call, invalid: set, where: str):
    """Runs call(); an error must name an invalid parameter, and a result is
    only allowed when every parameter was valid. Returns the result or None."""
    try:
        result = call()
    except (ValueError, TypeError) as e:
        assert invalid, f"{where}: valid parameters rejected: {e}"
        assert _names_one_of(str(e), invalid), f"{where}: {e!r} names none of {invalid}"
        assert "C core rejected" not in str(e), where
        return None
    assert not invalid, f"{where}: {invalid} accepted"
    return result


def _as_int(value) -> int:
    return int(value)


def test_fuzz_group_paf_parameters():
    rng = np.random.default_rng(SEED)
    for it in range(250):
        h, w = int(rng.integers(3, 14)), int(rng.integers(3, 14))
        hm = rng.random((3, h, w)).astype(np.float32)  # continuous: no ties
        pf = rng.normal(0.0, 1.0, (4, h, w)).astype(np.float32)
        limbs, channels = [(0, 1), (1, 2)], [(0, 1), (2, 3)]
        params, invalid = _draw(rng, PAF_PARAMS, int(rng.integers(1, 6)), 0.25)
        if "stride" in params and "offset" in params and not invalid:
            params["offset"] = 0.0  # 1e30 + 8 * 14 stays valid; keep it simple
        where = f"iteration {it}: {params}"
        got = _expect_error_or_result(
            lambda: ops.group_paf(hm, pf, limbs, channels, **params), invalid, where)
        if got is None:
            continue
        ref = dict(params)  # the reference takes the map-sized equivalents
        for name in ("peak_radius", "max_peaks", "min_parts", "samples"):
            if name in ref:
                ref[name] = _as_int(ref[name])
        if "peak_radius" in ref:
            ref["peak_radius"] = min(ref["peak_radius"], max(h, w))
        if "max_peaks" in ref:
            ref["max_peaks"] = min(ref["max_peaks"], h * w)
        want = group_paf_ref(hm, pf, limbs, channels, **ref)
        assert_same_persons(got, want, where)


HEATMAP_PARAMS = {
    "refine": (["none", "dark", "dark_udp"], ["DARK", "", None]),
    "blur_kernel": ([1, 3, 5, 11, 17, 101, np.int32(7)], [0, 2, -1, 103, 2**70, 11.0, True]),
    "layout": (["NCHW", "NHWC"], ["CHW", "nchw"]),
}


def test_fuzz_decode_heatmap_parameters():
    rng = np.random.default_rng(SEED + 1)
    for it in range(200):
        n, k, h, w = (int(v) for v in rng.integers((1, 1, 8, 8), (3, 4, 24, 24)))
        nchw, _ = _blobs(rng, n, k, h, w)  # the maps the refinements are made for
        params, invalid = _draw(rng, HEATMAP_PARAMS, 3, 0.2)
        if params["refine"] == "none":  # the kernel is ignored: any value is fine
            invalid.discard("blur_kernel")
        layout = params["layout"]
        data = nchw.transpose(0, 2, 3, 1) if layout == "NHWC" else nchw
        where = f"iteration {it}: {params}"
        got = _expect_error_or_result(
            lambda: ops.decode_heatmap(data, params["refine"], params["blur_kernel"],
                                       layout=layout), invalid, where)
        if got is None:
            continue
        kp, sc = got
        want_kp, want_sc = decode_heatmap_ref(nchw, params["refine"],
                                              int(params["blur_kernel"]))
        np.testing.assert_array_equal(sc, want_sc, err_msg=where)
        np.testing.assert_allclose(kp, want_kp, rtol=0, atol=TOL_PX, err_msg=where)


NMS_PARAMS = {
    "threshold": ([-1e39, -0.5, 0.0, 0.3, 0.5, 0.9, 1.0, 1e39], [NAN, INF, -INF, "x"]),
    "max_keep": ([None, 0, 1, 3, 2**70], [-1, 1.5, True]),
}


def _boxes(rng, m, integers):
    xy = rng.uniform(0, 40, (m, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 30, (m, 2))], axis=1)
    if rng.random() < 0.2:
        boxes *= 1e36  # float32 areas would overflow
    return np.round(boxes).astype(np.int64) if integers else boxes.astype(np.float32)


def test_fuzz_nms_parameters():
    rng = np.random.default_rng(SEED + 2)
    sigmas = np.full(5, 0.1, np.float32)
    for it in range(200):
        m = int(rng.integers(0, 15))
        integers = bool(rng.integers(0, 2))
        boxes = _boxes(rng, m, integers)
        scores = rng.integers(0, 5, m) if integers else rng.random(m).astype(np.float32)
        kp = rng.uniform(0, 20, (m, 5, 2)).astype(np.float32)
        areas = rng.uniform(10, 400, m).astype(np.float32)
        params, invalid = _draw(rng, NMS_PARAMS, 2, 0.2)
        t, max_keep = params["threshold"], params["max_keep"]
        where = f"iteration {it}: {params}"
        renamed = {"iou_threshold" if n == "threshold" else n for n in invalid}
        keep = _expect_error_or_result(
            lambda: ops.nms_boxes(boxes, scores, t, max_keep=max_keep), renamed, where)
        limit = m if max_keep is None else min(int(max_keep), m)
        if keep is not None:
            np.testing.assert_array_equal(keep, nms_boxes_ref(boxes, scores, t)[:limit], where)
        keep = _expect_error_or_result(
            lambda: ops.nms_oks(kp, scores, areas, t, sigmas), invalid - {"max_keep"}, where)
        if keep is not None:
            np.testing.assert_array_equal(keep, oks_nms_ref(kp, scores, areas, t, sigmas), where)
        method = "linear" if rng.random() < 0.5 else "gaussian"
        bad = set(invalid)
        if method == "gaussian" and isinstance(t, float) and np.isfinite(t) and t <= 0:
            bad.add("threshold")
        got = _expect_error_or_result(
            lambda: ops.nms_oks_soft(kp, scores, areas, t, sigmas, max_keep=max_keep,
                                     method=method), bad, where)
        if got is not None:
            want = soft_oks_nms_ref(kp, scores, areas, t, sigmas, max_keep=limit, method=method)
            np.testing.assert_array_equal(got[0], want[0], where)
            np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-30, err_msg=where)


@pytest.mark.parametrize("split_ratio, valid", [
    (2.0, True), (1e-30, True), (3e38, True), (np.float16(0.5), True),
    (1e-50, False), (1e39, False), (0.0, False), (-1.0, False), (NAN, False), ("2", True),
    (None, False),
])
def test_decode_simcc_split_ratio(split_ratio, valid):
    rng = np.random.default_rng(SEED + 3)
    x = rng.normal(size=(2, 3, 11)).astype(np.float32)
    y = rng.normal(size=(2, 3, 7)).astype(np.float32)
    got = _expect_error_or_result(lambda: ops.decode_simcc(x, y, split_ratio),
                                  set() if valid else {"split_ratio"}, str(split_ratio))
    if got is not None:
        want = decode_simcc_ref(x, y, float(split_ratio))
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_error_names_match_the_signatures():
    """The fuzz tables use the facade's own parameter names."""
    import inspect
    for func, table in ((ops.group_paf, PAF_PARAMS), (ops.decode_heatmap, HEATMAP_PARAMS)):
        names = set(inspect.signature(func).parameters)
        assert set(table) <= names, set(table) - names
