"""edgepose.ops.decode_yolo_pose / decode_yolo_dfl against the NumPy reference.

The reference (``tests/yolo_reference.py``) follows Ultralytics 8.x
``non_max_suppression`` + ``scale_boxes`` / ``scale_coords`` and the decode of
its exported graphs. Checked here: random outputs of every layout (channels
first and last, C = 1 and 3, K = 17 and 5, D = 2 and 3, batches of 1-3 with
per-image scale and pad), boundary cases (thresholds, ties, NaN, degenerate and
huge boxes, the candidate and detection limits), the real output of
yolo11n-pose on the COCO images, and ``decode_yolo_dfl`` against the graph's
own decode (the raw head cut off the real ONNX at test time, in tmp_path). The
end-to-end layout (x1, y1, x2, y2, score, class, keypoints) is checked on
synthetic rows only: no end-to-end pose model is in the shared models.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgepose import ops
from tests.yolo_reference import decode_yolo_dfl_ref, decode_yolo_pose_ref

COCO17_SIGMAS = np.asarray(ops.COCO17_SIGMAS)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def random_output(rng, n, a, c=1, k=17, d=3, *, size=640.0, n_people=6, channels_first=True,
                  score_ties=False, keypoint_noise=15.0):
    """A YOLO-pose-like raw output (N, 4 + C + K*D, A) (or channels last):
    anchors clustered around a few people so that suppression happens, and
    scores spread over [0, 1) (a few exact ties when score_ties)."""
    rows = np.empty((n, a, 4 + c + k * d), dtype=np.float32)
    for i in range(n):
        centres = rng.uniform(0, size, (n_people, 2))
        extent = rng.uniform(20, size / 3, (n_people, 2))
        pick = rng.integers(0, n_people, a)
        rows[i, :, :2] = centres[pick] + rng.normal(0, 6, (a, 2))
        rows[i, :, 2:4] = extent[pick] * rng.uniform(0.8, 1.2, (a, 2))
        scores = rng.random((a, c))
        if score_ties:
            scores = np.round(scores * 8) / 8
        rows[i, :, 4:4 + c] = scores
        pose = rng.normal(0, 40, (n_people, k, 2))
        kp = rows[i, :, None, :2] + pose[pick] + rng.normal(0, keypoint_noise, (a, k, 2))
        if d == 3:
            kp = np.concatenate((kp, rng.random((a, k, 1))), axis=2)
        rows[i, :, 4 + c:] = kp.reshape(a, k * d)
    return rows.transpose(0, 2, 1).copy() if channels_first else rows


def assert_same(got, want, *, atol=1e-4):
    """C detections == reference detections: same people in the same order
    (scores and classes exact), coordinates to atol."""
    assert len(got) == len(want)
    for g, (boxes, scores, classes, keypoints, kp_scores, _rows) in zip(got, want):
        assert isinstance(g, ops.YoloPoseDetections)
        assert g.boxes.dtype == np.float32 and g.keypoints.dtype == np.float32
        assert g.classes.dtype == np.intp
        np.testing.assert_array_equal(g.scores, scores)
        np.testing.assert_array_equal(g.classes, classes)
        np.testing.assert_allclose(g.boxes, boxes, rtol=0, atol=atol)
        np.testing.assert_allclose(g.keypoints, keypoints, rtol=0, atol=atol)
        np.testing.assert_array_equal(g.keypoint_scores, kp_scores)


def both(output, **kwargs):
    return ops.decode_yolo_pose(output, **kwargs), decode_yolo_pose_ref(
        np.asarray(output, np.float32).reshape((-1,) + np.shape(output)[-2:]), **kwargs)


def rows_output(rows):
    """One image's rows (A, channels) as a channels-first (1, channels, A) output."""
    return np.ascontiguousarray(np.asarray(rows, dtype=np.float32).T[None])


def person(cx, cy, w, h, score, k=2, d=3, classes=None):
    """One raw row: box, score(s), k keypoints at the box centre."""
    cls = [score] if classes is None else list(classes)
    kp = [cx, cy, 0.5][:d] * k
    return [cx, cy, w, h, *cls, *kp]


# --------------------------------------------------------------------------
# random outputs against the reference
# --------------------------------------------------------------------------

LAYOUTS = [
    # (channels_first, C, K, D)
    (True, 1, 17, 3), (False, 1, 17, 3), (True, 3, 17, 3), (False, 3, 5, 2),
    (True, 1, 5, 2), (False, 3, 17, 2), (True, 3, 5, 3),
]


