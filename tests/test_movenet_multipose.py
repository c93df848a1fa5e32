"""MoveNet MultiPose (one-stage, decoding inside the graph): head parameters,
the runner's geometry against a NumPy reference, the real model on data/coco
against a plain pipeline written here without edgepose, and the TFLite
backend's dynamic input sizes."""
from __future__ import annotations

import contextlib
import io
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from edgepose import Estimator  # noqa: E402
from edgepose._timing import Stopwatch  # noqa: E402
from edgepose.backends.tflite import TFLiteBackend  # noqa: E402
from edgepose.card import ModelCard  # noqa: E402
from edgepose.heads import MoveNetMultiPoseParams, params_from_dict  # noqa: E402
from edgepose.heads._one_stage import OneStageOptions  # noqa: E402
from edgepose.heads.movenet_multipose import input_size_for, run_movenet_multipose  # noqa: E402
from edgepose.keypoints import get_keypoint_set  # noqa: E402
from edgepose.model import LoadedModel  # noqa: E402
from edgepose.presets import preset_card, recognise  # noqa: E402
from edgepose.results import coco_keypoints  # noqa: E402

MULTIPOSE = "movenet/movenet_multipose_lightning_fp16.tflite"
COCO17 = get_keypoint_set("coco17")
#: OKS AP of edgepose (and of the plain pipeline) on data/coco, measured on x86-64 (AVX2).
MEASURED_AP = 0.540
FLOAT_AP_MARGIN = 0.04


# --- head parameters -------------------------------------------------------------------

def test_params_defaults_and_validation():
    p = params_from_dict("movenet_multipose", {}, num_keypoints=17, roles=("people",))
    assert (p.size_multiple, p.score_threshold, p.max_detections) == (32, 0.1, 6)
    with pytest.raises(ValueError, match=r"head_params.score_threshold must be a number in "
                                         r"\[0, 1\), got 1.0"):
        MoveNetMultiPoseParams(score_threshold=1.0)
    with pytest.raises(ValueError, match=r"head_params.size_multiple must be an integer from 1 "
                                         r"to 1024, got 0"):
        MoveNetMultiPoseParams(size_multiple=0)
    with pytest.raises(ValueError, match=r"head_params.max_detections must be an integer"):
        MoveNetMultiPoseParams(max_detections=1.5)
    with pytest.raises(ValueError, match="unknown role 'keypoints'"):
        params_from_dict("movenet_multipose", {}, roles=("keypoints",))


def test_preset_is_recognised_by_sha256(models):
    assert recognise(models / MULTIPOSE) == "movenet-multipose"
    model = LoadedModel(models / MULTIPOSE)
    try:
        card = model.card
        assert (card.name, card.task, card.head, card.keypoints) == (
            "movenet-multipose", "onestage", "movenet_multipose", "coco17")
        assert card.finds_people and model.dynamic_input
        assert card.input.resize == "stretch" and card.input.size == (256, 256)
    finally:
        model.close()


@pytest.mark.parametrize("image_hw, longer, resize, expected", [
    ((427, 640), 256, "stretch", (160, 256)),      # 170.8 -> 160
    ((427, 640), 320, "stretch", (224, 320)),      # 213.5 -> 224
    ((640, 427), 256, "stretch", (256, 160)),
    ((10, 1000), 256, "stretch", (32, 256)),       # at least one multiple
    ((427, 640), 256, "letterbox", (192, 256)),    # 171 -> 192
    ((300, 300), 256, "letterbox", (256, 256)),
])
def test_input_size_for(image_hw, longer, resize, expected):
    assert input_size_for(image_hw, longer, 32, resize) == expected


# --- the runner on a backend with fixed outputs ---------------------------------------

TensorInfo = namedtuple("TensorInfo", "name shape dtype")


class FakeBackend:
    """A dynamic-input uint8 model whose one output is fixed; records the feeds."""

    def __init__(self, people: np.ndarray, input_shape=(1, None, None, 3)):
        self.inputs = (TensorInfo("serving_default_input:0", input_shape, np.uint8),)
        self.outputs = (TensorInfo("StatefulPartitionedCall:0", people.shape, np.float32),)
        self.people = people
        self.feeds = []

    def run(self, feeds):
        self.feeds.append({k: np.array(v) for k, v in feeds.items()})
        return {"StatefulPartitionedCall:0": self.people.copy()}

    def close(self):
        pass


