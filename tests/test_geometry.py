"""edgepose.geometry: crop geometry (aspect fitting, matrices, inverses, a real
warp), the whole-image resizes and the maps back, clipping and IoU."""
from __future__ import annotations

import numpy as np
import pytest

from edgepose import geometry
from edgepose.geometry import (
    apply_affine,
    box_iou,
    boxes_to_center_scale,
    boxes_to_input,
    clip_boxes,
    crop_matrices,
    fit_height_size,
    invert_affine,
    letterbox,
    points_to_image,
    resize_to_input,
    stretch,
    warp_crops,
)


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


# ---------------------------------------------------------------------------
# The old homes of these functions still import them

def test_transforms_detectors_and_paf_are_aliases_of_geometry():
    from edgepose import detectors, paf, transforms

    for name in transforms.__all__:
        assert getattr(transforms, name) is getattr(geometry, name)
    for name in ("letterbox", "stretch", "boxes_to_input", "boxes_to_image"):
        assert getattr(detectors, name) is getattr(geometry, name)
    assert paf.fit_height_size is geometry.fit_height_size


# ---------------------------------------------------------------------------
# Points back from the model input, clipping, IoU

@pytest.mark.parametrize("scale, pad", [(0.5, (0.0, 0.0)), ((0.25, 0.75), (3.0, 10.0)),
                                        (2.0, (0.0, 17.0))])
def test_points_to_image_inverts_the_input_map_on_pixel_centres(scale, pad):
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 300, (3, 5, 2)).astype(np.float32)
    sx, sy = (scale, scale) if np.isscalar(scale) else scale
    # a point is the centre of a 0-size box at edge coordinate (p + 0.5)
    edges = np.concatenate([points + 0.5, points + 0.5], axis=-1).reshape(-1, 4)
    to_input = boxes_to_input(edges, scale, pad)[:, :2].reshape(points.shape) - 0.5
    back = points_to_image(to_input, scale, pad)
    assert back.dtype == np.float32 and back.shape == points.shape
    np.testing.assert_allclose(back, points, rtol=1e-5, atol=1e-3)
    # independent formula, per axis
    expected = np.stack([(to_input[..., 0] + 0.5 - pad[0]) / sx - 0.5,
                         (to_input[..., 1] + 0.5 - pad[1]) / sy - 0.5], axis=-1)
    np.testing.assert_allclose(back, expected, rtol=1e-6)


def test_points_to_image_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"points must have shape \(\.\.\., 2\) as x, y, got \(4, 3\)"):
        points_to_image(np.zeros((4, 3)), 1.0)
    with pytest.raises(ValueError, match="scale must be positive and finite"):
        points_to_image(np.zeros((4, 2)), 0.0)


def test_clip_boxes_clips_to_the_image_and_flags_empty_boxes():
    boxes = np.array([[-5, -5, 10, 10], [90, 40, 130, 70], [120, 0, 140, 10], [3, 3, 3, 8]],
                     np.float32)
    before = boxes.copy()
    clipped, nonempty = clip_boxes(boxes, (60, 100))
    np.testing.assert_array_equal(boxes, before)            # input untouched
    np.testing.assert_array_equal(
        clipped, [[0, 0, 10, 10], [90, 40, 100, 60], [100, 0, 100, 10], [3, 3, 3, 8]])
    assert nonempty.tolist() == [True, True, False, False]
    clipped, nonempty = clip_boxes(np.zeros((0, 4)), (60, 100))
    assert clipped.shape == (0, 4) and nonempty.shape == (0,)
    with pytest.raises(ValueError, match=r"image_hw must be two positive ints"):
        clip_boxes(boxes, (0, 100))


def _raster_iou(a, b):
    """IoU of integer boxes by counting the pixels they cover."""
    size = int(max(a.max(), b.max())) + 1
    def mask(box):
        m = np.zeros((size, size), bool)
        x1, y1, x2, y2 = (int(v) for v in box)
        m[y1:y2, x1:x2] = True
        return m
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            mp, mq = mask(p), mask(q)
            union = (mp | mq).sum()
            out[i, j] = (mp & mq).sum() / union if union else 0.0
    return out


def test_box_iou_matches_pixel_counting():
    rng = np.random.default_rng(2)
    xy = rng.integers(0, 40, (7, 2))
    a = np.concatenate([xy, xy + rng.integers(1, 20, (7, 2))], axis=1)
    xy = rng.integers(0, 40, (5, 2))
    b = np.concatenate([xy, xy + rng.integers(1, 20, (5, 2))], axis=1)
    b[0] = a[0]                                    # identical: 1
    b[1] = [100, 100, 110, 110]                    # disjoint: 0
    np.testing.assert_allclose(box_iou(a, b), _raster_iou(a, b), rtol=1e-12)
    assert box_iou(a, b)[0, 0] == 1.0
    assert box_iou(a, np.zeros((0, 4))).shape == (7, 0)
    assert box_iou([[0, 0, 0, 5]], [[0, 0, 0, 5]]).tolist() == [[0.0]]   # no area


# ---------------------------------------------------------------------------
# Whole-image resizing by the card's resize mode

def test_fit_height_size_rounds_the_width_up_to_the_multiple():
    assert fit_height_size((480, 640), 256, 8) == (256, 344)     # 341.3 -> 344
    assert fit_height_size((100, 100), 64, 1) == (64, 64)
    with pytest.raises(ValueError, match=r"is 65536 pixels wide, more than the 4096"):
        fit_height_size((10, 2560), 256, 8)


def test_resize_to_input_dispatches_on_the_resize_mode():
    pytest.importorskip("cv2")
    image = np.random.default_rng(3).integers(0, 256, (60, 100, 3), dtype=np.uint8)
    canvas, scale, pad = resize_to_input(image, "letterbox", (64, 64), pad_value=9, align="center")
    ref, s, ref_pad = letterbox(image, (64, 64), pad_value=9, align="center")
    np.testing.assert_array_equal(canvas, ref)
    assert scale == (s, s) and pad == ref_pad
    canvas, scale, pad = resize_to_input(image, "stretch", (32, 48))
    ref, ref_scale = stretch(image, (32, 48))
    np.testing.assert_array_equal(canvas, ref)
    assert scale == ref_scale and pad == (0.0, 0.0)
    # fit_height: the height of size_hw, the width from the aspect ratio, top-left
    canvas, scale, pad = resize_to_input(image, "fit_height", (30, 999), size_multiple=8,
                                         align="center")
    assert canvas.shape == (30, 56, 3) and scale == (0.5, 0.5) and pad == (0.0, 0.0)
    with pytest.raises(ValueError, match=r"resize must be 'letterbox', 'stretch' or 'fit_height' "
                                         r"for a whole image, got 'affine'"):
        resize_to_input(image, "affine", (64, 64))
