"""Typed pose results in input-image pixels."""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgepose._arrays import read_only
from edgepose.keypoints import KeypointSet

__all__ = ["PoseResult", "found_mask", "coco_keypoints"]


def found_mask(keypoints: ArrayLike) -> NDArray[np.bool_]:
    """``(..., K)`` bool: the keypoints of ``(..., K, 2)`` that were found.

    The one reading of edgepose's "not found" mark: a keypoint that was not
    found has NaN coordinates (any non-finite coordinate counts as not
    found). Every consumer (writers, tracker, conversions, evaluation,
    export parity) reads the mark through this function.

    Raises:
        ValueError: ``keypoints`` without a last axis of 2 (x, y).
    """
    kp = np.asarray(keypoints)
    if kp.ndim < 1 or kp.shape[-1] != 2:
        raise ValueError(f"keypoints must have shape (..., K, 2) as (x, y), got {kp.shape}.")
    return np.isfinite(kp).all(axis=-1)


def coco_keypoints(keypoints: ArrayLike, scores: ArrayLike) -> NDArray[np.float64]:
    """``(N, K, 3)`` float64 COCO keypoint triples (x, y, score) of
    ``(N, K, 2)`` keypoints and ``(N, K)`` scores: a keypoint that was not
    found is written x = y = 0 with score 0 (COCO's unlabelled point), a NaN
    score of a found keypoint as 0."""
    kp = np.asarray(keypoints, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    found = found_mask(kp)
    out = np.zeros(kp.shape[:-1] + (3,), np.float64)
    out[..., :2] = np.where(found[..., None], kp, 0.0)
    out[..., 2] = np.where(found, np.nan_to_num(sc, nan=0.0), 0.0)
    return out


@dataclass(frozen=True)
class PoseResult:
    """The people found in one image.

    Attributes:
        keypoints: ``(N, K, 2)`` float32 (x, y) in input-image pixels; a
            keypoint that was not found has NaN coordinates (see
            :func:`found_mask`), every other keypoint finite ones.
        scores: ``(N, K)`` float32 keypoint confidences; a keypoint that
            was not found keeps the score its decoder gave it (<= 0 or NaN).
        keypoint_set: names, skeleton, flip pairs and OKS sigmas of the K
            keypoints.
        boxes: ``(N, 4)`` float32 xyxy person boxes in image pixels, or None
            (bottom-up and whole-frame models).
        person_scores: ``(N,)`` float32 confidence of each person.
        track_ids: ``(N,)`` int64 track ids (video), or None.
        timings_ms: read-only mapping stage -> milliseconds of the call that
            made this result (``Estimator``: detect, preprocess, inference,
            decode, total; ``PoseTracker``: detect, pose, track, total), or
            None. It travels with the result, so each call (on any thread)
            has its own; it takes no part in ``==``.

    The arrays are read-only; operations return new results. ``len(result)``
    is N; ``result[i]``, ``result[a:b]``, ``result[mask]`` and
    ``result[indices]`` select people.
    """

    keypoints: NDArray[np.float32]
    scores: NDArray[np.float32]
    keypoint_set: KeypointSet
    boxes: NDArray[np.float32] | None = None
    person_scores: NDArray[np.float32] | None = None
    track_ids: NDArray[np.int64] | None = field(default=None)
    timings_ms: Mapping[str, float] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        kp = np.asarray(self.keypoints, dtype=np.float32)
        sc = np.asarray(self.scores, dtype=np.float32)
        k = len(self.keypoint_set.names)
        if kp.ndim != 3 or kp.shape[1:] != (k, 2):
            raise ValueError(
                f"keypoints must have shape (N, {k}, 2) for keypoint set "
                f"'{self.keypoint_set.name}', got {kp.shape}.")
        n = kp.shape[0]
        if sc.shape != (n, k):
            raise ValueError(f"scores must have shape ({n}, {k}), got {sc.shape}.")
        object.__setattr__(self, "keypoints", read_only(kp))
        object.__setattr__(self, "scores", read_only(sc))
        if self.boxes is not None:
            b = np.asarray(self.boxes, dtype=np.float32)
            if b.shape != (n, 4):
                raise ValueError(f"boxes must have shape ({n}, 4) as xyxy, got {b.shape}.")
            object.__setattr__(self, "boxes", read_only(b))
        ps = self.person_scores
        if ps is None:
            ps = self._mean_scores(sc)
        ps = np.asarray(ps, dtype=np.float32)
        if ps.shape != (n,):
            raise ValueError(f"person_scores must have shape ({n},), got {ps.shape}.")
        object.__setattr__(self, "person_scores", read_only(ps))
        if self.track_ids is not None:
            t = np.asarray(self.track_ids, dtype=np.int64)
            if t.shape != (n,):
                raise ValueError(f"track_ids must have shape ({n},), got {t.shape}.")
            object.__setattr__(self, "track_ids", read_only(t))
        if self.timings_ms is not None:
            object.__setattr__(self, "timings_ms", _timings(self.timings_ms))

    @staticmethod
    def _mean_scores(scores: np.ndarray) -> np.ndarray:
        if scores.shape[1] == 0:
            return np.zeros(len(scores), np.float32)
        with np.errstate(invalid="ignore"):
            return np.nan_to_num(scores, nan=0.0).clip(min=0).mean(axis=1)

    @classmethod
    def empty(cls, keypoint_set: KeypointSet, *, with_boxes: bool = False) -> PoseResult:
        """A result with no people."""
        k = len(keypoint_set.names)
        return cls(np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32), keypoint_set,
                   boxes=np.zeros((0, 4), np.float32) if with_boxes else None)

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def __getitem__(self, index: int | slice | np.ndarray) -> PoseResult:
        if isinstance(index, (int, np.integer)):
            n = len(self)
            if not -n <= index < n:
                raise IndexError(f"person index {index} out of range for {n} people.")
            index = slice(int(index), int(index) + 1 if index != -1 else None)
        elif not isinstance(index, slice):
            index = np.asarray(index)
            if index.dtype == bool and index.shape != (len(self),):
                raise IndexError(
                    f"a boolean mask must have shape ({len(self)},), got {index.shape}.")

        def pick(a):
            return None if a is None else a[index]

        return PoseResult(self.keypoints[index], self.scores[index], self.keypoint_set,
                          boxes=pick(self.boxes), person_scores=pick(self.person_scores),
                          track_ids=pick(self.track_ids), timings_ms=self.timings_ms)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python types, one entry per person; a keypoint that was not
        found is ``[None, None]`` (``null`` in JSON)."""
        found = found_mask(self.keypoints)
        people = []
        for i in range(len(self)):
            xy = self.keypoints[i].astype(np.float64).round(2).tolist()
            person: dict[str, Any] = {
                "keypoints": [p if ok else [None, None] for p, ok in zip(xy, found[i])],
                "scores": self.scores[i].round(4).tolist(),
                "score": round(float(self.person_scores[i]), 4),
            }
            if self.boxes is not None:
                person["box"] = self.boxes[i].round(2).tolist()
            if self.track_ids is not None:
                person["track_id"] = int(self.track_ids[i])
            people.append(person)
        return {"keypoint_set": self.keypoint_set.name,
                "keypoint_names": list(self.keypoint_set.names), "people": people}

    def to_json(self, **kwargs: Any) -> str:
        """JSON text of :meth:`to_dict`: keypoints not found and NaN scores
        are written as null."""
        return json.dumps(_nan_to_none(self.to_dict()), **kwargs)

    def to_coco(self, image_id: int, category_id: int = 1) -> list[dict[str, Any]]:
        """COCO keypoint results: one dict per person, keypoints as x, y, score
        triples (:func:`coco_keypoints`: a keypoint not found is 0, 0, 0)."""
        triples = coco_keypoints(self.keypoints, self.scores)
        out = []
        for i in range(len(self)):
            out.append({"image_id": int(image_id), "category_id": int(category_id),
                        "keypoints": triples[i].ravel().tolist(),
                        "score": float(np.nan_to_num(self.person_scores[i], nan=0.0))})
        return out

    def draw(self, image: NDArray[np.uint8], *, score_threshold: float = 0.3,
             radius: int | None = None, thickness: int | None = None) -> NDArray[np.uint8]:
        """A copy of a BGR image with the skeletons (and boxes) drawn on it;
        keypoints not found, or scoring at most ``score_threshold``, are skipped."""
        from edgepose.images import import_cv2

        cv2 = import_cv2()
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
                and image.shape[2] == 3):
            raise ValueError("draw needs a BGR uint8 image of shape (H, W, 3).")
        canvas = image.copy()
        scale = max(canvas.shape[:2]) / 640
        r = radius or max(2, int(round(3 * scale)))
        t = thickness or max(1, int(round(2 * scale)))
        found = found_mask(self.keypoints)
        for i in range(len(self)):
            color = _color(i if self.track_ids is None else int(self.track_ids[i]))
            kp, sc = self.keypoints[i], self.scores[i]
            ok = found[i] & (sc > score_threshold)
            for a, b in self.keypoint_set.skeleton:
                if ok[a] and ok[b]:
                    cv2.line(canvas, _pt(kp[a]), _pt(kp[b]), color, t, cv2.LINE_AA)
            for j in np.flatnonzero(ok):
                cv2.circle(canvas, _pt(kp[j]), r, (255, 255, 255), -1, cv2.LINE_AA)
                cv2.circle(canvas, _pt(kp[j]), r, color, 1, cv2.LINE_AA)
            if self.boxes is not None:
                x1, y1, x2, y2 = self.boxes[i]
                cv2.rectangle(canvas, _pt((x1, y1)), _pt((x2, y2)), color, t)
        return canvas


def _pt(p) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def _color(i: int) -> tuple[int, int, int]:
    palette = [(0, 200, 255), (255, 120, 0), (0, 220, 0), (220, 0, 220), (0, 0, 255),
               (255, 255, 0), (128, 0, 255), (0, 128, 255)]
    return palette[i % len(palette)]


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    return value


def _timings(value: Any) -> Mapping[str, float]:
    """``timings_ms`` as a read-only mapping of stage name -> finite ms >= 0."""
    if not isinstance(value, Mapping):
        raise ValueError(f"timings_ms must be a mapping of stage name -> milliseconds, got "
                         f"{type(value).__name__}.")
    out = {}
    for stage, ms in value.items():
        if (not isinstance(stage, str) or isinstance(ms, bool)
                or not isinstance(ms, (int, float, np.integer, np.floating))
                or not math.isfinite(ms) or ms < 0):
            raise ValueError(f"timings_ms must map stage names to finite milliseconds >= 0, got "
                             f"{stage!r}: {ms!r}.")
        out[stage] = float(ms)
    return MappingProxyType(out)
