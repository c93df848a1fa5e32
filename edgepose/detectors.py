"""Person detection for top-down pose: resize, decode, NMS, boxes in image pixels.

The stages are plain functions so each can be tested and timed on its own;
:class:`PersonDetector` chains them around a backend (an object with
``inputs``, ``outputs`` and ``run``, see ``edgepose.backends``).

Box coordinates are ``xyxy`` float32 with pixel *edges* as units, as COCO
boxes are: the image spans ``[0, W] x [0, H]`` and pixel ``(i, j)`` covers
``[i, i + 1] x [j, j + 1]``. In this convention a resize by ``s`` (OpenCV's
half-pixel aligned resize) is exactly ``x -> s * x``, so the maps between image
and model input are plain scale-and-shift.

Functions:
    letterbox: aspect-preserving resize onto a padded canvas.
    stretch: plain resize to the model's input size.
    boxes_to_input, boxes_to_image: map boxes between image and input pixels.
    decode_yolox: YOLOX-style grid outputs to boxes and person scores.
    decode_nanodet: NanoDet (GFL) outputs to boxes and person scores.

OpenCV is imported only by the functions that resample images (``pip install
'edgepose[vision]'``); the decoders need NumPy alone.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgepose._arrays import read_only
from edgepose._validate import is_int
from edgepose.images import check_image, import_cv2
from edgepose.ops import nms_boxes

__all__ = [
    "Detections",
    "PersonDetector",
    "boxes_to_image",
    "boxes_to_input",
    "decode_nanodet",
    "decode_yolox",
    "letterbox",
    "stretch",
]

_KINDS = ("yolox", "nanodet")
_RESIZES = ("letterbox", "stretch")
_ALIGNS = ("topleft", "center")
_LAYOUTS = ("NCHW", "NHWC")
_COLORS = ("BGR", "RGB")


# ---------------------------------------------------------------------------
# Results

@dataclass(frozen=True)
class Detections:
    """Person boxes in image pixels.

    Attributes:
        boxes: ``(M, 4)`` float32 ``x1, y1, x2, y2`` in image pixels (pixel
            edges: the image spans ``[0, W] x [0, H]``).
        scores: ``(M,)`` float32 confidences, in descending order when
            produced by :class:`PersonDetector`.

    The arrays are read-only copies; ``len(detections)`` is M and
    ``detections[i]``, ``[a:b]``, ``[mask]``, ``[indices]`` select boxes.
    """

    boxes: NDArray[np.float32]
    scores: NDArray[np.float32]

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32)
        scores = np.asarray(self.scores, dtype=np.float32)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must have shape (M, 4) as x1, y1, x2, y2, got {boxes.shape}.")
        if scores.shape != (boxes.shape[0],):
            raise ValueError(
                f"scores must have shape ({boxes.shape[0]},), one per box, got {scores.shape}.")
        object.__setattr__(self, "boxes", read_only(boxes))
        object.__setattr__(self, "scores", read_only(scores))

    @classmethod
    def empty(cls) -> Detections:
        """No detections: boxes ``(0, 4)`` and scores ``(0,)``."""
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def __getitem__(self, index: int | slice | ArrayLike) -> Detections:
        """Selects detections by int, slice, integer array or boolean mask."""
        n = len(self)
        if isinstance(index, (int, np.integer)):
            if not -n <= index < n:
                raise IndexError(f"detection index {index} out of range for {n} detections.")
            index = slice(int(index), int(index) + 1 if index != -1 else None)
        elif not isinstance(index, slice):
            index = np.asarray(index)
            if index.dtype == bool and index.shape != (n,):
                raise IndexError(f"a boolean mask must have shape ({n},), got {index.shape}.")
        return Detections(self.boxes[index], self.scores[index])


# ---------------------------------------------------------------------------
# Resizing and the maps between image and input pixels

def _size_hw(size_hw: Sequence[int], name: str = "size_hw") -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size_hw)
        ok = all(float(v) == int(v) for v in size_hw)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be two positive ints (height, width), got {size_hw!r}.") from None
    if not ok or h <= 0 or w <= 0:
        raise ValueError(f"{name} must be two positive ints (height, width), got {size_hw!r}.")
    return h, w


def _pad_color(pad_value: float | Sequence[float]) -> tuple[int, int, int]:
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
    h, w = _size_hw(size_hw)
    color = _pad_color(pad_value)
    if align not in _ALIGNS:
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
    h, w = _size_hw(size_hw)
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


# ---------------------------------------------------------------------------
# Decoders (NumPy only)

def _strides(strides: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(s) for s in strides)
    if not out or any(s <= 0 for s in out) or any(float(a) != b for a, b in zip(strides, out)):
        raise ValueError(f"strides must be positive ints, got {strides!r}.")
    return out


def _float_2d(name: str, value: ArrayLike, shape_text: str) -> NDArray[np.float32]:
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        raise TypeError(
            f"{name} must be a floating-point array, got {arr.dtype}. Quantized model "
            "outputs must be dequantized first: (q - zero_point) * scale.")
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape {shape_text} (or with a batch of 1), got {arr.shape}.")
    return arr.astype(np.float32, copy=False)


def _class_index(class_index: int, num_classes: int) -> int:
    if not is_int(class_index):
        raise TypeError(f"class_index must be an int, got {type(class_index).__name__}.")
    if not 0 <= class_index < num_classes:
        raise ValueError(
            f"class_index must be in [0, {num_classes}) for {num_classes} classes, got {class_index}.")
    return int(class_index)


def _yolox_grid(input_hw: tuple[int, int], strides: tuple[int, ...]) -> tuple[NDArray, NDArray]:
    """Cell indices (A, 2) as (x, y) and their strides (A,): stride by stride, row-major."""
    cells, per = [], []
    h, w = input_hw
    for s in strides:
        gh, gw = h // s, w // s
        ys, xs = np.mgrid[0:gh, 0:gw]
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        per.append(np.full(gh * gw, s))
    return (np.concatenate(cells).astype(np.float32),
            np.concatenate(per).astype(np.float32))


def decode_yolox(
    raw: ArrayLike,
    input_hw: Sequence[int],
    strides: Sequence[int] = (8, 16, 32),
    *,
    class_index: int = 0,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Decodes YOLOX-style outputs (anchor-free, one row per grid cell).

    Rows are the cells of each stride's ``(h // s, w // s)`` grid, row-major,
    strides in order. Each row is ``(dx, dy, log_w, log_h, objectness,
    class scores...)`` with objectness and class scores already
    sigmoid-activated (as YOLOX exports and the light person detector give
    them). ``cx = (dx + grid_x) * s``, ``w = exp(log_w) * s``.

    Args:
        raw: ``(A, 5 + C)`` or ``(1, A, 5 + C)``.
        input_hw: the model input ``(h, w)``.
        strides: the feature strides, in output order.
        class_index: the person class (0 in COCO-80 and one-class models).

    Returns:
        boxes ``(A, 4)`` float32 xyxy in model-input pixels (inf where the
        size overflows), and scores ``(A,)`` float32 = objectness * class score.

    Raises:
        TypeError: a non-floating ``raw``.
        ValueError: a wrong shape or anchor count, invalid strides or class.
    """
    r = _float_2d("raw", raw, "(A, 5 + C)")
    if r.shape[1] < 6:
        raise ValueError(
            f"raw must have shape (A, 5 + C) with C >= 1: box (4), objectness, class scores; "
            f"got {r.shape}.")
    cls = _class_index(class_index, r.shape[1] - 5)
    hw = _size_hw(input_hw, "input_hw")
    cells, per = _yolox_grid(hw, _strides(strides))
    if r.shape[0] != cells.shape[0]:
        raise ValueError(
            f"raw has {r.shape[0]} rows but input {hw[0]}x{hw[1]} with strides {tuple(strides)} "
            f"has {cells.shape[0]} grid cells; check input_hw and strides.")
    stride = per[:, None]
    centre = (r[:, 0:2] + cells) * stride
    with np.errstate(over="ignore"):
        half = np.exp(r[:, 2:4]) * stride * 0.5
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    scores = r[:, 4] * r[:, 5 + cls]
    return boxes.astype(np.float32, copy=False), scores.astype(np.float32, copy=False)


