"""The ``edgepose`` command line.

``edgepose run INPUT --model M [--detector D] [--backend B] [--threads T] [--out DIR]``
runs pose estimation on an image, a folder of images, a video file or a
camera index, writes annotated images (or an annotated video) into ``--out``
and one JSON line per frame to ``--out/poses.jsonl`` (or stdout with
``--out -``). M and D are files or registry names. Videos and cameras are
tracked (:class:`edgepose.PoseTracker`: ``track_id`` per person, the
detector every ``--detect-every`` frames, ``--smooth`` for One-Euro
smoothing) and pipelined (:mod:`edgepose.pipeline`); their JSON lines carry
``timestamp_ms`` and ``--out`` gets ``summary.json`` (fps, stage times).

``edgepose models list | info NAME | pull NAME... | import PATH [--name N] | verify``
manages the model registry and cache (:mod:`edgepose.registry`).

``edgepose eval MODEL --annotations FILE --images DIR [--detector D | --gt-boxes]``
scores a model with COCO OKS AP/AR (identical to pycocotools) and PCK
(:mod:`edgepose.evaluation`).

``edgepose export SOURCE --out DIR [--to ...] [--precision ...] ...`` converts
and quantizes a model with the export stage (``edgepose_export.cli``, imported
only for this command; it needs ``pip install 'edgepose[export]'``).

Every command reports a mistake as one line ``edgepose: error: ...`` on stderr
(``--debug`` adds the traceback) and exits 0 ok, 1 failed work (a model, card,
annotation or image file that cannot be used, a runtime failure, failed
inputs), 2 usage error (bad arguments, a path or model name that names
nothing), 130 interrupted (:mod:`edgepose._cli`). ``edgepose run`` on a folder
reports an image it cannot read or estimate, skips it, processes the others and
ends with ``edgepose: error: N of M inputs failed`` (exit 1). With ``--out -``
stdout carries only the JSON lines.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from edgepose._argtypes import positive_int
from edgepose._cli import (EXIT_FAILED, EXIT_OK, UsageError, add_debug_flag, check_model_arg,
                           check_output_dir, error_line, run_command)
from edgepose.images import import_cv2

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


class Progress:
    """A one-line progress bar on stderr, redrawn in place (when enabled)."""

    def __init__(self, total: int | None, label: str, enabled: bool) -> None:
        self.total, self.label, self.enabled = total, label, enabled
        self.count, self.start = 0, time.perf_counter()
        self._drawn = False

    def update(self) -> None:
        self.count += 1
        if not self.enabled:
            return
        rate = self.count / max(time.perf_counter() - self.start, 1e-9)
        if self.total:
            done = int(30 * self.count / self.total)
            bar = "#" * done + "." * (30 - done)
            text = f"\r{self.label} [{bar}] {self.count}/{self.total} {rate:5.1f} fps"
        else:
            text = f"\r{self.label} {self.count} frames {rate:5.1f} fps"
        sys.stderr.write(text)
        sys.stderr.flush()
        self._drawn = True

    def close(self) -> None:
        """Ends the bar's line (also before a message is printed below it)."""
        if self._drawn:
            sys.stderr.write("\n")
            self._drawn = False

    clear = close


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


class ByteProgress:
    """A download progress bar on stderr: redrawn in place on a terminal,
    a single final line otherwise."""

    def __init__(self, label: str, enabled: bool = True) -> None:
        self.label, self.enabled = label, enabled
        self.tty = sys.stderr.isatty()
        self.done, self.total, self.start = 0, None, time.perf_counter()
        self._drawn = False

    def __call__(self, done: int, total: int | None) -> None:
        self.done, self.total = done, total
        if self.enabled and self.tty:
            sys.stderr.write("\r" + self._line())
            sys.stderr.flush()
            self._drawn = True

    def _line(self) -> str:
        mb = self.done / 1e6
        rate = mb / max(time.perf_counter() - self.start, 1e-9)
        if self.total:
            done = int(30 * min(self.done, self.total) / self.total)
            bar = "#" * done + "." * (30 - done)
            return (f"{self.label} [{bar}] {mb:.1f}/{self.total / 1e6:.1f} MB "
                    f"{rate:.1f} MB/s")
        return f"{self.label} {mb:.1f} MB {rate:.1f} MB/s"

    def close(self) -> None:
        if not self.enabled or (not self._drawn and self.done == 0):
            return
        sys.stderr.write(("\r" if self.tty else "") + self._line() + "\n")
        sys.stderr.flush()


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
        bar = ByteProgress(f"fetching {name}", enabled=not quiet)
        try:
            store.resolve(name, progress=bar)
        finally:
            bar.close()


