"""YOLO-pose end to end: ``Estimator(path)`` on Ultralytics' exports with no
other argument, against an independent NumPy reference of Ultralytics'
predict pipeline and against the COCO ground truth.

The YOLO11n-pose files are AGPL-3.0 test fixtures read in place from the
shared folder; nothing derived from them is written outside tmp_path.
"""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from edgepose import Estimator
from edgepose._timing import Stopwatch
from edgepose.card import ModelCard
from edgepose.geometry import letterbox, letterbox_size
from edgepose.heads import params_from_dict
from edgepose.heads._one_stage import OneStageOptions
from edgepose.heads.yolo_pose import YoloPoseParams, run_yolo_pose
from edgepose.keypoints import COCO17, get_keypoint_set

cv2 = pytest.importorskip("cv2")

STATIC, DYNAMIC, TFLITE = "yolo11n-pose.onnx", "yolo11n-pose-dynamic.onnx", "yolo11n-pose.tflite"
# OKS AP on data/coco through edgepose (score threshold 0.001), measured on
# x86-64: static ONNX 0.682 (TFLite and OpenVINO identical), dynamic ONNX
# 0.698. Floors: measured - 0.04 (float models).
AP_FLOOR = {STATIC: 0.64, DYNAMIC: 0.65, TFLITE: 0.64}


@pytest.fixture(scope="module")
def yolo_dir(models):
    folder = models / "yolo_pose"
    for name in (STATIC, DYNAMIC, TFLITE):
        if not (folder / name).is_file():
            pytest.fail(f"The YOLO11n-pose fixture {folder / name} is missing.")
    return folder


@pytest.fixture(scope="module")
def coco_images(shared_dir):
    folder = shared_dir / "data/coco"
    return {p.name: cv2.imread(str(p)) for p in sorted(folder.glob("*.jpg"))}


# --- an independent reference of Ultralytics' predict (written from its documented
# semantics: LetterBox, conf > threshold, torchvision-style NMS, scale_boxes) ---------

def _reference_letterbox(img, new_hw, auto=False, stride=32):
    h, w = img.shape[:2]
    r = min(new_hw[0] / h, new_hw[1] / w)
    nw, nh = round(w * r), round(h * r)
    dw, dh = new_hw[1] - nw, new_hw[0] - nh
    if auto:  # the smallest canvas: pad only to a multiple of the stride
        dw, dh = dw % stride, dh % stride
    dw, dh = dw / 2, dh / 2
    if (w, h) != (nw, nh):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    return cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT,
                              value=(114, 114, 114))


def _reference_nms(boxes, scores, threshold):
    order = np.argsort(-scores, kind="stable")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        lt = np.maximum(boxes[i, :2], boxes[rest, :2])
        rb = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
        order = rest[inter / (area[i] + area[rest] - inter) <= threshold]
    return np.array(keep, dtype=int)


def reference_predict(session, img, new_hw=(640, 640), auto=False, conf=0.25, iou=0.7,
                      max_det=300):
    canvas = _reference_letterbox(img, new_hw, auto)
    x = np.ascontiguousarray(canvas[..., ::-1].transpose(2, 0, 1))[None].astype(np.float32)
    out = session.run(None, {session.get_inputs()[0].name: x / 255})[0][0].T.astype(np.float64)
    s = out[:, 4]
    idx = np.flatnonzero(s > conf)
    idx = idx[np.argsort(-s[idx], kind="stable")][:30000]
    cx, cy, w, h = out[idx, :4].T
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    k = _reference_nms(boxes, s[idx], iou)[:max_det]
    boxes, scores, kp = boxes[k], s[idx][k], out[idx][k, 5:].reshape(-1, 17, 3)
    ih, iw = img.shape[:2]
    ch, cw = canvas.shape[:2]
    gain = min(ch / ih, cw / iw)
    px, py = round((cw - iw * gain) / 2 - 0.1), round((ch - ih * gain) / 2 - 0.1)
    boxes = (boxes - [px, py, px, py]) / gain
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, iw)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, ih)
    xy = (kp[..., :2] - [px, py]) / gain
    xy[..., 0] = xy[..., 0].clip(0, iw)
    xy[..., 1] = xy[..., 1].clip(0, ih)
    return boxes, scores, xy, kp[..., 2], canvas.shape[:2]


