"""Postprocessing kernels for 2D pose models, implemented in C.

Every function here validates and coerces its inputs, allocates the outputs
and calls the C core (``csrc/``) with the GIL released, so several threads can
decode at once. Inputs may be non-contiguous or read-only; they are never
modified. Floating inputs of any precision are accepted and computed in
float32. Integer model outputs (SimCC logits, heatmaps, fields) are
quantized tensors and must be dequantized first; integer user data (boxes,
scores, areas, keypoints, sigmas of the NMS functions) is converted to
float32.

Thresholds: every threshold is a Python float compared in double precision
with the quantity it bounds (a float32 map value is widened, the threshold is
never narrowed), so a value exactly at a threshold falls on the side the
published algorithm puts it, as stated in each docstring and pinned by the
boundary tests in ``tests/ops/test_thresholds.py``. Finite thresholds beyond
float32's range (e.g. 1e39, "above everything") are legal. Counts and radii
larger than the map mean "the whole map" and are clamped.

Functions:
    decode_simcc: SimCC (RTMPose) x/y logits to keypoints.
    decode_heatmap: heatmap argmax with DARK or DARK-UDP refinement.
    nms_boxes: greedy box NMS.
    nms_oks: OKS-based pose NMS.
    nms_oks_soft: soft OKS-based pose NMS.
    group_paf: bottom-up grouping along part affinity fields (OpenPose).
    decode_yolo_pose: one-stage YOLO-pose outputs to people (candidates, NMS,
        letterbox undo).
    decode_yolo_dfl: the decode of a raw YOLO-pose head (DFL boxes) cut off
        its graph.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgepose import _core
from edgepose._arrays import check_finite as _check_finite
from edgepose._arrays import float_array as _float_array
from edgepose._validate import is_int

__all__ = [
    "COCO17_SIGMAS",
    "decode_simcc",
    "decode_heatmap",
    "nms_boxes",
    "nms_oks",
    "nms_oks_soft",
    "group_paf",
    "YoloPoseDetections",
    "decode_yolo_pose",
    "decode_yolo_dfl",
]

#: Per-keypoint OKS sigmas of the COCO-17 keypoints (COCO keypoint evaluation).
COCO17_SIGMAS = np.array(
    [.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62,
     1.07, 1.07, .87, .87, .89, .89], dtype=np.float32) / 10.0
COCO17_SIGMAS.setflags(write=False)

_REFINE = {"none": 0, "dark": 1, "dark_udp": 2}
#: Integers up to 2^24 are exact in float32; heatmap positions beyond are not.
_FLOAT32_EXACT = 2**24
_LAYOUTS = ("NCHW", "NHWC")
_SOFT_METHODS = {"gaussian": 0, "linear": 1}


def _check_split_ratio(split_ratio, bins: int) -> None:
    """The ratio is applied in float32 (as MMPose): it must be a positive
    float32 by which every location, -1 to bins - 1, divides to a finite value."""
    try:
        ratio = float(split_ratio)
    except (TypeError, ValueError):
        raise ValueError(f"split_ratio must be a positive finite number, got {split_ratio!r}.") \
            from None
    if not (np.isfinite(ratio) and ratio > 0):
        raise ValueError(f"split_ratio must be a positive finite number, got {split_ratio!r}.")
    largest = np.float32(max(1, bins - 1))
    with np.errstate(over="ignore", divide="ignore"):
        ok = np.isfinite(np.float32(ratio)) and np.isfinite(largest / np.float32(ratio))
    if not ok:
        low = float(largest) / float(np.finfo(np.float32).max)
        raise ValueError(
            f"split_ratio must lie in float32 range for {bins} bins: from {low:.3g} to "
            f"{float(np.finfo(np.float32).max):.3g} (bins / split_ratio must be a finite "
            f"float32), got {split_ratio!r}. RTMPose uses 2.0.")


def decode_simcc(
    simcc_x: ArrayLike, simcc_y: ArrayLike, split_ratio: float = 2.0
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Decodes SimCC classification logits (RTMPose) to keypoints.

    Semantics of MMPose 1.x ``get_simcc_maximum`` followed by the division
    by ``split_ratio``: the first argmax along each axis, score
    ``min(max(simcc_x), max(simcc_y))``, location -1 where the score is <= 0
    (so invalid keypoints come out as ``-1 / split_ratio``). No +0.5 shift.

    Threshold: a keypoint is valid when its score is > 0; a score of
    exactly 0 is invalid (MMPose: ``locs[vals <= 0.] = -1``).

    Args:
        simcc_x: ``(N, K, Wx)`` x-axis logits.
        simcc_y: ``(N, K, Wy)`` y-axis logits.
        split_ratio: bins per input pixel (RTMPose: 2.0). Applied in float32
            as MMPose does, so it must be a positive float32 by which every
            bin index divides to a finite value (about 3e-38 * bins to 3.4e38).

    Returns:
        keypoints ``(N, K, 2)`` float32, (x, y) in model-input pixels, and
        scores ``(N, K)`` float32. A row containing NaN gives score NaN and
        location -1; +/-inf are ordinary values.

    Raises:
        TypeError: non-floating inputs.
        ValueError: wrong ranks, mismatched N or K, an empty axis, or a
            split_ratio that is not a positive finite number or is outside
            float32's range for the number of bins.
    """
    x = _float_array("simcc_x", simcc_x, 3, "(N, K, Wx)")
    y = _float_array("simcc_y", simcc_y, 3, "(N, K, Wy)")
    if x.shape[:2] != y.shape[:2]:
        raise ValueError(
            f"simcc_x and simcc_y must agree on (N, K), got {x.shape} and {y.shape}.")
    if x.shape[2] == 0 or y.shape[2] == 0:
        raise ValueError(
            f"simcc_x and simcc_y need at least one bin, got {x.shape} and {y.shape}.")
    _check_split_ratio(split_ratio, max(x.shape[2], y.shape[2]))
    split_ratio = float(split_ratio)
    n, k = x.shape[:2]
    keypoints = np.empty((n, k, 2), dtype=np.float32)
    scores = np.empty((n, k), dtype=np.float32)
    if n * k:
        _core.decode_simcc(x, y, split_ratio, keypoints, scores)
    return keypoints, scores


