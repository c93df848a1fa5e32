"""Every threshold of edgepose.ops at its exact boundary, against the NumPy
references (tests/references.py), plus the precision edges of issue 14:
thresholds are Python floats compared in double on the side the reference
(MMPose / torchvision / OpenPose) keeps; box IoU is computed in double;
finite thresholds beyond float32 are legal; integer user data is accepted.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgepose import ops
from tests.references import nms_boxes_ref, oks_iou_ref, oks_nms_ref, soft_oks_nms_ref

pytestmark = pytest.mark.arm64


# --------------------------------------------------------------------------
# nms_boxes: suppressed when IoU > iou_threshold (torchvision.ops.nms)
# --------------------------------------------------------------------------

def _iou(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def test_box_iou_exactly_at_the_threshold_is_kept():
    boxes = np.float32([[0, 0, 3, 1], [1, 0, 4, 1]])  # IoU 2 / 4
    scores = np.float32([0.9, 0.8])
    assert ops.nms_boxes(boxes, scores, 0.5).tolist() == [0, 1]
    assert ops.nms_boxes(boxes, scores, np.nextafter(0.5, 0)).tolist() == [0]
    assert nms_boxes_ref(boxes, scores, 0.5).tolist() == [0, 1]


def test_box_thresholds_one_double_ulp_either_side_match_the_reference():
    """In float32 the threshold just below an IoU rounded onto it, keeping a
    box the reference drops."""
    rng = np.random.default_rng(5)
    checked = 0
    for _ in range(300):
        boxes = np.sort(rng.integers(0, 40, (2, 2, 2)), axis=1).transpose(0, 2, 1)
        boxes = boxes.reshape(2, 4)[:, [0, 2, 1, 3]].astype(np.float32)
        if (boxes[:, 2] <= boxes[:, 0]).any() or (boxes[:, 3] <= boxes[:, 1]).any():
            continue
        iou = _iou(boxes[0], boxes[1])
        if iou == 0:
            continue
        scores = np.float32([0.9, 0.8])
        for t in (iou, np.nextafter(iou, -1.0), np.nextafter(iou, 2.0)):
            assert ops.nms_boxes(boxes, scores, t).tolist() == \
                nms_boxes_ref(boxes, scores, t).tolist(), (boxes.tolist(), t)
        checked += 1
    assert checked > 100


def test_box_iou_in_double_for_huge_extents():
    """(1e38 - 0) * 10 overflows float32: the IoU was inf / inf; 0.05 is right."""
    boxes = np.float32([[0, 0, 1e38, 10], [0, 5, 1e38, 100]])
    scores = np.float32([0.9, 0.8])
    assert ops.nms_boxes(boxes, scores, 0.5).tolist() == [0, 1]
    assert nms_boxes_ref(boxes, scores, 0.5).tolist() == [0, 1]
    assert ops.nms_boxes(boxes, scores, 0.01).tolist() == [0]
    huge = np.float32([[-3e38, -3e38, 3e38, 3e38], [-3e38, 0, 3e38, 3e38]])
    assert ops.nms_boxes(huge, scores, 0.5).tolist() == nms_boxes_ref(huge, scores, 0.5).tolist()


@pytest.mark.parametrize("threshold", [1e39, -1e39, 1e300, -0.0])
def test_box_thresholds_beyond_float32(threshold):
    """1e39 is "larger than every IoU" (keep all); a negative one drops every
    box of the group after the first."""
    rng = np.random.default_rng(6)
    xy = rng.uniform(0, 50, (20, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 30, (20, 2))], axis=1).astype(np.float32)
    scores = rng.random(20).astype(np.float32)
    got = ops.nms_boxes(boxes, scores, threshold)
    np.testing.assert_array_equal(got, nms_boxes_ref(boxes, scores, threshold))


def test_integer_boxes_and_scores_are_accepted():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]])
    scores = np.array([3, 5, 1])
    got = ops.nms_boxes(boxes, scores, 0.5)
    assert got.tolist() == [1, 2]
    np.testing.assert_array_equal(got, ops.nms_boxes(boxes.astype(np.float32),
                                                     scores.astype(np.float32), 0.5))
    assert ops.nms_boxes(np.array([[0, 0, 10, 10]], np.uint16), [1], 0.5).tolist() == [0]


# --------------------------------------------------------------------------
# nms_oks: suppressed when OKS > threshold (MMPose oks_nms keeps oks <= thr)
# --------------------------------------------------------------------------

def _nine_of_ten():
    """Two poses whose OKS is exactly 0.9: 9 identical keypoints, one far."""
    kp = np.zeros((2, 10, 2), np.float32)
    kp[:, :, 0] = np.arange(10)
    kp[1, 9] = (1e6, 1e6)
    sigmas = np.full(10, 0.1, np.float32)
    areas = np.float32([100.0, 100.0])
    scores = np.float32([0.9, 0.8])
    oks = oks_iou_ref(kp[0], kp[1:], 100.0, areas[1:], sigmas)[0]
    assert oks == 0.9
    return kp, scores, areas, sigmas


def test_oks_exactly_at_the_threshold_is_kept():
    kp, scores, areas, sigmas = _nine_of_ten()
    for t, want in ((0.9, [0, 1]), (np.nextafter(0.9, 0), [0]), (np.nextafter(0.9, 1), [0, 1])):
        assert oks_nms_ref(kp, scores, areas, t, sigmas).tolist() == want
        assert ops.nms_oks(kp, scores, areas, t, sigmas).tolist() == want, t


@pytest.mark.parametrize("threshold", [1e39, -1e39])
def test_oks_thresholds_beyond_float32(threshold):
    kp, scores, areas, sigmas = _nine_of_ten()
    want = oks_nms_ref(kp, scores, areas, threshold, sigmas)
    np.testing.assert_array_equal(ops.nms_oks(kp, scores, areas, threshold, sigmas), want)


def test_integer_keypoints_areas_and_sigmas_are_accepted():
    kp, scores, areas, sigmas = _nine_of_ten()
    got = ops.nms_oks(kp.astype(np.int64), (scores * 10).astype(np.int32),
                      areas.astype(np.int64), 0.5, np.ones(10, np.int8))
    want = ops.nms_oks(kp, scores, areas, 0.5, np.ones(10, np.float32))
    np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------
# nms_oks_soft: linear rescoring where OKS >= threshold (MMPose soft_oks_nms)
# --------------------------------------------------------------------------

def test_soft_linear_rescores_at_exactly_the_threshold():
    kp, scores, areas, sigmas = _nine_of_ten()
    for t, rescored in ((0.9, True), (np.nextafter(0.9, 1), False)):
        keep, new = ops.nms_oks_soft(kp, scores, areas, t, sigmas, method="linear")
        want_keep, want_new = soft_oks_nms_ref(kp, scores, areas, t, sigmas, method="linear")
        np.testing.assert_array_equal(keep, want_keep)
        np.testing.assert_allclose(new, want_new, rtol=1e-6)
        second = np.float32(0.8 * (1 - 0.9)) if rescored else np.float32(0.8)
        np.testing.assert_allclose(new[1], second, rtol=1e-6)


@pytest.mark.parametrize("threshold", [1e-50, 1e-300, 1e39])
def test_soft_gaussian_widths_beyond_float32(threshold):
    """A width of 1e-50 was narrowed to float32 0 and rejected as
    "the C core rejected its arguments (status -1)"."""
    rng = np.random.default_rng(7)
    kp = rng.uniform(0, 30, (6, 10, 2)).astype(np.float32)
    kp[1] = kp[0] + 0.5
    scores = rng.random(6).astype(np.float32)
    areas = np.full(6, 400.0, np.float32)
    sigmas = np.full(10, 0.1, np.float32)
    keep, new = ops.nms_oks_soft(kp, scores, areas, threshold, sigmas, max_keep=None)
    want_keep, want_new = soft_oks_nms_ref(kp, scores, areas, threshold, sigmas,
                                           max_keep=None)
    np.testing.assert_array_equal(keep, want_keep)
    np.testing.assert_allclose(new, want_new, rtol=1e-6, atol=1e-30)
