"""Estimator on the real models of ../shared, end to end, and on bad input.

Measured on x86-64 with onnxruntime 1.32, ai-edge-litert 2.3 (XNNPACK) and
OpenVINO 2026.4: CPM on data/aic (GT boxes): mean error 60.1 px with argmax,
57.6 px with DARK. The OKS AP floors on data/coco live in test_accuracy.py,
with margins that hold across CPUs.
"""
from __future__ import annotations

import json
import platform

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

import edgepose  # noqa: E402
from edgepose import Estimator  # noqa: E402

MOVENET = "movenet/movenet_singlepose_lightning_int8_4.tflite"
MOVENET_ONNX = "movenet/onnx_converted/movenet_singlepose_lightning_int8_4.onnx"
YOLOX = "detectors/yolox_yolox_nano_416x416.onnx"
CPM = "heatmap_cpm_hourglass/cpm_model.tflite"
CPM_ONNX = "heatmap_cpm_hourglass/onnx_converted/cpm_model.onnx"
BLAZE_LITE = "mediapipe/pose_landmark_lite.tflite"
BLAZE_LITE_ONNX = "mediapipe/onnx_converted/pose_landmark_lite.onnx"


def _gt_boxes(gt, image_id):
    anns = [a for a in gt.loadAnns(gt.getAnnIds(imgIds=image_id)) if not a["iscrowd"]]
    return np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                      a["bbox"][1] + a["bbox"][3]] for a in anns], np.float32)


def _decode_all(models, model, images, gt, **kwargs):
    with Estimator(models / model, **kwargs) as est:
        return [est(image, boxes=_gt_boxes(gt, i)) for i, image in images.items()]


@pytest.mark.arm64
@pytest.mark.parametrize("model", [CPM_ONNX, BLAZE_LITE_ONNX])
def test_onnxruntime_and_openvino_agree_on_decoded_keypoints(models, coco, model):
    gt, images = coco
    ort = _decode_all(models, model, images, gt)
    ov = _decode_all(models, model, images, gt, backend="openvino")
    for a, b in zip(ort, ov):
        found = (a.scores > 0.2) & (b.scores > 0.2)
        assert np.abs(a.keypoints - b.keypoints)[found].max() < 0.1


@pytest.mark.parametrize("tflite, onnx", [(CPM, CPM_ONNX), (BLAZE_LITE, BLAZE_LITE_ONNX)])
def test_tflite_original_and_onnx_conversion_agree(models, coco, tflite, onnx):
    gt, images = coco
    for a, b in zip(_decode_all(models, tflite, images, gt), _decode_all(models, onnx, images, gt)):
        found = (a.scores > 0.2) & (b.scores > 0.2)
        assert np.abs(a.keypoints - b.keypoints)[found].max() < 0.1


@pytest.mark.arm64
def test_posenet_tflite_and_onnx_conversion_are_identical(models, shared_dir):
    image = cv2.imread(str(shared_dir / "data/coral/test_couple.jpg"))
    name = "posenet_mobilenet_v1_075_481_641_quant"
    with Estimator(models / f"posenet/{name}.tflite") as a, \
            Estimator(models / f"posenet/onnx_converted/{name}.onnx") as b:
        pa, pb = a(image), b(image)
    assert len(pa) == 2 and pa.boxes is None  # the couple, found bottom-up
    if platform.machine() in ("x86_64", "AMD64"):
        np.testing.assert_array_equal(pa.keypoints, pb.keypoints)
    else:  # aarch64: TFLite's and onnxruntime's int8 kernels round differently there
        np.testing.assert_allclose(pa.keypoints, pb.keypoints, atol=4.0)  # measured 2.1 px
    # both people lie inside the image
    assert (pa.keypoints[pa.scores > 0.5] >= 0).all()
    assert (pa.keypoints[pa.scores > 0.5] < [image.shape[1], image.shape[0]]).all()


