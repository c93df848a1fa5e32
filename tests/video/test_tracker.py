"""PoseTracker.

The tracker is driven through its callable interfaces by synthetic scenes
with known trajectories (tests.video.scenes: a fake detector and a fake
top-down pose model that "sees" the people a box covers), so identity is
known exactly: people crossing, leaving and coming back within and beyond
the re-identification window, detector misses, detection every n frames
with box propagation. Its smoothing is pinned to the One-Euro filter
applied by hand. A panning clip cut from a real COCO image runs end to end
with the real MoveNet and YOLOX-nano models.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgepose.detectors import Detections
from edgepose.keypoints import COCO17, KeypointSet
from edgepose.results import PoseResult
from edgepose.video import OneEuroFilter, OneEuroParams, PoseTracker
from tests.video.scenes import (FakeDetector, FakePose, Scene, check_no_shared_ids,
                                leave_and_return, crossing, id_switches, identify, ids_of,
                                panning_clip,
                                person_of, run)

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


@pytest.mark.parametrize("detect_every", [1, 4])
@pytest.mark.parametrize("gap_frames, same_id", [(10, True), (45, False)])
def test_leaving_and_returning_within_and_beyond_the_reid_window(detect_every, gap_frames,
                                                                 same_id):
    # Away 10 frames (0.33 s, within the 1 s window): the same id. Away 45
    # frames (1.5 s): forgotten, a new id; ids are never reused.
    scene = Scene({"a": lambda f: (150 + 2 * f, 250), "c": leave_and_return(gap_frames)})
    tracker = PoseTracker(FakePose(scene), FakeDetector(scene), detect_every=detect_every,
                          reid_window_s=1.0)
    history = run(tracker, scene, 24 + gap_frames + 25)
    assert ids_of(history, "a") == [0]
    assert ids_of(history, "c") == ([1] if same_id else [1, 2])
    away = [f for f, h in enumerate(history) if "c" not in h]
    assert away[0] <= 24 and away[-1] >= 24 + gap_frames - 1
    check_no_shared_ids(history)


def test_ids_are_per_tracker_and_not_contiguous():
    # "c" leaves for longer than the window and comes back as id 2: the ids
    # in use are then 0 and 2. A tracker made afterwards starts from 0 (no
    # global counter), and reset() starts again from 0.
    scene = Scene({"a": lambda f: (150, 240), "c": leave_and_return(45)})
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
        assert set(result.timings_ms) == {"detect", "pose", "track", "total"}
        assert (result.timings_ms["detect"] > 0) == (f % 4 == 0)
        assert result.timings_ms["total"] >= result.timings_ms["pose"] > 0
    assert flags == [f % 4 == 0 for f in range(12)]
    assert detector.calls == 3 and pose.calls == 12
    with pytest.warns(DeprecationWarning, match="PoseTracker.last_timings is deprecated"):
        assert tracker.last_timings == dict(result.timings_ms)


def test_the_detector_runs_whenever_no_track_is_active():
    scene = Scene({"a": lambda f: (150, 240) if f >= 3 else None})
    detector = FakeDetector(scene)
    tracker = PoseTracker(FakePose(scene), detector, detect_every=10)
    counts = [len(tracker(scene.frame(f))) for f in range(6)]
    assert counts == [0, 0, 0, 1, 1, 1]
    assert detector.calls == 4     # frames 0-3; then the track is propagated


def test_results_are_ordered_by_track_id_whatever_the_order_of_the_boxes():
    # The detector lists the people in reverse order on odd frames: each
    # output row keeps its pose, box and score together, rows sorted by id.
    scene = Scene({"a": lambda f: (150 + 3 * f, 240), "b": lambda f: (450 - 3 * f, 240)})

    class ReversingDetector(FakeDetector):
        def __call__(self, image):
            d = super().__call__(image)
            if self.scene.index(image) % 2:
                return Detections(d.boxes[::-1].copy(), d.scores[::-1].copy())
            return d

    tracker = PoseTracker(FakePose(scene), ReversingDetector(scene))
    history = run(tracker, scene, 12)        # run() checks each row is someone's pose
    assert history == [{"a": 0, "b": 1}] * 12
    result = tracker(scene.frame(13), 13 * 1000 / 30)
    assert result.track_ids.tolist() == [0, 1]
    assert result.boxes[0, 0] < result.boxes[1, 0]      # "a" is on the left


def test_duplicate_poses_of_one_person_are_one_track():
    # The detector finds everyone twice (boxes 3 px apart): the two poses of
    # a person overlap (OKS above duplicate_oks), one is kept.
    scene = Scene({"a": lambda f: (200 + 2 * f, 240), "b": lambda f: (450, 240)})

    class TwiceDetector(FakeDetector):
        def __call__(self, image):
            boxes = super().__call__(image).boxes
            boxes = np.concatenate([boxes, boxes + 3])
            return Detections(boxes, np.full(len(boxes), 0.9, np.float32))

    tracker = PoseTracker(FakePose(scene), TwiceDetector(scene))
    assert [tracker(scene.frame(f)).track_ids.tolist() for f in range(6)] == [[0, 1]] * 6
    keep_all = PoseTracker(FakePose(scene), TwiceDetector(scene), duplicate_oks=1.0)
    assert len(keep_all(scene.frame(0))) == 4


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


@pytest.mark.parametrize("params", [OneEuroParams(), OneEuroParams(0.5, 0.2, 2.0)])
def test_smoothing_is_the_one_euro_filter_applied_to_each_track(params):
    # The same scene tracked raw and smoothed: the smoothed keypoints are the
    # raw track's keypoints through one OneEuroFilter per track, applied by
    # hand, in seconds of the timestamps (irregular: frames dropped), its
    # unconfident keypoints passed through, restarted whenever the track is
    # missing from a frame. "a" leaves for 4 frames (re-identified, filter
    # restarted); "b" walks in from the left edge (keypoints out of view).
    paths = {"a": lambda f: (300 + 5 * f, 240) if not 20 <= f < 24 else None,
             "b": lambda f: (-20 + 3 * f, 380)}
    times_ms = [f * 1000 / 30 + 33 * (f // 10) for f in range(40)]

    def track(smoothing):
        scene = Scene(paths)
        tracker = PoseTracker(FakePose(scene, noise_px=2.0, seed=9), FakeDetector(scene),
                              detect_every=3, smoothing=smoothing)
        return [tracker(scene.frame(f), t) for f, t in enumerate(times_ms)]

    raw, smooth = track(None), track(params)
    filters: dict[int, OneEuroFilter] = {}
    restarts = moved = passed_through = 0
    for r, s, t_ms in zip(raw, smooth, times_ms):
        # smoothing changes no identity, box or score
        np.testing.assert_array_equal(r.track_ids, s.track_ids)
        np.testing.assert_array_equal(r.boxes, s.boxes)
        np.testing.assert_array_equal(r.scores, s.scores)
        ids = r.track_ids.tolist()
        for lost in set(filters) - set(ids):
            del filters[lost]
            restarts += 1
        for i, tid in enumerate(ids):
            valid = r.scores[i].astype(np.float64) > 0.3
            want = filters.setdefault(tid, OneEuroFilter(params))(
                r.keypoints[i].astype(np.float64), t_ms / 1000.0, valid=valid)
            np.testing.assert_array_equal(s.keypoints[i], want.astype(np.float32))
            moved += int((s.keypoints[i] != r.keypoints[i]).any())
            passed_through += int((~valid).any())
    assert restarts >= 1 and ids == [0, 1]      # "a" kept its id through the gap
    assert moved > 50 and passed_through > 5


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

    # A callable that does not declare its keypoint set: the first frame with poses says so.
    tracker = PoseTracker(pose, FakeDetector(scene), metric="oks")
    with pytest.raises(ValueError, match="metric='oks' needs OKS sigmas, and keypoint set "
                                         "'nosig17' defines none: pass sigmas="):
        tracker(scene.frame(0))
    # One that declares it: the constructor says so.
    pose.keypoint_set = nosig
    with pytest.raises(ValueError, match="metric='oks' needs OKS sigmas, and keypoint set "
                                         "'nosig17' defines none"):
        PoseTracker(pose, FakeDetector(scene), metric="oks")
    with pytest.raises(ValueError, match=r"sigmas must have shape \(17,\), one per keypoint of "
                                         r"'nosig17', got \(3,\)"):
        PoseTracker(pose, FakeDetector(scene), sigmas=[0.1, 0.1, 0.1])
    del pose.keypoint_set
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

    with pytest.raises(ValueError, match=r"\(bottom-up or one-stage\) finds every person itself"):
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



def test_runtime_options_reach_both_models(shared_dir):
    """PoseTracker forwards the whole RuntimeOptions: both models really run
    on OpenVINO; detector_runtime puts the detector elsewhere."""
    from edgepose.runtime import RuntimeOptions

    clip = panning_clip(shared_dir)[0][:3]
    models = shared_dir / "models"
    pose = models / "movenet" / "onnx_converted" / "movenet_singlepose_lightning_int8_4.onnx"
    yolox = models / "detectors" / "yolox_yolox_nano_416x416.onnx"
    ov = RuntimeOptions(backend="openvino", threads=1)
    with PoseTracker(pose, yolox, runtime=ov) as tracker:
        assert tracker._pose.runtime is ov
        assert type(tracker._pose._pose.backend).__name__ == "OpenVINOBackend"
        assert type(tracker._detector._backend).__name__ == "OpenVINOBackend"
        counts = [len(tracker(frame)) for frame in clip]
    assert min(counts) >= 3
    with PoseTracker(pose, yolox, runtime=ov, detector_runtime=RuntimeOptions(threads=1)) as tracker:
        assert type(tracker._pose._pose.backend).__name__ == "OpenVINOBackend"
        assert type(tracker._detector._backend).__name__ == "OnnxRuntimeBackend"
    with pytest.raises(ValueError, match=r"not both: got runtime= and threads="):
        PoseTracker(pose, yolox, runtime=ov, threads=2)
    scene = Scene(crossing(0))
    with pytest.raises(ValueError, match="detector_runtime applies to a detector built from a file"):
        PoseTracker(FakePose(scene), FakeDetector(scene), detector_runtime=ov)


# --- keypoints not found (NaN) ------------------------------------------------------------------

class _Dropping:
    """FakePose with random keypoints not found (NaN coordinates, the score
    ``score``), recording what it returned for each box."""

    keypoint_set = COCO17

    def __init__(self, pose, score, p=0.3, seed=3):
        self.pose, self.score, self.p = pose, score, p
        self.rng = np.random.default_rng(seed)
        self.given: list[PoseResult] = []

    def __call__(self, image, boxes=None):
        r = self.pose(image, boxes=boxes)
        kp, sc = r.keypoints.copy(), r.scores.copy()
        drop = self.rng.uniform(size=sc.shape) < self.p
        drop[:, 0] = True                                   # the nose is never found
        kp[drop] = np.nan
        sc[drop] = self.score
        out = PoseResult(kp, sc, COCO17, boxes=r.boxes)
        self.given.append(out)
        return out


@pytest.mark.parametrize("smoothing", [None, OneEuroParams()])
@pytest.mark.parametrize("score", [0.0, np.nan, 0.95])   # 0.95: NaN even when "confident"
def test_keypoints_not_found_stay_nan_and_leak_nowhere(smoothing, score):
    scene = Scene(crossing(20))
    pose = _Dropping(FakePose(scene, noise_px=1.0), score)
    tracker = PoseTracker(pose, FakeDetector(scene), smoothing=smoothing, metric="oks")
    history, came_back = [], 0
    last_nan: dict[int, np.ndarray] = {}
    for f in range(48):
        result = tracker(scene.frame(f), f * 1000 / 30)
        given = pose.given[-1]
        assert result.boxes is not None and np.isfinite(result.boxes).all()
        for i in range(len(result)):
            # the row the pose model gave for this crop box
            j = int(np.flatnonzero((given.boxes == result.boxes[i]).all(axis=1))[0])
            nan_in = np.isnan(given.keypoints[j]).any(axis=1)
            np.testing.assert_array_equal(np.isnan(result.keypoints[i]).any(axis=1), nan_in)
            assert np.isfinite(result.keypoints[i][~nan_in]).all()
            tid = int(result.track_ids[i])
            back = last_nan.get(tid, np.zeros(17, bool)) & ~nan_in
            if smoothing is not None and back.any():
                # a keypoint coming back restarts its filter: passed through as given
                np.testing.assert_array_equal(result.keypoints[i][back], given.keypoints[j][back])
                came_back += int(back.sum())
            last_nan[tid] = nan_in
        history.append(identify(scene, f, result))
    assert id_switches(history) == 0
    assert ids_of(history, "a") == [0] and ids_of(history, "b") == [1]
    assert sum(len(h) for h in history) >= 2 * 48 - 4
    assert smoothing is None or came_back > 50
