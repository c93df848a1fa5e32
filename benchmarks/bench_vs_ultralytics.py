"""edgepose side by side with Ultralytics' own pipeline, on YOLO11n-pose.

Both sides read the same files in place (``../shared/models/yolo_pose``,
AGPL-3.0: measured here, never copied into the repository) and the COCO
images of ``../shared/data/coco``:

* **Ultralytics**: ``YOLO(path, task="pose").predict(image, conf=...)`` on the
  static ONNX file, onnxruntime's CPU provider, in its own virtual
  environment (``--peer-venv``, made on first use; see ``_peer_env.py``).
  ``conf=0.25`` (its default) for the timing and the "same people" check,
  ``conf=0.001`` (as ``yolo val``) for AP.
* **edgepose**: ``edgepose.Estimator(path, threads=T, **options)``, one row
  per variant (:data:`VARIANTS`): the same static file (defaults;
  ``score_threshold=0.001`` for AP), the dynamic file fed the smallest
  letterbox, smaller inputs, OpenVINO; with ``--int8 DIR`` INT8 artefacts
  of the dynamic file made by ``edgepose export`` (cached in DIR, outside
  the repository); with ``--artefact NAME=PATH[@SIDE]`` any model file.

Each pipeline runs in its own process (``_pose_worker.py``), with the same
onnxruntime threads; only one works at a time. After a warm-up, the
pipelines take turns round after round (:func:`schedule`: the order rotates
each round), each round running every image ``--repeat`` times. Reported:
per image the median and IQR of the time around the whole call, the stage
times each library reports itself (Ultralytics' ``result.speed``, edgepose's
``result.timings_ms``), and the ratio edgepose / Ultralytics of the summed
per-image medians.

Checked before timing: the people found at Ultralytics' default threshold
(matched by box IoU >= 0.5, with the OKS between matched poses; any person
one side misses is listed), and OKS AP of every pipeline through pycocotools
on ``data/coco/test_coco.json``.

Targets (issue #16): edgepose's AP >= Ultralytics' - 0.005 on the static
file; the dynamic file at the smallest letterbox <= 0.75x Ultralytics' time;
edgepose's fastest variant <= 0.5x with AP within 0.02.

Usage (from the repository root)::

    python benchmarks/bench_vs_ultralytics.py [--quick] [--threads T] [--rounds R]
        [--repeat N] [--warmup N] [--variants a,b] [--int8 DIR] [--artefact NAME=PATH[@SIDE]]
        [--json PATH] [--markdown PATH] [--peer-venv DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import _peer_env  # noqa: E402
from benchmarks._common import (  # noqa: E402
    cpu_model, cpu_simd_flags, format_table, git_revision, shared_dir, usable_cores, utc_now,
    write_json)

WORKER = Path(__file__).resolve().parent / "_pose_worker.py"
STATIC = "models/yolo_pose/yolo11n-pose.onnx"
DYNAMIC = "models/yolo_pose/yolo11n-pose-dynamic.onnx"
COCO_DIR = "data/coco"
COCO_JSON = "data/coco/test_coco.json"
DEFAULT_PEER_VENV = Path("~/.cache/edgepose/ultralytics-venv")

UL_CONF = 0.25          # Ultralytics' predict default
AP_CONF = 0.001         # as `yolo val`
MATCH_IOU = 0.5

#: COCO-17 OKS sigmas (pycocotools).
COCO_SIGMAS = (.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107, .107,
               .087, .087, .089, .089)


@dataclass(frozen=True)
class Variant:
    """One edgepose pipeline: a model file and Estimator options.

    Attributes:
        name: the ``--variants`` key.
        label: what the table says.
        model: ``"static"`` or ``"dynamic"`` (the shared files), else the path of
            an artefact given with ``--artefact``.
        options: ``Estimator`` keyword arguments (besides ``threads``).
        target: the ratio edgepose / Ultralytics this row should meet, or None.
    """

    name: str
    label: str
    model: str
    options: Mapping[str, Any] = field(default_factory=dict)
    target: float | None = None


#: Longer input sides tried on the dynamic file (smaller letterboxes; AP falls).
SMALLER_SIDES = (512, 480, 416)


def _variants() -> tuple[Variant, ...]:
    out = [Variant("static", "static ONNX, onnxruntime (same file as Ultralytics)", "static"),
           Variant("dynamic", "dynamic ONNX, onnxruntime, smallest letterbox", "dynamic",
                   target=0.75)]
    out += [Variant(f"dynamic-{n}", f"dynamic ONNX, onnxruntime, longer side {n}", "dynamic",
                    {"input_size": n}) for n in SMALLER_SIDES]
    out += [Variant("openvino", "static ONNX, OpenVINO FP32", "static", {"backend": "openvino"}),
            Variant("openvino-dynamic", "dynamic ONNX, OpenVINO FP32, smallest letterbox",
                    "dynamic", {"backend": "openvino"})]
    out += [Variant(f"openvino-dynamic-{n}", f"dynamic ONNX, OpenVINO FP32, longer side {n}",
                    "dynamic", {"backend": "openvino", "input_size": n}) for n in SMALLER_SIDES]
    return tuple(out)


VARIANTS = _variants()
QUICK_VARIANTS = ("static", "dynamic")

#: ``--int8``: calibration images, never the COCO images AP is measured on.
CALIBRATION_FOLDERS = ("coral", "crowdpose", "aic", "mpii")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
#: ``--int8``: (``edgepose export --to``, artefact suffix, runtime that runs it).
INT8_TARGETS = (("openvino", ".xml", "OpenVINO"), ("onnx", ".onnx", "onnxruntime"))
INT8_STEM = "yolo11n-pose-dynamic"

#: The fastest variant must be within this much AP of Ultralytics'.
FASTEST_TARGET, FASTEST_AP_TOLERANCE = 0.5, 0.02
#: On the same static file, edgepose's AP must be at least Ultralytics' minus this.
STATIC_AP_TOLERANCE = 0.005


# --- arguments ---------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``--quick`` shortens the run and keeps
    :data:`QUICK_VARIANTS` unless ``--variants`` is given. Exits with status
    2 (``parser.error``) on a bad value."""
    ap = argparse.ArgumentParser(
        description="edgepose against Ultralytics' own predict on YOLO11n-pose, each in its "
                    "own process, alternating.")
    ap.add_argument("--threads", type=int, default=None,
                    help="onnxruntime intra-op threads on both sides (default: the usable cores)")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds (7; quick 2)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs of every image per pipeline per round (3; quick 1)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed runs of every image per pipeline first (2; quick 1)")
    ap.add_argument("--variants", default=None,
                    help="comma-separated edgepose variants (default: all; quick: "
                         f"{','.join(QUICK_VARIANTS)}); known: "
                         f"{', '.join(v.name for v in VARIANTS)}")
    ap.add_argument("--artefact", action="append", default=[], metavar="NAME=PATH[@SIDE]",
                    help="one more edgepose variant: a model file edgepose loads (e.g. an INT8 "
                         "OpenVINO IR made by 'edgepose export'), optionally with its longer "
                         "input side; repeatable")
    ap.add_argument("--int8", type=Path, default=None, metavar="DIR",
                    help="also build INT8 artefacts of the dynamic file with 'edgepose export' "
                         "into DIR (outside the repository: the model is AGPL-3.0; reused when "
                         "present) and run them at the smallest letterbox and longer side 512")
    ap.add_argument("--quick", action="store_true", help="a short run (a smoke test)")
    ap.add_argument("--peer-venv", type=Path, default=DEFAULT_PEER_VENV,
                    help=f"Ultralytics' own virtual environment, made on first use "
                         f"(default {DEFAULT_PEER_VENV})")
    ap.add_argument("--json", type=Path, default=None, help="write every figure as JSON")
    ap.add_argument("--markdown", type=Path, default=None, help="write the tables as markdown")
    args = ap.parse_args(argv)

    quick = {"rounds": 2, "repeat": 1, "warmup": 1}
    full = {"rounds": 7, "repeat": 3, "warmup": 2}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.threads is None:
        args.threads = usable_cores()
    for key in ("threads", "rounds", "repeat"):
        if getattr(args, key) < 1:
            ap.error(f"--{key} must be >= 1, got {getattr(args, key)}")
    if args.warmup < 0:
        ap.error(f"--warmup must be >= 0, got {args.warmup}")
    known = {v.name: v for v in VARIANTS}
    names = (args.variants.split(",") if args.variants
             else QUICK_VARIANTS if args.quick else tuple(known))
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        ap.error(f"--variants: unknown {', '.join(unknown) or '(none given)'}; choose from "
                 f"{', '.join(known)}")
    args.variant_list = [known[n] for n in dict.fromkeys(names)]
    for spec in args.artefact:
        try:
            variant = parse_artefact(spec)
        except ValueError as exc:
            ap.error(str(exc))
        if variant.name in known or variant.name in [v.name for v in args.variant_list]:
            ap.error(f"--artefact {spec!r}: the name {variant.name!r} is taken; choose another")
        args.variant_list.append(variant)
    return args


