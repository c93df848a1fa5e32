"""Synthetic scenes and a real clip for the video tests.

People walk known paths (:class:`Scene`); a fake detector and a fake
top-down pose model "see" them (:class:`FakeDetector`, :class:`FakePose`),
so identity is known exactly. :func:`panning_clip` cuts a panning clip from
a real COCO image in ../shared, and :func:`write_video` writes frames to an
mp4 file.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgepose.detectors import Detections
from edgepose.keypoints import COCO17
from edgepose.results import PoseResult



# A standing person, 17 COCO keypoints, relative to their centre (px): 52 x 139.
TEMPLATE = np.array([
    [0, -65], [-4, -69], [4, -69], [-9, -66], [9, -66],
    [-18, -45], [18, -45], [-24, -20], [24, -20], [-26, 4], [26, 4],
    [-11, 5], [11, 5], [-12, 38], [12, 38], [-12, 70], [12, 70],
], np.float64)
SIZE_HW = (480, 640)


def box_of(kp, pad=8.0):
    lo, hi = kp.min(axis=0), kp.max(axis=0)
    return np.array([lo[0] - pad, lo[1] - pad, hi[0] + pad, hi[1] + pad])


def _iou(a, b):
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = np.clip(rb - lt, 0, None).prod()
    union = (a[2:] - a[:2]).prod() + (b[2:] - b[:2]).prod() - inter
    return inter / union if union > 0 else 0.0


class Scene:
    """People on known paths: ``paths[name](frame) -> (x, y)`` centre, or None
    while they are away. The frame index is written into pixel (0, 0), so the
    fakes know which frame they are shown (also from another thread)."""

    def __init__(self, paths):
        self.paths = paths

    def frame(self, f):
        image = np.zeros((*SIZE_HW, 3), np.uint8)
        image[0, 0] = (f % 256, f // 256, 0)
        return image

    @staticmethod
    def index(image):
        return int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])

    def truth(self, f):
        out = {}
        for name, path in self.paths.items():
            c = path(f)
            if c is not None:
                out[name] = TEMPLATE + np.asarray(c, np.float64)
        return out

    @staticmethod
    def inside(kp):
        h, w = SIZE_HW
        return (kp[:, 0] >= 0) & (kp[:, 0] < w) & (kp[:, 1] >= 0) & (kp[:, 1] < h)


class FakeDetector:
    """The box of every person with at least 6 keypoints in view, except
    where ``miss(frame, name)``."""

    def __init__(self, scene, miss=lambda f, name: False):
        self.scene, self.miss, self.calls = scene, miss, 0

    def __call__(self, image):
        self.calls += 1
        f = self.scene.index(image)
        h, w = SIZE_HW
        boxes = []
        for name, kp in self.scene.truth(f).items():
            if self.miss(f, name) or self.scene.inside(kp).sum() < 6:
                continue
            b = box_of(kp)
            b[0::2] = b[0::2].clip(0, w)
            b[1::2] = b[1::2].clip(0, h)
            boxes.append(b)
        boxes = np.array(boxes, np.float32).reshape(-1, 4)
        return Detections(boxes, np.full(len(boxes), 0.9, np.float32))


class FakePose:
    """A top-down model: for each box, the person whose box it overlaps most
    (IoU >= 0.3) with Gaussian noise, keypoints out of view not found (NaN,
    score 0, as the Estimator gives them); a
    box on nobody gives a collapsed pose (scores 0.05). Without boxes, every
    person in view (a bottom-up model)."""

    keypoint_set = COCO17

    def __init__(self, scene, noise_px=1.0, seed=1):
        self.scene, self.noise_px = scene, noise_px
        self.rng = np.random.default_rng(seed)
        self.calls = 0

    def _observe(self, kp):
        ok = self.scene.inside(kp)
        noisy = kp + self.rng.normal(0, self.noise_px, kp.shape)
        return np.where(ok[:, None], noisy, np.nan), np.where(ok, 0.9, 0.0)  # out of view: not found

    def __call__(self, image, boxes=None):
        self.calls += 1
        truth = self.scene.truth(self.scene.index(image))
        kps, scores = [], []
        if boxes is None:
            for kp in truth.values():
                if self.scene.inside(kp).sum() >= 6:
                    k, s = self._observe(kp)
                    kps.append(k)
                    scores.append(s)
        else:
            for b in np.asarray(boxes, np.float64):
                best = max(truth.values(), key=lambda kp: _iou(b, box_of(kp)), default=None)
                if best is None or _iou(b, box_of(best)) < 0.3:
                    kps.append(self.rng.uniform(b[:2], b[2:], (17, 2)))
                    scores.append(np.full(17, 0.05))
                else:
                    k, s = self._observe(best)
                    kps.append(k)
                    scores.append(s)
        kp = np.array(kps, np.float32).reshape(-1, 17, 2)
        sc = np.array(scores, np.float32).reshape(-1, 17)
        return PoseResult(kp, sc, COCO17, boxes=None if boxes is None else np.asarray(boxes))


def identify(scene, f, result, max_px=25.0):
    """GT name -> track id of each output pose (the nearest person by mean
    keypoint distance); every pose must be someone, and no one twice."""
    truth = scene.truth(f)
    out = {}
    for i in range(len(result)):
        ok = (result.scores[i] > 0.3) & np.isfinite(result.keypoints[i]).all(axis=1)
        dist = {name: float(np.linalg.norm(result.keypoints[i][ok] - kp[ok], axis=1).mean())
                for name, kp in truth.items() if ok.any()}
        name = min(dist, key=dist.get, default=None)
        assert name is not None and dist[name] < max_px, f"frame {f}: pose {i} is nobody"
        assert name not in out, f"frame {f}: two poses on {name}"
        out[name] = int(result.track_ids[i])
    return out


def run(tracker, scene, frames, fps=30.0):
    history = []
    for f in range(frames):
        result = tracker(scene.frame(f), timestamp_ms=f * 1000.0 / fps)
        assert result.track_ids is not None and result.track_ids.dtype == np.int64
        history.append(identify(scene, f, result))
    return history


def id_switches(history):
    last, switches = {}, 0
    for frame in history:
        for name, tid in frame.items():
            if name in last and last[name] != tid:
                switches += 1
            last[name] = tid
    return switches


def ids_of(history, name):
    ids = []
    for frame in history:
        if name in frame and (not ids or ids[-1] != frame[name]):
            ids.append(frame[name])
    return ids


def check_no_shared_ids(history):
    owner = {}
    for frame in history:
        for name, tid in frame.items():
            assert owner.setdefault(tid, name) == name, f"id {tid} on {owner[tid]} and {name}"


def crossing(dy):
    # Two people walking towards each other at 7 px/frame (210 px/s); with
    # dy = 0 one passes exactly in front of the other.
    return {"a": lambda f: (100 + 7 * f, 220), "b": lambda f: (540 - 7 * f, 220 + dy)}


def leave_and_return(gap_frames):
    def path(f):
        if f < 24:
            return (480 + 8 * f, 240)              # walks out on the right at 240 px/s
        if f < 24 + gap_frames:
            return None                            # away
        return (672 - 8 * (f - 24 - gap_frames), 240)   # and back in
    return path


# --- a real clip ----------------------------------------------------------------------------------

def panning_clip(shared_dir: Path, frames: int = 40):
    """Crops 480 x 360 of a COCO image with five people, panning 160 px right
    and 30 px down: people leave on the left and enter on the right. Returns
    the frames, each frame's offset and the ground-truth boxes (full image)."""
    import cv2

    image = cv2.imread(str(shared_dir / "data" / "coco" / "000000196141.jpg"))
    data = json.loads((shared_dir / "data" / "coco" / "test_coco.json").read_text())
    gt = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                    a["bbox"][1] + a["bbox"][3]]
                   for a in data["annotations"] if a["image_id"] == 196141])
    offsets = [(round(160 * f / (frames - 1)), round(30 + 30 * f / (frames - 1)))
               for f in range(frames)]
    clip = [np.ascontiguousarray(image[y:y + 360, x:x + 480]) for x, y in offsets]
    return clip, offsets, gt


def person_of(box, offset, gt):
    """The ground-truth person whose box holds the centre of ``box``."""
    x, y = offset
    cx, cy = (box[0] + box[2]) / 2 + x, (box[1] + box[3]) / 2 + y
    hits = [j for j, g in enumerate(gt) if g[0] <= cx <= g[2] and g[1] <= cy <= g[3]]
    return hits[0] if len(hits) == 1 else None



def write_video(path, frames, fps=30.0):
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    for frame in frames:
        writer.write(frame)
    writer.release()
