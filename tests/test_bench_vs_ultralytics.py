"""The pure parts of benchmarks/bench_vs_ultralytics.py: arguments, the
alternation schedule, statistics, matching people, AP through pycocotools,
the verdicts and the report; the peer environment's recipe and the worker's
protocol. Ultralytics itself is never run here (nor needed)."""
from __future__ import annotations

import importlib
import importlib.metadata
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench():
    # a module of the benchmarks/ namespace package (the repository root is on sys.path)
    return importlib.import_module("benchmarks.bench_vs_ultralytics")


@pytest.fixture(scope="module")
def peer_env():
    return importlib.import_module("benchmarks._peer_env")


# --- arguments ---------------------------------------------------------------------------

def test_default_arguments_run_every_variant(bench):
    args = bench.parse_args([])
    assert (args.rounds, args.repeat, args.warmup) == (7, 3, 2)
    assert [v.name for v in args.variant_list] == [v.name for v in bench.VARIANTS]
    assert args.threads >= 1 and args.json is None and args.markdown is None


def test_quick_is_short_and_keeps_the_quick_variants(bench):
    args = bench.parse_args(["--quick"])
    assert (args.rounds, args.repeat, args.warmup) == (2, 1, 1)
    assert [v.name for v in args.variant_list] == list(bench.QUICK_VARIANTS)
    args = bench.parse_args(["--quick", "--rounds", "4", "--variants", "openvino, static,static"])
    assert args.rounds == 4
    assert [v.name for v in args.variant_list] == ["openvino", "static"]


