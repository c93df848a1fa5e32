"""What every backend shares: feed checks and conversions, backend choice, option
checks, missing runtimes. Runtime-specific behaviour is in the other files."""
from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest

from edgepose.backends import BACKENDS, TensorInfo, backend_for_path, open_backend
from edgepose.backends._base import convert_output, format_shape, prepare_feeds

IMAGE = TensorInfo("image", (1, 4, 4, 3), np.float32)
DYNAMIC = TensorInfo("image:0", (None, None, None, 3), np.float32)
QUANT_U8 = TensorInfo("sub_2", (1, 5), np.uint8, scale=1 / 128, zero_point=128)
QUANT_I8 = TensorInfo("q", (1, 5), np.int8, scale=0.5, zero_point=-3)
RAW_U8 = TensorInfo("pixels", (1, 5), np.uint8)

CPM_TFLITE = "models/heatmap_cpm_hourglass/cpm_model.tflite"
CPM_ONNX = "models/heatmap_cpm_hourglass/onnx_converted/cpm_model.onnx"


# --- TensorInfo -------------------------------------------------------------

def test_tensor_info_normalizes_and_describes():
    info = TensorInfo("sub_2", [1, None, 3], "uint8", 0.0078125, 128)
    assert info.shape == (1, None, 3) and info.dtype == np.dtype(np.uint8)
    assert info.quantized and not IMAGE.quantized
    assert info.describe() == "sub_2 (1, ?, 3) uint8 (quantized: scale 0.0078125, zero point 128)"
    assert IMAGE.describe() == "image (1, 4, 4, 3) float32"
    assert format_shape((5,)) == "(5,)" and format_shape(()) == "()"


@pytest.mark.parametrize("kwargs, match", [
    ({"scale": 0.5}, "scale and zero_point must both be given"),
    ({"scale": 0.0, "zero_point": 0}, "scale must be a positive finite number"),
    ({"scale": float("nan"), "zero_point": 0}, "scale must be a positive finite number"),
])
def test_tensor_info_rejects_bad_quantization(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TensorInfo("t", (1,), np.uint8, **kwargs)


def test_tensor_info_quantized_must_be_integer():
    with pytest.raises(ValueError, match="only integer tensors can be quantized"):
        TensorInfo("t", (1,), np.float32, 0.5, 0)


# --- feeds: names, shapes, dtypes -------------------------------------------

def test_feeds_must_be_a_mapping():
    with pytest.raises(TypeError, match=r"feeds must be a mapping .* got list\. The model "
                                        r"expects: image \(1, 4, 4, 3\) float32"):
        prepare_feeds((IMAGE,), [np.zeros((1, 4, 4, 3))])


def test_missing_and_unknown_names_list_the_expected_inputs():
    inputs = (IMAGE, QUANT_U8)
    with pytest.raises(ValueError, match=(
            r"Wrong input names \(missing 'sub_2'; unknown 'imag'\)\. The model expects: "
            r"image \(1, 4, 4, 3\) float32; sub_2 \(1, 5\) uint8 \(quantized: scale 0\.0078125, "
            r"zero point 128\)\.")):
        prepare_feeds(inputs, {"image": np.zeros((1, 4, 4, 3)), "imag": 1})
    with pytest.raises(ValueError, match=r"missing 'image', 'sub_2'\)"):
        prepare_feeds(inputs, {})


def test_wrong_rank_and_wrong_fixed_dims():
    with pytest.raises(ValueError, match=r"Input 'image' must have 4 dimensions, shape "
                                         r"\(1, 4, 4, 3\), got shape \(4, 4, 3\)\."):
        prepare_feeds((IMAGE,), {"image": np.zeros((4, 4, 3), np.float32)})
    with pytest.raises(ValueError, match=r"Input 'image' must have shape \(1, 4, 4, 3\), "
                                         r"got \(1, 4, 3, 4\)\."):
        prepare_feeds((IMAGE,), {"image": np.zeros((1, 4, 3, 4), np.float32)})
    with pytest.raises(ValueError, match=r"must have shape \(\?, \?, \?, 3\) \(\? = any size\), "
                                         r"got \(2, 8, 8, 4\)"):
        prepare_feeds((DYNAMIC,), {"image:0": np.zeros((2, 8, 8, 4), np.float32)})


def test_dynamic_dims_accept_any_size():
    out = prepare_feeds((DYNAMIC,), {"image:0": np.zeros((2, 7, 9, 3), np.float32)})
    assert out["image:0"].shape == (2, 7, 9, 3)


@pytest.mark.parametrize("value", [
    np.zeros((1, 4, 4, 3), np.complex64),
    np.empty((1, 4, 4, 3), object),
    np.full((1, 4, 4, 3), "a"),
])
def test_unconvertible_dtypes_are_type_errors(value):
    with pytest.raises(TypeError, match=r"Input 'image' must be a real-valued numeric array "
                                        r"convertible to float32, got dtype"):
        prepare_feeds((IMAGE,), {"image": value})


def test_float_input_takes_any_real_dtype_and_makes_contiguous_copies():
    pixels = np.arange(96, dtype=np.uint8).reshape(1, 4, 8, 3)[:, :, ::2]  # a strided view
    pixels.setflags(write=False)
    out = prepare_feeds((IMAGE,), {"image": pixels})["image"]
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, pixels)
    lists = prepare_feeds((IMAGE,), {"image": pixels.tolist()})["image"]
    np.testing.assert_array_equal(lists, pixels)