@pytest.fixture(scope="module")
def estimators(yolo_dir):
    made = {name: Estimator(yolo_dir / name) for name in (STATIC, DYNAMIC, TFLITE)}
    yield made
    for est in made.values():
        est.close()


def _fed_shapes(est, monkeypatch):
    """Records the shape of every tensor the Estimator's backend is fed."""
    shapes = []
    backend = est._pose.backend
    run = backend.run

    def recording(feeds):
        shapes.extend(np.shape(v) for v in feeds.values())
        return run(feeds)

    monkeypatch.setattr(backend, "run", recording)
    return shapes


# --- the card the metadata gives, through the Estimator ----------------------------

@pytest.mark.parametrize("name", [STATIC, DYNAMIC, TFLITE])
def test_estimator_needs_no_arguments(estimators, name):
    est = estimators[name]
    card = est.card
    assert (card.task, card.head, card.keypoints) == ("onestage", "yolo_pose", "coco17")
    assert card.provenance["card"] == "from Ultralytics metadata"
    assert card.params.normalized is (name == TFLITE)
    assert est._pose.dynamic_input is (name == DYNAMIC)


@pytest.mark.parametrize("name, auto", [(STATIC, False), (DYNAMIC, True)])
def test_matches_the_reference_pipeline(estimators, yolo_dir, coco_images, monkeypatch, name,
                                        auto):
    """Where the image needs no resampling (COCO's 640-wide photos) edgepose's
    letterbox equals Ultralytics' pixel for pixel, so the people are the same
    to float rounding; the 500x333 photo is upscaled 1.28x, where the two
    resamplings differ (boxes within 2 px)."""
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(yolo_dir / name), providers=["CPUExecutionProvider"])
    est = estimators[name]
    shapes = _fed_shapes(est, monkeypatch)
    for file, img in coco_images.items():
        boxes, scores, xy, vis, canvas_hw = reference_predict(session, img, auto=auto)
        result = est(img)
        assert shapes[-1] == (1, 3, *canvas_hw), file
        assert len(result) == len(boxes), file
        if img.shape[1] == 640:
            np.testing.assert_allclose(result.boxes, boxes, atol=1e-3, err_msg=file)
            np.testing.assert_allclose(result.keypoints, xy, atol=1e-3, err_msg=file)
            np.testing.assert_allclose(result.person_scores, scores, atol=1e-6, err_msg=file)
            np.testing.assert_allclose(result.scores, vis, atol=1e-6, err_msg=file)
        else:
            np.testing.assert_allclose(result.boxes, boxes, atol=2.0, err_msg=file)
            visible = vis > 0.5
            err = np.linalg.norm(result.keypoints - xy, axis=-1)[visible]
            assert np.median(err) < 1.5, file


def test_letterbox_matches_ultralytics_when_no_resampling(coco_images):
    img = coco_images["000000000785.jpg"]  # 425 x 640
    for size in ((640, 640), letterbox_size(img.shape[:2], 640, 32)):
        ours, scale, _ = letterbox(img, size, pad_value=114, align="center")
        theirs = _reference_letterbox(img, size)
        assert scale == 1.0 and ours.shape == theirs.shape
        np.testing.assert_array_equal(ours, theirs)


def test_letterbox_pads_differ_after_rounding():
    """Ultralytics places the image at round(dh - 0.1), edgepose at floor(dh):
    they differ by a pixel when the fractional part of the half-padding is
    above 0.6; the image itself is scaled by round(h * r) / h in Ultralytics,
    by exactly r in edgepose."""
    img = np.zeros((333, 500, 3), np.uint8)
    _, scale, (pad_x, pad_y) = letterbox(img, (640, 640), align="center")
    theirs = _reference_letterbox(img, (640, 640))
    theirs_top = int(np.argmax(theirs[:, 320, 0] != 114))
    assert scale == pytest.approx(1.28)
    assert (pad_x, pad_y) == (0.0, 106.0)  # floor((640 - 426.24) / 2)
    assert theirs_top == 107  # round(214 / 2 - 0.1)


