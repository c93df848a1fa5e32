"""INT8 of YOLO-pose with the decode in float (export/yolo_pose.py).

The structure finder is checked on a hand-built YOLO-style graph and on the
real YOLO11n-pose; the comparison of people against hand-computed figures;
the three recipes on the real model (AGPL-3.0: every artefact goes to
tmp_path), each against the naive full-INT8 export measured in the same run.
"""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from edgepose_export import yolo_pose as y  # noqa: E402
from edgepose_export.api import CalibrationSet  # noqa: E402

CALIBRATION_FOLDERS = ("coral", "crowdpose", "aic", "mpii")


# --- the decode subgraph from the graph structure ----------------------------------------

def _tiny_yolo_head(reg_max: int = 4, k: int = 2):
    """stem Conv -> Relu -> (box Conv -> DFL) and (keypoint Conv) -> Concat."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=s).astype(np.float32), n) for n, s in (
        ("w_stem", (8, 3, 3, 3)), ("w_box", (4 * reg_max, 8, 1, 1)), ("w_kpt", (3 * k, 8, 1, 1)))]
    inits += [numpy_helper.from_array(np.arange(reg_max, dtype=np.float32).reshape(1, reg_max, 1, 1),
                                      "w_dfl"),
              numpy_helper.from_array(np.array([1, 4, reg_max, 64], np.int64), "s_bins"),
              numpy_helper.from_array(np.array([1, 4, 64], np.int64), "s_box"),
              numpy_helper.from_array(np.array([1, 3 * k, 64], np.int64), "s_kpt"),
              numpy_helper.from_array(np.array(8.0, np.float32), "stride")]
    nodes = [
        helper.make_node("Conv", ["x", "w_stem"], ["stem"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["stem"], ["act"], name="act"),
        helper.make_node("Conv", ["act", "w_box"], ["box"], name="box_conv"),
        helper.make_node("Reshape", ["box", "s_bins"], ["bins"], name="bins"),
        helper.make_node("Transpose", ["bins"], ["bins_t"], name="bins_t", perm=[0, 2, 1, 3]),
        helper.make_node("Softmax", ["bins_t"], ["prob"], name="dfl_softmax", axis=1),
        helper.make_node("Conv", ["prob", "w_dfl"], ["dist"], name="dfl_conv"),
        helper.make_node("Reshape", ["dist", "s_box"], ["dist_r"], name="dfl_reshape"),
        helper.make_node("Mul", ["dist_r", "stride"], ["box_px"], name="stride_mul"),
        helper.make_node("Conv", ["act", "w_kpt"], ["kpt"], name="kpt_conv"),
        helper.make_node("Reshape", ["kpt", "s_kpt"], ["kpt_r"], name="kpt_reshape"),
        helper.make_node("Mul", ["kpt_r", "stride"], ["kpt_px"], name="kpt_mul"),
        helper.make_node("Concat", ["box_px", "kpt_px"], ["out"], name="concat", axis=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4 + 3 * k, 64])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


DECODE = ["bins", "bins_t", "dfl_softmax", "dfl_conv", "dfl_reshape", "stride_mul",
          "kpt_reshape", "kpt_mul", "concat"]


def test_decode_nodes_of_a_yolo_style_head():
    model = _tiny_yolo_head()
    # the DFL expectation is a weighted Conv fed by a softmax: decode, not a learned layer
    assert y.onnx_decode_nodes(model, 1) == DECODE
    assert y.onnx_decode_nodes(model, 2) == ["box_conv"] + DECODE[:6] + ["kpt_conv"] + DECODE[6:]


def test_decode_region_on_generic_nodes():
    n = y.GraphNode
    nodes = [n("a", "Conv", ("in",), ("a",), True), n("b", "Mul", ("a",), ("b",), False),
             n("c", "Conv", ("b",), ("c",), True), n("d", "Add", ("c", "b"), ("d",), False)]
    # d reads c (a learned layer, stop) and b (decode, through to the learned a)
    assert y.decode_region(nodes, ["d"]) == (["b", "d"], ["a", "c"])
    assert y.decode_region(nodes, ["nothing"]) == ([], [])


@pytest.mark.parametrize("depth", [0, 3, "1"])
def test_decode_nodes_depth_is_checked(depth):
    with pytest.raises(ValueError, match=r"depth must be 1 \(the decode in float\) or 2"):
        y.onnx_decode_nodes(_tiny_yolo_head(), depth)


def test_decode_nodes_of_yolo11n_pose(shared_dir):
    model = onnx.load(str(shared_dir / "models/yolo_pose/yolo11n-pose.onnx"))
    decode = y.onnx_decode_nodes(model, 1)
    last = [n for n in y.onnx_decode_nodes(model, 2) if n not in decode]
    by_name = {node.name: node for node in model.graph.node}
    # box, class and keypoint branches at three strides: nine last convolutions
    assert len(last) == 9 and all(by_name[n].op_type == "Conv" for n in last)
    kinds = {by_name[n].op_type for n in decode}
    assert {"Softmax", "Concat", "Sigmoid", "Mul", "Add"} <= kinds
    assert sum(by_name[n].op_type == "Conv" for n in decode) == 1  # the DFL expectation
    assert by_name[decode[-1]].output[0] == "output0"


# --- comparing people -------------------------------------------------------------------

def _output(people: list[tuple[list[float], float, np.ndarray]], anchors: int = 20):
    """(1, 56, A): the given people (cx, cy, w, h), score, (17, 3) keypoints; empty rest."""
    out = np.zeros((1, 56, anchors), np.float32)
    for i, (box, score, kp) in enumerate(people):
        out[0, :4, i] = box
        out[0, 4, i] = score
        out[0, 5:, i] = np.asarray(kp, np.float32).reshape(-1)
    return out


def _kp(x0: float, y0: float, visible: float = 0.9) -> np.ndarray:
    kp = np.zeros((17, 3), np.float32)
    kp[:, 0] = x0 + np.arange(17) * 3
    kp[:, 1] = y0 + np.arange(17) * 5
    kp[:, 2] = visible
    return kp


def test_compare_people_identical_shifted_and_lost():
    ref = _output([([100, 150, 80, 160], 0.9, _kp(70, 80)),
                   ([400, 300, 100, 200], 0.8, _kp(360, 210))])
    same = y.compare_people(ref, ref.copy())
    assert same["keypoint_error_px_mean"] == 0 and same["oks_mean"] == 1
    assert (same["people"], same["matched"], same["extra"]) == (2, 2, 0)

    shifted = ref.copy()
    shifted[0, 5::3] += 3.0   # every keypoint x + 3, y + 4: 5 px
    shifted[0, 6::3] += 4.0
    shifted[0, 4, 0] = 0.7    # person score change 0.2 on the first
    got = y.compare_people(ref, shifted)
    assert got["keypoint_error_px_mean"] == pytest.approx(5.0, abs=1e-4)
    assert got["score_change_mean"] == pytest.approx(0.1, abs=1e-6)
    sigmas = y.COCO_SIGMAS
    expected = [np.mean(np.exp(-25.0 / (2 * area * (2 * sigmas) ** 2)))
                for area in (80 * 160, 100 * 200)]
    assert got["oks_mean"] == pytest.approx(np.mean(expected), rel=1e-6)

    lost = ref.copy()
    lost[0, 4, 1] = 0.1       # below the score threshold: the second person is lost
    got = y.compare_people(ref, lost)
    diagonal = float(np.hypot(640, 640))
    assert got["keypoint_error_px_mean"] == pytest.approx(diagonal / 2)
    assert got["oks_mean"] == pytest.approx(0.5)
    assert (got["people"], got["matched"]) == (2, 1)


def test_compare_people_counts_only_visible_keypoints_and_extra_people():
    kp = _kp(70, 80)
    kp[:5, 2] = 0.1           # the reference does not see 5 keypoints
    ref = _output([([100, 150, 80, 160], 0.9, kp)])
    cand = ref.copy()
    cand[0, 5:5 + 15:3] += 50  # moving only the unseen ones changes nothing
    cand[0, :5, 1] = [500, 500, 60, 60, 0.6]  # and a person the reference does not have
    got = y.compare_people(ref, cand)
    assert got["keypoint_error_px_mean"] == 0 and got["extra"] == 1


def test_compare_people_wants_outputs_of_one_shape():
    with pytest.raises(ValueError, match=r"of one shape; got \(1, 56, 20\) and \(1, 56, 10\)"):
        y.compare_people(_output([]), _output([], anchors=10))


def test_decode_people_suppresses_overlaps():
    out = _output([([100, 100, 50, 50], 0.9, _kp(80, 80)), ([102, 101, 50, 50], 0.8, _kp(0, 0)),
                   ([300, 300, 50, 50], 0.7, _kp(280, 280)), ([500, 500, 50, 50], 0.25, _kp(0, 0))])
    people = y.decode_people(out)[0]
    np.testing.assert_allclose(people.scores, [0.9, 0.7])  # 0.25 is not > 0.25
    np.testing.assert_allclose(people.boxes[0], [75, 75, 125, 125])
    np.testing.assert_allclose(people.keypoints[1], _kp(280, 280)[:, :2])


def test_to_pixels_and_looks_normalised():
    out = _output([([0.5, 0.25, 0.1, 0.2], 0.9, _kp(0.1, 0.2) * [0.01, 0.01, 1])])
    assert y.looks_normalised(out) and not y.looks_normalised(out * 640)
    px = y.to_pixels(out, (480, 640))
    np.testing.assert_allclose(px[0, :5, 0], [320, 120, 64, 96, 0.9], rtol=1e-6)
    np.testing.assert_allclose(px[0, 5:8, 0], [out[0, 5, 0] * 640, out[0, 6, 0] * 480, 0.9],
                               rtol=1e-6)


def test_tensors_are_checked():
    calib = CalibrationSet(np.zeros((2, 3, 64, 64), np.float32), "zeros")
    with pytest.raises(ValueError, match=r"measure_inputs must be \(M, 3, H, W\).*got shape "
                                         r"\(2, 64, 64\)"):
        y.quantize_onnx(Path(__file__), "x.onnx", calib, measure_inputs=np.zeros((2, 64, 64)))


# --- the recipes on the real model ---------------------------------------------------------

@pytest.fixture(scope="module")
def data(shared_dir):
    """(calibration set of 13 non-COCO images, COCO tensors to judge on)."""
    import cv2

    files = [p for f in CALIBRATION_FOLDERS for p in sorted((shared_dir / "data" / f).iterdir())
             if p.suffix.lower() in (".jpg", ".bmp")]
    calib = CalibrationSet(y.letterbox_tensors([cv2.imread(str(p)) for p in files]), "shared")
    coco = sorted((shared_dir / "data/coco").glob("*.jpg"))
    return calib, y.letterbox_tensors([cv2.imread(str(p)) for p in coco])


def _bench():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_yolo_int8.py"
    spec = importlib.util.spec_from_file_location("_bench_yolo_int8", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _coco_ap(shared_dir, path) -> float:
    """OKS AP on data/coco of a model file, through edgepose's backends and evaluation."""
    from edgepose.backends import open_backend

    bench = _bench()
    ids, _, fed = bench.coco_images(shared_dir)
    with open_backend(path) as backend:
        outputs = bench.run_outputs(backend, [t for t, _, _ in fed])
    normalised = y.looks_normalised(np.concatenate(outputs))
    return bench.coco_ap(outputs, ids, fed, shared_dir, normalised)


