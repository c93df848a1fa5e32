"""``edgepose bench --cluster`` on a real LocalCluster: one merged report from
two worker processes, --devices, a device that leaves mid-run, the AP per
device, the report's views and picture; and Dask never imported without
--cluster."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

from edgepose.bench.cli import main as bench_main
from edgepose.fleet import bench as fb
from edgepose.fleet import report as fr
from tests.fleet.conftest import start_worker

MOVENET = "movenet/movenet_singlepose_lightning_int8_4.tflite"
MOVENET_ONNX = "movenet/onnx_converted/movenet_singlepose_lightning_int8_4.onnx"
FAST = ["--runs", "2", "--warmup", "1", "--quiet"]


@pytest.fixture(scope="module")
def coco_files(shared_dir):
    return shared_dir / "data/coco/test_coco.json", shared_dir / "data/coco"


@pytest.fixture(scope="module")
def lab_run(lab_cluster, lab_client, models, coco_files, tmp_path_factory):
    """One CLI run over both workers: 2 models x 1 thread count, with AP."""
    out = tmp_path_factory.mktemp("lab")
    ann, images = coco_files
    argv = [str(models / MOVENET), str(models / MOVENET_ONNX), "--threads", "1", *FAST,
            "--cluster", lab_cluster.scheduler_address, "--annotations", str(ann),
            "--images", str(images), "--json", str(out / "lab.json"),
            "--markdown", str(out / "lab.md"), "--plot", str(out / "lab.png")]
    code = bench_main(argv)
    return code, out


def test_two_workers_merged_into_one_report(lab_run, models, coco_files):
    code, out = lab_run
    assert code == 0
    doc = json.loads((out / "lab.json").read_text())
    assert doc["schema"] == fr.SCHEMA
    assert set(doc["workers"]) == {"0", "1"}
    for name, info in doc["workers"].items():
        assert info["status"] == "done" and info["done"] == info["total"] == 2
        assert info["machine"]["cpu"]["cores_logical"] >= 1  # the device's own probe
    rows = doc["results"]
    assert sorted((r["worker"], r["index"]) for r in rows) == [("0", 0), ("0", 1), ("1", 0),
                                                                ("1", 1)]
    assert all(r["status"] == "ok" and r["runs"] == 2 for r in rows)
    # one at a time per device: a device's configurations never overlap
    for name in ("0", "1"):
        mine = sorted((r["started_at"], r["ended_at"]) for r in rows if r["worker"] == name)
        assert mine[0][1] <= mine[1][0]
    assert not (out / "lab.json.partial.jsonl").exists()  # removed once lab.json is whole
    assert not doc["versions"]["mismatches"]


def test_models_reach_the_workers_by_hash(lab_run, models, worker_cache):
    """The workers had no copy of the files (no model dir, no mirror): the
    client shipped them, and each task found the verified copy."""
    from edgepose._files import sha256_file

    _, out = lab_run
    doc = json.loads((out / "lab.json").read_text())
    for name in ("0", "1"):
        got = doc["workers"][name]["models"]
        assert set(got) == {str(models / MOVENET), str(models / MOVENET_ONNX)}
        assert set(got.values()) <= {"shipped", "lab cache"}  # this test or an earlier one
    for model in (MOVENET, MOVENET_ONNX):
        sha = sha256_file(models / model)
        landed = worker_cache / "fleet" / sha / Path(model).name
        assert sha256_file(landed) == sha


def test_ap_on_each_device_equals_the_local_evaluation(lab_run, models, coco_files):
    """Each device's AP is the one evaluate_model measures here, in this run."""
    from edgepose.evaluation import evaluate_model

    _, out = lab_run
    doc = json.loads((out / "lab.json").read_text())
    ann, images = coco_files
    for model, index in ((MOVENET, 0), (MOVENET_ONNX, 1)):
        local = evaluate_model(str(models / model), ann, images, gt_boxes=True,
                               runtime=None).coco["AP"]
        got = [r["ap"] for r in doc["results"] if r["index"] == index]
        assert got == [pytest.approx(local, abs=1e-9)] * 2
        assert all(r["ap_mode"] == "gt-boxes" and r["ap_images"] == 4
                   for r in doc["results"] if r["index"] == index)
    # the choice: fastest within 0.02 AP of the best, recomputed independently
    for name in ("0", "1"):
        mine = [(i, r) for i, r in enumerate(doc["results"]) if r["worker"] == name]
        best = max(r["ap"] for _, r in mine)
        within = [(r["stages_ms"]["total"]["p50"], i) for i, r in mine if r["ap"] >= best - 0.02]
        assert doc["choice"][name] == min(within)[1]


