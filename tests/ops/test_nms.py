"""edgepose.ops.nms_boxes / nms_oks / nms_oks_soft against the NumPy references."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgepose import ops
from tests.references import (
    COCO17_SIGMAS,
    nms_boxes_ref,
    oks_iou_ref,
    oks_nms_ref,
    soft_oks_nms_ref,
)

# Also run by .ci/arm64.sh in the emulated aarch64 rootfs.
pytestmark = pytest.mark.arm64


def _boxes(rng, m, n_clusters=4, size=(10.0, 60.0)):
    """Clustered xyxy boxes (float32) so that suppression happens."""
    centres = rng.uniform(0, 200, (n_clusters, 2))
    pick = rng.integers(0, n_clusters, m)
    xy = centres[pick] + rng.normal(0, 8, (m, 2))
    wh = rng.uniform(*size, (m, 2)) * rng.uniform(0.8, 1.2, (m, 1))
    return np.concatenate((xy - wh / 2, xy + wh / 2), axis=1).astype(np.float32)


def _poses(rng, m, k=17, n_people=4):
    """Poses (M, K, 2) jittered around a few people, their areas and scores."""
    people = rng.uniform(0, 300, (n_people, 1, 2)) + rng.normal(0, 30, (n_people, k, 2))
    pick = rng.integers(0, n_people, m)
    jitter = rng.uniform(0.5, 8.0, (m, 1, 1))
    kp = people[pick] + rng.normal(0, 1, (m, k, 2)) * jitter
    areas = rng.uniform(2000, 20000, m)
    scores = rng.random(m)
    return kp.astype(np.float32), scores.astype(np.float32), areas.astype(np.float32)


def _priority(scores):
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def _merge_groups(ref_fn, scores, groups, *args):
    """Runs a per-group reference and merges by (descending score, index)."""
    kept = []
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        kept.extend(idx[ref_fn(idx, *args)])
    kept = np.array(kept, dtype=np.intp)
    rank = np.empty(len(scores), dtype=np.intp)
    rank[_priority(scores)] = np.arange(len(scores))
    return kept[np.argsort(rank[kept])]


def _iou_matrix(boxes):
    b = np.asarray(boxes, dtype=np.float64)
    area = np.maximum(0, b[:, 2] - b[:, 0]) * np.maximum(0, b[:, 3] - b[:, 1])
    iw = np.maximum(0, np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]))
    ih = np.maximum(0, np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]))
    inter = iw * ih
    union = area[:, None] + area[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


# ================================================================ boxes

@pytest.mark.parametrize("m", [0, 1, 2, 60, 400])
@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_boxes_match_reference(m, thr):
    rng = np.random.default_rng(100 + m)
    boxes = _boxes(rng, m)
    scores = rng.random(m).astype(np.float32)
    keep = ops.nms_boxes(boxes, scores, thr)
    assert keep.dtype == np.intp and keep.ndim == 1
    np.testing.assert_array_equal(keep, nms_boxes_ref(boxes, scores, thr))
    if m >= 60:
        assert 0 < len(keep) < m


def test_boxes_ties_lower_index_first():
    boxes = np.float32([[0, 0, 10, 10], [100, 100, 110, 110], [0, 0, 10, 10], [1, 0, 11, 10],
                        [200, 0, 210, 10]])
    scores = np.float32([0.5, 0.9, 0.5, 0.5, 0.9])
    keep = ops.nms_boxes(boxes, scores, 0.5)
    np.testing.assert_array_equal(keep, [1, 4, 0])
    np.testing.assert_array_equal(keep, nms_boxes_ref(boxes, scores, 0.5))
    # reversing the indices reverses the winner among equal scores
    keep = ops.nms_boxes(boxes[::-1], scores[::-1], 0.5)
    np.testing.assert_array_equal(keep, [0, 3, 1])


def test_boxes_identical():
    boxes = np.tile(np.float32([[5, 5, 25, 45]]), (6, 1))
    scores = np.float32([0.2, 0.7, 0.7, 0.1, 0.9, 0.3])
    np.testing.assert_array_equal(ops.nms_boxes(boxes, scores, 0.5), [4])
    np.testing.assert_array_equal(ops.nms_boxes(boxes, scores, 0.999), [4])
    # IoU 1 is not > 1: nothing is suppressed, all come back in priority order
    np.testing.assert_array_equal(ops.nms_boxes(boxes, scores, 1.0), [4, 1, 2, 5, 0, 3])


def test_boxes_degenerate_never_suppress_nor_are_suppressed():
    boxes = np.float32([
        [0, 0, 10, 10],
        [0, 0, 10, 10],     # identical to 0: suppressed
        [0, 0, 0, 10],      # zero width
        [5, 5, 5, 5],       # a point
        [10, 10, 0, 0],     # negative extents: area 0
        [3, 3, 8, 2],       # negative height
        [0, 0, 0, 10],      # two identical zero-area boxes: IoU 0 (union 0)
    ])
    scores = np.float32([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    keep = ops.nms_boxes(boxes, scores, 0.0)
    np.testing.assert_array_equal(keep, [0, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(keep, nms_boxes_ref(boxes, scores, 0.0))


def test_boxes_threshold_is_strict():
    # IoU exactly 0.5: inter 2, union 4; touching boxes: IoU 0
    boxes = np.float32([[0, 0, 3, 1], [1, 0, 4, 1], [4, 0, 6, 1]])
    scores = np.float32([0.9, 0.8, 0.7])
    np.testing.assert_array_equal(ops.nms_boxes(boxes, scores, 0.5), [0, 1, 2])
    np.testing.assert_array_equal(ops.nms_boxes(boxes, scores, 0.4375), [0, 2])
    np.testing.assert_array_equal(ops.nms_boxes(boxes, scores, 0.0), [0, 2])
    # a negative threshold suppresses even disjoint boxes (IoU 0 > -0.5)
    np.testing.assert_array_equal(ops.nms_boxes(boxes, scores, -0.5), [0])
    np.testing.assert_array_equal(nms_boxes_ref(boxes, scores, -0.5), [0])


def test_boxes_infinite_scores():
    rng = np.random.default_rng(101)
    boxes = _boxes(rng, 40)
    scores = rng.random(40).astype(np.float32)
    scores[[3, 17]] = np.inf
    scores[[5, 9, 30]] = -np.inf
    keep = ops.nms_boxes(boxes, scores, 0.5)
    np.testing.assert_array_equal(keep, nms_boxes_ref(boxes, scores, 0.5))
    assert keep[0] == 3


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int32, np.int64])
def test_boxes_groups_never_suppress_each_other(dtype):
    rng = np.random.default_rng(102)
    m = 200
    boxes = _boxes(rng, m, n_clusters=3)
    scores = rng.random(m).astype(np.float32)
    ids = np.array([-3, 0, 7, 100] if np.issubdtype(dtype, np.signedinteger) else [0, 7, 100, 9])
    groups = ids[rng.integers(0, 4, m)].astype(dtype)
    keep = ops.nms_boxes(boxes, scores, 0.5, groups=groups)
    expected = _merge_groups(lambda idx, t: nms_boxes_ref(boxes[idx], scores[idx], t), scores, groups, 0.5)
    np.testing.assert_array_equal(keep, expected)
    # more survive than without groups, and one group alone equals the reference
    assert len(keep) > len(ops.nms_boxes(boxes, scores, 0.5))
    one = np.full(m, 4, dtype)
    np.testing.assert_array_equal(ops.nms_boxes(boxes, scores, 0.5, groups=one),
                                  nms_boxes_ref(boxes, scores, 0.5))
    # a strided view of the ids
    wide = np.repeat(groups, 2)
    np.testing.assert_array_equal(ops.nms_boxes(boxes, scores, 0.5, groups=wide[::2]), expected)


@pytest.mark.parametrize("max_keep", [None, 0, 1, 5, 1000])
def test_boxes_max_keep(max_keep):
    rng = np.random.default_rng(103)
    boxes = _boxes(rng, 100)
    scores = rng.random(100).astype(np.float32)
    ref = nms_boxes_ref(boxes, scores, 0.5)
    keep = ops.nms_boxes(boxes, scores, 0.5, max_keep=max_keep)
    np.testing.assert_array_equal(keep, ref if max_keep is None else ref[:max_keep])
    groups = rng.integers(0, 3, 100)
    grouped = _merge_groups(lambda idx, t: nms_boxes_ref(boxes[idx], scores[idx], t), scores, groups, 0.5)
    keep = ops.nms_boxes(boxes, scores, 0.5, groups=groups, max_keep=max_keep)
    np.testing.assert_array_equal(keep, grouped if max_keep is None else grouped[:max_keep])


def test_boxes_views_dtypes_and_read_only():
    rng = np.random.default_rng(104)
    boxes = _boxes(rng, 120).astype(np.float64)
    scores = rng.random(120)
    expected = nms_boxes_ref(boxes.astype(np.float32), scores.astype(np.float32), 0.5)
    b32, s32 = boxes.astype(np.float32), scores.astype(np.float32)
    # float64 and float16
    np.testing.assert_array_equal(ops.nms_boxes(boxes, scores, 0.5), expected)
    b16, s16 = boxes.astype(np.float16), scores.astype(np.float16)
    np.testing.assert_array_equal(
        ops.nms_boxes(b16, s16, 0.5),
        nms_boxes_ref(b16.astype(np.float32), s16.astype(np.float32), 0.5))
    # Fortran order, strided rows, strided scores
    np.testing.assert_array_equal(ops.nms_boxes(np.asfortranarray(b32), s32, 0.5), expected)
    wide = np.repeat(b32, 2, axis=0)
    wide_s = np.repeat(s32, 3)
    np.testing.assert_array_equal(ops.nms_boxes(wide[::2], wide_s[::3], 0.5), expected)
    # read-only, not modified
    b_copy, s_copy = b32.copy(), s32.copy()
    b32.setflags(write=False)
    s32.setflags(write=False)
    np.testing.assert_array_equal(ops.nms_boxes(b32, s32, 0.5), expected)
    np.testing.assert_array_equal(b32, b_copy)
    np.testing.assert_array_equal(s32, s_copy)
    # lists work too
    np.testing.assert_array_equal(ops.nms_boxes(b_copy.tolist(), s_copy.tolist(), 0.5), expected)


def test_boxes_empty_and_single():
    keep = ops.nms_boxes(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5)
    assert keep.shape == (0,) and keep.dtype == np.intp
    keep = ops.nms_boxes(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5,
                         groups=np.zeros(0, np.int64), max_keep=3)
    assert keep.shape == (0,)
    keep = ops.nms_boxes(np.float32([[1, 2, 3, 4]]), np.float32([-5.0]), 0.5)
    np.testing.assert_array_equal(keep, [0])
    keep = ops.nms_boxes(np.float32([[1, 2, 3, 4]]), np.float32([0.5]), 0.5, max_keep=0)
    assert keep.shape == (0,)


# ---------------------------------------------------- box NMS properties

_thresholds = st.sampled_from([-0.5, 0.0, 0.25, 0.5, 0.75, 1.0])


@st.composite
def _box_problems(draw, distinct_scores=False):
    m = draw(st.integers(0, 14))
    # integer coordinates: every IoU is a ratio of exact integers, so float32
    # and float64 agree on which side of the threshold it falls
    coords = st.integers(0, 20)
    extents = st.integers(-2, 12)
    boxes = []
    for _ in range(m):
        x1, y1 = draw(coords), draw(coords)
        boxes.append([x1, y1, x1 + draw(extents), y1 + draw(extents)])
    boxes = np.array(boxes, dtype=np.float32).reshape(m, 4)
    if distinct_scores:
        scores = draw(st.lists(st.integers(-50, 50), min_size=m, max_size=m, unique=True))
    else:
        scores = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, np.inf, -np.inf]),
                               min_size=m, max_size=m))
    scores = np.array(scores, dtype=np.float32).reshape(m)
    groups = draw(st.one_of(st.none(), st.lists(st.integers(0, 2), min_size=m, max_size=m)))
    groups = None if groups is None else np.array(groups, dtype=np.int64).reshape(m)
    return boxes, scores, groups, draw(_thresholds)


@settings(max_examples=300, deadline=None)
@given(_box_problems())
def test_property_box_nms(problem):
    boxes, scores, groups, thr = problem
    m = len(scores)
    keep = ops.nms_boxes(boxes, scores, thr, groups=groups)
    g = np.zeros(m, np.int64) if groups is None else groups
    # unique, in priority order (descending score, ties by index)
    assert len(set(keep.tolist())) == len(keep)
    rank = np.empty(m, dtype=np.intp)
    rank[_priority(scores)] = np.arange(m)
    assert (np.diff(rank[keep]) > 0).all()
    iou = _iou_matrix(boxes)
    same = g[:, None] == g[None, :]
    kept = np.zeros(m, bool)
    kept[keep] = True
    # kept boxes of one group do not overlap by more than the threshold
    pair = same & kept[:, None] & kept[None, :] & ~np.eye(m, dtype=bool)
    assert (iou[pair] <= thr).all()
    # every dropped box overlaps a kept box of the same group and higher priority
    for d in np.flatnonzero(~kept):
        blockers = keep[(g[keep] == g[d]) & (rank[keep] < rank[d])]
        assert (iou[d, blockers] > thr).any(), d
    # and the whole answer equals the reference
    expected = _merge_groups(lambda idx, t: nms_boxes_ref(boxes[idx], scores[idx], t), scores, g, thr)
    np.testing.assert_array_equal(keep, expected)


@settings(max_examples=150, deadline=None)
@given(_box_problems(distinct_scores=True), st.randoms(use_true_random=False))
def test_property_box_nms_permutation_invariant(problem, random):
    boxes, scores, groups, thr = problem
    m = len(scores)
    perm = np.array(random.sample(range(m), m), dtype=np.intp)
    keep = ops.nms_boxes(boxes, scores, thr, groups=groups)
    g_perm = None if groups is None else groups[perm]
    keep_perm = ops.nms_boxes(boxes[perm], scores[perm], thr, groups=g_perm)
    np.testing.assert_array_equal(perm[keep_perm], keep)


# ================================================================ OKS NMS

def test_coco_sigmas():
    np.testing.assert_array_equal(ops.COCO17_SIGMAS, COCO17_SIGMAS)
    assert ops.COCO17_SIGMAS.shape == (17,) and ops.COCO17_SIGMAS.dtype == np.float32
    assert not ops.COCO17_SIGMAS.flags.writeable
    # symmetric left/right pairs, hips the loosest, eyes the tightest
    np.testing.assert_array_equal(COCO17_SIGMAS[1::2], COCO17_SIGMAS[2::2])
    assert COCO17_SIGMAS.argmax() == 11 and COCO17_SIGMAS.min() == np.float32(0.025)


def test_oks_reference_hand_computed():
    g = np.array([[0.0, 0.0], [10.0, 0.0]])
    d = np.array([[[3.0, 4.0], [10.0, 0.0]], [[0.0, 0.0], [10.0, 0.0]]])
    sigmas = np.array([0.5, 1.0])
    # keypoint 0: d^2 = 25, (2 sigma)^2 = 1, mean area 100 -> e = 25 / 1 / 100 / 2
    oks = oks_iou_ref(g, d, 100.0, np.array([100.0, 50.0]), sigmas)
    np.testing.assert_allclose(oks, [(np.exp(-0.125) + 1) / 2, 1.0], rtol=1e-12)


@pytest.mark.parametrize("m", [0, 1, 2, 40, 250])
@pytest.mark.parametrize("thr", [0.5, 0.9])
def test_oks_nms_matches_reference(m, thr):
    rng = np.random.default_rng(200 + m)
    kp, scores, areas = _poses(rng, m)
    keep = ops.nms_oks(kp, scores, areas, thr)
    assert keep.dtype == np.intp
    np.testing.assert_array_equal(keep, oks_nms_ref(kp, scores, areas, thr, COCO17_SIGMAS))
    np.testing.assert_array_equal(ops.nms_oks(kp, scores, areas, thr, COCO17_SIGMAS), keep)
    if m >= 40:
        assert 0 < len(keep) < m


@pytest.mark.parametrize("k", [1, 5, 133])
def test_oks_nms_custom_sigmas(k):
    rng = np.random.default_rng(300 + k)
    kp, scores, areas = _poses(rng, 80, k=k)
    sigmas = rng.uniform(0.02, 0.1, k).astype(np.float32)
    keep = ops.nms_oks(kp, scores, areas, 0.7, sigmas)
    np.testing.assert_array_equal(keep, oks_nms_ref(kp, scores, areas, 0.7, sigmas))
    # the sigmas matter
    assert not np.array_equal(keep, ops.nms_oks(kp, scores, areas, 0.7, sigmas * 4))


@pytest.mark.parametrize("k", [3, 17, 133])
def test_oks_nms_threshold_boundary(k):
    """Thresholds one float32 step either side of the exact OKS of a pair:
    any shortcut in the kernel (early exit on a partial sum) must still
    decide exactly as the full mean does."""
    rng = np.random.default_rng(500 + k)
    sigmas = rng.uniform(0.02, 0.1, k).astype(np.float32)
    for _ in range(150):
        a = rng.uniform(0, 100, (k, 2))
        b = a + rng.normal(0, rng.uniform(0.5, 10.0), (k, 2))
        kp = np.stack((a, b)).astype(np.float32)
        areas = rng.uniform(100, 5000, 2).astype(np.float32)
        oks = oks_iou_ref(kp[0], kp[1:], areas[0], areas[1:], sigmas)[0]
        below = np.float32(oks)
        if below >= oks:
            below = np.nextafter(below, np.float32(-1))
        above = np.nextafter(below, np.float32(2))
        scores = np.float32([0.9, 0.8])
        np.testing.assert_array_equal(ops.nms_oks(kp, scores, areas, float(below), sigmas), [0])
        np.testing.assert_array_equal(ops.nms_oks(kp, scores, areas, float(above), sigmas), [0, 1])
        # soft linear: rescored where OKS >= threshold
        _, sc = ops.nms_oks_soft(kp, scores, areas, float(below), sigmas, method="linear")
        np.testing.assert_allclose(sc[1], 0.8 * (1 - oks), rtol=1e-5)
        _, sc = ops.nms_oks_soft(kp, scores, areas, float(above), sigmas, method="linear")
        assert sc[1] == np.float32(0.8)


def test_oks_nms_third_column_is_ignored():
    rng = np.random.default_rng(201)
    kp, scores, areas = _poses(rng, 60)
    with_vis = np.concatenate((kp, rng.random((60, 17, 1)).astype(np.float32)), axis=2)
    with_vis[5, 3, 2] = np.nan  # a visibility column is never read
    expected = ops.nms_oks(kp, scores, areas, 0.8)
    np.testing.assert_array_equal(ops.nms_oks(with_vis, scores, areas, 0.8), expected)
    np.testing.assert_array_equal(expected, oks_nms_ref(kp, scores, areas, 0.8, COCO17_SIGMAS))


def test_oks_nms_ties_identical_and_zero_area():
    kp = np.zeros((5, 17, 2), np.float32) + np.arange(17, dtype=np.float32)[:, None] * 10
    kp[3] += 1000.0
    scores = np.float32([0.5, 0.9, 0.5, 0.5, 0.9])
    areas = np.full(5, 1000.0, np.float32)
    # 0, 1, 2, 4 identical (OKS 1); 3 far away
    np.testing.assert_array_equal(ops.nms_oks(kp, scores, areas, 0.9), [1, 3])
    # OKS 1 is not > 1
    np.testing.assert_array_equal(ops.nms_oks(kp, scores, areas, 1.0), [1, 4, 0, 2, 3])
    np.testing.assert_array_equal(oks_nms_ref(kp, scores, areas, 1.0, COCO17_SIGMAS), [1, 4, 0, 2, 3])
    # zero areas: identical poses still have OKS 1, any offset gives OKS ~0
    areas0 = np.zeros(5, np.float32)
    kp[2, 0, 0] += 0.5
    keep = ops.nms_oks(kp, scores, areas0, 0.99)
    np.testing.assert_array_equal(keep, oks_nms_ref(kp, scores, areas0, 0.99, COCO17_SIGMAS))
    np.testing.assert_array_equal(keep, [1, 2, 3])


def test_oks_nms_groups():
    rng = np.random.default_rng(202)
    kp, scores, areas = _poses(rng, 150)
    groups = rng.integers(-1, 3, 150)
    keep = ops.nms_oks(kp, scores, areas, 0.6, groups=groups)
    expected = _merge_groups(
        lambda idx, t: oks_nms_ref(kp[idx], scores[idx], areas[idx], t, COCO17_SIGMAS),
        scores, groups, 0.6)
    np.testing.assert_array_equal(keep, expected)
    assert len(keep) > len(ops.nms_oks(kp, scores, areas, 0.6))


def test_oks_nms_views_dtypes_and_read_only():
    rng = np.random.default_rng(203)
    kp, scores, areas = _poses(rng, 90)
    expected = oks_nms_ref(kp, scores, areas, 0.7, COCO17_SIGMAS)
    np.testing.assert_array_equal(
        ops.nms_oks(kp.astype(np.float64), scores.astype(np.float64), areas.astype(np.float64), 0.7),
        expected)
    # (M, 2, K) memory seen as (M, K, 2); strided scores and areas
    kp_t = np.ascontiguousarray(kp.transpose(0, 2, 1)).transpose(0, 2, 1)
    s_wide, a_wide = np.repeat(scores, 2), np.repeat(areas, 2)
    np.testing.assert_array_equal(ops.nms_oks(kp_t, s_wide[::2], a_wide[1::2], 0.7), expected)
    copies = [x.copy() for x in (kp, scores, areas)]
    for x in (kp, scores, areas):
        x.setflags(write=False)
    np.testing.assert_array_equal(ops.nms_oks(kp, scores, areas, 0.7), expected)
    for x, c in zip((kp, scores, areas), copies):
        np.testing.assert_array_equal(x, c)
    keep = ops.nms_oks(np.zeros((0, 17, 2), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32), 0.7)
    assert keep.shape == (0,) and keep.dtype == np.intp


@st.composite
def _pose_problems(draw, distinct_scores=False):
    m = draw(st.integers(0, 10))
    k = 3
    coord = st.floats(0, 30, width=32)
    kp = np.array(draw(st.lists(coord, min_size=m * k * 2, max_size=m * k * 2)),
                  dtype=np.float32).reshape(m, k, 2)
    areas = np.array(draw(st.lists(st.sampled_from([0.0, 1.0, 50.0, 400.0]), min_size=m, max_size=m)),
                     dtype=np.float32).reshape(m)
    if distinct_scores:
        scores = draw(st.lists(st.integers(-50, 50), min_size=m, max_size=m, unique=True))
    else:
        scores = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, np.inf]), min_size=m, max_size=m))
    scores = np.array(scores, dtype=np.float32).reshape(m)
    groups = draw(st.one_of(st.none(), st.lists(st.integers(0, 2), min_size=m, max_size=m)))
    groups = None if groups is None else np.array(groups, dtype=np.int64).reshape(m)
    thr = draw(st.sampled_from([0.25, 0.5, 0.75, 0.9375]))
    return kp, scores, areas, groups, thr


_SIGMAS3 = np.float32([0.05, 0.1, 0.2])


def _oks_matrix(kp, areas, sigmas):
    return np.stack([oks_iou_ref(kp[i], kp, areas[i], areas, sigmas) for i in range(len(kp))]) \
        if len(kp) else np.zeros((0, 0))


@settings(max_examples=200, deadline=None)
@given(_pose_problems())
def test_property_oks_nms(problem):
    kp, scores, areas, groups, thr = problem
    m = len(scores)
    keep = ops.nms_oks(kp, scores, areas, thr, _SIGMAS3, groups=groups)
    g = np.zeros(m, np.int64) if groups is None else groups
    assert len(set(keep.tolist())) == len(keep)
    rank = np.empty(m, dtype=np.intp)
    rank[_priority(scores)] = np.arange(m)
    assert (np.diff(rank[keep]) > 0).all()
    oks = _oks_matrix(kp, areas, _SIGMAS3)
    kept = np.zeros(m, bool)
    kept[keep] = True
    # a margin: the kernel's OKS may differ from the reference's in the last bits
    tol = 1e-9
    pair = (g[:, None] == g[None, :]) & kept[:, None] & kept[None, :] & ~np.eye(m, dtype=bool)
    assert (oks[pair] <= thr + tol).all()
    for d in np.flatnonzero(~kept):
        blockers = keep[(g[keep] == g[d]) & (rank[keep] < rank[d])]
        assert (oks[blockers, d] > thr - tol).any(), d


@settings(max_examples=100, deadline=None)
@given(_pose_problems(distinct_scores=True), st.randoms(use_true_random=False))
def test_property_oks_nms_permutation_invariant(problem, random):
    kp, scores, areas, groups, thr = problem
    m = len(scores)
    perm = np.array(random.sample(range(m), m), dtype=np.intp)
    keep = ops.nms_oks(kp, scores, areas, thr, _SIGMAS3, groups=groups)
    g_perm = None if groups is None else groups[perm]
    keep_perm = ops.nms_oks(kp[perm], scores[perm], areas[perm], thr, _SIGMAS3, groups=g_perm)
    np.testing.assert_array_equal(perm[keep_perm], keep)


# =========================================================== soft OKS NMS

def _assert_soft_matches(kp, scores, areas, thr, sigmas=None, *, max_keep=20, method="gaussian",
                         groups=None, expected=None):
    keep, kept_scores = ops.nms_oks_soft(kp, scores, areas, thr, sigmas, max_keep=max_keep,
                                         method=method, groups=groups)
    assert keep.dtype == np.intp and kept_scores.dtype == np.float32
    if expected is None:
        expected = soft_oks_nms_ref(kp, scores, areas, thr, COCO17_SIGMAS if sigmas is None else sigmas,
                                    max_keep=max_keep, method=method)
    np.testing.assert_array_equal(keep, expected[0])
    # float32 output of scores rescored once per kept pose
    np.testing.assert_allclose(kept_scores, expected[1], rtol=1e-5, atol=1e-7)
    return keep, kept_scores


@pytest.mark.parametrize("method,thr", [("gaussian", 0.3), ("gaussian", 0.05), ("linear", 0.3), ("linear", 0.7)])
@pytest.mark.parametrize("m", [0, 1, 2, 40, 150])
@pytest.mark.parametrize("max_keep", [None, 20])
def test_soft_matches_reference(method, thr, m, max_keep):
    rng = np.random.default_rng(400 + m)
    kp, scores, areas = _poses(rng, m)
    keep, kept_scores = _assert_soft_matches(kp, scores, areas, thr, max_keep=max_keep, method=method)
    assert len(keep) == (m if max_keep is None else min(m, max_keep))
    if m >= 40:
        # scores really changed, and not always in the input order
        assert (kept_scores < np.sort(scores)[::-1][:len(keep)]).any()


@pytest.mark.parametrize("max_keep", [0, 1, 7])
def test_soft_max_keep(max_keep):
    rng = np.random.default_rng(401)
    kp, scores, areas = _poses(rng, 60)
    keep, _ = _assert_soft_matches(kp, scores, areas, 0.3, max_keep=max_keep)
    assert len(keep) == max_keep
    # the default is MMPose's 20
    keep, _ = ops.nms_oks_soft(kp, scores, areas, 0.3)
    assert len(keep) == 20


@pytest.mark.parametrize("method", ["gaussian", "linear"])
def test_soft_custom_sigmas_and_groups(method):
    rng = np.random.default_rng(402)
    k = 133
    kp, scores, areas = _poses(rng, 70, k=k)
    sigmas = rng.uniform(0.02, 0.1, k).astype(np.float32)
    _assert_soft_matches(kp, scores, areas, 0.5, sigmas, max_keep=None, method=method)
    groups = rng.integers(0, 3, 70)
    parts = {}
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        kept, sc = soft_oks_nms_ref(kp[idx], scores[idx], areas[idx], 0.5, sigmas, max_keep=None, method=method)
        parts[g] = (idx[kept], sc)
    all_idx = np.concatenate([p[0] for p in parts.values()])
    all_sc = np.concatenate([p[1] for p in parts.values()])
    # each group's sequence is ordered by (descending score, index): merge them
    order = np.lexsort((all_idx, -all_sc))
    for max_keep in (None, 25):
        expected = (all_idx[order][:max_keep], all_sc[order][:max_keep])
        _assert_soft_matches(kp, scores, areas, 0.5, sigmas, max_keep=max_keep, method=method,
                             groups=groups, expected=expected)


def test_soft_ties_and_identical_poses():
    kp = np.zeros((4, 17, 2), np.float32) + np.arange(17, dtype=np.float32)[:, None] * 5
    scores = np.float32([0.8, 0.8, 0.8, 0.8])
    areas = np.full(4, 500.0, np.float32)
    keep, kept_scores = _assert_soft_matches(kp, scores, areas, 0.5, max_keep=None)
    # identical poses: OKS 1; every round multiplies the rest by exp(-1 / 0.5)
    np.testing.assert_array_equal(keep, [0, 1, 2, 3])
    np.testing.assert_allclose(kept_scores, 0.8 * np.exp(-2.0) ** np.arange(4), rtol=1e-6)
    keep, kept_scores = _assert_soft_matches(kp, scores, areas, 0.5, max_keep=None, method="linear")
    np.testing.assert_array_equal(keep, [0, 1, 2, 3])
    np.testing.assert_allclose(kept_scores, [0.8, 0.0, 0.0, 0.0], atol=1e-7)
    # linear rescoring applies where OKS >= threshold: OKS 1 with threshold 1
    keep, kept_scores = _assert_soft_matches(kp, scores, areas, 1.0, max_keep=None, method="linear")
    np.testing.assert_allclose(kept_scores, [0.8, 0.0, 0.0, 0.0], atol=1e-7)


@pytest.mark.parametrize("method", ["gaussian", "linear"])
def test_soft_ties_after_rescoring_keep_index_order(method):
    """Poses far apart have OKS 0 and keep their score exactly: equal scores
    stay tied round after round and come out by ascending index."""
    m = 40
    kp = np.zeros((m, 17, 2), np.float32) + np.arange(17, dtype=np.float32)[:, None]
    kp += (np.arange(m, dtype=np.float32) * 1000.0)[:, None, None]
    scores = np.full(m, 0.5, np.float32)
    scores[13] = 0.9
    scores[29] = 0.7
    kp[30] = kp[29] + 2.0  # rescored by its neighbour 29, drops to the end
    areas = np.full(m, 400.0, np.float32)
    keep, kept_scores = _assert_soft_matches(kp, scores, areas, 0.3, max_keep=None, method=method)
    rest = [i for i in range(m) if i not in (13, 29, 30)]
    np.testing.assert_array_equal(keep[:-1], [13, 29, *rest])
    assert keep[-1] == 30 and kept_scores[-1] < 0.5


def test_soft_does_not_modify_inputs_and_accepts_views():
    rng = np.random.default_rng(403)
    kp, scores, areas = _poses(rng, 50)
    expected = soft_oks_nms_ref(kp, scores, areas, 0.3, COCO17_SIGMAS, max_keep=20)
    copies = [x.copy() for x in (kp, scores, areas)]
    for x in (kp, scores, areas):
        x.setflags(write=False)
    _assert_soft_matches(kp, scores, areas, 0.3, expected=expected)
    for x, c in zip((kp, scores, areas), copies):
        np.testing.assert_array_equal(x, c)
    s_wide = np.repeat(scores.astype(np.float64), 3)
    _assert_soft_matches(kp.astype(np.float64), s_wide[::3], areas, 0.3, expected=expected)
    keep, kept_scores = ops.nms_oks_soft(np.zeros((0, 17, 2), np.float32), np.zeros(0), np.zeros(0), 0.3)
    assert keep.shape == (0,) and kept_scores.shape == (0,)


# =================================================================== errors

def test_box_errors():
    b = np.zeros((3, 4), np.float32)
    s = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"boxes must have shape \(M, 4\) as x1, y1, x2, y2, got \(3, 5\)"):
        ops.nms_boxes(np.zeros((3, 5), np.float32), s, 0.5)
    with pytest.raises(ValueError, match=r"boxes must have shape \(M, 4\), got \(12,\)"):
        ops.nms_boxes(np.zeros(12, np.float32), s, 0.5)
    # user data, not model outputs: no "dequantize" hint, and integers are fine
    with pytest.raises(TypeError, match=r"^boxes must be a floating-point array, got complex128\.$"):
        ops.nms_boxes(np.zeros((3, 4), complex), s, 0.5)
    with pytest.raises(TypeError, match=r"^scores must be a floating-point array, got bool\.$"):
        ops.nms_boxes(b, np.zeros(3, bool), 0.5)
    with pytest.raises(ValueError, match=r"scores must have shape \(3,\), one per candidate, got \(2,\)"):
        ops.nms_boxes(b, np.zeros(2, np.float32), 0.5)
    with pytest.raises(ValueError, match=r"scores must have shape \(M,\), got \(3, 1\)"):
        ops.nms_boxes(b, np.zeros((3, 1), np.float32), 0.5)
    with pytest.raises(ValueError, match=r"scores must not contain NaN"):
        ops.nms_boxes(b, np.float32([0.1, np.nan, 0.3]), 0.5)
    for bad in (np.nan, np.inf, -np.inf):
        bb = b.copy()
        bb[1, 2] = bad
        with pytest.raises(ValueError, match=r"boxes must be finite, check for NaN or inf values"):
            ops.nms_boxes(bb, s, 0.5)
    with pytest.raises(ValueError, match=r"iou_threshold must be finite, got nan"):
        ops.nms_boxes(b, s, float("nan"))
    with pytest.raises(TypeError, match=r"groups must be an integer array, got float64"):
        ops.nms_boxes(b, s, 0.5, groups=np.zeros(3))
    with pytest.raises(ValueError, match=r"groups must have shape \(3,\), one id per candidate, got \(2,\)"):
        ops.nms_boxes(b, s, 0.5, groups=np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"groups must have shape \(3,\), one id per candidate, got \(3, 1\)"):
        ops.nms_boxes(b, s, 0.5, groups=np.zeros((3, 1), np.int64))
    for bad in (-1, 2.0, True):
        with pytest.raises(ValueError, match=r"max_keep must be None or a non-negative int, got"):
            ops.nms_boxes(b, s, 0.5, max_keep=bad)


def test_oks_errors():
    kp = np.zeros((3, 17, 2), np.float32)
    s = np.zeros(3, np.float32)
    a = np.ones(3, np.float32)
    with pytest.raises(ValueError, match=r"sigmas are required for K=133 keypoints; the COCO sigmas"):
        ops.nms_oks(np.zeros((3, 133, 2), np.float32), s, a, 0.5)
    with pytest.raises(ValueError, match=r"sigmas are required for K=5 keypoints"):
        ops.nms_oks_soft(np.zeros((3, 5, 2), np.float32), s, a, 0.5)
    with pytest.raises(ValueError, match=r"sigmas must have shape \(17,\), one per keypoint, got \(16,\)"):
        ops.nms_oks(kp, s, a, 0.5, np.ones(16, np.float32))
    for bad in (0.0, -0.1, np.nan, np.inf):
        sg = np.full(17, 0.05, np.float32)
        sg[4] = bad
        with pytest.raises(ValueError, match=r"sigmas must be positive and finite"):
            ops.nms_oks(kp, s, a, 0.5, sg)
    with pytest.raises(ValueError, match=r"keypoints must have shape \(M, K, 2\) or \(M, K, 3\), got \(3, 17, 4\)"):
        ops.nms_oks(np.zeros((3, 17, 4), np.float32), s, a, 0.5)
    with pytest.raises(ValueError, match=r"keypoints must have shape \(M, K, 2\) or \(M, K, 3\), got \(3, 34\)"):
        ops.nms_oks(np.zeros((3, 34), np.float32), s, a, 0.5)
    with pytest.raises(ValueError, match=r"keypoints need at least one keypoint, got \(3, 0, 2\)"):
        ops.nms_oks(np.zeros((3, 0, 2), np.float32), s, a, 0.5)
    with pytest.raises(TypeError, match=r"^keypoints must be a floating-point array, got <U1\.$"):
        ops.nms_oks(np.full((3, 17, 2), "a"), s, a, 0.5)
    bad_kp = kp.copy()
    bad_kp[2, 16, 1] = np.inf
    with pytest.raises(ValueError, match=r"keypoints must be finite, check for NaN or inf values"):
        ops.nms_oks(bad_kp, s, a, 0.5)
    with pytest.raises(ValueError, match=r"scores must not contain NaN"):
        ops.nms_oks(kp, np.float32([0, np.nan, 1]), a, 0.5)
    with pytest.raises(ValueError, match=r"areas must have shape \(3,\), one per pose, got \(4,\)"):
        ops.nms_oks(kp, s, np.ones(4, np.float32), 0.5)
    with pytest.raises(ValueError, match=r"areas must be non-negative"):
        ops.nms_oks(kp, s, np.float32([1, -1, 1]), 0.5)
    with pytest.raises(ValueError, match=r"areas must be finite"):
        ops.nms_oks(kp, s, np.float32([1, np.inf, 1]), 0.5)
    with pytest.raises(ValueError, match=r"threshold must be finite, got inf"):
        ops.nms_oks(kp, s, a, float("inf"))
    with pytest.raises(ValueError, match=r"groups must have shape \(3,\), one id per candidate, got \(1,\)"):
        ops.nms_oks(kp, s, a, 0.5, groups=[1])
    with pytest.raises(TypeError, match=r"groups must be an integer array"):
        ops.nms_oks_soft(kp, s, a, 0.5, groups=np.zeros(3, np.float32))


def test_soft_errors():
    kp = np.zeros((3, 17, 2), np.float32)
    s = np.zeros(3, np.float32)
    a = np.ones(3, np.float32)
    with pytest.raises(ValueError, match=r"method must be 'gaussian' or 'linear', got 'hard'"):
        ops.nms_oks_soft(kp, s, a, 0.5, method="hard")
    for thr in (0.0, -0.3):
        with pytest.raises(ValueError, match=rf"threshold must be > 0 for the gaussian method, got {thr}"):
            ops.nms_oks_soft(kp, s, a, thr)
    ops.nms_oks_soft(kp, s, a, 0.0, method="linear")  # fine for the linear method
    with pytest.raises(ValueError, match=r"max_keep must be None or a non-negative int, got -2"):
        ops.nms_oks_soft(kp, s, a, 0.5, max_keep=-2)