@pytest.mark.arm64
@pytest.mark.parametrize("channels_first, c, k, d", LAYOUTS)
@pytest.mark.parametrize("seed", range(3))
def test_random_outputs_match_reference(channels_first, c, k, d, seed):
    rng = np.random.default_rng(seed * 101 + c * 7 + k + d)
    n = int(rng.integers(1, 4))
    out = random_output(rng, n, 300, c, k, d, channels_first=channels_first,
                        score_ties=seed == 2)
    scale = rng.uniform(0.3, 2.0, (n, 2))
    pad = rng.uniform(-20, 80, (n, 2))
    image_hw = rng.uniform(100, 700, (n, 2)) if seed != 1 else None
    for kwargs in (
        {"score_threshold": 0.25, "iou_threshold": 0.7},
        {"score_threshold": 0.05, "iou_threshold": 0.45, "max_detections": 7},
        {"score_threshold": 0.5, "iou_threshold": 0.3, "class_agnostic": True,
         "max_candidates": 40},
        {"score_threshold": 0.1, "nms": "none", "max_detections": 50},
        {"score_threshold": 0.3, "nms": "oks", "iou_threshold": 0.5,
             "sigmas": COCO17_SIGMAS if k == 17 else np.full(k, 0.05, np.float32)},
    ):
        got, want = both(out, num_classes=c, num_keypoints=k, keypoint_dims=d,
                         channels_first=channels_first, scale=scale, pad=pad,
                         image_hw=image_hw, **kwargs)
        assert_same(got, want)
        assert sum(len(g.scores) for g in got) > 0


@pytest.mark.arm64
def test_batch_is_per_image():
    """Image i of a batch decodes as image i alone with its own scale and pad."""
    rng = np.random.default_rng(5)
    out = random_output(rng, 3, 200)
    scale = np.array([[0.5, 0.5], [1.0, 2.0], [3.0, 1.5]])
    pad = np.array([[0.0, 80.0], [10.0, 0.0], [-5.0, 7.0]])
    hw = np.array([[480, 640], [300, 200], [900, 100]])
    batch = ops.decode_yolo_pose(out, scale=scale, pad=pad, image_hw=hw, score_threshold=0.1)
    for i in range(3):
        alone = ops.decode_yolo_pose(out[i], scale=scale[i], pad=pad[i], image_hw=hw[i],
                                     score_threshold=0.1)[0]
        for field_batch, field_alone in zip(batch[i], alone):
            np.testing.assert_array_equal(field_batch, field_alone)


@pytest.mark.arm64
def test_image_transform_and_clip():
    """x_image = (x_input - pad) / scale; boxes and keypoints clipped to the image."""
    out = rows_output([person(100, 60, 40, 20, 0.9, k=1), person(630, 10, 100, 100, 0.8, k=1)])
    det = ops.decode_yolo_pose(out, num_keypoints=1, scale=(2.0, 4.0), pad=(10.0, 20.0))[0]
    np.testing.assert_allclose(det.boxes[0], [(80 - 10) / 2, (50 - 20) / 4, (120 - 10) / 2,
                                              (70 - 20) / 4])
    np.testing.assert_allclose(det.keypoints[0, 0], [(100 - 10) / 2, (60 - 20) / 4])
    assert det.boxes[1, 1] < 0  # not clipped without image_hw
    det = ops.decode_yolo_pose(out, num_keypoints=1, scale=(2.0, 4.0), pad=(10.0, 20.0),
                               image_hw=(100, 250))[0]
    # x1 = (580 - 10) / 2 = 285 and x2 beyond W = 250; y1 = (-40 - 20) / 4 < 0
    np.testing.assert_allclose(det.boxes[1], [250, 0, 250, (60 - 20) / 4])
    np.testing.assert_allclose(det.keypoints[1, 0], [250, 0])  # (310, -2.5)


# --------------------------------------------------------------------------
# boundaries
# --------------------------------------------------------------------------

@pytest.mark.arm64
def test_no_candidate_gives_empty_results_of_the_right_shapes():
    out = np.zeros((2, 56, 100), dtype=np.float32)
    for det in ops.decode_yolo_pose(out):
        assert det.boxes.shape == (0, 4) and det.scores.shape == (0,)
        assert det.classes.shape == (0,) and det.keypoints.shape == (0, 17, 2)
        assert det.keypoint_scores.shape == (0, 17)
    assert ops.decode_yolo_pose(np.zeros((0, 56, 100), np.float32)) == []
    assert len(ops.decode_yolo_pose(np.zeros((1, 56, 0), np.float32))[0].scores) == 0


@pytest.mark.arm64
def test_every_anchor_a_candidate_8400():
    rng = np.random.default_rng(8)
    out = random_output(rng, 1, 8400, n_people=30)
    out[:, 4] = 0.5 + out[:, 4] / 2  # every score > 0.25
    got, want = both(out, score_threshold=0.25)
    assert_same(got, want)
    # All equal: without suppression the first 300 anchors, in anchor order.
    out[:, 4] = 0.9
    det = ops.decode_yolo_pose(out, nms="none")[0]
    assert len(det.scores) == 300
    np.testing.assert_array_equal(det.boxes[:, 0], out[0, 0, :300] - out[0, 2, :300] / 2)


