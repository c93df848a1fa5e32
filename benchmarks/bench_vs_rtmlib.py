"""edgepose against rtmlib, side by side in one process.

1. **SimCC decoding**: rtmlib's NumPy ``get_simcc_maximum`` against
   ``edgepose.ops.decode_simcc`` on the same logits (N in {1, 3, 16}, K = 17,
   Wx = 384, Wy = 512). Locations must agree wherever both call a keypoint
   found; scores differ by definition (rtmlib averages the two axis maxima,
   edgepose takes their minimum, as MMPose does), so they are checked against
   each definition.
2. **NMS**: rtmlib's ``nms`` against ``edgepose.ops.nms_boxes`` (M in {100,
   1000} clustered boxes), and rtmlib's ``multiclass_nms`` against
   ``nms_boxes(groups=class)`` on YOLOX-nano's real 3549 x 80 outputs for the
   benchmark image. rtmlib adds one pixel to widths and heights; it is given
   ``x2 - 1, y2 - 1`` so that both compute the same IoU, and the kept indices
   must be equal.
3. **Top-down pipeline**: YOLOX-nano + an RTMPose-signature ONNX on the same
   image, both on onnxruntime's CPU provider with the same threads (rtmlib's
   sessions are reopened with edgepose's session options, since rtmlib sets no
   thread count). rtmlib: ``YOLOX`` (``det_mode="multiclass"``, the person
   class kept: its "human" mode returns every class's boxes, meant for
   person-only detectors) then ``RTMPose``, one crop per call, as its ``Body``
   solution chains them. edgepose: ``Estimator(model, detector=...)``. Same
   score threshold (0.3) and NMS IoU (0.45). Also with the same given boxes
   (no detector).

   Models: RTMPose-t (``edgepose_export.models.rtmpose``, MMPose's
   architecture with random weights: the cost of the real network, outputs
   meaningless) exported to ONNX with a fixed batch of 1, as MMDeploy does,
   and once more with a dynamic batch (edgepose then runs the three crops as
   one batch); and the tiny ``rtmpose_like`` graph of ``tests/models``
   (almost no inference: pre- and postprocessing dominate). Without torch or
   the export stage, only ``rtmpose_like`` runs.

   Before timing: both find the same people (IoU > 0.9), and on an image of
   white dots inside the boxes, both place ``rtmpose_like``'s keypoints on
   the dots (rtmlib feeds BGR pixels normalised with RGB-order mean/std,
   edgepose converts to RGB as the RTMPose card says: inputs differ a
   little, the cost is the same).

Every figure is a ratio of p50s measured in the same process (interleaved,
order alternating); target edgepose / rtmlib <= 0.8 end to end. rtmlib never
downloads: it is given local files, and its downloader is replaced by one
that raises.

Usage (from the repository root)::

    python benchmarks/bench_vs_rtmlib.py [--threads T] [--runs N] [--json PATH] [--quick]
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks._common import p50, p90, shared_dir, usable_cores, utc_now, write_json  # noqa: E402

IMAGE = "data/coco/000000197388.jpg"
IMAGE_X0 = 150                      # the crop in which YOLOX-nano finds three people
DETECTOR = "models/detectors/yolox_yolox_nano_416x416.onnx"
SCORE_THR, NMS_THR = 0.3, 0.45
SPLIT = 2.0
TARGET = 0.8
SEED = 20240531


# --- micro-benchmarks -------------------------------------------------------------------

def time_pair(fa, fb, samples: int, min_sample_s: float = 2e-3) -> tuple[list, list]:
    """Per-call seconds of fa and fb: alternating samples, each long enough to time."""
    for f in (fa, fb):
        f()
    reps = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            fa()
        if time.perf_counter() - t0 >= min_sample_s:
            break
        reps *= 2
    a, b = [], []
    for i in range(samples):
        for f, out in ((fa, a), (fb, b)) if i % 2 == 0 else ((fb, b), (fa, a)):
            t0 = time.perf_counter_ns()
            for _ in range(reps):
                f()
            out.append((time.perf_counter_ns() - t0) / reps / 1e3)   # us per call
    return a, b


def make_simcc(rng, n: int, k: int = 17, wx: int = 384, wy: int = 512):
    def axis(width):
        bins = np.arange(width, dtype=np.float64)
        centre = rng.uniform(0.02 * width, 0.98 * width, size=(n, k, 1))
        height = np.where(rng.random((n, k, 1)) < 0.15, rng.uniform(0.02, 0.2, (n, k, 1)),
                          rng.uniform(0.4, 1.0, (n, k, 1)))
        logits = height * np.exp(-0.5 * ((bins - centre) / rng.uniform(4, 6, (n, k, 1))) ** 2)
        return (logits + rng.normal(0, 0.02, (n, k, width))).astype(np.float32)
    return axis(wx), axis(wy)


def make_boxes(rng, m: int, w: float = 1280, h: float = 720):
    people = int(np.clip(round(np.sqrt(m)), 2, 40))
    pw = rng.uniform(40, 200, people)
    ph = pw * rng.uniform(2, 3, people)
    pcx, pcy = rng.uniform(pw / 2, w - pw / 2), rng.uniform(0, h, people)
    owner = rng.integers(0, people, m)
    bw = pw[owner] * np.exp(rng.normal(0, 0.1, m))
    bh = ph[owner] * np.exp(rng.normal(0, 0.1, m))
    cx = pcx[owner] + rng.normal(0, 0.08, m) * pw[owner]
    cy = pcy[owner] + rng.normal(0, 0.08, m) * ph[owner]
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1).astype(np.float32)
    scores = rng.permutation(np.linspace(0.05, 0.95, m)).astype(np.float32)  # no ties
    return boxes, scores


def bench_simcc(rtm_post, ops, samples: int) -> list[dict]:
    rows = []
    for n in (1, 3, 16):
        x, y = make_simcc(np.random.default_rng([SEED, n]), n)
        kp, sc = ops.decode_simcc(x, y, SPLIT)
        locs, vals = rtm_post.get_simcc_maximum(x.copy(), y.copy())
        mx, my = x.max(-1), y.max(-1)
        both = (sc > 0) & (vals > 0)
        loc_ok = np.array_equal(kp[both] * SPLIT, locs[both])
        min_ok = np.array_equal(sc, np.minimum(mx, my))
        mean_ok = np.allclose(vals, 0.5 * (mx + my))
        only_one = int(((sc > 0) != (vals > 0)).sum())
        if not (loc_ok and min_ok and mean_ok):
            raise SystemExit(f"error: SimCC N={n}: locations agree {loc_ok}, edgepose = min "
                             f"{min_ok}, rtmlib = mean {mean_ok}")
        e, r = time_pair(lambda: ops.decode_simcc(x, y, SPLIT),
                         lambda: rtm_post.get_simcc_maximum(x, y), samples)
        rows.append({"case": f"decode_simcc N={n} K=17", "edgepose_us": p50(e),
                     "rtmlib_us": p50(r), "ratio": p50(e) / p50(r),
                     "check": f"{int(both.sum())} locations equal; {only_one} keypoints valid "
                              "under one score definition only"})
    return rows


def bench_nms(rtm_det_post, ops, samples: int, yolox_raw, input_hw) -> list[dict]:
    from edgepose.detectors import decode_yolox

    rows = []
    for m in (100, 1000):
        boxes, scores = make_boxes(np.random.default_rng([SEED, m]), m)
        shifted = boxes.copy()
        shifted[:, 2:] -= 1.0           # rtmlib's +1 then gives edgepose's IoU
        keep_e = ops.nms_boxes(boxes, scores, NMS_THR)
        keep_r = np.asarray(rtm_det_post.nms(shifted, scores, NMS_THR))
        if not np.array_equal(keep_e, keep_r):
            raise SystemExit(f"error: nms M={m}: kept indices differ ({len(keep_e)} vs "
                             f"{len(keep_r)})")
        e, r = time_pair(lambda: ops.nms_boxes(boxes, scores, NMS_THR),
                         lambda: rtm_det_post.nms(shifted, scores, NMS_THR), samples)
        rows.append({"case": f"nms_boxes M={m}", "edgepose_us": p50(e), "rtmlib_us": p50(r),
                     "ratio": p50(e) / p50(r), "check": f"same {len(keep_e)} kept indices"})

    # multiclass, on YOLOX-nano's real outputs (3549 anchors x 80 classes)
    raw = yolox_raw.reshape(-1, yolox_raw.shape[-1])
    boxes, _ = decode_yolox(raw, input_hw, (8, 16, 32))
    cls = raw[:, 4:5] * raw[:, 5:]
    shifted = boxes.copy()
    shifted[:, 2:] -= 1.0

    def edgepose_multiclass():
        a, c = np.nonzero(cls > SCORE_THR)
        keep = ops.nms_boxes(boxes[a], cls[a, c], NMS_THR, groups=c)
        return a[keep], c[keep]

    def rtmlib_multiclass():
        return rtm_det_post.multiclass_nms(shifted, cls, NMS_THR, SCORE_THR)

    a, c = edgepose_multiclass()
    dets, keep = rtmlib_multiclass()
    got = sorted(zip(a.tolist(), c.tolist()))
    want = sorted(zip(keep.tolist(), dets[:, 5].astype(int).tolist()))
    if got != want:
        raise SystemExit("error: multiclass NMS on YOLOX-nano's outputs: kept (box, class) "
                         f"pairs differ: {len(got)} vs {len(want)}")
    e, r = time_pair(edgepose_multiclass, rtmlib_multiclass, samples)
    rows.append({"case": "multiclass NMS, YOLOX-nano 3549x80", "edgepose_us": p50(e),
                 "rtmlib_us": p50(r), "ratio": p50(e) / p50(r),
                 "check": f"same {len(got)} kept (box, class) pairs"})
    return rows


# --- models ---------------------------------------------------------------------------------

def build_models(work: Path, quick: bool) -> tuple[list[tuple[str, Path, str]], str | None]:
    """[(label, path, note)], and why RTMPose-t is missing (or None)."""
    from tests.models.synthetic import rtmpose_like

    models = []
    missing = None
    if not quick:
        try:
            import torch

            from edgepose_export.models.rtmpose import rtmpose
        except ImportError as exc:
            missing = f"RTMPose-t not built ({exc}); pip install 'edgepose[export]'"
        else:
            torch.manual_seed(0)
            net = rtmpose("t").eval()
            x = torch.zeros(1, 3, 256, 192)
            for label, dynamic in (("RTMPose-t, batch 1", None),
                                   ("RTMPose-t, dynamic batch", {"input": {0: "N"},
                                                                 "simcc_x": {0: "N"},
                                                                 "simcc_y": {0: "N"}})):
                path = work / ("rtmpose_t_dyn.onnx" if dynamic else "rtmpose_t.onnx")
                with contextlib.redirect_stdout(io.StringIO()), \
                        contextlib.redirect_stderr(io.StringIO()):
                    torch.onnx.export(net, (x,), str(path), input_names=["input"],
                                      output_names=["simcc_x", "simcc_y"], opset_version=17,
                                      dynamic_axes=dynamic, dynamo=False)
                models.append((label, path, "random weights: real cost, meaningless output"))
    models.append(("rtmpose_like (tiny graph)",
                   rtmpose_like(work / "rtmpose_like.onnx", batch=1),
                   "almost no inference: pre/post dominate"))
    return models, missing


def session_options(ort, threads: int):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return so


def open_rtmlib(rtmlib, ort, model: Path, det_path: Path, threads: int):
    """rtmlib's YOLOX and RTMPose on local files, sessions reopened with our threads."""
    with contextlib.redirect_stdout(io.StringIO()):     # rtmlib prints "load ... with ..."
        det = rtmlib.YOLOX(str(det_path), model_input_size=(416, 416), det_mode="multiclass",
                           score_thr=SCORE_THR, nms_thr=NMS_THR, backend="onnxruntime",
                           device="cpu")
        pose = rtmlib.RTMPose(str(model), model_input_size=(192, 256), backend="onnxruntime",
                              device="cpu")
    for tool, path in ((det, det_path), (pose, model)):
        tool.session = ort.InferenceSession(str(path), sess_options=session_options(ort, threads),
                                            providers=["CPUExecutionProvider"])
    return det, pose


