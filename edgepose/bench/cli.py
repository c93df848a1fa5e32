"""``edgepose bench`` (also installed as ``edgepose-bench``): latency per stage
of pose models on this machine.

::

    edgepose bench [MODEL ...] [--model M] [--detector D]
                   [--backend onnxruntime,tflite,openvino] [--threads 1,2,4]
                   [--device D] [--precision P] [--providers P,...] [--no-xnnpack]
                   [--runs N] [--warmup N] [--duration S] [--image PATH]
                   [--video PATH [--max-frames N] [--detect-every N] [--repeats N]]
                   [--json PATH] [--markdown PATH] [--quiet | --progress]
                   [--cluster ADDR [--devices A,B] [--insecure] [--tls-ca-file PEM
                    --tls-cert PEM --tls-key PEM] [--allow-mixed-versions]
                    [--plot PNG] [--annotations JSON --images DIR [--ap-tolerance AP]]]

For each model x backend x thread count: p50, p90, p99 and mean of every
stage (decode image, detector, crop/preprocess, inference, postprocess/decode,
total), FPS, peak RSS, the model file's size, parameters and GFLOPs; a header
identifying the machine. With ``--video``, also the throughput of tracking
the video (:class:`edgepose.PoseTracker`) serially and pipelined
(:mod:`edgepose.video.pipeline`), run back to back, and the gain. Models are files
or registry names. Without ``--image`` (or ``$EDGEPOSE_BENCH_IMAGE``) the
sample photo edgepose ships is timed (:func:`edgepose.data.sample_path`),
with a note on stderr unless ``--quiet``. The table goes to stdout (stderr
with ``--json -``), the progress bar and notes to stderr. Renamed flags still
work, with a note: ``--video-frames`` (now ``--max-frames``, as in ``edgepose
run``), ``--no-progress`` (now ``--quiet``). ``--device``, ``--precision``,
``--providers`` and ``--no-xnnpack`` make one :class:`edgepose.RuntimeOptions`
(``settings.runtime`` in the JSON); each model gets the options of the
backend it runs on.

With ``--cluster ADDR`` every configuration runs on every device of a Dask
lab (``pip install 'edgepose[fleet]'``), one at a time per device, into one
report (:mod:`edgepose.fleet.bench`, :mod:`edgepose.fleet.bench_cli`);
without it Dask is never imported.

Exit status (as every edgepose command, :mod:`edgepose._cli`): 0 when every
configuration ran (or was skipped because a backend cannot open a file type);
1 when one failed, or a model, image or video file exists but cannot be used;
2 for a usage error (bad arguments, no model given or found, a file or model
name that names nothing); 130 when interrupted. Errors are one line on
stderr; ``--debug`` adds the traceback.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import sys
from pathlib import Path

from edgepose._argtypes import non_negative_int, positive_int
from edgepose._cli import (UsageError, add_backend_flag, add_debug_flag, add_deprecated_alias,
                           add_json_flag, add_quiet_flag, add_threads_flag, backend_name,
                           check_model_arg, check_output_file, run_command)
from edgepose._files import sha256_file
from edgepose.card import WHOLE_IMAGE_TASKS
from edgepose._one_stage_flags import (add_one_stage_flags, given_one_stage_flags,
                                       one_stage_from_args)
from edgepose._runtime_flags import add_runtime_flags, runtime_from_args
from edgepose.backends._base import available_cores
from edgepose.fleet.flags import (add_cluster_flags, add_lab_bench_flags,
                                  check_lab_bench_flags)
from edgepose.progress import ProgressBar, meter

__all__ = ["main", "build_parser", "add_bench_arguments", "run_bench", "default_models",
           "IMAGE_ENV", "BENCH_DESCRIPTION"]

#: Environment variable naming the default image when --image is not given.
IMAGE_ENV = "EDGEPOSE_BENCH_IMAGE"

BENCH_DESCRIPTION = (
    "Latency per stage of pose models on this machine: decode image, detector, "
    "crop/preprocess, inference, postprocess, total (p50/p90/p99/mean), FPS, peak RSS, model "
    "size, parameters and GFLOPs. Times the sample photo edgepose ships unless --image (or "
    f"${IMAGE_ENV}) names one.")

_NO_MODELS_HELP = (
    "No pose model given and none found locally (model dir or cache). Name models or "
    "files: edgepose bench movenet-lightning --detector yolox-nano. Names resolve through "
    "the registry: set EDGEPOSE_MODEL_DIR to a folder of model files, or EDGEPOSE_MIRROR to "
    "a folder or URL that holds them, or fetch them into the cache with "
    "`edgepose models pull movenet-lightning yolox-nano` (see `edgepose models list`).")


def _seconds(text: str) -> float:
    try:
        s = float(text)
    except ValueError:
        s = 0.0
    if not s > 0 or s != s or s == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return s


def add_bench_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds the bench's arguments (all but ``--debug``) to ``p``: the same for
    ``edgepose bench`` and ``edgepose-bench``."""
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="pose model files or registry names (default: the pose models found "
                        "in EDGEPOSE_MODEL_DIR or the cache, else in an EDGEPOSE_MIRROR folder)")
    p.add_argument("--model", dest="model_opts", action="append", default=None,
                   metavar="MODEL",
                   help="a pose model, as an option (the same as MODEL; may be repeated)")
    p.add_argument("--detector", metavar="DETECTOR", default=None,
                   help="person detector file or name, run before each top-down model (a "
                        "one-stage pose model serves too: its people's boxes)")
    p.add_argument("--detector-backend", metavar="B", default=None, type=backend_name,
                   help="the detector's backend (default: chosen by its file type)")
    add_backend_flag(p, many=True,
                     help="pose model backends, comma-separated (default: chosen by each "
                          "file's type); a backend that cannot open a file type is skipped")
    add_threads_flag(p, many=True,
                     help="inference threads per model, e.g. 1,2,4, or 'default' for the "
                          f"runtime's own (default: the usable cores, {available_cores()})")
    add_runtime_flags(p)
    add_one_stage_flags(p)
    p.add_argument("--runs", type=positive_int, default=100, metavar="N",
                   help="timed runs per configuration (default 100)")
    p.add_argument("--warmup", type=non_negative_int, default=10, metavar="N",
                   help="untimed warm-up runs first (default 10)")
    p.add_argument("--duration", type=_seconds, default=None, metavar="S",
                   help="run each configuration for S seconds instead of --runs, and report "
                        "latency drift (thermal throttling): first vs last minute p50, or the "
                        "first vs last 20%% of a window shorter than two minutes")
    p.add_argument("--image", type=Path, default=None, metavar="PATH",
                   help=f"the image to time, with people in it (default: ${IMAGE_ENV}, else "
                        "the sample photo edgepose ships, 640 x 426, two people)")
    p.add_argument("--video", type=Path, default=None, metavar="PATH",
                   help="also track this video serially and pipelined (reading and detection "
                        "on worker threads) and report both throughputs; only the video is "
                        "timed unless --image is given too")
    p.add_argument("--max-frames", type=positive_int, default=None, metavar="N",
                   help="frames of the video per run (default: all)")
    add_deprecated_alias(p, "--video-frames", "--max-frames")
    p.add_argument("--detect-every", type=positive_int, default=1, metavar="N",
                   help="with --video: run the detector every N frames (default 1)")
    p.add_argument("--repeats", type=positive_int, default=3, metavar="N",
                   help="with --video: serial/pipelined pairs of runs (default 3)")
    add_json_flag(p, "the results")
    p.add_argument("--markdown", type=Path, default=None, metavar="PATH",
                   help="write a markdown report to PATH")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", action="store_true", default=None,
                     help="always draw the progress bar (default: when stderr is a terminal)")
    add_quiet_flag(bar)
    add_deprecated_alias(p, "--no-progress", "--quiet")
    add_cluster_flags(p)
    add_lab_bench_flags(p)
    p.set_defaults(func=run_bench)
    return p