def decode_heatmap(
    heatmaps: ArrayLike,
    refine: str = "dark",
    blur_kernel: int = 11,
    *,
    layout: str = "NCHW",
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Finds the peak of each heatmap, optionally refined to sub-pixel.

    The argmax is the first maximum in row-major order; the score is the raw
    peak value; a peak <= 0 gives location (-1, -1) and is never refined
    (threshold: valid when > 0, as MMPose ``get_heatmap_maximum``'s
    ``locs[vals <= 0.] = -1``).

    ``refine``:
        * ``"none"``: integer argmax (MMPose ``get_heatmap_maximum``).
        * ``"dark"``: MMPose ``refine_keypoints_dark`` (DARK, Zhang et al.
          2020): Gaussian modulation, log, a Taylor step with step-2
          derivatives, applied only for 2 <= x <= W-3 and 2 <= y <= H-3 and
          skipped where the Hessian is singular.
        * ``"dark_udp"``: MMPose ``refine_keypoints_dark_udp`` (UDP, Huang et
          al. 2020): values clipped to [1e-3, 50] before the log, edge
          padding, step-1 differences, applied at every valid keypoint.

    The blur is computed only around each peak unless exactness requires the
    whole map (the clamp or clip of the rescaled map could bite), so results
    match MMPose to float32 rounding. Unlike MMPose, the input is not blurred
    in place. A refinement whose neighbourhood or result is not finite is
    skipped. A map containing NaN gives score NaN and location (-1, -1).

    Args:
        heatmaps: ``(N, K, H, W)`` for ``layout="NCHW"`` or ``(N, H, W, K)``
            for ``layout="NHWC"`` (TFLite models). NHWC is read in place.
        refine: ``"none"``, ``"dark"`` or ``"dark_udp"``.
        blur_kernel: odd Gaussian kernel size, 1 to 101, ignored when
            ``refine="none"``; a kernel larger than the map is legal (zero
            padding, as MMPose's blur) (11 for sigma-2
            training targets, 17 for sigma 3). The kernel is OpenCV 4's
            ``getGaussianKernel(size, 0)``, which MMPose's results were made
            with: fixed tables for sizes 1-7, the sigma formula above. (OpenCV
            5 added a fixed table for size 9, which edgepose does not follow.)
        layout: ``"NCHW"`` or ``"NHWC"``.

    Returns:
        keypoints ``(N, K, 2)`` (x, y) in heatmap pixels, and scores
        ``(N, K)`` float32. Keypoints are float32, or float64 when H or W
        exceeds 2^24 (float32 cannot hold every index there: x = 2^24 + 3
        would round to 2^24 + 4); positions are exact and always < W, < H.

    Raises:
        TypeError: non-floating heatmaps.
        ValueError: a wrong rank, an empty map, an unknown refine or layout,
            an invalid blur_kernel, or H * W too large to address.
        MemoryError: the workspace for an exact whole-map blur failed.
    """
    if refine not in _REFINE:
        raise ValueError(f"refine must be one of {sorted(_REFINE)}, got {refine!r}.")
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be 'NCHW' or 'NHWC', got {layout!r}.")
    shape_text = "(N, K, H, W)" if layout == "NCHW" else "(N, H, W, K)"
    hm = _float_array("heatmaps", heatmaps, 4, shape_text)
    if layout == "NHWC":
        hm = hm.transpose(0, 3, 1, 2)  # a view: the kernel reads any strides
    n, k, h, w = hm.shape
    if h == 0 or w == 0:
        raise ValueError(f"heatmaps must not be empty, got {shape_text} = {hm.shape if layout == 'NCHW' else (n, h, w, k)}.")
    if refine != "none":
        if not is_int(blur_kernel):
            raise TypeError(f"blur_kernel must be an int, got {type(blur_kernel).__name__}.")
        if blur_kernel < 1 or blur_kernel > 101 or blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel must be an odd integer from 1 to 101, got {blur_kernel}.")
    keypoints = np.empty((n, k, 2), dtype=np.float64)
    scores = np.empty((n, k), dtype=np.float32)
    if n * k:
        # blur_kernel is ignored (and may be anything) when nothing is refined
        kernel = 0 if refine == "none" else int(blur_kernel)
        _core.decode_heatmap(hm, _REFINE[refine], kernel, keypoints, scores)
    if max(h, w) <= _FLOAT32_EXACT:
        return keypoints.astype(np.float32), scores
    return keypoints, scores


def _threshold(name: str, value) -> float:
    """A finite threshold as a Python float (compared in double by the C core;
    values beyond float32, such as 1e39, are legal)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r}.") from None
    if not np.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}.")
    return number


def _groups_array(groups: ArrayLike | None, m: int) -> NDArray[np.intp] | None:
    if groups is None:
        return None
    g = np.asarray(groups)
    if g.dtype.kind not in "iu":
        raise TypeError(f"groups must be an integer array, got {g.dtype}.")
    if g.shape != (m,):
        raise ValueError(f"groups must have shape ({m},), one id per candidate, got {g.shape}.")
    return np.ascontiguousarray(g, dtype=np.intp)


def _max_keep(max_keep: int | None) -> int:
    if max_keep is None:
        return -1
    if not is_int(max_keep) or max_keep < 0:
        raise ValueError(f"max_keep must be None or a non-negative int, got {max_keep!r}.")
    # more than the candidates means all of them (and must fit the C ep_index)
    return min(int(max_keep), np.iinfo(np.intp).max)


def _scores_array(scores: ArrayLike, m: int) -> NDArray[np.float32]:
    s = _float_array("scores", scores, 1, "(M,)", integers=True)
    if s.shape[0] != m:
        raise ValueError(f"scores must have shape ({m},), one per candidate, got {s.shape}.")
    if np.isnan(s).any():
        raise ValueError("scores must not contain NaN.")
    return np.ascontiguousarray(s)