@pytest.mark.arm64
def test_score_threshold_is_strict_and_compared_in_double():
    f32 = np.float32(0.3)
    out = rows_output([person(50, 50, 10, 10, f32), person(200, 200, 10, 10, 0.25)])
    assert len(ops.decode_yolo_pose(out, num_keypoints=2, score_threshold=0.25)[0].scores) == 1
    # float32(0.3) = 0.30000001... > 0.3, but not > itself.
    assert len(ops.decode_yolo_pose(out, num_keypoints=2, score_threshold=0.3)[0].scores) == 1
    assert len(ops.decode_yolo_pose(out, num_keypoints=2,
                                    score_threshold=float(f32))[0].scores) == 0
    # thresholds beyond float32 are legal: nothing is above 1e39, everything above -1e39
    assert len(ops.decode_yolo_pose(out, num_keypoints=2, score_threshold=1e39)[0].scores) == 0
    assert len(ops.decode_yolo_pose(out, num_keypoints=2, score_threshold=-1e39)[0].scores) == 2
    # a negative IoU threshold keeps one person per class (IoU 0 > -1)
    assert len(ops.decode_yolo_pose(out, num_keypoints=2, score_threshold=0,
                                    iou_threshold=-1.0)[0].scores) == 1


@pytest.mark.arm64
def test_equal_scores_are_visited_by_anchor_index():
    # anchors 0 and 2 coincide (IoU 1) with equal scores: anchor 0 is kept;
    # anchor 1 lies far away with the same score and comes second.
    out = rows_output([person(50, 50, 20, 20, 0.6), person(300, 300, 20, 20, 0.6),
                       person(50, 50, 20, 20, 0.6)])
    det = ops.decode_yolo_pose(out, num_keypoints=2)[0]
    np.testing.assert_array_equal(det.boxes[:, 0], [40, 290])
    # identical boxes survive an IoU threshold of 1 (IoU 1 is not > 1)
    assert len(ops.decode_yolo_pose(out, num_keypoints=2, iou_threshold=1.0)[0].scores) == 3


@pytest.mark.arm64
def test_iou_exactly_at_threshold_is_kept():
    # [0, 0, 10, 10] and [0, 0, 10, 20]: IoU 100 / 200 = 0.5 exactly
    out = rows_output([person(5, 5, 10, 10, 0.9), person(5, 10, 10, 20, 0.8)])
    assert len(ops.decode_yolo_pose(out, num_keypoints=2, iou_threshold=0.5)[0].scores) == 2
    assert len(ops.decode_yolo_pose(out, num_keypoints=2,
                                    iou_threshold=np.nextafter(0.5, 0))[0].scores) == 1
    # [0, 0, 10, 10] and [5, 0, 15, 10]: IoU 1/3
    out = rows_output([person(5, 5, 10, 10, 0.9), person(10, 5, 10, 10, 0.8)])
    assert len(ops.decode_yolo_pose(out, num_keypoints=2, iou_threshold=1 / 3)[0].scores) == 2
    assert len(ops.decode_yolo_pose(out, num_keypoints=2, iou_threshold=0.33)[0].scores) == 1


@pytest.mark.arm64
def test_classes_suppress_only_their_own_unless_agnostic():
    out = rows_output([person(50, 50, 20, 20, None, classes=[0.9, 0.1, 0.2]),
                       person(51, 50, 20, 20, None, classes=[0.1, 0.8, 0.2]),
                       person(52, 50, 20, 20, None, classes=[0.7, 0.1, 0.2])])
    det = ops.decode_yolo_pose(out, num_classes=3, num_keypoints=2)[0]
    np.testing.assert_array_equal(det.classes, [0, 1])
    np.testing.assert_allclose(det.scores, [0.9, 0.8])
    det = ops.decode_yolo_pose(out, num_classes=3, num_keypoints=2, class_agnostic=True)[0]
    np.testing.assert_array_equal(det.classes, [0])


@pytest.mark.arm64
def test_best_class_is_the_first_maximum():
    out = rows_output([person(50, 50, 20, 20, None, classes=[0.2, 0.9, 0.9])])
    det = ops.decode_yolo_pose(out, num_classes=3, num_keypoints=2)[0]
    np.testing.assert_array_equal(det.classes, [1])


