"""An RTMPose-signature ONNX (as MMPose / MMDeploy export it) loads unchanged.

The synthetic model (tests/models/synthetic.py) puts its SimCC peak where the
crop is brightest, so bright dots placed at known image positions must come
back at those positions through detector-free top-down inference: the affine
crop, the SimCC decoding and the inverse warp, checked exactly.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
cv2 = pytest.importorskip("cv2")

from edgepose import Estimator  # noqa: E402
from tests.models.synthetic import rtmpose_like  # noqa: E402


@pytest.fixture(scope="module", params=["N", 1])
def rtmpose(tmp_path_factory, request):
    return rtmpose_like(tmp_path_factory.mktemp("m") / "rtmpose-s.onnx", batch=request.param)


def _dots(points, shape=(480, 640)):
    """Gaussian blobs (sigma 3 px) with a unique brightest pixel at each point."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    gray = np.zeros(shape)
    for x, y in points:
        gray = np.maximum(gray, np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 18.0))
    return np.repeat((gray * 255).round().astype(np.uint8)[..., None], 3, axis=2)


def test_recognised_by_signature_and_decodes_dots_in_image_pixels(rtmpose):
    dots = [(100, 120), (400, 300), (600, 60)]
    image = _dots(dots)
    boxes = [[x - 40, y - 60, x + 40, y + 60] for x, y in dots]
    with Estimator(rtmpose) as est:
        assert est.card.head == "simcc" and est.card.keypoints == "coco17"
        poses = est(image, boxes=boxes)
    assert len(poses) == 3
    for (x, y), kp, sc in zip(dots, poses.keypoints, poses.scores):
        # one crop pixel is 150 / 256 image pixels; the peak is found within
        # half a crop pixel (plus float rounding)
        np.testing.assert_allclose(kp, np.tile([x, y], (17, 1)), atol=0.35)
        assert (sc > 0).all()


def test_explicit_preset_loads_it_too(rtmpose):
    with Estimator(rtmpose, preset="rtmpose") as est:
        poses = est(_dots([(320, 240)]), boxes=[[280, 180, 360, 300]])
    np.testing.assert_allclose(poses.keypoints[0, 0], [320, 240], atol=0.35)


def test_batched_crops_match_one_by_one(rtmpose):
    dots = [(100, 120), (400, 300), (600, 60), (50, 400)]
    image = _dots(dots)
    boxes = np.array([[x - 40, y - 60, x + 40, y + 60] for x, y in dots], np.float32)
    with Estimator(rtmpose) as est:
        together = est(image, boxes=boxes)
        alone = [est(image, boxes=b[None]) for b in boxes]
    for i, single in enumerate(alone):
        np.testing.assert_array_equal(together.keypoints[i], single.keypoints[0])


def test_a_keypoint_not_found_is_nan_in_image_pixels_not_a_real_position(rtmpose):
    # Issue 15: in a black crop every SimCC logit is <= 0 (the normalised input is
    # negative), so SimCC finds nothing and the C core marks -1 / split_ratio =
    # (-0.5, -0.5) in input pixels; the crop's inverse used to carry that to a real
    # image position. It must come out NaN, with the decoded score (<= 0).
    from edgepose import ops
    from edgepose.transforms import boxes_to_center_scale, crop_matrices, invert_affine

    image = _dots([(500, 100)])                          # one dot, far from the 2nd box
    boxes = np.array([[460, 40, 540, 160], [75, 300, 175, 420]], np.float32)
    with Estimator(rtmpose) as est:
        poses = est(image, boxes=boxes)
        x = np.full((1, 17, 2 * 192), -2.0, np.float32)  # what a black crop gives
        y = np.full((1, 17, 2 * 256), -2.0, np.float32)
        mark, _ = ops.decode_simcc(x, y, 2.0)
    np.testing.assert_allclose(poses.keypoints[0], np.tile([500, 100], (17, 1)), atol=0.35)
    assert (poses.scores[0] > 0).all()
    assert np.isnan(poses.keypoints[1]).all()
    assert (poses.scores[1] <= 0).all()
    # what the old code did: the C core's mark through the crop's inverse (NumPy)
    c, s = boxes_to_center_scale(boxes[1:], 192 / 256, 1.25)
    inv = invert_affine(crop_matrices(c, s, (256, 192)))[0]
    np.testing.assert_array_equal(mark[0, 0], [-0.5, -0.5])
    legacy = inv[:, :2] @ mark[0, 0].astype(np.float64) + inv[:, 2]
    assert (legacy > 0).all() and legacy[0] < 640 and legacy[1] < 480  # a real position
    assert json.loads(poses.to_json())["people"][1]["keypoints"] == [[None, None]] * 17
    coco = np.array(poses.to_coco(1)[1]["keypoints"]).reshape(17, 3)
    np.testing.assert_array_equal(coco, 0.0)
