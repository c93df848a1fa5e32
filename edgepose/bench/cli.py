"""``edgepose-bench``: latency per stage of pose models on this machine.

::

    edgepose-bench [MODEL ...] [--detector D] [--backend onnxruntime,tflite,openvino]
                   [--threads 1,2,4] [--runs N] [--warmup N] [--duration S]
                   [--image PATH] [--video PATH [--detect-every N] [--repeats N]]
                   [--json OUT] [--markdown OUT]

For each model x backend x thread count: p50, p90, p99 and mean of every
stage (decode image, detector, crop/preprocess, inference, postprocess/decode,
total), FPS, peak RSS, the model file's size, parameters and GFLOPs; a header
identifying the machine. With ``--video``, also the throughput of tracking
the video (:class:`edgepose.PoseTracker`) serially and pipelined
(:mod:`edgepose.pipeline`), run back to back, and the gain. Models are files
or registry names. The table goes to stdout, the progress bar to stderr.

Exit status (as every edgepose command, :mod:`edgepose._cli`): 0 when every
configuration ran (or was skipped because a backend cannot open a file type);
1 when one failed, or a model, image or video file exists but cannot be used;
2 for a usage error (bad arguments, no image or model given, a file or model
name that names nothing); 130 when interrupted. Errors are one line on
stderr; ``--debug`` adds the traceback.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import sys
import time
from pathlib import Path

from edgepose._argtypes import non_negative_int, positive_int
from edgepose._cli import (UsageError, add_debug_flag, check_model_arg, check_output_file,
                           run_command)
from edgepose._files import sha256_file
from edgepose.backends._base import available_cores

__all__ = ["main", "build_parser", "default_models", "IMAGE_ENV"]

#: Environment variable naming the default image when --image is not given.
IMAGE_ENV = "EDGEPOSE_BENCH_IMAGE"

_NO_MODELS_HELP = (
    "No pose model given and none found locally (model dir or cache). Name models or "
    "files: edgepose-bench movenet-lightning --detector yolox-nano. Names resolve through "
    "the registry: set EDGEPOSE_MODEL_DIR to a folder of model files, or EDGEPOSE_MIRROR to "
    "a folder or URL that holds them, or fetch them into the cache with "
    "`edgepose models pull movenet-lightning yolox-nano` (see `edgepose models list`).")

_NO_IMAGE_HELP = (
    "edgepose-bench times real frames: pass --image PATH, a photo with people in it at the "
    "resolution your application uses (or set {env} to one). No default image was found: "
    "edgepose ships none.")


class ProgressBar:
    """One line on stderr, redrawn at most 10 times a second."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._last = 0.0
        self._drawn = False

    def draw(self, text: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        sys.stderr.write("\r" + text[:160].ljust(80))
        sys.stderr.flush()
        self._drawn = True

    def done(self) -> None:
        if self.enabled and self._drawn:
            sys.stderr.write("\r" + " " * 80 + "\r")
            sys.stderr.flush()
            self._drawn = False


def _bar(fraction: float, width: int = 24) -> str:
    n = max(0, min(width, int(round(width * fraction))))
    return "#" * n + "." * (width - n)


def _csv(text: str, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"{what} must be a comma-separated list, got {text!r}")
    return items


def _backends(text: str) -> list[str]:
    from edgepose.backends import BACKENDS

    items = _csv(text, "--backend")
    bad = [b for b in items if b not in BACKENDS]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown backend {bad[0]!r}; available: {', '.join(BACKENDS)}")
    return items


def _backend(text: str) -> str:
    if "," in text:
        raise argparse.ArgumentTypeError(f"--detector-backend takes one backend, got {text!r}")
    return _backends(text)[0]


def _thread_list(text: str) -> list[int | None]:
    out: list[int | None] = []
    for item in _csv(text, "--threads"):
        if item == "default":
            out.append(None)
            continue
        try:
            n = int(item)
        except ValueError:
            n = 0
        if n < 1:
            raise argparse.ArgumentTypeError(
                f"--threads takes ints >= 1 or 'default' (the runtime's own), got {item!r}")
        out.append(n)
    return out


def _seconds(text: str) -> float:
    try:
        s = float(text)
    except ValueError:
        s = 0.0
    if not s > 0 or s != s or s == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return s


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgepose-bench",
        description="Latency per stage of pose models on this machine: decode image, detector, "
                    "crop/preprocess, inference, postprocess, total (p50/p90/p99/mean), FPS, "
                    "peak RSS, model size, parameters and GFLOPs.")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="pose model files or registry names (default: the pose models found "
                        "in EDGEPOSE_MODEL_DIR or the cache, else in an EDGEPOSE_MIRROR folder)")
    p.add_argument("--detector", metavar="D", default=None,
                   help="person detector file or name, run before each top-down model")
    p.add_argument("--detector-backend", metavar="B", default=None, type=_backend,
                   help="the detector's backend (default: chosen by its file type)")
    p.add_argument("--backend", type=_backends, default=None, metavar="B[,B...]",
                   help="pose model backends: onnxruntime, tflite, openvino (default: chosen by "
                        "each file's type); a backend that cannot open a file type is skipped")
    p.add_argument("--threads", type=_thread_list, default=None, metavar="T[,T...]",
                   help="inference threads per model, e.g. 1,2,4, or 'default' for the "
                        f"runtime's own (default: the usable cores, {available_cores()})")
    p.add_argument("--runs", type=positive_int, default=100, metavar="N",
                   help="timed runs per configuration (default 100)")
    p.add_argument("--warmup", type=non_negative_int, default=10, metavar="N",
                   help="untimed warm-up runs first (default 10)")
    p.add_argument("--duration", type=_seconds, default=None, metavar="S",
                   help="run each configuration for S seconds instead of --runs, and report "
                        "latency drift (thermal throttling): first vs last minute p50, or the "
                        "first vs last 20%% of a window shorter than two minutes")
    p.add_argument("--image", type=Path, default=None, metavar="PATH",
                   help=f"the image to time, with people in it (default: ${IMAGE_ENV}; "
                        "edgepose ships no image)")
    p.add_argument("--video", type=Path, default=None, metavar="PATH",
                   help="also track this video serially and pipelined (reading and detection "
                        "on worker threads) and report both throughputs; --image is then "
                        "optional")
    p.add_argument("--video-frames", type=positive_int, default=None, metavar="N",
                   help="frames of the video per run (default: all)")
    p.add_argument("--detect-every", type=positive_int, default=1, metavar="N",
                   help="with --video: run the detector every N frames (default 1)")
    p.add_argument("--repeats", type=positive_int, default=3, metavar="N",
                   help="with --video: serial/pipelined pairs of runs (default 3)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT",
                   help="write the results as JSON to OUT ('-': stdout, the table then goes "
                        "to stderr)")
    p.add_argument("--markdown", type=Path, default=None, metavar="OUT",
                   help="write a markdown report to OUT")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="always draw the progress bar (default: when stderr is a terminal)")
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    add_debug_flag(p)
    return p