class _Output:
    """Where ``edgepose run`` writes: JSON lines (a file in ``--out``, or
    stdout), and annotated images or an annotated video."""

    def __init__(self, args: argparse.Namespace, fps: float) -> None:
        self.to_stdout = args.out == "-"
        self.dir = None if self.to_stdout else check_output_dir(args.out, "--out")
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
        self.draw = self.dir is not None and not args.no_draw
        self.fps = fps
        self.lines = sys.stdout if self.to_stdout else open(self.dir / "poses.jsonl", "w")
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
    kind, files = _source(args.input)
    check_model_arg(args.model, "--model")
    check_model_arg(args.detector, "--detector")
    if args.out != "-":
        check_output_dir(args.out, "--out")
    _fetch_named([args.model, args.detector], args.quiet)
    if kind == "video":
        return _run_video(args)
    from edgepose import Estimator

    if len(files) == 1:  # one image: its error is the command's, before any work
        _read_image(files[0])
    with Estimator(args.model, args.detector, backend=args.backend, threads=args.threads,
                   preset=args.preset, detector_preset=args.detector_preset) as est:
        return _run_images(args, est, files, skip_bad=len(files) > 1)


def _run_images(args: argparse.Namespace, est, files: list[Path], skip_bad: bool) -> int:
    out = _Output(args, 0.0)
    progress = Progress(len(files), "edgepose run", enabled=not args.quiet and len(files) != 1)
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
    from edgepose.smoothing import OneEuroParams

    if not args.smooth:
        return None
    defaults = OneEuroParams()
    return OneEuroParams(min_cutoff=defaults.min_cutoff if args.min_cutoff is None else args.min_cutoff,
                         beta=defaults.beta if args.beta is None else args.beta)


