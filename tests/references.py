"""Independent NumPy references of the published postprocessing algorithms.

These are the oracles the tests check ``edgepose.ops`` against, and the
"MMPose-style NumPy baseline" that ``benchmarks/bench_core.py`` times. They
follow the published algorithms (MMPose 1.x ``get_simcc_maximum``,
``get_heatmap_maximum``, ``gaussian_blur``, ``refine_keypoints_dark``,
``refine_keypoints_dark_udp``, ``nms``, ``oks_iou``, ``oks_nms`` and
``soft_oks_nms``) step by step, with the same cost profile: a full-map
OpenCV blur per heatmap, a log over the whole map, a Python loop over the
keypoints for DARK, and vectorized NumPy per iteration for the NMS loops.

Where edgepose documents a rule that MMPose does not have, the rule is stated
in the function's docstring and implemented here:

* NaN: a SimCC row or a heatmap containing NaN gives score NaN and location
  (-1, -1); a refinement whose result is not finite is skipped.
* DARK-UDP is not applied to invalid keypoints (score <= 0, location
  (-1, -1)); MMPose applies it to them too, reading wrapped indices.
* NMS visits candidates in descending score order with ties broken by
  ascending index; box area has no +1 pixel.

Unlike MMPose, no function modifies its inputs.
"""
from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = [
    "COCO17_SIGMAS",
    "simcc_maximum",
    "decode_simcc_ref",
    "heatmap_maximum",
    "gaussian_blur",
    "refine_dark",
    "refine_dark_udp",
    "decode_heatmap_ref",
    "nms_boxes_ref",
    "oks_iou_ref",
    "oks_nms_ref",
    "soft_oks_nms_ref",
]

#: OKS sigmas of the 17 COCO keypoints (nose, eyes, ears, shoulders, elbows,
#: wrists, hips, knees, ankles), from the COCO keypoint evaluation: the
#: published per-keypoint values divided by 10, in float32.
COCO17_SIGMAS = np.array(
    [0.26,                  # nose
     0.25, 0.25,            # eyes
     0.35, 0.35,            # ears
     0.79, 0.79,            # shoulders
     0.72, 0.72,            # elbows
     0.62, 0.62,            # wrists
     1.07, 1.07,            # hips
     0.87, 0.87,            # knees
     0.89, 0.89],           # ankles
    dtype=np.float32) / np.float32(10)
COCO17_SIGMAS.setflags(write=False)

_F32_EPS = float(np.finfo(np.float32).eps)


# --------------------------------------------------------------------------
# SimCC
# --------------------------------------------------------------------------

def simcc_maximum(
    simcc_x: NDArray[np.floating], simcc_y: NDArray[np.floating]
) -> tuple[NDArray[np.float32], NDArray[np.floating]]:
    """Per-axis argmax of SimCC logits, as MMPose 1.x ``get_simcc_maximum``.

    Args:
        simcc_x: ``(N, K, Wx)`` x-axis logits.
        simcc_y: ``(N, K, Wy)`` y-axis logits.

    Returns:
        locs ``(N, K, 2)`` float32 bin indices (x, y), -1 where the score is
        <= 0, and vals ``(N, K)`` ``min(max x, max y)`` in the input dtype.
    """
    n, k, wx = simcc_x.shape
    wy = simcc_y.shape[2]
    rows_x = simcc_x.reshape(n * k, wx)
    rows_y = simcc_y.reshape(n * k, wy)
    locs = np.stack(
        (np.argmax(rows_x, axis=1), np.argmax(rows_y, axis=1)), axis=-1
    ).astype(np.float32)
    vals = np.amax(rows_x, axis=1)
    max_y = np.amax(rows_y, axis=1)
    # The minimum exactly as MMPose writes it (NaN handling follows from it).
    y_smaller = vals > max_y
    vals[y_smaller] = max_y[y_smaller]
    locs[vals <= 0] = -1
    return locs.reshape(n, k, 2), vals.reshape(n, k)


