"""Frame pipelining for video: decode and detect ahead on other threads.

Serially, each frame waits for its own decoding, then the detector, then
the pose model. Pipelined, frame t+1 is read and decoded on one thread (and,
on detection frames, run through the person detector on a second) while the
pose model runs on frame t in the caller's thread. OpenCV's decoding and
resampling, the C core and the runtimes (onnxruntime, TFLite, OpenVINO)
release the GIL, so the stages overlap on a multi-core device. The stages
are joined by bounded queues (``queue_size`` frames), so a slow consumer
holds memory at a few frames.

Pipelining changes no result: the tracker sees the same frames and
detections in the same order (the detector runs ahead only on the frames
:meth:`edgepose.video.PoseTracker.detection_due` schedules), so
:func:`track_frames` yields exactly what the serial loop does;
:func:`measure_pipelining` checks this before it reports a speed-up.

Functions (:func:`prefetch` and :func:`latest`, the worker threads, are
re-exported from :mod:`edgepose.video.threads`):
    video_frames: ``(frame, timestamp_ms)`` of a video file or camera.
    track_frames: run a :class:`PoseTracker` over frames, pipelined or not.
    measure_pipelining: serial vs pipelined throughput on a video.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from time import perf_counter_ns
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from edgepose._validate import is_int
from edgepose.images import import_cv2
from edgepose.results import PoseResult
from edgepose.video.threads import close_iterator, latest, prefetch

__all__ = ["FRAME_STAGES", "TrackedFrame", "PipeliningReport", "video_frames", "prefetch",
           "latest", "track_frames", "measure_pipelining"]

#: The stages :attr:`TrackedFrame.timings_ms` reports, in order.
FRAME_STAGES = ("read", "detect", "pose", "track")


class TrackedFrame(NamedTuple):
    """One frame's output of :func:`track_frames`."""

    index: int                      #: 0-based position in the input
    image: NDArray[np.uint8]        #: the BGR frame
    timestamp_ms: float | None      #: as given with the frame
    poses: PoseResult               #: with ``track_ids``
    #: Milliseconds this frame spent in each of :data:`FRAME_STAGES`, on
    #: whichever thread ran the stage: ``read`` (producing the frame from
    #: the input iterable: decoding), ``detect`` (the person detector; 0 on
    #: frames without detection), ``pose`` and ``track`` (the tracker's own
    #: ``poses.timings_ms``). Pipelined, the
    #: stages of consecutive frames overlap, so their sum exceeds the wall
    #: time per frame.
    timings_ms: Mapping[str, float] | None = None


# ---------------------------------------------------------------------------
# Reading

#: Consecutive frames of a file that may fail to decode before the rest counts as its end.
MAX_BAD_FRAMES = 25


def video_frames(source: str | os.PathLike | int, *, fps: float | None = None,
                 on_bad_frame: Callable[[int], None] | None = None
                 ) -> Iterator[tuple[NDArray[np.uint8], float]]:
    """Decodes a video file or a camera with OpenCV.

    A frame of a file that OpenCV cannot decode (a damaged frame: OpenCV's
    ``read`` fails there and would end the stream) is skipped and decoding
    goes on with the next one; ``on_bad_frame(position)`` is called with its
    0-based position in the file. Up to :data:`MAX_BAD_FRAMES` frames in a
    row may fail before the rest of the file counts as its end.

    Args:
        source: a video file, or a camera index (an int, or a string of
            digits).
        fps: frame rate for timestamps when the file does not give usable
            ones (default: the file's frame rate, else 30).
        on_bad_frame: called for each damaged frame skipped (files only; a
            camera that fails to deliver a frame has ended).

    Yields:
        ``(frame, timestamp_ms)``: BGR uint8 ``(H, W, 3)`` and an increasing
        time in milliseconds: the container's presentation time for files
        (``index * 1000 / fps`` where it does not increase), the monotonic
        clock at capture for cameras.

    Raises:
        FileNotFoundError: a file that does not exist.
        ValueError: a source OpenCV cannot open.
        ImportError: OpenCV is not installed.
    """
    cv2 = import_cv2()
    camera = isinstance(source, int) or (isinstance(source, str) and source.isdigit())
    if camera:
        cap = cv2.VideoCapture(int(source))
    else:
        path = os.fspath(source)
        if not os.path.exists(path):
            raise FileNotFoundError(f"The video {path} does not exist.")
        cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        cap.release()
        raise ValueError(f"OpenCV could not open {source!r} as a "
                         f"{'camera' if camera else 'video'}.")
    rate = fps or cap.get(cv2.CAP_PROP_FPS) or 30.0
    if not (math.isfinite(rate) and rate > 0):
        rate = 30.0
    return _read(cap, camera, float(rate), on_bad_frame)