def default_models() -> tuple[list[str], str]:
    """Registry names of the pose models available without a download: in
    the model dir or the cache, else (when nothing is) in a mirror folder.

    Returns:
        (names, where they were found).
    """
    from edgepose.registry import ModelStore

    store = ModelStore.from_env()
    names = [e.name for e in store.registry
             if e.task != "detector" and store.local_path(e) is not None]
    if names:
        return names, "the model dir and the cache"
    mirror = store.mirror_dir
    if mirror is not None and mirror.is_dir():
        files = {f for _, _, fs in os.walk(mirror) for f in fs}
        names = [e.name for e in store.registry
                 if e.task != "detector" and e.file in files
                 and store.expected_sha256(e) is not None]
        if names:
            return names, f"the mirror {mirror} (copied into the cache when first used)"
    return [], ""


def _resolve(arg: str, bar: ProgressBar) -> None:
    """Fetches a registry name into the cache, with a progress bar (files pass)."""
    from edgepose import registry

    if Path(arg).exists() or not registry.looks_like_name(arg):
        return
    store = registry.ModelStore.from_env()
    if arg not in store.registry:
        return  # describe_model reports the unknown name

    def progress(done: int, total: int | None) -> None:
        text = f"fetching {arg}: {done / 1e6:.1f} MB"
        if total:
            text = f"fetching {arg} [{_bar(done / total)}] {done / 1e6:.1f}/{total / 1e6:.1f} MB"
        bar.draw(text)

    try:
        store.resolve(arg, progress=progress)
    finally:
        bar.done()