def nms_boxes(
    boxes: ArrayLike,
    scores: ArrayLike,
    iou_threshold: float,
    *,
    groups: ArrayLike | None = None,
    max_keep: int | None = None,
) -> NDArray[np.intp]:
    """Greedy non-maximum suppression of ``xyxy`` boxes.

    Boxes are visited in descending score order, ties broken by ascending
    index, and a box is dropped when its IoU with an already kept box is
    greater than ``iou_threshold``. Box area is ``(x2 - x1) * (y2 - y1)``
    with no +1 (as torchvision and ONNX; MMPose and rtmlib add 1 pixel);
    degenerate boxes have area 0 and IoU 0 with everything.

    Threshold: suppressed when IoU > ``iou_threshold``, kept when IoU <=
    it (torchvision ``nms``: "discards all overlapping boxes with IoU >
    iou_threshold"; MMPose ``nms`` keeps ``ovr <= thr``). Areas,
    intersections and IoU are computed in double, so boxes with extents up
    to float32's maximum do not overflow. Any finite threshold is legal:
    >= 1 keeps every box, < 0 keeps one box per group.

    Args:
        boxes: ``(M, 4)`` x1, y1, x2, y2 in pixels; must be finite.
            Integer arrays are accepted.
        scores: ``(M,)``; +/-inf allowed, NaN not; integers accepted.
        iou_threshold: suppression threshold on IoU.
        groups: optional ``(M,)`` integer ids (class or image): boxes of
            different groups never suppress each other.
        max_keep: keep at most this many boxes (all when None).

    Returns:
        ``(M',)`` intp indices of the kept boxes in descending score order.

    Raises:
        TypeError: non-numeric boxes or scores, non-integer groups.
        ValueError: wrong shapes, NaN scores, non-finite boxes, or a
            non-finite threshold.
    """
    b = _float_array("boxes", boxes, 2, "(M, 4)", integers=True)
    if b.shape[1] != 4:
        raise ValueError(f"boxes must have shape (M, 4) as x1, y1, x2, y2, got {b.shape}.")
    m = b.shape[0]
    s = _scores_array(scores, m)
    _check_finite("boxes", b)
    iou_threshold = _threshold("iou_threshold", iou_threshold)
    g = _groups_array(groups, m)
    keep = np.empty(m, dtype=np.intp)
    if m == 0:
        return keep
    count = _core.nms_boxes(np.ascontiguousarray(b), s, g, iou_threshold, _max_keep(max_keep), keep)
    return keep[:count].copy()


def _pose_inputs(keypoints, scores, areas, sigmas, threshold):
    kp = _float_array("keypoints", keypoints, 3, "(M, K, 2) or (M, K, 3)", integers=True)
    if kp.shape[2] not in (2, 3):
        raise ValueError(f"keypoints must have shape (M, K, 2) or (M, K, 3), got {kp.shape}.")
    m, k = kp.shape[:2]
    if k == 0:
        raise ValueError(f"keypoints need at least one keypoint, got {kp.shape}.")
    kp = np.ascontiguousarray(kp[:, :, :2])
    _check_finite("keypoints", kp)
    s = _scores_array(scores, m)
    a = _float_array("areas", areas, 1, "(M,)", integers=True)
    if a.shape[0] != m:
        raise ValueError(f"areas must have shape ({m},), one per pose, got {a.shape}.")
    _check_finite("areas", a)
    if (a < 0).any():
        raise ValueError("areas must be non-negative.")
    if sigmas is None:
        if k != 17:
            raise ValueError(
                f"sigmas are required for K={k} keypoints; the COCO sigmas are only the "
                "default for K=17. Pass the per-keypoint OKS sigmas of your keypoint set.")
        sg = COCO17_SIGMAS
    else:
        sg = _float_array("sigmas", sigmas, 1, "(K,)", integers=True)
        if sg.shape[0] != k:
            raise ValueError(f"sigmas must have shape ({k},), one per keypoint, got {sg.shape}.")
        if not (np.isfinite(sg).all() and (sg > 0).all()):
            raise ValueError("sigmas must be positive and finite.")
    threshold = _threshold("threshold", threshold)
    return kp, s, np.ascontiguousarray(a), np.ascontiguousarray(sg), threshold


def nms_oks(
    keypoints: ArrayLike,
    scores: ArrayLike,
    areas: ArrayLike,
    threshold: float,
    sigmas: ArrayLike | None = None,
    *,
    groups: ArrayLike | None = None,
) -> NDArray[np.intp]:
    """OKS-based non-maximum suppression of poses (MMPose ``oks_nms``).

    Poses are visited in descending score order (ties by ascending index);
    each kept pose drops every remaining pose whose object keypoint
    similarity with it is greater than ``threshold``. OKS uses the mean of
    the two areas and ignores keypoint visibility, as MMPose does.

    Threshold: suppressed when OKS > ``threshold``, kept when OKS <= it
    (MMPose ``oks_nms``: ``inds = np.where(oks_ovr <= thr)[0]``), compared
    in double: a pose at exactly OKS 0.9 survives ``threshold=0.9``. Any
    finite threshold is legal (>= 1 keeps all, < 0 keeps one per group).

    Args:
        keypoints: ``(M, K, 2)`` or ``(M, K, 3)`` (the third column is
            ignored), in pixels; must be finite. Integer arrays, and
            integer scores, areas and sigmas, are accepted.
        scores: ``(M,)`` pose scores.
        areas: ``(M,)`` pose areas in pixels^2 (e.g. box area).
        threshold: OKS above which a pose is suppressed (strictly above).
        sigmas: ``(K,)`` OKS sigmas; defaults to the COCO sigmas when K == 17
            and is required otherwise.
        groups: optional ``(M,)`` integer ids; poses of different groups
            never suppress each other.

    Returns:
        ``(M',)`` intp indices of the kept poses in descending score order.

    Raises:
        TypeError, ValueError: as for :func:`nms_boxes`, and missing sigmas
            for K != 17.
    """
    kp, s, a, sg, threshold = _pose_inputs(keypoints, scores, areas, sigmas, threshold)
    m = kp.shape[0]
    g = _groups_array(groups, m)
    keep = np.empty(m, dtype=np.intp)
    if m == 0:
        return keep
    count = _core.nms_oks(kp, s, a, g, sg, threshold, keep)
    return keep[:count].copy()


