"""benchmarks/bench_video.py runs end to end (a smoke test: its correctness
checks and the document it writes; no timing is asserted), and its ground
truth for the panning clip is what it claims to be."""
from __future__ import annotations

import importlib
import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench_video():
    # imported as a module of the benchmarks/ namespace package (the repository
    # root is on sys.path), as bench_paf imports bench_core
    return importlib.import_module("benchmarks.bench_video")


def test_the_shifted_ground_truth_follows_the_crops(bench_video, shared_dir):
    clip = bench_video.make_clip(shared_dir, 10)
    data = json.loads((shared_dir / bench_video.ANNOTATIONS).read_text())
    full = {a["id"]: np.array(a["keypoints"], float).reshape(-1, 3)
            for a in data["annotations"] if a["image_id"] == bench_video.IMAGE_ID}
    assert len(clip.frames) == 10 and clip.frames[0].shape == (360, 480, 3)
    for f, (x, y) in enumerate(clip.offsets.tolist()):
        for p, ann_id in enumerate(clip.ann_ids.tolist()):
            kp = clip.keypoints[f, p]
            shown = kp[:, 2] > 0
            np.testing.assert_allclose(kp[shown, :2] + [x, y], full[ann_id][shown, :2])
            assert ((kp[shown, 0] >= 0) & (kp[shown, 0] < 480)
                    & (kp[shown, 1] >= 0) & (kp[shown, 1] < 360)).all()
            assert (kp[~shown] == 0).all()
            assert clip.scored[f, p] == (shown.sum() >= bench_video.MIN_VISIBLE)
    # People leave on the left and enter on the right, so who is scored changes.
    assert (clip.scored[0] != clip.scored[-1]).any()
    gt = bench_video.coco_ground_truth(clip)
    assert [im["id"] for im in gt["images"]] == list(range(1, 11))
    scored = [a for a in gt["annotations"] if a["num_keypoints"] > 0]
    assert len(scored) == int(clip.scored.sum())
    assert all(a["num_keypoints"] >= bench_video.MIN_VISIBLE for a in scored)


def test_quick_run_checks_and_writes_the_document(bench_video, shared_dir, tmp_path,
                                                  monkeypatch, capsys):
    monkeypatch.setenv("EDGEPOSE_SHARED", str(shared_dir))
    out = tmp_path / "video.json"
    assert bench_video.main(["--quick", "--json", str(out)]) == 0
    assert "pipelined == serial" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert {"benchmark", "created", "environment", "settings", "rows"} <= set(doc)
    env = doc["environment"]
    assert {"python", "numpy", "opencv", "edgepose", "cpu_model", "threads", "runtimes"} <= set(env)
    assert "onnxruntime" in env["runtimes"]
    settings = doc["settings"]
    assert settings["quick"] and settings["repeat"] == 1 and settings["threads"] == 1
    assert len(settings["models"]["pose"]["sha256"]) == 64

    rows = doc["rows"]
    configs = {(r["detect_every"], r["pipelined"], r["smoothing"]) for r in rows}
    assert configs == {(n, p, s) for n in (1, 3, 5) for p in (False, True) for s in (False, True)}
    assert len(rows) == 12
    for r in rows:
        assert r["identical_to_serial"] is True
        assert 0.0 <= r["oks_ap"] <= 1.0 and 0.0 <= r["oks_ap50"] <= 1.0
        assert r["ids_per_person"] and all(n >= 1 for n in r["ids_per_person"].values())
        assert r["id_switches"] >= 0 and 0.0 <= r["coverage"] <= 1.0
        assert r["jitter_px"] is None or r["jitter_px"] >= 0.0
        assert r["fps"] > 0 and r["ratio_vs_baseline"] > 0 and len(r["run_ms"]) == 1
        assert (r["speedup_vs_serial"] is None) == (not r["pipelined"])
        assert set(r["stage_ms_per_frame"]) == {"read", "detect", "pose", "track"}
    baseline = next(r for r in rows if (r["detect_every"], r["pipelined"], r["smoothing"])
                    == (1, False, False))
    assert baseline["ratio_vs_baseline"] == pytest.approx(1.0)
    # Serial and pipelined runs of one configuration are scored alike (identical results).
    for n in (1, 3, 5):
        for s in (False, True):
            pair = [r for r in rows if r["detect_every"] == n and r["smoothing"] == s]
            assert pair[0]["oks_ap"] == pair[1]["oks_ap"]
            assert pair[0]["ids_per_person"] == pair[1]["ids_per_person"]


def test_bad_arguments_exit_with_2(bench_video):
    with pytest.raises(SystemExit) as info:
        bench_video.main(["--frames", "2"])
    assert info.value.code == 2