def decode_simcc_ref(
    simcc_x: NDArray[np.floating], simcc_y: NDArray[np.floating], split_ratio: float
) -> tuple[NDArray[np.float32], NDArray[np.floating]]:
    """SimCC decoding: :func:`simcc_maximum` divided by ``split_ratio``.

    edgepose rule: if the x row or the y row of a keypoint contains NaN, its
    score is NaN and both coordinates are ``-1 / split_ratio``.

    Returns:
        keypoints ``(N, K, 2)`` float32 in input pixels, scores ``(N, K)``.
    """
    simcc_x = np.asarray(simcc_x)
    simcc_y = np.asarray(simcc_y)
    locs, vals = simcc_maximum(simcc_x, simcc_y)
    has_nan = np.isnan(simcc_x).any(axis=2) | np.isnan(simcc_y).any(axis=2)
    locs[has_nan] = -1
    vals[has_nan] = np.nan
    # MMPose divides a float32 array by a Python float: float32 arithmetic.
    return locs / np.float32(split_ratio), vals


# --------------------------------------------------------------------------
# Heatmaps
# --------------------------------------------------------------------------

def heatmap_maximum(
    heatmaps: NDArray[np.floating],
) -> tuple[NDArray[np.float32], NDArray[np.floating]]:
    """Heatmap argmax, as MMPose ``get_heatmap_maximum``.

    Args:
        heatmaps: ``(N, K, H, W)``.

    Returns:
        locs ``(N, K, 2)`` float32 (x, y) of the first maximum in row-major
        order, -1 where the maximum is <= 0, and vals ``(N, K)`` the maxima.
    """
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n * k, h * w)
    ys, xs = np.unravel_index(np.argmax(flat, axis=1), (h, w))
    locs = np.stack((xs, ys), axis=-1).astype(np.float32)
    vals = np.amax(flat, axis=1)
    locs[vals <= 0] = -1
    return locs.reshape(n, k, 2), vals.reshape(n, k)


