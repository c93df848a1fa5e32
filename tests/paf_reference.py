"""Slow, independent NumPy reference of part-affinity-field grouping (OpenPose).

:func:`group_paf_ref` follows the written contract of
:func:`edgepose.ops.group_paf` step by step (peaks, candidate limbs, greedy
matching per limb, assembly into persons, filtering), in float64 from the
float32 maps. NumPy computes the window maxima and the field samples of all
candidates of a limb at once; thinning, matching and assembly are plain
Python loops. It is the oracle of ``tests/ops/test_paf.py`` and the baseline
of ``benchmarks/bench_paf.py``; it is meant to be read, not to be fast.

Parameters are used as given, as Python floats (double): ``8 / 10 >=
0.8`` holds, so with the default 10 samples and ``min_good_ratio=0.8`` a limb
with exactly 8 good samples is valid.

Where the contract is silent, this reference decides as follows (each rule is
also stated where it is implemented):

* the minimum peak distance is measured between the integer peak positions
  (thinning precedes refinement);
* a refinement whose offset is not finite is skipped (possible only with
  infinite map values);
* a field sample is the 4-tap bilinear formula ``(1 - fx) * a + fx * b``
  (then the same along y) with the taps ``floor(q)`` and ``min(floor(q) + 1,
  size - 1)``, so a NaN tap poisons the sample even when its weight is 0;
* a candidate with any non-finite sample score is invalid (the contract's
  "NaN anywhere"; a +/-inf field gives inf * 0 = NaN or an infinite dot
  product and is rejected with it);
* two persons joined by a limb conflict when some part holds a peak in both
  and the peaks differ (the model-zoo decoder's ``is_disjoint``); otherwise
  they are merged.

:func:`render_scene` builds OpenPose-style training targets for synthetic
tests: Gaussian part heatmaps and unit-vector limb fields.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "COCO18_LIMBS",
    "COCO18_PAF_CHANNELS",
    "COCO18_TO_COCO17",
    "COCO18_TEMPLATE",
    "Peak",
    "find_peaks_ref",
    "score_limbs_ref",
    "group_paf_ref",
    "render_scene",
    "make_person",
]

#: tf-pose-estimation ``common.CocoPairs``: the 19 limbs of OpenPose COCO-18
#: (parts Nose, Neck, RShoulder, RElbow, RWrist, LShoulder, LElbow, LWrist,
#: RHip, RKnee, RAnkle, LHip, LKnee, LAnkle, REye, LEye, REar, LEar).
COCO18_LIMBS = np.array(
    [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
     (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17)],
    dtype=np.intp)
COCO18_LIMBS.setflags(write=False)

#: tf-pose-estimation ``common.CocoPairsNetwork``: the (x, y) channels of each
#: limb of :data:`COCO18_LIMBS` among the model's 38 PAF channels.
COCO18_PAF_CHANNELS = np.array(
    [(12, 13), (20, 21), (14, 15), (16, 17), (22, 23), (24, 25), (0, 1), (2, 3), (4, 5),
     (6, 7), (8, 9), (10, 11), (28, 29), (30, 31), (34, 35), (32, 33), (36, 37), (18, 19),
     (26, 27)],
    dtype=np.intp)
COCO18_PAF_CHANNELS.setflags(write=False)

#: COCO-17 index of each COCO-18 part (-1: the neck, which COCO-17 lacks).
#: The same table as the model-zoo decoder's ``reorder_map``.
COCO18_TO_COCO17 = np.array(
    [0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3], dtype=np.intp)
COCO18_TO_COCO17.setflags(write=False)

#: A standing person facing the camera in COCO-18 order, (x, y) in units of
#: the person's height from the top of the head (their right is image left).
COCO18_TEMPLATE = np.array([
    [0.00, 0.06],    # nose
    [0.00, 0.18],    # neck
    [-0.12, 0.18],   # right shoulder
    [-0.17, 0.33],   # right elbow
    [-0.19, 0.47],   # right wrist
    [0.12, 0.18],    # left shoulder
    [0.17, 0.33],    # left elbow
    [0.19, 0.47],    # left wrist
    [-0.08, 0.52],   # right hip
    [-0.09, 0.73],   # right knee
    [-0.10, 0.95],   # right ankle
    [0.08, 0.52],    # left hip
    [0.09, 0.73],    # left knee
    [0.10, 0.95],    # left ankle
    [-0.03, 0.04],   # right eye
    [0.03, 0.04],    # left eye
    [-0.06, 0.05],   # right ear
    [0.06, 0.05],    # left ear
])
COCO18_TEMPLATE.setflags(write=False)


# --------------------------------------------------------------------------
# Step 1: peaks
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Peak:
    """One heatmap peak: integer position, refined position (map pixels), raw value."""

    x: int
    y: int
    fx: float
    fy: float
    value: float


def _parabola_offset(left: float, centre: float, right: float) -> float:
    """Vertex offset of the parabola through (-1, left), (0, centre), (1, right).

    0 unless the parabola opens downwards (denominator < 0); clamped to
    [-0.5, 0.5]; 0 when the offset is not finite (infinite map values).
    """
    denom = right - 2.0 * centre + left
    if not denom < 0.0:  # also False for NaN
        return 0.0
    off = -0.5 * (right - left) / denom
    if not math.isfinite(off):
        return 0.0
    return min(max(off, -0.5), 0.5)


def find_peaks_ref(
    heatmap: NDArray[np.floating],
    threshold: float,
    radius: int,
    min_distance: float,
    refine: bool,
    max_peaks: int,
) -> list[Peak]:
    """Peaks of one ``(H, W)`` map, in kept order (descending value, ties row-major).

    A peak is a pixel whose value exceeds ``threshold`` and is >= every value
    of its ``(2 radius + 1)``-square window clipped to the map; NaN is treated
    as -inf (never a peak, never suppresses). The ``max_peaks`` highest are
    kept, then peaks closer than ``min_distance`` (integer positions) to an
    already kept one are dropped, then each survivor away from the border is
    refined to the vertex of a parabola along x and along y.
    """
    v = np.asarray(heatmap, dtype=np.float64)
    h, w = v.shape
    v = np.where(np.isnan(v), -np.inf, v)
    padded = np.pad(v, radius, mode="constant", constant_values=-np.inf)
    window_max = sliding_window_view(padded, (2 * radius + 1, 2 * radius + 1)).max(axis=(2, 3))
    is_peak = (v > threshold) & (v >= window_max)

    ys, xs = np.nonzero(is_peak)  # row-major
    candidates = [(float(v[y, x]), int(y), int(x)) for y, x in zip(ys, xs)]
    # Descending value; Python's sort is stable, so ties stay row-major.
    candidates.sort(key=lambda c: -c[0])
    candidates = candidates[:max_peaks]

    kept: list[tuple[float, int, int]] = []
    for value, y, x in candidates:
        if min_distance > 0 and any(
                math.hypot(x - kx, y - ky) < min_distance for _, ky, kx in kept):
            continue
        kept.append((value, y, x))

    peaks = []
    for value, y, x in kept:
        fx, fy = float(x), float(y)
        if refine and 1 <= x <= w - 2 and 1 <= y <= h - 2:
            fx = x + _parabola_offset(float(v[y, x - 1]), float(v[y, x]), float(v[y, x + 1]))
            fy = y + _parabola_offset(float(v[y - 1, x]), float(v[y, x]), float(v[y + 1, x]))
        peaks.append(Peak(x, y, fx, fy, value))
    return peaks


# --------------------------------------------------------------------------
# Step 2: candidate limbs
# --------------------------------------------------------------------------

def _bilinear(channel: NDArray[np.float64], x: NDArray[np.float64],
              y: NDArray[np.float64]) -> NDArray[np.float64]:
    """Bilinear samples of ``channel`` at (x, y), positions clamped into the map.

    Always the 4-tap formula: a NaN tap gives NaN even with weight 0.
    """
    h, w = channel.shape
    x = np.clip(x, 0.0, w - 1.0)
    y = np.clip(y, 0.0, h - 1.0)
    x0 = np.floor(x).astype(np.intp)
    y0 = np.floor(y).astype(np.intp)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    ax = x - x0
    ay = y - y0
    top = (1.0 - ax) * channel[y0, x0] + ax * channel[y0, x1]
    bottom = (1.0 - ax) * channel[y1, x0] + ax * channel[y1, x1]
    return (1.0 - ay) * top + ay * bottom


def score_limbs_ref(
    starts: NDArray[np.float64],
    ends: NDArray[np.float64],
    field_x: NDArray[np.float64],
    field_y: NDArray[np.float64],
    *,
    samples: int,
    min_paf_score: float,
    min_good_ratio: float,
    distance_prior: float,
) -> NDArray[np.float64]:
    """Scores of the candidate limbs ``starts[m] -> ends[m]`` (``(M, 2)`` each).

    For each candidate: ``samples`` points from start to end inclusive
    (``start + d * s / (samples - 1)``); each sample's score is the field
    (bilinear) dotted with the unit direction; the limb score is the mean of
    the samples above ``min_paf_score`` plus the distance prior ``min(0,
    distance_prior * H / length - 1)`` (H = map height; off at 0). Valid when
    good / samples >= min_good_ratio and the score is > 0; invalid for a
    segment shorter than 1e-6, no good sample, or any non-finite sample.

    Returns:
        ``(M,)`` scores, NaN for an invalid candidate.
    """
    starts = np.asarray(starts, dtype=np.float64).reshape(-1, 2)
    ends = np.asarray(ends, dtype=np.float64).reshape(-1, 2)
    d = ends - starts
    length = np.hypot(d[:, 0], d[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        ux, uy = d[:, 0] / length, d[:, 1] / length
        t = np.arange(samples, dtype=np.float64) / (samples - 1)
        qx = starts[:, :1] + d[:, :1] * t          # (M, samples)
        qy = starts[:, 1:] + d[:, 1:] * t
        sample_scores = (_bilinear(field_x, qx, qy) * ux[:, None]
                         + _bilinear(field_y, qx, qy) * uy[:, None])
        good = sample_scores > min_paf_score
        n_good = good.sum(axis=1)
        score = np.where(good, sample_scores, 0.0).sum(axis=1) / n_good
        if distance_prior > 0:
            score = score + np.minimum(0.0, distance_prior * field_x.shape[0] / length - 1.0)
    valid = ((length >= 1e-6) & np.isfinite(sample_scores).all(axis=1) & (n_good > 0)
             & (n_good / samples >= min_good_ratio) & (score > 0))
    return np.where(valid, score, np.nan)


# --------------------------------------------------------------------------
# Steps 3-5: greedy matching, assembly, filtering
# --------------------------------------------------------------------------

@dataclass
class _Person:
    parts: list[int]          # global peak id per part, -1 when missing
    score: float              # sum of peak values and limb scores
    count: int                # number of parts held


def _coerce_chw(name: str, arr: ArrayLike, layout: str) -> NDArray[np.float64]:
    a = np.asarray(arr)
    if a.ndim != 3:
        raise ValueError(f"{name} must be 3-D, got shape {a.shape}")
    a = a.astype(np.float32)  # the kernel's working precision for the maps
    if layout == "HWC":
        a = a.transpose(2, 0, 1)
    elif layout != "CHW":
        raise ValueError(f"layout must be 'CHW' or 'HWC', got {layout!r}")
    return a.astype(np.float64)


def group_paf_ref(
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
    """Reference of :func:`edgepose.ops.group_paf` (same arguments, same results).

    Args:
        heatmaps: ``(K, H, W)`` (``"CHW"``) or ``(H, W, K)`` (``"HWC"``).
        pafs: ``(C, H, W)`` or ``(H, W, C)``.
        limbs: ``(L, 2)`` part ids (a, b), in assembly order.
        paf_channels: ``(L, 2)`` field channels (x, y) of each limb, a -> b.

    Returns:
        persons ``(P, K, 3)`` float32 (x, y, score), ``x = x_map * stride +
        offset``, a missing part (-1, -1, 0); person scores ``(P,)`` float32,
        (sum of peak values and limb scores) / parts, descending (stable).
        Inputs are not validated beyond their rank: use valid ones.
    """
    hm = _coerce_chw("heatmaps", heatmaps, layout)
    pf = _coerce_chw("pafs", pafs, layout)
    k, h, w = hm.shape
    limbs = np.asarray(limbs, dtype=np.intp).reshape(-1, 2)
    paf_channels = np.asarray(paf_channels, dtype=np.intp).reshape(-1, 2)

    # 1. Peaks per part; global ids part by part in kept order.
    peaks_of_part: list[list[Peak]] = []
    first_id: list[int] = []
    all_peaks: list[Peak] = []
    for part in range(k):
        peaks = find_peaks_ref(hm[part], heatmap_threshold, peak_radius, min_peak_distance,
                               refine, max_peaks)
        first_id.append(len(all_peaks))
        all_peaks.extend(peaks)
        peaks_of_part.append(peaks)

    persons: list[_Person] = []  # in creation order; deletions keep the order
    for (a, b), (cx, cy) in zip(limbs.tolist(), paf_channels.tolist()):
        # 2. Every valid candidate of this limb: (score, i, j), i and j
        # indices into the peak lists of parts a and b.
        pairs = [(i, j) for i in range(len(peaks_of_part[a]))
                 for j in range(len(peaks_of_part[b]))]
        starts = [(peaks_of_part[a][i].fx, peaks_of_part[a][i].fy) for i, _ in pairs]
        ends = [(peaks_of_part[b][j].fx, peaks_of_part[b][j].fy) for _, j in pairs]
        limb_scores = score_limbs_ref(starts, ends, pf[cx], pf[cy], samples=samples,
                                      min_paf_score=min_paf_score,
                                      min_good_ratio=min_good_ratio,
                                      distance_prior=distance_prior)
        candidates = [(float(s), i, j) for s, (i, j) in zip(limb_scores, pairs)
                      if not np.isnan(s)]

        # 3. Greedy: descending score, ties by i then j; each peak once per limb.
        candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
        used_a: set[int] = set()
        used_b: set[int] = set()
        connections = []
        for s, i, j in candidates:
            if i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            connections.append((first_id[a] + i, first_id[b] + j, s))

        # 4. Assembly, in the order taken.
        for pid_a, pid_b, s in connections:
            va, vb = all_peaks[pid_a].value, all_peaks[pid_b].value
            owner_a = [n for n, p in enumerate(persons) if p.parts[a] == pid_a]
            owner_b = [n for n, p in enumerate(persons) if p.parts[b] == pid_b]
            assert len(owner_a) <= 1 and len(owner_b) <= 1, "a peak in two persons"
            ia = owner_a[0] if owner_a else -1
            ib = owner_b[0] if owner_b else -1
            if ia < 0 and ib < 0:
                parts = [-1] * k
                parts[a], parts[b] = pid_a, pid_b
                persons.append(_Person(parts, va + vb + s, 2))
            elif ia >= 0 and ib >= 0 and ia != ib:
                pa_, pb_ = persons[ia], persons[ib]
                conflict = any(x >= 0 and y >= 0 and x != y
                               for x, y in zip(pa_.parts, pb_.parts))
                if conflict:
                    continue
                for part in range(k):
                    if pb_.parts[part] >= 0:
                        pa_.parts[part] = pb_.parts[part]
                pa_.count += pb_.count
                pa_.score += pb_.score + s
                del persons[ib]
            elif ia >= 0 and ib >= 0:
                persons[ia].score += s
            elif ia >= 0:
                p = persons[ia]
                if p.parts[b] < 0:
                    p.score += vb
                    p.count += 1
                p.parts[b] = pid_b
                p.score += s
            else:
                p = persons[ib]
                if p.parts[a] < 0:
                    p.score += va
                    p.count += 1
                p.parts[a] = pid_a
                p.score += s

    # 5. Filter, convert, sort by mean score (stable: ties in creation order).
    kept = [p for p in persons
            if not (p.count < min_parts or p.score / p.count < min_person_score)]
    kept.sort(key=lambda p: -(p.score / p.count))
    out = np.empty((len(kept), k, 3), dtype=np.float32)
    out_scores = np.empty(len(kept), dtype=np.float32)
    for n, p in enumerate(kept):
        for part in range(k):
            pid = p.parts[part]
            if pid < 0:
                out[n, part] = (-1.0, -1.0, 0.0)
            else:
                pk = all_peaks[pid]
                out[n, part] = (pk.fx * stride + offset, pk.fy * stride + offset, pk.value)
        out_scores[n] = p.score / p.count
    return out, out_scores


# --------------------------------------------------------------------------
# Synthetic scenes
# --------------------------------------------------------------------------

def render_scene(
    people: list[ArrayLike],
    limbs: ArrayLike,
    paf_channels: ArrayLike,
    height: int,
    width: int,
    *,
    num_paf_channels: int | None = None,
    sigma: float = 1.5,
    limb_width: float = 1.0,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """OpenPose-style targets for people given as ``(K, 2)`` map-pixel keypoints.

    Heatmap k is the maximum over people of ``exp(-d^2 / (2 sigma^2))`` around
    their part k (peak 1 at the centre; NaN rows are missing parts). The field
    of limb (a, b) is the unit vector from a to b on every pixel whose
    projection falls on the segment and whose distance to the line is <=
    ``limb_width``, averaged over the people whose limb covers the pixel, 0
    elsewhere (OpenPose's training targets; pixel centres at integers).

    Returns:
        heatmaps ``(K, H, W)`` and pafs ``(C, H, W)`` float32 (CHW), C =
        ``num_paf_channels`` or 1 + the largest channel of ``paf_channels``.
    """
    people = [np.asarray(p, dtype=np.float64) for p in people]
    limbs = np.asarray(limbs, dtype=np.intp).reshape(-1, 2)
    paf_channels = np.asarray(paf_channels, dtype=np.intp).reshape(-1, 2)
    k = people[0].shape[0] if people else int(limbs.max()) + 1
    c = num_paf_channels if num_paf_channels is not None else int(paf_channels.max()) + 1
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)

    heat = np.zeros((k, height, width))
    for person in people:
        for part in range(k):
            x, y = person[part]
            if np.isnan(x) or np.isnan(y):
                continue
            g = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2.0 * sigma ** 2))
            heat[part] = np.maximum(heat[part], g)

    sums = np.zeros((c, height, width))
    counts = np.zeros((len(limbs), height, width))
    for person in people:
        for n, ((a, b), (cx, cy)) in enumerate(zip(limbs, paf_channels)):
            pa, pb = person[a], person[b]
            if np.isnan(pa).any() or np.isnan(pb).any():
                continue
            d = pb - pa
            length = math.hypot(d[0], d[1])
            if length < 1e-6:
                continue
            ux, uy = d / length
            rx, ry = xs - pa[0], ys - pa[1]
            along = rx * ux + ry * uy
            across = np.abs(rx * uy - ry * ux)
            on = (along >= 0) & (along <= length) & (across <= limb_width)
            sums[cx][on] += ux
            sums[cy][on] += uy
            counts[n][on] += 1
    pafs = np.zeros((c, height, width))
    for n, (cx, cy) in enumerate(paf_channels):
        covered = counts[n] > 0
        pafs[cx][covered] = sums[cx][covered] / counts[n][covered]
        pafs[cy][covered] = sums[cy][covered] / counts[n][covered]
    return heat.astype(np.float32), pafs.astype(np.float32)


def make_person(
    rng: np.random.Generator,
    centre_x: float,
    top_y: float,
    height: float,
    *,
    jitter: float = 0.02,
    missing: float = 0.0,
) -> NDArray[np.float64]:
    """A COCO-18 person ``(18, 2)``: the template scaled to ``height`` map pixels.

    The head top at (centre_x, top_y); each keypoint moved by N(0, jitter *
    height); each part missing (NaN) with probability ``missing``.
    """
    kp = COCO18_TEMPLATE * height + np.array([centre_x, top_y])
    kp = kp + rng.normal(0.0, jitter * height, kp.shape)
    if missing > 0:
        kp[rng.random(len(kp)) < missing] = np.nan
    return kp