def build_parser(prog: str = "edgepose-bench") -> argparse.ArgumentParser:
    """The parser of ``edgepose-bench`` (``edgepose bench`` adds the same
    arguments to its sub-parser)."""
    p = argparse.ArgumentParser(prog=prog, description=BENCH_DESCRIPTION)
    add_bench_arguments(p)
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

    fetching = ProgressBar(f"fetching {arg}", enabled=bar.enabled, live=bar.live)
    try:
        store.resolve(arg, progress=fetching)
    finally:
        fetching.clear()


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
    """Runs ``edgepose-bench`` (the same as ``edgepose bench``); returns the exit
    status (0 ok, 1 failed work, 2 usage error, 130 interrupted; argparse's
    errors exit 2 by ``SystemExit``)."""
    return run_command(_main, argv, "edgepose-bench")


def _main(argv_list: list[str]) -> int:
    args = build_parser().parse_args(argv_list)
    args.command_line = " ".join(["edgepose-bench", *(shlex.quote(a) for a in argv_list)])
    return run_bench(args)


def _image_path(args: argparse.Namespace) -> Path | None:
    """The image to time: --image, else $EDGEPOSE_BENCH_IMAGE, else (unless only
    a video is timed) the sample photo, with a note on stderr."""
    if args.image is not None:
        return args.image
    if os.environ.get(IMAGE_ENV):
        return Path(os.environ[IMAGE_ENV])
    if args.video is not None:
        return None
    from edgepose.data import sample_path

    path = sample_path()
    if not args.quiet:
        print(f"(no --image given: timing the sample photo edgepose ships, {path}, 640 x 426 "
              "with two people; pass --image PATH for frames like your application's)",
              file=sys.stderr)
    return path


