"""Accuracy next to speed: every real model with ground truth, per runtime and precision.

For each model in ``../shared/models`` whose keypoints match an annotated set
in ``../shared/data``, and for each runtime that loads it (its own, and
OpenVINO, which reads ONNX and TFLite files) and each precision the export
stage produces from it (FP16 and calibrated INT8 for the float ONNX files),
this runs :func:`edgepose.evaluation.evaluate_model` and writes one markdown
table: OKS AP (COCO) or PCK@0.1 (AI-Challenger), with p50 latency per image.

Top-down models get the ground-truth boxes, so the table isolates the pose
model (detector recall is a separate question); bottom-up models see whole
images. INT8 models are calibrated on COCO person crops and evaluated on AIC,
so calibration never sees the evaluation images. The data are small (4 COCO
images, 3 AIC images): the figures compare precisions and runtimes of one
model, they are not benchmark-grade accuracies.

Usage (from the repository root)::

    python benchmarks/report.py [--out docs/accuracy_speed.md] [--json OUT] [--skip-export]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EDGEPOSE_SHARED", REPO.parent / "shared"))


def _models(shared: Path):
    """(label, file, dataset, evaluation options) of every real model with ground truth."""
    m, d = shared / "models", shared / "data"
    coco = (d / "coco/test_coco.json", d / "coco", "AP")
    aic = (d / "aic/test_aic.json", d / "aic", "PCK@0.1")
    return [
        ("MoveNet Lightning int8", m / "movenet/movenet_singlepose_lightning_int8_4.tflite",
         coco, {"gt_boxes": True}),
        ("MoveNet Lightning int8 (ONNX)",
         m / "movenet/onnx_converted/movenet_singlepose_lightning_int8_4.onnx", coco,
         {"gt_boxes": True}),
        ("BlazePose lite", m / "mediapipe/pose_landmark_lite.tflite", coco, {"gt_boxes": True}),
        ("BlazePose lite (ONNX)", m / "mediapipe/onnx_converted/pose_landmark_lite.onnx", coco,
         {"gt_boxes": True}),
        ("BlazePose full", m / "mediapipe/pose_landmark_full.tflite", coco, {"gt_boxes": True}),
        ("PoseNet MobileNetV1 481x641", m / "posenet/posenet_mobilenet_v1_075_481_641_quant.tflite",
         coco, {}),
        ("tf-pose MobileNetV2 (PAF)", m / "openpose_paf/tfpose_mobilenet_v2_small.onnx", coco, {}),
        ("CPM", m / "heatmap_cpm_hourglass/cpm_model.tflite", aic, {"gt_boxes": True}),
        ("CPM (ONNX)", m / "heatmap_cpm_hourglass/onnx_converted/cpm_model.onnx", aic,
         {"gt_boxes": True}),
        ("Hourglass", m / "heatmap_cpm_hourglass/hourglass_model.tflite", aic, {"gt_boxes": True}),
        ("Hourglass (ONNX)", m / "heatmap_cpm_hourglass/onnx_converted/hourglass_model.onnx", aic,
         {"gt_boxes": True}),
    ]


def _exports(path: Path, work: Path, shared: Path) -> list[tuple[str, Path]]:
    """FP16 and calibrated INT8 ONNX copies of a float ONNX top-down model."""
    from edgepose.card import read_card
    from edgepose.presets import preset_card, recognise
    from edgepose_export.calibration import calibration_set
    from edgepose_export.onnx import is_quantized, onnx_to_fp16, onnx_to_int8

    if path.suffix != ".onnx" or is_quantized(path):
        return []
    card = read_card(path) or preset_card(recognise(path))
    if card.task == "bottomup":
        out = [("fp16", onnx_to_fp16(path, work / f"{path.stem}_fp16.onnx", card=card))]
        return out
    coco = shared / "data/coco"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer than 100 calibration images: said in the table
        calib = calibration_set(coco, card, boxes=coco / "test_coco.json", progress=False)
    return [("fp16", onnx_to_fp16(path, work / f"{path.stem}_fp16.onnx", card=card)),
            ("int8", onnx_to_int8(path, work / f"{path.stem}_int8.onnx", calib, card))]


def _evaluate(path: Path, backend: str | None, dataset, options) -> dict:
    import cv2

    from edgepose import Estimator
    from edgepose.evaluation import evaluate_model

    annotations, images, metric = dataset
    with Estimator(path, backend=backend) as est:
        first = next(p for p in sorted(images.iterdir()) if p.suffix.lower() in (".jpg", ".png"))
        est(cv2.imread(str(first)))  # warm-up, not timed
        report = evaluate_model(est, annotations, images, **options)
    summary = report.summary()
    return {"metric": metric, "value": float(summary[metric]),
            "latency_ms_p50": float(summary["latency_ms_p50"]), "people": report.num_people}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs/accuracy_speed.md"))
    parser.add_argument("--json")
    parser.add_argument("--skip-export", action="store_true",
                        help="only the files as they are (no FP16 / INT8 copies)")
    args = parser.parse_args(argv)
    if not (SHARED / "models").is_dir():
        print(f"error: no models in {SHARED}; set EDGEPOSE_SHARED.", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, path, dataset, options in _models(SHARED):
            variants = [("as published", path)]
            if not args.skip_export:
                try:
                    variants += _exports(path, Path(tmp), SHARED)
                except ImportError as exc:
                    print(f"note: no exports ({exc})", file=sys.stderr)
            native = {".onnx": "onnxruntime", ".tflite": "tflite"}[path.suffix]
            for precision, file in variants:
                for backend in (native, "openvino"):
                    if precision == "int8" and backend == "openvino":
                        continue  # QDQ ONNX on OpenVINO: its own int8 path is the IR (export)
                    start = time.perf_counter()
                    try:
                        result = _evaluate(file, backend, dataset, options)
                    except Exception as exc:  # a report: say what failed, go on
                        result = {"error": f"{type(exc).__name__}: {exc}"}
                    row = {"model": label, "file": path.name, "precision": precision,
                           "backend": backend, "data": dataset[1].name,
                           "size_mb": round(file.stat().st_size / 1e6, 2), **result}
                    rows.append(row)
                    print(f"{label:32} {precision:13} {backend:12} "
                          f"{row.get('metric', '')} {row.get('value', row.get('error'))} "
                          f"({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    lines = [
        "# Accuracy next to speed on the real models",
        "",
        f"Generated by `benchmarks/report.py` on {platform.machine()} "
        f"({platform.processor() or platform.platform()}), {time.strftime('%Y-%m-%d')}. "
        "Top-down models on ground-truth boxes; bottom-up models on whole images. "
        "COCO: 4 images, 12 people with keypoints (OKS AP, pycocotools-identical). "
        "AIC: 3 images, 9 people (PCK@0.1 of the box size). INT8: static QDQ per-channel, "
        "calibrated on COCO person crops (fewer than the 100 images one should use). "
        "Latency: p50 per image, all stages, one process, this machine's default threads "
        "(compare rows with each other; absolute times depend on the machine's load).",
        "",
        "| model | precision | runtime | data | metric | value | p50 ms | MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            value, metric, ms = f"failed: {r['error'][:80]}", "", ""
        else:
            value, metric, ms = f"{r['value']:.3f}", r["metric"], f"{r['latency_ms_p50']:.1f}"
        lines.append(f"| {r['model']} | {r['precision']} | {r['backend']} | {r['data']} | "
                     f"{metric} | {value} | {ms} | {r['size_mb']} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
