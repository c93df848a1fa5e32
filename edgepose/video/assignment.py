"""Assignment for tracking: the linear assignment solver and the cost matrices.

:func:`solve_assignment` solves the rectangular linear assignment problem
exactly as ``scipy.optimize.linear_sum_assignment`` (shortest augmenting
paths, Jonker-Volgenant / Crouse 2016) in NumPy, as SciPy is not a
dependency; :func:`match_by_cost` finds the best partial matching when some
pairs are too costly to match at all. :func:`iou_matrix` and
:func:`oks_matrix` are the similarities :class:`edgepose.video.PoseTracker`
matches people by (the cost is one minus the similarity).
"""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["solve_assignment", "match_by_cost", "iou_matrix", "oks_matrix"]


# ---------------------------------------------------------------------------
# Linear assignment

def _cost_matrix(cost: ArrayLike) -> NDArray[np.float64]:
    c = np.asarray(cost)
    if c.dtype.kind not in "fiub":
        raise TypeError(f"cost must be a numeric matrix, got dtype {c.dtype}.")
    if c.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix (rows, columns), got shape {c.shape}.")
    c = c.astype(np.float64)
    if np.isnan(c).any() or np.isneginf(c).any():
        raise ValueError("cost must not contain NaN or -inf; use +inf for pairs that may not be matched.")
    return c


def _shortest_augmenting_paths(cost: np.ndarray) -> np.ndarray:
    """Column of each row for an ``(n, m)`` cost with ``n <= m``, minimal
    total cost; +inf entries are forbidden. Raises ValueError if no
    assignment of every row exists."""
    n, m = cost.shape
    u = np.zeros(n)
    v = np.zeros(m)
    col4row = np.full(n, -1, np.intp)
    row4col = np.full(m, -1, np.intp)
    for cur in range(n):
        shortest = np.full(m, np.inf)
        path = np.full(m, -1, np.intp)
        seen_rows = np.zeros(n, bool)
        seen_cols = np.zeros(m, bool)
        min_val = 0.0
        i = cur
        sink = -1
        while sink < 0:
            seen_rows[i] = True
            reduced = min_val + cost[i] - u[i] - v
            better = ~seen_cols & (reduced < shortest)
            path[better] = i
            shortest[better] = reduced[better]
            open_dist = np.where(seen_cols, np.inf, shortest)
            lowest = open_dist.min()
            if not np.isfinite(lowest):
                raise ValueError(
                    "cost matrix is infeasible: no assignment of every row (of the smaller "
                    "side) avoids the +inf entries. Use match_by_cost to leave rows unmatched.")
            ties = np.flatnonzero(open_dist == lowest)
            free = ties[row4col[ties] < 0]
            j = int(free[0]) if free.size else int(ties[0])
            min_val = lowest
            seen_cols[j] = True
            if row4col[j] < 0:
                sink = j
            else:
                i = int(row4col[j])
        # Update the dual variables, then flip the augmenting path.
        u[cur] += min_val
        rows = np.flatnonzero(seen_rows)
        rows = rows[rows != cur]
        u[rows] += min_val - shortest[col4row[rows]]
        cols = np.flatnonzero(seen_cols)
        v[cols] -= min_val - shortest[cols]
        j = sink
        while True:
            i = int(path[j])
            row4col[j] = i
            col4row[i], j = j, int(col4row[i])
            if i == cur:
                break
    return col4row