def int8_export_command(source: Path, out: Path, target: str, calib: Path) -> list[str]:
    """The ``edgepose export`` command that writes ``out/INT8_STEM_int8.<suffix>``."""
    return [sys.executable, "-m", "edgepose.cli", "export", str(source), "--out", str(out),
            "--to", target, "--precision", "int8", "--calib", str(calib), "--name", INT8_STEM,
            "--quiet"]


def int8_variants(target: str, path: Path, runtime: str) -> list[Variant]:
    """The rows of one INT8 artefact: smallest letterbox, and longer side 512."""
    what = f"dynamic ONNX -> {target} INT8 (edgepose export), {runtime}"
    return [Variant(f"{target}-int8", f"{what}, smallest letterbox", str(path)),
            Variant(f"{target}-int8-512", f"{what}, longer side 512", str(path),
                    {"input_size": 512})]


def build_int8(root: Path, cache: Path) -> tuple[list[Variant], list[str]]:
    """INT8 artefacts of the dynamic file, made by ``edgepose export`` into
    cache (an artefact already there is reused if its export passed its
    parity tolerance), calibrated on the images of
    :data:`CALIBRATION_FOLDERS` (linked into ``cache/calibration``).

    Returns:
        (the variants of every artefact built, a note per target that failed)
    """
    calib = cache / "calibration"
    calib.mkdir(parents=True, exist_ok=True)
    for folder in CALIBRATION_FOLDERS:
        for image in sorted((root / "data" / folder).iterdir()):
            link = calib / f"{folder}_{image.name}"
            if image.suffix.lower() in IMAGE_SUFFIXES and not link.exists():
                link.symlink_to(image)
    env = edgepose_environ()
    variants, notes = [], []
    for target, suffix, runtime in INT8_TARGETS:
        out = cache / target
        path = out / f"{INT8_STEM}_int8{suffix}"
        passed = out / "passed"       # written after an export that met its tolerance
        if not (path.is_file() and passed.is_file()):
            cmd = int8_export_command(root / DYNAMIC, out, target, calib)
            print(f"building {path} (once): {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
            # in the cache folder: onnxruntime's quantizer leaves temporary files in the
            # working directory, and they must never land in the repository
            out.mkdir(parents=True, exist_ok=True)
            done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env,
                                  cwd=str(out))
            if done.returncode != 0 or not path.is_file():
                notes.append(f"{target} INT8 not built (edgepose export exit "
                             f"{done.returncode}): {(done.stderr or done.stdout).strip()[-400:]}")
                continue
            passed.write_text(" ".join(cmd[1:]) + "\n")
        variants += int8_variants(target, path, runtime)
    return variants, notes