def test_feed_of_the_input_dtype_passes_through_unchanged():
    raw = np.array([[0, 1, 128, 254, 255]], np.uint8)
    out = prepare_feeds((QUANT_U8,), {"sub_2": raw})["sub_2"]
    np.testing.assert_array_equal(out, raw)
    assert np.shares_memory(out, raw)  # no copy, and never written to


def test_float_feed_is_quantized_rounded_half_away_from_zero_and_clipped():
    real = np.array([[-1.5, -1.0, -0.01171875, 0.00390625, 2.0]], np.float32)
    # q = x * 128 + 128: -64 -> 0 (clip), 0, -1.5 -> -2 (+128 = 126), 0.5 -> 1 (129), 384 -> 255
    out = prepare_feeds((QUANT_U8,), {"sub_2": real})["sub_2"]
    np.testing.assert_array_equal(out, [[0, 0, 126, 129, 255]])
    assert out.dtype == np.uint8
    real8 = np.array([[-100.0, -1.25, 0.74, 1.25, 100.0]])
    # q = x / 0.5 - 3: -203 -> -128, -2.5 -> -3 (-6), 1.48 -> 1 (-2), 2.5 -> 3 (0), 197 -> 127
    np.testing.assert_array_equal(
        prepare_feeds((QUANT_I8,), {"q": real8})["q"], [[-128, -6, -2, 0, 127]])


def test_float_feed_for_a_raw_integer_input_is_rounded_and_clipped():
    out = prepare_feeds((RAW_U8,), {"pixels": np.array([[-3.0, 0.5, 1.5, 254.5, 300.0]])})
    np.testing.assert_array_equal(out["pixels"], [[0, 1, 2, 255, 255]])


def test_integer_feed_for_a_raw_integer_input_is_clipped_exactly():
    big = np.array([[-5, 7, 255, 256, 2**40]], np.int64)
    np.testing.assert_array_equal(prepare_feeds((RAW_U8,), {"pixels": big})["pixels"],
                                  [[0, 7, 255, 255, 255]])
    wide = TensorInfo("ids", (3,), np.int64)
    np.testing.assert_array_equal(
        prepare_feeds((wide,), {"ids": np.array([0, 2**63, 2**64 - 1], np.uint64)})["ids"],
        [0, 2**63 - 1, 2**63 - 1])
    np.testing.assert_array_equal(
        prepare_feeds((wide,), {"ids": np.array([-1e300, 5.5, 1e300])})["ids"],
        [-(2**63), 6, 2**63 - 1024])


