"""``edgepose run [INPUT] --model M [--detector D] [--backend B] [--threads T]
[--device D] [--precision P] [--providers P,...] [--no-xnnpack]
[--score-threshold S] [--iou-threshold IOU] [--max-detections N]
[--input-size PX] [--out DIR] [--json PATH]``: pose estimation on an image,
a folder of images, a video file or a camera index.

Writes annotated images (or an annotated video) into ``--out`` and one JSON
line per frame to ``--out/poses.jsonl``; ``--json PATH`` writes the JSON lines
to PATH instead (``-``: stdout), ``--out -`` sends them to stdout and draws
nothing (as before ``--json`` existed). Without INPUT, the sample photo
edgepose ships (:func:`edgepose.data.sample_path`) is used, with a note on
stderr unless ``--quiet``. Videos and cameras are tracked
(:class:`edgepose.PoseTracker`) and pipelined (:mod:`edgepose.video.pipeline`);
their JSON lines carry ``timestamp_ms`` and ``--out`` gets ``summary.json``.
The runtime flags make one :class:`edgepose.RuntimeOptions` for both models.
The one-stage flags (:mod:`edgepose._one_stage_flags`) set a one-stage
multi-person model's options; with any other model they are a usage error,
as ``--detector`` is with a model that finds every person itself.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from edgepose._argtypes import positive_int
from edgepose._one_stage_flags import (add_one_stage_flags, check_model_flags,
                                       one_stage_from_args, usage_error_for)
from edgepose._runtime_flags import add_runtime_flags, runtime_from_args
from edgepose._cli import (EXIT_FAILED, EXIT_OK, UsageError, add_backend_flag, add_debug_flag,
                           add_json_flag, add_quiet_flag, add_threads_flag, check_model_arg,
                           check_output_dir, check_output_file, error_line)
from edgepose.images import import_cv2
from edgepose.progress import ProgressBar

__all__ = ["add_run_parser", "run"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def _source(source: str) -> tuple[str, list[Path] | None]:
    """What ``edgepose run`` was given: ("images", files) or ("video", None)
    for a video file or a camera index."""
    if source.isdigit():
        return "video", None
    path = Path(source)
    if not path.exists():
        raise UsageError(f"{source} does not exist (expected an image, a folder, a video "
                         "file or a camera index).")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UsageError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {source}.")
        return "images", files
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return "video", None
    return "images", [path]


def _read_image(path: Path) -> np.ndarray:
    cv2 = import_cv2()
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path} could not be read as an image (OpenCV cannot decode it: "
                         "a damaged file, or not an image).")
    return image


def _video_info(source: str) -> tuple[int | None, float]:
    """The frame count (None for cameras or when the container does not say)
    and the frame rate of a video file or camera."""
    cv2 = import_cv2()

    cap = cv2.VideoCapture(int(source) if source.isdigit() else source)
    try:
        if not cap.isOpened():
            if source.isdigit():
                raise OSError(f"camera {source} could not be opened: check that a "
                              "camera is connected at that index and not in use.")
            raise ValueError(f"{source} could not be opened as a video (OpenCV could "
                             "not decode it).")
        count = None if source.isdigit() else int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        fps = cap.get(cv2.CAP_PROP_FPS)
        return count, fps if fps and fps > 0 and fps == fps else 30.0
    finally:
        cap.release()


def _fetch_named(names: list[str | None], quiet: bool) -> None:
    """Fetches registry-named models before a run, with a progress bar
    (Estimator then finds them verified in the cache, silently)."""
    from edgepose import registry

    store = None
    for name in names:
        if name is None or Path(name).exists() or not registry.looks_like_name(name):
            continue
        store = store or registry.ModelStore.from_env()
        if name not in store.registry:
            continue  # Estimator reports it
        bar = ProgressBar(f"fetching {name}", enabled=not quiet)
        try:
            store.resolve(name, progress=bar)
        finally:
            bar.close()


class _Output:
    """Where ``edgepose run`` writes: JSON lines (``--json PATH`` or stdout, else
    ``poses.jsonl`` in ``--out``), and annotated images or an annotated video
    (in ``--out``, unless it is ``-``)."""

    def __init__(self, args: argparse.Namespace, fps: float) -> None:
        lines_to = args.json if args.json is not None else ("-" if args.out == "-" else None)
        self.to_stdout = lines_to == "-"
        self.dir = None if args.out == "-" else check_output_dir(args.out, "--out")
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
        self.draw = self.dir is not None and not args.no_draw
        self.fps = fps
        if self.to_stdout:
            self.lines = sys.stdout
        else:
            path = Path(lines_to) if lines_to is not None else self.dir / "poses.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.lines = open(path, "w")
        self.writer = None

    def write(self, record: dict, result, image: np.ndarray, name: str, video: bool) -> None:
        self.lines.write(json.dumps(record) + "\n")
        if not self.draw:
            return
        cv2 = import_cv2()
        drawn = result.draw(image)
        if not video:
            cv2.imwrite(str(self.dir / f"{Path(name).stem}_pose.jpg"), drawn)
            return
        if self.writer is None:
            h, w = drawn.shape[:2]
            self.writer = cv2.VideoWriter(str(self.dir / "annotated.mp4"),
                                          cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
        self.writer.write(drawn)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
        if self.to_stdout:
            self.lines.flush()
        else:
            self.lines.close()


def run(args: argparse.Namespace) -> int:
    """``edgepose run``. Images: a file that cannot be read or estimated is
    reported on stderr and skipped; the exit status is 1 when any failed."""
    if args.input is None:
        from edgepose.data import sample_path

        args.input = str(sample_path())
        if not args.quiet:
            print(f"(no INPUT given: running on the sample photo edgepose ships, {args.input})",
                  file=sys.stderr)
    kind, files = _source(args.input)
    check_model_arg(args.model, "--model")
    check_model_arg(args.detector, "--detector")
    runtime = runtime_from_args(args)
    one_stage = one_stage_from_args(args)
    if args.out != "-":
        check_output_dir(args.out, "--out")
    if args.json not in (None, "-"):
        check_output_file(args.json, "--json")
    _fetch_named([args.model, args.detector], args.quiet)
    if kind == "video":
        return _run_video(args, runtime, one_stage)
    if len(files) == 1:  # one image: its error is the command's, before any work
        _read_image(files[0])
    est = _estimator(args, runtime, one_stage, args.detector)
    with est:
        return _run_images(args, est, files, skip_bad=len(files) > 1)


def _estimator(args: argparse.Namespace, runtime, one_stage: dict, detector: str | None):
    """The Estimator of ``--model`` (with ``detector``, a file or name, or
    None); one-stage flags or a detector that do not fit the model are a
    usage error."""
    from edgepose import Estimator

    try:
        est = Estimator(args.model, detector, runtime=runtime, preset=args.preset,
                        detector_preset=args.detector_preset, **one_stage)
    except ValueError as exc:
        usage = usage_error_for(args, model=args.model, detector=detector,
                                preset=args.preset, runtime=runtime)
        if usage is not None:
            raise usage from exc
        raise
    return est


def _run_images(args: argparse.Namespace, est, files: list[Path], skip_bad: bool) -> int:
    out = _Output(args, 0.0)
    progress = ProgressBar("edgepose run", total=len(files),
                           enabled=not args.quiet and len(files) != 1)
    failed = 0
    try:
        for index, path in enumerate(files):
            try:
                image = _read_image(path)
                result = est(image)
            except (ValueError, RuntimeError) as exc:
                if not skip_bad:
                    raise
                failed += 1
                progress.clear()
                error_line("edgepose", f"skipped {path.name}: {exc}")
                continue
            out.write({"frame": index, "source": path.name, **result.to_dict()}, result, image,
                      path.name, video=False)
            progress.update()
    finally:
        progress.close()
        out.close()
    if out.dir is not None and not args.quiet:
        print(f"wrote {progress.count} frame(s) to {out.dir}", file=sys.stderr)
    if failed:
        error_line("edgepose", f"{failed} of {len(files)} inputs failed (each reported above; "
                   "the others were processed)")
        return EXIT_FAILED
    return EXIT_OK


def _smoothing(args: argparse.Namespace):
    from edgepose.video.smoothing import OneEuroParams

    if not args.smooth:
        return None
    defaults = OneEuroParams()
    return OneEuroParams(min_cutoff=defaults.min_cutoff if args.min_cutoff is None else args.min_cutoff,
                         beta=defaults.beta if args.beta is None else args.beta)


def _run_video(args: argparse.Namespace, runtime, one_stage: dict) -> int:
    """A video file or camera: tracked (ids), pipelined, optionally smoothed."""
    from edgepose.backends._base import available_cores
    from edgepose.detectors import PersonDetector
    from edgepose.video.pipeline import FRAME_STAGES, track_frames, video_frames
    from edgepose.video.tracker import PoseTracker

    total, fps = _video_info(args.input)
    if args.max_frames is not None:
        total = args.max_frames if total is None else min(total, args.max_frames)
    bad_frames: list[int] = []

    def bad_frame(position: int) -> None:
        bad_frames.append(position)
        error_line("edgepose", f"skipped frame {position} of {args.input}: it could not be "
                               "decoded (a damaged frame)")

    frames = video_frames(args.input, on_bad_frame=bad_frame)
    smoothing = _smoothing(args)
    threads = runtime.threads
    if threads is None and not args.serial and args.detector is not None:
        # The detector and the pose model run at the same time: half the cores
        # each (one full pool each left both slower than serial on 2 cores).
        threads = max(1, available_cores() // 2)
        runtime = runtime.replace(threads=threads)
    parts: list = []
    try:
        est = _estimator(args, runtime, one_stage, None)
        parts.append(est)
        check_model_flags(est.card, args, model=args.model, detector=args.detector)
        det = None
        if args.detector is not None:
            det = PersonDetector.from_file(args.detector, preset=args.detector_preset,
                                           runtime=runtime)
            parts.append(det)
        tracker = PoseTracker(est, det, detect_every=args.detect_every, metric=args.track_metric,
                              smoothing=smoothing, fps=fps)
    except BaseException:
        frames.close()
        for part in parts:
            part.close()
        raise
    out = _Output(args, fps)
    progress = ProgressBar("edgepose run", total=total, enabled=not args.quiet)
    sums = dict.fromkeys(FRAME_STAGES, 0.0)
    begin = time.perf_counter()
    # a camera is live: track the newest frame, drop those that came meanwhile
    live = args.input.isdigit() and not args.serial and not args.all_frames
    stream = track_frames(frames, tracker, pipelined=not args.serial, live=live)
    last_index = -1
    try:
        for frame in stream:
            result = frame.poses
            record = {"frame": frame.index, "source": f"frame_{frame.index:06d}",
                      "timestamp_ms": round(float(frame.timestamp_ms), 3),
                      "detected": tracker.last_detected, **result.to_dict()}
            out.write(record, result, frame.image, record["source"], video=True)
            for stage in FRAME_STAGES:
                sums[stage] += frame.timings_ms[stage]
            last_index = frame.index
            progress.update()
            if args.max_frames is not None and progress.count >= args.max_frames:
                break
    except KeyboardInterrupt:  # a camera runs until interrupted: keep what was written
        pass
    finally:
        stream.close()
        wall_s = time.perf_counter() - begin
        progress.close()
        out.close()
        for part in parts:
            part.close()
    summary = _video_summary(progress.count, wall_s, sums, pipelined=not args.serial,
                             detect_every=args.detect_every if det is not None else None,
                             smoothing=smoothing, threads=threads,
                             dropped=last_index + 1 - progress.count if live else None)
    summary["damaged_frames_skipped"] = len(bad_frames)
    if out.dir is not None:
        (out.dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not args.quiet:
        print(_video_summary_text(summary), file=sys.stderr)
        if out.dir is not None:
            print(f"wrote {progress.count} frame(s) to {out.dir}", file=sys.stderr)
    if bad_frames:
        error_line("edgepose", f"{len(bad_frames)} damaged frame(s) of {args.input} were "
                               "skipped (each reported above; the others were processed)")
        return EXIT_FAILED
    return 0


def _video_summary(frames: int, wall_s: float, sums: dict[str, float], *, pipelined: bool,
                   detect_every: int | None, smoothing, threads: int | None,
                   dropped: int | None) -> dict:
    """Throughput of a video run, and how much its stages overlapped."""
    per_frame = {stage: (ms / frames if frames else 0.0) for stage, ms in sums.items()}
    stage_sum = sum(per_frame.values())
    wall_ms = 1000.0 * wall_s / frames if frames else 0.0
    return {"frames": frames, "wall_s": round(wall_s, 3),
            "fps": round(frames / wall_s, 2) if wall_s > 0 and frames else None,
            "pipelined": pipelined, "detect_every": detect_every, "threads": threads,
            # live (camera): frames read but not tracked, the tracker being busy
            "dropped": dropped,
            "smoothing": None if smoothing is None else
            {"min_cutoff": smoothing.min_cutoff, "beta": smoothing.beta,
             "d_cutoff": smoothing.d_cutoff},
            "stage_ms_per_frame": {k: round(v, 3) for k, v in per_frame.items()},
            "wall_ms_per_frame": round(wall_ms, 3),
            # stages' time over wall time: 1 serially (less the writing), above 1
            # when reading and detection overlapped the pose model
            "overlap": round(stage_sum / wall_ms, 3) if wall_ms > 0 else None}


def _video_summary_text(s: dict) -> str:
    stages = ", ".join(f"{k} {v:.1f}" for k, v in s["stage_ms_per_frame"].items())
    mode = ("pipelined" if s["pipelined"] else "serial")
    every = (f"detector every {s['detect_every']} frame(s)" if s["detect_every"]
             else "no detector: the pose model finds people on every frame")
    text = (f"{s['frames']} frame(s) in {s['wall_s']:.2f} s ({s['fps'] or 0:.1f} fps, {mode}, "
            f"{every}); per frame: {stages} ms")
    if s["dropped"]:
        text += f"; {s['dropped']} camera frame(s) dropped while busy (--all-frames keeps them)"
    if s["pipelined"] and s["overlap"]:
        text += (f"; the stages add up to {s['overlap']:.2f}x the wall time per frame "
                 "(edgepose bench --video times serial against pipelined)")
    return text



def add_run_parser(sub) -> None:
    """Adds ``run`` to the sub-parsers ``sub``."""
    p = sub.add_parser("run", help="run a pose model on an image, a folder, a video or a camera",
                       description="Pose estimation on an image, a folder of images, a video "
                       "file or a camera index: annotated images (or video) in --out, one JSON "
                       "line per frame in --out/poses.jsonl (or --json PATH).")
    add_debug_flag(p, sub=True)
    p.add_argument("input", nargs="?", default=None, metavar="INPUT",
                   help="an image, a folder of images, a video file or a camera index "
                        "(default: the sample photo edgepose ships)")
    p.add_argument("--model", required=True,
                   help="pose model file (.onnx, .tflite, .xml) or name (edgepose models list)")
    p.add_argument("--detector", help="person detector file or name, for top-down models")
    p.add_argument("--preset", help="card preset of the pose model, if it carries no card")
    p.add_argument("--detector-preset", help="card preset of the detector")
    add_backend_flag(p, help="the runtime of the models (default: chosen by each file's type)")
    add_threads_flag(p, help="inference threads per model (default: the runtime's own; a "
                             "pipelined video with a detector: half the cores each)")
    add_runtime_flags(p)
    add_one_stage_flags(p)
    p.add_argument("--out", default="edgepose_out",
                   help="output folder (default: edgepose_out), or - for JSON lines on stdout "
                        "and no drawings")
    add_json_flag(p, "the poses", help="write the JSON lines (one per frame) to PATH instead "
                  "of OUT/poses.jsonl ('-': stdout); drawings still go to --out")
    p.add_argument("--no-draw", action="store_true", help="write JSON only, no annotated images")
    add_quiet_flag(p)
    v = p.add_argument_group("video and camera", "A video or camera is tracked: each person "
                             "keeps a track_id (edgepose.PoseTracker), frames are read and "
                             "detected ahead on worker threads, and --out gets summary.json.")
    v.add_argument("--detect-every", type=positive_int, default=1, metavar="N",
                   help="run the detector every N frames; between, boxes follow the poses "
                        "(default 1)")
    v.add_argument("--track-metric", choices=["auto", "oks", "iou"], default="auto",
                   help="how people are matched across frames: OKS, box IoU, or auto (OKS "
                        "where the keypoints have sigmas, else IoU; the default)")
    v.add_argument("--smooth", action="store_true",
                   help="smooth keypoints with the One-Euro filter (per track)")
    v.add_argument("--min-cutoff", type=float, default=None, metavar="HZ",
                   help="One-Euro cutoff of a still point (default 1.0; lower: smoother)")
    v.add_argument("--beta", type=float, default=None,
                   help="One-Euro speed coefficient (default 0.05; higher: less lag)")
    v.add_argument("--serial", action="store_true",
                   help="no worker threads: read, detect and estimate one frame at a time")
    v.add_argument("--all-frames", action="store_true",
                   help="a camera: track every frame, however late (default: the newest "
                        "frame whenever the tracker is free, dropping the ones between)")
    v.add_argument("--max-frames", type=positive_int, default=None, metavar="N",
                   help="stop after N frames (a camera otherwise runs until Ctrl-C)")
    p.set_defaults(func=run)