def run_bench(args: argparse.Namespace) -> int:
    """Runs the bench for parsed arguments (:func:`add_bench_arguments`);
    returns the exit status. ``args.command_line`` is recorded in the report."""
    json_path = None if args.json is None else Path(args.json)
    out = sys.stderr if args.json == "-" else sys.stdout
    if json_path is not None and args.json != "-":
        check_output_file(json_path, "--json")
    if args.markdown is not None:
        check_output_file(args.markdown, "--markdown")
    check_lab_bench_flags(args)
    if args.plot is not None:
        check_output_file(args.plot, "--plot")

    from edgepose.bench import report
    from edgepose.bench.probe import probe_machine
    from edgepose.bench.runner import BenchConfig, RunSettings, describe_model, run_config

    models = list(args.models) + list(args.model_opts or [])
    for arg in models:
        check_model_arg(arg, "MODEL")
    check_model_arg(args.detector, "--detector")
    one_stage = one_stage_from_args(args)
    runtime = runtime_from_args(
        args, backends=(args.backend or [None]) + ([args.detector_backend] if args.detector
                                                   else []))
    image_bytes, image_info = None, None
    image_path = _image_path(args)
    if image_path is not None:
        image_bytes, image_info = _image_settings(image_path)
    video_info = None
    if args.video is not None:
        video_info = _video_settings(args.video)
        video_info |= {"max_frames": args.max_frames, "detect_every": args.detect_every,
                       "repeats": args.repeats}

    if not models:
        models, where = default_models()
        if not models:
            raise UsageError(_NO_MODELS_HELP)
        if not args.quiet:
            print(f"(no MODEL given: the {len(models)} pose model(s) in {where}: "
                  f"{', '.join(models)})", file=sys.stderr)

    enabled = (False if args.quiet else
               args.progress if args.progress is not None else sys.stderr.isatty())
    bar = ProgressBar(enabled=enabled, live=enabled)
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
        bar.clear()
    if args.detector and described[args.detector]["card"]["task"] not in ("detector",
                                                                          "onestage"):
        raise UsageError(f"--detector {args.detector} is a "
                         f"{described[args.detector]['card']['task']} pose model, not a person "
                         "detector (of pose models, only one-stage ones serve as detectors).")
    tasks = {m: described[m]["card"]["task"] for m in models}
    if one_stage and "onestage" not in tasks.values():
        given = given_one_stage_flags(args)
        raise UsageError(
            f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to one-stage "
            "multi-person models (YOLO-pose, MoveNet MultiPose); none of the models benched "
            f"is one ({', '.join(f'{m}: {t}' for m, t in tasks.items())}). Drop "
            f"{'it' if len(given) == 1 else 'them'}.")
    for arg in models:
        if described[arg]["card"]["task"] == "detector":
            raise UsageError(f"{arg} is a person detector: pass it as --detector and a pose "
                             "model as MODEL.")

    threads = args.threads or [available_cores()]
    backends = args.backend or [None]
    configs = [BenchConfig(m, args.detector if tasks[m] not in WHOLE_IMAGE_TASKS else None, b,
                           args.detector_backend, t, runtime,
                           one_stage if tasks[m] == "onestage" and one_stage else None)
               for m in models for b in backends for t in threads]
    settings = RunSettings(runs=args.runs, warmup=args.warmup, duration_s=args.duration)
    from edgepose.images import import_cv2

    cv2 = import_cv2()

    run_settings = {"runs": args.runs, "warmup": args.warmup, "duration_s": args.duration,
                    "backends": args.backend, "threads": threads, "detector": args.detector,
                    "detector_backend": args.detector_backend,
                    "one_stage": one_stage or None,
                    "runtime": {k: v for k, v in runtime.to_dict().items()
                                if k not in ("backend", "threads")},
                    "opencv_threads": int(cv2.getNumThreads()), "units": "ms",
                    "image": image_info, "video": video_info}
    if args.cluster is not None:
        from edgepose.fleet.bench_cli import run_lab_command

        return run_lab_command(args, configs=configs, described=described,
                               image_bytes=image_bytes, settings=settings,
                               run_settings=run_settings, out=out, json_path=json_path)
    machine = probe_machine()

    results = []
    for i, config in enumerate(configs if image_bytes is not None else [], 1):
        label = (f"[{i}/{len(configs)}] {Path(config.model).name} "
                 f"{config.backend or 'auto'} threads={config.threads or 'default'}")

        def progress(done, total, elapsed, duration, label=label):
            frac = elapsed / duration if duration else done / total
            fps = done / elapsed if elapsed > 0 else 0.0
            count = f"{elapsed:.0f}/{duration:.0f} s" if duration else f"{done}/{total}"
            bar.show(f"{label} [{meter(frac, 24)}] {count} {fps:.1f} fps", force=done == total)

        bar.show(f"{label} loading...", force=True)
        row = run_config(config, image_bytes, settings,
                         model_path=described[config.model]["path"],
                         detector_path=(described[config.detector]["path"]
                                        if config.detector else None),
                         progress=progress)
        bar.clear()
        results.append(row)

    video_results = []
    if args.video is not None:
        from edgepose.bench.runner import run_video_config

        for i, config in enumerate(configs, 1):
            bar.show(f"[{i}/{len(configs)}] {Path(config.model).name} "
                     f"{config.backend or 'auto'} threads={config.threads or 'default'}: "
                     f"tracking {args.video.name} serially and pipelined, {args.repeats}x...",
                     force=True)
            video_results.append(run_video_config(
                config, args.video, detect_every=args.detect_every, max_frames=args.max_frames,
                warmup=args.warmup, repeats=args.repeats,
                model_path=described[config.model]["path"],
                detector_path=described[config.detector]["path"] if config.detector else None))
            bar.clear()

    doc = report.build_document(
        command=getattr(args, "command_line", "edgepose-bench"),
        settings=run_settings, machine=machine, models=described, results=results,
        video=video_results)
    out.write(report.to_text(doc))
    out.flush()
    if json_path is not None:
        text = report.to_json(doc)
        if args.json == "-":
            sys.stdout.write(text)
        else:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(text)
            if not args.quiet:
                print(f"wrote {json_path}", file=sys.stderr)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report.to_markdown(doc))
        if not args.quiet:
            print(f"wrote {args.markdown}", file=sys.stderr)
    return 1 if any(r["status"] == "error" for r in results + video_results) else 0