def test_cpm_dark_beats_argmax_through_the_estimator(models, shared_dir, tmp_path):
    """DARK (the preset) against argmax (a card written into a copy of the file)
    on the AIC ground truth, through the whole pipeline."""
    from edgepose import presets
    from edgepose.card import read_card, write_card

    card = presets.preset_card("cpm-aic14")
    argmax_card = edgepose.ModelCard.from_dict(
        {**card.to_dict(), "name": "cpm-argmax", "head_params": dict(card.head_params, refine="none")})
    argmax_file = write_card(models / CPM, tmp_path / "cpm_argmax.tflite", argmax_card)
    assert read_card(argmax_file) == argmax_card

    with open(shared_dir / "data/aic/test_aic.json") as f:
        data = json.load(f)
    errors, missed = {}, {}
    for name, path in (("dark", models / CPM), ("none", argmax_file)):
        dist, missed[name] = [], 0
        with Estimator(path) as est:
            assert est.card.head_params["refine"] == name
            for img in data["images"]:
                image = cv2.imread(str(shared_dir / "data/aic" / img["file_name"]))
                anns = [a for a in data["annotations"] if a["image_id"] == img["id"]]
                boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                                   a["bbox"][1] + a["bbox"][3]] for a in anns], np.float32)
                poses = est(image, boxes=boxes)
                for a, kp in zip(anns, poses.keypoints):
                    g = np.array(a["keypoints"], np.float32).reshape(-1, 3)
                    vis = g[:, 2] > 0
                    found = np.isfinite(kp).all(axis=1)  # not found: NaN
                    missed[name] += int((vis & ~found).sum())
                    dist.append(np.linalg.norm(kp[vis & found] - g[vis & found, :2], axis=1))
        errors[name] = float(np.concatenate(dist).mean())
    assert errors["dark"] < errors["none"] < 90, errors
    assert missed["dark"] == missed["none"], missed  # refinement never changes what is found


def test_blazepose_converts_to_coco17(models, coco):
    gt, images = coco
    image_id, image = next(iter(images.items()))
    with Estimator(models / BLAZE_LITE, keypoint_set="coco17") as est:
        poses = est(image, boxes=_gt_boxes(gt, image_id))
    assert poses.keypoint_set.name == "coco17" and poses.keypoints.shape[1:] == (17, 2)


def test_whole_frame_when_there_is_no_detector(models, coco):
    gt, images = coco
    image = images[785]  # one person
    with Estimator(models / MOVENET) as est:
        poses = est(image)
    assert len(poses) == 1
    box = _gt_boxes(gt, 785)[0]
    inside = (poses.keypoints[0] >= box[:2] - 20) & (poses.keypoints[0] <= box[2:] + 20)
    assert inside.all(axis=1).mean() > 0.8


# --- bad input ---------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Estimator(tmp_path / "nope.onnx")


def test_file_that_is_not_a_model(tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is not a model")
    with pytest.raises(ValueError, match="could not be loaded"):
        Estimator(bad)


def test_truncated_model(models, tmp_path):
    data = (models / MOVENET).read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="could not be loaded"):
        Estimator(cut)


def test_unknown_model_without_card(models, tmp_path):
    pytest.importorskip("onnx")
    import onnx

    model = onnx.load(str(models / CPM_ONNX))
    model.producer_version = "edited"  # a different file: no known sha256
    path = tmp_path / "mine.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ValueError, match="carries no edgepose model card.*preset="):
        Estimator(path)
    with Estimator(path, preset="cpm-aic14") as est:
        assert est.card.name == "cpm-aic14"


def test_detector_given_as_pose_model(models):
    with pytest.raises(ValueError, match="is a person detector"):
        Estimator(models / YOLOX)


@pytest.fixture(scope="module")
def movenet(models):
    with Estimator(models / MOVENET) as est:
        yield est


@pytest.mark.parametrize("image, error, message", [
    (np.zeros((64, 64, 3), np.float32), TypeError, "must have dtype uint8"),
    (np.zeros((64, 64), np.uint8), ValueError, "grayscale.*COLOR_GRAY2BGR"),
    (np.zeros((64, 64, 4), np.uint8), ValueError, "alpha.*COLOR_BGRA2BGR"),
    (np.zeros((2, 64, 64, 3), np.uint8), ValueError, r"shape \(H, W, 3\)"),
    (np.zeros((0, 64, 3), np.uint8), ValueError, "must not be empty"),
    ([[0, 0, 0]], TypeError, "must be a NumPy array"),
])
def test_bad_images(movenet, image, error, message):
    with pytest.raises(error, match=message):
        movenet(image)