def test_integer_feed_for_a_quantized_input_holds_codes():
    """Integers are never rescaled: an int64 image is the same codes as its uint8 copy."""
    codes = np.array([[-1, 0, 128, 255, 256]], np.int64)
    np.testing.assert_array_equal(prepare_feeds((QUANT_U8,), {"sub_2": codes})["sub_2"],
                                  [[0, 0, 128, 255, 255]])
    np.testing.assert_array_equal(
        prepare_feeds((QUANT_I8,), {"q": np.array([[0, 5, 127, 128, 255]], np.uint8)})["q"],
        [[0, 5, 127, 127, 127]])


def test_bool_input():
    flag = TensorInfo("flag", (2,), np.bool_)
    np.testing.assert_array_equal(prepare_feeds((flag,), {"flag": [0.0, 3.0]})["flag"],
                                  [False, True])


def test_feeds_are_never_modified():
    real = np.array([[-1.5, -1.0, 0.0, 0.5, 2.0]], np.float32)
    before = real.copy()
    prepare_feeds((QUANT_U8,), {"sub_2": real})
    np.testing.assert_array_equal(real, before)


# --- outputs -----------------------------------------------------------------

def test_quantized_outputs_are_dequantized_to_float32():
    info = TensorInfo("float_mid_offsets", (4,), np.uint8, 1.3875764608383179, 117)
    out = convert_output(info, np.array([0, 117, 118, 255], np.uint8))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [-117 * 1.3875764, 0, 1.3875764, 138 * 1.3875764], rtol=1e-6)


def test_float_outputs_become_float32_and_raw_integers_stay():
    f16 = convert_output(TensorInfo("h", (2,), np.float16), np.ones(2, np.float16))
    assert f16.dtype == np.float32
    codes = np.array([0, 128, 255], np.uint8)
    raw = convert_output(TensorInfo("float_heatmaps", (3,), np.uint8), codes)
    assert raw.dtype == np.uint8 and raw is codes


# --- choosing and opening a backend --------------------------------------------

@pytest.mark.parametrize("path, name", [
    ("a/model.onnx", "onnxruntime"), ("m.TFLITE", "tflite"), ("ir/model.xml", "openvino")])
def test_backend_for_path(path, name):
    assert backend_for_path(path) == name
    assert name in BACKENDS


def test_backend_for_path_names_the_known_suffixes():
    with pytest.raises(ValueError, match=(
            r"Cannot tell which runtime runs 'graph\.pb' from its suffix '\.pb': expected one "
            r"of \.onnx \(onnxruntime\), \.tflite \(tflite\), \.xml \(openvino\)\. Pass "
            r"backend= \(one of onnxruntime, tflite, openvino\)")):
        backend_for_path("graph.pb")
    with pytest.raises(ValueError, match=r"For an OpenVINO IR, pass the \.xml beside the \.bin"):
        backend_for_path("model.bin")
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
        backend_for_path(3)


