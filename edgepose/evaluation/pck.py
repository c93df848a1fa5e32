"""PCK, PCKh and keypoint errors for corresponding predictions and ground truth.

Every function takes predictions and ground truth that correspond one to
one: ``(N, K, 2)`` arrays of (x, y) in the same pixel space, a ``(N, K)``
mask of the ground-truth keypoints that count (labelled), and, for the
normalised metrics, a ``(N,)`` normaliser per person:

* :func:`bbox_size`: the longer side of the person's box (PCK, MMPose's
  ``norm_item="bbox"``);
* :func:`torso_size`: the distance between two ground-truth keypoints,
  e.g. a shoulder and the opposite hip (tPCK);
* :func:`head_size_from_boxes`: 0.6 x the head box diagonal, the MPII
  head-segment length (PCKh).

A keypoint is correct when ``distance / normaliser < alpha`` (strictly, as
MMPose's ``keypoint_pck_accuracy``). Keypoints whose ground truth is not
labelled, or whose person has no positive finite normaliser, do not count.
A prediction of NaN (a person the model did not find) counts as incorrect
in PCK and is left out of the errors.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgepose.keypoints import KeypointSet

__all__ = [
    "PCKResult",
    "KeypointErrors",
    "pck",
    "keypoint_errors",
    "bbox_size",
    "torso_size",
    "head_size_from_boxes",
    "HEAD_SIZE_FACTOR",
]

#: MPII's head-segment length is this times the head box diagonal (``SC_BIAS``).
HEAD_SIZE_FACTOR = 0.6


@dataclass(frozen=True, eq=False)
class PCKResult:
    """Percentage of correct keypoints at one threshold.

    Attributes:
        alpha: the threshold, a fraction of the normaliser.
        correct: ``(K,)`` int64 correct keypoints.
        counts: ``(K,)`` int64 keypoints that count.
        normaliser: what the distances were divided by ("bbox", "torso", "head", ...).
        names: the K keypoint names, or ().
    """

    alpha: float
    correct: NDArray[np.int64]
    counts: NDArray[np.int64]
    normaliser: str = ""
    names: tuple[str, ...] = ()

    @property
    def per_keypoint(self) -> NDArray[np.float64]:
        """``(K,)`` fraction correct per keypoint, NaN where nothing counts."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.correct / np.maximum(self.counts, 1), np.nan)

    @property
    def mean(self) -> float:
        """Mean of the per-keypoint fractions over keypoints that count
        (MMPose ``PCKAccuracy``); NaN if none."""
        p = self.per_keypoint
        p = p[np.isfinite(p)]
        return float(p.mean()) if p.size else float("nan")

    @property
    def pooled(self) -> float:
        """Correct over all counted keypoints (MPII's joint-count-weighted mean)."""
        total = int(self.counts.sum())
        return float(self.correct.sum() / total) if total else float("nan")

    @property
    def name(self) -> str:
        prefix = {"bbox": "PCK", "head": "PCKh", "torso": "tPCK"}.get(self.normaliser, "PCK")
        return f"{prefix}@{self.alpha:g}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"alpha": self.alpha, "normaliser": self.normaliser,
                               "mean": _num(self.mean), "pooled": _num(self.pooled),
                               "count": int(self.counts.sum())}
        if self.names:
            out["per_keypoint"] = {n: _num(v) for n, v in zip(self.names, self.per_keypoint)}
        return out


@dataclass(frozen=True, eq=False)
class KeypointErrors:
    """Distances between predicted and ground-truth keypoints.

    Attributes:
        per_keypoint_px: ``(K,)`` mean distance in pixels per keypoint (NaN
            where nothing counts).
        counts: ``(K,)`` int64 keypoints measured.
        mean_px: mean distance over every measured keypoint (MMPose's EPE).
        nme: normalised mean error, mean of ``distance / normaliser``
            (MMPose's ``keypoint_nme``), NaN without a normaliser.
        nmse: normalised mean squared error, mean of
            ``(distance / normaliser)^2``, NaN without a normaliser.
        names: the K keypoint names, or ().
    """

    per_keypoint_px: NDArray[np.float64]
    counts: NDArray[np.int64]
    mean_px: float
    nme: float
    nmse: float
    names: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mean_px": _num(self.mean_px), "nme": _num(self.nme),
                               "nmse": _num(self.nmse), "count": int(self.counts.sum())}
        if self.names:
            out["per_keypoint_px"] = {n: _num(v) for n, v in zip(self.names, self.per_keypoint_px)}
        return out


def _num(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 6)


