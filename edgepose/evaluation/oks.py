"""Object keypoint similarity (OKS) exactly as pycocotools computes it, and
the OKS sigmas of each keypoint set as the reference tools write them."""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgepose.evaluation.annotations import match_keypoint_set
from edgepose.keypoints import KEYPOINT_SETS, KeypointSet, get_keypoint_set

__all__ = ["compute_oks", "resolve_sigmas", "REFERENCE_SIGMAS"]

# The sigmas exactly as the reference tools write them (float64): pycocotools
# for COCO, crowdposetools for CrowdPose. KeypointSet stores float32.
REFERENCE_SIGMAS = {
    "coco17": np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07,
                        .87, .87, .89, .89]) / 10.0,
    "crowdpose14": np.array([.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89,
                             .79, .79]) / 10.0,
}
for _s in REFERENCE_SIGMAS.values():
    _s.setflags(write=False)

# --- sigmas ------------------------------------------------------------------

def _float64_sigmas(kset: KeypointSet) -> NDArray[np.float64]:
    if kset.sigmas is None:
        raise ValueError(
            f"Keypoint set {kset.name!r} defines no OKS sigmas; pass sigmas= explicitly.")
    ref = REFERENCE_SIGMAS.get(kset.name)
    if ref is not None and ref.shape == kset.sigmas.shape and np.allclose(
            ref, kset.sigmas, rtol=1e-6, atol=0):
        return ref.copy()
    # float32 -> the shortest decimal that round-trips -> float64: the value
    # as published (0.079, not 0.0790000036...).
    return np.array([float(str(s)) for s in kset.sigmas], dtype=np.float64)


def resolve_sigmas(num_keypoints: int, *, sigmas: ArrayLike | None = None,
                   keypoint_set: str | KeypointSet | None = None,
                   keypoint_names: tuple[str, ...] = ()) -> NDArray[np.float64]:
    """The ``(K,)`` float64 OKS sigmas to evaluate K keypoints with.

    In order: ``sigmas`` as given; the sigmas of ``keypoint_set``; the
    registered keypoint set whose names match ``keypoint_names`` (an
    annotation file's category, e.g. COCO, CrowdPose or AIC). Registered
    sets use the reference tools' exact float64 values (pycocotools for COCO,
    crowdposetools for CrowdPose, the published decimals otherwise).

    Raises:
        ValueError: wrong length, non-positive values, or nothing to go by
            (the message lists the names it saw).
    """
    if sigmas is not None:
        s = np.array(sigmas, dtype=np.float64)
        if s.shape != (num_keypoints,):
            raise ValueError(f"sigmas must have shape ({num_keypoints},), one per keypoint, "
                             f"got {s.shape}.")
        if not (np.isfinite(s).all() and (s > 0).all()):
            raise ValueError("sigmas must be positive and finite.")
        return s
    if keypoint_set is not None:
        kset = get_keypoint_set(keypoint_set) if isinstance(keypoint_set, str) else keypoint_set
        if len(kset) != num_keypoints:
            raise ValueError(f"Keypoint set {kset.name!r} has {len(kset)} keypoints but the "
                             f"annotations have {num_keypoints}.")
        return _float64_sigmas(kset)
    kset = match_keypoint_set(keypoint_names)
    if kset is not None and kset.sigmas is not None and len(kset) == num_keypoints:
        return _float64_sigmas(kset)
    raise ValueError(
        f"Cannot tell which OKS sigmas fit these {num_keypoints} keypoints "
        f"({', '.join(keypoint_names) or 'no names in the file'}); pass keypoint_set= "
        f"(one of {', '.join(n for n, s in KEYPOINT_SETS.items() if s.sigmas is not None)}) "
        "or sigmas=.")


# --- OKS -----------------------------------------------------------------------