def parse_artefact(spec: str) -> Variant:
    """``NAME=PATH`` or ``NAME=PATH@SIDE`` (SIDE: the longer input side, for
    a dynamic model) as a :class:`Variant`.

    Raises:
        ValueError: a malformed spec or a file that does not exist.
    """
    name, eq, rest = spec.partition("=")
    path, at, side = rest.rpartition("@") if "@" in rest else (rest, "", "")
    if not eq or not name.strip() or not path:
        raise ValueError(f"--artefact must be NAME=PATH or NAME=PATH@SIDE, got {spec!r}")
    options: dict[str, Any] = {}
    if at:
        if not side.isdigit() or int(side) < 32:
            raise ValueError(f"--artefact {spec!r}: SIDE must be a whole number of pixels "
                             f">= 32, got {side!r}")
        options["input_size"] = int(side)
    if not Path(path).is_file() and not Path(path).is_dir():
        raise ValueError(f"--artefact {spec!r}: {path} does not exist")
    label = f"{Path(path).name}" + (f", longer side {side}" if at else "")
    return Variant(name.strip(), label, str(Path(path).resolve()), options)


# --- the schedule and the statistics -----------------------------------------------------

def schedule(rounds: int, names: Sequence[str]) -> list[list[str]]:
    """The order in which the pipelines run in each round: the list rotates
    by one each round, so every pipeline runs first, second, ... equally
    often (for two, the order alternates)."""
    n = len(names)
    return [list(names[r % n:]) + list(names[:r % n]) for r in range(rounds)] if n else []


