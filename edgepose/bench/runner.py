"""Runs one benchmark configuration: a pose model (and a detector) on one
backend with one thread count, timed per stage on a real image.

Each timed run is what an application pays for one frame:

1. ``decode_image``: ``cv2.imdecode`` of the image file's bytes (held in
   memory, so disk speed does not count);
2. ``detector``: :class:`edgepose.detectors.PersonDetector` (letterbox,
   inference, decoding, NMS), when there is a detector;
3. ``preprocess``, ``inference``, ``decode``: the stages of
   :class:`edgepose.Estimator` (the result's ``timings_ms``) given the
   detector's boxes (crops and input tensors; the runtime; decoding and
   mapping back to image pixels);
4. ``other``: the rest of the Estimator call (input checks, results);
5. ``total``: wall time of 1-4. The stages of a run add up to its total.

The detector runs beside the Estimator rather than inside it so that it can
keep its own backend (``detector_backend``) while the pose model's changes;
the work is the same as ``Estimator(model, detector=...)`` does.

Peak RSS is the process's high-water mark while the configuration loads and
runs: Linux's counter is reset first (``/proc/self/clear_refs``); where that
is not possible, it is the peak of the whole process so far (``rss_scope``
says which).
"""
from __future__ import annotations

import gc
import math
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgepose._files import sha256_file
from edgepose._validate import is_int
from edgepose.bench.graph import count_graph
from edgepose.bench.probe import read_temperatures
from edgepose.bench.stats import drift, percentile, summarize
from edgepose.runtime import RuntimeOptions

__all__ = ["BenchConfig", "RunSettings", "STAGES", "attribute_stages", "backend_supports",
           "describe_model", "run_config", "run_video_config"]

#: Stages of a timed run, in order; ``total`` is their sum.
STAGES = ("decode_image", "detector", "preprocess", "inference", "decode", "other")

#: Which file types each backend opens.
_BACKEND_SUFFIXES = {
    "onnxruntime": (".onnx", ".ort"),
    "tflite": (".tflite",),
    "openvino": (".xml", ".onnx", ".tflite"),
}

#: Seconds between temperature samples in a sustained run.
_TEMPERATURE_PERIOD_S = 5.0

#: ``progress(done, total_or_None, elapsed_s, duration_s_or_None)``.
ProgressFn = Callable[[int, "int | None", float, "float | None"], None]


