"""COCO keypoint evaluation (OKS AP/AR) in NumPy, identical to pycocotools.

:func:`evaluate_coco` reproduces ``COCOeval(gt, dt, "keypoints")``:
``evaluate()``, ``accumulate()`` and ``summarize()``, rule for rule:

* per image and category, detections ranked by score with a stable sort
  (``np.argsort(-scores, kind="mergesort")``) and cut to ``maxDets`` (20);
* OKS as ``computeOks``: ``exp(-d^2 / (2 * area * (2 sigma)^2))`` averaged over
  the labelled keypoints, and for ground truth without labelled keypoints
  the distance to a box twice the size of the ground-truth box; computed in
  float64 with the same operation order, so the values are bit-identical;
* ground truth is ignored when ``iscrowd`` or ``num_keypoints == 0``, or
  outside the area range; crowd ground truth can match many detections;
* greedy matching per threshold in score order: the best (last on ties)
  unmatched regular ground truth with OKS >= threshold, else the best
  ignored one; unmatched detections outside the area range are ignored;
* 101-point interpolated precision, recall at the last detection, means
  over the entries that are not -1.

The greedy matching is vectorized over images, thresholds and area ranges
(it loops only over the <= 20 detection ranks), which is where the speed over
pycocotools comes from.

Two pycocotools quirks are kept for parity and worth knowing: a ground
truth whose id is 0 never counts as matched (its id is stored as the match
and 0 means "none"), and the area of a detection is the box around all its
keypoints, including any at (0, 0).

CrowdPose: its official evaluation (crowdposetools) is this algorithm with
CrowdPose's sigmas and ``area = 0.53 * bbox w * h`` for the ground truth
(``area_source="bbox"``, chosen automatically when the file has no ``area``),
plus AP on the easy / medium / hard images (crowd index < 0.2, < 0.8, >= 0.8):
``CocoMetrics.crowd_ap``, ``metrics["AP(easy)"]``. Two differences from
crowdposetools, both presentational: it rounds those three to 4 decimals, and
it averages -1 entries into them when a category has no ground truth (one
category, as CrowdPose has, gives the same number). AI Challenger files
evaluate the same way with AIC's sigmas (MMPose's ``use_area=False``).

Keep in mind the ``keypoints`` third value of a detection (its keypoint
score) plays no part in OKS; the person ``score`` ranks detections.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgepose._arrays import read_only
from edgepose.evaluation.annotations import CocoKeypoints, KeypointDetections
from edgepose.evaluation.oks import _oks_pairs, resolve_sigmas
from edgepose.keypoints import KeypointSet, get_keypoint_set

__all__ = [
    "CocoMetrics",
    "PerKeypointOks",
    "evaluate_coco",
    "STAT_NAMES",
    "IOU_THRESHOLDS",
    "RECALL_THRESHOLDS",
    "AREA_RANGES",
]

#: pycocotools' OKS thresholds 0.50:0.05:0.95 and recall points 0:0.01:1,
#: built with the same expression so the floats are identical.
IOU_THRESHOLDS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
IOU_THRESHOLDS.setflags(write=False)
RECALL_THRESHOLDS.setflags(write=False)
#: COCO's keypoint area ranges (pixels^2), in pycocotools' order.
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0 ** 2, 1e5 ** 2), "medium": (32 ** 2, 96 ** 2), "large": (96 ** 2, 1e5 ** 2)}
#: The ten numbers of ``COCOeval.summarize()`` for keypoints, in its order.
STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
#: CrowdPose's crowd-index split (crowdposetools ``get_type_result(0.2, 0.8)``).
CROWD_SPLITS = {"easy": (-np.inf, 0.2), "medium": (0.2, 0.8), "hard": (0.8, np.inf)}
#: The factor CrowdPose and AIC apply to the box area when a file has no ``area``.
BBOX_AREA_FACTOR = 0.53

# Bound on the elements of one (A, T, images, G) matching array.
_CHUNK_ELEMENTS = 1 << 21


@dataclass(frozen=True, eq=False)
class PerKeypointOks:
    """Per-keypoint breakdown over the detections matched to regular ground
    truth at OKS >= 0.5 (area "all"): the true positives of AP50.

    Attributes:
        names: the K keypoint names.
        count: ``(K,)`` matched pairs whose ground-truth keypoint is labelled.
        similarity: ``(K,)`` mean keypoint similarity ``exp(-d^2 / (2 A (2 sigma)^2))``
            with A the ground-truth area (the per-keypoint term of OKS), NaN
            where count is 0.
        error_px: ``(K,)`` mean distance in pixels, NaN where count is 0.
    """

    names: tuple[str, ...]
    count: NDArray[np.int64]
    similarity: NDArray[np.float64]
    error_px: NDArray[np.float64]

    def to_dict(self) -> dict[str, Any]:
        return {n: {"count": int(c), "similarity": _num(s), "error_px": _num(e)}
                for n, c, s, e in zip(self.names, self.count, self.similarity, self.error_px)}


@dataclass(frozen=True, eq=False)
class CocoMetrics:
    """Result of :func:`evaluate_coco`.

    Attributes:
        stats: ``(10,)`` float64, ``COCOeval.stats`` for keypoints, in the
            order of :data:`STAT_NAMES`; -1 where undefined (no ground truth
            in that area range), as pycocotools.
        precision: ``(T, R, C, A)`` interpolated precision (thresholds,
            recall points, categories, area ranges "all", "medium", "large"),
            -1 where undefined.
        recall: ``(T, C, A)``.
        sigmas: ``(K,)`` float64 OKS sigmas used.
        area_source: "annotation" or "bbox" (0.53 * w * h).
        crowd_ap: AP on CrowdPose's easy / medium / hard images, when the
            images have a crowd index; else empty.
        num_images, num_ground_truth, num_detections: what was evaluated
            (ground truth that is not ignored; detections after the maxDets cut).
        matches: ``(P, 2)`` int64 (annotation row, detection row) pairs
            matched to regular ground truth at OKS >= 0.5, area "all".
        per_keypoint: the breakdown, if asked for.
    """

    stats: NDArray[np.float64]
    precision: NDArray[np.float64]
    recall: NDArray[np.float64]
    sigmas: NDArray[np.float64]
    area_source: str
    num_images: int
    num_ground_truth: int
    num_detections: int
    matches: NDArray[np.int64]
    crowd_ap: dict[str, float] = field(default_factory=dict)
    per_keypoint: PerKeypointOks | None = None

    def __getitem__(self, name: str) -> float:
        """A stat by name: ``metrics["AP"]``, ``metrics["AP(easy)"]``."""
        if name in STAT_NAMES:
            return float(self.stats[STAT_NAMES.index(name)])
        if name.startswith("AP(") and name[3:-1] in self.crowd_ap:
            return self.crowd_ap[name[3:-1]]
        raise KeyError(f"unknown stat {name!r}; stats: {', '.join(self.names())}.")

    def names(self) -> tuple[str, ...]:
        return STAT_NAMES + tuple(f"AP({k})" for k in self.crowd_ap)

    @property
    def ap(self) -> float:
        return float(self.stats[0])

    @property
    def ar(self) -> float:
        return float(self.stats[5])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {n: self[n] for n in self.names()}
        out.update(area_source=self.area_source, num_images=self.num_images,
                   num_ground_truth=self.num_ground_truth, num_detections=self.num_detections)
        if self.per_keypoint is not None:
            out["per_keypoint"] = self.per_keypoint.to_dict()
        return out


def _num(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 6)


# --- matching ------------------------------------------------------------------

def _last_best(cand: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Index of the last candidate with the highest value along the last
    axis (pycocotools keeps replacing its best on ties), -1 if none."""
    vv = np.where(cand, v, -np.inf)[..., ::-1]
    g = cand.shape[-1]
    first = np.argmax(vv, axis=-1)  # first maximum of the reversed row = last maximum
    found = np.take_along_axis(vv, first[..., None], axis=-1)[..., 0] > -np.inf
    return np.where(found, g - 1 - first, -1)