def quartiles(values: Sequence[float]) -> dict[str, float]:
    """Median, first and third quartile (linear interpolation) and IQR."""
    import numpy as np

    q1, med, q3 = np.percentile(np.asarray(values, np.float64), [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1)}


def summarize_times(total_ms: Sequence[Sequence[float]],
                    stages_ms: Sequence[Sequence[Mapping[str, float]]]) -> dict[str, Any]:
    """Per image: quartiles of the total time, every sample (in run order)
    and the median of every stage; over the set: the sum of the per-image
    medians (``set_ms``).

    Args:
        total_ms: per image, every timed run's total (ms).
        stages_ms: per image, every timed run's stage times (ms), by stage.
    """
    import numpy as np

    per_image = []
    for totals, stages in zip(total_ms, stages_ms):
        names = list(dict.fromkeys(k for s in stages for k in s))
        per_image.append({**quartiles(totals), "runs": len(totals),
                          "samples_ms": [float(t) for t in totals],
                          "stages": {k: float(np.median([s[k] for s in stages if k in s]))
                                     for k in names}})
    stage_names = list(dict.fromkeys(k for im in per_image for k in im["stages"]))
    return {"per_image": per_image,
            "set_ms": float(sum(im["median"] for im in per_image)),
            "stages_set_ms": {k: float(sum(im["stages"].get(k, 0.0) for im in per_image))
                              for k in stage_names}}


# --- the same people? --------------------------------------------------------------------

def box_iou(a, b):
    """IoU of every box of a (N, 4) with every box of b (M, 4), xyxy."""
    import numpy as np

    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def pose_oks(reference, other, box, min_score: float = 0.5) -> float:
    """OKS of ``other``'s keypoints against ``reference``'s, over the
    keypoints the reference scores >= min_score, with the reference box's
    area as the scale (s^2 = w * h); NaN when it scores none.

    Args:
        reference, other: (K, 3) x, y, score in image pixels (NaN = not found:
            counts as OKS 0 for that keypoint).
        box: the reference person's (4,) xyxy box.
    """
    import numpy as np

    ref = np.asarray(reference, np.float64)
    oth = np.asarray(other, np.float64)
    use = ref[:, 2] >= min_score
    if not use.any():
        return float("nan")
    x1, y1, x2, y2 = np.asarray(box, np.float64)
    area = max((x2 - x1) * (y2 - y1), 1e-9)
    k = 2 * np.asarray(COCO_SIGMAS[:len(ref)])
    d2 = np.sum((oth[:, :2] - ref[:, :2]) ** 2, axis=1)
    e = np.exp(-d2 / (2 * area * k ** 2))
    e = np.where(np.isfinite(e), e, 0.0)
    return float(e[use].mean())


def match_people(reference: Mapping[str, Any], other: Mapping[str, Any],
                 min_iou: float = MATCH_IOU) -> dict[str, Any]:
    """Pairs the people of two pipelines on one image: greedily by box IoU,
    highest first, each person used once, pairs below min_iou left unpaired.

    Args:
        reference, other: ``{"boxes": (N, 4) xyxy, "person_scores": (N,),
            "keypoints": (N, K, 3)}`` as the worker replies.

    Returns:
        ``pairs`` [(reference index, other index, IoU, OKS)], ``missing`` (the
        reference people the other side did not find) and ``extra`` (the
        other side's people without a partner), as index lists.
    """
    import numpy as np

    iou = box_iou(reference["boxes"], other["boxes"])
    pairs = []
    free_r, free_o = set(range(iou.shape[0])), set(range(iou.shape[1]))
    order = np.argsort(-iou, axis=None, kind="stable")
    for flat in order:
        i, j = np.unravel_index(flat, iou.shape)
        if iou[i, j] < min_iou:
            break
        if i in free_r and j in free_o:
            oks = pose_oks(reference["keypoints"][i], other["keypoints"][j],
                           reference["boxes"][i])
            pairs.append((int(i), int(j), float(iou[i, j]), oks))
            free_r.discard(i)
            free_o.discard(j)
    return {"pairs": sorted(pairs), "missing": sorted(free_r), "extra": sorted(free_o)}