def nms_oks_soft(
    keypoints: ArrayLike,
    scores: ArrayLike,
    areas: ArrayLike,
    threshold: float,
    sigmas: ArrayLike | None = None,
    *,
    max_keep: int | None = 20,
    method: str = "gaussian",
    groups: ArrayLike | None = None,
) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    """Soft OKS-based NMS of poses (MMPose ``soft_oks_nms``).

    Repeatedly keeps the highest-scoring remaining pose (ties by ascending
    index) and rescores the others by their OKS ``o`` with it:
    ``gaussian``: ``s * exp(-o**2 / threshold)``; ``linear``: ``s * (1 - o)``
    where ``o >= threshold``.

    Threshold: for ``linear``, a pose at exactly ``o == threshold`` is
    rescored (MMPose ``soft_oks_nms``: ``inds = np.where(oks >= thr)``);
    for ``gaussian`` it is the width, any positive finite double (1e-50
    included; scores are rescored in double). No pose is ever dropped by a
    threshold: ``max_keep`` bounds the output.

    Args:
        keypoints, scores, areas, sigmas, groups: as for :func:`nms_oks`.
        threshold: the Gaussian's width (must be > 0), or the linear
            method's OKS threshold (rescored when OKS >= threshold).
        max_keep: keep at most this many poses (MMPose: 20); None for all.
        method: ``"gaussian"`` or ``"linear"``.

    Returns:
        indices ``(M',)`` intp in the order kept, and the rescored scores
        ``(M',)`` float32 at the time each pose was kept.

    Raises:
        TypeError, ValueError: as for :func:`nms_oks`, and an unknown method
            or a gaussian threshold <= 0.
    """
    if method not in _SOFT_METHODS:
        raise ValueError(f"method must be 'gaussian' or 'linear', got {method!r}.")
    kp, s, a, sg, threshold = _pose_inputs(keypoints, scores, areas, sigmas, threshold)
    if method == "gaussian" and threshold <= 0:
        raise ValueError(f"threshold must be > 0 for the gaussian method, got {threshold}.")
    m = kp.shape[0]
    g = _groups_array(groups, m)
    limit = _max_keep(max_keep)
    keep = np.empty(m, dtype=np.intp)
    new_scores = np.empty(m, dtype=np.float32)
    if m == 0:
        return keep, new_scores
    count = _core.nms_oks_soft(
        kp, s, a, g, sg, threshold, _SOFT_METHODS[method], limit, keep, new_scores)
    return keep[:count].copy(), new_scores[:count].copy()


_PAF_LAYOUTS = ("CHW", "HWC")
#: The C core's EP_MAX_PAF_SAMPLES.
_MAX_PAF_SAMPLES = 1000
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _int_param(name: str, value, minimum: int, maximum: int | None = None) -> int:
    """An integer parameter (an int, a NumPy integer or an integral float such
    as 3.0 from a JSON card) within [minimum, maximum], else ValueError."""
    if isinstance(value, (bool, np.bool_)):
        number = None
    elif isinstance(value, (int, np.integer)):
        number = int(value)
    elif isinstance(value, (float, np.floating)) and float(value).is_integer():
        number = int(value)
    else:
        number = None
    allowed = f"an integer >= {minimum}" if maximum is None else (
        f"an integer from {minimum} to {maximum}")
    if number is None or number < minimum or (maximum is not None and number > maximum):
        raise ValueError(f"{name} must be {allowed}, got {value!r}.")
    return number