@pytest.fixture(scope="module")
def onnx_int8(shared_dir, data, tmp_path_factory):
    calib, judge = data
    src = shared_dir / "models/yolo_pose/yolo11n-pose.onnx"
    out = tmp_path_factory.mktemp("yolo_onnx")
    naive = y.quantize_onnx(src, out / "naive.onnx", calib, measure_inputs=judge, head_depth=0)
    decided = y.quantize_onnx(src, out / "int8.onnx", calib, measure_inputs=judge)
    return naive, decided


@pytest.mark.slow
def test_onnx_naive_int8_loses_every_person_and_the_decided_keeps_them(onnx_int8):
    (_, naive), (_, decided) = onnx_int8
    # measured: naive 905 px (every person lost, the score shares the coordinates' scale),
    # the decode in float 3.9 px, OKS 0.97
    bad = naive.chosen
    assert bad.keypoint_error_px_mean > 100 and bad.oks_mean < 0.5 and not bad.passed
    assert decided.head == "float" and decided.head_depth >= 1
    good = decided.chosen
    assert good.keypoint_error_px_mean < 0.5 * bad.keypoint_error_px_mean
    assert good.keypoint_error_px_mean < 7.5 and good.oks_mean > 0.9
    assert decided.attempts[0].head_depth == 0 and not decided.attempts[0].passed
    provenance = decided.to_provenance()
    assert provenance["float_ops"] and provenance["attempts"][0]["keypoint_error_px_mean"] > 100


