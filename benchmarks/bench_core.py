"""Kernel benchmark: edgepose.ops against the NumPy references, in one run.

Every C kernel of :mod:`edgepose.ops` is timed beside its MMPose-style NumPy
baseline from ``tests/references.py`` on the same realistic inputs:

* SimCC decoding, N in {1, 8, 16, 32}, K in {17, 133}, Wx = 384, Wy = 512;
* heatmap decoding, N x 17 x 64 x 48 for N in {1, 8, 32}, refine none /
  dark / dark_udp (blur kernel 11);
* box NMS, M in {10, 100, 1000}; OKS NMS and soft OKS NMS, M in {5, 20, 100}
  poses of K = 17 keypoints;
* one-stage YOLO-pose decoding of A = 8400 anchors (``decode_yolo_pose``,
  Ultralytics' predict and val thresholds 0.25 and 0.001) against
  ``tests/yolo_reference.py``: on the real ``output0`` of
  ``yolo_pose/yolo11n-pose.onnx`` for the COCO images of the shared data when
  it and onnxruntime are there (AGPL-3.0 weights: run to measure, nothing is
  saved), else on synthetic outputs shaped like it; and ``decode_yolo_dfl``
  of a random raw head of the same size. The YOLO decode's budget is 3 % of
  yolo11n-pose's inference (~30 ms on 2 cores): 0.9 ms.

Each case has a few independent input sets (``--input-sets``, default 4).
Before any timing, each kernel's output on every set is checked against its
reference (exact argmax and scores, DARK keypoints within 1e-3 px, equal NMS
indices, soft-NMS scores to rtol 1e-5); the script exits with status 1 if any
disagree. Missed speed targets are reported, never an error: this is a
report, not a test.

Timing: one thread for everyone (the OMP/OpenBLAS variables are set to 1
before NumPy is imported, and ``cv2.setNumThreads(1)``); warm-up, then the
number of calls per sample is scaled so that a sample lasts at least
``--min-sample-ms``; calls cycle through the input sets; the samples of
edgepose and of the reference alternate, with the garbage collector off.
Times are per call; speedup is reference p50 / edgepose p50.

Usage (from the repository root)::

    python benchmarks/bench_core.py [--quick] [--repeat N] [--filter SUBSTR]
                                    [--json PATH]

Exit status: 0 (whatever the targets), 1 if outputs disagree, 2 for bad
arguments or a filter that matches no case.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# One thread for every library, set before NumPy and OpenCV start their
# thread pools. OPENBLAS_CORETYPE is deliberately left as the machine has it.
from benchmarks._common import use_one_thread  # noqa: E402

use_one_thread()

import argparse  # noqa: E402
import itertools  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks._common import (  # noqa: E402
    alternate_samples, check_sampling_args, environment, fmt_time, format_table, sample_stats,
    shared_path, utc_now, write_json)
from edgepose import ops  # noqa: E402
from tests import references as ref  # noqa: E402
from tests import yolo_reference as yolo_ref  # noqa: E402

SEED = 20240531

# Model-output geometry.
SIMCC_WX, SIMCC_WY, SIMCC_SPLIT = 384, 512, 2.0
HM_K, HM_H, HM_W, HM_SIGMA, BLUR_KERNEL = 17, 64, 48, 2.0, 11
IMAGE_W, IMAGE_H = 1280, 720
BOX_IOU = 0.5          # detector NMS threshold
OKS_THRESHOLD = 0.9    # MMPose's oks_nms / soft_oks_nms threshold
SOFT_MAX_KEEP = 20     # MMPose's soft_oks_nms max_dets
POSE_JITTER = (0.002, 0.03)  # sd of a candidate's keypoint jitter, fraction of height

# Speed targets of the issue: case name -> minimum speedup.
TARGETS = {
    "simcc N=16 K=17": 3.0,
    "heatmap dark N=8": 20.0,
    "nms_boxes M=1000": 10.0,
    "nms_oks M=100": 10.0,
}

#: 3 % of yolo11n-pose's ONNX Runtime inference at 640 x 640 (~30 ms on 2 cores).
YOLO_BUDGET_MS = 0.9
YOLO_ANCHORS = 8400  # 640 x 640 at strides 8, 16, 32
YOLO_TOLERANCE_PX = 1e-4

DARK_TOLERANCE_PX = 1e-3
SOFT_SCORE_RTOL = 1e-5


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------

def unique_scores(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    """float32 scores with no ties, so the visiting order does not hinge on tie rules."""
    s = values.astype(np.float32)
    while np.unique(s).size != s.size:
        s = (values * rng.uniform(0.999, 1.001, size=values.shape)).astype(np.float32)
    return s


def make_simcc(rng: np.random.Generator, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """SimCC logits: one Gaussian peak per row (sigma ~5 bins) plus noise.

    Most rows peak at 0.4-1.0; 15% are low-confidence (0.02-0.2), so their
    peak barely stands out of the noise.
    """
    def axis(width: int) -> np.ndarray:
        bins = np.arange(width, dtype=np.float64)
        centre = rng.uniform(0.02 * width, 0.98 * width, size=(n, k, 1))
        sigma = rng.uniform(4.0, 6.0, size=(n, k, 1))
        height = np.where(rng.random((n, k, 1)) < 0.15,
                          rng.uniform(0.02, 0.2, size=(n, k, 1)),
                          rng.uniform(0.4, 1.0, size=(n, k, 1)))
        logits = height * np.exp(-0.5 * ((bins - centre) / sigma) ** 2)
        logits += rng.normal(0.0, 0.02, size=(n, k, width))
        return logits.astype(np.float32)

    return axis(SIMCC_WX), axis(SIMCC_WY)


def make_heatmaps(rng: np.random.Generator, n: int) -> np.ndarray:
    """(N, 17, 64, 48) Gaussian blobs (sigma 2) at sub-pixel centres plus noise.

    Centres anywhere in the map (some near the border, where DARK does not
    apply); 20% of the maps have a low peak (0.01-0.2, an occluded joint),
    the rest 0.6-1.0; Gaussian noise of sd 0.005 (so small negatives occur,
    as in real model outputs).
    """
    shape = (n, HM_K, 1, 1)
    cx = rng.uniform(0.0, HM_W - 1.0, size=shape)
    cy = rng.uniform(0.0, HM_H - 1.0, size=shape)
    amp = np.where(rng.random(shape) < 0.2,
                   rng.uniform(0.01, 0.2, size=shape),
                   rng.uniform(0.6, 1.0, size=shape))
    ys = np.arange(HM_H, dtype=np.float64)[:, None]
    xs = np.arange(HM_W, dtype=np.float64)[None, :]
    hm = amp * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * HM_SIGMA ** 2))
    hm += rng.normal(0.0, 0.005, size=hm.shape)
    return hm.astype(np.float32)


def make_boxes(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(M, 4) xyxy detector candidates clustered around a few people.

    About sqrt(M) people; 85% of the candidates are jittered copies of a
    person's box (centre sd 8% of its size, scale sd 10%) with scores near
    the person's, the rest background clutter with low scores.
    """
    people = int(np.clip(round(math.sqrt(m)), 2, 40))
    pw = rng.uniform(40.0, 200.0, size=people)
    ph = pw * rng.uniform(2.0, 3.0, size=people)
    pcx = rng.uniform(pw / 2, IMAGE_W - pw / 2)
    pcy = rng.uniform(np.minimum(ph / 2, IMAGE_H / 2), np.maximum(IMAGE_H - ph / 2, IMAGE_H / 2))
    pscore = rng.uniform(0.5, 0.95, size=people)

    n_person = int(round(0.85 * m))
    owner = rng.integers(0, people, size=n_person)
    w = pw[owner] * np.exp(rng.normal(0.0, 0.1, size=n_person))
    h = ph[owner] * np.exp(rng.normal(0.0, 0.1, size=n_person))
    cx = pcx[owner] + rng.normal(0.0, 0.08, size=n_person) * pw[owner]
    cy = pcy[owner] + rng.normal(0.0, 0.08, size=n_person) * ph[owner]
    s = pscore[owner] * (1.0 - np.abs(rng.normal(0.0, 0.15, size=n_person)))

    n_clutter = m - n_person
    cw = rng.uniform(20.0, 300.0, size=n_clutter)
    ch = rng.uniform(20.0, 300.0, size=n_clutter)
    ccx = rng.uniform(0.0, IMAGE_W, size=n_clutter)
    ccy = rng.uniform(0.0, IMAGE_H, size=n_clutter)
    cs = rng.uniform(0.01, 0.3, size=n_clutter)

    cx, cy = np.concatenate([cx, ccx]), np.concatenate([cy, ccy])
    w, h = np.concatenate([w, cw]), np.concatenate([h, ch])
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, IMAGE_W)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, IMAGE_H)
    scores = np.clip(np.concatenate([s, cs]), 1e-3, 1.0)
    perm = rng.permutation(m)  # detector order is not score order
    return boxes[perm].astype(np.float32), unique_scores(rng, scores[perm])


