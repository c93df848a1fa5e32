"""The ``edgepose`` command line.

``edgepose run INPUT --model M [--detector D] [--backend B] [--threads T] [--out DIR]``
runs pose estimation on an image, a folder of images, a video file or a
camera index, writes annotated images (or an annotated video) into ``--out``
and one JSON line per frame to ``--out/poses.jsonl`` (or stdout with
``--out -``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from edgepose.images import import_cv2

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


class Progress:
    """A one-line progress bar on stderr (silent when stderr is not a terminal
    unless forced)."""

    def __init__(self, total: int | None, label: str, enabled: bool) -> None:
        self.total, self.label, self.enabled = total, label, enabled
        self.count, self.start = 0, time.perf_counter()

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

    def close(self) -> None:
        if self.enabled and self.count:
            sys.stderr.write("\n")


def _frames(source: str) -> tuple[Iterator[tuple[str, np.ndarray, float | None]], int | None, str, float]:
    """(name, image, timestamp_ms) frames of an image, folder, video or camera;
    the frame count when known; the kind; the frame rate (videos)."""
    cv2 = import_cv2()

    if source.isdigit():
        cap = cv2.VideoCapture(int(source))
        if not cap.isOpened():
            raise SystemExit(f"error: camera {source} could not be opened.")
        return _video_frames(cap), None, "video", cap.get(cv2.CAP_PROP_FPS) or 30.0
    path = Path(source)
    if not path.exists():
        raise SystemExit(f"error: {source} does not exist (expected an image, a folder, a video "
                         "file or a camera index).")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SystemExit(f"error: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {source}.")
        return _image_frames(files), len(files), "images", 0.0
    if path.suffix.lower() in VIDEO_SUFFIXES:
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise SystemExit(f"error: {source} could not be opened as a video.")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        return _video_frames(cap), count, "video", cap.get(cv2.CAP_PROP_FPS) or 30.0
    return _image_frames([path]), 1, "images", 0.0


def _image_frames(files):
    cv2 = import_cv2()

    for f in files:
        image = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"error: {f} could not be read as an image.")
        yield f.name, image, None


def _video_frames(cap):
    cv2 = import_cv2()

    index = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield f"frame_{index:06d}", frame, cap.get(cv2.CAP_PROP_POS_MSEC)
            index += 1
    finally:
        cap.release()


def run(args: argparse.Namespace) -> int:
    cv2 = import_cv2()

    from edgepose import Estimator

    frames, total, kind, fps = _frames(args.input)
    to_stdout = args.out == "-"
    out_dir = None if to_stdout else Path(args.out)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    lines = sys.stdout if to_stdout else open(out_dir / "poses.jsonl", "w")
    writer = None
    progress = Progress(total, "edgepose run", enabled=not args.quiet and (total or 0) != 1)
    try:
        with Estimator(args.model, args.detector, backend=args.backend, threads=args.threads,
                       preset=args.preset, detector_preset=args.detector_preset) as est:
            for index, (name, image, stamp) in enumerate(frames):
                result = est(image)
                record = {"frame": index, "source": name, **result.to_dict()}
                if stamp is not None:
                    record["timestamp_ms"] = round(float(stamp), 3)
                lines.write(json.dumps(record) + "\n")
                if out_dir is not None and not args.no_draw:
                    drawn = result.draw(image)
                    if kind == "video":
                        if writer is None:
                            h, w = drawn.shape[:2]
                            writer = cv2.VideoWriter(str(out_dir / "annotated.mp4"),
                                                     cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                        writer.write(drawn)
                    else:
                        cv2.imwrite(str(out_dir / f"{Path(name).stem}_pose.jpg"), drawn)
                progress.update()
    finally:
        progress.close()
        if writer is not None:
            writer.release()
        if not to_stdout:
            lines.close()
    if not to_stdout and not args.quiet:
        print(f"wrote {progress.count} frame(s) to {out_dir}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgepose", description="2D human pose estimation on the edge.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run a pose model on an image, a folder, a video or a camera")
    p.add_argument("input", help="an image, a folder of images, a video file or a camera index")
    p.add_argument("--model", required=True, help="pose model file (.onnx, .tflite, .xml)")
    p.add_argument("--detector", help="person detector file, for top-down models")
    p.add_argument("--preset", help="card preset of the pose model, if it carries no card")
    p.add_argument("--detector-preset", help="card preset of the detector")
    p.add_argument("--backend", choices=["onnxruntime", "tflite", "openvino"])
    p.add_argument("--threads", type=int, help="inference threads per model")
    p.add_argument("--out", default="edgepose_out",
                   help="output folder (default: edgepose_out), or - for JSON lines on stdout")
    p.add_argument("--no-draw", action="store_true", help="write JSON only, no annotated images")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, ImportError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