def test_report_views_and_picture(lab_run):
    _, out = lab_run
    doc = json.loads((out / "lab.json").read_text())
    md = (out / "lab.md").read_text()
    assert "| device | hardware | software | status |" in md
    for name in ("0", "1"):
        assert f"| {name} | " in md
    assert md.count("| * ") == 2 and "`*` marks the device's fastest configuration with an " \
        "AP within 0.02 of its best." in md
    text = fr.to_text(doc)
    assert "2 of 2 configurations" in text and "movenet_singlepose_lightning_int8_4.onnx " \
        "onnxruntime t1" in text
    png = (out / "lab.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    h, w = matplotlib.image.imread(out / "lab.png").shape[:2]
    assert w >= 800 and h >= 400


def test_devices_selects_workers(lab_cluster, models, tmp_path):
    code = bench_main([str(models / MOVENET), "--threads", "1", *FAST,
                       "--cluster", lab_cluster.scheduler_address, "--devices", "1",
                       "--json", str(tmp_path / "one.json")])
    assert code == 0
    doc = json.loads((tmp_path / "one.json").read_text())
    assert list(doc["workers"]) == ["1"] and [r["worker"] for r in doc["results"]] == ["1"]
    assert doc["choice"] == {"1": 0} and doc["results"][0]["ap"] is None


def test_device_that_leaves_is_marked_and_others_go_on(lab_cluster, lab_client, models,
                                                       worker_cache, tmp_path):
    """A worker process killed while its second configuration runs: it is
    marked 'left after 1 of 3', worker 0 finishes its three, and the rows
    written as they arrived hold everything measured."""
    from edgepose.bench.runner import BenchConfig, RunSettings, describe_model
    from edgepose.data import sample_path
    from edgepose.fleet.cluster import lab_workers

    from edgepose.fleet.models import deliver_model
    from edgepose.fleet.models import describe_model as model_ref

    proc = start_worker(lab_cluster.scheduler_address, "leaver", client=lab_client,
                        env={"EDGEPOSE_CACHE": str(worker_cache)})
    try:
        workers = lab_workers(lab_client, ["leaver", "0"])
        path = str(models / MOVENET)
        ref, paths = model_ref(path)
        deliver_model(lab_client, ref, paths, [w.address for w in workers])
        configs = [BenchConfig(path, threads=t) for t in (1, 2, 1)]
        jsonl = tmp_path / "rows.jsonl"

        def on_row(row):
            fr.append_jsonl(jsonl, row)
            if row["worker"] == "leaver":
                proc.kill()  # its next configuration was sent before this call

        run = fb.run_lab_bench(lab_client, workers, configs, models={path: ref},
                               image_bytes=sample_path().read_bytes(),
                               settings=RunSettings(runs=2, warmup=1), on_row=on_row)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert run.devices["leaver"]["status"] == "left"
    assert run.devices["leaver"]["note"] == "left after 1 of 3 configurations"
    assert run.devices["0"] | {"address": None} == {"address": None, "status": "done",
                                                    "done": 3, "total": 3, "note": None}
    assert sorted((r["worker"], r["index"]) for r in run.rows) == [
        ("0", 0), ("0", 1), ("0", 2), ("leaver", 0)]
    written = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [(r["worker"], r["index"]) for r in written] == [(r["worker"], r["index"])
                                                            for r in run.rows]
    doc = fr.build_lab_document(command="test", settings={}, scheduler="x",
                                versions={"mismatches": {}},
                                workers={n: d | {"machine": None} for n, d in
                                         run.devices.items()},
                                models={path: describe_model(path)}, results=run.rows)
    assert "leaver: (no probe); left after 1 of 3 configurations" in fr.to_text(doc)


def test_device_without_a_verified_copy_gives_an_error_row(tmp_path, monkeypatch):
    """A device whose only file of that name has another sha256 runs nothing
    and says where it looked."""
    from edgepose.bench.runner import BenchConfig
    from edgepose.data import sample_path
    from edgepose.fleet.models import ModelFile, ModelRef

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "pose.tflite").write_bytes(b"0123456789")
    monkeypatch.setenv("EDGEPOSE_MIRROR", str(mirror))
    monkeypatch.delenv("EDGEPOSE_MODEL_DIR", raising=False)
    ref = ModelRef("pose.tflite", (ModelFile("pose.tflite", "ab" * 32, 10),))
    config = fb.config_to_dict(BenchConfig("pose.tflite", threads=1))
    row = fb.bench_on_worker(config, ref, None, sample_path().read_bytes(),
                             {"runs": 1, "warmup": 0, "duration_s": None},
                             cache_dir=str(tmp_path / "cache"))
    assert row["status"] == "error"
    assert row["reason"].startswith("this device has no verified copy of model 'pose.tflite' "
                                    "(sha256 abababababab...)")
    assert f"mirror: no pose.tflite with sha256 abababababab... in {mirror}" in row["reason"]