def _match_chunk(oks: np.ndarray, n_dt: np.ndarray, gt_valid: np.ndarray, crowd: np.ndarray,
                 ignore: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Greedy matching of a chunk of n images at once, rank by rank.

    oks (n, Dm, Gm); n_dt (n,) detections per image; gt_valid, crowd (n, Gm);
    ignore (A, n, Gm). Returns (A, T, n, Dm) matched ground-truth column or -1.
    """
    n, dm, gm = oks.shape
    a = ignore.shape[0]
    t = thresholds.shape[0]
    thr = thresholds[None, :, None, None]
    taken = np.zeros((a, t, n, gm), bool)
    out = np.full((a, t, n, dm), -1, np.int64)
    cols = np.arange(gm)
    regular = ~ignore[:, None]                      # (A, 1, n, Gm)
    for r in range(dm):
        act = np.flatnonzero(n_dt > r)              # images that have a detection of rank r
        if act.size == 0:
            break
        full = act.size == n
        v = oks[:, r, :] if full else oks[act, r, :]
        tk = taken if full else taken[:, :, act]
        ok = (v >= thr) & (gt_valid if full else gt_valid[act]) & (~tk | (crowd if full else crowd[act]))
        reg = regular if full else regular[:, :, act]
        m = _last_best(ok & reg, v)
        none = m < 0
        if none.any():
            m = np.where(none, _last_best(ok & ~reg, v), m)
        hit = cols == m[..., None]
        if full:
            out[..., r] = m
            taken |= hit
        else:
            out[:, :, act, r] = m
            taken[:, :, act] = tk | hit
    return out


def _chunks(g_per_image: np.ndarray, a: int, t: int, dm: int):
    """Image index chunks, ordered by ground-truth count, each small enough."""
    order = np.argsort(g_per_image, kind="stable")
    start = 0
    while start < len(order):
        gm = max(int(g_per_image[order[start]]), 1)
        stop = start
        while stop < len(order):
            gm = max(gm, int(g_per_image[order[stop]]))
            if (stop - start + 1) * a * t * max(gm, dm) > _CHUNK_ELEMENTS and stop > start:
                break
            stop += 1
        yield order[start:stop]
        start = stop


# --- accumulate ----------------------------------------------------------------

def _precision_recall(scores: np.ndarray, tp: np.ndarray, ignored: np.ndarray, npig: int,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """accumulate() for one (category, area): scores (N,), tp, ignored (T, N)
    bool in evaluation order. Returns precision (T, R), recall (T,)."""
    t_count = tp.shape[0]
    order = np.argsort(-scores, kind="mergesort")
    tp = tp[:, order]
    ignored = ignored[:, order]
    tps = tp & ~ignored
    fps = ~tp & ~ignored
    tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)
    fp_sum = np.cumsum(fps, axis=1).astype(dtype=float)
    nd = tp_sum.shape[1]
    precision = np.zeros((t_count, RECALL_THRESHOLDS.shape[0]))
    recall = np.zeros(t_count)
    if nd == 0:
        return precision, recall
    rc = tp_sum / npig
    pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
    recall[:] = rc[:, -1]
    for i in range(t_count):
        inds = np.searchsorted(rc[i], RECALL_THRESHOLDS, side="left")
        inside = inds < nd
        precision[i, inside] = pr[i, inds[inside]]
    return precision, recall


def _mean_defined(s: np.ndarray) -> float:
    s = s[s > -1]
    return float(np.mean(s)) if s.size else -1.0


# --- the evaluation ------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Evaluated:
    """``COCOeval.evaluate()``'s per-image results for every (category,
    image) group, as columns. Ground truth rows are ordered by group (file
    order within), detections by group then score (cut to maxDets)."""

    g_rows: np.ndarray      # (G,) annotation rows
    group_g: np.ndarray     # (G,) category position * I + image position
    ignore_g: np.ndarray    # (A, G) gtIgnore per area range
    d_rows: np.ndarray      # (D,) detection rows
    group_d: np.ndarray     # (D,)
    matched: np.ndarray     # (A, T, D) position in g_rows, -1 if none
    tp: np.ndarray          # (A, T, D) dtMatches != 0
    dt_ignore: np.ndarray   # (A, T, D) dtIgnore
    n_images: int
    n_categories: int


def _ground_truth_area(gt: CocoKeypoints, rows: np.ndarray, area_source: str
                       ) -> tuple[np.ndarray, str]:
    missing = np.isnan(gt.area[rows])
    if area_source == "auto":
        area_source = "bbox" if missing.any() else "annotation"
    if area_source == "annotation":
        if missing.any():
            raise ValueError(
                f"{int(missing.sum())} annotations have no 'area'; use area_source='bbox' "
                "(0.53 * box area, as CrowdPose's and AIC's evaluations do).")
        return gt.area, area_source
    if area_source == "bbox":
        return gt.bbox_xywh[:, 3] * gt.bbox_xywh[:, 2] * BBOX_AREA_FACTOR, area_source
    raise ValueError(f"area_source must be 'auto', 'annotation' or 'bbox', got {area_source!r}.")


def _evaluate_images(gt: CocoKeypoints, dt: KeypointDetections, g_rows: np.ndarray,
                     d_rows: np.ndarray, img_pos: np.ndarray, cats: np.ndarray,
                     gt_area: np.ndarray, sigmas: np.ndarray, max_detections: int) -> _Evaluated:
    """``computeOks`` + ``evaluateImg`` for every group at once."""
    n_img = gt.num_images
    group_g = np.searchsorted(cats, gt.category_ids[g_rows]) * n_img + gt.image_index[g_rows]
    order = np.argsort(group_g, kind="stable")
    g_rows, group_g = g_rows[order], group_g[order]
    group_d = np.searchsorted(cats, dt.category_ids[d_rows]) * n_img + img_pos[d_rows]
    order = np.lexsort((-dt.scores[d_rows], group_d))  # stable: ties keep result order
    d_rows, group_d = d_rows[order], group_d[order]
    rank = np.arange(len(d_rows)) - np.searchsorted(group_d, group_d, side="left")
    d_rows, group_d = d_rows[rank < max_detections], group_d[rank < max_detections]

    ranges = np.array(list(AREA_RANGES.values()))
    a_count, t_count = len(ranges), len(IOU_THRESHOLDS)
    area_g = gt_area[g_rows]
    base_ignore = gt.iscrowd[g_rows] | (gt.num_keypoints[g_rows] == 0)
    ignore_g = base_ignore[None] | (area_g[None] < ranges[:, :1]) | (area_g[None] > ranges[:, 1:])
    area_d = dt.area[d_rows]
    outside_d = (area_d[None] < ranges[:, :1]) | (area_d[None] > ranges[:, 1:])  # (A, D)

    matched = np.full((a_count, t_count, len(d_rows)), -1, np.int64)
    groups = np.intersect1d(group_g, group_d)   # groups with both: the only ones that match
    if groups.size:
        g_start = np.searchsorted(group_g, groups, side="left")
        g_count = np.searchsorted(group_g, groups, side="right") - g_start
        d_start = np.searchsorted(group_d, groups, side="left")
        d_count = np.searchsorted(group_d, groups, side="right") - d_start
        thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)
        for chunk in _chunks(g_count, a_count, t_count, int(d_count.max())):
            gm, dm = int(g_count[chunk].max()), int(d_count[chunk].max())
            # padded (image, rank) cells -> positions in g_rows / d_rows
            gvalid = np.arange(gm)[None] < g_count[chunk, None]
            dvalid = np.arange(dm)[None] < d_count[chunk, None]
            gpos = np.where(gvalid, g_start[chunk, None] + np.arange(gm)[None], 0)
            dpos = np.where(dvalid, d_start[chunk, None] + np.arange(dm)[None], 0)
            ci, di, gi = np.nonzero(dvalid[:, :, None] & gvalid[:, None, :])
            pg = g_rows[gpos[ci, gi]]
            oks = np.full((len(chunk), dm, gm), -1.0)
            oks[ci, di, gi] = _oks_pairs(dt.keypoints[d_rows[dpos[ci, di]], :, :2],
                                         gt.keypoints[pg], gt.bbox_xywh[pg], gt_area[pg], sigmas)
            crowd = np.where(gvalid, gt.iscrowd[g_rows[gpos]], False)
            ignore = np.where(gvalid[None], ignore_g[:, gpos], True)
            m = _match_chunk(oks, d_count[chunk], gvalid, crowd, ignore, thresholds)
            ai, ti, ni, ri = np.nonzero(m >= 0)
            matched[ai, ti, dpos[ni, ri]] = gpos[ni, m[ai, ti, ni, ri]]

    is_match = matched >= 0
    tp = np.zeros_like(is_match)
    dt_ignore = np.zeros_like(is_match)
    if len(g_rows):
        safe = np.where(is_match, matched, 0)
        tp = is_match & (gt.ids[g_rows[safe]] != 0)   # pycocotools: gt id 0 reads as "no match"
        dt_ignore = np.where(is_match, ignore_g[np.arange(a_count)[:, None, None], safe], False)
    dt_ignore |= ~tp & outside_d[:, None, :]
    return _Evaluated(g_rows, group_g, ignore_g, d_rows, group_d, matched, tp, dt_ignore,
                      n_img, len(cats))


def _accumulate(ev: _Evaluated, scores: np.ndarray, images: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """``accumulate()``: precision (T, R, C, A) and recall (T, C, A), over
    all images or the ``(I,)`` bool subset ``images``."""
    a_count, t_count = ev.ignore_g.shape[0], len(IOU_THRESHOLDS)
    precision = -np.ones((t_count, len(RECALL_THRESHOLDS), ev.n_categories, a_count))
    recall = -np.ones((t_count, ev.n_categories, a_count))
    n = max(ev.n_images, 1)
    gsel = np.ones(len(ev.g_rows), bool) if images is None else images[ev.group_g % n]
    dsel = np.ones(len(ev.d_rows), bool) if images is None else images[ev.group_d % n]
    for c in range(ev.n_categories):
        gc = gsel & (ev.group_g // n == c)
        dc = dsel & (ev.group_d // n == c)
        for a in range(a_count):
            npig = int(np.count_nonzero(~ev.ignore_g[a, gc]))
            if npig == 0:
                continue
            p, r = _precision_recall(scores[ev.d_rows[dc]], ev.tp[a][:, dc],
                                     ev.dt_ignore[a][:, dc], npig)
            precision[:, :, c, a] = p
            recall[:, c, a] = r
    return precision, recall


def _summarize(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """``summarize()`` for keypoints: the ten stats of :data:`STAT_NAMES`."""
    t50 = np.where(0.5 == IOU_THRESHOLDS)[0]
    t75 = np.where(0.75 == IOU_THRESHOLDS)[0]
    return np.array([
        _mean_defined(precision[:, :, :, 0]),
        _mean_defined(precision[t50][:, :, :, 0]),
        _mean_defined(precision[t75][:, :, :, 0]),
        _mean_defined(precision[:, :, :, 1]),
        _mean_defined(precision[:, :, :, 2]),
        _mean_defined(recall[:, :, 0]),
        _mean_defined(recall[t50][:, :, 0]),
        _mean_defined(recall[t75][:, :, 0]),
        _mean_defined(recall[:, :, 1]),
        _mean_defined(recall[:, :, 2]),
    ])


def evaluate_coco(
    annotations: CocoKeypoints,
    detections: KeypointDetections,
    *,
    sigmas: ArrayLike | None = None,
    keypoint_set: str | KeypointSet | None = None,
    area_source: Literal["auto", "annotation", "bbox"] = "auto",
    image_ids: ArrayLike | None = None,
    category_ids: ArrayLike | None = None,
    max_detections: int = 20,
    per_keypoint: bool = False,
) -> CocoMetrics:
    """COCO keypoint AP/AR of ``detections`` against ``annotations``,
    identical to pycocotools' ``COCOeval(..., "keypoints")``.

    Args:
        annotations: ground truth (:func:`load_coco_keypoints`).
        detections: the detections (:class:`KeypointDetections`).
        sigmas: ``(K,)`` OKS sigmas; else those of ``keypoint_set``; else
            those of the registered set matching the file's keypoint names.
        keypoint_set: a :class:`KeypointSet` or its name, for its sigmas.
        area_source: the ground-truth area for OKS and area ranges:
            "annotation" (the ``area`` field, COCO), "bbox" (``0.53 * w * h``
            of the box, CrowdPose and AIC), or "auto": "annotation" when
            every evaluated annotation has an ``area``, else "bbox".
        image_ids: evaluate only these images (``params.imgIds``).
        category_ids: evaluate only these categories (default: the file's
            ``categories``).
        max_detections: detections kept per image and category (COCO: 20).
        per_keypoint: also compute the per-keypoint breakdown (named after
            ``keypoint_set`` if given, else the file's names).

    Returns:
        :class:`CocoMetrics`.

    Raises:
        ValueError: detections on images that are not in the annotations,
            mismatched keypoint counts, unusable sigmas, or missing areas
            with ``area_source="annotation"``.
    """
    gt, dt = annotations, detections
    k = gt.num_keypoint_channels
    if dt.keypoints.shape[1] != k:
        raise ValueError(f"detections have {dt.keypoints.shape[1]} keypoints but the "
                         f"annotations have {k}.")
    if max_detections < 1:
        raise ValueError(f"max_detections must be at least 1, got {max_detections}.")
    s = resolve_sigmas(k, sigmas=sigmas, keypoint_set=keypoint_set,
                       keypoint_names=gt.keypoint_names)

    # Detections must be on images of the annotations (pycocotools' loadRes asserts it).
    img_pos = np.minimum(np.searchsorted(gt.image_ids, dt.image_ids), max(gt.num_images - 1, 0))
    known = (gt.image_ids[img_pos] == dt.image_ids) if gt.num_images else np.zeros(len(dt), bool)
    if not known.all():
        bad = dt.image_ids[~known][:5].tolist()
        raise ValueError(f"detections refer to images that are not in the annotations "
                         f"(image ids {bad}); pycocotools refuses such results.")
    image_mask = np.ones(gt.num_images, bool)
    if image_ids is not None:
        image_mask = np.isin(gt.image_ids, np.asarray(image_ids, dtype=np.int64).ravel())
    cats = gt.categories if category_ids is None else np.unique(
        np.asarray(category_ids, dtype=np.int64))
    g_rows = np.flatnonzero(image_mask[gt.image_index] & np.isin(gt.category_ids, cats))
    d_rows = np.flatnonzero(image_mask[img_pos] & np.isin(dt.category_ids, cats))
    gt_area, area_source = _ground_truth_area(gt, g_rows, area_source)
    if (gt.ids[g_rows] == 0).any():
        warnings.warn("an annotation has id 0: as in pycocotools, a detection matched to it "
                      "counts as unmatched. Renumber annotations from 1.", stacklevel=2)

    ev = _evaluate_images(gt, dt, g_rows, d_rows, img_pos, cats, gt_area, s, max_detections)
    precision, recall = _accumulate(ev, dt.scores)
    crowd_ap: dict[str, float] = {}
    if image_mask.any() and np.isfinite(gt.crowd_index[image_mask]).all():
        for name, (lo, hi) in CROWD_SPLITS.items():
            subset = image_mask & (gt.crowd_index >= lo) & (gt.crowd_index < hi)
            crowd_ap[name] = _mean_defined(_accumulate(ev, dt.scores, subset)[0][:, :, :, 0])

    # True positives at OKS 0.5, area "all": (annotation row, detection row).
    tp50 = ev.tp[0, 0] & ~ev.dt_ignore[0, 0]
    pairs = np.stack([ev.g_rows[ev.matched[0, 0, tp50]], ev.d_rows[tp50]], axis=1)
    breakdown = None
    if per_keypoint:
        names = gt.keypoint_names
        if keypoint_set is not None:
            names = (get_keypoint_set(keypoint_set) if isinstance(keypoint_set, str)
                     else keypoint_set).names
        breakdown = _per_keypoint(gt, dt, pairs, gt_area, s, names)
    return CocoMetrics(
        stats=read_only(_summarize(precision, recall)), precision=read_only(precision),
        recall=read_only(recall), sigmas=read_only(s), area_source=area_source,
        num_images=int(image_mask.sum()), num_ground_truth=int(np.count_nonzero(~ev.ignore_g[0])),
        num_detections=int(len(ev.d_rows)), matches=read_only(pairs.astype(np.int64)),
        crowd_ap=crowd_ap, per_keypoint=breakdown)


def _per_keypoint(gt: CocoKeypoints, dt: KeypointDetections, pairs: np.ndarray,
                  gt_area: np.ndarray, sigmas: np.ndarray, names: tuple[str, ...]
                  ) -> PerKeypointOks:
    g, d = pairs[:, 0], pairs[:, 1]
    labelled = gt.keypoints[g, :, 2] > 0
    diff = dt.keypoints[d, :, :2] - gt.keypoints[g, :, :2]
    d2 = (diff ** 2).sum(axis=2)
    sim = np.exp(-(d2 / ((sigmas * 2) ** 2) / (gt_area[g] + np.spacing(1))[:, None] / 2))
    count = labelled.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        similarity = np.where(labelled, sim, 0).sum(axis=0) / count
        error = np.where(labelled, np.sqrt(d2), 0).sum(axis=0) / count
    return PerKeypointOks(tuple(names), count.astype(np.int64), similarity, error)