def _first_backend(arg: str, backends: list[str | None]) -> str | None:
    """The first of ``backends`` that opens the file of ``arg`` (None: by file type)."""
    from edgepose.bench.runner import backend_supports

    if Path(arg).exists():
        for b in backends:
            if b is None or backend_supports(b, arg):
                return b
    return None


def _image_settings(path: Path) -> tuple[bytes, dict]:
    from edgepose.images import import_cv2

    import numpy as np

    cv2 = import_cv2()
    if not path.is_file():
        raise UsageError(f"--image {path} does not exist: pass a photo with people in it.")
    data = path.read_bytes()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read the image {path}: it is not an image OpenCV can decode "
                         "(JPEG, PNG, BMP, ...).")
    return data, {"path": str(path), "sha256": hashlib.sha256(data).hexdigest(),
                  "bytes": len(data), "width": int(image.shape[1]), "height": int(image.shape[0])}


def _video_settings(path: Path) -> dict:
    from edgepose.images import import_cv2

    cv2 = import_cv2()
    if not path.is_file():
        raise UsageError(f"--video {path} does not exist: pass a video file.")
    cap = cv2.VideoCapture(str(path))
    try:
        ok, frame = cap.read() if cap.isOpened() else (False, None)
        if not ok:
            raise ValueError(f"cannot read the video {path}: OpenCV cannot decode a frame of it "
                             "(mp4, avi, mkv, ...).")
        return {"path": str(path), "sha256": sha256_file(path), "bytes": path.stat().st_size,
                "width": int(frame.shape[1]), "height": int(frame.shape[0]),
                "frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None,
                "fps": float(cap.get(cv2.CAP_PROP_FPS)) or None}
    finally:
        cap.release()


def main(argv: list[str] | None = None) -> int:
    """Runs ``edgepose-bench``; returns the exit status (0 ok, 1 failed work,
    2 usage error, 130 interrupted; argparse's errors exit 2 by ``SystemExit``)."""
    return run_command(_main, argv, "edgepose-bench")


