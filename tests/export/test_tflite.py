"""edgepose_export.tflite: PyTorch to TFLite through litert-torch, FP32 / FP16 / INT8.

Needs the ``export-tflite`` extra (litert-torch 0.10, which brings AI Edge Quantizer);
the module is skipped, with that reason, where it is not installed.

Measured here (x86-64, 2 shared cores, litert-torch 0.10, ai-edge-litert 2.3, XNNPACK),
tiny SimCC model (64x48 input) trained briefly on synthetic blobs, against torch:

* FP32: max |diff| 2e-5 on raw logits (|logits| ~ 10), keypoints identical;
* FP16 weights: max |diff| ~1e-2, mean keypoint error < 0.01 px;
* dynamic-range INT8: max |diff| ~0.6, mean keypoint error ~0.1 px;
* static INT8 (int8 I/O): mean keypoint error ~0.6 px; with a 0.2 px tolerance the
  head (last weighted layer and after) is left in float: ~0.13 px.
* NCHW vs NHWC input: the NHWC file saves the leading TRANSPOSE, a few percent
  (0.069 vs 0.072 ms p50 for this tiny model); the faster one is kept.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch", reason="needs the export-tflite extra (litert-torch)")
pytest.importorskip("ai_edge_litert")
pytest.importorskip("cv2")

from edgepose import Estimator  # noqa: E402
from edgepose.card import ModelCard, read_card  # noqa: E402
from edgepose.model import LoadedModel  # noqa: E402
from edgepose_export.api import CalibrationSet  # noqa: E402
from edgepose_export.openvino import keypoint_error_px  # noqa: E402
from edgepose_export.tflite import tflite_head_scope, torch_to_tflite  # noqa: E402


from tests.export._tiny import (INPUT_HW, K, TinySimCC, blobs, tiny_card,  # noqa: E402,F401
                               torch_outputs, trained, train_tiny)


@pytest.fixture(scope="module")
def converted(tmp_path_factory, trained, calib):
    """``convert(precision, layout="NHWC", tolerance=3.0)``: each file converted once."""
    folder = tmp_path_factory.mktemp("tflite")
    done = {}

    def convert(precision: str, layout: str = "NHWC", tolerance: float = 3.0):
        key = (precision, layout, tolerance)
        if key not in done:
            done[key] = torch_to_tflite(
                trained, tiny_card(), folder / f"{precision}_{layout}_{tolerance}.tflite",
                precision, calib if precision == "int8" else None, layout=layout,
                max_keypoint_error_px=tolerance)
        return done[key]

    return convert


@pytest.fixture(scope="module")
def calib() -> CalibrationSet:
    return CalibrationSet(blobs(32, seed=3)[0], "synthetic blobs")


@pytest.fixture(scope="module")
def held_out():
    return blobs(32, seed=4)


def tflite_outputs(path, x) -> dict[str, np.ndarray]:
    """Runs NCHW tensors through the file as the runtime does (transposed for NHWC)."""
    model = LoadedModel(path)
    try:
        if model.card.input.layout == "NHWC":
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        parts = [model.run(x[i:i + 1]) for i in range(len(x))]
    finally:
        model.close()
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# --- precisions -------------------------------------------------------------------------------

def test_fp32_matches_torch_and_the_card_names_the_tflite_tensors(converted, trained, held_out):
    x, _ = held_out
    path = converted("fp32", "auto")
    card = read_card(path)
    assert card.input.name.startswith("serving_default") and card.input.layout in ("NCHW", "NHWC")
    assert list(card.outputs) == ["simcc_x", "simcc_y"]
    prov = card.to_dict()["provenance"]
    assert prov["card"] == "test" and prov["target"] == "tflite" and prov["precision"] == "fp32"
    assert set(prov["tools"]) >= {"litert-torch", "torch"}
    layout = prov["input_layout"]
    assert set(layout["latency_ms_p50"]) == {"NCHW", "NHWC"}
    assert layout["chosen"] == card.input.layout == min(layout["latency_ms_p50"],
                                                        key=layout["latency_ms_p50"].get)
    ref, got = torch_outputs(trained, x), tflite_outputs(path, x)
    for role in ref:
        assert np.abs(ref[role] - got[role]).max() < 1e-4, role


def test_it_runs_in_the_estimator_with_no_other_argument(converted):
    path = converted("fp32", "auto")
    image = np.full((120, 90, 3), 128, np.uint8)
    with Estimator(path) as est:   # no preset, no layout: all from the card
        assert est.card.input.layout == read_card(path).input.layout
        poses = est(image, boxes=[[10, 10, 70, 90]])
    assert poses.keypoints.shape == (1, K, 2) and np.isfinite(poses.keypoints).all()


@pytest.mark.slow
def test_a_fixed_nchw_layout_is_kept(converted, trained, held_out):
    path = converted("fp32", "NCHW")
    card = read_card(path)
    assert card.input.layout == "NCHW" and card.provenance["input_layout"]["chosen"] == "NCHW"
    x, _ = held_out
    ref, got = torch_outputs(trained, x), tflite_outputs(path, x)
    assert max(np.abs(ref[r] - got[r]).max() for r in ref) < 1e-4


@pytest.mark.parametrize("precision, max_raw, max_kp", [
    ("fp16", 0.05, 0.1),
    pytest.param("int8-dynamic", 2.0, 0.5, marks=pytest.mark.slow)])
def test_fp16_and_dynamic_int8_keep_the_keypoints(converted, trained, held_out, precision,
                                                  max_raw, max_kp):
    x, _ = held_out
    ref = torch_outputs(trained, x)
    path = converted(precision)
    assert path.stat().st_size < 0.7 * converted("fp32", "auto").stat().st_size
    got = tflite_outputs(path, x)
    assert max(np.abs(ref[r] - got[r]).max() for r in ref) < max_raw
    assert keypoint_error_px(tiny_card(), ref, got).mean() < max_kp
    assert read_card(path).provenance["precision"] == precision


def test_static_int8_within_tolerance_with_the_decision_in_the_card(converted, trained,
                                                                    held_out):
    x, _ = held_out
    path = converted("int8")
    prov = read_card(path).to_dict()["provenance"]
    assert prov["calibration"] == {"images": 32, "source": "synthetic blobs"}
    decision = prov["int8"]
    # judged against the tolerance (3 px) and this run's calibration figure: the tiny model
    # trains and quantizes differently with each CPU's kernels
    assert decision["within_tolerance"] and decision["head_depth"] == 0
    assert decision["head"] == "int8" and decision["engine"].startswith("ai_edge_quantizer")
    calibration_px = decision["attempts"][0]["keypoint_error_px_mean"]
    assert calibration_px <= 3.0
    got = tflite_outputs(path, x)
    held_out_px = keypoint_error_px(tiny_card(), torch_outputs(trained, x), got).mean()
    assert held_out_px < 1.5 * calibration_px + 0.5


def test_static_int8_keeps_the_head_in_float_when_measurement_says_so(converted, trained,
                                                                      held_out):
    x, _ = held_out
    path = converted("int8", tolerance=0.2)
    decision = read_card(path).to_dict()["provenance"]["int8"]
    full = decision["attempts"][0]
    assert full["head_depth"] == 0 and full["keypoint_error_px_mean"] > 0.2
    assert decision["head_depth"] >= 1 and "head kept in float" in decision["reason"]
    assert decision["head"] == "float" and decision["float_ops"]
    assert decision["tolerance"] == {"max_keypoint_error_px": 0.2, "min_oks": None}
    chosen = [a for a in decision["attempts"] if a["head_depth"] == decision["head_depth"]][0]
    assert chosen["keypoint_error_px_mean"] < full["keypoint_error_px_mean"]
    # the classifiers compute in float: the outputs are float tensors, not int8 codes
    with _Outputs(path) as outputs:
        assert all(o.dtype == np.float32 and o.scale is None for o in outputs)
    got = tflite_outputs(path, x)
    assert keypoint_error_px(tiny_card(), torch_outputs(trained, x), got).mean() < 0.5


def test_export_model_passes_its_tolerance_to_the_tflite_int8_decision(trained, calib,
                                                                       tmp_path):
    """``export_model(tolerance=...)`` (``edgepose export --max-keypoint-error``) reaches
    TFLite INT8: a tolerance the fully quantized model cannot meet makes it try the head
    in float, and the card records that tolerance."""
    from edgepose_export.api import Tolerance, export_model

    tiny = Tolerance(max_keypoint_error_px=1e-6, min_oks=0.5)
    with pytest.warns(RuntimeWarning, match="INT8 breaks the tolerance"):
        result = export_model(trained, card=tiny_card(), targets="tflite", precisions="int8",
                              calibration=calib, out_dir=tmp_path, tolerance=tiny, force=True,
                              latency_runs=1)
    (artifact,) = result.artifacts
    decision = read_card(artifact.path).to_dict()["provenance"]["int8"]
    assert decision["tolerance"]["max_keypoint_error_px"] == 1e-6
    assert not decision["attempts"][0]["passed"] and len(decision["attempts"]) > 1
    assert decision["head"] == ("float" if decision["head_depth"] else "int8")
    assert any(n.startswith("INT8 head kept in") for n in artifact.notes)


class _Outputs:
    """The TensorInfo of a file's outputs, as the runtime's TFLite backend sees them."""

    def __init__(self, path) -> None:
        from edgepose.backends import open_backend

        self._backend = open_backend(path)

    def __enter__(self):
        return self._backend.outputs

    def __exit__(self, *exc):
        self._backend.close()


def test_tflite_head_scope_counts_weighted_operators(converted):
    path = converted("fp32", "auto")
    one, two = tflite_head_scope(path, 1), tflite_head_scope(path, 2)
    assert any("output_0" in n for n in one) and any("output_1" in n for n in one)
    assert set(one) < set(two) and any("Linear_mlp" in n for n in two)
    assert not any("backbone" in n for n in two)
    with pytest.raises(ValueError, match="depth must be at least 1"):
        tflite_head_scope(path, 0)


def test_errors_say_what_to_do(tmp_path, trained):
    with pytest.raises(ValueError, match="needs calibration tensors"):
        torch_to_tflite(trained, tiny_card(), tmp_path / "a.tflite", "int8")
    with pytest.raises(ValueError, match="precision must be one of"):
        torch_to_tflite(trained, tiny_card(), tmp_path / "a.tflite", "int4")
    with pytest.raises(ValueError, match="layout must be one of"):
        torch_to_tflite(trained, tiny_card(), tmp_path / "a.tflite", "fp32", layout="CHW")
    with pytest.raises(ValueError, match="must end in .tflite"):
        torch_to_tflite(trained, tiny_card(), tmp_path / "a.onnx", "fp32")
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        torch_to_tflite("model.onnx", tiny_card(), tmp_path / "a.tflite", "fp32")
    with pytest.raises(ValueError, match=r"Calibration tensors must have shape \(M, 3, 64, 48\)"):
        torch_to_tflite(trained, tiny_card(), tmp_path / "a.tflite", "int8",
                        CalibrationSet(np.zeros((2, 64, 48, 3), np.float32), "x"))
    one = ModelCard.from_dict({**tiny_card().to_dict(), "outputs": {"simcc_x": "simcc_x"}})
    with pytest.raises(ValueError, match="forward must return the outputs in the order"):
        torch_to_tflite(trained, one, tmp_path / "a.tflite", "fp32", layout="NCHW")
    assert not (tmp_path / "a.tflite").exists()


def test_missing_litert_torch_names_the_extra(monkeypatch, tmp_path, trained):
    monkeypatch.setitem(__import__("sys").modules, "litert_torch", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install 'edgepose\[export-tflite\]'"):
        torch_to_tflite(trained, tiny_card(), tmp_path / "a.tflite", "fp32")


@pytest.mark.slow
def test_the_reference_rtmpose_converts_with_relative_parity(tmp_path):
    """The reference RTMPose (CSPNeXt + RTMCC head with its gated attention unit), narrowed
    for speed, random weights (MMPose's init: logits ~1e-6, hence relative)."""
    from edgepose_export.models.rtmpose import rtmpose

    torch.manual_seed(0)
    model = rtmpose("t", widen_factor=0.125)
    card = model.card()
    x = np.random.default_rng(0).standard_normal((2, 3, 256, 192)).astype(np.float32)
    with torch.no_grad():
        ref = dict(zip(card.outputs, (o.numpy() for o in model(torch.from_numpy(x)))))
    path = torch_to_tflite(model, card, tmp_path / "rtmpose.tflite", "fp32", layout="NHWC")
    got = tflite_outputs(path, x)
    for role in ref:
        assert np.abs(ref[role] - got[role]).max() <= 1e-4 * np.abs(ref[role]).max(), role
    with Estimator(path) as est:
        assert est.card.input.layout == "NHWC" and est.card.input.size == (256, 192)
