"""YOLO11n-pose exported to FP16 and INT8 on three runtimes: OKS AP and latency.

For every artefact (ONNX Runtime: FP32, FP16, INT8 naive, INT8 decided;
OpenVINO: FP32, FP16, INT8 naive, INT8 decided, and INT8 with the decode in
float when the decision kept the naive one; TFLite: FP32, INT8 naive, INT8
decided, and the decode-in-float one likewise):

1. **Correctness first**: the people it finds on the COCO images against its
   FP32 model on the same runtime (:func:`edgepose_export.yolo_pose.compare_people`:
   keypoint error of matched people in model-input pixels, OKS, lost people);
2. **OKS AP** on ``data/coco`` (4 images, 12 people with keypoints) with
   edgepose's evaluation (:func:`edgepose.evaluation.evaluate_coco`, identical
   to pycocotools): images letterboxed as the runtime does, people decoded
   (score > 0.25, box NMS IoU 0.7), mapped back to image pixels;
3. **latency**: the model call alone on one letterboxed image, through
   :func:`edgepose.backends.open_backend` (the runtime's backends), all
   artefacts of one runtime in one process, warmed up, then ``--runs``
   rounds alternating between them (order reversed every round); the p50 and
   the speed-up over FP32 on the same runtime.

The INT8 artefacts are made by :mod:`edgepose_export.yolo_pose`, calibrated
on the images of ``data/coral``, ``data/crowdpose``, ``data/aic`` and
``data/mpii`` (13 images, letterboxed as the runtime does) and judged on the
COCO images, which calibration never saw. Every artefact is written to
``--cache`` (default: a temporary folder, deleted) and never into the
repository: the source model is AGPL-3.0.

Usage (from the repository root)::

    python benchmarks/bench_yolo_int8.py [--threads T] [--runs N] [--json PATH]
        [--cache DIR] [--runtimes onnxruntime,openvino,tflite]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks._common import (cpu_model, cpu_simd_flags, environment, p50,  # noqa: E402
                                sha256, shared_dir, usable_cores)

RUNTIMES = ("onnxruntime", "openvino", "tflite")
CALIBRATION_FOLDERS = ("coral", "crowdpose", "aic", "mpii")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
SCORE_THRESHOLD = 0.25


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def coco_images(root: Path) -> tuple[list[int], list, list]:
    """(image ids, BGR images, (tensor, scale, pad) per image) of data/coco."""
    import cv2

    from edgepose.card import InputSpec
    from edgepose.model import preprocess_image

    ann = json.loads((root / "data/coco/test_coco.json").read_text())
    spec = InputSpec(size=(640, 640), layout="NCHW", color="RGB", std=(255.0,) * 3,
                     resize="letterbox", pad_value=114.0)
    ids, images, fed = [], [], []
    for im in sorted(ann["images"], key=lambda i: i["id"]):
        image = cv2.imread(str(root / "data/coco" / im["file_name"]))
        ids.append(int(im["id"]))
        images.append(image)
        fed.append(preprocess_image(image, spec, align="center"))
    return ids, images, fed


def coco_ap(outputs: list, ids: list[int], fed: list, root: Path, normalised: bool) -> float:
    """OKS AP of one artefact's raw outputs (one per COCO image)."""
    import numpy as np

    from edgepose.evaluation import KeypointDetections, evaluate_coco, load_coco_keypoints
    from edgepose_export.yolo_pose import decode_people, to_pixels

    rows_kp, rows_score, rows_image, rows_area = [], [], [], []
    for out, image_id, (tensor, scale, pad) in zip(outputs, ids, fed):
        if normalised:
            out = to_pixels(out, tensor.shape[2:])
        people = decode_people(out, score_threshold=SCORE_THRESHOLD)[0]
        sx, sy = scale
        px, py = pad
        for p in range(len(people.scores)):
            kp = people.keypoints[p].astype(np.float64)
            xy = np.stack([(kp[:, 0] - px) / sx, (kp[:, 1] - py) / sy], 1)
            rows_kp.append(np.concatenate([xy, people.visibility[p][:, None]], 1))
            rows_score.append(float(people.scores[p]))
            rows_image.append(image_id)
            b = people.boxes[p]
            rows_area.append(float((b[2] - b[0]) / sx * (b[3] - b[1]) / sy))
    gt = load_coco_keypoints(root / "data/coco/test_coco.json")
    if not rows_kp:
        return 0.0
    dt = KeypointDetections(np.array(rows_image), np.ones(len(rows_kp)), np.stack(rows_kp),
                            np.array(rows_score), np.array(rows_area))
    return float(evaluate_coco(gt, dt)["AP"])