# A standing person in COCO-17 order, x and y in units of the person's height
# (the person's left is on the image right).
_COCO17_TEMPLATE = np.array([
    [0.00, 0.05],                  # nose
    [0.03, 0.03], [-0.03, 0.03],   # eyes
    [0.06, 0.04], [-0.06, 0.04],   # ears
    [0.12, 0.18], [-0.12, 0.18],   # shoulders
    [0.17, 0.33], [-0.17, 0.33],   # elbows
    [0.19, 0.47], [-0.19, 0.47],   # wrists
    [0.08, 0.52], [-0.08, 0.52],   # hips
    [0.09, 0.73], [-0.09, 0.73],   # knees
    [0.10, 0.95], [-0.10, 0.95],   # ankles
])


def make_poses(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(M, 17, 2) poses: jittered copies of a few base poses, areas from their boxes.

    About sqrt(M) base people (120-450 px tall, each limb perturbed); every
    candidate is a copy with per-keypoint jitter of 0.2-3% of the height, so
    some copies are near duplicates (suppressed at OKS 0.9) and some not.
    """
    people = int(np.clip(round(math.sqrt(m)), 1, 10))
    height = rng.uniform(120.0, 450.0, size=(people, 1, 1))
    base = _COCO17_TEMPLATE[None] + rng.normal(0.0, 0.03, size=(people, 17, 2))
    base = base * height
    base[:, :, 0] += rng.uniform(100.0, IMAGE_W - 100.0, size=(people, 1))
    base[:, :, 1] += rng.uniform(0.0, max(IMAGE_H - 450.0, 1.0), size=(people, 1))
    pscore = rng.uniform(0.5, 0.95, size=people)

    owner = np.concatenate([np.arange(people), rng.integers(0, people, size=m - people)])[:m]
    jitter = rng.uniform(*POSE_JITTER, size=(m, 1, 1)) * height[owner]
    keypoints = base[owner] + rng.normal(0.0, 1.0, size=(m, 17, 2)) * jitter
    extent = keypoints.max(axis=1) - keypoints.min(axis=1)
    areas = extent[:, 0] * extent[:, 1]
    scores = pscore[owner] * (1.0 - np.abs(rng.normal(0.0, 0.1, size=m)))
    perm = rng.permutation(m)
    return (keypoints[perm].astype(np.float32), unique_scores(rng, scores[perm]),
            areas[perm].astype(np.float32))


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

@dataclass
class Case:
    """One kernel at one size: its input sets, both sides and how to compare them.

    ``edgepose(*inputs[i])`` and ``reference(*inputs[i])`` must agree for
    every i. Timed calls cycle through the input sets, so a branchy kernel
    cannot learn one input by heart over thousands of identical calls (the
    branch predictor does exactly that: box NMS at M = 1000 gets ~1.5x faster
    on repeats of one input than on fresh inputs).
    """

    name: str
    kernel: str
    params: dict[str, Any]
    inputs: list[tuple]
    edgepose: Callable[..., Any]
    reference: Callable[..., Any]
    compare: Callable[[Any, Any], str | None]  # (edgepose out, reference out) -> error or None
    target: float | None = None
    note: str = ""
    results: dict[str, Any] = field(default_factory=dict)

    def cycling(self, side: str) -> Callable[[], Any]:
        """A no-argument callable running one side on the next input set."""
        fn = getattr(self, side)
        sets = itertools.cycle(self.inputs)
        return lambda: fn(*next(sets))


def _cmp_exact(got, want) -> str | None:
    (kp, sc), (rkp, rsc) = got, want
    if kp.shape != rkp.shape or sc.shape != rsc.shape:
        return f"shapes differ: {kp.shape}/{sc.shape} vs {rkp.shape}/{rsc.shape}"
    bad_kp = ~((kp == rkp) | (np.isnan(kp) & np.isnan(rkp)))
    bad_sc = ~((sc == rsc) | (np.isnan(sc) & np.isnan(rsc)))
    if bad_kp.any() or bad_sc.any():
        where = np.argwhere(bad_kp.any(axis=-1) | bad_sc)[0]
        i = tuple(where)
        return (f"{int(bad_kp.any(axis=-1).sum())} keypoints / {int(bad_sc.sum())} scores differ; "
                f"first at (n, k) = {i}: {kp[i]} {sc[i]} vs {rkp[i]} {rsc[i]}")
    return None


def _cmp_dark(got, want) -> str | None:
    (kp, sc), (rkp, rsc) = got, want
    if kp.shape != rkp.shape:
        return f"shapes differ: {kp.shape} vs {rkp.shape}"
    if not np.array_equal(sc, rsc, equal_nan=True):
        return f"{int((sc != rsc).sum())} scores differ (they must be the raw peaks)"
    err = np.abs(kp.astype(np.float64) - rkp.astype(np.float64)).max(axis=-1)
    if not (err <= DARK_TOLERANCE_PX).all():
        i = np.unravel_index(np.argmax(np.where(np.isnan(err), np.inf, err)), err.shape)
        return (f"{int((~(err <= DARK_TOLERANCE_PX)).sum())} keypoints differ by more than "
                f"{DARK_TOLERANCE_PX} px; worst at (n, k) = {tuple(int(v) for v in i)}: "
                f"{kp[i]} vs {rkp[i]}")
    return None


def _cmp_indices(got, want) -> str | None:
    got, want = np.asarray(got), np.asarray(want)
    if np.array_equal(got, want):
        return None
    n = min(len(got), len(want))
    first = int(np.argmax(got[:n] != want[:n])) if (got[:n] != want[:n]).any() else n
    lo = max(first - 3, 0)
    return (f"kept indices differ ({len(got)} kept vs {len(want)}), first at position {first}:"
            f"\n    edgepose  [{lo}:] {got[lo:lo + 10].tolist()}"
            f"\n    reference [{lo}:] {want[lo:lo + 10].tolist()}")


def _cmp_soft(got, want) -> str | None:
    (idx, sc), (ridx, rsc) = got, want
    err = _cmp_indices(idx, ridx)
    if err:
        return err
    if not np.allclose(sc, rsc, rtol=SOFT_SCORE_RTOL, atol=1e-7):
        return f"rescored scores differ (rtol {SOFT_SCORE_RTOL}): {sc.tolist()} vs {rsc.tolist()}"
    return None


def real_yolo_outputs() -> list[tuple] | None:
    """``(output0, (scale, scale), pad, image_hw)`` of yolo11n-pose on each
    COCO image of the shared data (letterboxed centred to 640 x 640, RGB /
    255), or None when the model, the images or onnxruntime are missing."""
    model = shared_path() / "models/yolo_pose/yolo11n-pose.onnx"
    images = sorted((shared_path() / "data/coco").glob("*.jpg"))
    if not model.is_file() or not images:
        return None
    try:
        import cv2
        import onnxruntime as ort
    except ImportError:
        return None
    from edgepose.geometry import letterbox

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    outputs = []
    for path in images:
        image = cv2.imread(str(path))
        canvas, scale, pad = letterbox(image, (640, 640), align="center")
        x = np.ascontiguousarray(canvas[:, :, ::-1].transpose(2, 0, 1))[None]
        (out,) = session.run(["output0"], {"images": x.astype(np.float32) / np.float32(255)})
        outputs.append((out, (scale, scale), pad, image.shape[:2]))
    return outputs


def make_yolo_output(rng: np.random.Generator) -> tuple:
    """A synthetic (1, 56, 8400) output shaped like yolo11n-pose's on a photo
    of a few people: low scores everywhere (sigmoid of logits around -8),
    clusters of anchors around each person with scores up to 0.95."""
    a, k = YOLO_ANCHORS, 17
    out = np.empty((a, 56), dtype=np.float32)
    out[:, :2] = rng.uniform(0, 640, (a, 2))
    out[:, 2:4] = rng.uniform(4, 60, (a, 2))
    out[:, 4] = 1 / (1 + np.exp(-rng.normal(-8, 2, a)))
    for _ in range(int(rng.integers(2, 7))):
        centre, extent = rng.uniform(100, 540, 2), rng.uniform(60, 300, 2)
        idx = rng.choice(a, 60, replace=False)
        out[idx, :2] = centre + rng.normal(0, 4, (60, 2))
        out[idx, 2:4] = extent * rng.uniform(0.9, 1.1, (60, 2))
        out[idx, 4] = rng.uniform(0.05, 0.95, 60)
    kp = out[:, None, :2] + rng.normal(0, 20, (a, k, 2))
    vis = rng.random((a, k, 1))
    out[:, 5:] = np.concatenate((kp, vis), axis=2).reshape(a, 3 * k)
    scale = float(rng.uniform(0.5, 1.5))
    return out.T[None].copy(), (scale, scale), (0.0, 80.0), (480, 640)


def make_yolo_head(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random raw head for 640 x 640: (1, 4 * 16 + 1, 8400) logits and
    (1, 51, 8400) keypoint values."""
    box_class = rng.normal(0, 3, (1, 65, YOLO_ANCHORS)).astype(np.float32)
    kpts = rng.normal(0, 2, (1, 51, YOLO_ANCHORS)).astype(np.float32)
    return box_class, kpts


def _cmp_yolo(got, want) -> str | None:
    if len(got) != len(want):
        return f"{len(got)} images vs {len(want)}"
    for i, (g, (boxes, scores, classes, keypoints, kp_scores, _)) in enumerate(zip(got, want)):
        if not (np.array_equal(g.scores, scores) and np.array_equal(g.classes, classes)):
            return (f"image {i}: people differ ({len(g.scores)} vs {len(scores)}): "
                    f"{g.scores[:5].tolist()} vs {scores[:5].tolist()}")
        for name, a, b in (("boxes", g.boxes, boxes), ("keypoints", g.keypoints, keypoints),
                           ("keypoint scores", g.keypoint_scores, kp_scores)):
            if a.shape != b.shape or not np.allclose(a, b, rtol=0, atol=YOLO_TOLERANCE_PX):
                return f"image {i}: {name} differ by more than {YOLO_TOLERANCE_PX}"
    return None


def _cmp_dfl(got, want) -> str | None:
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-6, atol=1e-5):
        return f"decoded heads differ (shapes {got.shape} and {want.shape}, rtol 1e-6, atol 1e-5)"
    return None


