"""Multi-person pose tracking for video.

:class:`PoseTracker` turns per-frame poses into tracks: it runs the person
detector every ``detect_every`` frames and, in between, crops each person
from a box propagated from their pose in the previous frame (the box of
their confident keypoints, enlarged and moved by their velocity), so most
frames cost only the pose model. People are associated across frames by
OKS (or box IoU) with an optimal assignment, keep their id through short
occlusions and detector misses, and may have their keypoints smoothed with
the One-Euro filter (:mod:`edgepose.smoothing`).

The assignment solver is here too, in NumPy (SciPy is not a dependency):
:func:`solve_assignment` solves the rectangular linear assignment problem
exactly as ``scipy.optimize.linear_sum_assignment`` (shortest augmenting
paths, Jonker-Volgenant / Crouse 2016), and :func:`match_by_cost` finds the
best partial matching when some pairs are too costly to match at all.

One frame, in order:

1. Boxes. Detection frames (every ``detect_every``-th call, and any frame
   on which no track is active): the detector's boxes, plus the propagated
   box of every active track that no detection covers (IoU >= 0.5, or the
   middle of the box mostly inside a detection), so a detector miss does not
   lose a person; a track the detector has not
   confirmed for ``max_detector_misses`` detection frames in a row is no
   longer propagated. Other frames: the propagated boxes only.
2. Poses: ``pose(frame, boxes=...)``, one pose per box. A pose with fewer
   than ``min_keypoints`` keypoints scoring above ``keypoint_threshold`` has
   collapsed (the person left, or the box slid off them) and is dropped;
   poses of the same person (OKS above ``duplicate_oks``) are merged by
   OKS NMS (:func:`edgepose.ops.nms_oks`).
3. Association, each round an optimal assignment (:func:`match_by_cost`).
   First the tracks seen in the previous frame against the poses:
   similarity OKS (``metric="oks"``: the track's keypoints moved by its
   velocity, the track's keypoint-box area, the keypoint set's sigmas) or
   IoU of the keypoint boxes (``metric="iou"``; ``"auto"`` takes OKS when
   the keypoints have sigmas, else IoU); pairs below
   ``match_threshold`` never match. Then re-identification of the tracks
   left (those just missed, and those lost for at most ``reid_window_s``
   seconds) against the poses left, most recently seen first (a cascade, as
   DeepSORT's): the best IoU of the pose's keypoint box and crop box with
   the track's last ones, as they were or moved by the track's velocity; at
   least ``reid_iou``. Poses left over start new tracks.
4. Tracks not matched are lost (their smoothing restarts); a track lost for
   longer than ``reid_window_s`` is forgotten.

Track ids are ints counted per tracker from 0 (never shared between
trackers, never reused by a tracker until :meth:`PoseTracker.reset`), and
carry no meaning beyond identity: they are not contiguous once people come
and go.
"""
from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgepose.images import check_image
from edgepose.results import PoseResult
from edgepose.smoothing import OneEuroParams, one_euro_step

__all__ = ["PoseTracker", "solve_assignment", "match_by_cost"]

_METRICS = ("auto", "oks", "iou")
#: A propagated box is "covered" by a detection at this IoU (no extra crop).
_COVER_IOU = 0.5
#: Lost tracks are predicted at most this far ahead (seconds) for re-identification.
_MAX_PREDICTION_S = 1.0


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
# Geometry

def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``(P, 4)`` and ``(Q, 4)`` xyxy boxes, ``(P, Q)``; area (x2-x1)(y2-y1)."""
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


def _keypoint_boxes(keypoints: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(N, 4)`` xyxy boxes of the valid keypoints of ``(N, K, 2)`` poses,
    each side at least a quarter of the longer one (and 2 px)."""
    n = len(keypoints)
    if n == 0:
        return np.zeros((0, 4))
    big = np.where(valid[..., None], keypoints, np.inf)
    small = np.where(valid[..., None], keypoints, -np.inf)
    lo, hi = big.min(axis=1), small.max(axis=1)
    centre = (lo + hi) / 2
    size = hi - lo
    side = np.maximum(size, np.maximum(size.max(axis=1, keepdims=True) / 4, 2.0))
    return np.concatenate([centre - side / 2, centre + side / 2], axis=1)