def rtmlib_people(det, image) -> np.ndarray:
    boxes, classes = det(image)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return boxes[np.asarray(classes).reshape(-1) == 0]


def iou_matrix(a, b):
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def dot_images(boxes: np.ndarray, shape) -> list[tuple[np.ndarray, tuple[float, float]]]:
    """Per box: a dark image with one white 3x3 dot inside the box, and the dot's
    centre (one image per box, so that no other box's dot falls in its crop)."""
    out = []
    rng = np.random.default_rng(SEED)
    for x1, y1, x2, y2 in boxes:
        img = np.full(shape, 20, np.uint8)
        cx = int(rng.uniform(x1 + 0.3 * (x2 - x1), x1 + 0.7 * (x2 - x1)))
        cy = int(rng.uniform(y1 + 0.3 * (y2 - y1), y1 + 0.7 * (y2 - y1)))
        img[cy - 1:cy + 2, cx - 1:cx + 2] = 255
        out.append((img, (cx + 0.5, cy + 0.5)))
    return out


def bench_pipelines(args, root: Path, work: Path) -> tuple[list[dict], dict]:
    import cv2
    import onnxruntime as ort
    import rtmlib
    import rtmlib.tools.base as rtmlib_base

    import edgepose
    from edgepose.detectors import PersonDetector

    def no_download(*a, **k):
        raise RuntimeError("rtmlib tried to download a model; this benchmark passes local files")

    rtmlib_base.download_checkpoint = no_download

    det_path = root / DETECTOR
    image = np.ascontiguousarray(cv2.imread(str(root / IMAGE))[:, IMAGE_X0:])
    models, missing = build_models(work, args.quick)
    info = {"models": [{"label": m[0], "note": m[2]} for m in models], "missing": missing}
    threads = args.threads

    # the same people?
    ep_det = PersonDetector.from_file(det_path, threads=threads, score_threshold=SCORE_THR,
                                      iou_threshold=NMS_THR)
    boxes = np.asarray(ep_det(image).boxes)
    rt_det, _ = open_rtmlib(rtmlib, ort, models[-1][1], det_path, threads)
    rt_boxes = rtmlib_people(rt_det, image)
    if len(boxes) != len(rt_boxes) or len(boxes) == 0 or \
            iou_matrix(boxes, rt_boxes).max(axis=1).min() < 0.9:
        raise SystemExit(f"error: the detectors disagree: edgepose {len(boxes)} people, rtmlib "
                         f"{len(rt_boxes)}")
    info["people"] = int(len(boxes))
    info["detector_box_max_diff_px"] = float(np.abs(
        boxes[np.argmax(iou_matrix(rt_boxes, boxes), axis=1)] - rt_boxes).max())

    rows = []
    for label, path, note in models:
        # preset: torch's export leaves the dynamic file's output shapes symbolic, which
        # edgepose's RTMPose signature check (it needs 17 x 2W) cannot recognise
        est = edgepose.Estimator(path, detector=det_path, threads=threads, preset="rtmpose",
                                 detection_threshold=SCORE_THR)
        est_boxes = edgepose.Estimator(path, threads=threads, preset="rtmpose")
        rt_det, rt_pose = open_rtmlib(rtmlib, ort, path, det_path, threads)

        if label.startswith("rtmpose_like"):      # correctness on dots at known places
            ek, rk, centres = [], [], []
            for box, (dots, centre) in zip(boxes, dot_images(boxes, image.shape)):
                ek.append(est_boxes(dots, boxes=box[None]).keypoints[0, 0])
                rk.append(rt_pose(dots, bboxes=[box])[0][0, 0])
                centres.append(centre)
            ek, rk, centres = np.asarray(ek), np.asarray(rk), np.asarray(centres)
            e_err = float(np.abs(ek - centres).max())
            r_err = float(np.abs(rk - centres).max())
            if e_err > 2.0 or r_err > 2.0:
                raise SystemExit(f"error: dots found {e_err:.2f} px (edgepose) and {r_err:.2f} "
                                 "px (rtmlib) from where they are")
            info["dot_error_px"] = {"edgepose": e_err, "rtmlib": r_err,
                                    "between": float(np.abs(ek - rk).max())}

        def ep_full():
            return est(image)

        def rt_full(split):
            t0 = time.perf_counter_ns()
            b = rtmlib_people(rt_det, image)
            t1 = time.perf_counter_ns()
            out = rt_pose(image, bboxes=list(b))
            split.append(((t1 - t0) / 1e6, (time.perf_counter_ns() - t1) / 1e6))
            return out

        def ep_given():
            return est_boxes(image, boxes=boxes)

        def rt_given():
            return rt_pose(image, bboxes=list(boxes))

        for _ in range(args.warmup):
            ep_full(), rt_full([]), ep_given(), rt_given()
        gc.collect()
        s = {k: [] for k in ("ep_full", "rt_full", "ep_given", "rt_given", "ep_detect")}
        split: list = []
        for i in range(args.runs):
            pairs = [("ep_full", ep_full), ("rt_full", lambda: rt_full(split)),
                     ("ep_given", ep_given), ("rt_given", rt_given)]
            if i % 2:
                pairs = [pairs[1], pairs[0], pairs[3], pairs[2]]
            for key, fn in pairs:
                t0 = time.perf_counter_ns()
                out = fn()
                s[key].append((time.perf_counter_ns() - t0) / 1e6)
                if key == "ep_full":
                    s["ep_detect"].append(out.timings_ms["detect"])
        rows.append({
            "model": label, "note": note,
            "full_edgepose_ms": p50(s["ep_full"]), "full_rtmlib_ms": p50(s["rt_full"]),
            "full_edgepose_p90_ms": p90(s["ep_full"]), "full_rtmlib_p90_ms": p90(s["rt_full"]),
            "full_ratio": p50(s["ep_full"]) / p50(s["rt_full"]),
            "detector_edgepose_ms": p50(s["ep_detect"]),
            "detector_rtmlib_ms": p50([a for a, _ in split]),
            "given_edgepose_ms": p50(s["ep_given"]), "given_rtmlib_ms": p50(s["rt_given"]),
            "given_ratio": p50(s["ep_given"]) / p50(s["rt_given"]),
        })
        for closable in (est, est_boxes):
            closable.close()
    ep_det.close()
    return rows, info