@pytest.mark.parametrize("argv, message", [
    (["--rounds", "0"], "--rounds must be >= 1, got 0"),
    (["--threads", "-2"], "--threads must be >= 1, got -2"),
    (["--warmup", "-1"], "--warmup must be >= 0, got -1"),
    (["--variants", "static,fast"], "--variants: unknown fast; choose from static, dynamic"),
    (["--variants", ","], r"--variants: unknown \(none given\)"),
])
def test_bad_arguments_exit_with_the_reason(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(argv)
    assert exc.value.code == 2
    assert re_search(message, capsys.readouterr().err)


def test_artefacts_become_variants(bench, tmp_path):
    model = tmp_path / "m_int8.xml"
    model.write_text("<net/>")
    args = bench.parse_args(["--quick", "--artefact", f"ov-int8={model}",
                             "--artefact", f"ov-int8-480={model}@480"])
    extra = args.variant_list[len(bench.QUICK_VARIANTS):]
    assert [(v.name, v.model, dict(v.options)) for v in extra] == [
        ("ov-int8", str(model.resolve()), {}), ("ov-int8-480", str(model.resolve()),
                                                {"input_size": 480})]
    assert extra[1].label == "m_int8.xml, longer side 480"


@pytest.mark.parametrize("spec, message", [
    ("noequals", "must be NAME=PATH or NAME=PATH@SIDE, got 'noequals'"),
    ("=x.xml", "must be NAME=PATH"),
    ("a={tmp}/missing.xml", "missing.xml does not exist"),
    ("a={model}@abc", "SIDE must be a whole number of pixels >= 32, got 'abc'"),
    ("a={model}@16", "got '16'"),
    ("static={model}", "the name 'static' is taken"),
])
def test_bad_artefacts_exit_with_the_reason(bench, tmp_path, capsys, spec, message):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    with pytest.raises(SystemExit):
        bench.parse_args(["--artefact", spec.format(tmp=tmp_path, model=model)])
    assert message in capsys.readouterr().err


def test_int8_export_command_and_rows(bench, tmp_path):
    cmd = bench.int8_export_command(Path("/m/d.onnx"), tmp_path, "openvino", Path("/c"))
    assert cmd[0] == sys.executable and cmd[1:4] == ["-m", "edgepose.cli", "export"]
    assert cmd[4] == "/m/d.onnx"
    i = cmd.index("--precision")
    assert cmd[i + 1] == "int8" and cmd[cmd.index("--to") + 1] == "openvino"
    assert cmd[cmd.index("--name") + 1] == bench.INT8_STEM
    rows = bench.int8_variants("onnx", tmp_path / "x.onnx", "onnxruntime")
    assert [(v.name, dict(v.options)) for v in rows] == [("onnx-int8", {}),
                                                        ("onnx-int8-512", {"input_size": 512})]


def test_build_int8_calibrates_away_from_the_ap_images_and_reports_failures(bench, tmp_path):
    root = tmp_path / "shared"
    for folder in (*bench.CALIBRATION_FOLDERS, "coco"):
        (root / "data" / folder).mkdir(parents=True)
        (root / "data" / folder / f"{folder}1.jpg").write_bytes(b"not an image")
        (root / "data" / folder / "notes.txt").write_text("x")
    (root / bench.DYNAMIC).parent.mkdir(parents=True)
    (root / bench.DYNAMIC).write_bytes(b"not a model")
    variants, notes = bench.build_int8(root, tmp_path / "cache")
    links = sorted(p.name for p in (tmp_path / "cache/calibration").iterdir())
    assert links == sorted(f"{f}_{f}1.jpg" for f in bench.CALIBRATION_FOLDERS)
    assert variants == [] and len(notes) == len(bench.INT8_TARGETS)
    assert all("INT8 not built (edgepose export exit" in n and "exit 0)" not in n for n in notes)
    # an artefact already in the cache is reused, not rebuilt, if its export passed
    (tmp_path / "cache/onnx").mkdir(parents=True, exist_ok=True)
    made = tmp_path / "cache/onnx" / f"{bench.INT8_STEM}_int8.onnx"
    made.write_bytes(b"x")
    assert bench.build_int8(root, tmp_path / "cache")[0] == []
    (tmp_path / "cache/onnx/passed").write_text("edgepose export ...")
    variants, notes = bench.build_int8(root, tmp_path / "cache")
    assert [v.name for v in variants] == ["onnx-int8", "onnx-int8-512"]
    assert variants[0].model == str(made) and notes[0].startswith("openvino INT8 not built")


def re_search(pattern, text):
    import re

    return re.search(pattern, text) is not None


# --- the schedule and the statistics -----------------------------------------------------

@pytest.mark.parametrize("names", [["ul", "ep"], ["ul", "a", "b"], ["only"]])
@pytest.mark.parametrize("rounds", [1, 2, 6])
def test_schedule_runs_everyone_every_round_and_rotates_who_goes_first(bench, names, rounds):
    order = bench.schedule(rounds, names)
    assert len(order) == rounds
    assert all(sorted(r) == sorted(names) for r in order)
    firsts = [r[0] for r in order]
    if rounds % len(names) == 0:        # whole cycles: everyone first equally often
        assert all(firsts.count(n) == rounds // len(names) for n in names)
    assert firsts[0] == names[0]


def test_schedule_alternates_two_pipelines(bench):
    assert bench.schedule(4, ["ul", "ep"]) == [["ul", "ep"], ["ep", "ul"]] * 2
    assert bench.schedule(3, []) == []


def test_quartiles_and_the_summary_match_numpy(bench):
    rng = np.random.default_rng(5)
    totals = [rng.gamma(4, 10, 21).tolist(), rng.gamma(2, 5, 21).tolist()]
    stages = [[{"pre": 1.0 + i, "inf": 10.0 * i} for i in range(21)],
              [{"pre": 2.0, "inf": 5.0 + i, "post": 0.5} for i in range(21)]]
    s = bench.summarize_times(totals, stages)
    for got, t in zip(s["per_image"], totals):
        q1, med, q3 = np.percentile(t, [25, 50, 75])
        assert got["median"] == pytest.approx(med) and got["iqr"] == pytest.approx(q3 - q1)
        assert got["runs"] == 21 and got["samples_ms"] == t
    assert s["set_ms"] == pytest.approx(np.median(totals[0]) + np.median(totals[1]))
    assert s["per_image"][0]["stages"] == {"pre": 11.0, "inf": 100.0}
    assert s["stages_set_ms"] == pytest.approx({"pre": 13.0, "inf": 115.0, "post": 0.5})


# --- the same people ---------------------------------------------------------------------

def loop_iou(a, b):
    """An independent IoU: one pair at a time."""
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            w = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            h = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            inter = w * h
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out


@pytest.mark.parametrize("n, m", [(0, 3), (1, 1), (7, 5)])
def test_box_iou_matches_a_loop(bench, n, m):
    rng = np.random.default_rng([n, m])
    xy = rng.uniform(0, 100, (n + m, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 60, (n + m, 2))], axis=1)
    got = bench.box_iou(boxes[:n], boxes[n:])
    assert got.shape == (n, m)
    np.testing.assert_allclose(got, loop_iou(boxes[:n], boxes[n:]), atol=1e-12)


def person(box, rng, shift=(0.0, 0.0), score=0.9):
    x1, y1, x2, y2 = box
    kp = np.stack([rng.uniform(x1, x2, 17), rng.uniform(y1, y2, 17), np.full(17, 0.9)], 1)
    kp[:, :2] += shift
    return kp


def people(boxes, kps, scores=None):
    return {"boxes": [list(map(float, b)) for b in boxes],
            "person_scores": list(scores if scores is not None else [0.9] * len(boxes)),
            "keypoints": [k.tolist() for k in kps]}


def test_pose_oks_is_the_coco_formula(bench):
    rng = np.random.default_rng(1)
    box = (10.0, 20.0, 110.0, 220.0)
    ref = person(box, rng)
    ref[3, 2] = 0.1                                  # not used: the reference scores it low
    other = ref.copy()
    other[:, :2] += rng.normal(0, 3, (17, 2))
    other[5, :2] = np.nan                            # not found: counts as 0
    sig = np.array(bench.COCO_SIGMAS)
    d2 = ((other[:, :2] - ref[:, :2]) ** 2).sum(1)
    e = np.exp(-d2 / (2 * 100 * 200 * (2 * sig) ** 2))
    e[5] = 0.0
    use = np.arange(17) != 3
    assert bench.pose_oks(ref, other, box) == pytest.approx(e[use].mean())
    assert bench.pose_oks(ref, ref, box) == pytest.approx(1.0)
    ref[:, 2] = 0.0
    assert math.isnan(bench.pose_oks(ref, other, box))


def test_match_people_pairs_by_iou_and_lists_who_is_missing(bench):
    rng = np.random.default_rng(2)
    boxes = np.array([[0, 0, 50, 100], [200, 0, 260, 120], [400, 50, 450, 150],
                      [600, 0, 640, 90]], float)
    ref = people(boxes, [person(b, rng) for b in boxes])
    # the other side: people 2, 0, 1 in another order, slightly moved; person 3 missed;
    # one extra person far from everyone
    order = [2, 0, 1]
    other_boxes = np.concatenate([boxes[order] + 2.0, [[900, 0, 950, 100]]])
    other_kps = [np.asarray(ref["keypoints"][i]) + [1.0, -1.0, 0.0] for i in order] + \
        [person(other_boxes[3], rng)]
    m = bench.match_people(ref, people(other_boxes, other_kps))
    assert [p[:2] for p in m["pairs"]] == [(0, 1), (1, 2), (2, 0)]
    assert m["missing"] == [3] and m["extra"] == [3]
    np.testing.assert_allclose([p[2] for p in m["pairs"]],
                               loop_iou(boxes[:3], other_boxes[[1, 2, 0]]).diagonal())
    assert all(0.9 < p[3] < 1.0 for p in m["pairs"])


def test_match_people_gives_each_person_once_best_iou_first(bench):
    rng = np.random.default_rng(3)
    ref_boxes = np.array([[0, 0, 100, 100], [10, 0, 110, 100]], float)
    other_boxes = np.array([[9, 0, 109, 100]], float)          # closer to ref 1 than ref 0
    m = bench.match_people(people(ref_boxes, [person(b, rng) for b in ref_boxes]),
                           people(other_boxes, [person(other_boxes[0], rng)]))
    assert [p[:2] for p in m["pairs"]] == [(1, 0)] and m["missing"] == [0] and m["extra"] == []
    # below the IoU threshold: no pair at all
    far = np.array([[60, 0, 160, 100]], float)                  # IoU 0.25 and 0.33
    m = bench.match_people(people(ref_boxes, [person(b, rng) for b in ref_boxes]),
                           people(far, [person(far[0], rng)]))
    assert m["pairs"] == [] and m["missing"] == [0, 1] and m["extra"] == [0]


def test_people_report_says_who_differs(bench):
    rng = np.random.default_rng(4)
    boxes = np.array([[0, 0, 50, 100], [200, 0, 260, 120]], float)
    a = people(boxes, [person(b, rng) for b in boxes], scores=[0.9, 0.3])
    b = people(boxes[:1], [np.asarray(a["keypoints"][0])])
    same = bench.people_report(["x.jpg"], [a], [a])
    assert same["same"] and same["mean_oks"] == pytest.approx(1.0)
    diff = bench.people_report(["x.jpg", "y.jpg"], [a, a], [a, b])
    assert not diff["same"]
    row = diff["images"][1]
    assert (row["ultralytics"], row["edgepose"], row["matched"]) == (2, 1, 1)
    assert row["missing"] == [{"box": [200.0, 0.0, 260.0, 120.0], "score": 0.3}]
    assert row["extra"] == []


# --- AP ----------------------------------------------------------------------------------

def test_coco_results_write_missing_keypoints_as_invisible_zeros(bench):
    kp = np.full((1, 17, 3), 0.5)
    kp[0, :, :2] = 7.0
    kp[0, 4, :2] = np.nan
    out = bench.coco_results([{"keypoints": kp.tolist(), "person_scores": [0.8],
                               "boxes": [[0, 0, 1, 1]]}, {"keypoints": [], "person_scores": [],
                                                         "boxes": []}], [11, 12])
    assert len(out) == 1 and out[0]["image_id"] == 11 and out[0]["score"] == 0.8
    assert out[0]["category_id"] == 1 and len(out[0]["keypoints"]) == 51
    assert out[0]["keypoints"][12:15] == [0.0, 0.0, 0.0]
    assert out[0]["keypoints"][:3] == [7.0, 7.0, 0.5]


def test_coco_ap_is_one_for_the_ground_truth_and_drops_when_poses_move(bench, shared_dir):
    gt_json = shared_dir / bench.COCO_JSON
    data = json.loads(gt_json.read_text())
    truth, moved = [], []
    rng = np.random.default_rng(6)
    for ann in data["annotations"]:
        if ann.get("num_keypoints", 0) == 0 or ann.get("iscrowd", 0):
            continue
        kp = np.asarray(ann["keypoints"], float).reshape(17, 3)
        w, h = ann["bbox"][2:]
        jitter = kp.copy()
        jitter[:, :2] += rng.normal(0, 0.08 * math.sqrt(w * h), (17, 2))
        truth.append({"keypoints": [kp.tolist()], "person_scores": [1.0], "id": ann["image_id"]})
        moved.append({"keypoints": [jitter.tolist()], "person_scores": [1.0],
                      "id": ann["image_id"]})
    ids = [t["id"] for t in truth]
    assert bench.coco_ap(gt_json, bench.coco_results(truth, ids)) == pytest.approx(1.0)
    ap_moved = bench.coco_ap(gt_json, bench.coco_results(moved, ids))
    assert 0.0 < ap_moved < 0.9
    assert bench.coco_ap(gt_json, []) == 0.0


# --- verdicts and the report -------------------------------------------------------------

def row(name, ratio, ap, target=None, label=None):
    return {"name": name, "label": label or name, "ratio": ratio, "ap": ap, "target": target}


def test_verdicts_apply_the_three_targets(bench):
    rows = [row("static", 1.1, 0.676), row("dynamic", 0.74, 0.68, 0.75),
            row("small", 0.40, 0.65), row("ov", 0.49, 0.661)]
    v = bench.verdicts(rows, 0.68)
    assert v["static_ap"]["met"] is True                 # 0.676 >= 0.68 - 0.005
    assert v["dynamic_speed"] == {"ratio": 0.74, "met": True, "target": "<= 0.75x"}
    assert v["fastest"]["name"] == "ov" and v["fastest"]["met"] is True   # "small": AP too low
    v = bench.verdicts([row("static", 0.9, 0.674), row("dynamic", 0.76, 0.7, 0.75)], 0.68)
    assert v["static_ap"]["met"] is False and v["dynamic_speed"]["met"] is False
    assert v["fastest"]["name"] == "dynamic" and v["fastest"]["met"] is False
    assert "fastest" not in bench.verdicts([row("static", 0.9, 0.5)], 0.68)


def fake_doc(bench):
    times = lambda m: bench.summarize_times([[m, m + 1, m + 2], [2 * m] * 3],  # noqa: E731
                                            [[{"preprocess": 1.0, "inference": m - 2}] * 3] * 2)
    ul = times(100.0)
    variants = []
    for name, m, ap, target in (("static", 90.0, 0.69, None), ("dynamic", 70.0, 0.68, 0.75)):
        t = times(m)
        variants.append({"name": name, "label": f"{name} label", "model": "m.onnx",
                         "options": {}, "target": target, "ap": ap, "set_ms": t["set_ms"],
                         "ratio": t["set_ms"] / ul["set_ms"],
                         "per_image_ratio": [e["median"] / u["median"] for e, u in
                                             zip(t["per_image"], ul["per_image"])],
                         "times": t})
    rng = np.random.default_rng(7)
    boxes = np.array([[0, 0, 50, 100], [200, 0, 260, 120]], float)
    a = people(boxes, [person(b, rng) for b in boxes])
    pr = bench.people_report(["a.jpg", "b.jpg"], [a, a], [a, people(boxes[:1],
                                                                    [np.asarray(a["keypoints"][0])])])
    pr["edgepose_variant"] = "static"
    return {"created": "2026-01-01T00:00:00+00:00",
            "settings": {"threads": 2, "rounds": 3, "repeat": 1, "warmup": 1,
                         "images": ["a.jpg", "b.jpg"], "ultralytics_conf": 0.25,
                         "ap_conf": 0.001},
            "machine": {"cpu": "Test CPU", "simd": ["avx2"], "cores": 2, "avx512": False,
                        "load_avg": [0.1, 0.1, 0.1]},
            "pipelines": {"ultralytics": {"ultralytics": "8.4.190", "torch": "2.13.0",
                                          "onnxruntime": "1.32.0"}},
            "ultralytics": {"ap": 0.68, "times": ul}, "variants": variants, "people": pr,
            "verdicts": bench.verdicts(variants, 0.68)}


def test_the_report_shows_every_figure_and_verdict(bench, capsys):
    doc = fake_doc(bench)
    bench.print_report(doc)
    out = capsys.readouterr().out
    assert "AVX-512: no" in out and "2 threads each" in out
    assert "static label" in out and "0.690" in out and "+0.010" in out
    # set: medians 101 + 200 = 301 (Ultralytics), 71 + 140 = 211 (dynamic): 0.70
    assert "301.0" in out and "211.0" in out and "0.70" in out and "<= 0.75 met" in out
    assert "the same people at conf 0.25" in out and "NO" in out
    assert "[200.0, 0.0, 260.0, 120.0] 0.9" in out          # the person edgepose missed
    assert "dynamic file, smallest letterbox: 0.70x" in out
    stages = out.split("stages as each library reports them")[1]
    assert stages.splitlines()[1].split() == ["pipeline", "preprocess", "inference"]
    assert stages.splitlines()[3].split() == ["Ultralytics", "2.0", "196.0"]  # 98 ms x 2 images


def test_markdown_tables_have_as_many_cells_as_headers(bench):
    md = bench.markdown(fake_doc(bench))
    assert md.startswith("# edgepose vs Ultralytics on YOLO11n-pose")
    tables = [b for b in md.split("\n\n") if b.startswith("| ")]
    assert len(tables) == 4
    for t in tables:
        lines = t.splitlines()
        cells = {line.count(" | ") for line in lines if not line.startswith("|---")}
        assert len(cells) == 1, t
    targets = md.split("## Targets")[1].split("##")[0]
    assert "- AP on the same file: edgepose 0.690 vs Ultralytics 0.680" in targets
    assert "0.70x, AP 0.680 (target <= 0.5x with AP within 0.02 of Ultralytics'): NOT met" \
        in targets


def test_main_writes_json_and_markdown(bench, tmp_path, monkeypatch, capsys):
    doc = fake_doc(bench)
    monkeypatch.setattr(bench, "run", lambda args: doc)
    assert bench.main(["--json", str(tmp_path / "o.json"),
                       "--markdown", str(tmp_path / "md/o.md")]) == 0
    assert json.loads((tmp_path / "o.json").read_text())["verdicts"] == \
        json.loads(json.dumps(doc["verdicts"]))
    assert (tmp_path / "md/o.md").read_text() == bench.markdown(doc)


# --- the peer environment ----------------------------------------------------------------

@pytest.mark.parametrize("machine, system, want", [
    ("x86_64", "Linux", "torch==2.13.0+cpu"), ("aarch64", "Linux", "torch==2.13.0"),
    ("arm64", "Darwin", "torch==2.13.0")])
def test_torch_is_the_cpu_build(peer_env, machine, system, want):
    assert peer_env.torch_requirement(machine, system) == want


def test_pip_commands_pin_ultralytics_and_leave_torchvision_out(peer_env):
    pins = peer_env.pinned_here()
    assert f"numpy=={np.__version__}" in pins
    assert any(p.startswith("onnxruntime==") for p in pins)
    cmds = peer_env.pip_commands(Path("/v/bin/python"), pins, "torch==2.13.0+cpu")
    assert cmds[0][-1] == "torch==2.13.0+cpu"
    assert cmds[1][-2:] == ["--no-deps", "ultralytics==8.4.190"]
    flat = " ".join(" ".join(c) for c in cmds)
    assert "torchvision" not in flat and all(p in cmds[2] for p in pins)


def test_the_torchvision_placeholder_is_metadata_only(peer_env, tmp_path):
    info = peer_env.write_torchvision_placeholder(tmp_path)
    dists = [d for d in importlib.metadata.distributions(path=[str(tmp_path)])
             if d.metadata["Name"] == "torchvision"]
    assert len(dists) == 1 and dists[0].version == "0.0.0"
    assert "NOT installed" in dists[0].metadata["Summary"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [info.name]      # no module
    assert {f.split(",")[0] for f in (info / "RECORD").read_text().split()} == \
        {f"{info.name}/{n}" for n in ("METADATA", "INSTALLER", "RECORD")}


def test_peer_environ_is_offline_and_without_pythonpath(peer_env):
    env = peer_env.peer_environ(Path("/v"), {"PYTHONPATH": "/repo", "HOME": "/h"})
    assert env["YOLO_OFFLINE"] == "1" and env["YOLO_AUTOINSTALL"] == "false"
    assert env["YOLO_CONFIG_DIR"] == "/v/ultralytics-settings"
    assert "PYTHONPATH" not in env and env["HOME"] == "/h"


# --- the worker's protocol ---------------------------------------------------------------

def test_the_worker_replies_line_by_line_and_reports_errors(bench, tmp_path):
    import cv2

    image = tmp_path / "im.png"
    cv2.imwrite(str(image), np.full((20, 30, 3), 7, np.uint8))
    w = bench.WorkerProcess("test", sys.executable, bench.edgepose_environ())
    try:
        assert w.request("images", paths=[str(image)]) == {"shapes": [[20, 30, 3]]}
        with pytest.raises(SystemExit, match="worker failed on 'bogus'.*unknown op 'bogus'"):
            w.request("bogus")
        with pytest.raises(SystemExit, match="could not be read"):
            w.request("images", paths=[str(tmp_path / "none.png")])
        with pytest.raises(SystemExit, match="KeyError: 'nothing'"):
            w.request("time", name="nothing", repeat=1)
    finally:
        w.close()
    assert w.proc.returncode == 0