def test_choose_rules():
    def row(p50, ap, status="ok"):
        return {"status": status, "ap": ap, "stages_ms": {"total": {"p50": p50}}}

    rows = [row(50.0, 0.70), row(20.0, 0.685), row(10.0, 0.60), row(5.0, None, "error")]
    assert fr.choose(rows, 0.02) == 1          # 0.685 is within 0.02 of 0.70
    assert fr.choose(rows, 0.01) == 0          # not within 0.01
    assert fr.choose(rows, 0.10) == 2
    assert fr.choose([row(9.0, None), row(3.0, None)]) == 1  # no AP: the fastest
    assert fr.choose([row(1.0, None, "error")]) is None


@pytest.mark.parametrize("extra, message", [
    (["--devices", "0"], "--devices is a device-lab option and needs --cluster ADDR"),
    (["--plot", "x.png"], "--plot is an option of the device lab and needs --cluster ADDR"),
    (["--cluster", "tcp://127.0.0.1:1", "--annotations", "a.json"],
     "--annotations needs --images too"),
    (["--cluster", "tcp://192.0.2.1:8786"], "Refusing the scheduler at tcp://192.0.2.1:8786"),
    (["--cluster", "tcp://127.0.0.1:1", "--video", "v.mp4"],
     "--video does not run on a device lab"),
])
def test_usage_errors(models, capsys, extra, message):
    assert bench_main([str(models / MOVENET), *FAST, *extra]) == 2
    assert message in capsys.readouterr().err


def test_unknown_device_is_a_usage_error(lab_cluster, models, capsys):
    assert bench_main([str(models / MOVENET), *FAST, "--cluster",
                       lab_cluster.scheduler_address, "--devices", "pi9"]) == 2
    assert "--devices names 'pi9', which no worker of the lab is; the workers are: 0, 1" \
        in capsys.readouterr().err


def test_bench_without_cluster_never_imports_dask(models):
    code = ("import sys\n"
            "from edgepose.cli import main\n"
            f"rc = main(['bench', {str(models / MOVENET)!r}, '--runs', '1', '--warmup', '0', "
            "'--threads', '1', '--quiet'])\n"
            "assert rc == 0, rc\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('distributed', "
            "'dask', 'matplotlib')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_cluster_without_dask_names_the_extra(models, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    assert bench_main([str(models / MOVENET), *FAST, "--cluster", "tcp://127.0.0.1:1"]) == 1
    assert ("The device lab (--cluster) needs Dask distributed and matplotlib: pip install "
            "'edgepose[fleet]'.") in capsys.readouterr().err
