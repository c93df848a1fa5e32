"""edgepose's overhead over the bare runtime, top-down YOLOX-nano + MoveNet.

What an ``Estimator(movenet, detector=yolox_nano)`` call costs beyond the
runtimes' own work: the same frame goes through

* **edgepose**: ``Estimator.__call__`` (letterbox, YOLOX-nano on
  onnxruntime, decoding and NMS; three affine crops, MoveNet Lightning int8 on
  TFLite, decoding, back to image pixels), timed whole;
* **bare runtime**: ``InferenceSession.run`` on the detector's input tensor
  and three ``set_tensor``/``invoke``/``get_tensor`` calls of a TFLite
  ``Interpreter`` on the crops' tensors -- exactly the tensors edgepose
  feeds (built once with edgepose's own preprocessing), in sessions opened
  with the same options (threads, XNNPACK as TFLite's default).

``pre+post`` is edgepose total minus bare inference: everything edgepose does
around the runtimes (image preprocessing, crops, decoding, NMS, the backend
wrapper's feed checks and output copies). It is reported as a percentage of
bare inference (target <= 10%). Both are p50 over interleaved runs in the
same process (the order of the blocks rotates every run). A breakdown times
each of edgepose's parts on its own in the same loop; their sum is the
overhead without the contention between stages (the end-to-end difference
also holds what one stage's thread pool, still spinning, takes from the next).

Before timing, the script checks that edgepose's backends give the bare
sessions' outputs on those tensors, and that the Estimator finds the three
people the detector finds (exit status 1 otherwise).

The image: COCO val2017 000000197388 cropped to x >= 150 px (490 x 392), in
which YOLOX-nano finds exactly three people. The models and the image are read
in place from ``EDGEPOSE_SHARED`` (default ``../shared``).

Usage (from the repository root)::

    python benchmarks/bench_overhead.py [--threads T] [--runs N] [--warmup N] [--json PATH]
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks._common import p50, p90, shared_dir, usable_cores, utc_now, write_json  # noqa: E402

IMAGE = "data/coco/000000197388.jpg"
IMAGE_X0 = 150                        # the crop with exactly three people
POSE = "models/movenet/movenet_singlepose_lightning_int8_4.tflite"
DETECTOR = "models/detectors/yolox_yolox_nano_416x416.onnx"
PEOPLE = 3
TARGET_PCT = 10.0


def ms(ns: int) -> float:
    return ns / 1e6


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=usable_cores(),
                    help="inference threads of both models (default: the usable cores)")
    ap.add_argument("--runs", type=int, default=150, help="timed frames (default 150)")
    ap.add_argument("--warmup", type=int, default=15, help="untimed frames first (default 15)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures as JSON")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.runs < 1 or args.warmup < 0:
        ap.error("--threads and --runs must be >= 1, --warmup >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import cv2
    import onnxruntime as ort

    import edgepose
    from edgepose.backends import open_backend
    from edgepose.backends.tflite import import_interpreter
    from edgepose.bench.probe import probe_machine
    from edgepose.detectors import PersonDetector
    from edgepose.model import LoadedModel
    from edgepose.transforms import boxes_to_center_scale, crop_matrices, warp_crops

    root = shared_dir()
    pose_path, det_path = root / POSE, root / DETECTOR
    full = cv2.imread(str(root / IMAGE))
    image = np.ascontiguousarray(full[:, IMAGE_X0:])
    threads = args.threads

    # --- edgepose, and the tensors it feeds ------------------------------------------
    est = edgepose.Estimator(pose_path, detector=det_path, threads=threads)
    det = PersonDetector.from_file(det_path, threads=threads)
    pose = LoadedModel(pose_path, threads=threads)
    x_det, scale, pad = det.preprocess(image)
    detections = det(image)
    in_h, in_w = pose.input_hw
    centers, sizes = boxes_to_center_scale(detections.boxes, in_w / in_h, est.padding)
    matrices = crop_matrices(centers, sizes, (in_h, in_w))
    crops = warp_crops(image, matrices, (in_h, in_w), pad_value=pose.card.input.pad_value)
    x_pose = pose.preprocess(crops)                     # (3, 192, 192, 3) uint8

    # --- the bare runtimes, same options ---------------------------------------------
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    session = ort.InferenceSession(str(det_path), sess_options=so,
                                   providers=["CPUExecutionProvider"])
    det_input = session.get_inputs()[0].name
    Interpreter, package = import_interpreter()
    interp = Interpreter(model_path=str(pose_path), num_threads=threads)
    interp.allocate_tensors()
    pose_in = interp.get_input_details()[0]["index"]
    pose_out = interp.get_output_details()[0]["index"]

    def bare_detector():
        return session.run(None, {det_input: x_det})

    def bare_pose():
        outs = []
        for i in range(len(x_pose)):
            interp.set_tensor(pose_in, x_pose[i:i + 1])
            interp.invoke()
            outs.append(interp.get_tensor(pose_out).copy())
        return outs

    # edgepose's backends alone on the same tensors (the wrapper's cost)
    ep_det = open_backend(det_path, threads=threads)
    ep_pose = open_backend(pose_path, threads=threads)

    def wrapped_detector():
        return ep_det.run({det_input: x_det})

    def wrapped_pose():
        return [ep_pose.run({pose.backend.inputs[0].name: x_pose[i:i + 1]})
                for i in range(len(x_pose))]

    # --- correctness first -------------------------------------------------------------
    poses = est(image)
    problems = []
    if len(detections) != PEOPLE or len(poses) != PEOPLE:
        problems.append(f"expected {PEOPLE} people, the detector found {len(detections)} and "
                        f"the Estimator {len(poses)}")
    elif not np.allclose(poses.boxes, detections.boxes, atol=1e-4):
        problems.append("the Estimator's boxes differ from the detector's")
    raw_d = bare_detector()[0]
    ep_d = next(iter(wrapped_detector().values()))
    if not np.array_equal(raw_d, ep_d):
        problems.append(f"detector outputs differ by {np.abs(raw_d - ep_d).max()}")
    raw_p = np.concatenate(bare_pose())
    ep_p = np.concatenate([next(iter(o.values())) for o in wrapped_pose()])
    if not np.array_equal(raw_p, ep_p):
        problems.append(f"MoveNet outputs differ by {np.abs(raw_p - ep_p).max()}")
    if problems:
        for msg in problems:
            print(f"error: {msg}", file=sys.stderr)
        return 1
    print(f"checked: {PEOPLE} people found; edgepose's backends give the bare sessions' "
          "outputs on the same tensors (bit-identical)")

    # --- timing ---------------------------------------------------------------------------
    def timed(fn):
        t0 = time.perf_counter_ns()
        fn()
        return ms(time.perf_counter_ns() - t0)

    parts = {
        "detector letterbox + tensor": lambda: det.preprocess(image),
        "detector decode + NMS": (lambda outs={session.get_outputs()[0].name: raw_d}:
                                  det.postprocess(outs, scale, pad, image.shape[:2])),
        "crops + pose tensor": lambda: pose.preprocess(warp_crops(
            image, crop_matrices(*boxes_to_center_scale(detections.boxes, in_w / in_h,
                                                        est.padding), (in_h, in_w)),
            (in_h, in_w), pad_value=pose.card.input.pad_value)),
    }
    names = ["edgepose", "bare", "bare detector", "bare pose x3", "wrapped detector",
             "wrapped pose x3", *parts]
    samples = {n: [] for n in names}
    stages = {s: [] for s in ("detect", "preprocess", "inference", "decode")}
    for _ in range(args.warmup):
        est(image), bare_detector(), bare_pose()
    gc.collect()
    def run_estimator():
        result = []
        samples["edgepose"].append(timed(lambda: result.append(est(image))))
        for s in stages:
            stages[s].append(result[0].timings_ms[s])

    def run_bare():
        a, b = timed(bare_detector), timed(bare_pose)
        samples["bare detector"].append(a)
        samples["bare pose x3"].append(b)
        samples["bare"].append(a + b)

    def run_wrapped():
        samples["wrapped detector"].append(timed(wrapped_detector))
        samples["wrapped pose x3"].append(timed(wrapped_pose))

    def run_parts():
        for n, fn in parts.items():
            samples[n].append(timed(fn))

    # The blocks rotate every run, so that none always follows the same one (a
    # runtime's thread pool still spinning after its call slows whatever comes next).
    blocks = [run_estimator, run_bare, run_wrapped, run_parts]
    for run in range(args.runs):
        k = run % len(blocks)
        for block in blocks[k:] + blocks[:k]:
            block()

    est_p50, bare_p50 = p50(samples["edgepose"]), p50(samples["bare"])
    overhead = est_p50 - bare_p50
    pct = 100.0 * overhead / bare_p50
    paired = [100.0 * (e - r) / r for e, r in zip(samples["edgepose"], samples["bare"])]

    machine = probe_machine()
    print(f"machine: {machine['cpu']['model']} ({machine['cpu']['cores_logical']} cores), "
          f"load average {machine['load_avg']}; threads {threads}; onnxruntime "
          f"{ort.__version__}, {package} {machine['runtimes'].get('ai-edge-litert', '')}")
    print(f"image: {IMAGE} x >= {IMAGE_X0} ({image.shape[1]}x{image.shape[0]}), {PEOPLE} people; "
          f"{args.runs} interleaved runs after {args.warmup} warm-up; p50 / p90 ms\n")
    rows = [(n, p50(samples[n]), p90(samples[n])) for n in names]
    rows += [(f"Estimator stage: {s}", p50(v), p90(v)) for s, v in stages.items() if v]
    width = max(len(r[0]) for r in rows)
    for n, a, b in rows:
        print(f"  {n:<{width}}  {a:8.2f}  {b:8.2f}")
    # median of per-run differences: the wrapper costs microseconds, far below the noise
    wrapper = float(np.median(np.subtract(samples["wrapped detector"], samples["bare detector"]))
                    + np.median(np.subtract(samples["wrapped pose x3"], samples["bare pose x3"])))
    print(f"\nedgepose total p50 {est_p50:.2f} ms vs bare inference p50 {bare_p50:.2f} ms: "
          f"pre+post {overhead:.2f} ms = {pct:.1f}% of inference "
          f"(median of per-run ratios {np.median(paired):.1f}%); "
          f"target <= {TARGET_PCT:g}%: {'met' if pct <= TARGET_PCT else 'NOT met'}")
    print(f"edgepose's backend wrappers alone (feed checks, output copies) vs the bare calls: "
          f"{wrapper:+.2f} ms per frame (median of per-run differences)")
    own = (sum(p50(samples[n]) for n in parts) + p50(stages["decode"]))
    print(f"edgepose's own pre/post work timed part by part (detector letterbox + decode + NMS, "
          f"crops + tensor, pose decode; p50s): {own:.2f} ms = {100 * own / bare_p50:.1f}% of "
          "inference")

    if args.json:
        doc = {
            "benchmark": "edgepose overhead over the bare runtime (benchmarks/bench_overhead.py)",
            "created": utc_now(),
            "settings": {"threads": threads, "runs": args.runs, "warmup": args.warmup,
                         "image": f"{IMAGE}[:, {IMAGE_X0}:]", "people": PEOPLE,
                         "pose": POSE, "detector": DETECTOR, "units": "ms"},
            "machine": machine,
            "p50_ms": {n: a for n, a, _ in rows}, "p90_ms": {n: b for n, _, b in rows},
            "overhead_ms": overhead, "overhead_pct_of_inference": pct,
            "paired_median_pct": float(np.median(paired)), "target_pct": TARGET_PCT,
            "wrapper_ms": wrapper, "own_parts_ms": own,
            "own_parts_pct_of_inference": 100 * own / bare_p50,
        }
        write_json(args.json, doc)
    for closable in (est, det, pose, ep_det, ep_pose):
        closable.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