def compute_oks(det_keypoints: ArrayLike, gt_keypoints: ArrayLike, gt_bbox_xywh: ArrayLike,
                gt_area: ArrayLike, sigmas: ArrayLike) -> NDArray[np.float64]:
    """OKS between every detection and every ground truth, as pycocotools'
    ``computeOks`` (bit-identical values).

    Args:
        det_keypoints: ``(D, K, 2)`` or ``(D, K, 3)`` detection x, y (a third
            column is ignored), image pixels.
        gt_keypoints: ``(G, K, 3)`` ground truth x, y, v.
        gt_bbox_xywh: ``(G, 4)`` ground-truth boxes, COCO x, y, w, h (used for
            ground truth with no labelled keypoint).
        gt_area: ``(G,)`` ground-truth areas.
        sigmas: ``(K,)``.

    Returns:
        ``(D, G)`` float64.
    """
    dt = np.asarray(det_keypoints, dtype=np.float64)
    gt = np.asarray(gt_keypoints, dtype=np.float64)
    bb = np.asarray(gt_bbox_xywh, dtype=np.float64)
    area = np.asarray(gt_area, dtype=np.float64)
    s = np.asarray(sigmas, dtype=np.float64)
    k = s.shape[0]
    if dt.ndim != 3 or dt.shape[1] != k or dt.shape[2] not in (2, 3):
        raise ValueError(f"det_keypoints must have shape (D, {k}, 2) or (D, {k}, 3), got {dt.shape}.")
    if gt.ndim != 3 or gt.shape[1:] != (k, 3):
        raise ValueError(f"gt_keypoints must have shape (G, {k}, 3), got {gt.shape}.")
    g = gt.shape[0]
    if bb.shape != (g, 4) or area.shape != (g,):
        raise ValueError(f"gt_bbox_xywh must have shape ({g}, 4) and gt_area ({g},), "
                         f"got {bb.shape} and {area.shape}.")
    d = dt.shape[0]
    di, gi = np.meshgrid(np.arange(d), np.arange(g), indexing="ij")
    out = _oks_pairs(dt[di.ravel(), :, :2], gt[gi.ravel()], bb[gi.ravel()], area[gi.ravel()], s)
    return out.reshape(d, g)


def _oks_pairs(dt_xy: np.ndarray, gt: np.ndarray, bb: np.ndarray, area: np.ndarray,
               sigmas: np.ndarray) -> np.ndarray:
    """OKS of P (detection, ground truth) pairs: dt_xy (P, K, 2), gt (P, K, 3),
    bb (P, 4) xywh, area (P,). Same float64 operations, in the same order, as
    pycocotools, and each sum over exactly the keypoints it sums (NumPy's
    pairwise summation depends on the count), so the values are identical."""
    p, k = dt_xy.shape[:2]
    out = np.zeros(p, np.float64)
    if p == 0:
        return out
    variances = (sigmas * 2) ** 2
    vis = gt[:, :, 2] > 0
    k1 = np.count_nonzero(vis, axis=1)
    xd, yd = dt_xy[:, :, 0], dt_xy[:, :, 1]
    denom = (area + np.spacing(1))[:, None]
    labelled = k1 > 0
    if labelled.any():
        r = labelled
        dx = xd[r] - gt[r, :, 0]
        dy = yd[r] - gt[r, :, 1]
        sim = np.exp(-((dx ** 2 + dy ** 2) / variances / denom[r] / 2))
        rows = np.flatnonzero(r)
        counts = k1[r]
        vis_r = vis[r]
        for c in np.unique(counts):
            sel = counts == c
            vals = sim[sel][vis_r[sel]].reshape(-1, c)
            out[rows[sel]] = np.sum(vals, axis=1) / c
    if (~labelled).any():
        r = ~labelled
        b = bb[r]
        x0 = (b[:, 0] - b[:, 2])[:, None]
        x1 = (b[:, 0] + b[:, 2] * 2)[:, None]
        y0 = (b[:, 1] - b[:, 3])[:, None]
        y1 = (b[:, 1] + b[:, 3] * 2)[:, None]
        z = 0.0
        dx = np.maximum(z, x0 - xd[r]) + np.maximum(z, xd[r] - x1)
        dy = np.maximum(z, y0 - yd[r]) + np.maximum(z, yd[r] - y1)
        e = (dx ** 2 + dy ** 2) / variances / denom[r] / 2
        out[r] = np.sum(np.exp(-e), axis=1) / k
    return out