# --- accuracy ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def ap(yolo_dir, shared_dir):
    from edgepose.evaluation import evaluate_model

    folder = shared_dir / "data/coco"
    found = {}
    for name in (STATIC, DYNAMIC, TFLITE):
        report = evaluate_model(yolo_dir / name, folder / "test_coco.json", folder)
        found[name] = report.coco["AP"]
    report = evaluate_model(yolo_dir / STATIC, folder / "test_coco.json", folder,
                            runtime=_openvino_runtime())
    found["openvino"] = report.coco["AP"]
    return found


def _openvino_runtime():
    pytest.importorskip("openvino")
    from edgepose.runtime import RuntimeOptions

    return RuntimeOptions(backend="openvino")


@pytest.mark.parametrize("name", [STATIC, DYNAMIC, TFLITE])
def test_oks_ap_on_coco(ap, name):
    assert ap[name] >= AP_FLOOR[name], ap


def test_tflite_and_openvino_ap_within_001_of_onnx(ap):
    assert abs(ap[TFLITE] - ap[STATIC]) <= 0.01, ap
    assert abs(ap["openvino"] - ap[STATIC]) <= 0.01, ap


def test_evaluation_uses_a_low_score_threshold(yolo_dir):
    from edgepose.evaluation.runner import ONE_STAGE_EVAL_SCORE_THRESHOLD, eval_estimator

    with eval_estimator(yolo_dir / STATIC) as est:
        assert est._one_stage.score_threshold == ONE_STAGE_EVAL_SCORE_THRESHOLD == 0.001
    with eval_estimator(yolo_dir / STATIC, score_threshold=0.5) as est:
        assert est._one_stage.score_threshold == 0.5


def test_evaluation_refuses_a_score_threshold_for_other_models(models, shared_dir):
    from edgepose.evaluation import evaluate_model
    from edgepose.evaluation.runner import eval_estimator

    movenet = models / "movenet/movenet_singlepose_lightning_int8_4.tflite"
    with pytest.raises(ValueError, match="score_threshold applies to one-stage models"):
        eval_estimator(movenet, score_threshold=0.1)
    with pytest.raises(ValueError, match="score_threshold= and runtime= build an Estimator for a model "):
        evaluate_model(lambda image: None, shared_dir / "data/coco/test_coco.json",
                       shared_dir / "data/coco", score_threshold=0.1)


# --- the dynamic file ---------------------------------------------------------------

def test_dynamic_file_gets_the_smallest_letterbox(estimators, coco_images, monkeypatch):
    """A landscape photo (640x429) goes in as 640x448, not 640x640, and the
    people agree with the static file's."""
    img = coco_images["000000196141.jpg"]
    shapes = _fed_shapes(estimators[DYNAMIC], monkeypatch)
    dyn = estimators[DYNAMIC](img)
    static = estimators[STATIC](img)
    assert shapes == [(1, 3, 448, 640)]
    assert len(dyn) == len(static) > 0
    from edgepose.geometry import box_iou

    assert np.diag(box_iou(dyn.boxes, static.boxes)).min() > 0.9
    visible = (static.scores > 0.5) & (dyn.scores > 0.5)
    err = np.linalg.norm(dyn.keypoints - static.keypoints, axis=-1)[visible]
    assert np.median(err) < 3.0


def test_letterbox_size():
    assert letterbox_size((427, 640), 640, 32) == (448, 640)
    assert letterbox_size((480, 640), 640, 32) == (480, 640)
    assert letterbox_size((640, 427), 640, 32) == (640, 448)
    assert letterbox_size((1, 1000), 640, 32) == (32, 640)
    assert letterbox_size((1000, 1000), 320, 32) == (320, 320)
    with pytest.raises(ValueError, match="longer_side must be a positive multiple of 32, got 630"):
        letterbox_size((480, 640), 630, 32)
    with pytest.raises(ValueError, match=r"longer_side must be at most 4096 pixels"):
        letterbox_size((480, 640), 8192, 32)