@pytest.mark.slow
def test_onnx_int8_coco_ap(shared_dir, onnx_int8):
    (naive_path, _), (path, _) = onnx_int8
    assert onnx.load(str(path)).graph.output[0].name == "output0"
    # measured 0.657 (FP32 0.682): floor = measured - 0.08; the naive one finds nobody
    assert _coco_ap(shared_dir, path) >= 0.657 - 0.08
    assert _coco_ap(shared_dir, naive_path) < 0.1


@pytest.mark.slow
def test_openvino_int8_keeps_its_keypoints(shared_dir, data, tmp_path):
    pytest.importorskip("nncf")
    from edgepose.backends import open_backend

    calib, judge = data
    src = shared_dir / "models/yolo_pose/yolo11n-pose.onnx"
    path, decision = y.quantize_openvino(src, tmp_path / "int8.xml", calib, measure_inputs=judge)
    assert path.with_suffix(".bin").is_file()
    with open_backend(path) as backend:
        assert backend.outputs[0].shape[1:] == (56, 8400)
    kept = decision.chosen
    assert decision.within_tolerance and kept.keypoint_error_px_mean < 7.5
    assert kept.oks_mean > 0.9
    # NNCF quantizes only the box part of the decode (the DFL expectation's input and the
    # anchor arithmetic), never the keypoints' constant Mul/Add: the fully quantized
    # model keeps its keypoints here (measured 2.3-2.7 px, OKS 0.99)
    assert decision.attempts[0].head_depth == 0
    # measured 0.697 (FP32 0.682)
    assert _coco_ap(shared_dir, path) >= 0.697 - 0.08


