"""Image geometry: resizing to a model's input, and the maps between image and input.

Two pixel conventions meet here, each stated where it is used:

- Boxes are ``xyxy`` float32 with pixel *edges* as units, as COCO boxes are:
  the image spans ``[0, W] x [0, H]`` and pixel ``(i, j)`` covers ``[i, i + 1]
  x [j, j + 1]``. A resize by ``s`` (OpenCV's half-pixel aligned resize) is
  then exactly ``x -> s * x``, so the maps between image and model input
  (:func:`letterbox`, :func:`stretch`, :func:`boxes_to_input`,
  :func:`boxes_to_image`) are plain scale-and-shift. Keypoints are pixel
  centres (edge + 0.5): :func:`points_to_image` maps them back.
- Top-down crops (:func:`boxes_to_center_scale`, :func:`crop_matrices`,
  :func:`warp_crops`) follow OpenCV's convention (integer coordinates are
  pixel centres) and MMPose's crop: the box centre maps to ``(w / 2, h / 2)``
  of the model input, so models trained with MMPose see what they were
  trained on. Keypoints decoded in model-input pixels go back to the image
  through the inverse of the same matrix (:func:`invert_affine`,
  :func:`apply_affine`), so the convention cancels out.

Functions:
    letterbox: aspect-preserving resize onto a padded canvas (top-left or centred).
    stretch: plain resize to the model's input size.
    fit_height_size: the input size of a dynamic-width model for an image.
    letterbox_size: the smallest letterbox of a dynamic-input model for an image.
    resize_to_input: one of the three, as a model card's ``resize`` says.
    boxes_to_input, boxes_to_image: map boxes between image and input pixels.
    points_to_image: map keypoints (pixel centres) from input to image pixels.
    clip_boxes: clip boxes to the image and drop those left empty.
    box_iou: pairwise IoU of two sets of boxes.
    boxes_to_center_scale, crop_matrices, invert_affine, apply_affine,
    warp_crops: the affine crops of top-down pose.

OpenCV is imported only by the functions that resample images (``pip install
'edgepose[vision]'``); the rest needs NumPy alone.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgepose._arrays import check_boxes
from edgepose.images import check_image, import_cv2

__all__ = [
    "letterbox", "stretch", "fit_height_size", "letterbox_size", "resize_to_input",
    "boxes_to_input", "boxes_to_image", "points_to_image", "clip_boxes", "box_iou",
    "boxes_to_center_scale", "crop_matrices", "invert_affine", "apply_affine", "warp_crops",
]

ALIGNS = ("topleft", "center")

# ---------------------------------------------------------------------------
# Resizing and the maps between image and input pixels

def check_size_hw(size_hw: Sequence[int], name: str = "size_hw") -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size_hw)
        ok = all(float(v) == int(v) for v in size_hw)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be two positive ints (height, width), got {size_hw!r}.") from None
    if not ok or h <= 0 or w <= 0:
        raise ValueError(f"{name} must be two positive ints (height, width), got {size_hw!r}.")
    return h, w


def check_pad_value(pad_value: float | Sequence[float]) -> tuple[int, int, int]:
    """Three 0-255 ints (rounded) for the padding; a model card may store floats."""
    values = (pad_value,) * 3 if np.isscalar(pad_value) else tuple(pad_value)
    try:
        ok = len(values) == 3 and all(0 <= float(v) <= 255 for v in values)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"pad_value must be a number 0-255 or three of them (one per channel), got {pad_value!r}.")
    return tuple(int(round(float(v))) for v in values)  # type: ignore[return-value]


def letterbox(
    image: NDArray[np.uint8],
    size_hw: Sequence[int],
    *,
    pad_value: float | Sequence[float] = 114,
    align: str = "topleft",
) -> tuple[NDArray[np.uint8], float, tuple[float, float]]:
    """Resizes keeping the aspect ratio and pads to ``size_hw``.

    The image is scaled by ``scale = min(h / H, w / W)`` and placed at the
    top-left corner (YOLOX) or centred (NanoDet, offsets rounded down to
    whole pixels); the rest is ``pad_value``. The scale is applied exactly
    (bilinear resampling by ``cv2.warpAffine``; an integer-factor area
    reduction first when ``scale < 0.5``, to avoid aliasing), so
    :func:`boxes_to_input` / :func:`boxes_to_image` with ``scale`` and
    ``pad`` are the exact maps between image and canvas.

    Args:
        image: ``(H, W, 3)`` uint8.
        size_hw: canvas ``(h, w)``, the model's input size.
        pad_value: fill value 0-255 (rounded), one or three (in the image's
            channel order).
        align: ``"topleft"`` or ``"center"``.

    Returns:
        canvas ``(h, w, 3)`` uint8, ``scale`` (input pixels per image pixel)
        and ``(pad_x, pad_y)``, the canvas position of the image's top-left
        corner: ``x_input = scale * x_image + pad_x``.

    Raises:
        TypeError, ValueError: an invalid image, size, pad value or align.
        ImportError: OpenCV is not installed.
    """
    image = check_image(image)
    h, w = check_size_hw(size_hw)
    color = check_pad_value(pad_value)
    if align not in ALIGNS:
        raise ValueError(f"align must be 'topleft' or 'center', got {align!r}.")
    cv2 = import_cv2()
    src_h, src_w = image.shape[:2]
    scale = min(h / src_h, w / src_w)
    if align == "center":
        pad_x = float(math.floor((w - src_w * scale) / 2))
        pad_y = float(math.floor((h - src_h * scale) / 2))
    else:
        pad_x = pad_y = 0.0
    src = image
    factor = int(1.0 / scale) if scale < 0.5 else 1
    if factor >= 2:
        # Area reduction by ~factor, then the exact residual scale per axis.
        small_w, small_h = max(1, round(src_w / factor)), max(1, round(src_h / factor))
        src = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
    ax = scale * src_w / src.shape[1]
    ay = scale * src_h / src.shape[0]
    # Pixel-edge map u = a * x + pad, written for warpAffine's pixel centres.
    matrix = np.array([[ax, 0.0, pad_x + 0.5 * ax - 0.5],
                       [0.0, ay, pad_y + 0.5 * ay - 0.5]])
    canvas = cv2.warpAffine(src, matrix, (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=color)
    return canvas, float(scale), (pad_x, pad_y)


def stretch(
    image: NDArray[np.uint8], size_hw: Sequence[int]
) -> tuple[NDArray[np.uint8], tuple[float, float]]:
    """Resizes to ``size_hw`` without keeping the aspect ratio.

    Area interpolation when shrinking both axes, bilinear otherwise.

    Args:
        image: ``(H, W, 3)`` uint8.
        size_hw: output ``(h, w)``.

    Returns:
        the resized ``(h, w, 3)`` uint8 image and ``(scale_x, scale_y)`` =
        ``(w / W, h / H)``: ``x_input = scale_x * x_image``.

    Raises:
        TypeError, ValueError: an invalid image or size.
        ImportError: OpenCV is not installed.
    """
    image = check_image(image)
    h, w = check_size_hw(size_hw)
    cv2 = import_cv2()
    src_h, src_w = image.shape[:2]
    shrink = w <= src_w and h <= src_h
    out = cv2.resize(image, (w, h),
                     interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out, (w / src_w, h / src_h)


def _scale_pad(scale: float | Sequence[float], pad: Sequence[float]) -> tuple[float, float, float, float]:
    sx, sy = (scale, scale) if np.isscalar(scale) else tuple(scale)  # type: ignore[misc]
    px, py = pad
    sx, sy, px, py = float(sx), float(sy), float(px), float(py)
    if not (np.isfinite([sx, sy, px, py]).all() and sx > 0 and sy > 0):
        raise ValueError(
            f"scale must be positive and finite and pad finite, got scale={scale!r}, pad={pad!r}.")
    return sx, sy, px, py


def _boxes(boxes: ArrayLike) -> NDArray[np.float32]:
    b = np.asarray(boxes)
    if b.dtype.kind not in "fiu":
        raise TypeError(f"boxes must be a numeric array, got {b.dtype}.")
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must have shape (M, 4) as x1, y1, x2, y2, got {b.shape}.")
    return b.astype(np.float32, copy=False)


def boxes_to_input(
    boxes: ArrayLike, scale: float | Sequence[float], pad: Sequence[float] = (0.0, 0.0)
) -> NDArray[np.float32]:
    """Maps ``(M, 4)`` xyxy boxes from image to model-input pixels.

    ``x_input = scale_x * x_image + pad_x`` (and likewise for y), with
    ``scale`` and ``pad`` as returned by :func:`letterbox` or :func:`stretch`
    (``scale`` a float or ``(scale_x, scale_y)``). Returns a new float32 array.
    """
    b = _boxes(boxes)
    sx, sy, px, py = _scale_pad(scale, pad)
    mul = np.array([sx, sy, sx, sy], np.float32)
    add = np.array([px, py, px, py], np.float32)
    return b * mul + add


def boxes_to_image(
    boxes: ArrayLike, scale: float | Sequence[float], pad: Sequence[float] = (0.0, 0.0)
) -> NDArray[np.float32]:
    """Maps ``(M, 4)`` xyxy boxes from model-input to image pixels.

    The inverse of :func:`boxes_to_input`: ``x_image = (x_input - pad_x) /
    scale_x``. No clipping. Returns a new float32 array.
    """
    b = _boxes(boxes)
    sx, sy, px, py = _scale_pad(scale, pad)
    sub = np.array([px, py, px, py], np.float32)
    div = np.array([sx, sy, sx, sy], np.float32)
    return (b - sub) / div


def points_to_image(
    points: ArrayLike, scale: float | Sequence[float], pad: Sequence[float] = (0.0, 0.0)
) -> NDArray[np.float32]:
    """Maps ``(..., 2)`` xy points (pixel centres) from model-input to image pixels.

    The inverse of ``x_input = scale_x * x_image + pad_x`` on pixel edges,
    for points at pixel centres (edge + 0.5) on both sides:
    ``x_image = (x_input + 0.5 - pad_x) / scale_x - 0.5``. Points that are not
    found are the caller's to mark. Returns a new float32 array.

    Raises:
        ValueError: a last axis other than 2, a non-positive or non-finite
            scale, or a non-finite pad.
    """
    p = np.asarray(points, dtype=np.float32)
    if p.ndim < 1 or p.shape[-1] != 2:
        raise ValueError(f"points must have shape (..., 2) as x, y, got {p.shape}.")
    sx, sy, px, py = _scale_pad(scale, pad)
    return (p + 0.5 - np.array([px, py], np.float32)) / np.array([sx, sy], np.float32) - 0.5


def clip_boxes(boxes: ArrayLike, image_hw: Sequence[int]) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Clips ``(M, 4)`` xyxy boxes to the image ``[0, W] x [0, H]``.

    Returns:
        the clipped boxes (a new float32 array) and a ``(M,)`` mask of those
        that still have a positive width and height.

    Raises:
        TypeError, ValueError: boxes that are not a numeric ``(M, 4)``
            array, or an invalid ``image_hw``.
    """
    b = _boxes(boxes).copy()
    h, w = check_size_hw(image_hw, "image_hw")
    np.clip(b[:, 0::2], 0.0, float(w), out=b[:, 0::2])
    np.clip(b[:, 1::2], 0.0, float(h), out=b[:, 1::2])
    nonempty = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    return b, nonempty