def _inputs(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if g.ndim != 3 or g.shape[2] != 2:
        raise ValueError(f"gt must have shape (N, K, 2) as x, y, got {g.shape}.")
    if p.shape != g.shape:
        raise ValueError(f"pred must have the shape of gt {g.shape}, got {p.shape}.")
    m = np.asarray(mask)
    if m.shape != g.shape[:2]:
        raise ValueError(f"mask must have shape {g.shape[:2]} (N, K), got {m.shape}.")
    if not np.isfinite(g[m.astype(bool)]).all():
        raise ValueError("gt keypoints that count (mask) must be finite.")
    return p, g, m.astype(bool)


def _normaliser(norm: ArrayLike | None, n: int) -> np.ndarray | None:
    if norm is None:
        return None
    s = np.asarray(norm, dtype=np.float64)
    if s.shape != (n,):
        raise ValueError(f"normaliser must have shape ({n},), one per person, got {s.shape}.")
    return s


def pck(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike, normaliser: ArrayLike,
        alpha: float, *, normaliser_name: str = "", names: tuple[str, ...] = ()) -> PCKResult:
    """PCK@alpha: the fraction of keypoints within ``alpha * normaliser``.

    Args:
        pred: ``(N, K, 2)`` predicted x, y; NaN rows count as incorrect.
        gt: ``(N, K, 2)`` ground-truth x, y.
        mask: ``(N, K)`` bool, the ground-truth keypoints that count.
        normaliser: ``(N,)`` per person (:func:`bbox_size`,
            :func:`torso_size`, head sizes); people with a non-positive or
            non-finite value do not count.
        alpha: the threshold (e.g. 0.05, 0.1, 0.2; 0.5 for PCKh).
        normaliser_name: recorded in the result ("bbox", "torso", "head").
        names: keypoint names, recorded in the result.

    Returns:
        :class:`PCKResult`.

    Raises:
        ValueError: mismatched shapes, a non-positive alpha.
    """
    p, g, m = _inputs(pred, gt, mask)
    s = _normaliser(normaliser, g.shape[0])
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a positive number, got {alpha}.")
    valid = m & (np.isfinite(s) & (s > 0))[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.linalg.norm(p - g, axis=2) / s[:, None]
        ok = valid & (dist < alpha)  # NaN distance: incorrect
    return PCKResult(float(alpha), ok.sum(axis=0).astype(np.int64),
                     valid.sum(axis=0).astype(np.int64), normaliser_name, tuple(names))


def keypoint_errors(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike,
                    normaliser: ArrayLike | None = None, *,
                    names: tuple[str, ...] = ()) -> KeypointErrors:
    """Mean keypoint error in pixels, and normalised errors (NME, NMSE).

    Args:
        pred, gt, mask: as :func:`pck`; NaN predictions are left out.
        normaliser: ``(N,)`` per person for NME / NMSE (people without a
            positive finite value are left out of those two), or None.
        names: keypoint names, recorded in the result.

    Returns:
        :class:`KeypointErrors`.
    """
    p, g, m = _inputs(pred, gt, mask)
    dist = np.linalg.norm(p - g, axis=2)
    measured = m & np.isfinite(dist)
    counts = measured.sum(axis=0).astype(np.int64)
    total = np.where(measured, dist, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_kp = np.where(counts > 0, total.sum(axis=0) / np.maximum(counts, 1), np.nan)
    mean_px = float(total.sum() / counts.sum()) if counts.sum() else float("nan")
    nme = nmse = float("nan")
    s = _normaliser(normaliser, g.shape[0])
    if s is not None:
        use = measured & (np.isfinite(s) & (s > 0))[:, None]
        if use.any():
            with np.errstate(invalid="ignore", divide="ignore"):
                r = dist / s[:, None]
            nme = float(r[use].mean())
            nmse = float((r[use] ** 2).mean())
    return KeypointErrors(per_kp, counts, mean_px, nme, nmse, tuple(names))


def bbox_size(boxes_xyxy: ArrayLike) -> NDArray[np.float64]:
    """``(N,)`` longer side of each ``(N, 4)`` xyxy box: PCK's normaliser."""
    b = np.asarray(boxes_xyxy, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4) as x1, y1, x2, y2, got {b.shape}.")
    return np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])


def torso_size(gt: ArrayLike, mask: ArrayLike, first: int | str, second: int | str,
               keypoint_set: KeypointSet | None = None) -> NDArray[np.float64]:
    """``(N,)`` distance between two ground-truth keypoints (e.g.
    ``"left_shoulder"`` and ``"right_hip"``), NaN where either is not
    labelled: tPCK's normaliser.

    Args:
        gt: ``(N, K, 2)`` ground truth.
        mask: ``(N, K)`` labelled keypoints.
        first, second: keypoint indices, or names with ``keypoint_set``.
        keypoint_set: resolves names.

    Raises:
        ValueError: a name without ``keypoint_set``, or an unknown name or index.
    """
    g = np.asarray(gt, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if g.ndim != 3 or g.shape[2] != 2 or m.shape != g.shape[:2]:
        raise ValueError(f"gt must have shape (N, K, 2) and mask (N, K), got {g.shape} and {m.shape}.")
    idx = []
    for which in (first, second):
        if isinstance(which, str):
            if keypoint_set is None:
                raise ValueError(f"keypoint {which!r} is a name: pass keypoint_set= to resolve it.")
            which = keypoint_set.index(which)
        if not 0 <= int(which) < g.shape[1]:
            raise ValueError(f"keypoint index {which} is out of range for K={g.shape[1]}.")
        idx.append(int(which))
    i, j = idx
    d = np.linalg.norm(g[:, i] - g[:, j], axis=1)
    return np.where(m[:, i] & m[:, j], d, np.nan)


def head_size_from_boxes(head_boxes_xyxy: ArrayLike) -> NDArray[np.float64]:
    """``(N,)`` PCKh normaliser from MPII head boxes: 0.6 x the diagonal
    (MPII's evaluation and MMPose with ``headbox_file``)."""
    b = np.asarray(head_boxes_xyxy, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"head boxes must have shape (N, 4) as x1, y1, x2, y2, got {b.shape}.")
    return HEAD_SIZE_FACTOR * np.linalg.norm(b[:, 2:] - b[:, :2], axis=1)
