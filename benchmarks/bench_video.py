"""Video benchmark: PoseTracker speed, accuracy, identity and jitter on a real clip.

The clip: 480 x 360 crops of COCO val2017 000000196141 (five annotated
people), panning 160 px right and 30 px down over ``--frames`` frames at
30 fps (the geometry of ``tests/test_tracking.py::panning_clip``), written
to a temporary mp4 (mp4v) and decoded again by
:func:`edgepose.video.video_frames` in every run, so decoding is real
work. The ground truth is the image's COCO keypoints
(``data/coco/test_coco.json``) shifted into each frame's coordinates;
keypoints outside the crop are unlabelled (v = 0). A person with fewer
than 4 labelled keypoints in a frame is dropped from that frame's scored
ground truth (no identity, jitter or AP credit for them); where their box
still overlaps the crop they stay in the COCO ground truth with
``num_keypoints = 0``, which COCO evaluation ignores, so a pose on a barely
visible person counts neither for nor against AP.

The tracker: :class:`edgepose.PoseTracker` with MoveNet Lightning int8
(TFLite) on YOLOX-nano (onnxruntime) boxes, ``--threads`` inference threads
per model (default 1), over every configuration of

* ``detect_every`` in {1, 3, 5};
* serial or pipelined (:func:`edgepose.video.track_frames`,
  ``pipelined=False/True``: decoding and detection ahead on worker threads);
* smoothing off or ``OneEuroParams()``.

Both models are loaded once and shared by the trackers (a tracker only
keeps state; :meth:`PoseTracker.reset` starts each run afresh).

Per configuration:

* **fps**: frames per second, decoding included, from the median wall time
  of ``--repeat`` runs; the runs of all configurations are interleaved
  (serial and pipelined back to back, their order alternating).
* **x base**: the median over the repeats of baseline time / this time, the
  baseline (detect_every=1, serial, no smoothing) run in the same repeat;
  **x serial**: the same ratio against the serial run of the configuration.
* **AP**: COCO OKS AP (:func:`edgepose.evaluation.evaluate_coco`) of the
  tracked poses, each frame one image, against the shifted ground truth.
* **identity**: each pose is given to the ground-truth person whose box
  (full image) holds the centre of the pose's box (as ``person_of`` in the
  tests; poses on nobody, on two boxes at once or on someone never scored
  are left out); per person the number of distinct track ids they got, and id
  switches (a person's id changing from one frame they are matched in to
  the next), summed. **coverage**: the share of scored (frame, person)
  pairs with a pose.
* **jitter**: the mean over matched keypoints of
  ``|| d2(tracked) - d2(truth) ||`` px, ``d2`` the second difference over
  three consecutive frames (``x[t+1] - 2 x[t] + x[t-1]``), taken where the
  keypoint is labelled, scores above 0.3 and belongs to the same track in
  all three frames. The truth's own second difference (the pan, rounded to
  whole pixels) is subtracted, so a perfect tracker scores 0; smoothing
  should lower it.

Correctness first: before anything is timed, each configuration runs
serially and pipelined once and the two must give identical poses, scores,
boxes and track ids (exit status 1 otherwise). The accuracy figures come
from that serial run (the pipelined one is identical).

Timings on a shared machine are noisy: read the ratios, measured in the
same run, rather than absolute frame rates.

Usage (from the repository root)::

    python benchmarks/bench_video.py [--quick] [--frames N] [--repeat N] [--threads T]
                                     [--json PATH]

Models and data are read in place from ``EDGEPOSE_SHARED`` (default
``../shared`` beside the repository). Exit status: 0, 1 if pipelined and
serial results differ, 2 for bad arguments or missing models/data.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# One thread for NumPy's and OpenCV's pools, set before they start; the
# models get --threads each.
from benchmarks._common import use_one_thread  # noqa: E402

use_one_thread()

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks._common import (dist_version, environment, format_table, sha256,  # noqa: E402
                                shared_dir, utc_now, write_json)

POSE = "models/movenet/movenet_singlepose_lightning_int8_4.tflite"
DETECTOR = "models/detectors/yolox_yolox_nano_416x416.onnx"
IMAGE = "data/coco/000000196141.jpg"
IMAGE_ID = 196141
ANNOTATIONS = "data/coco/test_coco.json"

CROP_W, CROP_H = 480, 360
PAN_X, PAN_Y0, PAN_Y = 160, 30, 30        # px right; first top row; px down
FPS = 30.0
MIN_VISIBLE = 4                           # labelled keypoints for a person to be scored
KEYPOINT_THRESHOLD = 0.3                  # the tracker's; jitter counts keypoints above it
DETECTION_THRESHOLD = 0.3                 # PoseTracker's default for a detector file
DETECT_EVERY = (1, 3, 5)
QUEUE_SIZE = 4


# --------------------------------------------------------------------------
# The clip and its ground truth
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Clip:
    """The panning clip and its ground truth, F frames, P annotated people, K = 17.

    Attributes:
        frames: F BGR ``(360, 480, 3)`` uint8 crops (as encoded, before the mp4).
        offsets: ``(F, 2)`` int, each crop's top-left corner in the image.
        ann_ids: ``(P,)`` the COCO annotation ids.
        boxes: ``(P, 4)`` xyxy ground-truth boxes, full-image pixels.
        areas: ``(P,)`` the annotations' ``area``.
        keypoints: ``(F, P, K, 3)`` (x, y, v) in frame pixels; v = 0 (and
            x = y = 0) where unlabelled or outside the crop.
        scored: ``(F, P)`` bool: at least MIN_VISIBLE labelled keypoints.
    """

    frames: list[np.ndarray]
    offsets: np.ndarray
    ann_ids: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    keypoints: np.ndarray
    scored: np.ndarray


def make_clip(root: Path, frames: int) -> Clip:
    image = cv2.imread(str(root / IMAGE))
    if image is None:
        raise FileNotFoundError(f"could not read {root / IMAGE}")
    data = json.loads((root / ANNOTATIONS).read_text())
    anns = [a for a in data["annotations"] if a["image_id"] == IMAGE_ID]
    steps = max(frames - 1, 1)
    offsets = np.array([(round(PAN_X * f / steps), round(PAN_Y0 + PAN_Y * f / steps))
                        for f in range(frames)], np.int64)
    clip = [np.ascontiguousarray(image[y:y + CROP_H, x:x + CROP_W]) for x, y in offsets]
    boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                       a["bbox"][1] + a["bbox"][3]] for a in anns], np.float64)
    full = np.array([a["keypoints"] for a in anns], np.float64).reshape(len(anns), -1, 3)
    kp = np.repeat(full[None], frames, axis=0)                  # (F, P, K, 3)
    kp[..., :2] -= offsets[:, None, None, :].astype(np.float64)
    inside = ((kp[..., 2] > 0) & (kp[..., 0] >= 0) & (kp[..., 0] < CROP_W)
              & (kp[..., 1] >= 0) & (kp[..., 1] < CROP_H))
    kp = np.where(inside[..., None], kp, 0.0)
    scored = inside.sum(axis=-1) >= MIN_VISIBLE
    return Clip(clip, offsets, np.array([a["id"] for a in anns], np.int64), boxes,
                np.array([a["area"] for a in anns], np.float64), kp, scored)


def coco_ground_truth(clip: Clip) -> dict[str, Any]:
    """The clip's ground truth as a COCO keypoint dict, frame f as image f + 1.

    Scored people carry their shifted keypoints; the others still in view
    carry none (``num_keypoints = 0``: COCO evaluation ignores them, and the
    poses matched to them). Boxes are clipped to the crop; ``area`` stays the
    annotation's (the person's scale for OKS, not the visible part's).
    """
    from edgepose.keypoints import COCO17

    images, annotations = [], []
    for f, (x, y) in enumerate(clip.offsets.tolist()):
        images.append({"id": f + 1, "file_name": f"frame_{f:04d}", "width": CROP_W,
                       "height": CROP_H})
        for p in range(len(clip.ann_ids)):
            x1, y1, x2, y2 = clip.boxes[p] - [x, y, x, y]
            x1, x2 = np.clip([x1, x2], 0, CROP_W)
            y1, y2 = np.clip([y1, y2], 0, CROP_H)
            if x2 <= x1 or y2 <= y1:
                continue                       # entirely out of view
            kp = clip.keypoints[f, p] if clip.scored[f, p] else np.zeros_like(clip.keypoints[f, p])
            annotations.append({
                "id": f * 1000 + p + 1, "image_id": f + 1, "category_id": 1, "iscrowd": 0,
                "keypoints": kp.ravel().tolist(),
                "num_keypoints": int((kp[:, 2] > 0).sum()),
                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                "area": float(clip.areas[p]),
            })
    return {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17.names)}]}


def write_video(path: Path, frames: list[np.ndarray], fps: float = FPS) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                             (frames[0].shape[1], frames[0].shape[0]))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write mp4v video here")
    for frame in frames:
        writer.write(frame)
    writer.release()


# --------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------

def person_of(box: np.ndarray, offset: np.ndarray, gt_boxes: np.ndarray) -> int | None:
    """The ground-truth person whose box (full image) holds the centre of ``box``
    (frame pixels); None for nobody or more than one."""
    cx = (box[0] + box[2]) / 2 + offset[0]
    cy = (box[1] + box[3]) / 2 + offset[1]
    hits = np.flatnonzero((gt_boxes[:, 0] <= cx) & (cx <= gt_boxes[:, 2])
                          & (gt_boxes[:, 1] <= cy) & (cy <= gt_boxes[:, 3]))
    return int(hits[0]) if len(hits) == 1 else None


def score_tracks(poses: list, clip: Clip, gt: Any) -> dict[str, Any]:
    """AP, identity and jitter of one run's tracked poses (one PoseResult per frame)."""
    from edgepose.evaluation import KeypointDetections, evaluate_coco

    dt = KeypointDetections.from_results({f + 1: r for f, r in enumerate(poses)})
    metrics = evaluate_coco(gt, dt)

    frames, people = clip.scored.shape
    k = clip.keypoints.shape[2]
    xy = np.full((frames, people, k, 2), np.nan)
    conf = np.zeros((frames, people, k))
    track = np.full((frames, people), -1, np.int64)
    ids: dict[int, set[int]] = {}
    for f, result in enumerate(poses):
        best: dict[int, int] = {}
        for i, box in enumerate(result.boxes):
            who = person_of(box, clip.offsets[f], clip.boxes)
            if who is None or not clip.scored[:, who].any():
                continue   # nobody, or someone never scored (a spectator)
            ids.setdefault(who, set()).add(int(result.track_ids[i]))
            if who not in best or result.person_scores[i] > result.person_scores[best[who]]:
                best[who] = i
        for who, i in best.items():
            xy[f, who] = result.keypoints[i]
            conf[f, who] = result.scores[i]
            track[f, who] = result.track_ids[i]

    switches = 0
    for p in range(people):
        seq = track[:, p][track[:, p] >= 0]
        switches += int((seq[1:] != seq[:-1]).sum())
    scored = clip.scored
    coverage = float((scored & (track >= 0)).sum() / max(scored.sum(), 1))

    # Jitter: second differences over (t-1, t, t+1).
    gt_xy, vis = clip.keypoints[..., :2], clip.keypoints[..., 2] > 0
    ok = (vis & (conf > KEYPOINT_THRESHOLD) & np.isfinite(xy).all(axis=-1)
          & (track >= 0)[..., None])
    same = (track[:-2] == track[1:-1]) & (track[1:-1] == track[2:])
    use = ok[:-2] & ok[1:-1] & ok[2:] & same[..., None]
    d2 = (xy[2:] - 2 * xy[1:-1] + xy[:-2]) - (gt_xy[2:] - 2 * gt_xy[1:-1] + gt_xy[:-2])
    err = np.linalg.norm(d2, axis=-1)[use]
    return {
        "oks_ap": float(metrics["AP"]),
        "oks_ap50": float(metrics["AP50"]),
        "ids_per_person": {str(int(clip.ann_ids[p])): len(v) for p, v in sorted(ids.items())},
        "id_switches": switches,
        "coverage": coverage,
        "jitter_px": float(err.mean()) if err.size else None,
        "jitter_samples": int(err.size),
    }