def input_rng(seed: int, key: str) -> np.random.Generator:
    """A generator per input set, so adding or filtering cases changes no other input."""
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def build_cases(seed: int, n_sets: int, name_filter: str | None = None) -> list[Case]:
    """The cases of the issue whose name contains name_filter, each with
    n_sets independent input sets (generated only for the cases kept)."""
    def sets(key: str, make: Callable[[np.random.Generator], tuple]) -> list[tuple]:
        return [make(input_rng(seed, f"{key} #{i}")) for i in range(n_sets)]

    def wanted(name: str) -> bool:
        return not name_filter or name_filter in name

    cases: list[Case] = []
    for n, k in itertools.product((1, 8, 16, 32), (17, 133)):
        name = f"simcc N={n} K={k}"
        if not wanted(name):
            continue
        cases.append(Case(
            name, "decode_simcc", {"N": n, "K": k, "Wx": SIMCC_WX, "Wy": SIMCC_WY},
            sets(name, lambda rng, n=n, k=k: make_simcc(rng, n, k)),
            lambda x, y: ops.decode_simcc(x, y, SIMCC_SPLIT),
            lambda x, y: ref.decode_simcc_ref(x, y, SIMCC_SPLIT),
            _cmp_exact, TARGETS.get(name)))

    for n in (1, 8, 32):
        refines = [r for r in ("none", "dark", "dark_udp") if wanted(f"heatmap {r} N={n}")]
        if not refines:
            continue
        heatmaps = sets(f"heatmaps N={n}", lambda rng, n=n: (make_heatmaps(rng, n),))
        for refine in refines:
            name = f"heatmap {refine} N={n}"
            cases.append(Case(
                name, "decode_heatmap",
                {"N": n, "K": HM_K, "H": HM_H, "W": HM_W, "refine": refine,
                 "blur_kernel": BLUR_KERNEL},
                heatmaps,
                lambda hm, r=refine: ops.decode_heatmap(hm, r, BLUR_KERNEL),
                lambda hm, r=refine: ref.decode_heatmap_ref(hm, r, BLUR_KERNEL),
                _cmp_exact if refine == "none" else _cmp_dark, TARGETS.get(name)))

    for m in (10, 100, 1000):
        name = f"nms_boxes M={m}"
        if not wanted(name):
            continue
        cases.append(Case(
            name, "nms_boxes", {"M": m, "iou_threshold": BOX_IOU},
            sets(name, lambda rng, m=m: make_boxes(rng, m)),
            lambda b, s: ops.nms_boxes(b, s, BOX_IOU),
            lambda b, s: ref.nms_boxes_ref(b, s, BOX_IOU),
            _cmp_indices, TARGETS.get(name)))

    sigmas = ref.COCO17_SIGMAS
    for m in (5, 20, 100):
        hard, soft = f"nms_oks M={m}", f"nms_oks_soft M={m}"
        if not (wanted(hard) or wanted(soft)):
            continue
        poses = sets(f"poses M={m}", lambda rng, m=m: make_poses(rng, m))
        if wanted(hard):
            cases.append(Case(
                hard, "nms_oks", {"M": m, "K": 17, "threshold": OKS_THRESHOLD},
                poses,
                lambda kp, s, a: ops.nms_oks(kp, s, a, OKS_THRESHOLD),
                lambda kp, s, a: ref.oks_nms_ref(kp, s, a, OKS_THRESHOLD, sigmas),
                _cmp_indices, TARGETS.get(hard)))
        if not wanted(soft):
            continue
        name = soft
        cases.append(Case(
            name, "nms_oks_soft",
            {"M": m, "K": 17, "threshold": OKS_THRESHOLD, "max_keep": SOFT_MAX_KEEP,
             "method": "gaussian"},
            poses,
            lambda kp, s, a: ops.nms_oks_soft(
                kp, s, a, OKS_THRESHOLD, max_keep=SOFT_MAX_KEEP, method="gaussian"),
            lambda kp, s, a: ref.soft_oks_nms_ref(
                kp, s, a, OKS_THRESHOLD, sigmas, max_keep=SOFT_MAX_KEEP, method="gaussian"),
            _cmp_soft, TARGETS.get(name)))

    thresholds = [(t, f"yolo_pose A={YOLO_ANCHORS} conf={t}") for t in (0.25, 0.001)]
    thresholds = [(t, name) for t, name in thresholds if wanted(name)]
    if thresholds:
        real = real_yolo_outputs()
        outputs = real if real else sets("yolo outputs", make_yolo_output)
        source = "yolo11n-pose output0, data/coco" if real else "synthetic"
        for t, name in thresholds:
            cases.append(Case(
                name, "decode_yolo_pose",
                {"A": YOLO_ANCHORS, "score_threshold": t, "iou_threshold": 0.7,
                 "inputs": source},
                outputs,
                lambda o, sc, pd, hw, t=t: ops.decode_yolo_pose(
                    o, score_threshold=t, scale=sc, pad=pd, image_hw=hw),
                lambda o, sc, pd, hw, t=t: yolo_ref.decode_yolo_pose_ref(
                    o, score_threshold=t, scale=sc, pad=pd, image_hw=hw),
                _cmp_yolo, note=source))
    name = f"yolo_dfl A={YOLO_ANCHORS}"
    if wanted(name):
        cases.append(Case(
            name, "decode_yolo_dfl", {"A": YOLO_ANCHORS, "reg_max": 16, "K": 17},
            sets(name, make_yolo_head),
            lambda b, k: ops.decode_yolo_dfl(b, k, input_hw=(640, 640)),
            lambda b, k: yolo_ref.decode_yolo_dfl_ref(b, k, input_hw=(640, 640)),
            _cmp_dfl))
    return cases