@pytest.mark.arm64
def test_nan_scores_are_no_candidates():
    nan = np.nan
    out = rows_output([person(50, 50, 20, 20, nan), person(200, 50, 20, 20, 0.5)])
    det = ops.decode_yolo_pose(out, num_keypoints=2)[0]
    np.testing.assert_allclose(det.scores, [0.5])
    # NaN in one class of three: no candidate, even with another class at 0.9
    out = rows_output([person(50, 50, 20, 20, None, classes=[0.9, nan, 0.1])])
    assert len(ops.decode_yolo_pose(out, num_classes=3, num_keypoints=2)[0].scores) == 0
    # +inf is a score like any other
    out = rows_output([person(50, 50, 20, 20, np.inf)])
    assert ops.decode_yolo_pose(out, num_keypoints=2)[0].scores.tolist() == [np.inf]


@pytest.mark.arm64
@pytest.mark.parametrize("column", [0, 1, 2, 3, 5, 6, 7, 9])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_candidates_with_non_finite_box_or_keypoints_are_dropped(column, value):
    row = person(50, 50, 20, 20, 0.9)  # keypoint values in columns 5..10
    row[column] = value
    out = rows_output([row, person(300, 50, 20, 20, 0.5)])
    for nms in ("box", "oks", "none"):
        det = ops.decode_yolo_pose(out, num_keypoints=2, nms=nms, sigmas=[0.1, 0.1])[0]
        np.testing.assert_allclose(det.scores, [0.5])


@pytest.mark.arm64
def test_zero_size_boxes_never_suppress():
    out = rows_output([person(50, 50, 0, 0, 0.9), person(50, 50, 0, 0, 0.8),
                       person(50, 50, 0, 10, 0.7)])
    got, want = both(out, num_keypoints=2)
    assert_same(got, want)
    assert len(got[0].scores) == 3


@pytest.mark.arm64
def test_huge_coordinates():
    big = 1e38
    out = rows_output([person(big, big, big, big, 0.9), person(3e38, 50, 3e38, 10, 0.8),
                       person(50, 50, 20, 20, 0.7)])
    got, want = both(out, num_keypoints=2)
    assert_same(got, want, atol=0)
    # cx + w / 2 overflows float32 for the second: dropped
    np.testing.assert_allclose(got[0].scores, [0.9, 0.7])
    b = np.float32(big)
    np.testing.assert_array_equal(got[0].boxes[0], [b - b / 2, b - b / 2, b + b / 2, b + b / 2])
    # a tiny scale sends finite input coordinates beyond float32: inf, or the clip
    det = ops.decode_yolo_pose(out, num_keypoints=2, scale=(1e-3, 1e-3))[0]
    assert np.isinf(det.boxes[0]).all()
    det = ops.decode_yolo_pose(out, num_keypoints=2, scale=(1e-3, 1e-3), image_hw=(10, 20))[0]
    np.testing.assert_array_equal(det.boxes[0], [20, 10, 20, 10])


@pytest.mark.arm64
def test_max_candidates_and_max_detections_cut():
    rng = np.random.default_rng(11)
    out = random_output(rng, 2, 500, c=3, k=5, d=2)
    for max_candidates in (1, 2, 17, 499, 500, 10**12):
        for max_detections in (1, 3, 300, 10**12):
            # OKS NMS grows a prefix of the ranked candidates until it keeps
            # max_detections: the small limits exercise the growth
            for nms in ("box", "none", "oks"):
                got, want = both(out, num_classes=3, num_keypoints=5, keypoint_dims=2,
                                 score_threshold=0.05, max_candidates=max_candidates,
                                 max_detections=max_detections, nms=nms,
                                 sigmas=np.full(5, 0.08, np.float32), iou_threshold=0.3)
                assert_same(got, want)
            assert all(len(g.scores) <= min(max_candidates, max_detections) for g in got)
    # max_candidates=1 keeps the best candidate only
    det = ops.decode_yolo_pose(out, num_classes=3, num_keypoints=5, keypoint_dims=2,
                               score_threshold=0.05, max_candidates=1)[0]
    assert det.scores.tolist() == [out[0, 4:7].max()]


@pytest.mark.arm64
def test_oks_nms_with_few_detections_of_many_duplicates():
    """60 near-duplicate poses per person, each person's ranked after the one
    before: OKS NMS must look far past the first 2 * max_detections
    candidates to find the next person."""
    rng = np.random.default_rng(12)
    people, copies, k = 6, 60, 17
    centres = np.stack([np.arange(people) * 100.0 + 50, np.full(people, 200.0)], axis=1)
    rows = []
    for p in range(people):
        pose = centres[p] + rng.normal(0, 20, (k, 2))
        for j in range(copies):
            kp = np.concatenate((pose + rng.normal(0, 0.5, (k, 2)), np.ones((k, 1))), axis=1)
            rows.append([*centres[p], 60, 120, 0.9 - 0.1 * p - 0.001 * j, *kp.ravel()])
    out = rows_output(rng.permutation(np.array(rows, np.float32)))  # anchors in any order
    kwargs = {"nms": "oks", "sigmas": COCO17_SIGMAS, "score_threshold": 0.0}
    for max_detections in (1, 2, 3, 5, 6, 7, 300):
        got, want = both(out, max_detections=max_detections, **kwargs)
        assert_same(got, want)
        np.testing.assert_allclose(got[0].scores, (0.9 - 0.1 * np.arange(people))[:max_detections],
                                   rtol=1e-6)


