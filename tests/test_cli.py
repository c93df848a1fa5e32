"""`edgepose run` on real models: an image, a folder and a video."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from edgepose.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def movenet(shared_dir):
    return str(shared_dir / "models/movenet/movenet_singlepose_lightning_int8_4.tflite")


def test_run_on_an_image_writes_json_and_a_drawing(shared_dir, movenet, tmp_path):
    image = shared_dir / "data/coco/000000000785.jpg"
    assert main(["run", str(image), "--model", movenet, "--out", str(tmp_path), "--quiet"]) == 0
    lines = (tmp_path / "poses.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    assert len(lines) == 1 and record["source"] == "000000000785.jpg"
    assert len(record["people"]) == 1 and len(record["people"][0]["keypoints"]) == 17
    assert cv2.imread(str(tmp_path / "000000000785_pose.jpg")) is not None


def test_run_on_a_folder_with_a_detector(shared_dir, movenet, tmp_path):
    detector = str(shared_dir / "models/detectors/yolox_yolox_nano_416x416.onnx")
    out = tmp_path / "out"
    code = main(["run", str(shared_dir / "data/coco"), "--model", movenet, "--detector", detector,
                 "--out", str(out), "--no-draw", "--quiet"])
    assert code == 0
    records = [json.loads(line) for line in (out / "poses.jsonl").read_text().splitlines()]
    assert len(records) == 4 and sum(len(r["people"]) for r in records) >= 10
    assert all("box" in p for r in records for p in r["people"])


def test_run_on_a_video(shared_dir, movenet, tmp_path):
    image = cv2.imread(str(shared_dir / "data/coco/000000000785.jpg"))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                             (image.shape[1], image.shape[0]))
    for shift in range(5):
        writer.write(np.roll(image, 4 * shift, axis=1))
    writer.release()
    out = tmp_path / "out"
    assert main(["run", str(video), "--model", movenet, "--out", str(out), "--quiet"]) == 0
    records = [json.loads(line) for line in (out / "poses.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == [0, 1, 2, 3, 4]
    assert all("timestamp_ms" in r for r in records)
    assert (out / "annotated.mp4").stat().st_size > 0


def test_missing_input_exits_with_a_message(tmp_path, movenet):
    with pytest.raises(SystemExit, match="does not exist"):
        main(["run", str(tmp_path / "x.jpg"), "--model", movenet])
    with pytest.raises(SystemExit, match="no images"):
        main(["run", str(tmp_path), "--model", movenet])


def test_missing_model_is_reported_on_stderr(shared_dir, tmp_path, capsys):
    code = main(["run", str(shared_dir / "data/coco/000000000785.jpg"),
                 "--model", str(tmp_path / "missing.onnx"), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "does not exist" in err


def test_console_script_is_installed(movenet, shared_dir):
    out = subprocess.run([sys.executable, "-m", "edgepose.cli", "run",
                          str(shared_dir / "data/coco/000000000785.jpg"), "--model", movenet,
                          "--out", "-", "--quiet"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["people"]) == 1


def test_eval_scores_a_model_on_coco(shared_dir, movenet, tmp_path):
    out = tmp_path / "eval.json"
    code = main(["eval", movenet, "--annotations", str(shared_dir / "data/coco/test_coco.json"),
                 "--images", str(shared_dir / "data/coco"), "--gt-boxes", "--json", str(out),
                 "--quiet"])
    assert code == 0
    report = json.loads(out.read_text())
    text = json.dumps(report)
    assert '"AP"' in text and "PCK" in text
