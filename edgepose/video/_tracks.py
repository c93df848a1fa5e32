"""Tracks and association: a track's state, and matching a frame's poses to
the tracks (step 3 of :mod:`edgepose.video.tracker`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgepose.video._boxes import box_area
from edgepose.video.assignment import iou_matrix, match_by_cost, oks_matrix
from edgepose.video.smoothing import OneEuroFilter

#: Lost tracks are predicted at most this far ahead (seconds) for re-identification.
MAX_PREDICTION_S = 1.0


@dataclass(eq=False)
class Track:
    """One person's track: the last observation, the motion, the counters
    and the smoothing filter."""

    track_id: int
    keypoints: np.ndarray            # (K, 2) float64, the last raw observation
    valid: np.ndarray                # (K,) bool
    box: np.ndarray                  # (4,) keypoint box of the last observation
    crop_box: np.ndarray             # (4,) the box its pose was estimated in
    last_t: float                    # seconds
    velocity: np.ndarray             # (2,) px/s
    smoother: OneEuroFilter | None   # this track's keypoint filter (None: no smoothing)
    missed: int = 0                  # frames since last seen (0: seen in the previous frame)
    hits: int = 1
    detector_misses: int = 0         # detection frames in a row without a detection

    def observe(self, kp: np.ndarray, valid: np.ndarray, box: np.ndarray, crop_box: np.ndarray,
                t: float) -> None:
        """Takes this frame's pose: the velocity (px/s, the mean motion of
        the keypoints valid in both poses; averaged with the last once the
        track is steady) and the last observation."""
        dt = t - self.last_t
        common = self.valid & valid
        if dt > 0 and common.any():
            v = (kp[common] - self.keypoints[common]).mean(axis=0) / dt
            steady = self.missed == 0 and self.hits >= 2
            self.velocity = 0.5 * self.velocity + 0.5 * v if steady else v
        self.keypoints, self.valid, self.box = kp.copy(), valid.copy(), box.copy()
        self.crop_box = crop_box.copy()
        self.hits += 1
        self.missed = 0
        self.last_t = t


@dataclass(frozen=True)
class Poses:
    """The poses of one frame that are tracked (not collapsed, no duplicates)."""

    index: np.ndarray        # (C,) their positions in the pose model's result
    keypoints: np.ndarray    # (C, K, 2) float64
    valid: np.ndarray        # (C, K) bool: confident and finite
    boxes: np.ndarray        # (C, 4) boxes of the valid keypoints
    crops: np.ndarray        # (C, 4) the boxes they were estimated in (bottom-up: `boxes`)



def associate(tracks: list[Track], poses: Poses, t: float, *, sigmas: np.ndarray | None,
              match_threshold: float, reid_iou: float) -> dict[int, Track]:
    """Pose index -> track, each an optimal assignment: the tracks seen in
    the previous frame by OKS with ``sigmas`` (by keypoint-box IoU when
    None), pairs below ``match_threshold`` never matched; then the others by
    box IoU (at least ``reid_iou``), most recently seen first."""
    matches: dict[int, Track] = {}
    free = np.arange(len(poses.index))
    active = [tr for tr in tracks if tr.missed == 0]
    if active and len(free):
        sim = _similarity(active, poses, t, sigmas)
        rows, cols = match_by_cost(1.0 - sim, 1.0 - match_threshold)
        for r, c in zip(rows, cols):
            matches[int(c)] = active[r]
        free = np.setdiff1d(free, cols)
    # Re-identification cascade (as DeepSORT's): unmatched tracks by age.
    taken = {id(tr) for tr in matches.values()}
    rest = [tr for tr in tracks if id(tr) not in taken]
    for age in sorted({tr.missed for tr in rest}):
        if not len(free):
            break
        group = [tr for tr in rest if tr.missed == age]
        sim = _reid_similarity(group, poses.boxes[free], poses.crops[free], t)
        rows, cols = match_by_cost(1.0 - sim, 1.0 - reid_iou)
        for r, c in zip(rows, cols):
            matches[int(free[c])] = group[r]
        free = np.delete(free, cols)
    return matches


def _similarity(tracks: list[Track], poses: Poses, t: float, sigmas: np.ndarray | None
                ) -> np.ndarray:
    """``(T, C)`` OKS (or, without sigmas, keypoint-box IoU) of the poses
    with the tracks moved by their velocity."""
    shift = np.stack([tr.velocity * (t - tr.last_t) for tr in tracks])
    if sigmas is not None:
        tkp = np.stack([tr.keypoints for tr in tracks]) + shift[:, None, :]
        tvalid = np.stack([tr.valid for tr in tracks])
        area = box_area(np.stack([tr.box for tr in tracks]))
        return oks_matrix(tkp, tvalid, area, poses.keypoints, poses.valid, sigmas)
    tboxes = np.stack([tr.box for tr in tracks]) + np.tile(shift, 2)
    return iou_matrix(tboxes, poses.boxes)


def _reid_similarity(tracks: list[Track], kp_boxes: np.ndarray, crop_boxes: np.ndarray,
                     t: float) -> np.ndarray:
    """The best IoU of a candidate's keypoint and crop boxes with the
    track's last ones, as they were or moved by the track's velocity."""
    shift = np.stack([np.tile(tr.velocity * min(t - tr.last_t, MAX_PREDICTION_S), 2)
                      for tr in tracks])
    kp_last = np.stack([tr.box for tr in tracks])
    crop_last = np.stack([tr.crop_box for tr in tracks])
    return np.maximum.reduce([
        iou_matrix(kp_last, kp_boxes), iou_matrix(kp_last + shift, kp_boxes),
        iou_matrix(crop_last, crop_boxes), iou_matrix(crop_last + shift, crop_boxes)])