@pytest.mark.arm64
def test_two_keypoint_dims_scores_are_the_persons():
    out = rows_output([[50, 50, 20, 20, 0.9, 1, 2, 3, 4]])
    det = ops.decode_yolo_pose(out, num_keypoints=2, keypoint_dims=2)[0]
    np.testing.assert_allclose(det.keypoint_scores, [[0.9, 0.9]])
    np.testing.assert_allclose(det.keypoints, [[[1, 2], [3, 4]]])


@pytest.mark.arm64
def test_oks_nms_suppresses_by_keypoints():
    # same box, poses far apart: box NMS keeps one, OKS NMS both
    a = [50, 50, 40, 40, 0.9, 40, 40, 1, 60, 60, 1]
    b = [50, 50, 40, 40, 0.8, 10, 90, 1, 90, 10, 1]
    out = rows_output([a, b])
    assert len(ops.decode_yolo_pose(out, num_keypoints=2)[0].scores) == 1
    det = ops.decode_yolo_pose(out, num_keypoints=2, nms="oks", sigmas=[0.1, 0.1],
                               iou_threshold=0.5)[0]
    assert len(det.scores) == 2
    got, want = both(out, num_keypoints=2, nms="oks", sigmas=[0.1, 0.1], iou_threshold=0.5)
    assert_same(got, want)


@pytest.mark.arm64
def test_end_to_end_rows():
    rng = np.random.default_rng(3)
    m, k, d = 40, 17, 3
    rows = np.empty((2, m, 6 + k * d), np.float32)
    xy = rng.uniform(0, 500, (2, m, 2))
    rows[..., :2] = xy
    rows[..., 2:4] = xy + rng.uniform(5, 100, (2, m, 2))
    rows[..., 4] = np.round(rng.random((2, m)) * 10) / 10  # ties
    rows[..., 5] = rng.integers(0, 2, (2, m))
    rows[..., 6:] = rng.uniform(0, 500, (2, m, k * d))
    rows[0, 3, 5] = 7     # a class out of range: dropped
    rows[0, 4, 5] = np.nan
    rows[1, 5, 8] = np.inf  # a keypoint: dropped
    rows[1, 5, 4] = 0.0
    for kwargs in ({}, {"max_detections": 5, "score_threshold": 0.5},
                   {"nms": "oks", "image_hw": (300, 400), "scale": (0.5, 0.5), "pad": (3.0, 4.0)}):
        got, want = both(rows, end_to_end=True, num_classes=2, **kwargs)
        assert_same(got, want)
    det = ops.decode_yolo_pose(rows, end_to_end=True, num_classes=2, score_threshold=-1)
    assert len(det[0].scores) == m - 2 and len(det[1].scores) == m - 1
    assert (np.diff(det[0].scores) <= 0).all()
    # the boxes are x1, y1, x2, y2 as given
    first = np.flatnonzero(rows[1, :, 4] == rows[1, :, 4].max())[0]
    np.testing.assert_array_equal(det[1].boxes[0], rows[1, first, :4])


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------

@pytest.mark.arm64
def test_other_float_precisions_views_and_read_only_inputs():
    rng = np.random.default_rng(4)
    out = random_output(rng, 2, 200)
    want = ops.decode_yolo_pose(out, score_threshold=0.1)
    before = out.copy()
    # a channels-last, read-only copy viewed back as channels first
    last = np.ascontiguousarray(out.transpose(0, 2, 1))
    last.setflags(write=False)
    got = ops.decode_yolo_pose(last.transpose(0, 2, 1), score_threshold=0.1)
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            np.testing.assert_array_equal(a, b)
    got = ops.decode_yolo_pose(out.astype(np.float64), score_threshold=0.1)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.scores, w.scores)
    # every other anchor of a wider array: strided
    wide = np.repeat(out, 2, axis=2)
    got = ops.decode_yolo_pose(wide[:, :, ::2], score_threshold=0.1)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.boxes, w.boxes)
    np.testing.assert_array_equal(out, before)
    # a 2-D array is a batch of one
    single = ops.decode_yolo_pose(out[1], score_threshold=0.1)
    assert len(single) == 1
    np.testing.assert_array_equal(single[0].boxes, want[1].boxes)
    assert len(ops.decode_yolo_pose(out.astype(np.float16), score_threshold=0.1)) == 2


