"""Crop geometry: aspect fitting, matrices, inverses, and a real warp."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose.transforms import (apply_affine, boxes_to_center_scale, crop_matrices,
                                 invert_affine, warp_crops)


def test_center_scale_pads_and_fits_aspect():
    centers, sizes = boxes_to_center_scale([[10, 20, 50, 100]], aspect_ratio=192 / 256, padding=1.25)
    np.testing.assert_allclose(centers, [[30, 60]])
    # 40 x 80 box -> 50 x 100 padded; 50 < 100 * 0.75, so widened to 75 x 100.
    np.testing.assert_allclose(sizes, [[75, 100]])
    _, sizes = boxes_to_center_scale([[0, 0, 200, 10]], aspect_ratio=0.75, padding=1.0)
    np.testing.assert_allclose(sizes, [[200, 200 / 0.75]])  # wide box: taller, never narrower


@pytest.mark.parametrize("box", [[5, 5, 5, 50], [10, 10, 0, 20], [0, 0, np.nan, 5]])
def test_degenerate_boxes_are_rejected(box):
    with pytest.raises(ValueError, match="zero or negative size|finite"):
        boxes_to_center_scale([box], 1.0)


def test_matrix_maps_box_centre_to_input_centre_and_round_trips():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 400, (5, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, 200, (5, 2))], axis=1)
    centers, sizes = boxes_to_center_scale(boxes, 0.75)
    m = crop_matrices(centers, sizes, (256, 192))
    mapped = apply_affine(centers[:, None, :], m)
    np.testing.assert_allclose(mapped[:, 0], np.tile([96, 128], (5, 1)), atol=1e-4)
    points = rng.uniform(0, 500, (5, 17, 2)).astype(np.float32)
    back = apply_affine(apply_affine(points, m), invert_affine(m))
    np.testing.assert_allclose(back, points, atol=1e-3)


def test_missing_keypoints_stay_missing():
    # not found: NaN in, NaN out; the C core's exact (-1, -1) also comes out NaN
    m = crop_matrices([[50, 50]], [[100, 100]], (64, 64))
    pts = np.array([[[-1, -1], [10, 10], [np.nan, np.nan], [np.nan, 3.0], [-1, 5]]], np.float32)
    out = apply_affine(pts, m)
    assert np.isnan(out[0, [0, 2, 3]]).all()
    expected = pts[0, [1, 4]] @ m[0, :, :2].T + m[0, :, 2]  # NumPy reference
    np.testing.assert_allclose(out[0, [1, 4]], expected, rtol=1e-6)


def test_warp_crops_puts_the_box_content_in_the_crop():
    pytest.importorskip("cv2")
    image = np.zeros((200, 300, 3), np.uint8)
    image[50:150, 100:200] = (0, 0, 255)  # a red square
    centers, sizes = boxes_to_center_scale([[100, 50, 200, 150]], 1.0, padding=2.0)
    m = crop_matrices(centers, sizes, (64, 64))
    crop = warp_crops(image, m, (64, 64))[0]
    # the square covers the middle half of the crop
    assert crop[32, 32].tolist() == [0, 0, 255]
    assert crop[4, 4].tolist() == [0, 0, 0]
    assert (crop[..., 2] > 128).mean() == pytest.approx(0.25, abs=0.03)