@pytest.mark.parametrize("boxes, message", [
    ([[10, 10, 10, 50]], "zero or negative size"),
    ([[10, 10, 5, 50]], "zero or negative size"),
    ([[0, 0, np.nan, 5]], "finite"),
    ([[1, 2, 3]], r"shape \(N, 4\)"),
])
def test_bad_boxes(movenet, boxes, message):
    with pytest.raises(ValueError, match=message):
        movenet(np.zeros((64, 64, 3), np.uint8), boxes=boxes)


def test_no_boxes_gives_an_empty_result(movenet):
    poses = movenet(np.zeros((64, 64, 3), np.uint8), boxes=np.zeros((0, 4)))
    assert len(poses) == 0 and poses.keypoints.shape == (0, 17, 2)


def test_closed_estimator_refuses_to_run(models):
    est = Estimator(models / MOVENET)
    est.close()
    est.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        est(np.zeros((64, 64, 3), np.uint8))


def test_missing_opencv_is_reported_at_construction(models, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match=r"edgepose\[vision\]"):
        Estimator(models / MOVENET)


def test_stage_timings_travel_on_each_result(models, coco):
    gt, images = coco
    image = images[785]
    with Estimator(models / MOVENET, detector=models / YOLOX) as est:
        with pytest.warns(DeprecationWarning, match="result.timings_ms"):
            assert est.last_timings == {}
        poses = est(image)
        t = poses.timings_ms
        with pytest.warns(DeprecationWarning, match="last_timings is deprecated"):
            assert est.last_timings == dict(t)   # the alias reads the last result's
    assert set(t) == {"detect", "preprocess", "inference", "decode", "total"}
    assert all(v >= 0 for v in t.values()) and t["detect"] > 0 and t["inference"] > 0
    assert t["total"] >= sum(v for k, v in t.items() if k != "total") * 0.99
    with pytest.raises(TypeError):
        t["total"] = 0.0                          # read-only
    assert poses[0].timings_ms == t               # selections keep them


def test_two_threads_get_their_own_timings(models, coco):
    """One Estimator, two threads: each result carries its own call's stages;
    a slow detector on one thread shows only in that thread's results."""
    import threading
    import time

    gt, images = coco
    image = images[785]
    boxes = _gt_boxes(gt, 785)

    def slow_detector(frame):
        time.sleep(0.05)
        return boxes

    with Estimator(models / MOVENET, detector=slow_detector) as est:
        out: dict[str, list] = {"detector": [], "boxes": []}

        def work(kind):
            for _ in range(4):
                r = est(image) if kind == "detector" else est(image, boxes=boxes)
                out[kind].append(r.timings_ms)

        threads = [threading.Thread(target=work, args=(k,)) for k in out]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    for kind, timings in out.items():
        assert len(timings) == 4
        for t in timings:
            assert set(t) == {"detect", "preprocess", "inference", "decode", "total"}
            assert t["total"] >= sum(v for k, v in t.items() if k != "total") * 0.99
            if kind == "detector":
                assert t["detect"] >= 45.0
            else:
                assert t["detect"] == 0.0 and t["total"] > 0


TFPOSE = "openpose_paf/tfpose_mobilenet_v2_small.onnx"


def test_tfpose_finds_the_crowd(models, shared_dir):
    data = json.loads((shared_dir / "data/crowdpose/test_crowdpose.json").read_text())
    missing = 0
    with Estimator(models / TFPOSE) as est:
        for img in data["images"]:
            image = cv2.imread(str(shared_dir / "data/crowdpose" / img["file_name"]))
            people = [a for a in data["annotations"] if a["image_id"] == img["id"]]
            poses = est(image)
            assert len(poses) >= min(2, len(people))
            ok = poses.scores > 0
            assert (poses.keypoints[ok] >= -1).all()
            assert (poses.keypoints[ok] <= [image.shape[1], image.shape[0]]).all()
            # a part not assembled into a person is not found: NaN, score 0
            np.testing.assert_array_equal(np.isnan(poses.keypoints).any(axis=-1), ~ok)
            np.testing.assert_array_equal(np.isnan(poses.keypoints).all(axis=-1), ~ok)
            missing += int((~ok).sum())
    assert missing > 0