def _finite(name: str, value, *, minimum: float | None = None,
            maximum: float | None = None) -> float:
    """A finite float parameter within [minimum, maximum], else ValueError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r}.") from None
    low = -np.inf if minimum is None else minimum
    high = np.inf if maximum is None else maximum
    if not (np.isfinite(number) and low <= number <= high):
        where = ("" if minimum is None and maximum is None else
                 f" >= {minimum}" if maximum is None else f" in [{low}, {high}]")
        raise ValueError(f"{name} must be a finite number{where}, got {value!r}.")
    return number


def _index_table(name: str, value: ArrayLike, shape_text: str) -> NDArray[np.intp]:
    table = np.asarray(value)
    if table.size == 0:
        table = table.reshape(0, 2)
    if table.dtype.kind not in "iu" and table.size:
        raise TypeError(f"{name} must be integers, got {table.dtype}.")
    if table.ndim != 2 or table.shape[1] != 2:
        raise ValueError(f"{name} must have shape {shape_text}, got {table.shape}.")
    return np.ascontiguousarray(table, dtype=np.intp)


def group_paf(
    heatmaps: ArrayLike,
    pafs: ArrayLike,
    limbs: ArrayLike,
    paf_channels: ArrayLike,
    *,
    layout: str = "CHW",
    heatmap_threshold: float = 0.1,
    peak_radius: int = 1,
    min_peak_distance: float = 0.0,
    refine: bool = True,
    max_peaks: int = 100,
    samples: int = 10,
    min_paf_score: float = 0.05,
    min_good_ratio: float = 0.9,
    distance_prior: float = 0.0,
    min_parts: int = 3,
    min_person_score: float = 0.0,
    stride: float = 1.0,
    offset: float = 0.0,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Groups part heatmaps into people along part affinity fields (OpenPose).

    Steps (defaults are the OpenVINO model zoo decoder's for COCO-18):
    peaks above ``heatmap_threshold`` that are maxima of their
    ``(2 * peak_radius + 1)``-wide window, at most ``max_peaks`` per part,
    thinned to ``min_peak_distance``, refined to sub-pixel by a parabola
    (``refine``); every pair of peaks of a limb scored by ``samples``
    bilinear field samples along the segment (the mean of the samples above
    ``min_paf_score``, valid when at least ``min_good_ratio`` of them are
    good (0.9: 9 of 10, which is what the model zoo's "> 0.8" means), plus ``min(0, distance_prior * H / length - 1)`` when
    ``distance_prior`` > 0); greedy matching per limb in descending score;
    assembly into people in limb order, merging people joined by a limb when
    they do not conflict; people with fewer than ``min_parts`` parts or a
    mean score below ``min_person_score`` dropped. Peaks are found on the
    maps as given: sub-pixel refinement replaces the 4x upsampling that
    OpenPose decoders apply. The exact rules are pinned by the NumPy
    reference in ``tests/paf_reference.py``.

    Args:
        heatmaps: ``(K, H, W)`` (``layout="CHW"``) or ``(H, W, K)``
            (``"HWC"``, read in place): one map per part, without the
            background channel.
        pafs: ``(C, H, W)`` or ``(H, W, C)``, the fields.
        limbs: ``(L, 2)`` part ids (a, b) of each limb, in assembly order.
        paf_channels: ``(L, 2)`` field channels (x, y) of each limb's vector
            from part a to part b.
        stride, offset: output coordinates are ``map position * stride +
            offset`` (e.g. model-input pixels); they must keep the map's
            positions within float32.

    Thresholds (all compared in double; OpenPose / OpenVINO model zoo
    semantics, pinned by ``tests/paf_reference.py``):
        * ``heatmap_threshold``: a peak's value must be > it (``map >
          thre1``); a float32 value equal to float32(0.1) exceeds 0.1.
        * ``peak_radius``: a peak is >= every value of its window (ties are
          all peaks, NaN never suppresses); a radius >= max(H, W) already
          covers the whole map, and larger values are clamped to it.
        * ``max_peaks``: the highest per part; values above H * W mean all
          peaks and are clamped (memory follows the peaks and valid limbs
          found; time grows with the product of two parts' peak counts).
        * ``min_peak_distance``: a peak closer than it (``<``) to a kept one
          is dropped; one exactly at the distance stays.
        * ``min_paf_score``: a sample is good when > it (``score_mid >
          thre2``); ``min_good_ratio``: a limb needs good / samples >= it.
        * ``min_parts``: people with fewer parts (``<``) are dropped; values
          above K drop everyone and are clamped to K + 1.
        * ``min_person_score``: people whose score / parts is < it are
          dropped; exactly equal is kept.
        * ``samples``: 2 to 1000 field samples per candidate limb.

    Returns:
        persons ``(P, K, 3)`` float32 (x, y, score), a missing part being
        (-1, -1, 0), and person scores ``(P,)`` float32 = (sum of part and
        limb scores) / parts, in descending order. NaN values never form
        peaks or limbs.

    Raises:
        TypeError: non-floating maps, non-integer tables.
        ValueError: wrong ranks, maps of different sizes, empty maps, a limb
            naming a part >= K or a channel >= C, a parameter out of range
            or of the wrong type (the message names it), or H * W too large
            to address.
        MemoryError: a workspace for the peaks or candidate limbs failed.
    """
    if layout not in _PAF_LAYOUTS:
        raise ValueError(f"layout must be 'CHW' or 'HWC', got {layout!r}.")
    hw_text = "(K, H, W)" if layout == "CHW" else "(H, W, K)"
    hm = _float_array("heatmaps", heatmaps, 3, hw_text)
    pf = _float_array("pafs", pafs, 3, hw_text.replace("K", "C"))
    if layout == "HWC":
        hm = hm.transpose(2, 0, 1)  # views: the kernel reads strides
        pf = pf.transpose(2, 0, 1)
    k, h, w = hm.shape
    if pf.shape[1:] != (h, w):
        raise ValueError(
            f"heatmaps and pafs must have the same height and width, got {hm.shape[1:]} "
            f"and {pf.shape[1:]} (as (H, W)).")
    if k == 0 or h == 0 or w == 0 or pf.shape[0] == 0:
        raise ValueError(f"heatmaps and pafs must not be empty, got {hm.shape} and {pf.shape}"
                         " (as channels, H, W).")
    lt = _index_table("limbs", limbs, "(L, 2)")
    ct = _index_table("paf_channels", paf_channels, "(L, 2)")
    if len(lt) != len(ct):
        raise ValueError(f"limbs and paf_channels must have one row per limb, got {len(lt)} "
                         f"and {len(ct)}.")
    if len(lt) and (lt.min() < 0 or lt.max() >= k):
        raise ValueError(f"limbs name parts 0..{k - 1} (the heatmap channels), got "
                         f"{lt.min()}..{lt.max()}.")
    if len(lt) and (lt[:, 0] == lt[:, 1]).any():
        raise ValueError("a limb must join two different parts.")
    if len(ct) and (ct.min() < 0 or ct.max() >= pf.shape[0]):
        raise ValueError(f"paf_channels name field channels 0..{pf.shape[0] - 1}, got "
                         f"{ct.min()}..{ct.max()}.")
    params = {
        "heatmap_threshold": _finite("heatmap_threshold", heatmap_threshold),
        # A window wider than the map covers the whole map, and a part cannot
        # have more peaks than pixels: larger values mean the same, clamped.
        "peak_radius": min(_int_param("peak_radius", peak_radius, 0), max(h, w)),
        "min_peak_distance": _finite("min_peak_distance", min_peak_distance, minimum=0.0),
        "refine": int(bool(refine)),
        "max_peaks": min(_int_param("max_peaks", max_peaks, 1), h * w),
        "samples": _int_param("samples", samples, 2, _MAX_PAF_SAMPLES),
        "min_paf_score": _finite("min_paf_score", min_paf_score),
        "min_good_ratio": _finite("min_good_ratio", min_good_ratio, minimum=0.0, maximum=1.0),
        "distance_prior": _finite("distance_prior", distance_prior, minimum=0.0),
        # More parts than K is unreachable: every person is dropped either way.
        "min_parts": min(_int_param("min_parts", min_parts, 0), k + 1),
        "min_person_score": _finite("min_person_score", min_person_score),
        "stride": _finite("stride", stride),
        "offset": _finite("offset", offset),
    }
    reach = (max(h, w) + 1.0) * abs(params["stride"]) + abs(params["offset"])
    if not reach < _FLOAT32_MAX:
        raise ValueError(
            f"stride and offset map the {h} x {w} maps beyond float32 coordinates "
            f"(|stride| * {max(h, w) + 1} + |offset| = {reach:g} >= {_FLOAT32_MAX:g}); got "
            f"stride={params['stride']} and offset={params['offset']}.")
    # Room for the usual case; the C core reports how many it found, and a
    # second call fills a larger buffer in the rare case that is not enough.
    capacity = min(64, k * params["max_peaks"] // 2 + 1)
    for _ in range(2):
        persons = np.empty((capacity, k, 3), dtype=np.float32)
        scores = np.empty(capacity, dtype=np.float32)
        count = _core.group_paf(hm, pf, lt, ct, params, persons, scores)
        if count <= capacity:
            break
        capacity = count
    return persons[:count].copy(), scores[:count].copy()


class YoloPoseDetections(NamedTuple):
    """The people :func:`decode_yolo_pose` found in one image, by descending
    score, in image pixels.

    Attributes:
        boxes: ``(M, 4)`` float32 x1, y1, x2, y2.
        scores: ``(M,)`` float32, the best class score.
        classes: ``(M,)`` intp, the class of that score.
        keypoints: ``(M, K, 2)`` float32 (x, y).
        keypoint_scores: ``(M, K)`` float32: the visibility value for
            ``keypoint_dims=3``, else the person's score.
    """

    boxes: NDArray[np.float32]
    scores: NDArray[np.float32]
    classes: NDArray[np.intp]
    keypoints: NDArray[np.float32]
    keypoint_scores: NDArray[np.float32]


#: The C core's EP_YOLO_NMS_* values.
_YOLO_NMS = {"none": 0, "box": 1, "oks": 2}
_INTP_MAX = int(np.iinfo(np.intp).max)


def _model_output(name: str, value: ArrayLike, ndim: int, shape_text: str) -> NDArray[np.float32]:
    """A float32 model output of rank ``ndim`` (a rank ``ndim - 1`` array is a
    batch of one). Other float precisions are converted; integers and bools
    are refused."""
    arr = np.asarray(value)
    if arr.dtype.kind == "b":
        raise TypeError(f"{name} must be a floating-point array, got bool. Pass the model's "
                        "raw output tensor.")
    if arr.ndim == ndim - 1:
        arr = arr[None]
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape_text} (or without the batch axis), "
                         f"got {arr.shape}.")
    return _float_array(name, arr, ndim, shape_text)