def people_report(images: Sequence[str], ul: Sequence[Mapping], ep: Sequence[Mapping]
                  ) -> dict[str, Any]:
    """:func:`match_people` on every image (Ultralytics as the reference),
    with the boxes and scores of anyone found by one side only."""
    import numpy as np

    rows, oks_all, iou_all = [], [], []
    for name, u, e in zip(images, ul, ep):
        m = match_people(u, e)
        oks_all += [p[3] for p in m["pairs"] if not math.isnan(p[3])]
        iou_all += [p[2] for p in m["pairs"]]
        rows.append({
            "image": name, "ultralytics": len(u["boxes"]), "edgepose": len(e["boxes"]),
            "matched": len(m["pairs"]),
            "missing": [{"box": [round(v, 1) for v in u["boxes"][i]],
                         "score": round(u["person_scores"][i], 3)} for i in m["missing"]],
            "extra": [{"box": [round(v, 1) for v in e["boxes"][j]],
                       "score": round(e["person_scores"][j], 3)} for j in m["extra"]],
            "min_iou": min((p[2] for p in m["pairs"]), default=None),
            "min_oks": min((p[3] for p in m["pairs"] if not math.isnan(p[3])), default=None),
        })
    return {"images": rows,
            "same": all(not r["missing"] and not r["extra"] for r in rows),
            "mean_oks": float(np.mean(oks_all)) if oks_all else None,
            "min_iou": min(iou_all) if iou_all else None}


# --- AP ----------------------------------------------------------------------------------

def coco_results(people: Sequence[Mapping[str, Any]], image_ids: Sequence[int]
                 ) -> list[dict[str, Any]]:
    """COCO keypoint results (category 1, score = the person score); a
    keypoint not found (NaN) is written as (0, 0) with visibility 0."""
    out = []
    for found, image_id in zip(people, image_ids):
        for kps, score in zip(found["keypoints"], found["person_scores"]):
            flat = []
            for x, y, s in kps:
                ok = math.isfinite(x) and math.isfinite(y)
                flat += [float(x) if ok else 0.0, float(y) if ok else 0.0,
                         float(s) if ok and math.isfinite(s) else 0.0]
            out.append({"image_id": int(image_id), "category_id": 1, "keypoints": flat,
                        "score": float(score)})
    return out


def coco_ap(gt_json: Path, results: list[dict[str, Any]]) -> float:
    """OKS AP (IoU 0.50:0.95) of results on gt_json, through pycocotools."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_json))
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


# --- the worker processes ----------------------------------------------------------------

class WorkerProcess:
    """A ``_pose_worker.py`` process and its JSON-lines requests."""

    def __init__(self, label: str, python: str | Path, env: Mapping[str, str]) -> None:
        self.label = label
        # stderr goes to a file: a full pipe would block a chatty worker
        self._stderr = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen([str(python), str(WORKER)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                     env=dict(env), cwd=str(REPO_ROOT), bufsize=1)

    def stderr_tail(self, chars: int = 3000) -> str:
        """The end of what the worker wrote to stderr."""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()[-chars:]

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Sends one request and returns the reply.

        Raises:
            SystemExit: the worker replied an error or died (with its message).
        """
        try:
            self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            raise SystemExit(f"error: the {self.label} worker stopped during {op!r}:\n"
                             f"{self.stderr_tail()}")
        reply = json.loads(line)
        if "error" in reply:
            raise SystemExit(f"error: the {self.label} worker failed on {op!r} "
                             f"({json.dumps(fields)[:300]}): {reply['error']}\n"
                             f"{reply.get('traceback', '')}")
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._stderr.close()