def _fake_model(people, resize="stretch", input_shape=(1, None, None, 3), size=(256, 256)):
    data = preset_card("movenet-multipose").to_dict()
    data["input"] = dict(data["input"], resize=resize, size=list(size))
    return LoadedModel.from_backend(FakeBackend(people, input_shape), ModelCard.from_dict(data))


def _people(rng, n=6):
    people = np.zeros((1, n, 56), np.float32)
    people[0, :, :51] = rng.uniform(0.05, 0.95, (n, 51))
    ymin, xmin = rng.uniform(0, 0.4, n), rng.uniform(0, 0.4, n)
    people[0, :, 51:55] = np.stack([ymin, xmin, ymin + 0.5, xmin + 0.5], axis=1)
    people[0, :, 55] = [0.9, 0.05, 0.6, 0.1, 0.3, 0.0][:n]
    return people


def _reference(people, image_hw, input_hw, resize, threshold, limit):
    """The published output format mapped back by hand: coordinates normalised over the
    input; the image stretched to fill it, or scaled by min(h / H, w / W) and placed at its
    top-left corner."""
    h, w = image_hw
    rows = [p for p in people[0] if p[55] > threshold]
    rows = sorted(rows, key=lambda p: -p[55])[:limit]
    if resize == "stretch":
        fx, fy = w, h
    else:
        s = min(input_hw[0] / h, input_hw[1] / w)
        fx, fy = input_hw[1] / s, input_hw[0] / s
    kp = np.array([[[p[3 * j + 1] * fx, p[3 * j] * fy] for j in range(17)] for p in rows])
    sc = np.array([[p[3 * j + 2] for j in range(17)] for p in rows])
    boxes = np.array([[p[52] * fx, p[51] * fy, p[54] * fx, p[53] * fy] for p in rows])
    return kp.reshape(-1, 17, 2), sc.reshape(-1, 17), boxes.reshape(-1, 4), \
        np.array([p[55] for p in rows])


@pytest.mark.parametrize("resize, input_hw, content_rows",
                         [("stretch", (160, 256), 160), ("letterbox", (192, 256), 171)])