def _oks_matrix(track_kp: np.ndarray, track_valid: np.ndarray, track_area: np.ndarray,
                kp: np.ndarray, valid: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """OKS ``(T, C)`` of candidate poses against track poses, the tracks in
    the role of ground truth (COCO): the mean over the track's valid
    keypoints of ``exp(-d^2 / (2 area (2 sigma)^2))``, a keypoint the
    candidate did not find counting 0."""
    if len(track_kp) == 0 or len(kp) == 0:
        return np.zeros((len(track_kp), len(kp)))
    d2 = ((track_kp[:, None] - kp[None]) ** 2).sum(axis=-1)           # (T, C, K)
    var = (2.0 * sigmas.astype(np.float64)) ** 2
    e = d2 / (2.0 * var * (track_area[:, None, None] + np.spacing(1)))
    both = track_valid[:, None, :] & valid[None, :, :]
    count = track_valid.sum(axis=1)[:, None]
    total = (np.exp(-e) * both).sum(axis=-1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def _box_area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


# ---------------------------------------------------------------------------
# The tracker

@dataclass(eq=False)
class _Track:
    track_id: int
    keypoints: np.ndarray            # (K, 2) float64, the last raw observation
    valid: np.ndarray                # (K,) bool
    box: np.ndarray                  # (4,) keypoint box of the last observation
    crop_box: np.ndarray             # (4,) the box its pose was estimated in
    last_t: float                    # seconds
    velocity: np.ndarray             # (2,) px/s
    missed: int = 0                  # frames since last seen (0: seen in the previous frame)
    hits: int = 1
    detector_misses: int = 0         # detection frames in a row without a detection
    smooth_raw: np.ndarray | None = None  # One-Euro state; None after a reset
    smooth_x: np.ndarray | None = None
    smooth_dx: np.ndarray | None = None
    smooth_ready: np.ndarray | None = None


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def _positive_number(name: str, value: Any, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}.")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} "
                         f"finite number, got {value}.")
    return v


def _fraction(name: str, value: Any) -> float:
    v = _positive_number(name, value, allow_zero=True)
    if v > 1:
        raise ValueError(f"{name} must be in [0, 1], got {value}.")
    return v


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
    return int(value)


class PoseTracker:
    """Tracks people's poses through a video, with stable track ids.

    Args:
        model: a pose model file or registry name (an :class:`Estimator` is
            built for it, and closed by :meth:`close`), or a ready callable
            ``pose(frame, boxes=None) -> PoseResult``, such as an
            :class:`edgepose.Estimator`: with ``boxes`` an ``(N, 4)`` xyxy
            array it returns one pose per box, in order; without, the people
            it finds itself (its own detector, the whole frame, or a
            bottom-up model).
        detector: a person detector file or registry name (a
            :class:`edgepose.detectors.PersonDetector` is built), a ready
            callable ``detector(frame) -> Detections``, or None: detection
            frames then call ``pose(frame)`` without boxes.
        detect_every: run the detector on every n-th frame (and whenever
            no track is active); propagate boxes from the poses in between.
            Bottom-up models detect on every frame.
        metric: ``"oks"`` (pose similarity) or ``"iou"`` (keypoint-box IoU)
            for matching tracks seen in the previous frame; ``"auto"`` (the
            default): OKS when there are sigmas (``sigmas=`` or the keypoint
            set's), else IoU (OpenPose's COCO-18, say, defines none).
        match_threshold: the least similarity of a match (OKS or IoU).
        reid_window_s: seconds a lost track waits to be re-identified
            before it is forgotten.
        reid_iou: the least IoU (with the track's last boxes, or those
            moved by the track's velocity) to re-identify a track.
        smoothing: None (raw keypoints) or :class:`OneEuroParams` to smooth
            each track's keypoints with the One-Euro filter.
        fps: frame rate assumed for frames without a timestamp.
        keypoint_threshold: keypoints scoring above this are "confident":
            they make the boxes, the matches and the smoothing.
        min_keypoints: a pose with fewer confident keypoints has collapsed
            and is dropped (at least 2).
        box_scale: propagated boxes are the confident keypoints' box,
            enlarged by this factor about its centre (the pose model pads
            its crops further).
        max_detector_misses: detection frames in a row a track may go
            without a detection before it is no longer propagated.
        duplicate_oks: poses with an OKS above this are one person (OKS
            with the keypoint set's sigmas, or 0.08 for every keypoint of a
            set that has none).
        sigmas: ``(K,)`` OKS sigmas; default: the keypoint set's.
        backend, threads: runtime options of models built from files.
        detection_threshold: minimum person score of a detector built from
            a file.

    Raises:
        TypeError, ValueError: an invalid option (at construction).
        FileNotFoundError, ImportError: as :class:`edgepose.Estimator`.

    Example::

        with edgepose.PoseTracker("movenet-lightning", "yolox-nano", detect_every=5,
                                  smoothing=OneEuroParams()) as tracker:
            for frame, t_ms in frames:
                poses = tracker(frame, timestamp_ms=t_ms)   # poses.track_ids (N,)

    :meth:`__call__` is not thread-safe (call it from one thread);
    :meth:`detect` may run on another thread (:mod:`edgepose.pipeline`).
    """

    def __init__(self, model: str | os.PathLike | Callable[..., PoseResult],
                 detector: str | os.PathLike | Callable[..., Any] | None = None, *,
                 detect_every: int = 1, metric: str = "auto", match_threshold: float = 0.3,
                 reid_window_s: float = 1.0, reid_iou: float = 0.3,
                 smoothing: OneEuroParams | None = None, fps: float = 30.0,
                 keypoint_threshold: float = 0.3, min_keypoints: int = 4,
                 box_scale: float = 1.2, max_detector_misses: int = 2,
                 duplicate_oks: float = 0.7, sigmas: ArrayLike | None = None,
                 backend: str | None = None, threads: int | None = None,
                 detection_threshold: float = 0.3) -> None:
        self.detect_every = _count("detect_every", detect_every, 1)
        if metric not in _METRICS:
            raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}.")
        self.metric = metric
        self.match_threshold = _fraction("match_threshold", match_threshold)
        self.reid_window_s = _positive_number("reid_window_s", reid_window_s, allow_zero=True)
        self.reid_iou = _fraction("reid_iou", reid_iou)
        if smoothing is not None and not isinstance(smoothing, OneEuroParams):
            raise TypeError(f"smoothing must be None or a OneEuroParams, got {type(smoothing).__name__}.")
        self.smoothing = smoothing
        self.fps = _positive_number("fps", fps)
        self.keypoint_threshold = _positive_number("keypoint_threshold", keypoint_threshold,
                                                   allow_zero=True)
        self.min_keypoints = _count("min_keypoints", min_keypoints, 2)
        self.box_scale = _positive_number("box_scale", box_scale)
        self.max_detector_misses = _count("max_detector_misses", max_detector_misses, 0)
        self.duplicate_oks = _fraction("duplicate_oks", duplicate_oks)
        self._sigmas = None if sigmas is None else np.asarray(sigmas, dtype=np.float64)
        if self._sigmas is not None and not (self._sigmas.ndim == 1 and np.isfinite(self._sigmas).all()
                                             and (self._sigmas > 0).all()):
            raise ValueError(f"sigmas must be a (K,) array of positive finite numbers, got {sigmas!r}.")

        self._owned: list[Any] = []
        try:
            if _is_path(model):
                from edgepose.estimator import Estimator

                self._pose = Estimator(model, backend=backend, threads=threads)
                self._owned.append(self._pose)
            elif callable(model):
                self._pose = model
            else:
                raise TypeError("model must be a model file or name, or a callable "
                                f"pose(frame, boxes=...) -> PoseResult, got {type(model).__name__}.")
            if detector is None:
                self._detector = None
            elif _is_path(detector):
                from edgepose.detectors import PersonDetector

                self._detector = PersonDetector.from_file(
                    detector, score_threshold=detection_threshold, backend=backend, threads=threads)
                self._owned.append(self._detector)
            elif callable(detector):
                self._detector = detector
            else:
                raise TypeError("detector must be a detector file or name, a callable "
                                f"detector(frame) -> Detections, or None, got {type(detector).__name__}.")
            card = getattr(self._pose, "card", None)
            self._bottom_up = getattr(card, "task", None) == "bottomup"
            if self._bottom_up and self._detector is not None:
                raise ValueError("A bottom-up pose model finds every person itself: pass detector=None.")
            kset = getattr(self._pose, "keypoint_set", None)
            if (metric == "oks" and self._sigmas is None and kset is not None
                    and getattr(kset, "sigmas", None) is None):
                raise ValueError(
                    f"metric='oks' needs OKS sigmas, and keypoint set {kset.name!r} defines none: "
                    "pass sigmas=(one per keypoint) or metric='iou'.")
        except Exception:
            self.close()
            raise
        self._detector_lock = threading.Lock()
        #: Milliseconds of the last call: detect, pose, track and total.
        self.last_timings: dict[str, float] = {}
        #: Whether the last call ran (or was given) detections.
        self.last_detected = False
        self.reset()

    # -- state -----------------------------------------------------------------

    def reset(self) -> None:
        """Forgets every track and the frame clock; ids start again from 0."""
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._last_t: float | None = None
        self._keypoint_set = getattr(self._pose, "keypoint_set", None)
        #: Calls since the last reset.
        self.frame_count = 0

    @property
    def track_ids(self) -> tuple[int, ...]:
        """Ids of the tracks still kept (seen in the last frame, or lost
        within the re-identification window)."""
        return tuple(t.track_id for t in self._tracks)

    @property
    def has_detector(self) -> bool:
        """Whether the tracker runs a separate person detector."""
        return self._detector is not None

    def detection_due(self, frame_count: int) -> bool:
        """Whether the ``frame_count``-th call (from 0 since the last reset)
        runs the detector on schedule (it also runs when no track is active)."""
        return self._bottom_up or frame_count % self.detect_every == 0

    def detect(self, frame: NDArray[np.uint8]):
        """Runs the person detector on a frame (thread-safe: one detection at
        a time). Returns its :class:`edgepose.detectors.Detections`.

        Raises:
            TypeError, ValueError: an invalid frame (see :meth:`__call__`).
            RuntimeError: the tracker has no separate detector.
        """
        if self._detector is None:
            raise RuntimeError("This tracker has no separate person detector (detector=None).")
        frame = check_image(frame)
        with self._detector_lock:
            return self._detector(frame)

    # -- one frame -------------------------------------------------------------

    def __call__(self, frame: NDArray[np.uint8], timestamp_ms: float | None = None, *,
                 detections: Any = None) -> PoseResult:
        """Tracks the people in the next frame.

        Args:
            frame: BGR uint8 ``(H, W, 3)``.
            timestamp_ms: the frame's time in milliseconds, increasing; None
                takes the previous frame's time plus ``1000 / fps``.
            detections: the detector's output for this frame, if it was run
                already (:mod:`edgepose.pipeline` runs it ahead on another
                thread); it makes this a detection frame.

        Returns:
            the :class:`PoseResult` of the people seen in this frame, with
            ``track_ids (N,)``, ordered by track id; ``boxes`` are the boxes
            the poses were estimated in.

        Raises:
            TypeError, ValueError: an invalid frame, a timestamp that does
                not increase, a pose callable that returns the wrong number
                of poses.
        """
        frame = check_image(frame)
        if detections is not None and self._bottom_up:
            raise ValueError("A bottom-up pose model finds every person itself: detections= "
                             "is not accepted.")
        t = self._clock(timestamp_ms)
        start = perf_counter_ns()
        laps = {"detect": 0.0, "pose": 0.0, "track": 0.0}
        mark = start

        def lap(stage: str) -> None:
            nonlocal mark
            now = perf_counter_ns()
            laps[stage] += (now - mark) / 1e6
            mark = now

        h, w = frame.shape[:2]
        active = [tr for tr in self._tracks if tr.missed == 0]
        detect = (detections is not None or self.detection_due(self.frame_count) or not active)
        self.last_detected = detect
        prop_tracks, prop_boxes = self._propagate(active, t, w, h)
        sources: list[int]  # per box: -1 detection, else index into prop_tracks
        if detect and self._detector is None and detections is None:
            # The pose callable finds people itself (its own detector, the
            # whole frame, or bottom-up).
            result = self._pose(frame)
            lap("pose")
            boxes = None
            sources = [-1] * len(result)
        else:
            if detect:
                dets = detections if detections is not None else self.detect(frame)
                if not hasattr(dets, "boxes"):
                    raise TypeError("detections must have boxes (M, 4) xyxy, as "
                                    f"edgepose.detectors.Detections, got {type(dets).__name__}.")
                det_boxes = np.asarray(dets.boxes, dtype=np.float64).reshape(-1, 4)
                lap("detect")
                keep = [i for i, tr in enumerate(prop_tracks)
                        if tr.detector_misses < self.max_detector_misses]
                prop_tracks = [prop_tracks[i] for i in keep]
                prop_boxes = prop_boxes[keep]
                if len(det_boxes) and len(prop_boxes):
                    covered = _covered(prop_boxes, det_boxes)
                    for tr, c in zip(prop_tracks, covered):
                        if c:
                            tr.detector_misses = 0
                    prop_tracks = [tr for tr, c in zip(prop_tracks, covered) if not c]
                    prop_boxes = prop_boxes[~covered]
                det_boxes = _clip_boxes(det_boxes, w, h)
                ok = _usable(det_boxes)
                det_boxes = det_boxes[ok]
                boxes = np.concatenate([det_boxes, prop_boxes])
                sources = [-1] * len(det_boxes) + list(range(len(prop_boxes)))
            else:
                boxes = prop_boxes
                sources = list(range(len(prop_boxes)))
            if len(boxes):
                result = self._pose(frame, boxes=boxes.astype(np.float32))
                if len(result) != len(boxes):
                    raise ValueError(
                        f"pose(frame, boxes=...) returned {len(result)} poses for {len(boxes)} "
                        "boxes; a top-down pose callable returns one pose per box, in order.")
            else:
                result = None
            lap("pose")
        out = self._update(result, boxes, sources, detect, t)
        lap("track")
        self.frame_count += 1
        self._last_t = t
        laps["total"] = (perf_counter_ns() - start) / 1e6
        self.last_timings = laps
        return out

    def _clock(self, timestamp_ms: float | None) -> float:
        if timestamp_ms is None:
            return 0.0 if self._last_t is None else self._last_t + 1.0 / self.fps
        t = float(timestamp_ms) / 1000.0
        if not math.isfinite(t):
            raise ValueError(f"timestamp_ms must be finite, got {timestamp_ms}.")
        if self._last_t is not None and t <= self._last_t:
            raise ValueError(
                f"timestamp_ms must increase from frame to frame: got {timestamp_ms} after "
                f"{self._last_t * 1000.0:g}. Pass timestamp_ms=None to step by 1000 / fps.")
        return t

    def _propagate(self, active: list[_Track], t: float, w: int, h: int
                   ) -> tuple[list[_Track], np.ndarray]:
        """Boxes for the active tracks in this frame: the keypoint box moved
        by the velocity, enlarged by box_scale, clipped to the frame."""
        if self._bottom_up or not active:
            return [], np.zeros((0, 4))
        boxes = np.stack([tr.box for tr in active])
        shift = np.stack([tr.velocity * (t - tr.last_t) for tr in active])
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2 + shift
        half = (boxes[:, 2:] - boxes[:, :2]) * (self.box_scale / 2)
        raw = np.concatenate([centre - half, centre + half], axis=1)
        clipped = _clip_boxes(raw, w, h)
        # Keep a box mostly inside the frame; a person walking out is lost.
        ok = _usable(clipped) & (_box_area(clipped) >= 0.25 * _box_area(raw))
        return [tr for tr, k in zip(active, ok) if k], clipped[ok]

    def _update(self, result: PoseResult | None, boxes: np.ndarray | None, sources: list[int],
                detect: bool, t: float) -> PoseResult:
        if result is None:
            self._lose(set(), t)
            return self._empty_result()
        self._keypoint_set = result.keypoint_set
        kp = np.asarray(result.keypoints, dtype=np.float64)
        sc = np.nan_to_num(np.asarray(result.scores, dtype=np.float64), nan=0.0)
        valid = (sc > self.keypoint_threshold) & np.isfinite(kp).all(axis=-1)
        if boxes is None and result.boxes is not None:
            boxes = np.asarray(result.boxes, dtype=np.float64)
        # Collapsed poses, then duplicates (OKS NMS, best pose first).
        alive = np.flatnonzero(valid.sum(axis=1) >= self.min_keypoints)
        kp_boxes = _keypoint_boxes(kp[alive], valid[alive])
        if len(alive) > 1:
            from edgepose.ops import nms_oks

            sigmas = self._oks_sigmas(kp.shape[1])
            quality = np.where(valid[alive], sc[alive], 0.0).sum(axis=1) / kp.shape[1]
            safe = np.where(valid[alive][..., None], kp[alive], -1.0).astype(np.float32)
            keep = np.sort(nms_oks(safe, quality.astype(np.float32),
                                   _box_area(kp_boxes).astype(np.float32),
                                   self.duplicate_oks,
                                   sigmas.astype(np.float32) if sigmas is not None
                                   else np.full(kp.shape[1], 0.08, np.float32)))
            alive, kp_boxes = alive[keep], kp_boxes[keep]
        # crop boxes: the boxes the poses were estimated in, else (bottom-up) their keypoints'
        ckp, cvalid = kp[alive], valid[alive]
        crops = boxes[alive] if boxes is not None else kp_boxes

        matches = self._associate(ckp, cvalid, kp_boxes, crops, t)
        tracks: list[_Track] = []
        prev_times: list[float | None] = []
        for c in range(len(alive)):
            tr = matches.get(c)
            if tr is None:
                tr = _Track(self._next_id, ckp[c].copy(), cvalid[c].copy(), kp_boxes[c].copy(),
                            crops[c].copy(), t, np.zeros(2))
                self._next_id += 1
                self._tracks.append(tr)
                prev_times.append(None)
            else:
                prev_times.append(self._observe(tr, ckp[c], cvalid[c], kp_boxes[c], crops[c], t))
            if detect and self._detector is not None:
                tr.detector_misses = 0 if sources[alive[c]] < 0 else tr.detector_misses + 1
            tracks.append(tr)
        out_kp = ckp
        if self.smoothing is not None and len(alive):
            out_kp = self._smooth(tracks, prev_times, ckp, cvalid, t)
        self._lose({tr.track_id for tr in tracks}, t)
        out_ids = np.array([tr.track_id for tr in tracks], np.int64)
        order = np.argsort(out_ids, kind="stable")
        sel = alive[order]
        return PoseResult(out_kp[order].astype(np.float32), result.scores[sel], result.keypoint_set,
                          boxes=crops[order].astype(np.float32),
                          person_scores=result.person_scores[sel], track_ids=out_ids[order])

    def _empty_result(self) -> PoseResult:
        kset = self._keypoint_set
        if kset is None:
            from edgepose.keypoints import COCO17

            kset = COCO17
        k = len(kset.names)
        return PoseResult(np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32), kset,
                          boxes=np.zeros((0, 4), np.float32), track_ids=np.zeros(0, np.int64))

    def _oks_sigmas(self, k: int) -> np.ndarray | None:
        sigmas = self._sigmas
        if sigmas is None:
            kset = getattr(self, "_keypoint_set", None)
            sigmas = None if kset is None or kset.sigmas is None else np.asarray(kset.sigmas, np.float64)
        if sigmas is not None and sigmas.shape != (k,):
            raise ValueError(f"sigmas must have shape ({k},), one per keypoint, got {sigmas.shape}.")
        return sigmas

    def _associate(self, kp: np.ndarray, valid: np.ndarray, kp_boxes: np.ndarray,
                   crop_boxes: np.ndarray, t: float) -> dict[int, _Track]:
        """Candidate index -> track: the tracks seen in the previous frame by
        the metric, then the others by box IoU, most recently seen first."""
        matches: dict[int, _Track] = {}
        free = np.arange(len(kp))
        active = [tr for tr in self._tracks if tr.missed == 0]
        if active and len(free):
            shift = np.stack([tr.velocity * (t - tr.last_t) for tr in active])
            sigmas = self._oks_sigmas(kp.shape[1]) if self.metric != "iou" else None
            if self.metric == "oks" or sigmas is not None:
                if sigmas is None:
                    raise ValueError(
                        f"metric='oks' needs OKS sigmas, and keypoint set "
                        f"{self._keypoint_set.name!r} defines none: pass sigmas= or metric='iou'.")
                tkp = np.stack([tr.keypoints for tr in active]) + shift[:, None, :]
                tvalid = np.stack([tr.valid for tr in active])
                area = _box_area(np.stack([tr.box for tr in active]))
                sim = _oks_matrix(tkp, tvalid, area, kp, valid, sigmas)
            else:
                tboxes = np.stack([tr.box for tr in active]) + np.tile(shift, 2)
                sim = _iou_matrix(tboxes, kp_boxes)
            rows, cols = match_by_cost(1.0 - sim, 1.0 - self.match_threshold)
            for r, c in zip(rows, cols):
                matches[int(c)] = active[r]
            free = np.setdiff1d(free, cols)
        # Re-identification cascade (as DeepSORT's): unmatched tracks by age.
        taken = {id(tr) for tr in matches.values()}
        rest = [tr for tr in self._tracks if id(tr) not in taken]
        for age in sorted({tr.missed for tr in rest}):
            if not len(free):
                break
            group = [tr for tr in rest if tr.missed == age]
            sim = self._reid_similarity(group, kp_boxes[free], crop_boxes[free], t)
            rows, cols = match_by_cost(1.0 - sim, 1.0 - self.reid_iou)
            for r, c in zip(rows, cols):
                matches[int(free[c])] = group[r]
            free = np.delete(free, cols)
        return matches

    @staticmethod
    def _reid_similarity(tracks: list[_Track], kp_boxes: np.ndarray, crop_boxes: np.ndarray,
                         t: float) -> np.ndarray:
        """The best IoU of a candidate's keypoint and crop boxes with the
        track's last ones, as they were or moved by the track's velocity."""
        shift = np.stack([np.tile(tr.velocity * min(t - tr.last_t, _MAX_PREDICTION_S), 2)
                          for tr in tracks])
        kp_last = np.stack([tr.box for tr in tracks])
        crop_last = np.stack([tr.crop_box for tr in tracks])
        return np.maximum.reduce([
            _iou_matrix(kp_last, kp_boxes), _iou_matrix(kp_last + shift, kp_boxes),
            _iou_matrix(crop_last, crop_boxes), _iou_matrix(crop_last + shift, crop_boxes)])

    def _observe(self, tr: _Track, kp: np.ndarray, valid: np.ndarray, box: np.ndarray,
                 crop_box: np.ndarray, t: float) -> float | None:
        """Updates a matched track; returns the time its smoothing continues
        from (None when the smoothing starts again)."""
        dt = t - tr.last_t
        common = tr.valid & valid
        if dt > 0 and common.any():
            v = (kp[common] - tr.keypoints[common]).mean(axis=0) / dt
            tr.velocity = v if tr.missed > 0 or tr.hits < 2 else 0.5 * tr.velocity + 0.5 * v
        prev_t = tr.last_t if tr.missed == 0 else None
        tr.keypoints, tr.valid, tr.box = kp.copy(), valid.copy(), box.copy()
        tr.crop_box = crop_box.copy()
        tr.hits += 1
        tr.missed = 0
        tr.last_t = t
        return prev_t

    def _smooth(self, tracks: list[_Track], prev_times: list[float | None], kp: np.ndarray,
                valid: np.ndarray, t: float) -> np.ndarray:
        """One-Euro over every tracked person at once; returns (C, K, 2)."""
        params = self.smoothing
        assert params is not None
        out = kp.copy()
        going = [i for i, tr in enumerate(tracks)
                 if prev_times[i] is not None and tr.smooth_x is not None]
        if going:
            idx = np.array(going)
            dt = np.array([t - prev_times[i] for i in going])[:, None]
            ready = np.stack([tracks[i].smooth_ready for i in going])
            xr = np.stack([tracks[i].smooth_raw for i in going])
            xp = np.stack([tracks[i].smooth_x for i in going])
            dp = np.stack([tracks[i].smooth_dx for i in going])
            x = kp[idx]
            r = ready[..., None]
            x_hat, dx_hat = one_euro_step(x, np.where(r, xr, x), np.where(r, xp, x),
                                          np.where(r, dp, 0.0), dt, params)
            run = (ready & valid[idx])[..., None]
            out[idx] = np.where(run, x_hat, x)
            for n, i in enumerate(going):
                tracks[i].smooth_dx = np.where(run[n], dx_hat[n], 0.0)
        for i, tr in enumerate(tracks):
            if i not in going:
                tr.smooth_dx = np.zeros_like(kp[i])
            tr.smooth_raw = np.where(valid[i][:, None], kp[i], 0.0)
            tr.smooth_x = np.where(valid[i][:, None], out[i], 0.0)
            tr.smooth_ready = valid[i].copy()
        return out

    def _lose(self, seen: set[int], t: float) -> None:
        kept = []
        for tr in self._tracks:
            if tr.track_id in seen:
                kept.append(tr)
                continue
            tr.missed += 1
            tr.smooth_raw = tr.smooth_x = tr.smooth_dx = tr.smooth_ready = None
            if t - tr.last_t <= self.reid_window_s:
                kept.append(tr)
        self._tracks = kept

    # -- resources -------------------------------------------------------------

    def close(self) -> None:
        """Closes the models the tracker built from files. Idempotent."""
        for part in getattr(self, "_owned", []):
            part.close()
        self._owned = []

    def __enter__(self) -> PoseTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"PoseTracker(detect_every={self.detect_every}, metric={self.metric!r}, "
                f"reid_window_s={self.reid_window_s}, smoothing={self.smoothing!r}, "
                f"tracks={len(self._tracks)})")