def build(runtime: str, root: Path, cache: Path, calib, judge) -> dict[str, dict]:
    """{name: {"path", "normalised", "int8" (the decision, or None)}} for one runtime."""
    from edgepose_export import yolo_pose as y

    onnx_src = root / "models/yolo_pose/yolo11n-pose.onnx"
    tflite_src = root / "models/yolo_pose/yolo11n-pose.tflite"
    made: dict[str, dict] = {}

    def add(name, path, decision=None, normalised=False):
        made[name] = {"path": path, "normalised": normalised,
                      "int8": None if decision is None else decision.to_provenance()}

    if runtime == "onnxruntime":
        from edgepose_export.onnx import onnx_to_fp16

        add("fp32", onnx_src)
        add("fp16", onnx_to_fp16(onnx_src, cache / "ort_fp16.onnx"))
        path, d = y.quantize_onnx(onnx_src, cache / "ort_int8_naive.onnx", calib,
                                  measure_inputs=judge, head_depth=0)
        add("int8 naive", path, d)
        path, d = y.quantize_onnx(onnx_src, cache / "ort_int8.onnx", calib, measure_inputs=judge)
        add(f"int8 decided (depth {d.head_depth})", path, d)
    elif runtime == "openvino":
        import openvino as ov

        from edgepose_export.openvino import _save_ir

        fp32 = cache / "ov_fp32.xml"
        _save_ir(ov, ov.convert_model(str(onnx_src)), fp32, compress_to_fp16=False)
        add("fp32", fp32)
        add("fp16", y.openvino_fp16(onnx_src, cache / "ov_fp16.xml"))
        path, d = y.quantize_openvino(onnx_src, cache / "ov_int8_naive.xml", calib,
                                      measure_inputs=judge, head_depth=0)
        add("int8 naive", path, d)
        path, d = y.quantize_openvino(onnx_src, cache / "ov_int8.xml", calib,
                                      measure_inputs=judge)
        add(f"int8 decided (depth {d.head_depth})", path, d)
        if d.head_depth == 0:
            path, d = y.quantize_openvino(onnx_src, cache / "ov_int8_decode.xml", calib,
                                          measure_inputs=judge, head_depth=1)
            add("int8 decode in float (depth 1)", path, d)
    else:
        add("fp32", tflite_src, normalised=True)
        path, d = y.quantize_tflite(tflite_src, cache / "tfl_int8_naive.tflite", calib,
                                    measure_inputs=judge, head_depth=0)
        add("int8 naive", path, d, True)
        path, d = y.quantize_tflite(tflite_src, cache / "tfl_int8.tflite", calib,
                                    measure_inputs=judge)
        add(f"int8 decided (depth {d.head_depth})", path, d, True)
        if d.head_depth == 0:
            path, d = y.quantize_tflite(tflite_src, cache / "tfl_int8_decode.tflite", calib,
                                        measure_inputs=judge, head_depth=1)
            add("int8 decode in float (depth 1)", path, d, True)
    return made


def run_outputs(backend, tensors) -> list:
    """Raw output per tensor (a quantized output dequantized)."""
    import numpy as np

    info, out = backend.inputs[0], backend.outputs[0]
    results = []
    for x in tensors:
        r = np.asarray(backend.run({info.name: x})[out.name])
        if r.dtype != np.float32:
            r = (r.astype(np.float32) - out.zero_point) * out.scale
        results.append(r)
    return results