def test_runner_maps_people_to_image_pixels(resize, input_hw, content_rows):
    rng = np.random.default_rng(3)
    people = _people(rng)
    model = _fake_model(people, resize)
    image = rng.integers(1, 255, (427, 640, 3), dtype=np.uint8)
    result = run_movenet_multipose(model, image, COCO17, Stopwatch(), OneStageOptions())
    fed = model.backend.feeds[-1]["serving_default_input:0"]
    assert fed.shape == (1, *input_hw, 3) and fed.dtype == np.uint8
    # a letterbox pads the bottom rows with the card's pad value (0)
    assert fed[0, content_rows:].max(initial=0) == 0 and fed[0, content_rows - 1].max() > 0
    kp, sc, boxes, person = _reference(people, (427, 640), input_hw, resize, 0.1, 6)
    assert len(result) == 3                        # 0.9, 0.6, 0.3 (0.1 is not above 0.1)
    np.testing.assert_allclose(result.keypoints, kp, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(result.scores, sc.astype(np.float32))
    np.testing.assert_allclose(result.boxes, boxes, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(result.person_scores, person.astype(np.float32))


def test_runner_colours_and_stretch_match_opencv():
    people = _people(np.random.default_rng(0))
    model = _fake_model(people)
    image = np.random.default_rng(1).integers(0, 255, (100, 200, 3), dtype=np.uint8)
    run_movenet_multipose(model, image, COCO17, Stopwatch(), OneStageOptions())
    fed = model.backend.feeds[-1]["serving_default_input:0"][0]
    expected = cv2.resize(image, (256, 128), interpolation=cv2.INTER_LINEAR)[..., ::-1]
    np.testing.assert_array_equal(fed, expected)


def test_runner_options():
    people = _people(np.random.default_rng(4))
    model = _fake_model(people)
    image = np.zeros((300, 400, 3), np.uint8)

    def run(**kw):
        return run_movenet_multipose(model, image, COCO17, Stopwatch(), OneStageOptions(**kw))

    assert list(run(score_threshold=0.0).person_scores) == pytest.approx(
        [0.9, 0.6, 0.3, 0.1, 0.05])                # a score of 0 is "at most 0"
    assert list(run(score_threshold=0.0, max_detections=2).person_scores) == pytest.approx(
        [0.9, 0.6])
    assert len(run(score_threshold=0.95)) == 0
    run(input_size=320)
    assert model.backend.feeds[-1]["serving_default_input:0"].shape == (1, 256, 320, 3)  # 240
    with pytest.raises(ValueError, match=r"input_size must be a multiple of 32 for "
                                         r"movenet-multipose .*got 300. Use 288 or 320"):
        run(input_size=300)
    odd_card = _fake_model(people, size=(250, 250))
    with pytest.raises(ValueError, match=r"the longer side of the card's input size must be a "
                                         r"multiple of 32 .*got 250. Use 224 or 256"):
        run_movenet_multipose(odd_card, image, COCO17, Stopwatch(), OneStageOptions())
    with pytest.raises(ValueError, match="iou_threshold does not apply to movenet-multipose: "
                                         "the MoveNet MultiPose graph suppresses duplicate"):
        run(iou_threshold=0.5)
    with pytest.raises(ValueError, match=r"max_detections must be at most 6 for "
                                         r"movenet-multipose \(its graph returns 6 people\), "
                                         r"got 7"):
        run(max_detections=7)


def test_runner_keeps_low_keypoints_and_marks_only_non_finite_ones():
    people = _people(np.random.default_rng(5))
    people[0, 0, 2] = 0.0                          # keypoint 0 of the best person: score 0
    people[0, 0, 4] = np.nan                       # keypoint 1: x is NaN
    people[0, 2, 51] = np.inf                      # the 0.6 person's box is broken: dropped
    model = _fake_model(people)
    result = run_movenet_multipose(model, np.zeros((256, 256, 3), np.uint8), COCO17,
                                   Stopwatch(), OneStageOptions())
    assert list(result.person_scores) == pytest.approx([0.9, 0.3])
    assert np.isfinite(result.keypoints[0, 0]).all() and result.scores[0, 0] == 0.0
    assert np.isnan(result.keypoints[0, 1]).all()
    assert np.isfinite(result.keypoints[0, 2:]).all() and np.isfinite(result.boxes).all()


def test_runner_wrong_output_shape_and_fixed_input():
    model = _fake_model(np.zeros((1, 6, 40), np.float32))
    with pytest.raises(ValueError, match=r"'people' output must have shape \(1, P, 56\).*got "
                                         r"\(1, 6, 40\)"):
        run_movenet_multipose(model, np.zeros((64, 64, 3), np.uint8), COCO17, Stopwatch(),
                              OneStageOptions())
    fixed = _fake_model(_people(np.random.default_rng(6)), input_shape=(1, 192, 192, 3),
                        size=(192, 192))
    image = np.zeros((100, 300, 3), np.uint8)
    run_movenet_multipose(fixed, image, COCO17, Stopwatch(), OneStageOptions())
    assert fixed.backend.feeds[-1]["serving_default_input:0"].shape == (1, 192, 192, 3)
    with pytest.raises(ValueError, match=r"input_size applies to models with a dynamic input "
                                         r"size; movenet-multipose takes 192x192 only"):
        run_movenet_multipose(fixed, image, COCO17, Stopwatch(), OneStageOptions(input_size=256))


# --- the real model on data/coco ------------------------------------------------------

def _oks_ap(gt, results) -> float:
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(gt, gt.loadRes(results), "keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0])


def _plain_multipose(path):
    """The plain pipeline of the issue, with the runtime's own API and no edgepose: RGB,
    longer side 256, both sides rounded to multiples of 32, plain resize; the outputs'
    normalised (y, x) scaled by the image size."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    index = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]

    def run(bgr):
        h, w = bgr.shape[:2]
        s = 256 / max(h, w)
        size_h, size_w = (max(32, int(round(x * s / 32)) * 32) for x in (h, w))
        shrink = size_w <= w and size_h <= h
        x = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (size_w, size_h),
                       interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        interpreter.resize_tensor_input(index, [1, size_h, size_w, 3])
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, x[None])
        interpreter.invoke()
        people = interpreter.get_tensor(out)[0]
        people = people[people[:, 55] > 0.1]
        kp = people[:, :51].reshape(-1, 17, 3)
        return np.stack([kp[..., 1] * w, kp[..., 0] * h, kp[..., 2]], -1), people[:, 55]

    return run


def _results(gt, images, run):
    out = []
    for image_id, image in images.items():
        triples, person = run(image)
        out += [{"image_id": image_id, "category_id": 1, "keypoints": t.ravel().tolist(),
                 "score": float(s)} for t, s in zip(triples, person)]
    return out


def test_coco_ap_against_the_plain_pipeline_and_a_floor(models, coco):
    gt, images = coco
    with Estimator(models / MULTIPOSE) as est:
        def run(image):
            r = est(image)
            return coco_keypoints(r.keypoints, r.scores), r.person_scores
        ours = _oks_ap(gt, _results(gt, images, run))
        plain_run = _plain_multipose(models / MULTIPOSE)
        plain = _oks_ap(gt, _results(gt, images, plain_run))
        # the same people to a fraction of a pixel, on this CPU
        for image in images.values():
            mine, reference = run(image)[0], plain_run(image)[0]
            assert mine.shape == reference.shape
            np.testing.assert_allclose(mine, reference, atol=0.5)
    assert ours >= plain - 0.01
    assert ours >= MEASURED_AP - FLOAT_AP_MARGIN


def test_input_size_changes_the_fed_shape(models, coco):
    _, images = coco
    image = next(iter(images.values()))
    h, w = image.shape[:2]
    shapes = []
    with Estimator(models / MULTIPOSE, input_size=320) as est:
        backend = est._pose.backend
        original = backend.run

        def spy(feeds):
            shapes.append(next(iter(feeds.values())).shape)
            return original(feeds)

        backend.run = spy
        result = est(image)
    s = 320 / max(h, w)
    assert shapes == [(1, round(h * s / 32) * 32 if h < w else 320,
                       320 if w >= h else round(w * s / 32) * 32, 3)]
    assert len(result) >= 1 and result.boxes.shape == (len(result), 4)
    with pytest.raises(ValueError, match="input_size must be a multiple of 32"):
        with Estimator(models / MULTIPOSE, input_size=250) as est:
            est(image)


def test_letterbox_card_runs_the_real_model(models, coco):
    gt, images = coco
    with Estimator(models / MULTIPOSE) as stretched:
        data = stretched.card.to_dict()
    data["input"]["resize"] = "letterbox"
    model = LoadedModel.from_backend(TFLiteBackend(models / MULTIPOSE), ModelCard.from_dict(data))
    try:
        def run(image):
            r = run_movenet_multipose(model, image, COCO17, Stopwatch(), OneStageOptions())
            return coco_keypoints(r.keypoints, r.scores), r.person_scores
        # measured 0.478 (letterbox) against 0.540 (stretch) on x86-64
        assert _oks_ap(gt, _results(gt, images, run)) >= 0.478 - FLOAT_AP_MARGIN
    finally:
        model.close()


# --- the TFLite backend at dynamic sizes ------------------------------------------------

class CountingInterpreter:
    """Wraps an interpreter and counts allocate_tensors calls."""

    def __init__(self, inner):
        self._inner = inner
        self.allocations = 0

    def allocate_tensors(self):
        self.allocations += 1
        return self._inner.allocate_tensors()

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_tflite_backend_reallocates_only_when_the_size_changes(models):
    with TFLiteBackend(models / MULTIPOSE, threads=1) as backend:
        counting = CountingInterpreter(backend._interpreter)
        backend._interpreter = counting
        name = backend.inputs[0].name
        small = np.zeros((1, 160, 256, 3), np.uint8)
        for _ in range(3):
            backend.run({name: small})
        assert counting.allocations == 1            # one size: allocated once
        backend.run({name: np.zeros((1, 256, 160, 3), np.uint8)})
        backend.run({name: np.zeros((1, 256, 160, 3), np.uint8)})
        assert counting.allocations == 2
        with pytest.raises(ValueError, match=r"was fed with shape \(1, 4128, 32, 3\); a dynamic "
                                             r"dimension may be at most 4096"):
            backend.run({name: np.zeros((1, 4128, 32, 3), np.uint8)})
        assert counting.allocations == 2            # refused before the interpreter saw it
        assert backend.run({name: small})["StatefulPartitionedCall:0"].shape == (1, 6, 56)


def test_tflite_backend_threads_at_different_sizes_give_the_serial_answers(models):
    rng = np.random.default_rng(7)
    sizes = [(160, 256), (256, 160), (224, 320), (160, 256)] * 2
    feeds = [rng.integers(0, 255, (1, h, w, 3), dtype=np.uint8) for h, w in sizes]
    with TFLiteBackend(models / MULTIPOSE, threads=1) as backend:
        name = backend.inputs[0].name
        serial = [backend.run({name: x})["StatefulPartitionedCall:0"] for x in feeds]
        with ThreadPoolExecutor(4) as pool:
            threaded = list(pool.map(lambda x: backend.run({name: x})
                                     ["StatefulPartitionedCall:0"], feeds))
    for s, t in zip(serial, threaded):
        np.testing.assert_array_equal(s, t)
