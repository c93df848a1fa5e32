"""Box geometry of the tracker: keypoint boxes, propagation and coverage.

Boxes are ``(N, 4)`` float64 xyxy in image pixels.
"""
from __future__ import annotations

import numpy as np

from edgepose.results import found_mask
from edgepose.video.assignment import iou_matrix

#: A propagated box is "covered" by a detection at this IoU (no extra crop).
COVER_IOU = 0.5


def box_area(boxes: np.ndarray) -> np.ndarray:
    """``(N,)`` areas of ``(N, 4)`` xyxy boxes, 0 for inverted boxes."""
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def keypoint_boxes(keypoints: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(N, 4)`` xyxy boxes of the valid keypoints of ``(N, K, 2)`` poses,
    each side at least a quarter of the longer one (and 2 px). Keypoints
    not found (NaN) never count, even when marked valid; a pose with no
    such keypoint has no box: a NaN row."""
    n = len(keypoints)
    if n == 0:
        return np.zeros((0, 4))
    use = valid & found_mask(keypoints)
    big = np.where(use[..., None], keypoints, np.inf)
    small = np.where(use[..., None], keypoints, -np.inf)
    lo, hi = big.min(axis=1), small.max(axis=1)
    with np.errstate(invalid="ignore"):
        centre = (lo + hi) / 2
        size = hi - lo
        side = np.maximum(size, np.maximum(size.max(axis=1, keepdims=True) / 4, 2.0))
        boxes = np.concatenate([centre - side / 2, centre + side / 2], axis=1)
    boxes[~use.any(axis=1)] = np.nan
    return boxes


def clip_boxes(boxes: np.ndarray, w: int, h: int) -> np.ndarray:
    """The boxes clipped to a ``w`` x ``h`` frame, as a new float64 array."""
    out = boxes.astype(np.float64, copy=True)
    out[:, 0::2] = np.clip(out[:, 0::2], 0.0, float(w))
    out[:, 1::2] = np.clip(out[:, 1::2], 0.0, float(h))
    return out


def usable(boxes: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: boxes at least 2 px wide and high."""
    return ((boxes[:, 2] - boxes[:, 0]) >= 2.0) & ((boxes[:, 3] - boxes[:, 1]) >= 2.0)


def propagate(boxes: np.ndarray, shift: np.ndarray, scale: float, w: int, h: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Moves ``(N, 4)`` boxes by ``(N, 2)`` pixels, enlarges them by
    ``scale`` about their centres and clips them to the frame.

    Returns:
        ``(keep, boxes)``: ``(N,)`` bool, the boxes still mostly inside the
        frame (usable, and at least a quarter of their area in it: a person
        walking out is let go), and those boxes, ``(keep.sum(), 4)``.
    """
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 + shift
    half = (boxes[:, 2:] - boxes[:, :2]) * (scale / 2)
    raw = np.concatenate([centre - half, centre + half], axis=1)
    clipped = clip_boxes(raw, w, h)
    keep = usable(clipped) & (box_area(clipped) >= 0.25 * box_area(raw))
    return keep, clipped[keep]


def covered(boxes: np.ndarray, det_boxes: np.ndarray) -> np.ndarray:
    """Whether each propagated box is a detection's person: IoU >= 0.5 with
    one, or its middle half (about the person's keypoints) 80 % inside one."""
    iou = iou_matrix(boxes, det_boxes).max(axis=1) >= COVER_IOU
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) / 4
    core = np.concatenate([centre - half, centre + half], axis=1)
    lt = np.maximum(core[:, None, :2], det_boxes[None, :, :2])
    rb = np.minimum(core[:, None, 2:], det_boxes[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=-1)
    inside = (inter / np.maximum(box_area(core), 1e-9)[:, None]).max(axis=1) >= 0.8
    return iou | inside