def decode_nanodet(
    cls_per_stride: Sequence[ArrayLike],
    dis_per_stride: Sequence[ArrayLike],
    input_hw: Sequence[int],
    strides: Sequence[int] = (8, 16, 32),
    *,
    reg_max: int = 7,
    class_index: int = 0,
    center_offset: float = 0.5,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Decodes NanoDet outputs (GFL head: sigmoid scores, distance distributions).

    Per stride ``s`` the grid is ``(ceil(h / s), ceil(w / s))``, row-major.
    Each of the four distances (left, top, right, bottom) is the expectation
    of a softmax over ``reg_max + 1`` bins, times ``s``, measured from the
    anchor point ``((x + center_offset) * s, (y + center_offset) * s)``:
    0.5 for NanoDet v0.x (NanoDet-m), 0 for NanoDet-Plus.

    Args:
        cls_per_stride: per stride ``(A_i, C)`` (or ``(1, A_i, C)``) class
            scores, already sigmoid-activated.
        dis_per_stride: per stride ``(A_i, 4 * (reg_max + 1))`` bin logits.
        input_hw: the model input ``(h, w)``.
        strides: the strides of the lists' entries.
        reg_max: the largest bin index (NanoDet: 7, so 8 bins).
        class_index: the person class (0 in COCO-80).
        center_offset: anchor point offset in cells.

    Returns:
        boxes ``(A, 4)`` float32 xyxy in model-input pixels and scores
        ``(A,)`` float32, strides concatenated in order.

    Raises:
        TypeError: non-floating outputs.
        ValueError: mismatched lists, shapes or anchor counts; invalid
            strides, reg_max or class.
    """
    st = _strides(strides)
    hw = _size_hw(input_hw, "input_hw")
    if len(cls_per_stride) != len(st) or len(dis_per_stride) != len(st):
        raise ValueError(
            f"cls_per_stride and dis_per_stride need one array per stride {st}, "
            f"got {len(cls_per_stride)} and {len(dis_per_stride)}.")
    if not is_int(reg_max) or reg_max < 1:
        raise ValueError(f"reg_max must be a positive int, got {reg_max!r}.")
    center_offset = float(center_offset)
    if not np.isfinite(center_offset):
        raise ValueError(f"center_offset must be finite, got {center_offset}.")
    bins = int(reg_max) + 1
    project = np.arange(bins, dtype=np.float32)
    all_boxes, all_scores = [], []
    cls = None
    for s, cls_raw, dis_raw in zip(st, cls_per_stride, dis_per_stride):
        c = _float_2d(f"cls (stride {s})", cls_raw, "(A, C)")
        d = _float_2d(f"dis (stride {s})", dis_raw, "(A, 4 * (reg_max + 1))")
        gh, gw = -(-hw[0] // s), -(-hw[1] // s)
        if c.shape[0] != gh * gw or d.shape[0] != gh * gw:
            raise ValueError(
                f"stride {s} of input {hw[0]}x{hw[1]} has {gh * gw} grid cells, got cls "
                f"{c.shape} and dis {d.shape}; check input_hw and strides.")
        if d.shape[1] != 4 * bins:
            raise ValueError(
                f"dis (stride {s}) must have 4 * (reg_max + 1) = {4 * bins} columns for "
                f"reg_max={reg_max}, got {d.shape}.")
        if cls is None:
            cls = _class_index(class_index, c.shape[1])
        logits = d.reshape(-1, 4, bins)
        e = np.exp(logits - logits.max(axis=2, keepdims=True))
        dist = (e @ project) / e.sum(axis=2) * s  # (A_i, 4): left, top, right, bottom
        ys, xs = np.mgrid[0:gh, 0:gw]
        px = (xs.ravel().astype(np.float32) + center_offset) * s
        py = (ys.ravel().astype(np.float32) + center_offset) * s
        all_boxes.append(np.stack(
            [px - dist[:, 0], py - dist[:, 1], px + dist[:, 2], py + dist[:, 3]], axis=1))
        all_scores.append(c[:, cls])
    boxes = np.concatenate(all_boxes).astype(np.float32, copy=False)
    scores = np.concatenate(all_scores).astype(np.float32, copy=False)
    return boxes, scores


# ---------------------------------------------------------------------------
# The detector

def _triple(name: str, value: Sequence[float], positive: bool = False) -> NDArray[np.float32]:
    arr = np.asarray(value, dtype=np.float64).ravel()
    if arr.shape != (3,) or not np.isfinite(arr).all() or (positive and (arr <= 0).any()):
        kind = "positive finite" if positive else "finite"
        raise ValueError(f"{name} must be three {kind} numbers (one per channel), got {value!r}.")
    return arr.astype(np.float32)


class PersonDetector:
    """Detects people: preprocess, run the backend, decode, threshold, NMS.

    Every model parameter is explicit (presets and model cards fill them in);
    everything is checked against the backend's inputs and outputs here, not
    on the first frame.

    Args:
        backend: an object with ``inputs`` / ``outputs`` (name, shape,
            dtype) and ``run({input_name: array}) -> {output_name: array}``,
            e.g. from ``edgepose.backends.open_backend``. The detector owns
            it: :meth:`close` closes it.
        kind: ``"yolox"`` (one ``(1, A, 5 + C)`` output; YOLOX and the light
            person detector) or ``"nanodet"`` (per-stride ``cls`` and ``dis``
            outputs).
        input_size: ``(h, w)``; defaults to the backend input's static size.
        layout: ``"NCHW"`` or ``"NHWC"``, the input tensor layout.
        color: ``"BGR"`` or ``"RGB"``, the channel order the model expects.
        mean, std: per-channel normalisation in the model's channel order,
            applied to 0-255 values: ``(x - mean) / std``.
        resize: ``"letterbox"`` or ``"stretch"``.
        align: letterbox placement, ``"topleft"`` or ``"center"``.
        pad_value: letterbox fill (0-255, before normalisation).
        class_index: the person class among the model's classes.
        strides: feature strides, in output order.
        reg_max: NanoDet only: largest distance bin (default 7).
        center_offset: NanoDet only: anchor point offset in cells (default 0.5).
        outputs: output names by role, when they cannot be inferred:
            ``{"raw": name}`` for yolox, ``{"cls_8": name, "dis_8": name,
            ...}`` (one pair per stride) for nanodet.
        input_name: the input to feed, when the backend has several.
        score_threshold: keep candidates scoring above this.
        iou_threshold: NMS suppresses boxes overlapping a better one by more.
        max_detections: keep at most this many (None for all).

    Raises:
        TypeError: ``backend`` lacks ``inputs``, ``outputs`` or ``run``.
        ValueError: an invalid option, or options that do not match the
            backend's inputs and outputs. (The backend is not closed when
            the constructor fails: it is still the caller's.)
    """

    def __init__(
        self,
        backend: Any,
        *,
        kind: str,
        input_size: Sequence[int] | None = None,
        layout: str = "NCHW",
        color: str = "BGR",
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        resize: str = "letterbox",
        align: str = "topleft",
        pad_value: float | Sequence[float] = 114,
        class_index: int = 0,
        strides: Sequence[int] = (8, 16, 32),
        reg_max: int | None = None,
        center_offset: float | None = None,
        outputs: Mapping[str, str] | None = None,
        input_name: str | None = None,
        score_threshold: float = 0.3,
        iou_threshold: float = 0.45,
        max_detections: int | None = 100,
    ) -> None:
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}.")
        if layout not in _LAYOUTS:
            raise ValueError(f"layout must be 'NCHW' or 'NHWC', got {layout!r}.")
        if color not in _COLORS:
            raise ValueError(f"color must be 'BGR' or 'RGB', got {color!r}.")
        if resize not in _RESIZES:
            raise ValueError(f"resize must be one of {_RESIZES}, got {resize!r}.")
        if align not in _ALIGNS:
            raise ValueError(f"align must be 'topleft' or 'center', got {align!r}.")
        if kind != "nanodet":
            for name, value in (("reg_max", reg_max), ("center_offset", center_offset)):
                if value is not None:
                    raise ValueError(f"{name} applies to kind='nanodet' only, got {name}={value!r} "
                                     f"for kind={kind!r}.")
        for name in ("run", "inputs", "outputs"):
            if not hasattr(backend, name):
                raise TypeError(
                    f"backend must have inputs, outputs and run() (see edgepose.backends), "
                    f"got {type(backend).__name__} without {name!r}.")
        self._backend = backend
        self.kind = kind
        self.layout = layout
        self.color = color
        self.resize = resize
        self.align = align
        self.pad_value = _pad_color(pad_value)
        self.mean = _triple("mean", mean)
        self.std = _triple("std", std, positive=True)
        self._normalise = bool((self.mean != 0).any() or (self.std != 1).any())
        self.strides = _strides(strides)
        self.reg_max = 7 if reg_max is None else reg_max
        self.center_offset = 0.5 if center_offset is None else float(center_offset)
        if kind == "nanodet" and (not is_int(self.reg_max) or self.reg_max < 1):
            raise ValueError(f"reg_max must be a positive int, got {reg_max!r}.")
        if not is_int(class_index) or class_index < 0:
            raise ValueError(f"class_index must be a non-negative int, got {class_index!r}.")
        self.class_index = int(class_index)
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        if not (np.isfinite(self.score_threshold) and np.isfinite(self.iou_threshold)):
            raise ValueError(
                f"score_threshold and iou_threshold must be finite, got {score_threshold!r} "
                f"and {iou_threshold!r}.")
        if max_detections is not None and (
                not is_int(max_detections) or max_detections < 1):
            raise ValueError(f"max_detections must be None or a positive int, got {max_detections!r}.")
        self.max_detections = max_detections

        self.input_name, self.input_size = self._resolve_input(input_name, input_size)
        self._outputs = self._resolve_outputs(outputs)

    # -- construction-time checks -------------------------------------------------

    def _resolve_input(self, input_name, input_size) -> tuple[str, tuple[int, int]]:
        inputs = list(self._backend.inputs)
        names = [t.name for t in inputs]
        if input_name is None:
            if len(inputs) != 1:
                raise ValueError(f"the model has {len(inputs)} inputs {names}; pass input_name.")
            info = inputs[0]
        else:
            matches = [t for t in inputs if t.name == input_name]
            if not matches:
                raise ValueError(f"input_name {input_name!r} is not an input of the model; "
                                 f"its inputs are {names}.")
            info = matches[0]
        shape = tuple(info.shape)
        if len(shape) != 4:
            raise ValueError(f"input {info.name!r} must be 4-D ({self.layout}), got shape {shape}.")
        c_axis, hw_axes = (1, (2, 3)) if self.layout == "NCHW" else (3, (1, 2))
        if shape[c_axis] not in (3, None):
            other = "NHWC" if self.layout == "NCHW" else "NCHW"
            hint = f"; it looks {other}: pass layout={other!r}" if shape[
                3 if other == "NHWC" else 1] == 3 else ""
            raise ValueError(
                f"input {info.name!r} has shape {shape}, which is not {self.layout} with 3 "
                f"channels{hint}.")
        static = tuple(shape[a] for a in hw_axes)
        if input_size is None:
            if None in static:
                raise ValueError(
                    f"input {info.name!r} has a dynamic size {shape}; pass input_size=(h, w).")
            size = (int(static[0]), int(static[1]))
        else:
            size = _size_hw(input_size, "input_size")
            for got, want in zip(static, size):
                if got is not None and got != want:
                    raise ValueError(
                        f"input_size {size} does not match input {info.name!r} of shape {shape}.")
        return info.name, size

    def _resolve_outputs(self, outputs: Mapping[str, str] | None) -> dict[str, str]:
        infos = {t.name: tuple(t.shape) for t in self._backend.outputs}
        if outputs is not None:
            if self.kind == "yolox":
                roles = ["raw"]
            else:
                roles = [f"{p}_{s}" for s in self.strides for p in ("cls", "dis")]
            missing = [r for r in roles if r not in outputs]
            unknown = [r for r in outputs if r not in roles]
            if missing or unknown:
                raise ValueError(f"outputs must map exactly the roles {roles}, "
                                 f"missing {missing}, unknown {unknown}.")
            absent = [n for n in outputs.values() if n not in infos]
            if absent:
                raise ValueError(f"outputs {absent} are not outputs of the model; its outputs "
                                 f"are {list(infos)}.")
            resolved = dict(outputs)
        elif self.kind == "yolox":
            if len(infos) != 1:
                raise ValueError(f"the model has {len(infos)} outputs {list(infos)}; pass "
                                 "outputs={'raw': name}.")
            resolved = {"raw": next(iter(infos))}
        else:
            resolved = self._infer_nanodet_outputs(infos)
        self._check_output_shapes(resolved, infos)
        return resolved

    def _infer_nanodet_outputs(self, infos: dict[str, tuple]) -> dict[str, str]:
        # NanoDet's own export names first, then the tensors' shapes.
        named = {f"{p}_{s}": f"{p}_pred_stride_{s}" for s in self.strides for p in ("cls", "dis")}
        if all(n in infos for n in named.values()):
            return named
        h, w = self.input_size
        dis_cols = 4 * (self.reg_max + 1)
        resolved = {}
        for s in self.strides:
            cells = (-(-h // s)) * (-(-w // s))
            hits = [n for n, shp in infos.items() if len(shp) >= 2 and shp[-2] == cells]
            dis = [n for n in hits if infos[n][-1] == dis_cols]
            cls = [n for n in hits if infos[n][-1] != dis_cols]
            if len(dis) != 1 or len(cls) != 1:
                raise ValueError(
                    f"cannot tell the cls and dis outputs of stride {s} ({cells} cells) apart "
                    f"among {infos}; pass outputs={{'cls_{s}': name, 'dis_{s}': name, ...}}.")
            resolved[f"cls_{s}"], resolved[f"dis_{s}"] = cls[0], dis[0]
        return resolved

    def _check_output_shapes(self, resolved: dict[str, str], infos: dict[str, tuple]) -> None:
        h, w = self.input_size
        if self.kind == "yolox":
            shape = infos[resolved["raw"]]
            cells = sum((h // s) * (w // s) for s in self.strides)
            if len(shape) not in (2, 3) or shape[-2] not in (cells, None) or (
                    shape[-1] is not None and shape[-1] < 6):
                raise ValueError(
                    f"output {resolved['raw']!r} has shape {shape}; a yolox head on a {h}x{w} "
                    f"input with strides {self.strides} gives (1, {cells}, 5 + C).")
            if shape[-1] is not None and self.class_index >= shape[-1] - 5:
                raise ValueError(f"class_index {self.class_index} is out of range for "
                                 f"{shape[-1] - 5} classes.")
            return
        for s in self.strides:
            cells = (-(-h // s)) * (-(-w // s))
            for role in (f"cls_{s}", f"dis_{s}"):
                shape = infos[resolved[role]]
                if len(shape) not in (2, 3) or shape[-2] not in (cells, None):
                    raise ValueError(
                        f"output {resolved[role]!r} ({role}) has shape {shape}; stride {s} of a "
                        f"{h}x{w} input has {cells} cells.")
            cls_shape = infos[resolved[f"cls_{s}"]]
            if cls_shape[-1] is not None and self.class_index >= cls_shape[-1]:
                raise ValueError(f"class_index {self.class_index} is out of range for "
                                 f"{cls_shape[-1]} classes.")

    # -- the pipeline ------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path, *, preset: str | None = None,
                  score_threshold: float = 0.3, iou_threshold: float = 0.45,
                  max_detections: int | None = 100, runtime: Any = None,
                  backend: str | None = None,
                  threads: int | None = None, device: str | None = None,
                  providers: Any = None, xnnpack: bool = True) -> PersonDetector:
        """A detector from a model file and its card (in the file, a preset,
        or recognised by the file's sha256).

        Raises:
            FileNotFoundError, ImportError, ValueError: as
                :class:`edgepose.model.LoadedModel`, and a card that is not a
                detector's.
        """
        from edgepose.model import LoadedModel

        loaded = LoadedModel(path, preset=preset, runtime=runtime, backend=backend,
                             threads=threads,
                             device=device, providers=providers, xnnpack=xnnpack,
                             role="detector")
        card = loaded.card
        try:
            if card.task != "detector":
                raise ValueError(
                    f"{Path(path).name} is a {card.task} pose model (head '{card.head}'), not a "
                    "person detector: pass it as the pose model.")
            spec = card.input
            return cls(loaded.backend, kind=card.head, input_size=spec.size, layout=spec.layout,
                       color=spec.color, mean=spec.mean, std=spec.std, resize=spec.resize,
                       pad_value=spec.pad_value, input_name=spec.name,
                       outputs=dict(card.outputs) or None, score_threshold=score_threshold,
                       iou_threshold=iou_threshold, max_detections=max_detections,
                       **card.params.detector_kwargs())
        except Exception:
            loaded.close()
            raise

    def preprocess(
        self, image: NDArray[np.uint8]
    ) -> tuple[NDArray[np.float32], tuple[float, float], tuple[float, float]]:
        """Image to input tensor.

        Returns:
            the ``(1, 3, h, w)`` or ``(1, h, w, 3)`` float32 tensor,
            ``(scale_x, scale_y)`` and ``(pad_x, pad_y)`` for
            :func:`boxes_to_image`.

        Raises:
            TypeError, ValueError: an invalid image (see :meth:`__call__`).
        """
        if self.resize == "letterbox":
            canvas, s, pad = letterbox(image, self.input_size, pad_value=self.pad_value,
                                       align=self.align)
            scale = (s, s)
        else:
            canvas, scale = stretch(image, self.input_size)
            pad = (0.0, 0.0)
        pixels = canvas[..., ::-1] if self.color == "RGB" else canvas
        mean, std = self.mean, self.std
        if self.layout == "NCHW":
            pixels = pixels.transpose(2, 0, 1)
            mean, std = mean[:, None, None], std[:, None, None]
        x = np.empty((1, *pixels.shape), np.float32)
        x[0] = pixels
        if self._normalise:
            x[0] -= mean
            x[0] /= std
        return x, scale, pad

    def postprocess(
        self,
        outputs: Mapping[str, NDArray],
        scale: Sequence[float],
        pad: Sequence[float],
        image_hw: Sequence[int],
    ) -> Detections:
        """Backend outputs to detections in image pixels.

        Decode, keep finite boxes scoring above ``score_threshold``, NMS
        (:func:`edgepose.ops.nms_boxes`), map to the image, clip to
        ``[0, W] x [0, H]`` and drop boxes left empty by clipping.
        """
        if self.kind == "yolox":
            boxes, scores = decode_yolox(outputs[self._outputs["raw"]], self.input_size,
                                         self.strides, class_index=self.class_index)
        else:
            boxes, scores = decode_nanodet(
                [outputs[self._outputs[f"cls_{s}"]] for s in self.strides],
                [outputs[self._outputs[f"dis_{s}"]] for s in self.strides],
                self.input_size, self.strides, reg_max=self.reg_max,
                class_index=self.class_index, center_offset=self.center_offset)
        keep = (scores > self.score_threshold) & np.isfinite(boxes).all(axis=1)
        boxes, scores = boxes[keep], scores[keep]
        order = nms_boxes(boxes, scores, self.iou_threshold, max_keep=self.max_detections)
        boxes = boxes_to_image(boxes[order], scale, pad)
        h, w = image_hw
        np.clip(boxes[:, 0::2], 0.0, float(w), out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0.0, float(h), out=boxes[:, 1::2])
        nonempty = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return Detections(boxes[nonempty], scores[order][nonempty])

    def __call__(self, image: NDArray[np.uint8]) -> Detections:
        """Detects people in one image.

        Args:
            image: ``(H, W, 3)`` BGR uint8, as ``cv2.imread`` returns.

        Returns:
            :class:`Detections` in image pixels, best first.

        Raises:
            TypeError: not a uint8 NumPy array.
            ValueError: not ``(H, W, 3)`` (grayscale and BGRA images name the
                ``cv2.cvtColor`` conversion) or empty.
            RuntimeError: the backend failed.
        """
        tensor, scale, pad = self.preprocess(image)
        outputs = self._backend.run({self.input_name: tensor})
        return self.postprocess(outputs, scale, pad, image.shape[:2])

    def close(self) -> None:
        """Closes the backend. Idempotent."""
        close = getattr(self._backend, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> PersonDetector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"PersonDetector(kind={self.kind!r}, input_size={self.input_size}, "
                f"resize={self.resize!r}, score_threshold={self.score_threshold}, "
                f"iou_threshold={self.iou_threshold})")
