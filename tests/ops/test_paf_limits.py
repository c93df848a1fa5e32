"""edgepose.ops.group_paf with card-controlled sizes and boundary thresholds.

Issue 14: max_peaks of 65536 wrapped the candidate-limb buffer size in C int
(heap corruption), 46341..65535 gave a negative size, a huge peak_radius
took seconds on an 8 x 8 map, and heatmap_threshold was narrowed to float32,
so a peak equal to float32(0.1) was rejected at a threshold of 0.1. Every
result here is checked against the NumPy reference (tests/paf_reference.py).
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from edgepose import ops
from tests.ops.test_paf import CHAIN_CHANNELS, CHAIN_LIMBS, assert_same_persons, both
from tests.paf_reference import group_paf_ref

pytestmark = pytest.mark.arm64


def _chain_scene(rng, h=12, w=16, noise=0.3):
    """3-part noise maps with many peaks, and noisy fields (C = 4)."""
    hm = rng.random((3, h, w)).astype(np.float32) * noise
    pf = rng.normal(0.0, 1.0, (4, h, w)).astype(np.float32)
    return hm, pf


@pytest.mark.parametrize("max_peaks", [46341, 65535, 65536, 2**31 - 1, 2**31, 2**40, 2**62])
def test_max_peaks_beyond_int_and_the_map(max_peaks):
    """Every max_peaks >= H * W means "all peaks": the reference's result with
    max_peaks = H * W, no crash, no MemoryError."""
    rng = np.random.default_rng(1)
    hm, pf = _chain_scene(rng)
    got = ops.group_paf(hm, pf, CHAIN_LIMBS, CHAIN_CHANNELS, peak_radius=0,
                        heatmap_threshold=0.0, max_peaks=max_peaks, min_parts=2,
                        min_paf_score=-1.0, min_good_ratio=0.0)
    want = group_paf_ref(hm, pf, CHAIN_LIMBS, CHAIN_CHANNELS, peak_radius=0,
                         heatmap_threshold=0.0, max_peaks=12 * 16, min_parts=2,
                         min_paf_score=-1.0, min_good_ratio=0.0)
    assert len(want[0]) > 64  # more than the first buffer: the second call path
    assert_same_persons(got, want, f"max_peaks={max_peaks}")


@pytest.mark.parametrize("radius", [5, 15, 16, 10**7, 2**62])
def test_peak_radius_larger_than_the_map(radius):
    """A window wider than the map covers the whole map: the same peaks as the
    reference with radius max(H, W), and fast (it took 2 s at 1e7 on 8 x 8)."""
    rng = np.random.default_rng(2)
    hm, pf = _chain_scene(rng, 8, 8, noise=1.0)
    start = time.perf_counter()
    got = ops.group_paf(hm, pf, CHAIN_LIMBS, CHAIN_CHANNELS, peak_radius=radius,
                        min_parts=2, min_paf_score=-1.0, min_good_ratio=0.0)
    assert time.perf_counter() - start < 0.5
    want = group_paf_ref(hm, pf, CHAIN_LIMBS, CHAIN_CHANNELS, peak_radius=min(radius, 8),
                         min_parts=2, min_paf_score=-1.0, min_good_ratio=0.0)
    assert_same_persons(got, want, f"peak_radius={radius}")
    # one peak per part when the window is the whole map (noise has no ties)
    if radius >= 7:
        assert all((p[:, 2] > 0).sum() <= 3 for p in got[0])


@pytest.mark.parametrize("radius", [2, 3, 4, 7])
def test_wide_windows_on_plateaus_and_nan(radius):
    """The separable window maximum (radii > 2) keeps ties (>=) and treats NaN
    as -inf, as the direct scan and the reference do."""
    rng = np.random.default_rng(3)
    hm = rng.choice(np.array([0.0, 0.5, 1.0, np.nan, -np.inf], np.float32),
                    size=(3, 20, 17), p=[0.4, 0.3, 0.2, 0.05, 0.05])
    pf = rng.normal(0.0, 1.0, (4, 20, 17)).astype(np.float32)
    both(hm, pf, CHAIN_LIMBS, CHAIN_CHANNELS, peak_radius=radius, min_parts=2,
         max_peaks=1000, min_paf_score=-1.0, min_good_ratio=0.0)


def test_heatmap_threshold_compared_in_double():
    """A peak of float32(0.1) exceeds heatmap_threshold=0.1 (0.100000001 >
    0.1 in double), as in the reference; it was rejected in float32."""
    hm = np.zeros((2, 7, 12), np.float32)
    hm[0, 3, 2] = hm[1, 3, 9] = np.float32(0.1)
    pf = np.zeros((2, 7, 12), np.float32)
    pf[0, 3, :] = 1.0
    persons, _ = both(hm, pf, [(0, 1)], [(0, 1)], heatmap_threshold=0.1, min_parts=2)
    assert len(persons) == 1
    # the next double up from float32(0.1) rejects it: strictly greater is kept
    persons, _ = both(hm, pf, [(0, 1)], [(0, 1)], min_parts=2,
                      heatmap_threshold=float(np.float32(0.1)))
    assert len(persons) == 0
    # thresholds beyond float32 are legal: nothing or everything exceeds them
    persons, _ = both(hm, pf, [(0, 1)], [(0, 1)], min_parts=2, heatmap_threshold=1e39)
    assert len(persons) == 0
    # -1e39: every pixel of the (non-negative) maps, as at -1 (plateau pixels
    # are peaks too, so persons with equal scores come out: compared with
    # group_paf itself, whose tie order is deterministic)
    low = ops.group_paf(hm, pf, [(0, 1)], [(0, 1)], min_parts=2, heatmap_threshold=-1e39)
    minus_one = ops.group_paf(hm, pf, [(0, 1)], [(0, 1)], min_parts=2, heatmap_threshold=-1.0)
    assert len(low[0]) == len(group_paf_ref(hm, pf, [(0, 1)], [(0, 1)], min_parts=2,
                                            heatmap_threshold=-1.0)[0]) > 1
    np.testing.assert_array_equal(low[0], minus_one[0])


@pytest.mark.parametrize("min_paf_score, expected", [(0.5, 0), (np.nextafter(0.5, 0), 1)])
def test_min_paf_score_boundary(min_paf_score, expected):
    """A sample is good when > min_paf_score: samples of exactly 0.5 are not
    good at 0.5 (OpenPose: score_mid > thre2), and are just below it."""
    hm = np.zeros((2, 7, 12), np.float32)
    hm[0, 3, 2] = hm[1, 3, 9] = 1.0
    pf = np.zeros((2, 7, 12), np.float32)
    pf[0, 3, :] = 0.5
    persons, _ = both(hm, pf, [(0, 1)], [(0, 1)], min_parts=2, min_paf_score=min_paf_score)
    assert len(persons) == expected


def test_min_person_score_boundary():
    """People whose score / parts is >= min_person_score are kept (dropped
    only when below it)."""
    hm = np.zeros((2, 7, 12), np.float32)
    hm[0, 3, 2] = hm[1, 3, 9] = 0.5
    pf = np.zeros((2, 7, 12), np.float32)
    pf[0, 3, :] = 1.0
    _, scores = both(hm, pf, [(0, 1)], [(0, 1)], min_parts=2, refine=False)
    assert scores.tolist() == [1.0]  # (0.5 + 0.5 + 1) / 2
    for threshold, count in ((1.0, 1), (np.nextafter(1.0, 2), 0)):
        persons, _ = both(hm, pf, [(0, 1)], [(0, 1)], min_parts=2, refine=False,
                          min_person_score=threshold)
        assert len(persons) == count


@pytest.mark.parametrize("min_parts, expected", [(2, 1), (3, 0), (2**40, 0)])
def test_min_parts_boundary_and_huge(min_parts, expected):
    hm = np.zeros((2, 7, 12), np.float32)
    hm[0, 3, 2] = hm[1, 3, 9] = 1.0
    pf = np.zeros((2, 7, 12), np.float32)
    pf[0, 3, :] = 1.0
    persons, _ = ops.group_paf(hm, pf, [(0, 1)], [(0, 1)], min_parts=min_parts)
    assert len(persons) == expected


@pytest.mark.parametrize("name, value, message", [
    ("max_peaks", 0, r"^max_peaks must be an integer >= 1, got 0\.$"),
    ("max_peaks", 2.5, r"^max_peaks must be an integer >= 1, got 2\.5\.$"),
    ("max_peaks", True, r"^max_peaks must be an integer >= 1, got True\.$"),
    ("peak_radius", -1, r"^peak_radius must be an integer >= 0, got -1\.$"),
    ("samples", 1, r"^samples must be an integer from 2 to 1000, got 1\.$"),
    ("samples", 10**9, r"^samples must be an integer from 2 to 1000, got 1000000000\.$"),
    ("min_parts", -1, r"^min_parts must be an integer >= 0, got -1\.$"),
    ("min_good_ratio", 1.5, r"^min_good_ratio must be a finite number in \[0\.0, 1\.0\], "
                            r"got 1\.5\.$"),
    ("heatmap_threshold", float("nan"), r"^heatmap_threshold must be a finite number, got nan"),
    ("min_peak_distance", -1.0, r"^min_peak_distance must be a finite number >= 0\.0, got -1\.0"),
    ("distance_prior", "x", r"^distance_prior must be a finite number, got 'x'\.$"),
    ("stride", 1e38, r"^stride and offset map the 7 x 12 maps beyond float32 coordinates"),
    ("offset", 3.5e38, r"^stride and offset map the 7 x 12 maps beyond float32 coordinates"),
])
def test_parameter_errors(name, value, message):
    hm = np.zeros((2, 7, 12), np.float32)
    pf = np.zeros((2, 7, 12), np.float32)
    with pytest.raises(ValueError, match=message):
        ops.group_paf(hm, pf, [(0, 1)], [(0, 1)], **{name: value})


def test_integral_floats_and_numpy_integers_accepted():
    """Cards parsed from JSON may hold 3.0; NumPy integers work too."""
    rng = np.random.default_rng(4)
    hm, pf = _chain_scene(rng)
    a = ops.group_paf(hm, pf, CHAIN_LIMBS, CHAIN_CHANNELS, peak_radius=np.int64(1),
                      max_peaks=100.0, samples=np.uint8(10), min_parts=2.0)
    b = ops.group_paf(hm, pf, CHAIN_LIMBS, CHAIN_CHANNELS, min_parts=2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("distance, kept", [(2.0, 2), (np.nextafter(2.0, 3), 1),
                                             (np.sqrt(2.0), 2), (np.nextafter(np.sqrt(2.0), 2), 1)])
def test_min_peak_distance_boundary(distance, kept):
    """A peak closer than min_peak_distance (<) to a kept one is dropped; one
    at exactly the distance stays (sqrt(2) squared rounds above 2 in double,
    which dropped the diagonal neighbour). Each kept peak of part 0 pairs
    with one of part 1's two far-apart peaks: persons == peaks kept."""
    hm = np.zeros((2, 9, 12), np.float32)
    dy, dx = (0, 2) if distance >= 2 else (1, 1)
    hm[0, 4, 3], hm[0, 4 + dy, 3 + dx] = 1.0, 0.9  # two peaks of part 0
    hm[1, 0, 10] = hm[1, 8, 10] = 1.0
    pf = np.ones((2, 9, 12), np.float32)
    persons, _ = both(hm, pf, [(0, 1)], [(0, 1)], min_parts=2, peak_radius=0, refine=False,
                      min_peak_distance=float(distance), min_paf_score=-2.0,
                      min_good_ratio=0.0)
    assert len(persons) == kept


@pytest.mark.parametrize("value", [0.1, 0.3, 1e-30, 3e38, -0.7])
@pytest.mark.parametrize("where", ["at", "ulp below", "ulp above", "between floats"])
def test_heatmap_threshold_around_float32_values(value, where):
    """A double threshold near a float32 peak value: kept exactly when the
    value exceeds it in double, as in the reference."""
    v = np.float32(value)
    t = {"at": float(v), "ulp below": np.nextafter(float(v), -np.inf),
         "ulp above": np.nextafter(float(v), np.inf),
         "between floats": (float(v) + float(np.nextafter(v, np.float32(np.inf)))) / 2}[where]
    hm = np.full((2, 7, 12), -np.inf, np.float32)
    hm[0, 3, 2] = hm[1, 3, 9] = v
    pf = np.zeros((2, 7, 12), np.float32)
    pf[0, 3, :] = 1.0
    persons, _ = both(hm, pf, [(0, 1)], [(0, 1)], heatmap_threshold=t, min_parts=2,
                      refine=False, min_person_score=-1e39)
    assert len(persons) == int(float(v) > t)