def _read_past_damage(cap: Any, on_bad_frame: Callable[[int], None] | None
                      ) -> tuple[bool, Any]:
    """After a failed read of a file: the next frame that decodes, skipping damaged ones.

    A failure where the file has no more frames (by its frame count, when it
    gives one) is its end; elsewhere up to MAX_BAD_FRAMES reads are tried.
    """
    cv2 = import_cv2()
    position = int(cap.get(cv2.CAP_PROP_POS_FRAMES))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    skipped = [position]
    for _ in range(MAX_BAD_FRAMES):
        if 0 < count <= position + len(skipped):
            return False, None
        ok, frame = cap.read()
        if ok:
            if on_bad_frame is not None:
                for bad in skipped:
                    on_bad_frame(bad)
            return True, frame
        skipped.append(position + len(skipped))
    return False, None


def _read(cap: Any, camera: bool, rate: float,
          on_bad_frame: Callable[[int], None] | None = None
          ) -> Iterator[tuple[NDArray[np.uint8], float]]:
    cv2 = import_cv2()
    index, last = 0, -math.inf
    try:
        while True:
            ok, frame = cap.read()
            if not ok and not camera:
                ok, frame = _read_past_damage(cap, on_bad_frame)
            if not ok:
                return
            if camera:
                stamp = time.monotonic() * 1000.0
            else:
                stamp = float(cap.get(cv2.CAP_PROP_POS_MSEC))
                if not math.isfinite(stamp) or stamp <= last:
                    stamp = index * 1000.0 / rate
            if stamp <= last:
                stamp = last + 1000.0 / rate
            last = stamp
            index += 1
            yield frame, stamp
    finally:
        cap.release()


# ---------------------------------------------------------------------------
# Tracking a stream

def _pairs(frames: Iterable[Any]) -> Iterator[tuple[int, NDArray[np.uint8], float | None, float]]:
    """``(index, image, timestamp_ms, read_ms)``: read_ms is how long the
    input iterable took to produce the frame."""
    iterator = iter(frames)
    index = 0
    try:
        while True:
            begin = perf_counter_ns()
            try:
                item = next(iterator)
            except StopIteration:
                return
            read_ms = (perf_counter_ns() - begin) / 1e6
            if isinstance(item, np.ndarray):
                yield index, item, None, read_ms
            else:
                image, stamp = item
                yield index, image, stamp, read_ms
            index += 1
    finally:
        close_iterator(iterator)


def _timings(read_ms: float, detect_ms: float | None, poses: Any) -> dict[str, float]:
    laps = getattr(poses, "timings_ms", None) or {}
    return {"read": read_ms,
            "detect": laps.get("detect", 0.0) if detect_ms is None else detect_ms,
            "pose": laps.get("pose", 0.0), "track": laps.get("track", 0.0)}


def track_frames(frames: Iterable[tuple[NDArray[np.uint8], float | None] | NDArray[np.uint8]],
                 tracker: Any, *, pipelined: bool = True, queue_size: int = 4,
                 detect_ahead: bool = True, live: bool = False) -> Iterator[TrackedFrame]:
    """Runs a :class:`edgepose.video.PoseTracker` over a stream of frames.

    Args:
        frames: ``(frame, timestamp_ms)`` pairs (``timestamp_ms`` may be
            None) or bare frames, e.g. :func:`video_frames`. Pipelined, the
            iterable is consumed on a worker thread, so a lazy reader
            decodes there.
        tracker: the tracker; called once per frame, in order.
        pipelined: read (and detect) ahead on worker threads; False runs
            everything in the caller's thread.
        queue_size: frames each worker may run ahead.
        detect_ahead: with a tracker that has a separate detector, run it on
            the scheduled detection frames on a second worker thread.
        live: for cameras and streams: read continuously and track only the
            newest frame each time the tracker is free (:func:`latest`),
            dropping the frames in between, so results lag the scene by
            about one frame instead of by every frame waiting in the
            buffers. The yielded ``index`` keeps its position in the input,
            so gaps count the dropped frames. Needs ``pipelined``.

    Yields:
        :class:`TrackedFrame` ``(index, image, timestamp_ms, poses,
        timings_ms)``, in input order; the poses are identical whether
        pipelined or not.

    Raises:
        ValueError: ``live`` without ``pipelined``.
        whatever reading the frames or the tracker raises, at the frame it
        happened.
    """
    if live and not pipelined:
        raise ValueError("live=True drops frames while the tracker is busy, which needs a "
                         "reader thread: pass pipelined=True.")
    if not pipelined:
        for index, image, stamp, read_ms in _pairs(frames):
            poses = tracker(image, stamp)
            yield TrackedFrame(index, image, stamp, poses, _timings(read_ms, None, poses))
        return
    start = tracker.frame_count
    stream: Iterator[Any] = (latest(_pairs(frames), name="edgepose-read") if live else
                             prefetch(_pairs(frames), size=queue_size, name="edgepose-read"))
    if detect_ahead and tracker.has_detector:
        # the tracker's call count of each frame: its input index, less the
        # frames dropped before it (live)
        calls = iter(range(start, 2**63))

        def detect(item: tuple[int, NDArray[np.uint8], float | None, float]):
            index, image, stamp, read_ms = item
            if not tracker.detection_due(next(calls)):
                return index, image, stamp, read_ms, None, None
            begin = perf_counter_ns()
            detections = tracker.detect(image)
            return index, image, stamp, read_ms, detections, (perf_counter_ns() - begin) / 1e6

        # live: one detection ahead at most, so nothing waits long
        stream = prefetch(stream, detect, size=1 if live else queue_size, name="edgepose-detect")
    else:
        stream = ((index, image, stamp, read_ms, None, None)
                  for index, image, stamp, read_ms in stream)
    try:
        for index, image, stamp, read_ms, detections, detect_ms in stream:
            poses = tracker(image, stamp, detections=detections)
            yield TrackedFrame(index, image, stamp, poses, _timings(read_ms, detect_ms, poses))
    finally:
        close_iterator(stream)


