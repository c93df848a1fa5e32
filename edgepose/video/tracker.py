"""Multi-person pose tracking for video.

:class:`PoseTracker` turns per-frame poses into tracks: it runs the person
detector every ``detect_every`` frames and, in between, crops each person
from a box propagated from their pose in the previous frame (the box of
their confident keypoints, enlarged and moved by their velocity), so most
frames cost only the pose model. People are associated across frames by
OKS (or box IoU) with an optimal assignment, keep their id through short
occlusions and detector misses, and may have their keypoints smoothed with
the One-Euro filter (:class:`edgepose.video.smoothing.OneEuroFilter`, one
per track). The assignment solver and the similarities it is fed are in
:mod:`edgepose.video.assignment`, the box geometry in
:mod:`edgepose.video._boxes`.

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
3. Association, each round an optimal assignment
   (:func:`edgepose.video.assignment.match_by_cost`).
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
4. With ``smoothing``, each track's keypoints pass through the track's own
   One-Euro filter, timed by the frame timestamps.
5. Tracks not matched are lost (their filter restarts); a track lost for
   longer than ``reid_window_s`` is forgotten.

Track ids are ints counted per tracker from 0 (never shared between
trackers, never reused by a tracker until :meth:`PoseTracker.reset`), and
carry no meaning beyond identity: they are not contiguous once people come
and go.
"""
from __future__ import annotations

import dataclasses
import math
import os
import threading
import warnings
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgepose.card import WHOLE_IMAGE_TASKS
from edgepose.images import check_image
from edgepose.results import PoseResult, found_mask
from edgepose.runtime import RuntimeOptions
from edgepose.video import _boxes
from edgepose.video._options import (count, fraction, oks_sigmas, person_detector, pose_model,
                                     positive_number)
from edgepose.video._tracks import Poses, Track, associate
from edgepose.video.smoothing import OneEuroFilter, OneEuroParams

__all__ = ["PoseTracker"]

_METRICS = ("auto", "oks", "iou")
#: The OKS sigma of every keypoint when finding duplicate poses of a set that has none.
_DEFAULT_SIGMA = 0.08


