"""One-stage multi-person models (tested with MoveNet MultiPose) outside the
Estimator: in the tracker, as the person detector of a top-down model, in
``edgepose run`` and ``edgepose bench``. Everything here is generic over the
one-stage heads."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from edgepose import Estimator, PoseTracker  # noqa: E402
from edgepose.cli import main  # noqa: E402
from edgepose.detectors import (Detections, OneStagePersonDetector,  # noqa: E402
                                PersonDetector)
from edgepose.evaluation import evaluate_model  # noqa: E402
from edgepose.video.smoothing import OneEuroParams  # noqa: E402
from tests.video.scenes import panning_clip, person_of  # noqa: E402

MULTIPOSE = "movenet/movenet_multipose_lightning_fp16.tflite"
SINGLEPOSE = "movenet/movenet_singlepose_lightning_int8_4.tflite"
YOLOX = "detectors/yolox_yolox_nano_416x416.onnx"
YOLO = "yolo_pose/yolo11n-pose-dynamic.onnx"
#: OKS AP of MoveNet SinglePose int8 on data/coco (x86-64, AVX2, this edgepose) on the
#: boxes of each detector; the int8 margin of tests/test_accuracy.py (the int8 model
#: moves by ~0.02 AP for sub-pixel changes of its crops).
AP_ON_MULTIPOSE_BOXES = 0.563
AP_ON_YOLOX_BOXES = 0.561
AP_ON_YOLO_BOXES = 0.620
INT8_AP_MARGIN = 0.08


# --- the tracker -------------------------------------------------------------------------

def test_tracker_on_a_one_stage_model_keeps_ids_on_a_real_pan(shared_dir, models):
    """No detector: the model finds people on every frame; ids by OKS. The far-away
    spectator (annotation 2, 17 x 32 px) scores around MoveNet MultiPose's person
    threshold, so it flickers in and out and may take new ids; nobody else may."""
    clip, offsets, gt = panning_clip(shared_dir)
    ids_per_person: dict[int, set[int]] = {}
    people_per_id: dict[int, set[int]] = {}
    seen = np.zeros((len(clip), len(gt)), bool)
    with PoseTracker(models / MULTIPOSE, None, smoothing=OneEuroParams()) as tracker:
        assert not tracker.has_detector and all(tracker.detection_due(f) for f in range(4))
        for f, frame in enumerate(clip):
            result = tracker(frame, timestamp_ms=f * 1000 / 30)
            assert result.boxes.shape == (len(result), 4) and tracker.last_detected
            assert len(set(result.track_ids.tolist())) == len(result)
            for box, tid in zip(result.boxes, result.track_ids.tolist()):
                who = person_of(box, offsets[f], gt)
                if who is None:
                    continue
                seen[f, who] = True
                ids_per_person.setdefault(who, set()).add(tid)
                people_per_id.setdefault(tid, set()).add(who)
    assert all(len(ids) == 1 for who, ids in ids_per_person.items() if who != 2), ids_per_person
    assert all(len(who) == 1 for who in people_per_id.values()), people_per_id
    assert seen[:, 0].all()                            # the batter, in every frame
    assert seen[0, 4] and not seen[-1, 4]              # the player on the left leaves
    assert seen[-1, 3] and seen[-1, 1] and not seen[0, 3]   # two enter on the right


def test_tracker_refuses_a_detector_with_a_one_stage_model(models):
    with pytest.raises(ValueError, match=r"\(bottom-up or one-stage\) finds every person itself"):
        PoseTracker(models / MULTIPOSE, models / YOLOX)


def test_tracker_takes_an_estimator_with_one_stage_options(shared_dir, models):
    clip = panning_clip(shared_dir, frames=3)[0]
    with Estimator(models / MULTIPOSE, max_detections=1) as est, PoseTracker(est) as tracker:
        counts = [len(tracker(frame)) for frame in clip]
    assert counts == [1, 1, 1]


# --- a one-stage model as person detector --------------------------------------------------

def test_a_one_stage_model_file_is_a_person_detector(models, coco):
    _, images = coco
    image = next(iter(images.values()))
    with PersonDetector.from_file(models / MULTIPOSE) as det, \
            Estimator(models / MULTIPOSE) as est:
        assert isinstance(det, OneStagePersonDetector) and det.kind == "movenet_multipose"
        assert det.score_threshold == 0.1                  # the card's default
        found, people = det(image), est(image)
        assert isinstance(found, Detections)
        # the same people, their boxes clipped to the image, best first
        h, w = image.shape[:2]
        expected = np.asarray(people.boxes).copy()
        expected[:, 0::2] = expected[:, 0::2].clip(0, w)
        expected[:, 1::2] = expected[:, 1::2].clip(0, h)
        np.testing.assert_allclose(found.boxes, expected, atol=1e-4)
        np.testing.assert_array_equal(found.scores, people.person_scores)
        assert (np.diff(found.scores) <= 0).all()
    with PersonDetector.from_file(models / MULTIPOSE, score_threshold=0.3,
                                  max_detections=1) as det:
        found = det(image)
        assert len(found) <= 1 and (found.scores > 0.3).all()
    with pytest.raises(ValueError, match=r"score_threshold must be a number in \[0, 1\), got 2"):
        PersonDetector.from_file(models / MULTIPOSE, score_threshold=2)
    with pytest.raises(ValueError, match="is a single pose model .*only one-stage multi-person "
                                         "ones serve as person detectors"):
        PersonDetector.from_file(models / SINGLEPOSE)


def test_tracker_with_a_one_stage_detector(shared_dir, models):
    clip, offsets, gt = panning_clip(shared_dir)
    ids: dict[int, set[int]] = {}
    with PoseTracker(models / SINGLEPOSE, models / MULTIPOSE, detect_every=2) as tracker:
        assert tracker.has_detector
        for f, frame in enumerate(clip[:8]):
            result = tracker(frame)
            for box, tid in zip(result.boxes, result.track_ids.tolist()):
                ids.setdefault(person_of(box, offsets[f], gt), set()).add(tid)
    assert len(ids[0]) == 1 and len(ids[4]) == 1 and ids[0] != ids[4]   # batter, left player


def test_top_down_on_one_stage_boxes_scores_with_the_detectors(models, shared_dir):
    """MoveNet SinglePose on MoveNet MultiPose's boxes, against its AP on YOLOX-nano's
    measured in the same run (docs/one_stage.md has the table)."""
    ann, folder = shared_dir / "data/coco/test_coco.json", shared_dir / "data/coco"
    with Estimator(models / SINGLEPOSE, models / MULTIPOSE) as est:
        assert isinstance(est._detector, OneStagePersonDetector)
        on_multipose = evaluate_model(est, ann, folder).coco["AP"]
    on_yolox = evaluate_model(models / SINGLEPOSE, ann, folder,
                              detector=models / YOLOX).coco["AP"]
    assert on_multipose >= AP_ON_MULTIPOSE_BOXES - INT8_AP_MARGIN
    assert on_yolox >= AP_ON_YOLOX_BOXES - INT8_AP_MARGIN
    assert on_multipose >= on_yolox - 0.06
    # generic over one-stage heads: YOLO11n-pose's boxes (AGPL-3.0, read in place)
    on_yolo = evaluate_model(models / SINGLEPOSE, ann, folder, detector=models / YOLO).coco["AP"]
    assert on_yolo >= AP_ON_YOLO_BOXES - INT8_AP_MARGIN
    # the detection threshold is the one-stage card's unless given (0.3 drops people)
    with Estimator(models / SINGLEPOSE, models / MULTIPOSE, detection_threshold=0.3) as est:
        assert est._detector.score_threshold == 0.3
        assert evaluate_model(est, ann, folder).coco["AP"] < on_multipose


# --- edgepose run ------------------------------------------------------------------------

def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_an_image_and_a_folder_with_one_stage_flags(shared_dir, models, tmp_path):
    image = shared_dir / "data/coco/000000196141.jpg"
    out = tmp_path / "one"
    assert main(["run", str(image), "--model", str(models / MULTIPOSE), "--out", str(out),
                 "--quiet", "--max-detections", "2", "--score-threshold", "0.2",
                 "--input-size", "320"]) == 0
    (record,) = _records(out / "poses.jsonl")
    assert 1 <= len(record["people"]) <= 2
    assert all(p["score"] > 0.2 and len(p["box"]) == 4 for p in record["people"])
    with Estimator(models / MULTIPOSE, max_detections=2, score_threshold=0.2,
                   input_size=320) as est:
        expected = est(cv2.imread(str(image)))
    np.testing.assert_allclose([p["box"] for p in record["people"]], expected.boxes, atol=0.01)
    assert cv2.imread(str(out / "000000196141_pose.jpg")) is not None
    folder = tmp_path / "folder"
    assert main(["run", str(shared_dir / "data/coco"), "--model", str(models / MULTIPOSE),
                 "--out", str(folder), "--no-draw", "--quiet"]) == 0
    records = _records(folder / "poses.jsonl")
    assert len(records) == 4 and sum(len(r["people"]) for r in records) >= 8


@pytest.mark.parametrize("extra, message", [
    (["--input-size", "320"], r"--input-size applies to one-stage multi-person models "
                              r"\(YOLO-pose, MoveNet MultiPose\); .*movenet_singlepose_lightning"
                              r"_int8_4.tflite is a 'single' model. Drop it."),
    (["--score-threshold", "0.2", "--max-detections", "3"],
     r"--score-threshold, --max-detections apply to one-stage .* Drop them."),
])
def test_run_refuses_one_stage_flags_for_other_models(shared_dir, models, capsys, extra,
                                                      message):
    image = shared_dir / "data/coco/000000000785.jpg"
    assert main(["run", str(image), "--model", str(models / SINGLEPOSE), "--out", "-",
                 "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgepose: error: ")
    assert re.search(message, err), err


def test_run_refuses_a_detector_and_bad_values_for_a_one_stage_model(shared_dir, models,
                                                                     panning_video, capsys):
    image = shared_dir / "data/coco/000000000785.jpg"
    for source in (image, panning_video):
        assert main(["run", str(source), "--model", str(models / MULTIPOSE), "--detector",
                     str(models / YOLOX), "--out", "-", "--quiet"]) == 2
        assert ("--detector is for top-down models; " in capsys.readouterr().err)
    assert main(["run", str(image), "--model", str(models / MULTIPOSE), "--out", "-",
                 "--quiet", "--score-threshold", "1.5"]) == 2
    assert "--score-threshold: score_threshold must be a number in [0, 1), got 1.5" in \
        capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["run", str(image), "--model", str(models / MULTIPOSE), "--out", "-", "--quiet",
              "--max-detections", "many"])
    assert exc.value.code == 2
    assert "argument --max-detections: expected an integer, got 'many'" in \
        capsys.readouterr().err


def test_run_tracks_a_video_with_a_one_stage_model(models, panning_video, tmp_path, capsys):
    out = tmp_path / "video"
    assert main(["run", str(panning_video), "--model", str(models / MULTIPOSE),
                 "--input-size", "256", "--out", str(out), "--no-draw", "--max-frames", "8"]) == 0
    records = _records(out / "poses.jsonl")
    assert [r["frame"] for r in records] == list(range(8))
    assert all(r["detected"] for r in records)
    batter = [[p["track_id"] for p in r["people"] if p["score"] > 0.4] for r in records]
    assert all(ids == batter[0] for ids in batter) and len(batter[0]) >= 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 8 and summary["detect_every"] is None
    assert "no detector: the pose model finds people on every frame" in capsys.readouterr().err


def test_run_uses_a_one_stage_model_as_detector(shared_dir, models, tmp_path):
    image = shared_dir / "data/coco/000000196141.jpg"
    out = tmp_path / "det"
    assert main(["run", str(image), "--model", str(models / SINGLEPOSE), "--detector",
                 str(models / MULTIPOSE), "--out", str(out), "--no-draw", "--quiet"]) == 0
    (record,) = _records(out / "poses.jsonl")
    assert len(record["people"]) >= 2


# --- edgepose bench ------------------------------------------------------------------------

def test_bench_one_stage_rows_and_a_one_stage_detector(shared_dir, models, tmp_path, capsys,
                                                       monkeypatch):
    for var in ("EDGEPOSE_MODEL_DIR", "EDGEPOSE_MIRROR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "b.json"
    code = main(["bench", str(models / MULTIPOSE), str(models / SINGLEPOSE),
                 "--detector", str(models / MULTIPOSE),
                 "--image", str(shared_dir / "data/coco/000000197388.jpg"),
                 "--runs", "2", "--warmup", "1", "--threads", "1", "--input-size", "320",
                 "--json", str(out), "--quiet"])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["settings"]["one_stage"] == {"input_size": 320}
    one_stage, top_down = doc["results"]
    assert one_stage["status"] == top_down["status"] == "ok"
    assert one_stage["detector"] is None and "detector" not in one_stage["stages_ms"]
    assert one_stage["people"] >= 1
    assert top_down["detector"] == str(models / MULTIPOSE)
    assert "detector" in top_down["stages_ms"] and top_down["people"] >= 1
    info = doc["models"][str(models / MULTIPOSE)]
    assert info["card"]["task"] == "onestage" and info["gflops"] > 1.0
    assert main(["bench", str(models / SINGLEPOSE), "--runs", "1", "--input-size", "320",
                 "--quiet"]) == 2
    assert "none of the models benched is one" in capsys.readouterr().err


def test_bench_configs_keep_their_one_stage_options_across_the_lab():
    """A lab device gets the configuration as plain data: the one-stage options travel."""
    from edgepose.bench.runner import BenchConfig
    from edgepose.fleet.bench import config_from_dict, config_to_dict

    config = BenchConfig("m.tflite", threads=1, one_stage={"input_size": 320})
    data = config_to_dict(config)
    assert data["one_stage"] == {"input_size": 320}
    assert config_from_dict(json.loads(json.dumps(data))) == config
    assert config_from_dict(config_to_dict(BenchConfig("m.tflite"))).one_stage is None


@pytest.mark.parametrize("options, message", [
    ({"iou_threshold": 0.5}, "iou_threshold does not apply to movenet-multipose"),
    ({"max_detections": 7}, "max_detections must be at most 6"),
    ({"input_size": 250}, "input_size must be a multiple of 32"),
])
def test_options_that_cannot_fit_fail_when_the_estimator_is_built(models, options, message):
    """A one-stage head checks the caller's options against the loaded model
    (check_options) when the Estimator is built, not on the first image."""
    with pytest.raises(ValueError, match=message):
        Estimator(models / MULTIPOSE, **options)