def box_iou(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """Pairwise IoU ``(M, N)`` of ``(M, 4)`` and ``(N, 4)`` xyxy boxes.

    Boxes with no area (or inverted corners) have IoU 0 with everything.
    """
    a64, b64 = _boxes(a).astype(np.float64), _boxes(b).astype(np.float64)
    lt = np.maximum(a64[:, None, :2], b64[None, :, :2])
    rb = np.minimum(a64[:, None, 2:], b64[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a64[:, 2:] - a64[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b64[:, 2:] - b64[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def fit_height_size(image_hw: tuple[int, int], height: int, multiple: int) -> tuple[int, int]:
    """The input size for a dynamic-width model: ``height``, and the width the
    image's aspect ratio gives, rounded up to a multiple of ``multiple``.

    Raises:
        ValueError: a width over :data:`edgepose.card.MAX_INPUT_SIDE`."""
    from edgepose.card import MAX_INPUT_SIDE

    h, w = image_hw
    width = -(-max(1, round(w * height / h)) // multiple) * multiple
    if width > MAX_INPUT_SIDE:
        raise ValueError(
            f"A {h}x{w} image scaled to the card's input size height {height} is {width} "
            f"pixels wide, more than the {MAX_INPUT_SIDE} an input side may have "
            "(edgepose.card.MAX_INPUT_SIDE). Crop the image or lower the input size.")
    return height, width


def letterbox_size(image_hw: Sequence[int], longer_side: int, multiple: int) -> tuple[int, int]:
    """The smallest letterbox input of a model with a dynamic input size.

    The image is scaled so that its longer side is ``longer_side``; each
    scaled side (rounded to whole pixels) is then rounded up to a multiple of
    ``multiple``. A 640x427 landscape photo with ``longer_side=640`` and
    ``multiple=32`` gets a 448x640 input (``(h, w)``), 30% fewer pixels
    than 640x640; :func:`letterbox` then places it (Ultralytics' ``auto``
    letterbox gives the same size).

    Args:
        image_hw: the image ``(H, W)``.
        longer_side: the input's longer side in pixels, a positive multiple
            of ``multiple``.
        multiple: both input sides are multiples of it (the model's largest
            stride), a positive int.

    Returns:
        the input ``(h, w)``.

    Raises:
        ValueError: an invalid size, a ``longer_side`` that is not a
            positive multiple of ``multiple``, or a side over
            :data:`edgepose.card.MAX_INPUT_SIDE`.
    """
    from edgepose.card import MAX_INPUT_SIDE

    h, w = check_size_hw(image_hw, "image_hw")
    if not (isinstance(multiple, (int, np.integer)) and multiple > 0):
        raise ValueError(f"multiple must be a positive int, got {multiple!r}.")
    if not (isinstance(longer_side, (int, np.integer)) and longer_side > 0
            and longer_side % multiple == 0):
        raise ValueError(
            f"longer_side must be a positive multiple of {multiple}, got {longer_side!r}.")
    if longer_side > MAX_INPUT_SIDE:
        raise ValueError(f"longer_side must be at most {MAX_INPUT_SIDE} pixels "
                         f"(edgepose.card.MAX_INPUT_SIDE), got {longer_side}.")
    scale = longer_side / max(h, w)

    def side(n: int) -> int:
        return -(-max(1, round(n * scale)) // multiple) * multiple

    return side(h), side(w)


def resize_to_input(
    image: NDArray[np.uint8],
    resize: str,
    size_hw: Sequence[int],
    *,
    pad_value: float | Sequence[float] = 0,
    align: str = "topleft",
    size_multiple: int = 1,
) -> tuple[NDArray[np.uint8], tuple[float, float], tuple[float, float]]:
    """Resizes a whole image to a model input as a card's ``resize`` says.

    Args:
        image: ``(H, W, 3)`` uint8.
        resize: ``"letterbox"`` (:func:`letterbox` with ``align`` and
            ``pad_value``), ``"stretch"`` (:func:`stretch`) or
            ``"fit_height"`` (a top-left letterbox to :func:`fit_height_size`
            of ``size_hw``'s height and ``size_multiple``).
        size_hw: the model input ``(h, w)``.

    Returns:
        the canvas, ``(scale_x, scale_y)`` and ``(pad_x, pad_y)``:
        ``x_input = scale_x * x_image + pad_x`` on pixel edges.

    Raises:
        TypeError, ValueError: an invalid image, size, pad value, align or
            resize (``"affine"`` is for top-down crops: :func:`warp_crops`).
        ImportError: OpenCV is not installed.
    """
    if resize == "stretch":
        canvas, scale_xy = stretch(image, size_hw)
        return canvas, scale_xy, (0.0, 0.0)
    if resize == "fit_height":
        image = check_image(image)
        size_hw, align = fit_height_size(image.shape[:2], check_size_hw(size_hw)[0], size_multiple), "topleft"
    elif resize != "letterbox":
        raise ValueError(f"resize must be 'letterbox', 'stretch' or 'fit_height' for a whole "
                         f"image, got {resize!r}.")
    canvas, scale, pad = letterbox(image, size_hw, pad_value=pad_value, align=align)
    return canvas, (scale, scale), pad


# ---------------------------------------------------------------------------
# Affine crops of top-down pose (moved verbatim from edgepose.transforms)

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