def _covered(boxes: np.ndarray, det_boxes: np.ndarray) -> np.ndarray:
    """Whether each propagated box is a detection's person: IoU >= 0.5 with
    one, or its middle half (about the person's keypoints) 80 % inside one."""
    iou = _iou_matrix(boxes, det_boxes).max(axis=1) >= _COVER_IOU
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) / 4
    core = np.concatenate([centre - half, centre + half], axis=1)
    lt = np.maximum(core[:, None, :2], det_boxes[None, :, :2])
    rb = np.minimum(core[:, None, 2:], det_boxes[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=-1)
    inside = (inter / np.maximum(_box_area(core), 1e-9)[:, None]).max(axis=1) >= 0.8
    return iou | inside


def _clip_boxes(boxes: np.ndarray, w: int, h: int) -> np.ndarray:
    out = boxes.astype(np.float64, copy=True)
    out[:, 0::2] = np.clip(out[:, 0::2], 0.0, float(w))
    out[:, 1::2] = np.clip(out[:, 1::2], 0.0, float(h))
    return out


def _usable(boxes: np.ndarray) -> np.ndarray:
    """Boxes at least 2 px wide and high."""
    return ((boxes[:, 2] - boxes[:, 0]) >= 2.0) & ((boxes[:, 3] - boxes[:, 1]) >= 2.0)
