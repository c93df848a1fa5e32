"""Sizes and parameters at the edges of what the C core can represent (issue
14): map widths beyond float32's exact integers, dimensions whose products
overflow, split ratios outside float32. Each either gives the exact answer
(checked against an independent NumPy computation) or a ValueError naming
the problem, never a wrong value or "status -1"."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose import ops
from tests.references import decode_simcc_ref

WIDE = 2**24 + 4  # x = 2^24 + 3 rounds up to 2^24 + 4 == W in float32


def test_argmax_beyond_2_24_is_exact_and_inside_the_map():
    hm = np.zeros((1, 1, 1, WIDE), np.float32)
    hm[0, 0, 0, WIDE - 1] = 1.0
    kp, sc = ops.decode_heatmap(hm, "none")
    assert kp.dtype == np.float64  # float32 cannot hold every index
    assert kp[0, 0].tolist() == [float(np.argmax(hm[0, 0, 0])), 0.0] == [WIDE - 1.0, 0.0]
    assert kp[0, 0, 0] < WIDE and sc[0, 0] == 1.0
    assert np.float32(WIDE - 1) == WIDE  # what the float32 result was
    # a tall map: the y index is exact too
    kp, _ = ops.decode_heatmap(hm.reshape(1, 1, WIDE, 1), "none")
    assert kp[0, 0].tolist() == [0.0, WIDE - 1.0]


def test_maps_up_to_2_24_keep_float32_keypoints():
    hm = np.zeros((2, 3, 5, 7), np.float32)
    hm[..., 2, 3] = 1.0
    kp, sc = ops.decode_heatmap(hm, "dark", 3)
    assert kp.dtype == np.float32 and sc.dtype == np.float32


def test_heatmap_sizes_overflowing_the_address_space():
    """A broadcast view has h * w = 2^60 elements in no memory at all: the
    workspace size h * w * 8 overflows, a ValueError instead of a hang."""
    hm = np.broadcast_to(np.float32(1.0), (1, 1, 2**30, 2**30))
    with pytest.raises(ValueError, match=r"^decode_heatmap: the input sizes overflow"):
        ops.decode_heatmap(hm, "none")


def test_paf_sizes_overflowing_the_address_space():
    """h * w * sizeof(candidate) overflows: a ValueError before any scan."""
    hm = np.broadcast_to(np.float32(1.0), (1, 2**30, 2**30))
    with pytest.raises(ValueError, match=r"^group_paf: the input sizes overflow"):
        ops.group_paf(hm, hm, [], [], stride=1e-20)


@pytest.mark.parametrize("split_ratio", [1e-50, 1e-45, 1e39, 1e300])
def test_split_ratio_outside_float32(split_ratio):
    x = np.zeros((1, 2, 12), np.float32)
    with pytest.raises(ValueError, match=r"^split_ratio must lie in float32 range for 12 bins: "
                                         r"from 3\.23e-38 to 3\.4e\+38 .*RTMPose uses 2\.0\.$"):
        ops.decode_simcc(x, x, split_ratio)


@pytest.mark.parametrize("split_ratio", [1e-30, 1e-3, 3.0e38])
def test_extreme_split_ratios_inside_float32_match_the_reference(split_ratio):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 3, 12)).astype(np.float32)
    y = rng.normal(size=(2, 3, 9)).astype(np.float32)
    kp, sc = ops.decode_simcc(x, y, split_ratio)
    want_kp, want_sc = decode_simcc_ref(x, y, split_ratio)
    np.testing.assert_array_equal(kp, want_kp)
    np.testing.assert_array_equal(sc, want_sc)
    assert np.isfinite(kp).all()


@pytest.mark.parametrize("split_ratio", [0.0, -2.0, float("nan"), float("inf"), "two"])
def test_split_ratio_not_a_positive_number(split_ratio):
    x = np.zeros((1, 2, 12), np.float32)
    with pytest.raises(ValueError, match=r"^split_ratio must be a positive finite number, got "):
        ops.decode_simcc(x, x, split_ratio)