def measure_runtime(runtime: str, made: dict, ids, fed, root: Path, threads: int, runs: int
                    ) -> list[dict]:
    import numpy as np

    from edgepose.backends import open_backend
    from edgepose_export.yolo_pose import compare_people, to_pixels

    backends = {name: open_backend(a["path"], threads=threads) for name, a in made.items()}
    try:
        tensors = [t for t, _, _ in fed]
        outputs = {name: run_outputs(b, tensors) for name, b in backends.items()}
        x = tensors[0]
        feeds = {name: {b.inputs[0].name: x} for name, b in backends.items()}
        for name, b in backends.items():  # warm-up
            for _ in range(3):
                b.run(feeds[name])
        times: dict[str, list[float]] = {name: [] for name in backends}
        order = list(backends)
        for i in range(runs):
            for name in (order if i % 2 == 0 else order[::-1]):
                t0 = time.perf_counter_ns()
                backends[name].run(feeds[name])
                times[name].append((time.perf_counter_ns() - t0) / 1e6)
    finally:
        for b in backends.values():
            b.close()
    rows = []
    ref = np.concatenate(outputs["fp32"])
    for name, a in made.items():
        got = np.concatenate(outputs[name])
        r, g = (to_pixels(ref, (640, 640)), to_pixels(got, (640, 640))) if a["normalised"] \
            else (ref, got)
        rows.append({"runtime": runtime, "artefact": name,
                     "file": Path(a["path"]).name,
                     "ap": coco_ap(outputs[name], ids, fed, root, a["normalised"]),
                     "vs_fp32": compare_people(r, g), "latency_ms_p50": p50(times[name]),
                     "int8": a["int8"]})
    base = next(r for r in rows if r["artefact"] == "fp32")
    for r in rows:
        r["delta_ap"] = r["ap"] - base["ap"]
        r["speedup"] = base["latency_ms_p50"] / r["latency_ms_p50"]
    return rows


def table(rows: list[dict]) -> str:
    head = (f"{'runtime':12} {'artefact':32} {'AP':>6} {'dAP':>7} {'kp err':>8} {'OKS':>6} "
            f"{'lost':>5} {'ms p50':>8} {'speed-up':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        v = r["vs_fp32"]
        lines.append(f"{r['runtime']:12} {r['artefact']:32} {r['ap']:6.3f} {r['delta_ap']:+7.3f} "
                     f"{v['keypoint_error_px_mean']:8.2f} {v['oks_mean']:6.3f} "
                     f"{v['people'] - v['matched']:5d} {r['latency_ms_p50']:8.1f} "
                     f"{r['speedup']:7.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--runs", type=int, default=30, help="timed rounds per runtime")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES))
    parser.add_argument("--cache", type=Path, default=None,
                        help="where the artefacts go (default: a temporary folder, deleted)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown or not runtimes:
        parser.error(f"--runtimes must be some of {', '.join(RUNTIMES)}, got {args.runtimes!r}")
    if args.runs < 1 or args.threads < 1:
        parser.error("--runs and --threads must be >= 1")

    import cv2
    import numpy as np

    from edgepose_export.api import CalibrationSet
    from edgepose_export.yolo_pose import letterbox_tensors

    root = shared_dir()
    calib_files = [p for f in CALIBRATION_FOLDERS for p in image_files(root / "data" / f)]
    calib = CalibrationSet(letterbox_tensors([cv2.imread(str(p)) for p in calib_files]),
                           f"{len(calib_files)} images of data/{{{','.join(CALIBRATION_FOLDERS)}}}")
    ids, _, fed = coco_images(root)
    judge = np.concatenate([t for t, _, _ in fed])
    tmp = None
    if args.cache is None:
        tmp = tempfile.TemporaryDirectory(prefix="edgepose-yolo-int8-")
        cache = Path(tmp.name)
    else:
        cache = args.cache
        cache.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for runtime in runtimes:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                made = build(runtime, root, cache, calib, judge)
            built_s = time.perf_counter() - t0
            got = measure_runtime(runtime, made, ids, fed, root, args.threads, args.runs)
            for r in got:
                r["build_s"] = round(built_s, 1)
            rows += got
            print(table(got), flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    print()
    print(table(rows))
    flags = cpu_simd_flags()
    print(f"\nCPU: {cpu_model()} ({', '.join(flags)}); threads {args.threads}; "
          f"{args.runs} alternating rounds; AP on data/coco (12 people), score > {SCORE_THRESHOLD}")
    if args.json is not None:
        doc = {"benchmark": "bench_yolo_int8", "environment": environment(),
               "cpu_flags": flags, "threads": args.threads, "runs": args.runs,
               "source_sha256": {p: sha256(root / "models/yolo_pose" / p)
                                 for p in ("yolo11n-pose.onnx", "yolo11n-pose.tflite")},
               "calibration": calib.source, "rows": rows}
        args.json.write_text(json.dumps(doc, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