def _run_video(args: argparse.Namespace) -> int:
    """A video file or camera: tracked (ids), pipelined, optionally smoothed."""
    from edgepose import Estimator
    from edgepose.backends._base import available_cores
    from edgepose.detectors import PersonDetector
    from edgepose.pipeline import FRAME_STAGES, track_frames, video_frames
    from edgepose.tracking import PoseTracker

    total, fps = _video_info(args.input)
    if args.max_frames is not None:
        total = args.max_frames if total is None else min(total, args.max_frames)
    frames = video_frames(args.input)
    smoothing = _smoothing(args)
    threads = args.threads
    if threads is None and not args.serial and args.detector is not None:
        # The detector and the pose model run at the same time: half the cores
        # each (one full pool each left both slower than serial on 2 cores).
        threads = max(1, available_cores() // 2)
    parts: list = []
    try:
        est = Estimator(args.model, backend=args.backend, threads=threads, preset=args.preset)
        parts.append(est)
        det = None
        if args.detector is not None:
            det = PersonDetector.from_file(args.detector, preset=args.detector_preset,
                                           backend=args.backend, threads=threads)
            parts.append(det)
        tracker = PoseTracker(est, det, detect_every=args.detect_every, metric=args.track_metric,
                              smoothing=smoothing, fps=fps)
    except BaseException:
        frames.close()
        for part in parts:
            part.close()
        raise
    out = _Output(args, fps)
    progress = Progress(total, "edgepose run", enabled=not args.quiet)
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
    if out.dir is not None:
        (out.dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if not args.quiet:
        print(_video_summary_text(summary), file=sys.stderr)
        if out.dir is not None:
            print(f"wrote {progress.count} frame(s) to {out.dir}", file=sys.stderr)
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
                 "(edgepose-bench --video times serial against pipelined)")
    return text


# --- edgepose models ---------------------------------------------------------------

def _size_text(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e6:.1f} MB"


def _store():
    from edgepose.registry import ModelStore

    return ModelStore.from_env()


def _where_text(store) -> str:
    from edgepose.registry import MIRROR_ENV, MODEL_DIR_ENV

    model_dir = str(store.model_dir) if store.model_dir else f"none ({MODEL_DIR_ENV} not set)"
    mirror = store.mirror or f"none ({MIRROR_ENV} not set)"
    offline = "  [offline]" if store.offline else ""
    return f"cache: {store.models_dir}\nmodel dir: {model_dir}\nmirror: {mirror}{offline}"


def _local_status(store, entry) -> str:
    if store.expected_sha256(entry) is None:
        return "needs import"
    local = store.local_path(entry)
    if local is not None:
        return "cached" if local[0] == "cache" else "model dir"
    if entry.url is None:
        return "- (no upstream)"
    return "-"


def models_list(args: argparse.Namespace) -> int:
    store = _store()
    print(_where_text(store))
    print()
    rows = [("NAME", "TASK", "HEAD", "FORMAT", "SIZE", "LOCAL")]
    for entry in store.registry:
        rows.append((entry.name, entry.task, entry.head, entry.format,
                     _size_text(entry.size or store.expected_size(entry)),
                     _local_status(store, entry)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def models_info(args: argparse.Namespace) -> int:
    store = _store()
    entry = store.registry.get(args.name)
    expected = store.expected_sha256(entry)
    lines = [entry.name, f"  {entry.description}"]

    def field(key: str, value: object) -> None:
        lines.append(f"  {key:<12} {value}")

    field("task", f"{entry.task}, head {entry.head}, keypoints {entry.keypoints or '-'}"
          + (f", input {entry.input_hw[0]}x{entry.input_hw[1]}" if entry.input_hw else ""))
    field("preset", entry.preset or "none (edgepose has no card for it yet)")
    size = entry.size or store.expected_size(entry)
    field("file", f"{entry.file} ({size} bytes)" if size else entry.file)
    if entry.sha256 is not None:
        field("sha256", entry.sha256)
    elif expected is not None:
        record = store.imported(entry) or {}
        field("sha256", f"{expected} (not pinned by edgepose: imported by you from "
              f"{record.get('imported_from', '?')})")
    else:
        field("sha256", "unknown: this edgepose release has not pinned it")
    field("licence", entry.license)
    if entry.archive is not None:
        field("upstream", f"{entry.url}")
        archive = entry.archive
        field("archive", f"{archive.file}, holding {archive.member} (extracted into the cache "
              f"as {entry.file}); archive sha256 {archive.sha256 or 'unknown'}")
    else:
        field("upstream", entry.url or "none: a conversion with no public release; it "
              "resolves only from the model dir, the cache or the mirror")
    field("source", entry.source)
    if entry.note:
        field("note", entry.note)
    local = store.local_path(entry)
    field("local", f"{local[1]} ({local[0]})" if local else "none")
    if expected is None:
        lines += [
            "",
            f"  edgepose will not use {entry.name} until you vouch for a copy: its sha256 could",
            "  not be pinned in this release, and edgepose uses no file it cannot verify.",
            f"  Download {entry.url or entry.file}, check it, then run",
            f"      edgepose models import FILE --name {entry.name}",
            "  (FILE: the zip or the extracted .onnx). This copies the model into the cache and",
            "  records its sha256 in",
            f"      {store.cache_dir / 'imported.json'}",
            "  which later copies (model dir, mirror) must match.",
        ]
    print("\n".join(lines))
    return 0


def models_pull(args: argparse.Namespace) -> int:
    store = _store()
    for name in args.names:
        store.registry.get(name)  # unknown names fail before any download
    for name in args.names:
        bar = ByteProgress(f"{name}", enabled=not args.quiet)
        try:
            found = store.pull(name, progress=bar, force=args.force)
        finally:
            bar.close()
        origin = "already cached" if found.origin == "cache" else f"from {found.detail}"
        print(f"{name}: {found.path} ({origin}, sha256 verified)")
    return 0


def models_import(args: argparse.Namespace) -> int:
    store = _store()
    found = store.import_file(args.path, name=args.name)
    print(f"{found.entry.name}: imported {args.path} -> {found.path} (sha256 "
          f"{store.expected_sha256(found.entry)})")
    return 0


def models_verify(args: argparse.Namespace) -> int:
    store = _store()
    results = store.verify(remove_bad=args.remove_bad)
    if not results:
        print(f"{store.models_dir}: empty")
        return 0
    bad = 0
    for r in results:
        name = r.entry.name if r.entry else "-"
        removed = " (removed)" if r.removed else ""
        if r.status == "ok":
            print(f"ok        {name:<34} {r.path.name}")
        elif r.status == "mismatch":
            bad += 1
            print(f"MISMATCH  {name:<34} {r.path.name}: sha256 {r.actual}, expected "
                  f"{r.expected}{removed}")
        elif r.status == "partial":
            bad += 1
            print(f"PARTIAL   {'-':<34} {r.path.name}: an interrupted download{removed}")
        elif r.status == "unpinned":
            print(f"unpinned  {name:<34} {r.path.name}: no sha256 to check against "
                  f"(edgepose models import {r.path} --name {name})")
        else:
            print(f"unknown   {'-':<34} {r.path.name}: not a registry file")
    if bad and not args.remove_bad:
        error_line("edgepose", f"{bad} bad file(s): `edgepose models verify --remove-bad` "
                   "removes them.")
    return 1 if bad and not args.remove_bad else 0


def _add_models_parser(sub) -> None:
    p = sub.add_parser("models", help="list, fetch, import and verify models by name",
                       description="The model registry and cache. Environment: EDGEPOSE_CACHE "
                       "(cache folder), EDGEPOSE_MODEL_DIR (your model files), EDGEPOSE_MIRROR "
                       "(a folder or an http(s) base URL that holds model files), "
                       "EDGEPOSE_OFFLINE=1 (no network).")
    add_debug_flag(p, sub=True)
    msub = p.add_subparsers(dest="models_command", required=True)
    q = msub.add_parser("list", help="every known model and whether it is available locally")
    add_debug_flag(q, sub=True)
    q.set_defaults(func=models_list)
    q = msub.add_parser("info", help="everything about one model")
    q.add_argument("name")
    add_debug_flag(q, sub=True)
    q.set_defaults(func=models_info)
    q = msub.add_parser("pull", help="fetch models into the cache (mirror, then upstream)")
    q.add_argument("names", nargs="+", metavar="NAME")
    q.add_argument("--force", action="store_true", help="fetch again even if cached")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    add_debug_flag(q, sub=True)
    q.set_defaults(func=models_pull)
    q = msub.add_parser("import", help="copy a model file you have into the cache "
                        "(recognised by its sha256, or named with --name)")
    q.add_argument("path")
    q.add_argument("--name", help="the registry name; needed for models without a pinned "
                   "sha256 (rtmpose-*), whose hash you then vouch for")
    add_debug_flag(q, sub=True)
    q.set_defaults(func=models_import)
    q = msub.add_parser("verify", help="hash every cached file again")
    q.add_argument("--remove-bad", action="store_true",
                   help="delete files with a wrong sha256 and leftover partial downloads")
    add_debug_flag(q, sub=True)
    q.set_defaults(func=models_verify)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgepose", description="2D human pose estimation on the edge.",
        epilog="Exit codes: 0 ok, 1 failed work (a bad model, card, annotation or image file, "
        "failed inputs, a runtime failure), 2 usage error, 130 interrupted.")
    add_debug_flag(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run a pose model on an image, a folder, a video or a camera")
    add_debug_flag(p, sub=True)
    p.add_argument("input", help="an image, a folder of images, a video file or a camera index")
    p.add_argument("--model", required=True,
                   help="pose model file (.onnx, .tflite, .xml) or name (edgepose models list)")
    p.add_argument("--detector", help="person detector file or name, for top-down models")
    p.add_argument("--preset", help="card preset of the pose model, if it carries no card")
    p.add_argument("--detector-preset", help="card preset of the detector")
    p.add_argument("--backend", choices=["onnxruntime", "tflite", "openvino"])
    p.add_argument("--threads", type=positive_int,
                   help="inference threads per model (default: the runtime's own; a pipelined "
                        "video with a detector: half the cores each)")
    p.add_argument("--out", default="edgepose_out",
                   help="output folder (default: edgepose_out), or - for JSON lines on stdout")
    p.add_argument("--no-draw", action="store_true", help="write JSON only, no annotated images")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
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
    _add_models_parser(sub)
    from edgepose.evaluation.cli import add_eval_arguments, run_eval

    e = sub.add_parser("eval", help="OKS AP/AR and PCK of a model on an annotation file")
    add_eval_arguments(e)
    add_debug_flag(e, sub=True)
    e.set_defaults(func=run_eval)
    sub.add_parser("export", add_help=False,
                   help="convert and quantize a model (ONNX, OpenVINO, TFLite) with parity "
                   "reports; needs the export extra (edgepose export --help)")
    return parser


def export(argv: list[str]) -> int:
    """``edgepose export ...``: hands the arguments to the export stage, imported here."""
    try:
        from edgepose_export.cli import main as export_main
    except ImportError as exc:
        raise ImportError(f"edgepose export needs the export stage: pip install "
                          f"'edgepose[export]' ({exc}).") from exc
    return export_main(argv, prog="edgepose export")


def _main(argv: list[str]) -> int:
    if argv[:1] == ["export"] or argv[:2] == ["--debug", "export"]:
        rest = argv[argv.index("export") + 1:]
        return export(rest + ["--debug"] if argv[0] == "--debug" else rest)
    args = build_parser().parse_args(argv)
    if args.command == "models" and args.models_command in ("info", "pull"):
        for name in [args.name] if args.models_command == "info" else args.names:
            try:
                _store().registry.get(name)
            except ValueError as exc:  # an unknown name: the command line is wrong
                raise UsageError(str(exc)) from None
    return args.func(args)


def main(argv: list[str] | None = None) -> int:
    """Runs ``edgepose``; returns the exit status (0 ok, 1 failed work, 2 usage
    error, 130 interrupted; see :mod:`edgepose._cli`). argparse's errors exit 2
    by ``SystemExit``."""
    return run_command(_main, argv, "edgepose")


if __name__ == "__main__":
    raise SystemExit(main())