class _Laps:
    """Milliseconds a call spends in each stage, from one clock."""

    def __init__(self) -> None:
        self.start = self.mark = perf_counter_ns()
        self.ms = {"detect": 0.0, "pose": 0.0, "track": 0.0}

    def __call__(self, stage: str) -> None:
        """Adds the time since the last lap to ``stage``."""
        now = perf_counter_ns()
        self.ms[stage] += (now - self.mark) / 1e6
        self.mark = now

    def total(self) -> dict[str, float]:
        return {**self.ms, "total": (perf_counter_ns() - self.start) / 1e6}


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
        runtime: the :class:`~edgepose.runtime.RuntimeOptions` of the
            models built from files (the Estimator and the detector), e.g.
            ``RuntimeOptions(backend="openvino", device="GPU")``.
        detector_runtime: different options for a detector built from a
            file (default: ``runtime``).
        backend, threads: shortcuts for those fields of ``runtime``; giving
            both is a ValueError.
        detection_threshold: minimum person score of a detector built from
            a file; None: 0.3 for a person detector, the card's person
            threshold for a one-stage pose model used as detector
            (:meth:`edgepose.detectors.PersonDetector.from_file`).

    Each result carries the milliseconds of its frame's stages in
    ``result.timings_ms`` (detect, pose, track, total).

    Raises:
        TypeError, ValueError: an invalid option (at construction).
        FileNotFoundError, ImportError: as :class:`edgepose.Estimator`.

    Example::

        with edgepose.PoseTracker("movenet-lightning", "yolox-nano", detect_every=5,
                                  smoothing=OneEuroParams()) as tracker:
            for frame, t_ms in frames:
                poses = tracker(frame, timestamp_ms=t_ms)   # poses.track_ids (N,)

    :meth:`__call__` is not thread-safe (call it from one thread);
    :meth:`detect` may run on another thread (:mod:`edgepose.video.pipeline`).
    """

    def __init__(self, model: str | os.PathLike | Callable[..., PoseResult],
                 detector: str | os.PathLike | Callable[..., Any] | None = None, *,
                 detect_every: int = 1, metric: str = "auto", match_threshold: float = 0.3,
                 reid_window_s: float = 1.0, reid_iou: float = 0.3,
                 smoothing: OneEuroParams | None = None, fps: float = 30.0,
                 keypoint_threshold: float = 0.3, min_keypoints: int = 4,
                 box_scale: float = 1.2, max_detector_misses: int = 2,
                 duplicate_oks: float = 0.7, sigmas: ArrayLike | None = None,
                 runtime: RuntimeOptions | None = None,
                 detector_runtime: RuntimeOptions | None = None,
                 backend: str | None = None, threads: int | None = None,
                 detection_threshold: float | None = None) -> None:
        runtime = RuntimeOptions.resolve(runtime, backend=backend, threads=threads)
        if detector_runtime is not None and not isinstance(detector, (str, os.PathLike)):
            raise ValueError("detector_runtime applies to a detector built from a file; the "
                             f"detector given is a {type(detector).__name__}. Drop "
                             "detector_runtime=.")
        if detector_runtime is not None and not isinstance(detector_runtime, RuntimeOptions):
            raise TypeError("detector_runtime must be an edgepose.RuntimeOptions, got "
                            f"{type(detector_runtime).__name__}.")
        self.detect_every = count("detect_every", detect_every, 1)
        if metric not in _METRICS:
            raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}.")
        self.metric = metric
        self.match_threshold = fraction("match_threshold", match_threshold)
        self.reid_window_s = positive_number("reid_window_s", reid_window_s, allow_zero=True)
        self.reid_iou = fraction("reid_iou", reid_iou)
        if smoothing is not None and not isinstance(smoothing, OneEuroParams):
            raise TypeError(f"smoothing must be None or a OneEuroParams, got {type(smoothing).__name__}.")
        self.smoothing = smoothing
        self.fps = positive_number("fps", fps)
        self.keypoint_threshold = positive_number("keypoint_threshold", keypoint_threshold,
                                                   allow_zero=True)
        self.min_keypoints = count("min_keypoints", min_keypoints, 2)
        self.box_scale = positive_number("box_scale", box_scale)
        self.max_detector_misses = count("max_detector_misses", max_detector_misses, 0)
        self.duplicate_oks = fraction("duplicate_oks", duplicate_oks)
        self._sigmas = None if sigmas is None else np.asarray(sigmas, dtype=np.float64)
        if self._sigmas is not None and not (self._sigmas.ndim == 1 and np.isfinite(self._sigmas).all()
                                             and (self._sigmas > 0).all()):
            raise ValueError(f"sigmas must be a (K,) array of positive finite numbers, got {sigmas!r}.")
        self._detector_lock = threading.Lock()
        self._last_timings: dict[str, float] = {}
        #: Whether the last call ran (or was given) detections.
        self.last_detected = False
        self._owned: list[Any] = []
        try:
            self._pose, owned = pose_model(model, runtime)
            self._owned += [self._pose] if owned else []
            self._detector, owned = person_detector(detector, detection_threshold,
                                                    detector_runtime or runtime)
            self._owned += [self._detector] if owned else []
            card = getattr(self._pose, "card", None)
            self._bottom_up = getattr(card, "task", None) in WHOLE_IMAGE_TASKS
            if self._bottom_up and self._detector is not None:
                raise ValueError("This pose model (bottom-up or one-stage) finds every person "
                                 "itself: pass detector=None.")
            self.reset()   # checks the sigmas against the model's keypoint set, if it has one
        except Exception:
            self.close()
            raise

    @property
    def last_timings(self) -> dict[str, float]:
        """Deprecated: use ``result.timings_ms``. The stage timings of the
        frame returned last ({} before the first)."""
        warnings.warn("PoseTracker.last_timings is deprecated: read result.timings_ms, the "
                      "timings of the frame that made each result.", DeprecationWarning,
                      stacklevel=2)
        return dict(self._last_timings)

    # -- state -----------------------------------------------------------------

    def reset(self) -> None:
        """Forgets every track and the frame clock; ids start again from 0."""
        self._tracks: list[Track] = []
        self._next_id = 0
        self._last_t: float | None = None
        self._use_keypoint_set(getattr(self._pose, "keypoint_set", None))
        #: Calls since the last reset.
        self.frame_count = 0

    def _use_keypoint_set(self, keypoint_set: Any) -> None:
        """Takes the keypoint set of the poses to come, and its OKS sigmas
        (``_oks``: None when there are none, so matching is by IoU)."""
        self._keypoint_set = keypoint_set
        self._oks = None if keypoint_set is None else oks_sigmas(self.metric, self._sigmas,
                                                                  keypoint_set)

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
                already (:mod:`edgepose.video.pipeline` runs it ahead on
                another thread); it makes this a detection frame.

        Returns:
            the :class:`PoseResult` of the people seen in this frame, with
            ``track_ids (N,)``, ordered by track id, and ``timings_ms``;
            ``boxes`` are the boxes the poses were estimated in.

        Raises:
            TypeError, ValueError: an invalid frame, a timestamp that does
                not increase, a pose callable that returns the wrong number
                of poses, ``metric="oks"`` for poses whose keypoint set has
                no sigmas.
        """
        frame = check_image(frame)
        if detections is not None and self._bottom_up:
            raise ValueError("This pose model (bottom-up or one-stage) finds every person "
                             "itself: detections= is not accepted.")
        t = self._clock(timestamp_ms)
        lap = _Laps()
        active = [tr for tr in self._tracks if tr.missed == 0]
        self.last_detected = (detections is not None or self.detection_due(self.frame_count)
                              or not active)
        boxes, from_detector = self._detect_or_propagate(frame, t, active, self.last_detected,
                                                         detections, lap)
        result = self._estimate(frame, boxes)
        lap("pose")
        out = self._track(result, boxes, from_detector, t)
        lap("track")
        self.frame_count += 1
        self._last_t = t
        self._last_timings = lap.total()
        return dataclasses.replace(out, timings_ms=self._last_timings)

    def _clock(self, timestamp_ms: float | None) -> float:
        """The frame's time in seconds, checked to increase."""
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

    def _detect_or_propagate(self, frame: NDArray[np.uint8], t: float, active: list[Track],
                             detect: bool, detections: Any, lap: _Laps
                             ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Step 1, the boxes to estimate poses in (see the module docstring).

        Returns:
            ``(boxes, from_detector)``: ``(B, 4)`` float64 xyxy, or None
            when the pose model finds the people itself (a detection frame
            without a separate detector); and ``(B,)`` bool, which boxes
            are detections, on detection frames of a tracker with a
            detector (else None: no track's detector misses count).
        """
        if detect and self._detector is None and detections is None:
            return None, None
        h, w = frame.shape[:2]
        tracks, boxes = self._propagate(active, t, w, h)
        if not detect:
            return boxes, None
        det_boxes = self._detection_boxes(frame, detections)
        lap("detect")
        boxes = self._unconfirmed(tracks, boxes, det_boxes)
        det_boxes = _boxes.clip_boxes(det_boxes, w, h)
        det_boxes = det_boxes[_boxes.usable(det_boxes)]
        from_detector = np.arange(len(det_boxes) + len(boxes)) < len(det_boxes)
        return (np.concatenate([det_boxes, boxes]),
                from_detector if self._detector is not None else None)

    def _detection_boxes(self, frame: NDArray[np.uint8], detections: Any) -> np.ndarray:
        """The detector's ``(M, 4)`` float64 boxes of this frame: those given,
        else the detector's."""
        dets = detections if detections is not None else self.detect(frame)
        if not hasattr(dets, "boxes"):
            raise TypeError("detections must have boxes (M, 4) xyxy, as "
                            f"edgepose.detectors.Detections, got {type(dets).__name__}.")
        return np.asarray(dets.boxes, dtype=np.float64).reshape(-1, 4)

    def _unconfirmed(self, tracks: list[Track], boxes: np.ndarray, det_boxes: np.ndarray
                     ) -> np.ndarray:
        """The propagated boxes a detection frame adds to the detections:
        those of tracks a detection confirmed within ``max_detector_misses``
        detection frames, that no detection covers (a covered track is
        confirmed: its detection is its box)."""
        keep = [i for i, tr in enumerate(tracks) if tr.detector_misses < self.max_detector_misses]
        tracks, boxes = [tracks[i] for i in keep], boxes[keep]
        if len(det_boxes) and len(boxes):
            covered = _boxes.covered(boxes, det_boxes)
            for tr, c in zip(tracks, covered):
                if c:
                    tr.detector_misses = 0
            boxes = boxes[~covered]
        return boxes

    def _propagate(self, active: list[Track], t: float, w: int, h: int
                   ) -> tuple[list[Track], np.ndarray]:
        """The active tracks' boxes in this frame: the keypoint box moved by
        the velocity, enlarged by ``box_scale``, clipped to the frame; the
        tracks whose box left the frame are left out."""
        if self._bottom_up or not active:
            return [], np.zeros((0, 4))
        shift = np.stack([tr.velocity * (t - tr.last_t) for tr in active])
        keep, boxes = _boxes.propagate(np.stack([tr.box for tr in active]), shift,
                                       self.box_scale, w, h)
        return [tr for tr, k in zip(active, keep) if k], boxes

    def _estimate(self, frame: NDArray[np.uint8], boxes: np.ndarray | None) -> PoseResult | None:
        """Step 2, the pose model: one pose per box, or (``boxes`` None) the
        people it finds itself; None when there is no box."""
        if boxes is None:
            return self._pose(frame)
        if not len(boxes):
            return None
        result = self._pose(frame, boxes=boxes.astype(np.float32))
        if len(result) != len(boxes):
            raise ValueError(
                f"pose(frame, boxes=...) returned {len(result)} poses for {len(boxes)} "
                "boxes; a top-down pose callable returns one pose per box, in order.")
        return result

    def _track(self, result: PoseResult | None, boxes: np.ndarray | None,
               from_detector: np.ndarray | None, t: float) -> PoseResult:
        """Steps 2 (selection) to 5: the frame's poses into tracks."""
        if result is None:
            self._lose(set(), t)
            return self._empty_result()
        if result.keypoint_set is not self._keypoint_set:
            self._use_keypoint_set(result.keypoint_set)
        if boxes is None and result.boxes is not None:
            boxes = np.asarray(result.boxes, dtype=np.float64)
        poses = self._select(result, boxes)
        tracks = self._update_tracks(poses, self._assign(poses, t), from_detector, t)
        keypoints = self._smooth(tracks, poses, t)
        self._lose({tr.track_id for tr in tracks}, t)
        return self._result(result, poses, tracks, keypoints)

    def _select(self, result: PoseResult, boxes: np.ndarray | None) -> Poses:
        """The poses to track: without the collapsed ones (fewer than
        ``min_keypoints`` valid keypoints), then without duplicates (OKS
        NMS, the best pose first)."""
        kp = np.asarray(result.keypoints, dtype=np.float64)
        sc = np.nan_to_num(np.asarray(result.scores, dtype=np.float64), nan=0.0)
        valid = (sc > self.keypoint_threshold) & found_mask(kp)  # not found: NaN
        alive = np.flatnonzero(valid.sum(axis=1) >= self.min_keypoints)
        kp_boxes = _boxes.keypoint_boxes(kp[alive], valid[alive])
        if len(alive) > 1:
            from edgepose.ops import nms_oks

            k = kp.shape[1]
            sigmas = self._oks if self._oks is not None else np.full(k, _DEFAULT_SIGMA)
            quality = np.where(valid[alive], sc[alive], 0.0).sum(axis=1) / k
            safe = np.where(valid[alive][..., None], kp[alive], -1.0).astype(np.float32)
            keep = np.sort(nms_oks(safe, quality.astype(np.float32),
                                   _boxes.box_area(kp_boxes).astype(np.float32),
                                   self.duplicate_oks, sigmas.astype(np.float32)))
            alive, kp_boxes = alive[keep], kp_boxes[keep]
        crops = boxes[alive] if boxes is not None else kp_boxes
        return Poses(alive, kp[alive], valid[alive], kp_boxes, crops)

    def _assign(self, poses: Poses, t: float) -> dict[int, Track]:
        """Step 3: pose index -> track (:func:`edgepose.video._tracks.associate`),
        by OKS when ``metric`` and the keypoint set allow, else by IoU."""
        return associate(self._tracks, poses, t, sigmas=None if self.metric == "iou" else self._oks,
                         match_threshold=self.match_threshold, reid_iou=self.reid_iou)

    def _update_tracks(self, poses: Poses, matches: dict[int, Track],
                       from_detector: np.ndarray | None, t: float) -> list[Track]:
        """The track of each pose, in order: the matched tracks take their
        pose, the other poses start new tracks; counts detector misses."""
        tracks = []
        for c in range(len(poses.index)):
            args = (poses.keypoints[c], poses.valid[c], poses.boxes[c], poses.crops[c])
            tr = matches.get(c)
            if tr is None:
                smoother = None if self.smoothing is None else OneEuroFilter(self.smoothing)
                tr = Track(self._next_id, *(a.copy() for a in args), t, np.zeros(2), smoother)
                self._next_id += 1
                self._tracks.append(tr)
            else:
                tr.observe(*args, t)
            if from_detector is not None:
                tr.detector_misses = 0 if from_detector[poses.index[c]] else tr.detector_misses + 1
            tracks.append(tr)
        return tracks

    def _smooth(self, tracks: list[Track], poses: Poses, t: float) -> np.ndarray:
        """Step 4: each pose's keypoints through its track's One-Euro filter
        (its valid keypoints; a filter restarts when its track is lost);
        ``(C, K, 2)``, the raw keypoints without ``smoothing``."""
        if self.smoothing is None or not tracks:
            return poses.keypoints
        return np.stack([tr.smoother(poses.keypoints[c], t, valid=poses.valid[c])
                         for c, tr in enumerate(tracks)])

    def _lose(self, seen: set[int], t: float) -> None:
        """Step 5: the tracks not seen are lost (their filters restart), and
        forgotten once lost for longer than ``reid_window_s``."""
        kept = []
        for tr in self._tracks:
            if tr.track_id in seen:
                kept.append(tr)
                continue
            tr.missed += 1
            if tr.smoother is not None:
                tr.smoother.reset()
            if t - tr.last_t <= self.reid_window_s:
                kept.append(tr)
        self._tracks = kept

    @staticmethod
    def _result(result: PoseResult, poses: Poses, tracks: list[Track],
                keypoints: np.ndarray) -> PoseResult:
        """The tracked poses with their track ids, ordered by id."""
        ids = np.array([tr.track_id for tr in tracks], np.int64)
        order = np.argsort(ids, kind="stable")
        sel = poses.index[order]
        return PoseResult(keypoints[order].astype(np.float32), result.scores[sel],
                          result.keypoint_set, boxes=poses.crops[order].astype(np.float32),
                          person_scores=result.person_scores[sel], track_ids=ids[order])

    def _empty_result(self) -> PoseResult:
        kset = self._keypoint_set
        if kset is None:
            from edgepose.keypoints import COCO17

            kset = COCO17
        k = len(kset.names)
        return PoseResult(np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32), kset,
                          boxes=np.zeros((0, 4), np.float32), track_ids=np.zeros(0, np.int64))

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
