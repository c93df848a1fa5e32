"""``edgepose eval`` sharded over a device lab: equal to the single-process run, fault-tolerant."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

import edgepose
from edgepose.evaluation import evaluate_model
from edgepose.evaluation.runner import load_annotations, predict_image
from edgepose.fleet.eval import check_images, evaluate_on_lab
from edgepose.runtime import RuntimeOptions
from tests.fleet.conftest import start_worker

MOVENET = "models/movenet/movenet_singlepose_lightning_int8_4.tflite"
YOLOX = "models/detectors/yolox_yolox_nano_416x416.onnx"
COCO = "data/coco/test_coco.json"
RUNTIME = RuntimeOptions(threads=1)


def _local_results(est, ann, folder, gt_boxes):
    """{image_id: PoseResult} of a single-process run, image by image."""
    from edgepose.evaluation.runner import _dataset_set, _read, image_boxes

    target = _dataset_set(ann.keypoint_names, None)
    out = {}
    for i, (image_id, file) in enumerate(zip(ann.image_ids.tolist(), ann.image_files)):
        boxes = image_boxes(ann, i, gt_boxes)
        if boxes is None or len(boxes):
            out[image_id] = predict_image(est, _read(folder / file), boxes, target,
                                          ann.num_keypoint_channels, [])
    return out


def _assert_same_poses(lab_results, local_results):
    assert list(lab_results) == list(local_results)
    for image_id, local in local_results.items():
        lab = lab_results[image_id]
        np.testing.assert_array_equal(lab.keypoints, local.keypoints)
        np.testing.assert_array_equal(lab.scores, local.scores)
        np.testing.assert_array_equal(lab.boxes, local.boxes)
        np.testing.assert_array_equal(lab.person_scores, local.person_scores)


def _without_latency(summary):
    return {k: v for k, v in summary.items() if not k.startswith("latency")}


def test_eval_sharded_over_two_workers_equals_the_local_run(lab_client, shared_dir, tmp_path):
    folder = shared_dir / "data/coco"
    ann = load_annotations(shared_dir / COCO)
    ticks = []
    lab = evaluate_on_lab(lab_client, shared_dir / MOVENET, ann, folder,
                          detector=shared_dir / YOLOX, runtime=RUNTIME, shard_size=1,
                          cache_dir=tmp_path / "cache", partial=tmp_path / "lab.partial.jsonl",
                          progress=lambda done, total: ticks.append((done, total)))
    with edgepose.Estimator(shared_dir / MOVENET, shared_dir / YOLOX, runtime=RUNTIME) as est:
        local = evaluate_model(est, ann, folder)
        local_results = _local_results(est, ann, folder, gt_boxes=False)
    _assert_same_poses(lab.results, local_results)
    assert _without_latency(lab.report.summary()) == _without_latency(local.summary())
    assert lab.report.summary()["AP"] > 0.4
    assert lab.report.coco.matches.tolist() == local.coco.matches.tolist()
    assert lab.report.latency_ms.shape == (4,)
    # both workers took part; the models were shipped to both
    assert sorted(lab.images_by_worker) == ["0", "1"]
    assert sum(lab.images_by_worker.values()) == 4 and lab.shards == 4
    assert lab.models["pose"] == {"0": "shipped", "1": "shipped"}
    assert lab.models["detector"] == {"0": "shipped", "1": "shipped"}
    assert lab.redone == () and lab.workers_left == ()
    # the progress counted every image across the lab
    assert [d for d, _ in ticks] == [1, 2, 3, 4] and {t for _, t in ticks} == {4}
    # the partial file holds every image's poses as they arrived
    lines = [json.loads(line) for line in
             (tmp_path / "lab.partial.jsonl").read_text().splitlines()]
    assert sorted(r["image_id"] for r in lines) == sorted(local_results)
    for row in lines:
        kp = np.array(row["keypoints"], dtype=np.float64).reshape(-1, 17, 2)
        np.testing.assert_allclose(kp, local_results[row["image_id"]].keypoints, rtol=1e-6)
        assert row["worker"] in ("0", "1")


def test_images_read_from_a_shared_path_or_shipped_give_the_same_result(lab_client, shared_dir,
                                                                        tmp_path):
    folder = shared_dir / "data/coco"
    ann = load_annotations(shared_dir / COCO)
    runs = {via: evaluate_on_lab(lab_client, shared_dir / MOVENET, ann, folder, gt_boxes=True,
                                 runtime=RUNTIME, images_via=via, cache_dir=tmp_path)
            for via in ("ship", "shared", "auto")}
    assert {via: r.images_via for via, r in runs.items()} == {
        "ship": "ship", "shared": "shared", "auto": "shared"}  # the workers see the same disk
    with edgepose.Estimator(shared_dir / MOVENET, runtime=RUNTIME) as est:
        local = evaluate_model(est, ann, folder, gt_boxes=True)
        local_results = _local_results(est, ann, folder, gt_boxes=True)
    for run in runs.values():
        _assert_same_poses(run.results, local_results)
        assert _without_latency(run.report.summary()) == _without_latency(local.summary())


def test_check_images_compares_size_and_hash(shared_dir, tmp_path):
    import shutil

    from edgepose._files import sha256_file

    name = "000000000785.jpg"
    src = shared_dir / "data/coco" / name
    sample = [(name, src.stat().st_size, sha256_file(src))]
    assert check_images(str(src.parent), sample)
    assert not check_images(str(tmp_path), sample)  # not there
    shutil.copyfile(src, tmp_path / name)
    with open(tmp_path / name, "r+b") as f:  # same size, other bytes
        f.seek(1000)
        f.write(b"\0\0\0")
    assert not check_images(str(tmp_path), sample)


def _replicated(shared_dir, tmp_path, copies):
    """test_coco.json with every image listed ``copies`` times (new ids):
    enough shards for a worker to die in the middle of the run."""
    data = json.loads((shared_dir / COCO).read_text())
    images, annotations = [], []
    for c in range(copies):
        for img in data["images"]:
            images.append({**img, "id": img["id"] * 1000 + c})
        for a in data["annotations"]:
            annotations.append({**a, "id": a["id"] * 1000 + c, "image_id": a["image_id"] * 1000 + c})
    path = tmp_path / "replicated.json"
    path.write_text(json.dumps({**data, "images": images, "annotations": annotations}))
    return path


def test_a_worker_killed_mid_eval_leaves_the_result_complete_and_correct(lab_client, shared_dir,
                                                                         tmp_path):
    folder = shared_dir / "data/coco"
    ann = load_annotations(_replicated(shared_dir, tmp_path, copies=6))
    address = lab_client.scheduler.address
    victim = start_worker(address, "victim", client=lab_client)
    try:
        victim_address = next(a for a, w in
                              lab_client.scheduler_info(n_workers=-1)["workers"].items()
                              if w["name"] == "victim")

        def kill_when_busy(done, total):
            # kill the victim once the first shard is back, while it holds a shard
            if victim.poll() is not None or done == 0:
                return
            deadline = time.monotonic() + 60
            while (not lab_client.processing(workers=[victim_address]).get(victim_address)
                   and time.monotonic() < deadline):
                time.sleep(0.005)
            victim.kill()
            victim.wait()

        lab = evaluate_on_lab(lab_client, shared_dir / MOVENET, ann, folder, gt_boxes=True,
                              runtime=RUNTIME, shard_size=2, cache_dir=tmp_path,
                              progress=kill_when_busy)
    finally:
        if victim.poll() is None:
            victim.kill()
        victim.wait()
    with edgepose.Estimator(shared_dir / MOVENET, runtime=RUNTIME) as est:
        local = evaluate_model(est, ann, folder, gt_boxes=True)
    # complete (every image, in order) and correct (the local run's numbers)
    assert list(lab.results) == ann.image_ids.tolist()
    assert _without_latency(lab.report.summary()) == _without_latency(local.summary())
    assert lab.workers_left == ("victim",)
    assert lab.redone, "the victim held a shard when it was killed"
    for redo in lab.redone:
        assert redo.lost_on == "victim" and redo.done_on in ("0", "1") and redo.images == 2
    text = "\n".join(lab.format_lines())
    assert "worker victim left during the run" in text
    assert f"shard {lab.redone[0].shard} (2 images) was lost on victim and redone on " in text


def test_mpii_on_a_lab_is_refused(lab_client, shared_dir, tmp_path):
    with pytest.raises(ValueError, match=r"is an MPII file: a lab evaluates COCO-format files"):
        evaluate_on_lab(lab_client, shared_dir / MOVENET, shared_dir / "data/mpii/test_mpii.json",
                        shared_dir / "data/mpii", gt_boxes=True, cache_dir=tmp_path)


def _set_env(name: str, value: str | None) -> str | None:
    """Runs on the workers: sets (or, for None, removes) an environment
    variable; returns the old value."""
    import os

    old = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    return old


def test_edgepose_eval_cluster_command(lab_cluster, lab_client, shared_dir, tmp_path, capsys):
    from edgepose.evaluation.cli import main_eval

    args = [str(shared_dir / MOVENET), "--annotations", str(shared_dir / COCO),
            "--images", str(shared_dir / "data/coco"), "--gt-boxes", "--threads", "1",
            "--quiet"]
    assert main_eval(args + ["--json", str(tmp_path / "local.json")]) == 0
    capsys.readouterr()
    # the workers' edgepose cache: a folder of this test's (the model is shipped there)
    old = lab_client.run(_set_env, "EDGEPOSE_CACHE", str(tmp_path / "worker-cache"))
    try:
        code = main_eval(args + ["--cluster", lab_cluster.scheduler_address, "--json",
                                 str(tmp_path / "lab.json"), "--images-via", "ship",
                                 "--shard-size", "1"])
    finally:
        for address, value in old.items():
            lab_client.run(_set_env, "EDGEPOSE_CACHE", value, workers=[address])
    out = capsys.readouterr().out
    assert code == 0
    assert "lab: 4 shards, images ship (bytes with the tasks)" in out
    assert "pose model: 0 shipped, 1 shipped" in out
    local = json.loads((tmp_path / "local.json").read_text())
    lab = json.loads((tmp_path / "lab.json").read_text())
    assert {k: v for k, v in lab["summary"].items() if "latency" not in k} == \
        {k: v for k, v in local["summary"].items() if "latency" not in k}
    assert lab["lab"]["workers"] == ["0", "1"] and lab["lab"]["shards"] == 4
    assert lab["lab"]["versions"]["mismatches"] == {}
    assert sum(lab["lab"]["images_by_worker"].values()) == 4
    # the default partial file is gone once the JSON holds everything
    assert not (tmp_path / "lab.json.partial.jsonl").exists()
    assert (tmp_path / "worker-cache" / "fleet").is_dir()


def test_lab_eval_flags_need_cluster(shared_dir, capsys):
    from edgepose.evaluation.cli import main_eval

    code = main_eval([str(shared_dir / MOVENET), "--annotations", str(shared_dir / COCO),
                      "--images", str(shared_dir / "data/coco"), "--shard-size", "2"])
    assert code == 2
    assert ("--shard-size is an option of the device lab and needs --cluster ADDR"
            in capsys.readouterr().err)


def test_eval_without_cluster_never_imports_dask(shared_dir, tmp_path):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from edgepose.cli import main\n"
        f"rc = main(['eval', {str(shared_dir / MOVENET)!r}, '--annotations', "
        f"{str(shared_dir / COCO)!r}, '--images', {str(shared_dir / 'data/coco')!r}, "
        "'--gt-boxes', '--quiet'])\n"
        "assert rc == 0, rc\n"
        "assert 'distributed' not in sys.modules and 'dask' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=str(_repo_root()))
    assert done.returncode == 0, done.stderr


def _repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]


def test_a_shard_that_fails_names_its_images(lab_client, shared_dir, tmp_path):
    import shutil

    folder = tmp_path / "images"
    shutil.copytree(shared_dir / "data/coco", folder)
    ann = load_annotations(shared_dir / COCO)
    broken = ann.image_files[2]
    (folder / broken).write_bytes(b"not a jpeg")
    with pytest.raises(RuntimeError, match=rf"shard 2 \({broken}\) failed on the lab: "
                       rf"ValueError: {broken} could not be decoded as an image\."):
        evaluate_on_lab(lab_client, shared_dir / MOVENET, ann, folder, gt_boxes=True,
                        runtime=RUNTIME, images_via="ship", shard_size=1, retries=0,
                        cache_dir=tmp_path / "cache")


def test_a_run_whose_devices_all_left_gives_up_and_keeps_the_partial_file(lab_client, shared_dir,
                                                                         tmp_path):
    folder = shared_dir / "data/coco"
    ann = load_annotations(shared_dir / COCO)
    victim = start_worker(lab_client.scheduler.address, "lonely", client=lab_client)

    def kill(done, total):
        if victim.poll() is None:
            victim.kill()
            victim.wait()

    try:
        with pytest.raises(RuntimeError, match=r"the chosen workers \(--devices\) have left the "
                           r"lab for 1 s with 3 of 4 images still to run"):
            evaluate_on_lab(lab_client, shared_dir / MOVENET, ann, folder, gt_boxes=True,
                            runtime=RUNTIME, shard_size=1, workers=["lonely"],
                            cache_dir=tmp_path / "cache", partial=tmp_path / "p.jsonl",
                            progress=kill, no_worker_timeout_s=1)
    finally:
        if victim.poll() is None:
            victim.kill()
        victim.wait()
    kept = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(kept) == 1 and kept[0]["worker"] == "lonely"