def check(case: Case) -> str | None:
    """Runs both sides on every input set; returns what disagrees, or None.

    Also notes how many candidates NMS kept (a sum over the input sets).
    """
    kept = 0
    for i, inputs in enumerate(case.inputs):
        try:
            got = case.edgepose(*inputs)
            want = case.reference(*inputs)
        except Exception as exc:  # a crash is a disagreement too, reported by name
            return f"input set {i}: raised {type(exc).__name__}: {exc}"
        error = case.compare(got, want)
        if error is not None:
            return f"input set {i}: {error}"
        if case.kernel.startswith("nms"):
            kept += len(got[0] if case.kernel == "nms_oks_soft" else got)
        if case.kernel == "decode_yolo_pose":
            kept += sum(len(g.scores) for g in got)
    if case.kernel == "decode_yolo_pose":
        case.note += f", {kept} people in {len(case.inputs)} outputs"
    if case.kernel.startswith("nms"):
        total = case.params["M"] * len(case.inputs)
        case.note = f"kept {kept}/{total} ({100 * kept / total:.0f}%)"
    return None


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------

def time_case(case: Case, repeat: int, min_sample_ns: int, warmup_ns: int) -> None:
    sides = {"edgepose": case.cycling("edgepose"), "reference": case.cycling("reference")}
    samples, loops = alternate_samples(sides, repeat, min_sample_ns, warmup_ns)
    for name in sides:
        case.results[name] = {**sample_stats(samples[name], 1e3, "us"),
                              "calls_per_sample": loops[name], "samples": len(samples[name])}
    case.results["speedup"] = case.results["reference"]["p50_us"] / case.results["edgepose"]["p50_us"]