# --- options ------------------------------------------------------------------------

def test_score_threshold_and_max_detections(yolo_dir, coco_images):
    img = coco_images["000000197388.jpg"]
    with Estimator(yolo_dir / STATIC) as est:
        default = est(img)
    assert len(default) >= 3 and (default.person_scores > 0.25).all()
    with Estimator(yolo_dir / STATIC, score_threshold=0.8) as est:
        high = est(img)
    kept = default.person_scores > 0.8
    assert 0 < len(high) < len(default)
    np.testing.assert_allclose(high.boxes, default.boxes[kept], atol=1e-4)
    with Estimator(yolo_dir / STATIC, max_detections=2) as est:
        two = est(img)
    np.testing.assert_allclose(two.boxes, default.boxes[:2], atol=1e-4)
    with Estimator(yolo_dir / STATIC, score_threshold=0.01) as est:
        low = est(img)
    assert len(low) > len(default)
    assert (np.diff(low.person_scores) <= 0).all()


def test_iou_threshold(yolo_dir, coco_images):
    img = coco_images["000000197388.jpg"]
    counts = []
    for iou in (0.3, 0.7, 1.0):
        with Estimator(yolo_dir / STATIC, iou_threshold=iou, score_threshold=0.05) as est:
            counts.append(len(est(img)))
    assert counts[0] <= counts[1] < counts[2]  # 1.0 keeps every candidate


def test_input_size(yolo_dir, coco_images, monkeypatch):
    img = coco_images["000000196141.jpg"]
    with Estimator(yolo_dir / DYNAMIC, input_size=320) as est:
        shapes = _fed_shapes(est, monkeypatch)
        result = est(img)
    assert shapes == [(1, 3, 224, 320)]
    assert len(result) > 0 and result.boxes[:, 2].max() <= img.shape[1]
    # Options that cannot fit the model fail when the Estimator is built.
    with pytest.raises(ValueError, match="input_size must be a multiple of 32"):
        Estimator(yolo_dir / DYNAMIC, input_size=330)
    with pytest.raises(ValueError, match=r"has a fixed input size 640x640 .* input_size "
                                         r"must be 640 or None"):
        Estimator(yolo_dir / STATIC, input_size=320)
    with Estimator(yolo_dir / STATIC, input_size=640) as est:
        assert len(est(img)) > 0


def test_detector_and_boxes_are_refused(yolo_dir, models, coco_images):
    with pytest.raises(ValueError, match="one-stage multi-person model: it finds every person "
                                         "itself and takes no detector"):
        Estimator(yolo_dir / STATIC, detector=lambda image: np.zeros((0, 4), np.float32))
    with Estimator(yolo_dir / STATIC) as est:
        with pytest.raises(ValueError, match="A one-stage model finds people itself: boxes= is "
                                             "not accepted"):
            est(coco_images["000000000785.jpg"], boxes=[[0, 0, 10, 10]])


# --- the result ---------------------------------------------------------------------

@pytest.mark.parametrize("name", [STATIC, TFLITE])
def test_result_in_image_pixels(estimators, coco_images, name):
    for file, img in coco_images.items():
        r = estimators[name](img)
        h, w = img.shape[:2]
        n = len(r)
        assert n > 0, file
        assert r.keypoints.shape == (n, 17, 2) and r.scores.shape == (n, 17)
        assert r.boxes.shape == (n, 4) and r.person_scores.shape == (n,)
        assert r.keypoint_set is COCO17
        assert (r.boxes[:, :2] >= 0).all() and (r.boxes[:, 2] <= w).all()
        assert (r.boxes[:, 3] <= h).all() and (r.boxes[:, 2:] > r.boxes[:, :2]).all()
        assert np.isfinite(r.keypoints).all()
        # Visible keypoints lie in their person's box (a little slack at the
        # edges; the network may place a wrist or foot just outside it).
        for box, kp, vis in zip(r.boxes, r.keypoints, r.scores):
            slack = 0.1 * (box[2:] - box[:2])
            inside = ((kp >= box[:2] - slack) & (kp <= box[2:] + slack)).all(axis=1)
            assert inside[vis > 0.5].mean() >= 0.9, file
        assert set(r.timings_ms) >= {"preprocess", "inference", "decode"}


