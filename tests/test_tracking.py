"""PoseTracker and the assignment solver.

The solver is checked against ``scipy.optimize.linear_sum_assignment`` (SciPy
is a test-only dependency) and brute force. The tracker is driven through its
callable interfaces by synthetic scenes with known trajectories (a fake
detector and a fake top-down pose model that "sees" the people a box covers),
so identity is known exactly: people crossing, leaving and coming back within
and beyond the re-identification window, detector misses, detection every n
frames with box propagation. A panning clip cut from a real COCO image runs
end to end with the real MoveNet and YOLOX-nano models.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from edgepose.detectors import Detections
from edgepose.keypoints import COCO17, KeypointSet
from edgepose.results import PoseResult
from edgepose.smoothing import OneEuroParams
from edgepose.tracking import PoseTracker, match_by_cost, solve_assignment

# --- the assignment solver ------------------------------------------------------------------

SHAPES = [(0, 0), (0, 3), (3, 0), (1, 1), (1, 6), (6, 1), (5, 5), (4, 7), (7, 4), (12, 12),
          (20, 31), (31, 20)]


def _total(cost, rows, cols):
    return float(np.asarray(cost, dtype=np.float64)[rows, cols].sum())


@pytest.mark.parametrize("shape", SHAPES)
def test_solve_assignment_equals_scipy_on_random_matrices(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(20):
        cost = rng.uniform(-5, 10, shape)
        rows, cols = solve_assignment(cost)
        ref_rows, ref_cols = linear_sum_assignment(cost)
        # Continuous costs: the optimum is unique, so the pairs are identical.
        np.testing.assert_array_equal(rows, ref_rows)
        np.testing.assert_array_equal(cols, ref_cols)
        assert rows.dtype == np.intp and cols.dtype == np.intp


@pytest.mark.parametrize("shape", SHAPES)
def test_solve_assignment_with_forbidden_pairs_equals_scipy(shape):
    rng = np.random.default_rng(100 + sum(shape))
    feasible = infeasible = 0
    for _ in range(40):
        cost = rng.uniform(0, 1, shape)
        cost[rng.uniform(size=shape) < 0.4] = np.inf
        try:
            ref_rows, ref_cols = linear_sum_assignment(cost)
        except ValueError:
            infeasible += 1
            with pytest.raises(ValueError, match="cost matrix is infeasible"):
                solve_assignment(cost)
            continue
        feasible += 1
        rows, cols = solve_assignment(cost)
        np.testing.assert_array_equal(rows, ref_rows)
        np.testing.assert_array_equal(cols, ref_cols)
    assert feasible > 0


@pytest.mark.parametrize("shape", [(6, 6), (5, 9), (9, 5)])
def test_solve_assignment_with_ties_reaches_scipys_optimum(shape):
    rng = np.random.default_rng(7)
    for _ in range(50):
        cost = rng.integers(0, 3, shape)            # many ties: compare totals
        rows, cols = solve_assignment(cost)
        ref = linear_sum_assignment(cost)
        assert _total(cost, rows, cols) == _total(cost, *ref)
        assert len(set(rows)) == len(rows) == len(set(cols)) == min(shape)


def test_solve_assignment_maximize_and_inputs_untouched():
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, (9, 14))
    view = base[::2, ::3]                                # non-contiguous
    view.setflags(write=False)
    before = view.copy()
    rows, cols = solve_assignment(view, maximize=True)
    ref = linear_sum_assignment(view, maximize=True)
    np.testing.assert_array_equal(cols, ref[1])
    np.testing.assert_array_equal(view, before)
    bools = rng.uniform(size=(4, 4)) > 0.5
    assert _total(bools, *solve_assignment(bools)) == _total(bools, *linear_sum_assignment(bools))


@pytest.mark.parametrize("cost, error, message", [
    (np.array([[np.nan, 1.0]]), ValueError, "must not contain NaN or -inf"),
    (np.array([[-np.inf, 1.0]]), ValueError, "must not contain NaN or -inf"),
    (np.zeros(3), ValueError, r"cost must be a 2-D matrix \(rows, columns\), got shape \(3,\)"),
    (np.array([["a"]]), TypeError, "cost must be a numeric matrix"),
])
def test_solve_assignment_rejects_bad_input(cost, error, message):
    with pytest.raises(error, match=message):
        solve_assignment(cost)


def _brute_partial(cost, limit):
    n, m = cost.shape
    best = np.inf
    for k in range(min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                c = cost[list(rows), list(cols)]
                if (c > limit).any():
                    continue
                best = min(best, c.sum() + limit / 2 * (n + m - 2 * k))
    return best


def test_match_by_cost_is_the_best_partial_matching():
    rng = np.random.default_rng(11)
    for trial in range(150):
        n, m = rng.integers(0, 5, 2)
        cost = rng.uniform(0, 1, (n, m))
        if trial % 2:
            cost[rng.uniform(size=(n, m)) < 0.3] = np.inf
        limit = float(rng.uniform(0.05, 1.0))
        rows, cols = match_by_cost(cost, limit)
        assert (cost[rows, cols] <= limit).all()
        assert len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
        got = _total(cost, rows, cols) + limit / 2 * (n + m - 2 * len(rows))
        assert got == pytest.approx(_brute_partial(cost, limit), abs=1e-12)


def test_match_by_cost_against_scipy_on_larger_matrices():
    # The same "cost limit" extension solved by SciPy.
    rng = np.random.default_rng(12)
    for shape in [(15, 22), (22, 15), (30, 30)]:
        cost = rng.uniform(0, 1, shape)
        limit = 0.3
        n, m = shape
        big = np.full((n + m, m + n), 1e9)
        big[:n, :m] = np.where(cost <= limit, cost, 1e9)
        big[np.arange(n), m + np.arange(n)] = limit / 2
        big[n + np.arange(m), np.arange(m)] = limit / 2
        big[n:, m:] = 0
        r, c = linear_sum_assignment(big)
        keep = (r < n) & (c < m)
        rows, cols = match_by_cost(cost, limit)
        np.testing.assert_array_equal(rows, r[keep])
        np.testing.assert_array_equal(cols, c[keep])


def test_match_by_cost_needs_a_finite_limit():
    with pytest.raises(ValueError, match="max_cost must be finite"):
        match_by_cost(np.zeros((2, 2)), np.inf)
    rows, cols = match_by_cost(np.zeros((0, 4)), 1.0)
    assert rows.shape == cols.shape == (0,)


# --- synthetic scenes --------------------------------------------------------------------------

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
    (IoU >= 0.3) with Gaussian noise, keypoints out of view scoring 0; a
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
        return np.where(ok[:, None], noisy, -1.0), np.where(ok, 0.9, 0.0)

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
        ok = result.scores[i] > 0.3
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


def _check_no_shared_ids(history):
    owner = {}
    for frame in history:
        for name, tid in frame.items():
            assert owner.setdefault(tid, name) == name, f"id {tid} on {owner[tid]} and {name}"


def crossing(dy):
    # Two people walking towards each other at 7 px/frame (210 px/s); with
    # dy = 0 one passes exactly in front of the other.
    return {"a": lambda f: (100 + 7 * f, 220), "b": lambda f: (540 - 7 * f, 220 + dy)}


# --- tracking: identity -----------------------------------------------------------------------

@pytest.mark.parametrize("metric", ["oks", "iou"])
@pytest.mark.parametrize("detect_every", [1, 5])
@pytest.mark.parametrize("dy", [0, 20])
def test_people_crossing_keep_their_ids(metric, detect_every, dy):
    scene = Scene(crossing(dy))
    detector = FakeDetector(scene)
    tracker = PoseTracker(FakePose(scene, noise_px=1.5), detector, detect_every=detect_every,
                          metric=metric)
    history = run(tracker, scene, 64)
    assert id_switches(history) == 0
    assert ids_of(history, "a") == [0] and ids_of(history, "b") == [1]
    # Both are seen in every frame but at most the few where one hides the other.
    assert sum(len(h) for h in history) >= 2 * 64 - 4
    assert detector.calls == -(-64 // detect_every)


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("detect_every", [1, 3])
def test_detector_misses_every_k_frames_are_bridged(k, detect_every):
    # The detector misses everyone on every k-th frame: the propagated boxes
    # carry the people through, so they are seen in every frame, same ids.
    scene = Scene(crossing(15))
    detector = FakeDetector(scene, miss=lambda f, name: f % k == 1)
    tracker = PoseTracker(FakePose(scene), detector, detect_every=detect_every)
    history = run(tracker, scene, 64)
    assert id_switches(history) == 0
    assert all(set(h) == {"a", "b"} for h in history)


def test_a_person_the_detector_never_sees_again_is_dropped_after_max_misses():
    # "b" stays in view but the detector stops finding them from frame 10:
    # bridged for max_detector_misses detection frames, then no longer
    # propagated (a detection must confirm a track now and then).
    scene = Scene({"a": lambda f: (150, 240), "b": lambda f: (450, 240)})
    detector = FakeDetector(scene, miss=lambda f, name: name == "b" and f >= 10)
    tracker = PoseTracker(FakePose(scene), detector, detect_every=2, max_detector_misses=2)
    history = run(tracker, scene, 30)
    seen_b = [f for f, h in enumerate(history) if "b" in h]
    assert seen_b == list(range(14))
    assert ids_of(history, "a") == [0]


def _leave_and_return(gap_frames):
    def path(f):
        if f < 24:
            return (480 + 8 * f, 240)              # walks out on the right at 240 px/s
        if f < 24 + gap_frames:
            return None                            # away
        return (672 - 8 * (f - 24 - gap_frames), 240)   # and back in
    return path


@pytest.mark.parametrize("detect_every", [1, 4])
@pytest.mark.parametrize("gap_frames, same_id", [(10, True), (45, False)])
def test_leaving_and_returning_within_and_beyond_the_reid_window(detect_every, gap_frames,
                                                                 same_id):
    # Away 10 frames (0.33 s, within the 1 s window): the same id. Away 45
    # frames (1.5 s): forgotten, a new id; ids are never reused.
    scene = Scene({"a": lambda f: (150 + 2 * f, 250), "c": _leave_and_return(gap_frames)})
    tracker = PoseTracker(FakePose(scene), FakeDetector(scene), detect_every=detect_every,
                          reid_window_s=1.0)
    history = run(tracker, scene, 24 + gap_frames + 25)
    assert ids_of(history, "a") == [0]
    assert ids_of(history, "c") == ([1] if same_id else [1, 2])
    away = [f for f, h in enumerate(history) if "c" not in h]
    assert away[0] <= 24 and away[-1] >= 24 + gap_frames - 1
    _check_no_shared_ids(history)


def test_ids_are_per_tracker_and_not_contiguous():
    # "c" leaves for longer than the window and comes back as id 2: the ids
    # in use are then 0 and 2. A tracker made afterwards starts from 0 (no
    # global counter), and reset() starts again from 0.
    scene = Scene({"a": lambda f: (150, 240), "c": _leave_and_return(45)})
    first = PoseTracker(FakePose(scene), FakeDetector(scene))
    history = run(first, scene, 94)
    assert history[0] == {"a": 0, "c": 1} and history[-1] == {"a": 0, "c": 2}
    second = PoseTracker(FakePose(scene), FakeDetector(scene))
    assert run(second, scene, 1)[0] == {"a": 0, "c": 1}
    first.reset()
    assert first(scene.frame(0), 0.0).track_ids.tolist() == [0, 1]
    assert first.track_ids == (0, 1)


def test_a_vanishing_person_is_not_propagated_as_a_ghost():
    # "b" disappears in the middle of the frame between detections: the
    # propagated box then holds nobody, the pose collapses and is dropped.
    scene = Scene({"a": lambda f: (150, 240), "b": lambda f: (450, 240) if f < 7 else None})
    pose = FakePose(scene)
    tracker = PoseTracker(pose, FakeDetector(scene), detect_every=10)
    history = run(tracker, scene, 20)
    assert [("b" in h) for h in history] == [f < 7 for f in range(20)]
    assert len(tracker(scene.frame(20), 20 * 1000 / 30)) == 1


def test_without_a_detector_the_pose_model_finds_people_itself():
    scene = Scene(crossing(20))
    pose = FakePose(scene)
    tracker = PoseTracker(pose, None, detect_every=1)
    history = run(tracker, scene, 64)
    assert id_switches(history) == 0 and ids_of(history, "a") == [0]


def test_detect_every_propagates_between_detections():
    scene = Scene(crossing(20))
    detector, pose = FakeDetector(scene), FakePose(scene)
    tracker = PoseTracker(pose, detector, detect_every=4)
    flags = []
    for f in range(12):
        result = tracker(scene.frame(f))
        flags.append(tracker.last_detected)
        assert len(result) == 2 and result.boxes.shape == (2, 4)
    assert flags == [f % 4 == 0 for f in range(12)]
    assert detector.calls == 3 and pose.calls == 12
    assert set(tracker.last_timings) == {"detect", "pose", "track", "total"}


def test_the_detector_runs_whenever_no_track_is_active():
    scene = Scene({"a": lambda f: (150, 240) if f >= 3 else None})
    detector = FakeDetector(scene)
    tracker = PoseTracker(FakePose(scene), detector, detect_every=10)
    counts = [len(tracker(scene.frame(f))) for f in range(6)]
    assert counts == [0, 0, 0, 1, 1, 1]
    assert detector.calls == 4     # frames 0-3; then the track is propagated


# --- tracking: smoothing -------------------------------------------------------------------------

def test_smoothing_lowers_the_error_against_ground_truth():
    # A person swaying slowly (30 px at 0.25 Hz), keypoints seen with 3 px
    # noise: the smoothed track is closer to the truth.
    path = {"a": lambda f: (320 + 30 * np.sin(2 * np.pi * 0.25 * f / 30), 240)}

    def rmse(smoothing):
        scene = Scene(path)
        tracker = PoseTracker(FakePose(scene, noise_px=3.0, seed=5), FakeDetector(scene),
                              smoothing=smoothing)
        errors = []
        for f in range(240):
            result = tracker(scene.frame(f), f * 1000 / 30)
            errors.append(result.keypoints[0] - scene.truth(f)["a"])
        e = np.array(errors[30:])
        return float(np.sqrt((e ** 2).sum(axis=-1).mean()))

    raw, smooth = rmse(None), rmse(OneEuroParams())
    assert raw == pytest.approx(4.24, abs=0.2)
    assert smooth < 0.7 * raw


def test_smoothing_restarts_when_a_track_is_lost():
    scene = Scene({"a": lambda f: (300 + 5 * f, 240) if not 10 <= f < 13 else None})
    pose = FakePose(scene, noise_px=0.0)
    tracker = PoseTracker(pose, FakeDetector(scene), smoothing=OneEuroParams())
    for f in range(16):
        result = tracker(scene.frame(f), f * 1000 / 30)
        truth = scene.truth(f).get("a")
        if truth is None:
            assert len(result) == 0
            continue
        assert result.track_ids.tolist() == [0]
        error = np.abs(result.keypoints[0] - truth).max()
        if f in (0, 13):    # first sample of the track, and first after the gap: raw
            assert error < 1e-3
        elif f > 3:          # otherwise lagging behind the motion
            assert error > 0.5


def test_smoothing_is_off_by_default():
    scene = Scene({"a": lambda f: (300 + 5 * f, 240)})
    tracker = PoseTracker(FakePose(scene, noise_px=0.0), FakeDetector(scene))
    for f in range(5):
        result = tracker(scene.frame(f))
        np.testing.assert_allclose(result.keypoints[0], scene.truth(f)["a"], atol=1e-3)


# --- the interface ----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, message", [
    ({"detect_every": 0}, ValueError, "detect_every must be an int >= 1, got 0"),
    ({"metric": "l2"}, ValueError, r"metric must be one of \('auto', 'oks', 'iou'\)"),
    ({"match_threshold": 1.5}, ValueError, r"match_threshold must be in \[0, 1\]"),
    ({"reid_window_s": -1}, ValueError, "reid_window_s must be a non-negative finite number"),
    ({"fps": 0}, ValueError, "fps must be a positive finite number"),
    ({"min_keypoints": 1}, ValueError, "min_keypoints must be an int >= 2"),
    ({"smoothing": {"beta": 1}}, TypeError, "smoothing must be None or a OneEuroParams"),
    ({"sigmas": [0.1, -1]}, ValueError, "sigmas must be a"),
])
def test_options_are_checked_at_construction(kwargs, error, message):
    scene = Scene({})
    with pytest.raises(error, match=message):
        PoseTracker(FakePose(scene), FakeDetector(scene), **kwargs)


def test_model_and_detector_must_be_usable():
    with pytest.raises(TypeError, match="model must be a model file or name, or a callable"):
        PoseTracker(42)
    with pytest.raises(TypeError, match="detector must be a detector file or name, a callable"):
        PoseTracker(FakePose(Scene({})), 3.5)
    with pytest.raises(FileNotFoundError):
        PoseTracker("/nonexistent/model.onnx")


def test_timestamps_must_increase_and_default_to_fps():
    scene = Scene({"a": lambda f: (150 + 3 * f, 240)})
    tracker = PoseTracker(FakePose(scene), FakeDetector(scene), fps=25.0)
    tracker(scene.frame(0), 100.0)
    with pytest.raises(ValueError, match="timestamp_ms must increase from frame to frame: got "
                                         "100.0 after 100"):
        tracker(scene.frame(1), 100.0)
    tracker(scene.frame(1))                   # 100 + 40 ms
    with pytest.raises(ValueError, match="got 139.0 after 140"):
        tracker(scene.frame(2), 139.0)


def test_a_pose_callable_must_return_one_pose_per_box():
    scene = Scene({"a": lambda f: (150, 240)})

    def pose(image, boxes=None):
        return PoseResult.empty(COCO17)

    tracker = PoseTracker(pose, FakeDetector(scene))
    with pytest.raises(ValueError, match=r"returned 0 poses for 1 boxes"):
        tracker(scene.frame(0))


def test_oks_needs_sigmas_and_iou_does_not():
    nosig = KeypointSet("nosig17", COCO17.names, COCO17.skeleton, COCO17.flip_pairs)
    scene = Scene(crossing(20))
    inner = FakePose(scene)

    def pose(image, boxes=None):
        r = inner(image, boxes)
        return PoseResult(r.keypoints, r.scores, nosig, boxes=r.boxes)

    tracker = PoseTracker(pose, FakeDetector(scene), metric="oks")
    tracker(scene.frame(0))
    with pytest.raises(ValueError, match="metric='oks' needs OKS sigmas, and keypoint set "
                                         "'nosig17' defines none"):
        tracker(scene.frame(1))
    ok = PoseTracker(pose, FakeDetector(scene), metric="iou")
    assert [ok(scene.frame(f)).track_ids.tolist() for f in range(3)] == [[0, 1]] * 3
    # the default, "auto", falls back to IoU without sigmas: the same tracks as "iou"
    def nosig_pose():
        fake = FakePose(scene)

        def pose(image, boxes=None):
            r = fake(image, boxes)
            return PoseResult(r.keypoints, r.scores, nosig, boxes=r.boxes)
        return pose

    auto = PoseTracker(nosig_pose(), FakeDetector(scene))
    iou = PoseTracker(nosig_pose(), FakeDetector(scene), metric="iou")
    for f in range(40):
        a, b = auto(scene.frame(f)), iou(scene.frame(f))
        np.testing.assert_array_equal(a.track_ids, b.track_ids)
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
    given = PoseTracker(pose, FakeDetector(scene), sigmas=COCO17.sigmas)
    assert [given(scene.frame(f)).track_ids.tolist() for f in range(3)] == [[0, 1]] * 3


def test_empty_frames_give_empty_results_with_track_ids():
    scene = Scene({})
    tracker = PoseTracker(FakePose(scene), FakeDetector(scene))
    result = tracker(scene.frame(0))
    assert len(result) == 0 and result.track_ids.shape == (0,) and result.boxes.shape == (0, 4)
    with pytest.raises(TypeError, match="image must be a NumPy array"):
        tracker([[0]])


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


def test_real_panning_clip_keeps_ids(shared_dir):
    clip, offsets, gt = panning_clip(shared_dir)
    models = shared_dir / "models"
    with PoseTracker(models / "movenet" / "movenet_singlepose_lightning_int8_4.tflite",
                     models / "detectors" / "yolox_yolox_nano_416x416.onnx",
                     detect_every=3, smoothing=OneEuroParams()) as tracker:
        ids_per_person: dict[int, set[int]] = {}
        people_per_id: dict[int, set[int]] = {}
        seen = np.zeros((len(clip), len(gt)), bool)
        for f, frame in enumerate(clip):
            result = tracker(frame, timestamp_ms=f * 1000 / 30)
            assert result.track_ids is not None and len(set(result.track_ids)) == len(result)
            for box, tid in zip(result.boxes, result.track_ids.tolist()):
                who = person_of(box, offsets[f], gt)
                if who is None:   # someone not annotated, e.g. a spectator at the edge
                    continue
                seen[f, who] = True
                ids_per_person.setdefault(who, set()).add(tid)
                people_per_id.setdefault(tid, set()).add(who)
    # Every person keeps one id across the pan, and no id moves to someone else.
    assert all(len(ids) == 1 for ids in ids_per_person.values()), ids_per_person
    assert all(len(who) == 1 for who in people_per_id.values()), people_per_id
    # The batter (annotation 0) is in view, and tracked, in every frame; the
    # player on the left leaves, the catcher and the man on the right enter.
    assert seen[:, 0].all()
    assert seen[0, 4] and not seen[-1, 4]
    assert seen[-1, 3] and seen[-1, 1] and not seen[0, 3]


def test_detections_can_be_given_and_bottom_up_models_refuse_them():
    scene = Scene(crossing(20))
    detector = FakeDetector(scene)
    tracker = PoseTracker(FakePose(scene), None, detect_every=100)
    result = tracker(scene.frame(0), detections=detector(scene.frame(0)))
    assert tracker.last_detected and result.track_ids.tolist() == [0, 1]
    with pytest.raises(TypeError, match="detections must have boxes"):
        tracker(scene.frame(1), detections=[[0, 0, 10, 10]])

    class BottomUp(FakePose):
        card = type("Card", (), {"task": "bottomup"})()

    with pytest.raises(ValueError, match="A bottom-up pose model finds every person itself"):
        PoseTracker(BottomUp(scene), detector)
    bottom_up = PoseTracker(BottomUp(scene), None, detect_every=5)
    assert all(bottom_up.detection_due(f) for f in range(5))
    with pytest.raises(ValueError, match="detections= is not accepted"):
        bottom_up(scene.frame(0), detections=detector(scene.frame(0)))


def test_ready_estimator_and_detector_objects(shared_dir):
    from edgepose.detectors import PersonDetector
    from edgepose.estimator import Estimator

    clip = panning_clip(shared_dir)[0][:4]
    models = shared_dir / "models"
    with Estimator(models / "movenet" / "movenet_singlepose_lightning_int8_4.tflite") as est, \
            PersonDetector.from_file(models / "detectors" / "yolox_yolox_nano_416x416.onnx") as det:
        with PoseTracker(est, det, detect_every=2) as tracker:
            ids = [tracker(frame).track_ids.tolist() for frame in clip]
        # The tracker closes only what it built: the objects still work.
        assert len(est(clip[0], boxes=det(clip[0]).boxes)) >= 3
    assert ids[0] == ids[-1] and len(ids[0]) >= 3