def gaussian_blur(heatmaps: NDArray[np.floating], kernel: int) -> NDArray[np.float32]:
    """Gaussian modulation of DARK (MMPose ``gaussian_blur``), not in place.

    Each map is zero-padded by ``(kernel - 1) // 2`` on every side, blurred
    with ``cv2.GaussianBlur(..., (kernel, kernel), 0)`` (OpenCV's sigma-0
    kernel), cropped back and rescaled so that its maximum equals the
    original maximum. A map whose blurred maximum is 0 comes out NaN.
    (MMPose's crop ``[border:-border]`` breaks for ``kernel == 1``; here
    kernel 1 is the identity, as the formula says.)

    Args:
        heatmaps: ``(K, H, W)``.
        kernel: odd kernel size.

    Returns:
        ``(K, H, W)`` float32, a new array.
    """
    if kernel % 2 != 1:
        raise ValueError(f"kernel must be odd, got {kernel}.")
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    border = (kernel - 1) // 2
    k, h, w = heatmaps.shape
    out = np.empty((k, h, w), dtype=np.float32)
    padded = np.zeros((h + 2 * border, w + 2 * border), dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for i in range(k):
            origin_max = np.max(heatmaps[i])
            padded[border:border + h, border:border + w] = heatmaps[i]
            blurred = cv2.GaussianBlur(padded, (kernel, kernel), 0)
            out[i] = blurred[border:border + h, border:border + w]
            out[i] *= origin_max / np.max(out[i])
    return out


def refine_dark(
    keypoints: NDArray[np.floating], heatmaps: NDArray[np.floating], kernel: int
) -> NDArray[np.floating]:
    """DARK refinement, as MMPose ``refine_keypoints_dark``, on a copy.

    The maps are blurred (:func:`gaussian_blur`), clamped at 1e-10 and
    log-transformed; at each keypoint whose integer location (truncated)
    satisfies ``1 < x < W - 2`` and ``1 < y < H - 2`` a Newton step with
    step-2 central differences is taken, unless the Hessian determinant is 0.
    Invalid keypoints (-1, -1) fall outside the range and are left alone.
    The step is computed in float64 from the float32 log-map.

    Args:
        keypoints: ``(N, K, 2)`` (x, y) in heatmap pixels.
        heatmaps: ``(K, H, W)`` the maps the keypoints were taken from.
        kernel: odd blur kernel size.

    Returns:
        the refined keypoints, a new array of the same dtype.
    """
    refined = np.array(keypoints, copy=True)
    n, k = refined.shape[:2]
    h, w = heatmaps.shape[1:]
    logmaps = gaussian_blur(heatmaps, kernel)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.maximum(logmaps, np.float32(1e-10), out=logmaps)
        np.log(logmaps, out=logmaps)
    for i in range(n):
        for j in range(k):
            x, y = refined[i, j, :2].astype(int)
            if not (1 < x < w - 2 and 1 < y < h - 2):
                continue
            # float() reads each float32 sample as a float64 scalar.
            lm = logmaps[j]
            c = float(lm[y, x])
            dx = 0.5 * (float(lm[y, x + 1]) - float(lm[y, x - 1]))
            dy = 0.5 * (float(lm[y + 1, x]) - float(lm[y - 1, x]))
            dxx = 0.25 * (float(lm[y, x + 2]) - 2 * c + float(lm[y, x - 2]))
            dyy = 0.25 * (float(lm[y + 2, x]) - 2 * c + float(lm[y - 2, x]))
            dxy = 0.25 * (float(lm[y + 1, x + 1]) - float(lm[y - 1, x + 1])
                          - float(lm[y + 1, x - 1]) + float(lm[y - 1, x - 1]))
            det = dxx * dyy - dxy ** 2
            if det == 0 or not np.isfinite(det):
                # singular (MMPose skips it), or a non-finite neighbourhood
                # (edgepose skips it; MMPose would write NaN)
                continue
            hessian = np.array([[dxx, dxy], [dxy, dyy]])
            step = -np.linalg.inv(hessian) @ np.array([dx, dy])
            refined[i, j, :2] += step
    return refined


def refine_dark_udp(
    keypoints: NDArray[np.floating], heatmaps: NDArray[np.floating], kernel: int
) -> NDArray[np.floating]:
    """DARK-UDP refinement, as MMPose ``refine_keypoints_dark_udp``, on a copy.

    The maps are blurred (:func:`gaussian_blur`), clipped to [1e-3, 50],
    log-transformed and edge-padded by one pixel; at each keypoint a Newton
    step with step-1 differences is taken with ``float32 eps`` added to the
    Hessian diagonal. Vectorized over keypoints per instance, as MMPose.

    edgepose rules: invalid keypoints (a negative coordinate, i.e. the
    (-1, -1) of a score <= 0) are left alone, and so are keypoints whose
    regularised Hessian is singular.

    Args:
        keypoints: ``(N, K, 2)`` integer-valued (x, y) in heatmap pixels.
        heatmaps: ``(K, H, W)``.
        kernel: odd blur kernel size.

    Returns:
        the refined keypoints, a new array of the same dtype.
    """
    refined = np.array(keypoints, copy=True)
    n, k = refined.shape[:2]
    logmaps = gaussian_blur(heatmaps, kernel)
    np.clip(logmaps, np.float32(1e-3), np.float32(50.0), out=logmaps)
    np.log(logmaps, out=logmaps)
    padded = np.pad(logmaps, ((0, 0), (1, 1), (1, 1)), mode="edge").astype(np.float64)
    ks = np.arange(k)
    for i in range(n):
        valid = (refined[i, :, 0] >= 0) & (refined[i, :, 1] >= 0)
        # Padded coordinates of the integer location; invalid ones read (0, 0)
        # harmlessly and are masked out below.
        px = np.where(valid, refined[i, :, 0], 0).astype(int) + 1
        py = np.where(valid, refined[i, :, 1], 0).astype(int) + 1
        c = padded[ks, py, px]
        right, left = padded[ks, py, px + 1], padded[ks, py, px - 1]
        down, up = padded[ks, py + 1, px], padded[ks, py - 1, px]
        down_right, up_left = padded[ks, py + 1, px + 1], padded[ks, py - 1, px - 1]
        dx = 0.5 * (right - left)
        dy = 0.5 * (down - up)
        dxx = right - 2 * c + left
        dyy = down - 2 * c + up
        dxy = 0.5 * (down_right - right - down + 2 * c - left - up + up_left)
        # inv([[a, b], [b, d]]) = [[d, -b], [-b, a]] / det
        a = dxx + _F32_EPS
        d = dyy + _F32_EPS
        det = a * d - dxy * dxy
        ok = valid & (det != 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            step_x = (d * dx - dxy * dy) / det
            step_y = (a * dy - dxy * dx) / det
        refined[i, ok, 0] -= step_x[ok]
        refined[i, ok, 1] -= step_y[ok]
    return refined


def decode_heatmap_ref(
    heatmaps: NDArray[np.floating], refine: str = "dark", kernel: int = 11
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Heatmap decoding: argmax, then the refinement per instance.

    edgepose rules on top of MMPose: a map containing NaN gives score NaN and
    location (-1, -1) and is not refined; a refinement whose result is not
    finite is dropped (the integer location stays).

    Args:
        heatmaps: ``(N, K, H, W)``, computed in float32.
        refine: ``"none"``, ``"dark"`` or ``"dark_udp"``.
        kernel: odd blur kernel size.

    Returns:
        keypoints ``(N, K, 2)`` float32 (x, y) in heatmap pixels, scores
        ``(N, K)`` float32.
    """
    refiners = {"none": None, "dark": refine_dark, "dark_udp": refine_dark_udp}
    refiner = refiners[refine]
    hm = np.asarray(heatmaps, dtype=np.float32)
    locs, vals = heatmap_maximum(hm)
    has_nan = np.isnan(hm).any(axis=(2, 3))
    locs[has_nan] = -1
    vals[has_nan] = np.nan
    if refiner is not None:
        for i in range(hm.shape[0]):
            out = refiner(locs[i:i + 1], hm[i], kernel)[0]
            finite = np.isfinite(out).all(axis=1)
            locs[i, finite] = out[finite]
    return locs, vals


# --------------------------------------------------------------------------
# NMS
# --------------------------------------------------------------------------

def _priority_order(scores: NDArray[np.floating]) -> NDArray[np.intp]:
    """Indices by descending score, ties by ascending index."""
    return np.argsort(-np.asarray(scores), kind="stable")


def nms_boxes_ref(
    boxes: NDArray[np.floating], scores: NDArray[np.floating], iou_threshold: float
) -> NDArray[np.intp]:
    """Greedy box NMS (the MMPose ``nms`` loop) with edgepose's conventions.

    Area ``max(0, x2 - x1) * max(0, y2 - y1)`` (no +1), IoU 0 where the union
    is not positive, visiting order descending score with ties by ascending
    index, suppression when IoU > ``iou_threshold``. Computed in float64.

    Args:
        boxes: ``(M, 4)`` x1, y1, x2, y2.
        scores: ``(M,)``.
        iou_threshold: suppression threshold.

    Returns:
        ``(M',)`` intp indices kept, in visiting order.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1, y1, x2, y2 = boxes.T
    areas = np.maximum(0.0, x2 - x1) * np.maximum(0.0, y2 - y1)
    order = _priority_order(scores)
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = iw * ih
        union = areas[i] + areas[rest] - inter
        positive = union > 0
        iou = np.where(positive, inter / np.where(positive, union, 1.0), 0.0)
        order = rest[iou <= iou_threshold]
    return np.array(keep, dtype=np.intp)


def oks_iou_ref(
    g: NDArray[np.floating],
    d: NDArray[np.floating],
    area_g: float,
    areas_d: NDArray[np.floating],
    sigmas: NDArray[np.floating],
) -> NDArray[np.float64]:
    """Object keypoint similarity of one pose with several, as MMPose ``oks_iou``.

    No visibility: ``e = d^2 / (2 sigma)^2 / ((area_g + area_d) / 2 + eps) / 2``
    with ``eps = np.spacing(1)``, OKS = mean over keypoints of ``exp(-e)``.

    Args:
        g: ``(K, 2)`` (a third column is ignored).
        d: ``(M, K, 2)``.
        area_g: area of ``g``.
        areas_d: ``(M,)`` areas of ``d``.
        sigmas: ``(K,)``.

    Returns:
        ``(M,)`` float64.
    """
    g = np.asarray(g, dtype=np.float64)[:, :2]
    d = np.asarray(d, dtype=np.float64)[:, :, :2]
    variances = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    areas_d = np.asarray(areas_d, dtype=np.float64)
    sq_dist = ((d - g) ** 2).sum(axis=2)
    scale = (float(area_g) + areas_d[:, None]) / 2 + np.spacing(1)
    e = sq_dist / variances / scale / 2
    return np.exp(-e).mean(axis=1)


def oks_nms_ref(
    keypoints: NDArray[np.floating],
    scores: NDArray[np.floating],
    areas: NDArray[np.floating],
    threshold: float,
    sigmas: NDArray[np.floating],
) -> NDArray[np.intp]:
    """OKS NMS, as MMPose ``oks_nms``: keep poses with OKS <= threshold each round.

    Args:
        keypoints: ``(M, K, 2)``.
        scores, areas: ``(M,)``.
        threshold: OKS above which a pose is dropped.
        sigmas: ``(K,)``.

    Returns:
        ``(M',)`` intp indices kept, in visiting order (ties by index).
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64)
    order = _priority_order(scores)
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        oks = oks_iou_ref(keypoints[i], keypoints[rest], areas[i], areas[rest], sigmas)
        order = rest[oks <= threshold]
    return np.array(keep, dtype=np.intp)


def soft_oks_nms_ref(
    keypoints: NDArray[np.floating],
    scores: NDArray[np.floating],
    areas: NDArray[np.floating],
    threshold: float,
    sigmas: NDArray[np.floating],
    max_keep: int | None = 20,
    method: str = "gaussian",
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Soft OKS NMS, as MMPose ``soft_oks_nms``.

    Repeatedly keeps the top of the current order and rescores the rest by
    their OKS ``o`` with it (gaussian: ``s * exp(-o**2 / threshold)``;
    linear: ``s * (1 - o)`` where ``o >= threshold``), then re-sorts the rest
    by (descending score, ascending original index), until ``max_keep`` poses
    are kept (all when None). Scores are computed in float64.

    Returns:
        the kept indices ``(M',)`` intp and each kept pose's score at the time
        it was kept ``(M',)`` float64.
    """
    if method not in ("gaussian", "linear"):
        raise ValueError(f"unknown method {method!r}")
    keypoints = np.asarray(keypoints, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    m = scores.shape[0]
    limit = m if max_keep is None else min(max_keep, m)
    order = np.lexsort((np.arange(m), -scores))
    current = scores[order]
    keep, kept_scores = [], []
    while order.size and len(keep) < limit:
        i, rest = order[0], order[1:]
        keep.append(i)
        kept_scores.append(current[0])
        current = current[1:]
        oks = oks_iou_ref(keypoints[i], keypoints[rest], areas[i], areas[rest], sigmas)
        if method == "gaussian":
            current = current * np.exp(-oks ** 2 / threshold)
        else:
            current = np.where(oks >= threshold, current * (1 - oks), current)
        resort = np.lexsort((rest, -current))
        order, current = rest[resort], current[resort]
    return np.array(keep, dtype=np.intp), np.array(kept_scores, dtype=np.float64)