@pytest.mark.slow
def test_openvino_fp16(shared_dir, tmp_path):
    pytest.importorskip("openvino")
    path = y.openvino_fp16(shared_dir / "models/yolo_pose/yolo11n-pose.onnx",
                           tmp_path / "fp16.xml")
    # measured 0.682, as FP32 (the CPU plugin computes in f32): floor - 0.04
    assert _coco_ap(shared_dir, path) >= 0.682 - 0.04


@pytest.mark.slow
def test_tflite_int8_decode_in_float(shared_dir, data, tmp_path):
    pytest.importorskip("ai_edge_quantizer")
    from edgepose.backends import open_backend

    calib, judge = data
    src = shared_dir / "models/yolo_pose/yolo11n-pose.tflite"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path, decision = y.quantize_tflite(src, tmp_path / "int8.tflite", calib,
                                           measure_inputs=judge)
    # measured: fully quantized 5.7-6.3 px, OKS 0.91-0.92 (coordinates normalised to 0-1
    # share one int8 output scale with the scores: one step is 2.5 px at 640), AP -0.16;
    # the decode in float 2.95 px, OKS 0.98, AP -0.01
    naive = decision.attempts[0]
    assert naive.head_depth == 0 and not naive.passed
    assert decision.head == "float" and decision.head_depth >= 1
    kept = decision.chosen
    assert kept.keypoint_error_px_mean < 0.75 * naive.keypoint_error_px_mean
    assert kept.keypoint_error_px_mean < 5.0 and kept.oks_mean > naive.oks_mean
    with open_backend(path) as backend:  # the input stays float32, the output too
        assert backend.inputs[0].dtype == np.float32 and backend.outputs[0].dtype == np.float32
    # measured 0.673 (FP32 0.682)
    assert _coco_ap(shared_dir, path) >= 0.673 - 0.08


# --- export_model: the card, the decision and the parity report ---------------------------

def _has_yolo_card() -> bool:
    from edgepose.heads import HEAD_PARAMS

    return "yolo_pose" in HEAD_PARAMS


@pytest.mark.slow
@pytest.mark.skipif(not _has_yolo_card(), reason="needs the yolo_pose card of the YOLO runtime "
                    "(edgepose/heads/yolo_pose.py, merged separately)")
def test_export_model_writes_the_decision_and_a_one_stage_parity(shared_dir, tmp_path):
    from edgepose.card import read_card
    from edgepose.model import LoadedModel
    from edgepose_export.api import export_model

    calib_dir = tmp_path / "calib"
    calib_dir.mkdir()
    for folder in CALIBRATION_FOLDERS:  # links, not copies
        for image in (shared_dir / "data" / folder).iterdir():
            if image.suffix.lower() in (".jpg", ".bmp"):
                (calib_dir / f"{folder}-{image.name}").symlink_to(image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = export_model(shared_dir / "models/yolo_pose/yolo11n-pose.onnx", targets="onnx",
                              precisions="int8", calibration=calib_dir,
                              parity_inputs=shared_dir / "data/coco", out_dir=tmp_path / "out",
                              latency_runs=1)
    (artifact,) = result.artifacts
    card = read_card(artifact.path)
    assert (card.task, card.head) == ("onestage", "yolo_pose")
    record = card.provenance["int8"]
    assert record["head"] == "float" and record["attempts"][0]["keypoint_error_px_mean"] > 100
    assert record["tolerance"] == {"max_keypoint_error_px": 7.5, "min_oks": 0.95}
    # the parity report measures what the decision measured, on the same images
    parity = card.provenance["parity"]
    assert parity["passed"] and parity["images"] == 4
    assert parity["keypoint_error_px_mean"] == pytest.approx(
        record["attempts"][-1]["keypoint_error_px_mean"], abs=1e-3)
    assert any("one-stage" in n for n in parity["notes"])
    assert any("measured on 4 held-out inputs" in n for n in artifact.notes)
    LoadedModel(artifact.path).close()
