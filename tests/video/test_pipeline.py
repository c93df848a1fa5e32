"""Frame pipelining: the worker threads, their shutdown and errors, video
reading, and that pipelined tracking gives exactly the serial results (on
synthetic scenes and on a real video written from a ../shared image). No
timing is asserted: the speed-up is measured by measure_pipelining and
reported, not tested."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edgepose.video import (FRAME_STAGES, PipeliningReport, PoseTracker, TrackedFrame, latest,
                            measure_pipelining, prefetch, track_frames, video_frames)
from tests.video.scenes import (FakeDetector, FakePose, Scene, crossing, panning_clip, person_of,
                                write_video)


def _threads_settle(baseline: int, timeout_s: float = 5.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if threading.active_count() <= baseline:
            return True
        time.sleep(0.01)
    return False


# --- prefetch ---------------------------------------------------------------------------------

def test_prefetch_keeps_order_and_maps_on_the_worker():
    names = []

    def square(x):
        names.append(threading.current_thread().name)
        return x * x

    assert list(prefetch(range(50), square, size=2, name="worker-x")) == [x * x for x in range(50)]
    assert set(names) == {"worker-x"}


def test_prefetch_raises_the_workers_error_in_order():
    def items():
        yield 1
        yield 2
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for x in prefetch(items()):
            got.append(x)
    assert got == [1, 2]


def test_closing_stops_the_worker_and_closes_the_source():
    baseline = threading.active_count()
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    stream = prefetch(endless(), size=3)
    assert [next(stream) for _ in range(5)] == [0, 1, 2, 3, 4]
    stream.close()
    assert closed.is_set() and _threads_settle(baseline)


@pytest.mark.parametrize("size", [0, -1, 1.5, True])
def test_prefetch_size_is_checked(size):
    with pytest.raises(ValueError, match="size must be an int >= 1"):
        prefetch([1], size=size)


# --- latest -------------------------------------------------------------------------------------

def test_latest_drops_what_a_slow_consumer_misses_and_keeps_the_last():
    got = []
    for x in latest(range(2000)):
        got.append(x)
        time.sleep(0.002)
    assert got[-1] == 1999 and len(got) < 2000
    assert all(b > a for a, b in zip(got, got[1:]))


def test_latest_with_a_fast_consumer_gets_everything():
    taken = threading.Semaphore(0)

    def waits_for_the_consumer():
        for x in range(20):
            yield x
            assert taken.acquire(timeout=5.0)

    got = []
    for x in latest(waits_for_the_consumer()):
        got.append(x)
        taken.release()
    assert got == list(range(20))


def test_latest_raises_the_workers_error_after_the_item_before_it():
    def items():
        yield 1
        raise OSError("camera unplugged")

    got = []
    with pytest.raises(OSError, match="camera unplugged"):
        for x in latest(items()):
            got.append(x)
    assert got == [1]


def test_closing_latest_stops_the_worker_and_closes_the_source():
    baseline = threading.active_count()
    closed = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    for x in latest(endless()):
        if x > 100:
            break
    assert closed.wait(5.0) and _threads_settle(baseline)


# --- tracking a stream, synthetic -----------------------------------------------------------------

class ThreadRecordingDetector(FakeDetector):
    def __init__(self, scene):
        super().__init__(scene)
        self.threads = set()

    def __call__(self, image):
        self.threads.add(threading.current_thread().name)
        return super().__call__(image)


def _frames(scene, n):
    for f in range(n):
        yield scene.frame(f), f * 1000.0 / 30


@pytest.mark.parametrize("detect_every", [1, 3])
def test_pipelined_tracking_equals_serial(detect_every):
    scene = Scene(crossing(0))
    outputs = {}
    for pipelined in (False, True):
        detector = ThreadRecordingDetector(scene)
        tracker = PoseTracker(FakePose(scene, seed=4), detector, detect_every=detect_every)
        frames = list(track_frames(_frames(scene, 60), tracker, pipelined=pipelined,
                                   queue_size=2))
        assert [f.index for f in frames] == list(range(60))
        assert all(isinstance(f, TrackedFrame) for f in frames)
        outputs[pipelined] = frames
        assert detector.calls == -(-60 // detect_every)
        expected = {"edgepose-detect"} if pipelined else {threading.current_thread().name}
        assert detector.threads == expected
    for serial, piped in zip(outputs[False], outputs[True]):
        assert serial.timestamp_ms == piped.timestamp_ms
        np.testing.assert_array_equal(serial.poses.track_ids, piped.poses.track_ids)
        np.testing.assert_array_equal(serial.poses.keypoints, piped.poses.keypoints)


class SlowReader:
    """Frames that take ``delay_s`` each to produce."""

    def __init__(self, scene, n, delay_s):
        self.scene, self.n, self.delay_s = scene, n, delay_s

    def __iter__(self):
        for f in range(self.n):
            time.sleep(self.delay_s)
            yield self.scene.frame(f), f * 1000.0 / 30


class SlowDetector(FakeDetector):
    def __call__(self, image):
        time.sleep(0.01)
        return super().__call__(image)


@pytest.mark.parametrize("pipelined", [False, True])
def test_frames_carry_the_time_of_each_stage(pipelined):
    scene = Scene(crossing(0))
    tracker = PoseTracker(FakePose(scene), SlowDetector(scene), detect_every=3)
    frames = list(track_frames(SlowReader(scene, 9, 0.005), tracker, pipelined=pipelined))
    for f in frames:
        assert tuple(f.timings_ms) == FRAME_STAGES
        assert all(v >= 0 for v in f.timings_ms.values())
        assert f.timings_ms["read"] >= 4.0           # the reader's sleep, wherever it ran
        if f.index % 3 == 0:
            assert f.timings_ms["detect"] >= 9.0     # the detector's sleep
        else:
            assert f.timings_ms["detect"] < 5.0      # no detection on this frame


class SlowPose(FakePose):
    def __call__(self, image, boxes=None):
        time.sleep(0.01)
        return super().__call__(image, boxes)


@pytest.mark.parametrize("detect_every", [1, 3])
def test_live_tracking_takes_the_newest_frame_and_equals_serial_on_those_frames(detect_every):
    scene = Scene(crossing(0))
    frames = list(_frames(scene, 60))

    def fast_camera():      # a frame every 1 ms: faster than the tracker
        for item in frames:
            time.sleep(0.001)
            yield item

    tracker = PoseTracker(SlowPose(scene, seed=4), FakeDetector(scene), detect_every=detect_every)
    live, detected = [], []
    for f in track_frames(fast_camera(), tracker, live=True):
        live.append(f)
        detected.append(tracker.last_detected)
    index = [f.index for f in live]
    assert index[-1] == 59 and len(index) < 60                   # frames were dropped
    assert all(b > a for a, b in zip(index, index[1:]))
    assert detected[::detect_every] == [True] * len(detected[::detect_every])
    # the same tracker, serially, on exactly the frames live tracking took
    again = PoseTracker(SlowPose(scene, seed=4), FakeDetector(scene), detect_every=detect_every)
    serial = list(track_frames([frames[i] for i in index], again, pipelined=False))
    for a, b in zip(live, serial):
        assert a.timestamp_ms == b.timestamp_ms
        np.testing.assert_array_equal(a.poses.track_ids, b.poses.track_ids)
        np.testing.assert_array_equal(a.poses.keypoints, b.poses.keypoints)


def test_live_needs_the_reader_thread():
    scene = Scene(crossing(0))
    tracker = PoseTracker(FakePose(scene), FakeDetector(scene))
    with pytest.raises(ValueError, match="live=True drops frames .* pass pipelined=True"):
        next(track_frames(_frames(scene, 3), tracker, pipelined=False, live=True))


def test_bare_frames_and_no_detect_ahead():
    scene = Scene(crossing(20))
    detector = ThreadRecordingDetector(scene)
    tracker = PoseTracker(FakePose(scene), detector, detect_every=2)
    frames = (scene.frame(f) for f in range(10))
    out = list(track_frames(frames, tracker, detect_ahead=False))
    assert [f.timestamp_ms for f in out] == [None] * 10
    assert all(f.poses.track_ids.tolist() == [0, 1] for f in out)
    assert detector.threads == {threading.current_thread().name}


def test_leaving_early_stops_the_threads():
    baseline = threading.active_count()
    scene = Scene(crossing(20))
    tracker = PoseTracker(FakePose(scene), FakeDetector(scene))

    def endless():
        f = 0
        while True:
            yield scene.frame(f % 60), f * 33.0
            f += 1

    for frame in track_frames(endless(), tracker):
        if frame.index == 5:
            break
    assert _threads_settle(baseline)


def test_errors_surface_at_the_failing_frame():
    scene = Scene(crossing(20))
    tracker = PoseTracker(FakePose(scene), FakeDetector(scene))

    def broken():
        yield scene.frame(0), 0.0
        yield np.zeros((4, 4), np.uint8), 33.0     # grayscale: the tracker refuses it

    stream = track_frames(broken(), tracker)
    assert next(stream).index == 0
    with pytest.raises(ValueError, match="grayscale"):
        next(stream)


# --- video ------------------------------------------------------------------------------------------

def test_video_frames_reads_frames_with_increasing_timestamps(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(12)]
    path = tmp_path / "noise.mp4"
    write_video(path, frames, fps=25.0)
    got = list(video_frames(path))
    assert len(got) == 12
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f, _ in got)
    stamps = np.array([t for _, t in got])
    assert (np.diff(stamps) > 0).all()
    np.testing.assert_allclose(np.diff(stamps), 40.0, atol=1.0)


def test_video_frames_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        video_frames(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(ValueError, match="could not open"):
        video_frames(bad)


# --- a real video --------------------------------------------------------------------------------------

def _real_tracker(shared_dir, **kwargs):
    models = shared_dir / "models"
    return PoseTracker(models / "movenet" / "movenet_singlepose_lightning_int8_4.tflite",
                       models / "detectors" / "yolox_yolox_nano_416x416.onnx", **kwargs)


def test_real_video_pipelined_equals_serial_and_keeps_ids(shared_dir, tmp_path):
    clip, offsets, gt = panning_clip(shared_dir, frames=30)
    path = tmp_path / "pan.mp4"
    write_video(path, clip)
    with _real_tracker(shared_dir, detect_every=3) as tracker:
        serial = list(track_frames(video_frames(path), tracker, pipelined=False))
        tracker.reset()
        piped = list(track_frames(video_frames(path), tracker, pipelined=True))
    assert len(serial) == len(piped) == 30
    owners: dict[int, set[int]] = {}
    for s, p, offset in zip(serial, piped, offsets):
        np.testing.assert_array_equal(s.image, p.image)
        np.testing.assert_array_equal(s.poses.track_ids, p.poses.track_ids)
        np.testing.assert_array_equal(s.poses.keypoints, p.poses.keypoints)
        for box, tid in zip(p.poses.boxes, p.poses.track_ids.tolist()):
            who = person_of(box, offset, gt)
            if who is not None:   # None: someone not annotated (a spectator at the edge)
                owners.setdefault(who, set()).add(tid)
    assert all(len(ids) == 1 for ids in owners.values()), owners
    assert 0 in owners   # the batter, in view throughout


def test_measure_pipelining_checks_results_first(shared_dir, tmp_path):
    clip, _, _ = panning_clip(shared_dir, frames=12)
    path = tmp_path / "pan.mp4"
    write_video(path, clip)
    with _real_tracker(shared_dir, detect_every=2) as tracker:
        report = measure_pipelining(path, tracker, max_frames=10, warmup=2)
        assert tracker.frame_count == 0          # left reset
    assert isinstance(report, PipeliningReport)
    assert report.frames == 10 and report.identical
    assert report.serial_fps > 0 and report.pipelined_fps > 0
    assert report.speedup == pytest.approx(report.serial_ms[0] / report.pipelined_ms[0])
    assert set(report.to_dict()) == {"frames", "serial_fps", "pipelined_fps", "speedup",
                                     "identical", "serial_ms", "pipelined_ms", "queue_size",
                                     "serial_stage_ms", "pipelined_stage_ms"}
    for stages in (report.serial_stage_ms, report.pipelined_stage_ms):
        assert tuple(stages) == FRAME_STAGES
        assert stages["pose"] > 0 and stages["detect"] > 0
    # serially the stages are what a frame costs: they add up to at most its wall time
    assert sum(report.serial_stage_ms.values()) <= report.serial_ms[0] / report.frames
    with pytest.raises(ValueError, match="repeats must be an int >= 1"):
        measure_pipelining(path, tracker, repeats=0)