def edgepose_environ() -> dict[str, str]:
    """The edgepose worker's environment: this checkout's edgepose first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + (
        [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


# --- the run -----------------------------------------------------------------------------

def coco_images(root: Path) -> tuple[list[str], list[int]]:
    """The annotated images' paths and ids, in the annotation file's order."""
    data = json.loads((root / COCO_JSON).read_text())
    images = data["images"]
    return ([str(root / COCO_DIR / im["file_name"]) for im in images],
            [int(im["id"]) for im in images])


def timed_rounds(args, pipelines: Mapping[str, WorkerProcess]) -> dict[str, dict[str, Any]]:
    """Warm-up, then ``args.rounds`` rounds in :func:`schedule` order; the
    summarized times of every pipeline."""
    for name, worker in pipelines.items():
        if args.warmup:
            worker.request("time", name=name, repeat=args.warmup)
    n_images = None
    totals: dict[str, list[list[float]]] = {}
    stages: dict[str, list[list[dict]]] = {}
    for r, order in enumerate(schedule(args.rounds, list(pipelines))):
        for name in order:
            reply = pipelines[name].request("time", name=name, repeat=args.repeat)
            n_images = len(reply["total_ms"])
            totals.setdefault(name, [[] for _ in range(n_images)])
            stages.setdefault(name, [[] for _ in range(n_images)])
            for i in range(n_images):
                totals[name][i] += reply["total_ms"][i]
                stages[name][i] += reply["stages_ms"][i]
        print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    return {name: summarize_times(totals[name], stages[name]) for name in pipelines}


def verdicts(rows: list[dict[str, Any]], ul_ap: float) -> dict[str, Any]:
    """The three targets, from the variant rows (``name``, ``ratio``, ``ap``)."""
    by = {r["name"]: r for r in rows}
    out: dict[str, Any] = {}
    if "static" in by:
        s = by["static"]
        out["static_ap"] = {"edgepose": s["ap"], "ultralytics": ul_ap,
                            "met": s["ap"] >= ul_ap - STATIC_AP_TOLERANCE,
                            "target": f"AP >= Ultralytics' - {STATIC_AP_TOLERANCE}"}
    if "dynamic" in by:
        d = by["dynamic"]
        out["dynamic_speed"] = {"ratio": d["ratio"], "met": d["ratio"] <= d["target"],
                                "target": f"<= {d['target']}x"}
    good = [r for r in rows if r["ap"] >= ul_ap - FASTEST_AP_TOLERANCE]
    if good:
        best = min(good, key=lambda r: r["ratio"])
        out["fastest"] = {"name": best["name"], "label": best["label"], "ratio": best["ratio"],
                          "ap": best["ap"], "met": best["ratio"] <= FASTEST_TARGET,
                          "target": f"<= {FASTEST_TARGET}x with AP within "
                                    f"{FASTEST_AP_TOLERANCE} of Ultralytics'"}
    return out


def run(args) -> dict[str, Any]:
    root = shared_dir()
    files = {"static": root / STATIC, "dynamic": root / DYNAMIC}
    for path in list(files.values()):
        if not path.is_file():
            raise SystemExit(f"error: {path} is missing; the benchmark reads the YOLO11n-pose "
                             "files of the shared folder in place (see ../shared/README.md).")
    notes: list[str] = []
    if args.int8 is not None:
        built, notes = build_int8(root, args.int8.expanduser().resolve())
        taken = {v.name for v in args.variant_list} & {v.name for v in built}
        if taken:
            raise SystemExit(f"error: --artefact name(s) {', '.join(sorted(taken))} are the "
                             "names of --int8's rows; choose others")
        args.variant_list = args.variant_list + built
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    files.update({v.model: Path(v.model) for v in args.variant_list if v.model not in files})
    paths, ids = coco_images(root)
    names = [Path(p).name for p in paths]

    peer_python = _peer_env.ensure_peer_venv(args.peer_venv)
    # one process per pipeline: idle onnxruntime pools never share a process with a busy one
    ul = WorkerProcess("Ultralytics", peer_python, _peer_env.peer_environ(args.peer_venv))
    workers = {"ul": ul}
    try:
        for v in args.variant_list:
            workers[v.name] = WorkerProcess(f"edgepose {v.name}", sys.executable,
                                            edgepose_environ())
        for w in workers.values():
            w.request("images", paths=paths)
        info = {"ultralytics": ul.request("load", name="ul", side="ultralytics",
                                          model=str(files["static"]), threads=args.threads,
                                          options={"conf": UL_CONF})["info"]}
        ul.request("load", name="ul-ap", side="ultralytics", model=str(files["static"]),
                   threads=args.threads, options={"conf": AP_CONF})
        for v in args.variant_list:
            ep = workers[v.name]
            info[v.name] = ep.request("load", name=v.name, side="edgepose",
                                      model=str(files[v.model]), threads=args.threads,
                                      options=dict(v.options))["info"]
            ep.request("load", name=v.name + "-ap", side="edgepose", model=str(files[v.model]),
                       threads=args.threads, options={**v.options, "score_threshold": AP_CONF})

        # correctness first: the same people, then AP
        first = args.variant_list[0].name
        people = people_report(names, ul.request("detect", name="ul")["people"],
                               workers[first].request("detect", name=first)["people"])
        people["edgepose_variant"] = first
        ul_ap = coco_ap(root / COCO_JSON,
                        coco_results(ul.request("detect", name="ul-ap")["people"], ids))
        aps = {v.name: coco_ap(root / COCO_JSON, coco_results(
            workers[v.name].request("detect", name=v.name + "-ap")["people"], ids))
            for v in args.variant_list}
        for name, w in workers.items():
            w.request("close", name=name + "-ap")

        times = timed_rounds(args, workers)
    finally:
        for w in workers.values():
            w.close()

    ul_set = times["ul"]["set_ms"]
    rows = []
    for v in args.variant_list:
        t = times[v.name]
        rows.append({"name": v.name, "label": v.label, "model": Path(files[v.model]).name,
                     "options": dict(v.options), "target": v.target, "ap": aps[v.name],
                     "set_ms": t["set_ms"], "ratio": t["set_ms"] / ul_set,
                     "per_image_ratio": [e["median"] / u["median"] for e, u in
                                         zip(t["per_image"], times["ul"]["per_image"])],
                     "times": t})
    return {
        "benchmark": "edgepose vs Ultralytics (benchmarks/bench_vs_ultralytics.py)",
        "created": utc_now(),
        "settings": {"threads": args.threads, "rounds": args.rounds, "repeat": args.repeat,
                     "warmup": args.warmup, "images": names, "ultralytics_conf": UL_CONF,
                     "ap_conf": AP_CONF, "peer_venv": str(args.peer_venv)},
        "machine": {"cpu": cpu_model(), "simd": cpu_simd_flags(), "cores": usable_cores(),
                    "avx512": "avx512f" in cpu_simd_flags(),
                    "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        "edgepose_git": git_revision(),
        "models": {k: {"file": str(p), "sha256": _sha256(p) if p.is_file() else None}
                   for k, p in files.items()},
        "pipelines": info,
        "ultralytics": {"ap": ul_ap, "times": times["ul"]},
        "variants": rows,
        "people": people,
        "notes": notes,
        "verdicts": verdicts(rows, ul_ap),
    }


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- the report --------------------------------------------------------------------------

def _iqr(t: Mapping[str, Any]) -> str:
    return f"{t['median']:.1f} ({t['iqr']:.1f})"


def report_tables(doc: Mapping[str, Any]) -> dict[str, tuple[list[str], list[list[str]]]]:
    """The report's tables as (header, rows), shared by stdout and markdown."""
    ul = doc["ultralytics"]
    rows = doc["variants"]
    images = doc["settings"]["images"]
    main_rows = [["Ultralytics predict (static ONNX, onnxruntime)", f"{ul['ap']:.3f}", "",
                  f"{ul['times']['set_ms']:.1f}", "1.00", ""]]
    for r in rows:
        target = "" if r["target"] is None else \
            f"<= {r['target']:g} {'met' if r['ratio'] <= r['target'] else 'NOT met'}"
        main_rows.append([r["label"], f"{r['ap']:.3f}", f"{r['ap'] - ul['ap']:+.3f}",
                          f"{r['set_ms']:.1f}", f"{r['ratio']:.2f}", target])
    main = (["pipeline", "AP", "dAP", f"ms / {len(images)} images", "ratio", "target"], main_rows)

    per_image_rows = [["Ultralytics"] + [_iqr(t) for t in ul["times"]["per_image"]]]
    for r in rows:
        per_image_rows.append([r["name"]] + [
            f"{_iqr(t)} x{ratio:.2f}" for t, ratio in zip(r["times"]["per_image"],
                                                          r["per_image_ratio"])])
    per_image = (["pipeline"] + list(images), per_image_rows)

    stage_sets = [("Ultralytics", ul["times"]["stages_set_ms"])] + \
        [(r["name"], r["times"]["stages_set_ms"]) for r in rows]
    stage_names = list(dict.fromkeys(k for _, st in stage_sets for k in st))
    stages = (["pipeline"] + stage_names,
              [[name] + [f"{st[k]:.1f}" if k in st else "" for k in stage_names]
               for name, st in stage_sets])

    people_rows = []
    for im in doc["people"]["images"]:
        people_rows.append([im["image"], str(im["ultralytics"]), str(im["edgepose"]),
                            str(im["matched"]),
                            "; ".join(f"{p['box']} {p['score']}" for p in im["missing"]) or "-",
                            "; ".join(f"{p['box']} {p['score']}" for p in im["extra"]) or "-",
                            "-" if im["min_oks"] is None else f"{im['min_oks']:.3f}"])
    people = (["image", "Ultralytics", "edgepose", "matched", "missed by edgepose",
               "only edgepose", "min OKS"], people_rows)
    return {"main": main, "per_image": per_image, "stages": stages, "people": people}