def _per_image(name: str, value, n: int, *, positive: bool, text: str) -> NDArray[np.float64]:
    """A ``(2,)`` or ``(N, 2)`` pair per image as an ``(N, 2)`` float64 array."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be numbers {text}, got {arr.dtype} values {value!r}.")
    arr = arr.astype(np.float64)
    if arr.shape == (2,):
        arr = np.broadcast_to(arr, (n, 2))
    if arr.shape != (n, 2):
        raise ValueError(f"{name} must have shape (2,) or ({n}, 2), one {text} per image, "
                         f"got {arr.shape}.")
    bad = ~np.isfinite(arr) | ((arr <= 0) if positive else False)
    if bad.any():
        i = int(np.flatnonzero(bad.any(axis=1))[0])
        rule = "positive and finite" if positive else "finite"
        raise ValueError(f"{name} must be {rule}, got {arr[i].tolist()} for image {i}.")
    return np.ascontiguousarray(arr)


def _count(name: str, value) -> int:
    """A count >= 1 for the C core; values beyond the address space mean "all"."""
    return min(_int_param(name, value, 1), _INTP_MAX)


def decode_yolo_pose(
    output: ArrayLike,
    *,
    num_classes: int = 1,
    num_keypoints: int = 17,
    keypoint_dims: int = 3,
    channels_first: bool = True,
    end_to_end: bool = False,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.7,
    max_candidates: int = 30000,
    max_detections: int = 300,
    class_agnostic: bool = False,
    nms: str = "box",
    sigmas: ArrayLike | None = None,
    scale: ArrayLike = (1.0, 1.0),
    pad: ArrayLike = (0.0, 0.0),
    image_hw: ArrayLike | None = None,
) -> list[YoloPoseDetections]:
    """Decodes the output of a one-stage YOLO-pose model into people.

    Semantics of Ultralytics 8.x ``non_max_suppression`` (as pose predict and
    val call it, ``multi_label=False``) followed by ``scale_boxes`` and
    ``scale_coords``, per image:

    1. Candidates: anchors whose best class score is > ``score_threshold``
       (strictly, compared in double as every edgepose threshold: a score of
       ``float32(0.3)`` = 0.30000001 passes 0.3. torch compares in float32,
       with the threshold rounded, so Ultralytics drops that one score; for
       thresholds exact in float32, such as 0.25, the two agree). The best
       class is the first maximum. Raw boxes ``(cx, cy, w, h)``
       become ``x1 = cx - w / 2`` ... in float32.
    2. More than ``max_candidates``: the best ``max_candidates`` (descending
       score, ties by ascending anchor).
    3. Suppression in model-input pixels, visiting candidates in descending
       score with ties broken by ascending anchor index (Ultralytics' order
       of equal scores is whatever ``torch.sort`` gives; this one is
       deterministic): ``nms="box"``: a box is dropped when its IoU with a
       kept one of the same class is > ``iou_threshold`` (torchvision
       ``nms``; IoU exactly at the threshold is kept; computed in double
       where torchvision computes it in float32, area without +1, see
       :func:`nms_boxes`). ``nms="oks"``: the same with
       the keypoints' OKS (:func:`nms_oks`, area = box area) > the
       threshold; the greedy pass runs on the best ``2 * max_detections``
       candidates, doubling until it keeps ``max_detections`` or sees all
       (greedy NMS decides each candidate from the better ones only, so this
       is exact, and costs ~ candidates x max_detections, not candidates^2).
       ``nms="none"``: no suppression. Classes never suppress each other
       when ``num_classes > 1`` unless ``class_agnostic``. The first
       ``max_detections`` are kept.
    4. Image pixels: ``x = (x_input - pad_x) / scale_x`` (and y), computed in
       double, then clipped to ``[0, W] x [0, H]`` when ``image_hw`` is given
       (boxes and keypoints, as Ultralytics' ``clip_boxes`` and
       ``clip_coords``), then rounded to float32.

    ``end_to_end=True`` reads rows that the graph already suppressed
    (x1, y1, x2, y2, score, class, keypoints): rows with score >
    ``score_threshold`` are sorted by descending score (ties by row) and the
    first ``max_detections`` kept; ``nms``, ``max_candidates`` and
    ``channels_first`` do not apply. (Ultralytics keeps the graph's row
    order, which its exports already sort by score with a top-k; the stable
    sort gives the same people for those and sorted people for any other.)
    A row whose class value is not finite or does not round to
    0 .. ``num_classes - 1`` is dropped.

    Non-finite values: a NaN among an anchor's class scores makes it no
    candidate; +inf is a score like any other. A candidate whose box, whose
    ``(x1, y1, x2, y2)`` corners (float32 overflow of ``cx + w / 2``) or
    whose keypoint values (visibility included) are not finite is dropped
    before suppression.

    Args:
        output: float ``(N, 4 + C + K*D, A)`` (``channels_first``, as
            ``output0`` of an Ultralytics ONNX export), ``(N, A, 4 + C + K*D)``
            otherwise, or ``(N, M, 6 + K*D)`` with ``end_to_end``; a 2-D
            array is a batch of one. Values in model-input pixels: box
            (cx, cy, w, h), C class scores (sigmoid applied), K keypoints of
            D values (x, y[, visibility]). float64/float16 are converted to
            float32; integer (quantized) outputs must be dequantized first.
        num_classes: C >= 1 (1 for person-only pose models).
        num_keypoints: K >= 1 (17 for COCO; Ultralytics' ``kpt_shape[0]``).
        keypoint_dims: D, 2 or 3 (``kpt_shape[1]``).
        channels_first: whether channels come before anchors.
        end_to_end: rows already suppressed by the graph (see above).
        score_threshold: finite; Ultralytics uses 0.25 to predict, 0.001 to
            evaluate.
        iou_threshold: finite; IoU (or OKS) above it suppresses (0.7).
        max_candidates: >= 1, top-k entering suppression (Ultralytics
            ``max_nms``).
        max_detections: >= 1, kept per image (Ultralytics ``max_det``).
        class_agnostic: suppress across classes (only matters when C > 1).
        nms: ``"box"``, ``"oks"`` or ``"none"``.
        sigmas: ``(K,)`` positive OKS sigmas for ``nms="oks"``; the COCO
            sigmas are the default when K == 17.
        scale: ``(2,)`` or ``(N, 2)`` (x, y) > 0: model input = ``scale *
            image + pad`` (edgepose's letterbox convention).
        pad: ``(2,)`` or ``(N, 2)`` (x, y), finite.
        image_hw: ``(2,)`` or ``(N, 2)`` (H, W) > 0 of each original image
            to clip to, or None for no clipping.

    Returns:
        One :class:`YoloPoseDetections` per image, people by descending score.

    Raises:
        TypeError: an integer or bool output.
        ValueError: a wrong rank, a channel count that does not match
            ``num_classes``, ``num_keypoints`` and ``keypoint_dims`` (the
            message names both), or a parameter out of range (the message
            names it, the value and what is allowed).
    """
    if nms not in _YOLO_NMS:
        raise ValueError(f"nms must be 'box', 'oks' or 'none', got {nms!r}.")
    nc = _int_param("num_classes", num_classes, 1)
    k = _int_param("num_keypoints", num_keypoints, 1)
    d = _int_param("keypoint_dims", keypoint_dims, 2, 3)
    if end_to_end:
        shape_text = "(N, M, 6 + K*D)"
    elif channels_first:
        shape_text = "(N, 4 + C + K*D, A)"
    else:
        shape_text = "(N, A, 4 + C + K*D)"
    out = _model_output("output", output, 3, shape_text)
    if not end_to_end and channels_first:
        out = out.transpose(0, 2, 1)  # a view: the kernel reads strides
    n, rows, channels = out.shape
    expected = 6 + k * d if end_to_end else 4 + nc + k * d
    if channels != expected:
        axis = "last axis" if end_to_end or not channels_first else "axis 1"
        need = (f"6 + {k}*{d} = {expected} (x1, y1, x2, y2, score, class, keypoints)"
                if end_to_end else f"4 + {nc} + {k}*{d} = {expected}")
        hint = "" if end_to_end else (
            " If the array is (N, anchors, channels), pass channels_first=False."
            if channels_first else
            " If the array is (N, channels, anchors), pass channels_first=True.")
        raise ValueError(
            f"output has {channels} values per row ({axis} of {shape_text}), but "
            f"num_classes={nc}, num_keypoints={k} and keypoint_dims={d} need {need}. Pass the "
            f"model's values (Ultralytics: kpt_shape and names in the metadata).{hint}")
    params = {
        "num_classes": nc, "num_keypoints": k, "keypoint_dims": d,
        "end_to_end": int(bool(end_to_end)),
        "score_threshold": _finite("score_threshold", score_threshold),
        "iou_threshold": _finite("iou_threshold", iou_threshold),
        "max_candidates": _count("max_candidates", max_candidates),
        "max_detections": _count("max_detections", max_detections),
        "class_agnostic": int(bool(class_agnostic)),
        "nms": _YOLO_NMS[nms],
    }
    sg = None
    if nms == "oks" and not end_to_end:
        if sigmas is None:
            if k != 17:
                raise ValueError(
                    f"sigmas are required for nms='oks' with num_keypoints={k}; the COCO "
                    "sigmas are only the default for 17 keypoints. Pass the per-keypoint OKS "
                    "sigmas of your keypoint set.")
            sg = np.ascontiguousarray(COCO17_SIGMAS)
        else:
            sg = _float_array("sigmas", sigmas, 1, "(K,)", integers=True)
            if sg.shape[0] != k:
                raise ValueError(f"sigmas must have shape ({k},), one per keypoint, got "
                                 f"{sg.shape}.")
            if not (np.isfinite(sg).all() and (sg > 0).all()):
                raise ValueError("sigmas must be positive and finite.")
            sg = np.ascontiguousarray(sg)
    sc = _per_image("scale", scale, n, positive=True, text="(x, y) scale")
    pd = _per_image("pad", pad, n, positive=False, text="(x, y) padding")
    hw = None if image_hw is None else _per_image(
        "image_hw", image_hw, n, positive=True, text="(height, width)")
    capacity = min(params["max_detections"], rows)
    boxes = np.empty((n, capacity, 4), dtype=np.float32)
    scores = np.empty((n, capacity), dtype=np.float32)
    classes = np.empty((n, capacity), dtype=np.intp)
    keypoints = np.empty((n, capacity, k, 2), dtype=np.float32)
    keypoint_scores = np.empty((n, capacity, k), dtype=np.float32)
    counts = np.zeros(n, dtype=np.intp)
    if n and capacity:
        _core.decode_yolo_pose(out, params, sg, sc, pd, hw, boxes, scores, classes, keypoints,
                               keypoint_scores, counts)
    return [YoloPoseDetections(boxes[i, :c].copy(), scores[i, :c].copy(),
                               classes[i, :c].copy(), keypoints[i, :c].copy(),
                               keypoint_scores[i, :c].copy())
            for i, c in enumerate(counts.tolist())]


def decode_yolo_dfl(
    box_class: ArrayLike,
    keypoints: ArrayLike,
    *,
    input_hw: tuple[int, int],
    strides: tuple[int, ...] = (8, 16, 32),
    reg_max: int = 16,
    num_keypoints: int = 17,
    keypoint_dims: int = 3,
) -> NDArray[np.float32]:
    """Decodes a raw YOLO-pose head whose decode was cut off the graph.

    This is what Ultralytics' exported graphs compute after the head (and
    what an INT8 export keeps in float): per side, softmax over ``reg_max``
    bins and the expectation of the bin index (0 .. ``reg_max - 1``) give
    the distances l, t, r, b from the anchor point ``(gx + 0.5, gy + 0.5)``
    of each cell; ``x1 = ax - l``, ``y1 = ay - t``, ``x2 = ax + r``,
    ``y2 = ay + b``, returned as ``(cx, cy, w, h)`` times the stride; class
    scores ``sigmoid``; keypoints ``x = (raw_x * 2 + ax - 0.5) * stride``
    (y likewise) and visibility ``sigmoid``. Anchors: per stride, the cells
    of an ``(H / stride) x (W / stride)`` grid in row-major order, the
    strides in the given order. Bin exponentials in float32, the rest in
    double (within ~1e-6 bins of exact), returned in float32. A
    NaN or +inf bin logit (or all bins -inf) gives NaN for that side.

    Args:
        box_class: ``(N, 4 * reg_max + C, A)``: per side (l, t, r, b)
            ``reg_max`` bin logits, then C class logits. A 2-D array is a
            batch of one.
        keypoints: ``(N, K * D, A)`` raw keypoint values (keypoint-major:
            x, y[, visibility] of keypoint 0, then keypoint 1, ...).
        input_hw: the model input's (height, width); every stride must
            divide both.
        strides: the levels' strides, in the order of the anchors.
        reg_max: bins per side (Ultralytics: 16).
        num_keypoints: K >= 1.
        keypoint_dims: D, 2 or 3.

    Returns:
        ``(N, 4 + C + K * D, A)`` float32, the layout of ``output0``, ready
        for :func:`decode_yolo_pose`.

    Raises:
        TypeError: integer or bool inputs.
        ValueError: wrong ranks, shapes that disagree (the message names
            both), strides that do not divide ``input_hw`` or whose grids
            do not add up to A.
    """
    r = _int_param("reg_max", reg_max, 1)
    k = _int_param("num_keypoints", num_keypoints, 1)
    d = _int_param("keypoint_dims", keypoint_dims, 2, 3)
    if not (isinstance(input_hw, (tuple, list, np.ndarray)) and len(input_hw) == 2):
        raise ValueError(f"input_hw must be the model input's (height, width), got {input_hw!r}.")
    h = _int_param("input_hw[0]", input_hw[0], 1)
    w = _int_param("input_hw[1]", input_hw[1], 1)
    if isinstance(strides, (int, np.integer)) or not len(strides):
        raise ValueError(f"strides must be a non-empty sequence of ints, got {strides!r}.")
    st = [_int_param(f"strides[{i}]", s, 1) for i, s in enumerate(strides)]
    bc = _model_output("box_class", box_class, 3, "(N, 4 * reg_max + C, A)")
    kp = _model_output("keypoints", keypoints, 3, "(N, K * D, A)")
    n, channels, a = bc.shape
    if channels < 4 * r:
        raise ValueError(f"box_class has {channels} channels, fewer than 4 * reg_max = {4 * r} "
                         "box bins; pass the head's reg_max (Ultralytics: 16).")
    if kp.shape != (n, k * d, a):
        raise ValueError(
            f"keypoints must have shape (N, K * D, A) = ({n}, {k}*{d} = {k * d}, {a}) to match "
            f"box_class {bc.shape} with num_keypoints={k} and keypoint_dims={d}, got "
            f"{kp.shape}.")
    for s in st:
        if h % s or w % s:
            raise ValueError(f"input_hw {(h, w)} must be multiples of every stride, got stride "
                             f"{s}; letterbox to multiples of {max(st)}.")
    cells = sum((h // s) * (w // s) for s in st)
    if cells != a:
        raise ValueError(
            f"the strides {tuple(st)} on a {h} x {w} input give {cells} anchors, but the "
            f"outputs have A = {a}; pass the input_hw the model ran at.")
    out = np.empty((n, channels - 4 * r + 4 + k * d, a), dtype=np.float32)
    if n and a:
        _core.decode_yolo_dfl(bc, kp, h, w, np.array(st, dtype=np.intp), r, k, d, out)
    return out