@dataclass(frozen=True)
class BenchConfig:
    """One configuration: pose model (and detector) on a backend with threads.

    Attributes:
        model: path or registry name of the pose model.
        detector: path or registry name of a person detector, or None.
        backend: the pose model's backend; None chooses from the file type.
        detector_backend: the detector's backend; None chooses from its file type.
        threads: inference threads of both models; None keeps each runtime's default.
        runtime: the other runtime options
            (:class:`~edgepose.runtime.RuntimeOptions`: ``device``,
            ``providers``, ``precision``, ``xnnpack``); each model gets
            those of the backend it runs on (:meth:`RuntimeOptions.only_for`).
            Its ``backend`` and ``threads`` must be None: the fields above
            say them.
        one_stage: the Estimator options of a one-stage multi-person
            model (``score_threshold``, ``iou_threshold``,
            ``max_detections``, ``input_size``: the one-stage flags), or
            None for the card's own.
    """

    model: str
    detector: str | None = None
    backend: str | None = None
    detector_backend: str | None = None
    threads: int | None = None
    runtime: RuntimeOptions | None = None
    one_stage: Mapping[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if self.runtime is None:
            return
        if not isinstance(self.runtime, RuntimeOptions):
            raise TypeError("runtime must be an edgepose.RuntimeOptions, got "
                            f"{type(self.runtime).__name__}.")
        if self.runtime.backend is not None or self.runtime.threads is not None:
            raise ValueError(
                "BenchConfig.runtime carries the options besides backend and threads, which "
                "the config's own fields say: got runtime.backend="
                f"{self.runtime.backend!r}, runtime.threads={self.runtime.threads!r}. Pass "
                "BenchConfig(backend=..., threads=...) instead.")

    def runtime_for(self, backend: str) -> RuntimeOptions:
        """The options of a model of this configuration that runs on ``backend``."""
        return (self.runtime or RuntimeOptions()).only_for(backend).replace(threads=self.threads)


@dataclass(frozen=True)
class RunSettings:
    """How long to run.

    Attributes:
        runs: timed runs (ignored when ``duration_s`` is set).
        warmup: untimed runs first.
        duration_s: run for this many seconds instead of ``runs`` times.
    """

    runs: int = 100
    warmup: int = 10
    duration_s: float | None = None

    def __post_init__(self) -> None:
        if not is_int(self.runs) or self.runs < 1:
            raise ValueError(f"runs must be an int >= 1, got {self.runs!r}.")
        if not is_int(self.warmup) or self.warmup < 0:
            raise ValueError(f"warmup must be an int >= 0, got {self.warmup!r}.")
        if self.duration_s is not None and not (math.isfinite(self.duration_s)
                                                and self.duration_s > 0):
            raise ValueError(f"duration_s must be a positive number of seconds, got "
                             f"{self.duration_s!r}.")


def backend_supports(backend: str, path: str | os.PathLike) -> bool:
    """Whether ``backend`` opens files of ``path``'s type."""
    return Path(path).suffix.lower() in _BACKEND_SUFFIXES.get(backend, ())


def attribute_stages(t_ns: tuple[int, int, int, int], timings: dict[str, float],
                     with_detector: bool) -> dict[str, float]:
    """Milliseconds per stage of one run.

    Args:
        t_ns: ``perf_counter_ns`` before decoding the image, after decoding,
            after the detector, after the Estimator call.
        timings: the ``timings_ms`` of that call's result.
        with_detector: whether a detector ran (else no ``detector`` stage).

    Returns:
        the :data:`STAGES` (``detector`` only with a detector) and ``total``;
        ``other`` is the rest: what the Estimator call took beyond its own
        stages (input checks, building the result), so the stages add up
        to ``total`` exactly (up to float rounding).
    """
    t0, t1, t2, t3 = t_ns
    parts = {"decode_image": (t1 - t0) / 1e6}
    if with_detector:
        parts["detector"] = (t2 - t1) / 1e6
    for stage in ("preprocess", "inference", "decode"):
        parts[stage] = float(timings.get(stage, 0.0))
    total = (t3 - t0) / 1e6
    parts["other"] = total - math.fsum(parts.values())
    parts["total"] = total
    return parts


def _input_shape(card) -> tuple[int, ...]:
    h, w = card.input.size
    return (1, 3, h, w) if card.input.layout == "NCHW" else (1, h, w, 3)


def describe_model(model: str, role: str = "pose", *,
                   backend: str | None = None) -> dict[str, Any]:
    """The facts of a model file: where it is, its size, sha256, card,
    parameters and GFLOPs.

    Args:
        model: a path or a registry name (resolved as ``Estimator`` does).
        role: "pose" or "detector", for messages.
        backend: the backend that opens the file to read its card (None:
            by file type).

    Raises:
        FileNotFoundError, ValueError, ImportError: as
            :class:`edgepose.model.LoadedModel`.
    """
    from edgepose.model import LoadedModel

    loaded = LoadedModel(model, role=role, backend=backend)
    try:
        card = loaded.card
        path = Path(loaded.path)
        entry = loaded.registry_entry
    finally:
        loaded.close()
    weights = path.with_suffix(".bin") if path.suffix.lower() == ".xml" else None
    size = path.stat().st_size + (weights.stat().st_size if weights and weights.exists() else 0)
    graph = count_graph(path, _input_shape(card))
    return {
        "name": model if entry is None else entry.name,
        "role": role,
        "path": str(path),
        "format": path.suffix.lower().lstrip("."),
        "size_bytes": size,
        "sha256": sha256_file(path),
        "registry": None if entry is None else entry.name,
        "params": graph.params,
        "gflops": graph.gflops,
        "graph_count": {"method": graph.method, "note": graph.note},
        "card": card.to_dict(),
    }


# --- peak RSS -----------------------------------------------------------------------

def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb(reset_ok: bool) -> tuple[float | None, str]:
    if reset_ok:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0, "configuration"
        except (OSError, ValueError, IndexError):
            pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return (peak / 1024.0 ** 2 if sys.platform == "darwin" else peak / 1024.0), "process"


def _max_celsius(readings: list[dict[str, Any]]) -> float | None:
    values = [r["celsius"] for r in readings if r.get("celsius") is not None]
    return max(values) if values else None


# --- running ------------------------------------------------------------------------

def _timeline(starts: list[float], totals: list[float],
              temps: list[tuple[float, float | None]]) -> list[dict[str, Any]]:
    """p50 latency and temperature per bucket of a sustained run (about 20 buckets)."""
    if not starts:
        return []
    window = starts[-1] - starts[0] + totals[-1] / 1e3
    width = max(1.0, window / 20.0)
    buckets: dict[int, list[float]] = {}
    for s, ms in zip(starts, totals):
        buckets.setdefault(int((s - starts[0]) // width), []).append(ms)
    out = []
    for b in sorted(buckets):
        lo, hi = b * width, (b + 1) * width
        celsius = [c for t, c in temps if lo <= t < hi and c is not None]
        out.append({"t_s": lo, "n": len(buckets[b]), "p50_ms": percentile(buckets[b], 50),
                    "celsius": max(celsius) if celsius else None})
    return out


def _skipped(config: BenchConfig, reason: str, status: str = "skipped") -> dict[str, Any]:
    return {"status": status, "reason": reason, "model": config.model,
            "detector": config.detector, "backend": config.backend,
            "detector_backend": config.detector_backend, "threads": config.threads}


def _config_files(config: BenchConfig, model_path: str | os.PathLike | None,
                  detector_path: str | os.PathLike | None
                  ) -> tuple[Path, str, Path | None, str | None] | dict[str, Any]:
    """``(model path, backend, detector path, detector backend)`` of a
    configuration, or the row of a configuration that cannot run."""
    from edgepose.backends import backend_for_path
    from edgepose.model import locate_model

    try:
        path = Path(model_path) if model_path else locate_model(config.model)[0]
        det_path = None
        if config.detector is not None:
            det_path = (Path(detector_path) if detector_path
                        else locate_model(config.detector, "detector")[0])
    except (FileNotFoundError, ValueError) as exc:
        return _skipped(config, str(exc), "error")
    backend = config.backend or backend_for_path(path)
    if not backend_supports(backend, path):
        return _skipped(config, f"{backend} cannot open {path.suffix} files")
    det_backend = None
    if det_path is not None:
        det_backend = config.detector_backend or backend_for_path(det_path)
        if not backend_supports(det_backend, det_path):
            return _skipped(config, f"{det_backend} cannot open {det_path.suffix} files "
                                    "(the detector)")
    return path, backend, det_path, det_backend


def _open_models(config: BenchConfig, path: Path, backend: str, det_path: Path | None,
                 det_backend: str | None):
    """The configuration's Estimator and PersonDetector (or None)."""
    from edgepose.estimator import Estimator

    est = Estimator(path, runtime=config.runtime_for(backend), **dict(config.one_stage or {}))
    if det_path is None:
        return est, None
    try:
        if est.card.finds_people:
            raise ValueError(f"{path.name} finds every person "
                             "itself and takes no detector.")
        from edgepose.detectors import PersonDetector

        return est, PersonDetector.from_file(det_path, runtime=config.runtime_for(det_backend))
    except BaseException:
        est.close()
        raise


def run_config(config: BenchConfig, image_bytes: bytes, settings: RunSettings, *,
               model_path: str | os.PathLike | None = None,
               detector_path: str | os.PathLike | None = None,
               progress: ProgressFn | None = None) -> dict[str, Any]:
    """Loads, warms up and times one configuration.

    Args:
        config: what to run.
        image_bytes: an encoded image (JPEG, PNG...) with people in it.
        settings: runs, warm-up and duration.
        model_path, detector_path: the resolved files (for the backend
            check and the row); default: resolved from the config.
        progress: called after every timed run.

    Returns:
        a result row (see :mod:`edgepose.bench.report` for its keys);
        ``status`` is "ok", "skipped" (the backend cannot open the file) or
        "error" (loading or running failed; ``reason`` says why).
    """
    from edgepose.images import import_cv2

    cv2 = import_cv2()
    files = _config_files(config, model_path, detector_path)
    if isinstance(files, dict):
        return files
    path, backend, det_path, det_backend = files

    buf = np.frombuffer(image_bytes, np.uint8)
    est = det = None
    gc.collect()
    reset_ok = _reset_peak_rss()
    load_start = time.perf_counter()
    try:
        est, det = _open_models(config, path, backend, det_path, det_backend)
        load_s = time.perf_counter() - load_start

        def once() -> tuple[dict[str, float], int]:
            t0 = time.perf_counter_ns()
            image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
            t1 = time.perf_counter_ns()
            boxes = det(image).boxes if det is not None else None
            t2 = time.perf_counter_ns()
            poses = est(image, boxes=boxes)
            t3 = time.perf_counter_ns()
            return attribute_stages((t0, t1, t2, t3), poses.timings_ms, det is not None), len(poses)

        if cv2.imdecode(buf, cv2.IMREAD_COLOR) is None:
            raise ValueError("the image could not be decoded by OpenCV.")
        for _ in range(settings.warmup):
            once()
        temps_start = read_temperatures()
        samples: dict[str, list[float]] = {s: [] for s in (*STAGES, "total")}
        starts: list[float] = []
        people: list[int] = []
        temps: list[tuple[float, float | None]] = [(0.0, _max_celsius(temps_start))]
        duration = settings.duration_s
        total_runs = None if duration else settings.runs
        window_start = time.perf_counter()
        next_temp = _TEMPERATURE_PERIOD_S
        while True:
            now = time.perf_counter() - window_start
            if duration is not None:
                if now >= duration and starts:
                    break
                if now >= next_temp:
                    temps.append((now, _max_celsius(read_temperatures())))
                    next_temp += _TEMPERATURE_PERIOD_S
            elif len(starts) >= settings.runs:
                break
            parts, n_people = once()
            starts.append(now)
            people.append(n_people)
            for stage, ms in parts.items():
                samples[stage].append(ms)
            if progress is not None:
                progress(len(starts), total_runs, time.perf_counter() - window_start, duration)
        temps_end = read_temperatures()
        peak_mb, rss_scope = _peak_rss_mb(reset_ok)
    except Exception as exc:  # one failing configuration must not end the benchmark
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return _skipped(config, detail, "error") | {"backend": backend,
                                                    "detector_backend": det_backend}
    finally:
        for part in (det, est):
            if part is not None:
                part.close()
        est = det = None
        gc.collect()

    stages = {s: summarize(v).to_dict() for s, v in samples.items() if v}
    mean_total = stages["total"]["mean"]
    return {
        "status": "ok",
        "reason": None,
        "model": config.model,
        "model_path": str(path),
        "detector": config.detector,
        "detector_path": None if det_path is None else str(det_path),
        "backend": backend,
        "detector_backend": det_backend,
        "threads": config.threads,
        "runs": len(starts),
        "warmup": settings.warmup,
        "window_s": starts[-1] + samples["total"][-1] / 1e3,
        "load_s": load_s,
        "people": people[-1],
        "people_range": [min(people), max(people)],
        "stages_ms": stages,
        "fps": 1000.0 / mean_total if mean_total > 0 else None,
        "peak_rss_mb": peak_mb,
        "rss_scope": rss_scope,
        "temperature_c": {"start": _max_celsius(temps_start), "end": _max_celsius(temps_end)},
        "drift": drift(starts, samples["total"]) if duration else None,
        "timeline": _timeline(starts, samples["total"], temps) if duration else None,
    }


def run_video_config(config: BenchConfig, video: str | os.PathLike, *, detect_every: int = 1,
                     max_frames: int | None = None, warmup: int = 3, repeats: int = 3,
                     model_path: str | os.PathLike | None = None,
                     detector_path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Throughput of one configuration on a video: a
    :class:`edgepose.PoseTracker` run serially and pipelined, back to back
    (:func:`edgepose.video.pipeline.measure_pipelining`).

    Args:
        config: what to run.
        video: a video file with people in it.
        detect_every: the tracker's detector period.
        max_frames: frames per run (default: the whole video).
        warmup: frames run first, untimed.
        repeats: serial/pipelined pairs of runs.
        model_path, detector_path: the resolved files, as :func:`run_config`.

    Returns:
        a video row (see :mod:`edgepose.bench.report`); ``status`` "error"
        also when pipelining changed a result, which it must never do.
    """
    from edgepose.video.pipeline import measure_pipelining
    from edgepose.video.tracker import PoseTracker

    files = _config_files(config, model_path, detector_path)
    if isinstance(files, dict):
        return files | {"detect_every": detect_every}
    path, backend, det_path, det_backend = files
    est = det = None
    try:
        est, det = _open_models(config, path, backend, det_path, det_backend)
        with PoseTracker(est, det, detect_every=detect_every) as tracker:
            found = measure_pipelining(video, tracker, max_frames=max_frames, warmup=warmup,
                                       repeats=repeats)
    except Exception as exc:  # one failing configuration must not end the benchmark
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return _skipped(config, detail, "error") | {"backend": backend,
                                                    "detector_backend": det_backend,
                                                    "detect_every": detect_every}
    finally:
        for part in (det, est):
            if part is not None:
                part.close()
    row = {"status": "ok" if found.identical else "error",
           "reason": None if found.identical else
           "pipelined tracking gave other poses than serial tracking (a bug: please report it)",
           "model": config.model, "model_path": str(path), "detector": config.detector,
           "detector_path": None if det_path is None else str(det_path),
           "backend": backend, "detector_backend": det_backend, "threads": config.threads,
           "detect_every": detect_every}
    return row | found.to_dict()