def parse_args(argv):
    ap = argparse.ArgumentParser(description="edgepose against rtmlib, in one process.")
    ap.add_argument("--threads", type=int, default=usable_cores(),
                    help="onnxruntime intra-op threads for both (default: the usable cores)")
    ap.add_argument("--runs", type=int, default=100, help="timed frames per pipeline (100)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed frames first (10)")
    ap.add_argument("--samples", type=int, default=41, help="samples per micro-benchmark (41)")
    ap.add_argument("--quick", action="store_true",
                    help="rtmpose_like only, few runs (a smoke test)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures as JSON")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.warmup, args.samples = min(args.runs, 10), 2, 7
    if args.threads < 1 or args.runs < 1:
        ap.error("--threads and --runs must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import cv2
    import onnxruntime as ort

    try:
        import rtmlib  # noqa: F401
        import rtmlib.tools.object_detection.post_processings as rtm_det_post
        import rtmlib.tools.pose_estimation.post_processings as rtm_post
    except ImportError:
        print("error: rtmlib is not installed: pip install rtmlib", file=sys.stderr)
        return 2
    from edgepose import ops
    from edgepose.bench.probe import probe_machine
    from edgepose.versions import installed_version

    root = shared_dir()
    machine = probe_machine()
    print(f"machine: {machine['cpu']['model']} ({machine['cpu']['cores_logical']} cores), load "
          f"average {machine['load_avg']}; rtmlib {installed_version('rtmlib')}, onnxruntime "
          f"{ort.__version__}, numpy {np.__version__}; threads {args.threads}")

    # YOLOX-nano's raw outputs on the benchmark image, for the multiclass NMS case
    image = np.ascontiguousarray(cv2.imread(str(root / IMAGE))[:, IMAGE_X0:])
    from edgepose.detectors import PersonDetector
    det = PersonDetector.from_file(root / DETECTOR, threads=args.threads)
    x, _, _ = det.preprocess(image)
    det.close()
    sess = ort.InferenceSession(str(root / DETECTOR),
                                sess_options=session_options(ort, args.threads),
                                providers=["CPUExecutionProvider"])
    raw = sess.run(None, {sess.get_inputs()[0].name: x})[0]

    micro = bench_simcc(rtm_post, ops, args.samples) + \
        bench_nms(rtm_det_post, ops, args.samples, raw, (416, 416))
    print("\nkernels (outputs checked first; us per call, p50; ratio = edgepose / rtmlib)")
    width = max(len(r["case"]) for r in micro)
    for r in micro:
        print(f"  {r['case']:<{width}}  {r['edgepose_us']:9.1f}  {r['rtmlib_us']:9.1f}  "
              f"{r['ratio']:6.3f}  ({r['check']})")

    with tempfile.TemporaryDirectory(prefix="bench_vs_rtmlib_") as tmp:
        rows, info = bench_pipelines(args, root, Path(tmp))
    print(f"\ntop-down pipelines on {IMAGE} x >= {IMAGE_X0}: {info['people']} people; detector "
          f"boxes within {info['detector_box_max_diff_px']:.2f} px of rtmlib's; dots found within "
          f"{info['dot_error_px']['edgepose']:.2f} px (edgepose) / "
          f"{info['dot_error_px']['rtmlib']:.2f} px (rtmlib)")
    if info["missing"]:
        print(f"  note: {info['missing']}")
    print(f"  {args.runs} interleaved frames, ms p50 (ratio = edgepose / rtmlib, target <= "
          f"{TARGET:g})")
    for r in rows:
        print(f"  {r['model']}: end to end {r['full_edgepose_ms']:.2f} vs "
              f"{r['full_rtmlib_ms']:.2f} -> {r['full_ratio']:.3f} "
              f"[{'met' if r['full_ratio'] <= TARGET else 'NOT met'}]; detector "
              f"{r['detector_edgepose_ms']:.2f} vs {r['detector_rtmlib_ms']:.2f}; given boxes "
              f"{r['given_edgepose_ms']:.2f} vs {r['given_rtmlib_ms']:.2f} -> "
              f"{r['given_ratio']:.3f}   ({r['note']})")

    if args.json:
        doc = {"benchmark": "edgepose vs rtmlib (benchmarks/bench_vs_rtmlib.py)",
               "created": utc_now(),
               "settings": {"threads": args.threads, "runs": args.runs, "warmup": args.warmup,
                            "samples": args.samples, "image": f"{IMAGE}[:, {IMAGE_X0}:]",
                            "score_threshold": SCORE_THR, "nms_iou": NMS_THR,
                            "rtmlib": installed_version("rtmlib"), "target_ratio": TARGET},
               "machine": machine, "kernels": micro, "pipelines": rows, "checks": info}
        write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