# --- the runner on synthetic outputs ------------------------------------------------

def _card(k=17, **head_params):
    keypoints = "coco17" if k == 17 else f"keypoints{k}"
    return ModelCard(name="synthetic", task="onestage", head="yolo_pose", keypoints=keypoints,
                     input={"size": [64, 64], "std": [255, 255, 255], "resize": "letterbox",
                            "pad_value": 114},
                     head_params=head_params, outputs={"output": "out"})


def _fake_model(card, output, dynamic=False):
    return SimpleNamespace(card=card, name="synthetic.onnx", input_hw=tuple(card.input.size),
                           dynamic_input=dynamic, run=lambda tensor: {"output": output})


def _person(cx, cy, w, h, score, k, dims=3):
    kp = np.zeros((k, dims), np.float32)
    kp[:, 0] = np.linspace(cx - w / 3, cx + w / 3, k)
    kp[:, 1] = np.linspace(cy - h / 3, cy + h / 3, k)
    if dims == 3:
        kp[:, 2] = 0.9
    return np.concatenate([[cx, cy, w, h, score], kp.ravel()]).astype(np.float32)


def test_runner_maps_to_image_pixels_and_suppresses():
    """A 128x64 image letterboxed into 64x64 at scale 0.5, pad_y 16: two
    overlapping candidates become one person, mapped back exactly."""
    k = 5
    rows = np.stack([_person(32, 32, 20, 30, 0.9, k), _person(33, 32, 20, 30, 0.8, k),
                     _person(10, 40, 6, 8, 0.1, k)])
    card = _card(k)
    model = _fake_model(card, rows.T[None])
    image = np.zeros((64, 128, 3), np.uint8)
    result = run_yolo_pose(model, image, card.keypoint_set, Stopwatch(), OneStageOptions())
    assert len(result) == 1
    np.testing.assert_allclose(result.boxes[0], [44, 2, 84, 62], atol=1e-4)  # (x - 0, y - 16) * 2
    expected = (rows[0, 5:].reshape(k, 3)[:, :2] - [0, 16]) * 2
    np.testing.assert_allclose(result.keypoints[0], expected, atol=1e-4)
    np.testing.assert_allclose(result.scores[0], 0.9, atol=1e-6)
    assert result.keypoint_set is get_keypoint_set("keypoints5")


def test_runner_normalized_outputs():
    rows = np.stack([_person(32, 32, 20, 30, 0.9, 17)])
    scaled = rows.copy()
    scaled[:, [0, 2]] /= 64
    scaled[:, [1, 3]] /= 64
    scaled[:, 5::3] /= 64
    scaled[:, 6::3] /= 64
    image = np.zeros((64, 128, 3), np.uint8)
    pixels = run_yolo_pose(_fake_model(_card(), rows.T[None]), image, COCO17, Stopwatch(),
                           OneStageOptions())
    card = _card(normalized=True)
    normed = run_yolo_pose(_fake_model(card, scaled.T[None]), image, COCO17, Stopwatch(),
                           OneStageOptions())
    np.testing.assert_allclose(normed.boxes, pixels.boxes, atol=1e-3)
    np.testing.assert_allclose(normed.keypoints, pixels.keypoints, atol=1e-3)


def test_runner_end_to_end_refuses_iou_threshold():
    card = _card(format="end_to_end")
    row = np.concatenate([[10, 10, 30, 40, 0.9, 0], np.ones(51)]).astype(np.float32)
    model = _fake_model(card, row[None, None])
    image = np.zeros((64, 64, 3), np.uint8)
    result = run_yolo_pose(model, image, COCO17, Stopwatch(), OneStageOptions())
    np.testing.assert_allclose(result.boxes, [[10, 10, 30, 40]])
    with pytest.raises(ValueError, match="iou_threshold does not apply to synthetic.onnx: its "
                                         "graph already suppresses"):
        run_yolo_pose(model, image, COCO17, Stopwatch(), OneStageOptions(iou_threshold=0.5))