def verdict_lines(doc: Mapping[str, Any]) -> list[str]:
    v = doc["verdicts"]
    lines = []
    if "static_ap" in v:
        s = v["static_ap"]
        lines.append(f"AP on the same file: edgepose {s['edgepose']:.3f} vs Ultralytics "
                     f"{s['ultralytics']:.3f} (target {s['target']}): "
                     f"{'met' if s['met'] else 'NOT met'}")
    if "dynamic_speed" in v:
        d = v["dynamic_speed"]
        lines.append(f"dynamic file, smallest letterbox: {d['ratio']:.2f}x Ultralytics' time "
                     f"(target {d['target']}): {'met' if d['met'] else 'NOT met'}")
    if "fastest" in v:
        f = v["fastest"]
        lines.append(f"fastest with AP within {FASTEST_AP_TOLERANCE}: {f['label']}, "
                     f"{f['ratio']:.2f}x, AP {f['ap']:.3f} (target {f['target']}): "
                     f"{'met' if f['met'] else 'NOT met'}")
    else:
        lines.append(f"fastest: no variant has AP within {FASTEST_AP_TOLERANCE} of Ultralytics'")
    return lines + [f"note: {n}" for n in doc.get("notes", [])]


def header_lines(doc: Mapping[str, Any]) -> list[str]:
    s, m = doc["settings"], doc["machine"]
    ul = doc["pipelines"]["ultralytics"]
    machine = (f"machine: {m['cpu']}, {m['cores']} usable cores, SIMD {' '.join(m['simd'])} "
               f"(AVX-512: {'yes' if m['avx512'] else 'no'}), load average {m['load_avg']}")
    sides = (f"Ultralytics {ul.get('ultralytics')} (torch {ul.get('torch')}, no torchvision: its "
             f"own NMS), onnxruntime {ul.get('onnxruntime')} on both sides, {s['threads']} "
             "threads each, one process per pipeline")
    timing = (f"{s['rounds']} alternating rounds x {s['repeat']} runs of {len(s['images'])} "
              f"images, after {s['warmup']} warm-up runs; times are medians (IQR) of the whole "
              "call; ratio = edgepose / Ultralytics of the summed per-image medians")
    return [machine, sides, timing]