def same_results(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        for name in ("track_ids", "keypoints", "scores", "boxes", "person_scores"):
            u, v = getattr(x, name), getattr(y, name)
            if (u is None) != (v is None):
                return False
            if u is not None and not np.array_equal(u, v, equal_nan=True):
                return False
    return True


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------

@dataclass
class Config:
    detect_every: int
    smoothing: bool
    tracker: Any

    @property
    def name(self) -> str:
        return f"every {self.detect_every}, {'One-Euro' if self.smoothing else 'raw'}"


def run_once(config: Config, video: Path, pipelined: bool) -> tuple[float, list, dict]:
    """Tracks the whole video from a reset tracker: wall ms, poses, summed stage ms."""
    from edgepose.video import FRAME_STAGES, track_frames, video_frames

    tracker = config.tracker
    tracker.reset()
    poses, stages = [], dict.fromkeys(FRAME_STAGES, 0.0)
    begin = time.perf_counter_ns()
    for frame in track_frames(video_frames(video), tracker, pipelined=pipelined,
                              queue_size=QUEUE_SIZE):
        poses.append(frame.poses)
        for stage, ms in frame.timings_ms.items():
            stages[stage] += ms
    return (time.perf_counter_ns() - begin) / 1e6, poses, stages


def video_environment(threads: int) -> dict[str, Any]:
    env = environment(f"{threads} inference thread(s) per model; pipelined runs add a reading "
                      "and a detection thread")
    env["runtimes"] = {name: v for name in ("onnxruntime", "ai-edge-litert", "tflite-runtime",
                                            "tensorflow") if (v := dist_version(name))}
    return env


def table(rows: list[dict]) -> str:
    header = ["detect_every", "mode", "smoothing", "fps", "x base", "x serial", "AP",
              "ids/person", "switches", "coverage", "jitter px", "same"]
    lines = []
    for r in rows:
        lines.append([
            str(r["detect_every"]), "pipelined" if r["pipelined"] else "serial",
            "One-Euro" if r["smoothing"] else "off", f"{r['fps']:.1f}",
            f"{r['ratio_vs_baseline']:.2f}",
            "-" if r["speedup_vs_serial"] is None else f"{r['speedup_vs_serial']:.2f}",
            f"{r['oks_ap']:.3f}", " ".join(str(v) for v in r["ids_per_person"].values()),
            str(r["id_switches"]), f"{r['coverage']:.2f}",
            "-" if r["jitter_px"] is None else f"{r['jitter_px']:.2f}",
            "yes" if r["identical_to_serial"] else "NO"])
    return format_table(header, lines, right={3, 4, 5, 6, 8, 9, 10})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="PoseTracker on a real panning clip: fps, OKS AP, identity and jitter "
                    "for detect_every x serial/pipelined x smoothing.")
    p.add_argument("--quick", action="store_true", help="a short run: 10 frames, 1 repeat")
    p.add_argument("--frames", type=int, default=None, metavar="N",
                   help="frames in the clip (default 90, --quick 10)")
    p.add_argument("--repeat", type=int, default=None, metavar="N",
                   help="timed runs per configuration (default 5, --quick 1)")
    p.add_argument("--threads", type=int, default=1, metavar="T",
                   help="inference threads of each model (default 1)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help="also write the environment, settings and rows as JSON to PATH")
    args = p.parse_args(argv)
    if args.frames is None:
        args.frames = 10 if args.quick else 90
    if args.repeat is None:
        args.repeat = 1 if args.quick else 5
    if args.frames < 3:
        p.error(f"--frames must be >= 3 (jitter needs three frames), got {args.frames}")
    if args.repeat < 1:
        p.error(f"--repeat must be >= 1, got {args.repeat}")
    if args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    root = shared_dir()
    missing = [rel for rel in (POSE, DETECTOR, IMAGE, ANNOTATIONS) if not (root / rel).is_file()]
    if missing:
        print(f"error: not found in {root}: {', '.join(missing)}; set EDGEPOSE_SHARED.",
              file=sys.stderr)
        return 2

    from edgepose.detectors import PersonDetector
    from edgepose.estimator import Estimator
    from edgepose.evaluation import load_coco_keypoints
    from edgepose.video import OneEuroParams, PoseTracker

    env = video_environment(args.threads)
    print(f"edgepose {env['edgepose']} ({env['edgepose_git']}), numpy {env['numpy']}, opencv "
          f"{env['opencv']}, " + ", ".join(f"{k} {v}" for k, v in env["runtimes"].items()))
    print(f"CPU: {env['cpu_model']} ({env['cpu_count']} logical, {env['cpu_affinity']} usable); "
          f"{env['platform']}; {args.threads} inference thread(s) per model")

    clip = make_clip(root, args.frames)
    gt = load_coco_keypoints(coco_ground_truth(clip))
    est = Estimator(root / POSE, threads=args.threads)
    det = PersonDetector.from_file(root / DETECTOR, score_threshold=DETECTION_THRESHOLD,
                                   threads=args.threads)
    configs = [Config(n, smooth, PoseTracker(est, det, detect_every=n,
                                             smoothing=OneEuroParams() if smooth else None))
               for n in DETECT_EVERY for smooth in (False, True)]
    rows: dict[tuple[str, bool], dict[str, Any]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench_video_") as tmp:
            video = Path(tmp) / "pan.mp4"
            write_video(video, clip.frames)
            print(f"clip: {IMAGE} ({len(clip.ann_ids)} annotated people), {args.frames} frames "
                  f"{CROP_W}x{CROP_H} panning {PAN_X} px right and {PAN_Y} px down, mp4v at "
                  f"{FPS:g} fps; {int(clip.scored.sum())} scored (frame, person) pairs")

            # --- correctness first (and the warm-up) ------------------------------------
            failures = []
            for c in configs:
                _, serial, _ = run_once(c, video, pipelined=False)
                _, piped, _ = run_once(c, video, pipelined=True)
                identical = same_results(serial, piped)
                if len(serial) != args.frames:
                    failures.append(f"{c.name}: decoded {len(serial)} frames, wrote {args.frames}")
                if not identical:
                    failures.append(f"{c.name}: pipelined results differ from serial ones")
                scores = score_tracks(serial, clip, gt)
                for pipelined in (False, True):
                    rows[c.name, pipelined] = {"detect_every": c.detect_every,
                                               "pipelined": pipelined, "smoothing": c.smoothing,
                                               "identical_to_serial": identical, **scores}
            if failures:
                for msg in failures:
                    print(f"error: {msg}", file=sys.stderr)
                print("nothing was timed", file=sys.stderr)
                return 1
            print(f"checked: pipelined == serial (poses, scores, boxes, track ids) in all "
                  f"{len(configs)} configurations")

            # --- timing -----------------------------------------------------------------------
            times: dict[tuple[str, bool], list[float]] = {key: [] for key in rows}
            stage_ms: dict[tuple[str, bool], dict[str, float]] = {}
            for rep in range(args.repeat):
                for c in configs:
                    for pipelined in ((False, True) if rep % 2 == 0 else (True, False)):
                        ms, _, stages = run_once(c, video, pipelined)
                        times[c.name, pipelined].append(ms)
                        acc = stage_ms.setdefault((c.name, pipelined), dict.fromkeys(stages, 0.0))
                        for stage, v in stages.items():
                            acc[stage] += v
    finally:
        for c in configs:
            c.tracker.close()
        est.close()
        det.close()

    base = np.array(times[configs[0].name, False])
    for key, row in rows.items():
        t = np.array(times[key])
        row["fps"] = args.frames / (float(np.median(t)) / 1000.0)
        row["ms_per_frame"] = float(np.median(t)) / args.frames
        row["run_ms"] = t.tolist()
        row["ratio_vs_baseline"] = float(np.median(base / t))
        row["speedup_vs_serial"] = (float(np.median(np.array(times[key[0], False]) / t))
                                    if key[1] else None)
        row["stage_ms_per_frame"] = {s: v / (args.frames * args.repeat)
                                     for s, v in stage_ms[key].items()}
    ordered = [rows[c.name, p] for c in configs for p in (False, True)]
    print(f"timing: {args.repeat} run(s) per configuration, interleaved; fps from the median "
          "run, decoding included; x base = median of baseline time / this time (baseline: "
          "detect_every 1, serial, no smoothing); AP from the serial check run\n")
    print(table(ordered))
    raw = {r["detect_every"]: r["jitter_px"] for r in ordered if not r["smoothing"]}
    smooth = {r["detect_every"]: r["jitter_px"] for r in ordered if r["smoothing"]}
    notes = [f"every {n}: {raw[n]:.2f} -> {smooth[n]:.2f} px" for n in DETECT_EVERY
             if raw[n] is not None and smooth[n] is not None]
    if notes:
        print("\njitter, smoothing off -> One-Euro: " + "; ".join(notes))
    elapsed = time.perf_counter() - started
    print(f"total time {elapsed:.1f} s")

    if args.json:
        doc = {
            "benchmark": "PoseTracker on a real panning clip (benchmarks/bench_video.py)",
            "created": utc_now(),
            "environment": env,
            "settings": {
                "quick": args.quick, "frames": args.frames, "repeat": args.repeat,
                "threads": args.threads, "queue_size": QUEUE_SIZE, "fps": FPS,
                "clip": {"image": IMAGE, "crop_wh": [CROP_W, CROP_H],
                         "pan_px": [PAN_X, PAN_Y], "codec": "mp4v",
                         "annotations": ANNOTATIONS, "people": len(clip.ann_ids),
                         "min_visible_keypoints": MIN_VISIBLE,
                         "scored_pairs": int(clip.scored.sum())},
                "models": {"pose": {"path": POSE, "sha256": sha256(root / POSE)},
                           "detector": {"path": DETECTOR, "sha256": sha256(root / DETECTOR),
                                        "score_threshold": DETECTION_THRESHOLD}},
                "smoothing": {"min_cutoff": OneEuroParams().min_cutoff,
                              "beta": OneEuroParams().beta,
                              "d_cutoff": OneEuroParams().d_cutoff},
                "baseline": {"detect_every": 1, "pipelined": False, "smoothing": False},
                "units": {"fps": "frames per second, decoding included", "jitter_px": "px",
                          "ratio_vs_baseline": "median of baseline time / time, same repeat"},
            },
            "rows": ordered,
            "elapsed_s": elapsed,
        }
        write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