def test_runner_keeps_only_person_classes():
    # two classes; class 1 is the person
    a = _person(20, 20, 10, 10, 0.0, 17)
    rows = np.stack([np.insert(a, 4, 0.9), np.insert(_person(50, 50, 10, 10, 0.1, 17), 5, 0.95)])
    card = _card(num_classes=2, person_classes=[1])
    result = run_yolo_pose(_fake_model(card, rows.T[None]), np.zeros((64, 64, 3), np.uint8),
                           COCO17, Stopwatch(), OneStageOptions())
    assert len(result) == 1
    np.testing.assert_allclose(result.boxes, [[45, 45, 55, 55]])


# --- parameters ---------------------------------------------------------------------

def test_params_defaults():
    p = YoloPoseParams()
    assert (p.format, p.score_threshold, p.iou_threshold, p.max_detections, p.max_candidates,
            p.align, p.size_multiple, p.person_classes) == (
        "decoded", 0.25, 0.7, 300, 30000, "center", 32, (0,))


@pytest.mark.parametrize("data, message", [
    ({"format": "raw"}, r"head_params.format must be one of 'decoded', 'dfl', 'end_to_end', "
                        r"got 'raw'."),
    ({"keypoint_dims": 4}, r"head_params.keypoint_dims must be one of 2, 3, got 4."),
    ({"num_classes": 0}, r"head_params.num_classes must be an integer from 1 to 65536, got 0."),
    ({"person_classes": [1]}, r"head_params.person_classes must be class indices below "
                              r"num_classes \(1\), got \[1\]."),
    ({"person_classes": []}, r"head_params.person_classes must be a list of 1 to 65536"),
    ({"score_threshold": 1.0}, r"head_params.score_threshold must be a finite number in \[0, "
                               r"1\), got 1.0."),
    ({"iou_threshold": 0}, r"head_params.iou_threshold must be a finite number in \(0, 1\]"),
    ({"max_detections": 0}, r"head_params.max_detections must be an integer from 1 to 10000"),
    ({"max_candidates": 10**7}, r"head_params.max_candidates must be an integer from 1 to "
                                r"1000000"),
    ({"reg_max": 0}, r"head_params.reg_max must be an integer from 1 to 256, got 0."),
    ({"strides": [8, 8]}, r"head_params.strides must not repeat a value"),
    ({"channels_first": 1}, r"head_params.channels_first must be one of True, False, got 1."),
    ({"align": "left"}, r"head_params.align must be one of 'center', 'topleft', got 'left'."),
    ({"size_multiple": 0}, r"head_params.size_multiple must be an integer from 1 to 1024"),
    ({"iou": 0.5}, r"head_params has an unknown field 'iou'."),
])
def test_params_validation(data, message):
    with pytest.raises(ValueError, match=message):
        params_from_dict("yolo_pose", data)


def test_params_roles_follow_the_format():
    with pytest.raises(ValueError, match=r"outputs has an unknown role 'output' for this head. "
                                         r"Roles: box_class, keypoints."):
        ModelCard(name="x", task="onestage", head="yolo_pose", keypoints="coco17",
                  input={"size": [64, 64]}, head_params={"format": "dfl"},
                  outputs={"output": "out"})
    assert math.isclose(YoloPoseParams(format="dfl").reg_max, 16)