def test_tfpose_onnxruntime_and_openvino_agree(models, coco):
    _, images = coco
    for image in images.values():
        with Estimator(models / TFPOSE) as a, Estimator(models / TFPOSE, backend="openvino") as b:
            pa, pb = a(image), b(image)
        assert len(pa) == len(pb)
        both = (pa.scores > 0) & (pb.scores > 0)
        assert np.abs(pa.keypoints - pb.keypoints)[both].max() < 0.1


# --- top-down boxes are streamed in chunks of the model's batch size ---------------------


def _one_big_batch(est: Estimator, image, boxes):
    """The top-down path as it was before streaming, from the public pieces: every
    crop at once, one run (the model splits it into its batch size), one decode."""
    from edgepose.estimator import _person_scores
    from edgepose.heads import decode_head
    from edgepose.transforms import (apply_affine, boxes_to_center_scale, crop_matrices,
                                     invert_affine, warp_crops)

    model, card = est._pose, est.card
    h, w = model.input_hw
    centers, sizes = boxes_to_center_scale(boxes, w / h, est.padding)
    matrices = crop_matrices(centers, sizes, (h, w))
    crops = warp_crops(image, matrices, (h, w), pad_value=card.input.pad_value)
    outputs = model.run(model.preprocess(crops))
    kp, sc = decode_head(card.head, outputs, card.head_params, (h, w))
    return apply_affine(kp, invert_affine(matrices)), sc, _person_scores(sc, None)