# ---------------------------------------------------------------------------
# Measuring

@dataclass(frozen=True)
class PipeliningReport:
    """Serial vs pipelined throughput of a tracker on one video.

    Attributes:
        frames: frames per run.
        serial_fps, pipelined_fps: frames per second, decoding included
            (from the median time of the repeats).
        speedup: the median over the repeats of serial time / pipelined
            time, each pair run back to back (steadier than the ratio of the
            two medians when the machine's load drifts).
        identical: whether both runs gave the same poses and track ids.
        serial_ms, pipelined_ms: wall time of each repeat.
        queue_size: the queue capacity used.
        serial_stage_ms, pipelined_stage_ms: mean milliseconds per frame of
            each of :data:`FRAME_STAGES` (over every repeat). Serially the
            stages add up to the time per frame; pipelined they overlap, and
            each may be slower than serially when the threads share cores.
    """

    frames: int
    serial_fps: float
    pipelined_fps: float
    speedup: float
    identical: bool
    serial_ms: tuple[float, ...]
    pipelined_ms: tuple[float, ...]
    queue_size: int
    serial_stage_ms: Mapping[str, float]
    pipelined_stage_ms: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        """Plain Python types (for JSON)."""
        out = asdict(self)
        out["serial_ms"] = list(self.serial_ms)
        out["pipelined_ms"] = list(self.pipelined_ms)
        out["serial_stage_ms"] = dict(self.serial_stage_ms)
        out["pipelined_stage_ms"] = dict(self.pipelined_stage_ms)
        return out


def _same(a: list[PoseResult], b: list[PoseResult]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if len(x) != len(y) or not np.array_equal(x.track_ids, y.track_ids):
            return False
        if not (np.array_equal(x.keypoints, y.keypoints, equal_nan=True)
                and np.array_equal(x.scores, y.scores, equal_nan=True)):
            return False
    return True


def measure_pipelining(source: str | os.PathLike, tracker: Any, *, max_frames: int | None = None,
                       repeats: int = 1, warmup: int = 3, queue_size: int = 4) -> PipeliningReport:
    """Times the tracker over a video serially and pipelined.

    Each run decodes the video from the start (decoding is part of the
    work being overlapped) and starts from a :meth:`reset` tracker. The
    serial and pipelined runs alternate ``repeats`` times; the results of
    the first pair are compared before anything is reported.

    Args:
        source: a video file.
        tracker: a :class:`edgepose.video.PoseTracker` (it is reset).
        max_frames: use at most this many frames.
        repeats: pairs of runs.
        warmup: frames run (and discarded) first, to warm the runtimes up.
        queue_size: as :func:`track_frames`.

    Returns:
        a :class:`PipeliningReport`.

    Raises:
        ValueError: an empty video or invalid counts.
    """
    if not is_int(repeats) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}.")

    def frames() -> Iterator[tuple[NDArray[np.uint8], float]]:
        for n, item in enumerate(video_frames(source)):
            if max_frames is not None and n >= max_frames:
                return
            yield item

    tracker.reset()
    for n, (image, stamp) in enumerate(frames()):
        if n >= warmup:
            break
        tracker(image, stamp)
    times: dict[bool, list[float]] = {False: [], True: []}
    stage_ms: dict[bool, dict[str, list[float]]] = {False: {}, True: {}}
    outputs: dict[bool, list[PoseResult]] = {}
    count = 0
    for _ in range(repeats):
        for pipelined in (False, True):
            tracker.reset()
            begin = perf_counter_ns()
            tracked = list(track_frames(frames(), tracker, pipelined=pipelined,
                                        queue_size=queue_size))
            times[pipelined].append((perf_counter_ns() - begin) / 1e6)
            outputs.setdefault(pipelined, [f.poses for f in tracked])
            for f in tracked:
                for stage in FRAME_STAGES:
                    stage_ms[pipelined].setdefault(stage, []).append(f.timings_ms[stage])
            count = len(tracked)
    if count == 0:
        raise ValueError(f"{source} has no frames to measure.")
    tracker.reset()
    serial = count / (float(np.median(times[False])) / 1000.0)
    piped = count / (float(np.median(times[True])) / 1000.0)
    speedup = float(np.median(np.array(times[False]) / np.array(times[True])))
    means = {p: {stage: float(np.mean(v)) for stage, v in stage_ms[p].items()} for p in stage_ms}
    return PipeliningReport(count, serial, piped, speedup, _same(outputs[False], outputs[True]),
                            tuple(times[False]), tuple(times[True]), queue_size,
                            means[False], means[True])
