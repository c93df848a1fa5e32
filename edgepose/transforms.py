"""Geometry of top-down crops: boxes to aspect-fitted affine crops and back.

Coordinates follow OpenCV's convention (integer coordinates are pixel
centres), and crops follow MMPose's: the box centre maps to ``(w / 2, h / 2)``
of the model input, so models trained with MMPose see what they were trained
on. Keypoints decoded in model-input pixels go back to the image through the
inverse of the same matrix, so the convention cancels out.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgepose._arrays import check_boxes

__all__ = ["boxes_to_center_scale", "crop_matrices", "invert_affine", "apply_affine", "warp_crops"]


def boxes_to_center_scale(
    boxes: ArrayLike, aspect_ratio: float, padding: float = 1.25
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Centres and sizes of aspect-fitted crops around xyxy boxes.

    The box is enlarged by ``padding`` about its centre, then widened (never
    shrunk) along one axis to ``aspect_ratio`` = width / height of the model
    input, as MMPose's ``bbox_xyxy2cs`` + ``fix_aspect_ratio`` do.

    Args:
        boxes: ``(N, 4)`` xyxy in image pixels.
        aspect_ratio: model input width / height.
        padding: enlargement factor of the box.

    Returns:
        centres ``(N, 2)`` and sizes ``(N, 2)`` as (w, h), float32.

    Raises:
        ValueError: wrong shape, non-finite values, or a box with zero or
            negative width or height.
    """
    b = check_boxes(boxes).astype(np.float64)
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    centers = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)
    w = w * padding
    h = h * padding
    wider = w > h * aspect_ratio
    sizes = np.stack([np.where(wider, w, h * aspect_ratio), np.where(wider, w / aspect_ratio, h)], axis=1)
    return centers.astype(np.float32), sizes.astype(np.float32)


def crop_matrices(
    centers: ArrayLike, sizes: ArrayLike, output_hw: tuple[int, int]
) -> NDArray[np.float64]:
    """Affine matrices ``(N, 2, 3)`` mapping image pixels into crops.

    The region of ``size`` (w, h) around ``center`` maps onto an
    ``output_hw`` input, the centre to ``(out_w / 2, out_h / 2)``.
    """
    c = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    s = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    out_h, out_w = output_hw
    scale_x = out_w / s[:, 0]
    scale_y = out_h / s[:, 1]
    m = np.zeros((len(c), 2, 3), dtype=np.float64)
    m[:, 0, 0] = scale_x
    m[:, 1, 1] = scale_y
    m[:, 0, 2] = out_w / 2 - scale_x * c[:, 0]
    m[:, 1, 2] = out_h / 2 - scale_y * c[:, 1]
    return m


def invert_affine(matrices: ArrayLike) -> NDArray[np.float64]:
    """Inverses of ``(N, 2, 3)`` affine matrices."""
    m = np.asarray(matrices, dtype=np.float64)
    full = np.zeros(m.shape[:-2] + (3, 3))
    full[..., :2, :] = m
    full[..., 2, 2] = 1.0
    return np.linalg.inv(full)[..., :2, :]


def apply_affine(points: ArrayLike, matrices: ArrayLike) -> NDArray[np.float32]:
    """Applies per-instance ``(N, 2, 3)`` matrices to ``(N, K, 2)`` points.

    A point that was not found stays not found: it comes out as (NaN, NaN)
    when it goes in with a NaN (or other non-finite) coordinate, or as
    exactly (-1, -1), the convention of :mod:`edgepose.ops`.
    """
    p = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrices, dtype=np.float64)
    out = np.einsum("nij,nkj->nki", m[:, :, :2], p) + m[:, None, :, 2]
    missing = ((p[..., 0] == -1) & (p[..., 1] == -1)) | ~np.isfinite(p).all(axis=-1)
    out[missing] = np.nan
    return out.astype(np.float32)


def warp_crops(
    image: NDArray[np.uint8], matrices: NDArray[np.float64], output_hw: tuple[int, int],
    *, pad_value: int = 0,
) -> NDArray[np.uint8]:
    """Crops ``(N, out_h, out_w, 3)`` of a BGR image by bilinear affine warps."""
    from edgepose.images import import_cv2

    cv2 = import_cv2()

    out_h, out_w = output_hw
    crops = np.empty((len(matrices), out_h, out_w, image.shape[2]), dtype=image.dtype)
    for i, m in enumerate(matrices):
        cv2.warpAffine(image, m, (out_w, out_h), dst=crops[i], flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=(pad_value,) * 3)
    return crops