def test_open_backend_rejects_unknown_backends_and_foreign_options(shared_dir):
    path = shared_dir / CPM_TFLITE
    with pytest.raises(ValueError, match="Unknown backend 'tensorrt': expected one of "
                                         "onnxruntime, tflite, openvino"):
        open_backend(path, "tensorrt")
    with pytest.raises(ValueError, match=r"providers is an onnxruntime option; backend "
                                         r"'openvino' does not take it \(use device=\)"):
        open_backend(path, "openvino", providers=["CPUExecutionProvider"])
    with pytest.raises(ValueError, match=r"device is an OpenVINO option; backend 'onnxruntime' "
                                         r"does not take it \(onnxruntime selects hardware"):
        open_backend(shared_dir / CPM_ONNX, device="CPU")
    with pytest.raises(ValueError, match=r"device is an OpenVINO option; backend 'tflite'"):
        open_backend(path, device="GPU")
    with pytest.raises(ValueError, match="precision is an OpenVINO option; backend 'tflite' "
                                         "runs the precision stored in the file"):
        open_backend(path, precision="f16")


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_threads_must_be_none_or_positive(shared_dir, backend):
    path = shared_dir / (CPM_TFLITE if backend == "tflite" else CPM_ONNX)
    with pytest.raises(ValueError, match=r"threads must be None \(the runtime's default\) "
                                         r"or an int >= 1, got 0\."):
        open_backend(path, backend, threads=0)
    with pytest.raises(TypeError, match="threads must be None or an int >= 1, got float"):
        open_backend(path, backend, threads=2.0)
    with pytest.raises(TypeError, match="got bool"):
        open_backend(path, backend, threads=True)


@pytest.mark.parametrize("backend, suffix, kind", [
    ("onnxruntime", ".onnx", "an ONNX"), ("tflite", ".tflite", "a TFLite"),
    ("openvino", ".xml", "an OpenVINO")])
def test_missing_empty_and_directory_paths(tmp_path, backend, suffix, kind):
    missing = tmp_path / f"nothing{suffix}"
    with pytest.raises(FileNotFoundError, match=f"Model file not found: {missing}"):
        open_backend(missing)
    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=f"{empty} could not be loaded as {kind} model: "
                                         "the file is empty"):
        open_backend(empty)
    folder = tmp_path / f"folder{suffix}"
    folder.mkdir()
    with pytest.raises(ValueError, match=f"could not be loaded as {kind} model: it is not a file"):
        open_backend(folder, backend)


# --- missing runtimes --------------------------------------------------------

@pytest.mark.parametrize("backend, modules, extra", [
    ("onnxruntime", ["onnxruntime"], "onnx"),
    ("openvino", ["openvino"], "openvino"),
    ("tflite", ["ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime",
                "tflite_runtime.interpreter", "tensorflow"], "tflite"),
])
def test_missing_runtime_names_the_extra(monkeypatch, shared_dir, backend, modules, extra):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    path = shared_dir / (CPM_TFLITE if backend == "tflite" else CPM_ONNX)
    with pytest.raises(ImportError, match=rf"Backend '{backend}' needs .*: "
                                          rf"pip install 'edgepose\[{extra}\]'\."):
        open_backend(path, backend)


@pytest.mark.parametrize("package", ["tflite_runtime", "tensorflow"])
def test_tflite_falls_back_to_the_installed_interpreter(monkeypatch, shared_dir, package):
    from ai_edge_litert.interpreter import Interpreter
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    if package == "tflite_runtime":
        fake = types.ModuleType("tflite_runtime.interpreter")
        fake.Interpreter = Interpreter
        monkeypatch.setitem(sys.modules, "tflite_runtime", types.ModuleType("tflite_runtime"))
        monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", fake)
    else:
        monkeypatch.setitem(sys.modules, "tflite_runtime", None)
        monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
        fake = types.ModuleType("tensorflow")
        fake.lite = types.SimpleNamespace(Interpreter=Interpreter)
        monkeypatch.setitem(sys.modules, "tensorflow", fake)
    with open_backend(shared_dir / CPM_TFLITE) as backend:
        assert backend.interpreter_package == package
        out = backend.run({"image": np.zeros((1, 192, 192, 3), np.float32)})
    assert out["Convolutional_Pose_Machine/stage_5_out"].shape == (1, 96, 96, 14)


def test_importing_the_backends_loads_no_runtime():
    heavy = ["onnxruntime", "openvino", "ai_edge_litert", "tflite_runtime", "tensorflow", "cv2"]
    code = ("import sys; from edgepose.backends import open_backend, backend_for_path, "
            "TensorInfo, Backend; "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
    assert result.stderr == ""