@pytest.mark.arm64
def test_errors_name_the_field_and_the_fix():
    out = np.zeros((1, 56, 10), np.float32)
    with pytest.raises(TypeError, match="output must be a floating-point array, got int32. "
                                        "Quantized model outputs must be dequantized"):
        ops.decode_yolo_pose(out.astype(np.int32))
    with pytest.raises(TypeError, match="output must be a floating-point array, got bool"):
        ops.decode_yolo_pose(out.astype(bool))
    with pytest.raises(ValueError, match=r"output has 56 values per row \(axis 1 of "
                                         r"\(N, 4 \+ C \+ K\*D, A\)\), but num_classes=1, "
                                         r"num_keypoints=5 and keypoint_dims=3 need "
                                         r"4 \+ 1 \+ 5\*3 = 20"):
        ops.decode_yolo_pose(out, num_keypoints=5)
    with pytest.raises(ValueError, match="pass channels_first=False"):
        ops.decode_yolo_pose(out.transpose(0, 2, 1).copy())
    with pytest.raises(ValueError, match=r"6 \+ 17\*3 = 57 \(x1, y1, x2, y2, score, class"):
        ops.decode_yolo_pose(out, end_to_end=True)
    with pytest.raises(ValueError, match=r"output must have shape \(N, 4 \+ C \+ K\*D, A\) "
                                         r"\(or without the batch axis\), got \(56,\)"):
        ops.decode_yolo_pose(out[0, :, 0])
    cases = [
        ({"nms": "soft"}, "nms must be 'box', 'oks' or 'none', got 'soft'"),
        ({"num_classes": 0}, "num_classes must be an integer >= 1, got 0"),
        ({"num_keypoints": True}, "num_keypoints must be an integer >= 1, got True"),
        ({"keypoint_dims": 4}, "keypoint_dims must be an integer from 2 to 3, got 4"),
        ({"score_threshold": float("nan")}, "score_threshold must be a finite number, got nan"),
        ({"iou_threshold": "0.5x"}, "iou_threshold must be a finite number, got '0.5x'"),
        ({"max_detections": 0}, "max_detections must be an integer >= 1, got 0"),
        ({"max_candidates": 2.5}, "max_candidates must be an integer >= 1, got 2.5"),
        ({"scale": (0.0, 1.0)},
         r"scale must be positive and finite, got \[0.0, 1.0\] for image 0"),
        ({"scale": (1.0, 1.0, 1.0)},
         r"scale must have shape \(2,\) or \(1, 2\), one \(x, y\) scale per image, got \(3,\)"),
        ({"pad": (np.nan, 0)}, r"pad must be finite, got \[nan, 0.0\] for image 0"),
        ({"pad": "ab"}, "pad must be numbers"),
        ({"image_hw": (480, -1)}, r"image_hw must be positive and finite, got \[480.0, -1.0\]"),
        ({"image_hw": np.ones((2, 2))}, r"image_hw must have shape \(2,\) or \(1, 2\)"),
        ({"nms": "oks", "num_keypoints": 5, "keypoint_dims": 2, "num_classes": 42},
         "sigmas are required for nms='oks' with num_keypoints=5"),
        ({"nms": "oks", "sigmas": np.ones(5)}, r"sigmas must have shape \(17,\)"),
        ({"nms": "oks", "sigmas": np.zeros(17)}, "sigmas must be positive and finite"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            ops.decode_yolo_pose(out, **kwargs)


# --------------------------------------------------------------------------
# DFL
# --------------------------------------------------------------------------

def random_head(rng, n, input_hw, strides, r, c, k, d):
    a = sum((input_hw[0] // s) * (input_hw[1] // s) for s in strides)
    box_class = rng.normal(0, 3, (n, 4 * r + c, a)).astype(np.float32)
    kpts = rng.normal(0, 2, (n, k * d, a)).astype(np.float32)
    return box_class, kpts


@pytest.mark.parametrize("input_hw, strides, r, c, k, d", [
    ((64, 96), (8, 16, 32), 16, 1, 17, 3),
    ((32, 32), (8, 16, 32), 16, 3, 5, 2),
    ((48, 16), (16, 8), 8, 2, 3, 3),
    ((7, 5), (1,), 1, 1, 1, 2),
])
@pytest.mark.arm64
def test_dfl_matches_reference(input_hw, strides, r, c, k, d):
    rng = np.random.default_rng(sum(input_hw) + r + c + k + d)
    box_class, kpts = random_head(rng, 2, input_hw, strides, r, c, k, d)
    got = ops.decode_yolo_dfl(box_class, kpts, input_hw=input_hw, strides=strides, reg_max=r,
                              num_keypoints=k, keypoint_dims=d)
    want = decode_yolo_dfl_ref(box_class, kpts, input_hw=input_hw, strides=strides, reg_max=r,
                               num_keypoints=k, keypoint_dims=d)
    assert got.shape == (2, 4 + c + k * d, box_class.shape[2]) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)
    # strided inputs (channels-last memory) give the same
    bc_last = np.ascontiguousarray(box_class.transpose(0, 2, 1)).transpose(0, 2, 1)
    np.testing.assert_array_equal(
        ops.decode_yolo_dfl(bc_last, kpts[:, :, :], input_hw=input_hw, strides=strides,
                            reg_max=r, num_keypoints=k, keypoint_dims=d), got)


@pytest.mark.arm64
def test_dfl_anchor_geometry():
    """A sharp distribution on bin 2 of every side: a box 4 cells wide around
    each anchor point (gx + 0.5, gy + 0.5), times the stride."""
    h, w, r = 16, 32, 4
    a = (h // 8) * (w // 8) + (h // 16) * (w // 16)
    bc = np.full((1, 4 * r + 1, a), -1e4, np.float32)
    bc[0, [2, r + 2, 2 * r + 2, 3 * r + 2]] = 0.0
    bc[0, 4 * r] = 0.0  # class logit 0: score 0.5
    kp = np.zeros((1, 3, a), np.float32)  # raw 0: keypoint at the cell corner gx * stride
    out = ops.decode_yolo_dfl(bc, kp, input_hw=(h, w), strides=(8, 16), reg_max=r,
                              num_keypoints=1)
    # anchor 5: level 0 (2 x 4 cells), gy = 1, gx = 1; anchor 8: level 1, gy = gx = 0
    np.testing.assert_allclose(out[0, :, 5], [12, 12, 32, 32, 0.5, 8, 8, 0.5], atol=1e-4)
    np.testing.assert_allclose(out[0, :, 8], [8, 8, 64, 64, 0.5, 0, 0, 0.5], atol=1e-4)


@pytest.mark.arm64
def test_dfl_non_finite_logits_give_nan_sides():
    bc = np.zeros((1, 4 * 16 + 1, 1), np.float32)
    kp = np.zeros((1, 51, 1), np.float32)
    bc[0, 3] = np.nan     # left side: x and w
    bc[0, 16:32] = -np.inf  # top side, every bin -inf: y and h
    out = ops.decode_yolo_dfl(bc, kp, input_hw=(32, 32), strides=(32,))
    assert np.isnan(out[0, :4, 0]).all()
    bc = np.zeros((1, 4 * 16 + 1, 1), np.float32)
    bc[0, 64] = -np.inf
    kp[0, 2] = np.inf
    out = ops.decode_yolo_dfl(bc, kp, input_hw=(32, 32), strides=(32,))
    # uniform bins: distance 7.5 on every side
    np.testing.assert_allclose(out[0, :4, 0], [16, 16, 15 * 32, 15 * 32], rtol=1e-6)
    assert out[0, 4, 0] == 0.0 and out[0, 7, 0] == 1.0


@pytest.mark.arm64
def test_dfl_errors():
    bc = np.zeros((1, 65, 8400), np.float32)
    kp = np.zeros((1, 51, 8400), np.float32)
    ops.decode_yolo_dfl(bc, kp, input_hw=(640, 640))
    with pytest.raises(ValueError, match=r"the strides \(8, 16, 32\) on a 640 x 320 input give "
                                         "4200 anchors, but the outputs have A = 8400"):
        ops.decode_yolo_dfl(bc, kp, input_hw=(640, 320))
    with pytest.raises(ValueError, match=r"input_hw \(640, 644\) must be multiples of every "
                                         "stride, got stride 8"):
        ops.decode_yolo_dfl(bc, kp, input_hw=(640, 644))
    with pytest.raises(ValueError, match=r"keypoints must have shape \(N, K \* D, A\) = "
                                         r"\(1, 17\*2 = 34, 8400\)"):
        ops.decode_yolo_dfl(bc, kp, input_hw=(640, 640), keypoint_dims=2)
    with pytest.raises(ValueError, match="fewer than 4 \\* reg_max = 68"):
        ops.decode_yolo_dfl(bc, kp, input_hw=(640, 640), reg_max=17)
    with pytest.raises(ValueError, match=r"strides\[1\] must be an integer >= 1, got 0"):
        ops.decode_yolo_dfl(bc, kp, input_hw=(640, 640), strides=(8, 0))
    with pytest.raises(ValueError, match="input_hw must be the model input's"):
        ops.decode_yolo_dfl(bc, kp, input_hw=640)
    with pytest.raises(TypeError, match="box_class must be a floating-point array, got int64"):
        ops.decode_yolo_dfl(bc.astype(np.int64), kp, input_hw=(640, 640))


# --------------------------------------------------------------------------
# the real model
# --------------------------------------------------------------------------

YOLO_ONNX = "yolo_pose/yolo11n-pose.onnx"


@pytest.fixture(scope="module")
def yolo_session(models):
    ort = pytest.importorskip("onnxruntime")
    path = models / YOLO_ONNX
    if not path.is_file():
        pytest.fail(f"{path} is missing: the real YOLO-pose model is needed here.")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def yolo_outputs(yolo_session, coco):
    """(image, input tensor, output0, scale, pad) per COCO image: letterboxed
    centred to 640 x 640 with pad 114, RGB / 255, as Ultralytics predicts."""
    from edgepose.geometry import letterbox

    _, images = coco
    results = []
    for image in images.values():
        canvas, scale, pad = letterbox(image, (640, 640), align="center")
        x = np.ascontiguousarray(canvas[:, :, ::-1].transpose(2, 0, 1))[None]
        x = x.astype(np.float32) / np.float32(255)
        (out,) = yolo_session.run(["output0"], {"images": x})
        results.append((image, x, out, scale, pad))
    return results


@pytest.mark.parametrize("score_threshold", [0.25, 0.001])
def test_real_output_matches_reference(yolo_outputs, score_threshold):
    total = 0
    for image, _, out, scale, pad in yolo_outputs:
        kwargs = {"score_threshold": score_threshold, "scale": (scale, scale), "pad": pad,
                      "image_hw": image.shape[:2]}
        got, want = both(out, **kwargs)
        assert_same(got, want)
        total += len(got[0].scores)
        # the people are inside their image
        h, w = image.shape[:2]
        assert (got[0].boxes[:, 2] <= w).all() and (got[0].boxes[:, 3] <= h).all()
    assert total >= 4  # every image of data/coco shows at least one person


def test_real_outputs_as_a_batch(yolo_outputs):
    out = np.concatenate([o for _, _, o, _, _ in yolo_outputs])
    scale = [(s, s) for *_, s, _ in yolo_outputs]
    pad = [p for *_, p in yolo_outputs]
    hw = [img.shape[:2] for img, *_ in yolo_outputs]
    got, want = both(out, scale=scale, pad=pad, image_hw=hw, score_threshold=0.01)
    assert_same(got, want)
    got, want = both(out, scale=scale, pad=pad, image_hw=hw, nms="oks", iou_threshold=0.6,
                     sigmas=COCO17_SIGMAS)
    assert_same(got, want)


def _cut_tensors(model):
    """The raw head's tensors of an Ultralytics pose export, found by shape and
    use: the box-bin Concat (1, 64, A), the class-logit Concat (1, 1, A) that a
    Sigmoid reads, and the keypoint Concat (1, 51, A) before the decode."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [dim.dim_value for dim in v.type.tensor_type.shape.dim]
              for v in inferred.graph.value_info}
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    found = {}
    for node in model.graph.node:
        if node.op_type != "Concat" or len(node.input) != 3:
            continue
        name = node.output[0]
        shape = shapes.get(name)
        if not shape or len(shape) != 3 or shape[2] != 8400:
            continue
        uses = consumers.get(name, [])
        if shape[1] == 64 and "Reshape" in uses:
            found["box"] = name
        elif shape[1] == 1 and "Sigmoid" in uses:
            found["class"] = name
        elif shape[1] == 51 and "Reshape" in uses:
            found["keypoints"] = name
    assert set(found) == {"box", "class", "keypoints"}, found
    return found


def test_dfl_reproduces_the_graphs_decode(yolo_outputs, models, tmp_path):
    """The raw head cut off the real ONNX (in tmp_path, never in the repo),
    decoded by decode_yolo_dfl, equals the graph's own output0."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = onnx.load(str(models / YOLO_ONNX))
    names = _cut_tensors(model)
    cut = tmp_path / "head.onnx"
    onnx.utils.extract_model(str(models / YOLO_ONNX), str(cut), ["images"],
                             [names["box"], names["class"], names["keypoints"]])
    session = ort.InferenceSession(str(cut), providers=["CPUExecutionProvider"])
    for _, x, out, _, _ in yolo_outputs[:2]:
        box, cls, kpts = session.run([names["box"], names["class"], names["keypoints"]],
                                     {"images": x})
        decoded = ops.decode_yolo_dfl(np.concatenate((box, cls), axis=1), kpts,
                                      input_hw=(640, 640))
        assert decoded.shape == out.shape
        np.testing.assert_allclose(decoded[:, :4], out[:, :4], rtol=0, atol=1e-3)  # px
        np.testing.assert_allclose(decoded[:, 4:], out[:, 4:], rtol=0, atol=1e-3)
        # and the people decoded from it are the graph's people
        got = ops.decode_yolo_pose(decoded)[0]
        want = ops.decode_yolo_pose(out)[0]
        assert len(got.scores) == len(want.scores)
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)