def _random_boxes(image, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    xy = rng.uniform(-20, [w * 0.8, h * 0.8], (n, 2))
    wh = rng.uniform(30, 250, (n, 2))
    return np.hstack([xy, xy + wh]).astype(np.float32)


def _batch_sizes(est: Estimator, monkeypatch) -> list[int]:
    sizes: list[int] = []
    backend = est._pose.backend
    real = backend.run
    monkeypatch.setattr(backend, "run",
                        lambda feed: sizes.append(len(next(iter(feed.values())))) or real(feed))
    return sizes


@pytest.mark.parametrize("model", [MOVENET, CPM_ONNX])
def test_streamed_boxes_give_what_one_big_batch_gave(models, coco, model, monkeypatch):
    gt, images = coco
    with Estimator(models / model) as est:
        sizes = _batch_sizes(est, monkeypatch)
        for image_id, image in images.items():
            for boxes in (_gt_boxes(gt, image_id), _random_boxes(image, 11, seed=image_id)):
                if not len(boxes):
                    continue
                got = est(image, boxes=boxes)
                kp, sc, person = _one_big_batch(est, image, boxes)
                np.testing.assert_array_equal(got.keypoints, kp)
                np.testing.assert_array_equal(got.scores, sc)
                np.testing.assert_array_equal(got.person_scores, person)
                np.testing.assert_array_equal(got.boxes, boxes)
    assert set(sizes) == {1}  # these files have a fixed batch of 1


@pytest.fixture(scope="module")
def cpm_dynamic_batch(models, tmp_path_factory):
    """The real CPM ONNX with its batch dimension made dynamic (CPM computes each
    image alone: a batch of 5 gives bit for bit the five single runs)."""
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(models / CPM_ONNX))
    for value in list(model.graph.input) + list(model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    path = tmp_path_factory.mktemp("dynamic") / "cpm_dynamic.onnx"
    onnx.save(model, str(path))
    return path


def test_a_dynamic_batch_model_runs_chunks_of_eight(cpm_dynamic_batch, coco, monkeypatch):
    from edgepose import estimator

    _, images = coco
    image = next(iter(images.values()))
    boxes = _random_boxes(image, 21, seed=7)
    with Estimator(cpm_dynamic_batch, preset="cpm-aic14") as est:
        assert est._pose.max_batch is None
        sizes = _batch_sizes(est, monkeypatch)
        streamed = est(image, boxes=boxes)
        assert sizes == [8, 8, 5] and estimator.DYNAMIC_BATCH_CHUNK == 8
        assert set(streamed.timings_ms) >= {"preprocess", "inference", "decode", "total"}
        sizes.clear()
        monkeypatch.setattr(estimator, "DYNAMIC_BATCH_CHUNK", 1000)
        whole = est(image, boxes=boxes)
        assert sizes == [21]
        kp, sc, _ = _one_big_batch(est, image, boxes)
    for result in (streamed, whole):
        np.testing.assert_array_equal(result.keypoints, kp)
        np.testing.assert_array_equal(result.scores, sc)


def _peak_bytes(est: Estimator, image, boxes) -> int:
    import tracemalloc

    est(image, boxes=boxes[:2])  # warm up: lazy allocations of the runtime
    tracemalloc.start()
    try:
        est(image, boxes=boxes)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_does_not_grow_with_the_number_of_boxes(models, coco):
    """Before streaming, every crop (192 x 192 x 3 bytes for MoveNet) of every box
    was held at once: 200 boxes peaked at ~45 MB more than 20 (measured 89 MB at
    400). Streamed, the difference is the results (~150 bytes a box)."""
    _, images = coco
    image = next(iter(images.values()))
    boxes = _random_boxes(image, 200, seed=3)
    with Estimator(models / MOVENET) as est:
        h, w = est._pose.input_hw
        crop_bytes = h * w * 3
        small, large = _peak_bytes(est, image, boxes[:20]), _peak_bytes(est, image, boxes)
    assert large - small < 0.05 * crop_bytes * (200 - 20)  # < 1 MB; before: > 20 MB
    assert large < 20 * crop_bytes


# -- detector= as a ready callable, and runtime= ---------------------------------


def test_a_callable_detector_is_used_as_given_boxes(models, coco):
    """A lambda returning fixed boxes gives what boxes= gives; (boxes, scores)
    and an object with .boxes/.scores rescale the person scores by the scores."""
    from types import SimpleNamespace

    gt, images = coco
    image, boxes = images[785], _gt_boxes(gt, 785)
    scores = np.linspace(0.5, 1.0, len(boxes), dtype=np.float32)
    with Estimator(models / MOVENET) as plain:
        reference = plain(image, boxes=boxes)
    with Estimator(models / MOVENET, detector=lambda frame: boxes.tolist()) as est:
        got = est(image)
    np.testing.assert_array_equal(got.keypoints, reference.keypoints)
    np.testing.assert_array_equal(got.person_scores, reference.person_scores)
    assert got.timings_ms["detect"] > 0
    for returned in ((boxes, scores), SimpleNamespace(boxes=boxes, scores=scores)):
        with Estimator(models / MOVENET, detector=lambda frame, r=returned: r) as est:
            got = est(image)
        np.testing.assert_array_equal(got.keypoints, reference.keypoints)
        np.testing.assert_allclose(got.person_scores, reference.person_scores * scores,
                                   rtol=1e-6)
    with Estimator(models / MOVENET, detector=lambda frame: np.zeros((0, 4))) as est:
        assert len(est(image)) == 0


@pytest.mark.parametrize("returned, message", [
    ("boxes", r"returned a str; a detector callable must return \(M, 4\) xyxy boxes"),
    (np.zeros((2, 3)), r"returned an array of shape \(2, 3\)"),
    ([1, 2, 3, 4, 5], r"returned a list of shape \(5,\)"),
    (None, "returned a NoneType"),
    (object(), "returned a object"),
    ((np.ones((2, 4)), np.ones(3)), r"returned 2 boxes and scores of shape \(3,\)"),
    ([[5, 5, 1, 9]], "box 0 has zero or negative size"),
])
def test_a_callable_detector_that_returns_something_else(models, returned, message):
    with Estimator(models / MOVENET, detector=lambda frame: returned) as est:
        with pytest.raises(ValueError, match=message):
            est(np.zeros((64, 64, 3), np.uint8))


def test_a_given_person_detector_is_not_closed(models, coco):
    from edgepose.detectors import PersonDetector

    gt, images = coco
    image = images[785]
    detector = PersonDetector.from_file(models / YOLOX)
    try:
        with Estimator(models / MOVENET, detector=models / YOLOX) as own:
            reference = own(image)
        with Estimator(models / MOVENET, detector=detector) as est:
            got = est(image)
        np.testing.assert_array_equal(got.keypoints, reference.keypoints)
        assert len(detector(image)) == len(got)   # still open after the Estimator closed
    finally:
        detector.close()
    with pytest.raises(TypeError, match="detector must be a detector file or name"):
        Estimator(models / MOVENET, detector=3)


def test_runtime_reaches_the_pose_model_and_the_detector(models, coco):
    from edgepose import RuntimeOptions

    gt, images = coco
    image = images[785]
    ov = RuntimeOptions(backend="openvino", threads=1)
    with Estimator(models / MOVENET_ONNX, detector=models / YOLOX, runtime=ov) as est:
        assert est.runtime is ov
        assert type(est._pose.backend).__name__ == "OpenVINOBackend"
        assert type(est._detector._backend).__name__ == "OpenVINOBackend"
        on_ov = est(image)
        ov_boxes = est._detector(image).boxes
    with Estimator(models / MOVENET_ONNX, detector=models / YOLOX, runtime=ov,
                   detector_runtime=RuntimeOptions(threads=1)) as est:
        assert type(est._pose.backend).__name__ == "OpenVINOBackend"
        assert type(est._detector._backend).__name__ == "OnnxRuntimeBackend"
    with Estimator(models / MOVENET_ONNX, detector=models / YOLOX, threads=1) as est:
        on_ort = est(image)                        # the shortcuts: both on onnxruntime
        assert type(est._detector._backend).__name__ == "OnnxRuntimeBackend"
        ort_boxes = est._detector(image).boxes
    # the float detector agrees to a fraction of a pixel; the int8 pose model
    # to a few of its quantisation steps (1.7 px here; median 3.4 px measured
    # with OpenVINO 2026.4 against onnxruntime 1.32 on x86-64)
    assert len(on_ov) == len(on_ort) > 0
    np.testing.assert_allclose(ov_boxes, ort_boxes, atol=0.5)
    found = (on_ov.scores > 0.3) & (on_ort.scores > 0.3)
    assert np.median(np.abs(on_ov.keypoints - on_ort.keypoints)[found]) < 5.0


def test_runtime_and_its_shortcuts_are_not_both_given(models):
    from edgepose import RuntimeOptions

    with pytest.raises(ValueError, match=r"not both: got runtime= and backend="):
        Estimator(models / MOVENET, runtime=RuntimeOptions(), backend="tflite")
    with pytest.raises(ValueError, match="detector_runtime applies to a detector built from a "
                                         "file; the detector given is None"):
        Estimator(models / MOVENET, detector_runtime=RuntimeOptions())


@pytest.mark.parametrize("timings, message", [
    ([("total", 1.0)], "timings_ms must be a mapping of stage name -> milliseconds, got list"),
    ({"total": -1.0}, r"finite milliseconds >= 0, got 'total': -1.0"),
    ({"total": float("nan")}, "finite milliseconds >= 0"),
    ({1: 2.0}, "finite milliseconds >= 0, got 1: 2.0"),
])
def test_result_timings_are_checked(timings, message):
    from edgepose.keypoints import COCO17

    with pytest.raises(ValueError, match=message):
        edgepose.PoseResult(
            np.zeros((0, 17, 2)), np.zeros((0, 17)), COCO17, timings_ms=timings)
    ok = edgepose.PoseResult(np.zeros((0, 17, 2)), np.zeros((0, 17)), COCO17,
                             timings_ms={"total": np.float32(2)})
    assert dict(ok.timings_ms) == {"total": 2.0}
    import dataclasses

    field = {f.name: f for f in dataclasses.fields(edgepose.PoseResult)}["timings_ms"]
    assert field.compare is False                 # timings take no part in ==