def print_report(doc: Mapping[str, Any]) -> None:
    tables = report_tables(doc)
    for line in header_lines(doc):
        print(line)
    p = doc["people"]
    print(f"\nthe same people at conf {doc['settings']['ultralytics_conf']} "
          f"(box IoU >= {MATCH_IOU}; edgepose variant {p['edgepose_variant']!r}): "
          f"{'yes' if p['same'] else 'NO'}; mean OKS between matched poses "
          f"{p['mean_oks'] if p['mean_oks'] is None else round(p['mean_oks'], 3)}")
    print(format_table(*tables["people"], right=(1, 2, 3, 6)))
    print(f"\nOKS AP (pycocotools, conf {doc['settings']['ap_conf']}) and time")
    print(format_table(*tables["main"], right=(1, 2, 3, 4)))
    print("\nper image: median ms (IQR) and ratio to Ultralytics")
    print(format_table(*tables["per_image"], right=()))
    print("\nstages as each library reports them (ms, summed per-image medians)")
    print(format_table(*tables["stages"], right=range(1, len(tables["stages"][0]))))
    print()
    for line in verdict_lines(doc):
        print(line)


def markdown(doc: Mapping[str, Any]) -> str:
    """The report as markdown (the same tables as stdout)."""
    def table(header, rows):
        esc = [[str(c).replace("|", "\\|") for c in r] for r in [header, *rows]]
        return "\n".join(["| " + " | ".join(esc[0]) + " |",
                          "|" + "---|" * len(header)] +
                         ["| " + " | ".join(r) + " |" for r in esc[1:]])

    t = report_tables(doc)
    p = doc["people"]
    parts = [f"# edgepose vs Ultralytics on YOLO11n-pose ({doc['created']})", ""]
    parts += [f"- {line}" for line in header_lines(doc)]
    parts += ["", "## OKS AP and time", "", table(*t["main"]), "",
              "## Targets", ""] + [f"- {line}" for line in verdict_lines(doc)]
    same = (f"## The same people at conf {doc['settings']['ultralytics_conf']} "
            f"({'yes' if p['same'] else 'no'})")
    parts += ["", same, "", table(*t["people"]),
              "", "## Per image", "", table(*t["per_image"]),
              "", "## Stages as each library reports them (ms, summed per-image medians)", "",
              table(*t["stages"]), ""]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    doc = run(args)
    print_report(doc)
    if args.json:
        write_json(args.json, doc)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(doc))
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