# --------------------------------------------------------------------------
# Environment and report
# --------------------------------------------------------------------------

def table(cases: list[Case]) -> str:
    header = ["case", "edgepose p50", "p90", "reference p50", "p90", "speedup", "target", "met",
              "note"]
    rows = []
    for c in cases:
        e, r = c.results["edgepose"], c.results["reference"]
        met = "-" if c.target is None else ("yes" if c.results["speedup"] >= c.target else "NO")
        rows.append([c.name, fmt_time(e["p50_us"]), fmt_time(e["p90_us"]),
                     fmt_time(r["p50_us"]), fmt_time(r["p90_us"]),
                     f"{c.results['speedup']:.1f}x",
                     "-" if c.target is None else f">= {c.target:g}x", met, c.note])
    return format_table(header, rows, right={1, 2, 3, 4, 5, 6})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time edgepose's C kernels against their NumPy references (one thread).")
    p.add_argument("--quick", action="store_true",
                   help="fewer samples and a shorter warm-up (CI smoke run)")
    p.add_argument("--repeat", type=int, default=None, metavar="N",
                   help="timed samples per kernel and side (default 101, --quick 7)")
    p.add_argument("--filter", default=None, metavar="SUBSTR",
                   help="only cases whose name contains SUBSTR, e.g. 'simcc', 'dark N=8', 'M=1000'")
    p.add_argument("--min-sample-ms", type=float, default=1.0, metavar="MS",
                   help="calls per sample are scaled so a sample lasts at least MS (default 1)")
    p.add_argument("--seed", type=int, default=SEED, help=f"input seed (default {SEED})")
    p.add_argument("--input-sets", type=int, default=4, metavar="S",
                   help="independent inputs per case, cycled through while timing (default 4)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help="also write the rows and the environment as JSON to PATH")
    args = p.parse_args(argv)
    check_sampling_args(p, args, quick_repeat=7, repeat=101)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    env = environment()
    th = env["threads"]
    print(f"edgepose {env['edgepose']} ({env['edgepose_git']}), numpy {env['numpy']}, "
          f"opencv {env['opencv']}, python {env['python']}")
    print(f"CPU: {env['cpu_model']} ({env['cpu_count']} logical, {env['cpu_affinity']} usable; "
          f"{' '.join(env['cpu_simd']) or 'no SIMD flags listed'}); {env['platform']}")
    print("threads: 1 -- OMP_NUM_THREADS={} OPENBLAS_NUM_THREADS={} cv2.getNumThreads()={}; "
          "edgepose kernels single-threaded".format(
              th["OMP_NUM_THREADS"], th["OPENBLAS_NUM_THREADS"], th["cv2_num_threads"]))
    stale = env["edgepose_core"]["sources_newer_than_build"]
    if stale:
        print(f"warning: the compiled core {Path(env['edgepose_core']['file']).name} is older than "
              f"csrc/{', csrc/'.join(stale)}: rebuild (pip install -e .) to time the current code")
    if th["OPENBLAS_CORETYPE"]:
        print(f"note: OPENBLAS_CORETYPE={th['OPENBLAS_CORETYPE']} is set on this machine "
              "(left as is; it can slow NumPy's BLAS, which these references barely use)")

    cases = build_cases(args.seed, args.input_sets, args.filter)
    if not cases:
        print(f"error: no case name contains {args.filter!r}; names look like "
              "'simcc N=16 K=17', 'heatmap dark N=8', 'nms_boxes M=1000', "
              "'nms_oks M=100', 'nms_oks_soft M=20', 'yolo_pose', 'yolo_dfl'.", file=sys.stderr)
        return 2

    if not np.allclose(ref.COCO17_SIGMAS, ops.COCO17_SIGMAS, rtol=0, atol=1e-7):
        print("error: tests/references.py and edgepose.ops disagree on COCO17_SIGMAS.",
              file=sys.stderr)
        return 1
    failures = [(c.name, err) for c in cases if (err := check(c)) is not None]
    if failures:
        print(f"\nerror: edgepose disagrees with the reference in {len(failures)} case(s); "
              "nothing was timed:", file=sys.stderr)
        for name, err in failures:
            print(f"  {name}: {err}", file=sys.stderr)
        return 1
    print(f"outputs checked against tests/references.py: {len(cases)} cases agree")

    min_sample_ns = int(args.min_sample_ms * 1e6)
    warmup_ns = 5_000_000 if args.quick else 20_000_000
    print(f"timing: {args.repeat} samples per side, each >= {args.min_sample_ms:g} ms, "
          "per-call times\n")
    for c in cases:
        time_case(c, args.repeat, min_sample_ns, warmup_ns)
    print(table(cases))

    with_target = [c for c in cases if c.target is not None]
    missed = [c for c in with_target if c.results["speedup"] < c.target]
    if with_target:
        print(f"\ntargets met: {len(with_target) - len(missed)}/{len(with_target)}"
              + "".join(f"\n  missed: {c.name}: {c.results['speedup']:.1f}x < {c.target:g}x"
                        for c in missed))
    for c in cases:
        if c.kernel == "decode_yolo_pose":
            ms = c.results["edgepose"]["p50_us"] / 1e3
            verdict = "within" if ms <= YOLO_BUDGET_MS else "OVER"
            print(f"{c.name}: decode {ms:.3f} ms p50, {verdict} the {YOLO_BUDGET_MS} ms budget "
                  f"(3 % of yolo11n-pose's ~30 ms inference)")
    elapsed = time.perf_counter() - started
    print(f"total time {elapsed:.1f} s")

    if args.json:
        doc = {
            "benchmark": "edgepose kernels vs NumPy references (benchmarks/bench_core.py)",
            "created": utc_now(),
            "settings": {"repeat": args.repeat, "min_sample_ms": args.min_sample_ms,
                         "quick": args.quick, "filter": args.filter, "seed": args.seed,
                         "input_sets": args.input_sets,
                         "units": "microseconds per call",
                         "speedup": "reference p50 / edgepose p50"},
            "environment": env,
            "rows": [{
                "case": c.name, "kernel": c.kernel, "params": c.params,
                "edgepose": c.results["edgepose"], "reference": c.results["reference"],
                "speedup": c.results["speedup"], "target": c.target,
                "target_met": None if c.target is None else c.results["speedup"] >= c.target,
                "note": c.note,
            } for c in cases],
            "elapsed_s": elapsed,
        }
        write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