def _main(argv_list: list[str]) -> int:
    args = build_parser().parse_args(argv_list)
    out = sys.stderr if args.json is not None and str(args.json) == "-" else sys.stdout
    if args.json is not None and str(args.json) != "-":
        check_output_file(args.json, "--json")
    if args.markdown is not None:
        check_output_file(args.markdown, "--markdown")

    from edgepose.bench import report
    from edgepose.bench.probe import probe_machine
    from edgepose.bench.runner import BenchConfig, RunSettings, describe_model, run_config

    image_path = args.image or (Path(os.environ[IMAGE_ENV]) if os.environ.get(IMAGE_ENV) else None)
    if image_path is None and args.video is None:
        raise UsageError(_NO_IMAGE_HELP.format(env=IMAGE_ENV))
    for arg in args.models:
        check_model_arg(arg, "MODEL")
    check_model_arg(args.detector, "--detector")
    image_bytes, image_info = None, None
    if image_path is not None:
        image_bytes, image_info = _image_settings(image_path)
    video_info = None
    if args.video is not None:
        video_info = _video_settings(args.video)
        video_info |= {"max_frames": args.video_frames, "detect_every": args.detect_every,
                       "repeats": args.repeats}

    models = list(args.models)
    if not models:
        models, where = default_models()
        if not models:
            raise UsageError(_NO_MODELS_HELP)
        print(f"(no MODEL given: the {len(models)} pose model(s) in {where}: "
              f"{', '.join(models)})", file=sys.stderr)

    enabled = args.progress if args.progress is not None else sys.stderr.isatty()
    bar = ProgressBar(enabled)
    described: dict[str, dict] = {}
    try:
        for arg in models + ([args.detector] if args.detector else []):
            if arg in described:
                continue
            _resolve(arg, bar)
            is_detector = arg == args.detector
            backends = [args.detector_backend] if is_detector else (args.backend or [None])
            described[arg] = describe_model(arg, "detector" if is_detector else "pose",
                                            backend=_first_backend(arg, backends))
    finally:
        bar.done()
    if args.detector and described[args.detector]["card"]["task"] != "detector":
        raise UsageError(f"--detector {args.detector} is a "
                         f"{described[args.detector]['card']['task']} pose model, not a person "
                         "detector.")
    for arg in models:
        if described[arg]["card"]["task"] == "detector":
            raise UsageError(f"{arg} is a person detector: pass it as --detector and a pose "
                             "model as MODEL.")

    threads = args.threads or [available_cores()]
    backends = args.backend or [None]
    configs = [BenchConfig(m, args.detector if described[m]["card"]["task"] != "bottomup"
                           else None, b, args.detector_backend, t)
               for m in models for b in backends for t in threads]
    settings = RunSettings(runs=args.runs, warmup=args.warmup, duration_s=args.duration)
    machine = probe_machine()
    from edgepose.images import import_cv2

    cv2 = import_cv2()

    run_settings = {"runs": args.runs, "warmup": args.warmup, "duration_s": args.duration,
                    "backends": args.backend, "threads": threads, "detector": args.detector,
                    "detector_backend": args.detector_backend,
                    "opencv_threads": int(cv2.getNumThreads()), "units": "ms",
                    "image": image_info, "video": video_info}

    results = []
    for i, config in enumerate(configs if image_bytes is not None else [], 1):
        label = (f"[{i}/{len(configs)}] {Path(config.model).name} "
                 f"{config.backend or 'auto'} threads={config.threads or 'default'}")

        def progress(done, total, elapsed, duration, label=label):
            frac = elapsed / duration if duration else done / total
            fps = done / elapsed if elapsed > 0 else 0.0
            count = f"{elapsed:.0f}/{duration:.0f} s" if duration else f"{done}/{total}"
            bar.draw(f"{label} [{_bar(frac)}] {count} {fps:.1f} fps", force=done == total)

        bar.draw(f"{label} loading...", force=True)
        row = run_config(config, image_bytes, settings,
                         model_path=described[config.model]["path"],
                         detector_path=(described[config.detector]["path"]
                                        if config.detector else None),
                         progress=progress)
        bar.done()
        results.append(row)

    video_results = []
    if args.video is not None:
        from edgepose.bench.runner import run_video_config

        for i, config in enumerate(configs, 1):
            bar.draw(f"[{i}/{len(configs)}] {Path(config.model).name} "
                     f"{config.backend or 'auto'} threads={config.threads or 'default'}: "
                     f"tracking {args.video.name} serially and pipelined, {args.repeats}x...",
                     force=True)
            video_results.append(run_video_config(
                config, args.video, detect_every=args.detect_every, max_frames=args.video_frames,
                warmup=args.warmup, repeats=args.repeats,
                model_path=described[config.model]["path"],
                detector_path=described[config.detector]["path"] if config.detector else None))
            bar.done()

    doc = report.build_document(
        command="edgepose-bench " + " ".join(shlex.quote(a) for a in argv_list),
        settings=run_settings, machine=machine, models=described, results=results,
        video=video_results)
    out.write(report.to_text(doc))
    out.flush()
    if args.json is not None:
        text = report.to_json(doc)
        if str(args.json) == "-":
            sys.stdout.write(text)
        else:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(text)
            print(f"wrote {args.json}", file=sys.stderr)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report.to_markdown(doc))
        print(f"wrote {args.markdown}", file=sys.stderr)
    return 1 if any(r["status"] == "error" for r in results + video_results) else 0
