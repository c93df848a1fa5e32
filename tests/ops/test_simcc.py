"""edgepose.ops.decode_simcc against the NumPy reference (tests/references.py)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgepose import ops
from tests.references import decode_simcc_ref

# Also run by .ci/arm64.sh in the emulated aarch64 rootfs (NEON argmax path).
pytestmark = pytest.mark.arm64

WX, WY = 384, 512  # RTMPose 256x192 input, split ratio 2


def _logits(rng: np.random.Generator, n: int, k: int, w: int) -> np.ndarray:
    """SimCC-like logits: a soft peak per row; about a fifth of the rows all negative."""
    bins = np.arange(w)
    centre = rng.uniform(0, w - 1, (n, k, 1))
    peak = rng.uniform(0.05, 1.0, (n, k, 1))
    logits = peak * np.exp(-0.5 * ((bins - centre) / 4.0) ** 2)
    logits += rng.normal(0.0, 0.02, (n, k, w))
    negative = rng.random((n, k, 1)) < 0.2
    logits = np.where(negative, logits - 2.0, logits)
    return logits.astype(np.float32)


def _assert_matches(x, y, split_ratio=2.0):
    kp, sc = ops.decode_simcc(x, y, split_ratio)
    x32 = np.asarray(x).astype(np.float32)
    y32 = np.asarray(y).astype(np.float32)
    ref_kp, ref_sc = decode_simcc_ref(x32, y32, split_ratio)
    assert kp.dtype == np.float32 and sc.dtype == np.float32
    assert kp.shape == ref_kp.shape and sc.shape == ref_sc.shape
    np.testing.assert_array_equal(sc, ref_sc.astype(np.float32))
    np.testing.assert_array_equal(kp, ref_kp)
    return kp, sc


@pytest.mark.parametrize("n", [0, 1, 6])
@pytest.mark.parametrize("k", [1, 17, 133])
def test_random_logits_match_reference(n, k):
    rng = np.random.default_rng(1000 + 10 * n + k)
    x = _logits(rng, n, k, WX)
    y = _logits(rng, n, k, WY)
    kp, sc = _assert_matches(x, y)
    if n:
        # the data exercises both valid and invalid keypoints
        assert (sc > 0).any() and (sc <= 0).any() or k == 1


@pytest.mark.parametrize("split_ratio", [1.0, 2.0, 3.0, 1.7, 0.25])
def test_split_ratio(split_ratio):
    rng = np.random.default_rng(7)
    x = _logits(rng, 3, 17, 96)
    y = _logits(rng, 3, 17, 128)
    kp, sc = ops.decode_simcc(x, y, split_ratio)
    ref_kp, ref_sc = decode_simcc_ref(x, y, split_ratio)
    np.testing.assert_array_equal(sc, ref_sc)
    # The bin index is exact; dividing by the ratio may round differently by
    # one float32 ulp (division vs multiplication by the reciprocal).
    np.testing.assert_allclose(kp, ref_kp, rtol=2.5e-7, atol=0)
    invalid = sc <= 0
    assert invalid.any()
    np.testing.assert_allclose(kp[invalid], np.float32(-1) / np.float32(split_ratio), rtol=2.5e-7)


def test_empty_n_gives_empty_outputs():
    kp, sc = ops.decode_simcc(np.zeros((0, 17, 8), np.float32), np.zeros((0, 17, 9), np.float32))
    assert kp.shape == (0, 17, 2) and sc.shape == (0, 17)
    assert kp.dtype == np.float32 and sc.dtype == np.float32
    kp, sc = ops.decode_simcc(np.zeros((3, 0, 8), np.float32), np.zeros((3, 0, 9), np.float32))
    assert kp.shape == (3, 0, 2) and sc.shape == (3, 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_other_float_dtypes_are_computed_in_float32(dtype):
    rng = np.random.default_rng(11)
    x = _logits(rng, 4, 17, 64).astype(dtype)
    y = _logits(rng, 4, 17, 80).astype(dtype)
    if dtype == np.float64:
        # values that differ in float64 but tie in float32: the first wins
        x[0, 0] = -1.0
        x[0, 0, 10] = 1.0 + 1e-12
        x[0, 0, 3] = 1.0
    _assert_matches(x, y)
    if dtype == np.float64:
        kp, _ = ops.decode_simcc(x, y)
        assert kp[0, 0, 0] == 3 / 2.0


def test_non_contiguous_views():
    rng = np.random.default_rng(12)
    big_x = _logits(rng, 6, 40, 2 * WX)
    big_y = _logits(rng, 6, 40, WY)
    # steps along every axis, and a negative stride
    x = big_x[::2, 1::2, ::2]
    y = big_y[::2, 1::2, ::-1]
    assert not x.flags.c_contiguous and not y.flags.c_contiguous
    _assert_matches(x, y)
    # a transposed view: memory (N, W, K), seen as (N, K, W)
    xt = np.ascontiguousarray(big_x[:, :17].transpose(0, 2, 1)).transpose(0, 2, 1)
    yt = np.ascontiguousarray(big_y[:, :17].transpose(0, 2, 1)).transpose(0, 2, 1)
    assert xt.strides[2] > xt.strides[1]
    _assert_matches(xt, yt)
    # a field of a structured array: byte strides that are not a multiple of 4
    rec = np.zeros((3, 5, 64), dtype=[("a", np.uint8), ("v", np.float32)])
    rec["v"] = _logits(rng, 3, 5, 64)
    _assert_matches(rec["v"], _logits(rng, 3, 5, 70))


def test_read_only_inputs_are_accepted_and_not_modified():
    rng = np.random.default_rng(13)
    x = _logits(rng, 2, 17, 64)
    y = _logits(rng, 2, 17, 64)
    x[0, 3, 5] = np.nan
    x_copy, y_copy = x.copy(), y.copy()
    x.setflags(write=False)
    y.setflags(write=False)
    _assert_matches(x, y)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(y, y_copy)


def test_caller_arrays_not_modified():
    rng = np.random.default_rng(14)
    x64 = _logits(rng, 3, 17, 50).astype(np.float64)
    y32 = _logits(rng, 3, 17, 60)
    x_copy, y_copy = x64.copy(), y32.copy()
    kp, sc = ops.decode_simcc(x64, y32)
    np.testing.assert_array_equal(x64, x_copy)
    np.testing.assert_array_equal(y32, y_copy)
    assert kp.flags.writeable and kp.flags.c_contiguous and sc.flags.c_contiguous


def test_ties_first_index_wins():
    x = np.full((1, 2, 10), 0.1, np.float32)
    y = np.full((1, 2, 12), 0.1, np.float32)
    x[0, 0, [3, 7]] = 0.9
    y[0, 0, [11, 2, 5]] = 0.8
    # a row that is constant: the first bin
    kp, sc = _assert_matches(x, y, 1.0)
    np.testing.assert_array_equal(kp[0, 0], [3, 2])
    np.testing.assert_array_equal(kp[0, 1], [0, 0])
    np.testing.assert_array_equal(sc[0], np.float32([0.8, 0.1]))


def test_score_is_min_of_axis_maxima():
    x = np.zeros((1, 3, 8), np.float32)
    y = np.zeros((1, 3, 8), np.float32)
    x[0, 0, 2], y[0, 0, 5] = 0.9, 0.4   # y smaller
    x[0, 1, 6], y[0, 1, 1] = 0.3, 0.7   # x smaller
    y[0, 2] = -0.5
    x[0, 2, 4], y[0, 2, 4] = 0.5, -0.2  # one axis non-positive: invalid
    kp, sc = _assert_matches(x, y)
    np.testing.assert_array_equal(sc[0], np.float32([0.4, 0.3, -0.2]))
    np.testing.assert_array_equal(kp[0], np.float32([[1.0, 2.5], [3.0, 0.5], [-0.5, -0.5]]))


def test_all_negative_and_zero_logits_give_minus_one():
    rng = np.random.default_rng(15)
    x = -rng.random((2, 17, 30)).astype(np.float32) - 0.01
    y = -rng.random((2, 17, 40)).astype(np.float32) - 0.01
    x[1] = 0.0  # max 0: still invalid (score <= 0)
    y[1] = 0.0
    kp, sc = _assert_matches(x, y, 2.0)
    assert (kp == -0.5).all()
    assert (sc[0] < 0).all() and (sc[1] == 0).all()


def test_nan_rows():
    rng = np.random.default_rng(16)
    x = _logits(rng, 2, 5, 20)
    y = _logits(rng, 2, 5, 24)
    x[0, 0] += 5.0  # make the unaffected keypoints valid
    x[0, 1, 0] = np.nan    # NaN first in an x row
    y[0, 2, -1] = np.nan   # NaN last in a y row
    x[1, 3, 7] = np.nan    # NaN in both rows
    y[1, 3, 2] = np.nan
    x[1, 4, :] = np.nan    # a whole row
    kp, sc = _assert_matches(x, y, 2.0)
    nan_kpts = [(0, 1), (0, 2), (1, 3), (1, 4)]
    for n, k in nan_kpts:
        assert np.isnan(sc[n, k])
        np.testing.assert_array_equal(kp[n, k], [-0.5, -0.5])
    others = np.ones((2, 5), bool)
    for n, k in nan_kpts:
        others[n, k] = False
    assert not np.isnan(sc[others]).any()


def test_infinities_are_ordinary_values():
    x = np.zeros((1, 4, 10), np.float32)
    y = np.zeros((1, 4, 10), np.float32)
    x[0, 0, [4, 8]] = np.inf          # +inf peak, tie: first wins
    y[0, 0, 6] = 0.5
    x[0, 1, 2], y[0, 1, 9] = np.inf, np.inf  # score +inf
    x[0, 2] = -np.inf                 # a row of -inf: max -inf, invalid
    y[0, 2, 1] = 1.0
    x[0, 3, 5], y[0, 3, 3] = 0.7, -np.inf    # -inf elsewhere does not matter
    y[0, 3, 0] = 0.2
    kp, sc = _assert_matches(x, y, 1.0)
    np.testing.assert_array_equal(sc[0], np.float32([0.5, np.inf, -np.inf, 0.2]))
    np.testing.assert_array_equal(kp[0], np.float32([[4, 6], [2, 9], [-1, -1], [5, 0]]))


# Values from a small set make ties, zeros, infinities and NaN frequent.
_special = st.sampled_from([0.0, -0.0, 0.5, 1.0, -1.0, 2.0, np.inf, -np.inf, np.nan, 1e-30])
_values = st.one_of(_special, st.floats(-3, 3, width=32))


@settings(max_examples=150, deadline=None)
@given(
    x=hnp.arrays(np.float32, st.tuples(st.integers(1, 3), st.just(3), st.integers(1, 9)), elements=_values),
    wy=st.integers(1, 9),
    data=st.data(),
)
def test_property_matches_reference(x, wy, data):
    y = data.draw(hnp.arrays(np.float32, (x.shape[0], x.shape[1], wy), elements=_values))
    _assert_matches(x, y, 2.0)


# ---------------------------------------------------------------- errors

def test_integer_logits_must_be_dequantized():
    with pytest.raises(TypeError, match=r"simcc_x must be a floating-point array, got int8.*dequantized"):
        ops.decode_simcc(np.zeros((1, 17, 8), np.int8), np.zeros((1, 17, 8), np.float32))
    with pytest.raises(TypeError, match=r"simcc_y must be a floating-point array, got uint8.*dequantized"):
        ops.decode_simcc(np.zeros((1, 17, 8), np.float32), np.zeros((1, 17, 8), np.uint8))
    with pytest.raises(TypeError, match=r"simcc_x must be a floating-point array, got bool"):
        ops.decode_simcc(np.zeros((1, 17, 8), bool), np.zeros((1, 17, 8), np.float32))


@pytest.mark.parametrize("shape", [(17, 8), (1, 1, 17, 8), ()])
def test_wrong_rank(shape):
    with pytest.raises(ValueError, match=r"simcc_x must have shape \(N, K, Wx\), got "):
        ops.decode_simcc(np.zeros(shape, np.float32), np.zeros((1, 17, 8), np.float32))
    with pytest.raises(ValueError, match=r"simcc_y must have shape \(N, K, Wy\), got "):
        ops.decode_simcc(np.zeros((1, 17, 8), np.float32), np.zeros(shape, np.float32))


@pytest.mark.parametrize("shape_y", [(2, 17, 8), (1, 16, 8)])
def test_mismatched_n_or_k(shape_y):
    with pytest.raises(ValueError, match=r"simcc_x and simcc_y must agree on \(N, K\), got \(1, 17, 8\) and"):
        ops.decode_simcc(np.zeros((1, 17, 8), np.float32), np.zeros(shape_y, np.float32))


def test_empty_bin_axis():
    with pytest.raises(ValueError, match=r"need at least one bin, got \(1, 17, 0\) and \(1, 17, 8\)"):
        ops.decode_simcc(np.zeros((1, 17, 0), np.float32), np.zeros((1, 17, 8), np.float32))
    with pytest.raises(ValueError, match=r"need at least one bin"):
        ops.decode_simcc(np.zeros((0, 17, 8), np.float32), np.zeros((0, 17, 0), np.float32))


@pytest.mark.parametrize("split_ratio", [0.0, -2.0, np.nan, np.inf])
def test_bad_split_ratio(split_ratio):
    with pytest.raises(ValueError, match=r"split_ratio must be a positive finite number, got"):
        ops.decode_simcc(np.zeros((1, 17, 8), np.float32), np.zeros((1, 17, 8), np.float32), split_ratio)