def solve_assignment(cost: ArrayLike, *, maximize: bool = False) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Solves the linear assignment problem (as ``scipy.optimize.linear_sum_assignment``).

    Finds ``min(n, m)`` pairs ``(rows[k], cols[k])``, each row and column at
    most once, with the least total cost (the greatest with ``maximize``).
    ``+inf`` (``-inf`` when maximizing) marks a pair that may not be chosen.
    Shortest augmenting paths with dual variables (the Jonker-Volgenant
    family, as Crouse 2016 and SciPy), ``O(n^2 m)`` in NumPy.

    Args:
        cost: ``(n, m)`` numeric matrix; rectangular allowed.
        maximize: maximize the total instead.

    Returns:
        ``(rows, cols)``, two ``(min(n, m),)`` intp arrays; ``rows`` ascending.

    Raises:
        TypeError: a non-numeric matrix.
        ValueError: not 2-D, NaN (or the infinity of the wrong sign), or no
            assignment avoids the forbidden pairs.
    """
    c = _cost_matrix(-np.asarray(cost, dtype=np.float64) if maximize else cost)
    n, m = c.shape
    if n == 0 or m == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    if n <= m:
        cols = _shortest_augmenting_paths(c)
        return np.arange(n, dtype=np.intp), cols
    rows = _shortest_augmenting_paths(c.T)
    order = np.argsort(rows)
    return rows[order].astype(np.intp), order.astype(np.intp)


def match_by_cost(cost: ArrayLike, max_cost: float) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """The best partial matching: pairs cheaper than leaving both unmatched.

    Minimizes the total cost of the matched pairs plus ``max_cost / 2`` for
    every row and every column left unmatched, so a pair is matched only if
    that lowers the total; pairs costing more than ``max_cost`` (and +inf
    entries) are never matched. This is the "cost limit" extension of
    Jonker-Volgenant (as ``lap.lapjv(cost_limit=...)``), solved exactly on
    the ``(n + m, m + n)`` extended matrix.

    Args:
        cost: ``(n, m)`` numeric matrix (NaN and -inf not allowed).
        max_cost: the largest cost a matched pair may have; finite.

    Returns:
        ``(rows, cols)`` of the matched pairs, intp, ``rows`` ascending.

    Raises:
        TypeError, ValueError: as :func:`solve_assignment`, and a
            non-finite ``max_cost``.
    """
    c = _cost_matrix(cost)
    limit = float(max_cost)
    if not math.isfinite(limit):
        raise ValueError(f"max_cost must be finite, got {max_cost}; use solve_assignment "
                         "for a complete assignment.")
    n, m = c.shape
    if n == 0 or m == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    big = np.full((n + m, m + n), np.inf)
    big[:n, :m] = np.where(c <= limit, c, np.inf)
    half = limit / 2.0
    big[np.arange(n), m + np.arange(n)] = half   # row i unmatched
    big[n + np.arange(m), np.arange(m)] = half   # column j unmatched
    big[n:, m:] = 0.0
    # Costs below zero would make "unmatched" (limit / 2 each) the worse
    # choice for every pair anyway; shifting all entries keeps the optimum.
    shift = min(0.0, float(np.min(big[np.isfinite(big)])))
    rows, cols = solve_assignment(big - shift)
    keep = (rows < n) & (cols < m)
    return rows[keep], cols[keep]


# ---------------------------------------------------------------------------
# Similarities

def iou_matrix(a: np.ndarray, b: np.ndarray) -> NDArray[np.float64]:
    """IoU of ``(P, 4)`` and ``(Q, 4)`` xyxy boxes, ``(P, Q)``; the area of a
    box is ``(x2 - x1)(y2 - y1)``, and two boxes of no area have IoU 0."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def oks_matrix(track_kp: np.ndarray, track_valid: np.ndarray, track_area: np.ndarray,
               kp: np.ndarray, valid: np.ndarray, sigmas: np.ndarray) -> NDArray[np.float64]:
    """OKS ``(T, C)`` of candidate poses against track poses, the tracks in
    the role of ground truth (COCO): the mean over the track's valid
    keypoints of ``exp(-d^2 / (2 area (2 sigma)^2))``, a keypoint the
    candidate did not find counting 0; a track with no valid keypoint has
    OKS 0 with everyone.

    Args:
        track_kp: ``(T, K, 2)`` the tracks' keypoints (pixels).
        track_valid: ``(T, K)`` bool, the tracks' keypoints that were found.
        track_area: ``(T,)`` the tracks' areas (px^2), the scale of OKS.
        kp: ``(C, K, 2)`` the candidates' keypoints.
        valid: ``(C, K)`` bool.
        sigmas: ``(K,)`` the keypoints' OKS sigmas.
    """
    if len(track_kp) == 0 or len(kp) == 0:
        return np.zeros((len(track_kp), len(kp)))
    d2 = ((track_kp[:, None] - kp[None]) ** 2).sum(axis=-1)           # (T, C, K)
    var = (2.0 * sigmas.astype(np.float64)) ** 2
    e = d2 / (2.0 * var * (track_area[:, None, None] + np.spacing(1)))
    both = track_valid[:, None, :] & valid[None, :, :]
    count = track_valid.sum(axis=1)[:, None]
    # a keypoint not valid on either side (a NaN one, say) adds exactly 0
    total = np.where(both, np.exp(-np.where(both, e, 0.0)), 0.0).sum(axis=-1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)