def _reference_dfl(box_class, kpts, input_hw, strides, reg_max, k):
    """Ultralytics' in-graph decode, written out per anchor: DFL expectation
    of the distances to the anchor point, then (cx, cy, w, h) * stride,
    sigmoid class scores, keypoints (raw * 2 + anchor - 0.5) * stride."""
    anchors = [(x + 0.5, y + 0.5, s) for s in strides
               for y in range(input_hw[0] // s) for x in range(input_hw[1] // s)]
    out = np.zeros((4 + box_class.shape[0] - 4 * reg_max + k * 3, len(anchors)))
    for a, (ax, ay, s) in enumerate(anchors):
        dist = []
        for side in range(4):
            logits = box_class[side * reg_max:(side + 1) * reg_max, a].astype(np.float64)
            p = np.exp(logits - logits.max())
            dist.append((p / p.sum()) @ np.arange(reg_max))
        left, top, right, bottom = dist
        x1, y1, x2, y2 = ax - left, ay - top, ax + right, ay + bottom
        out[:4, a] = np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]) * s
        out[4:4 + box_class.shape[0] - 4 * reg_max, a] = 1 / (1 + np.exp(-box_class[4 * reg_max:, a]))
        for j in range(k):
            rx, ry, rv = kpts[3 * j:3 * j + 3, a]
            out[4 + 1 + 3 * j:4 + 1 + 3 * j + 3, a] = [(rx * 2 + ax - 0.5) * s,
                                                       (ry * 2 + ay - 0.5) * s, 1 / (1 + np.exp(-rv))]
    return out.astype(np.float32)


def test_runner_dfl_format_equals_decoded():
    """A raw head (format "dfl", roles box_class and keypoints) gives the same
    people as the decoded tensor Ultralytics' graph would compute from it."""
    rng = np.random.default_rng(7)
    k, reg_max, hw = 17, 16, (64, 64)
    a = 8 * 8 + 4 * 4 + 2 * 2
    box_class = rng.normal(0, 2, (4 * reg_max + 1, a)).astype(np.float32)
    box_class[4 * reg_max] = rng.normal(-3, 3, a)  # a few confident people
    kpts = rng.normal(0, 1, (k * 3, a)).astype(np.float32)
    decoded = _reference_dfl(box_class, kpts, hw, (8, 16, 32), reg_max, k)
    image = np.zeros((64, 96, 3), np.uint8)
    card = _card()
    expected = run_yolo_pose(_fake_model(card, decoded[None]), image, COCO17, Stopwatch(),
                             OneStageOptions(score_threshold=0.3))
    dfl_card = ModelCard(name="synthetic", task="onestage", head="yolo_pose", keypoints="coco17",
                         input=card.input, head_params={"format": "dfl"},
                         outputs={"box_class": "bc", "keypoints": "kp"})
    model = SimpleNamespace(card=dfl_card, name="raw.onnx", input_hw=hw, dynamic_input=False,
                            run=lambda t: {"box_class": box_class[None], "keypoints": kpts[None]})
    result = run_yolo_pose(model, image, COCO17, Stopwatch(), OneStageOptions(score_threshold=0.3))
    assert len(expected) > 0
    np.testing.assert_allclose(result.boxes, expected.boxes, atol=1e-3)
    np.testing.assert_allclose(result.keypoints, expected.keypoints, atol=1e-3)
    np.testing.assert_allclose(result.person_scores, expected.person_scores, atol=1e-5)


def test_eval_command(yolo_dir, shared_dir, tmp_path, ap):
    """``edgepose eval yolo11n-pose.onnx`` with no other option: AP as
    evaluate_model gives it (score threshold 0.001); --score-threshold 0.9
    drops people and with them AP."""
    from edgepose.evaluation import main_eval

    folder = shared_dir / "data/coco"
    aps = []
    for extra in ([], ["--score-threshold", "0.9"]):
        out = tmp_path / f"eval{len(extra)}.json"
        rc = main_eval([str(yolo_dir / STATIC), "--annotations", str(folder / "test_coco.json"),
                        "--images", str(folder), "--json", str(out), "--quiet", *extra])
        assert rc == 0
        aps.append(json.loads(out.read_text())["coco"]["AP"])
    assert aps[0] == pytest.approx(ap[STATIC], abs=1e-9)
    assert aps[1] < aps[0]


def test_no_people(estimators):
    result = estimators[STATIC](np.full((120, 200, 3), 114, np.uint8))
    assert len(result) == 0
    assert result.keypoints.shape == (0, 17, 2) and result.scores.shape == (0, 17)
    assert result.boxes.shape == (0, 4) and result.person_scores.shape == (0,)
