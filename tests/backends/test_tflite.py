"""The TFLite backend on the real TFLite files of ../shared/models, plus tiny models
built here with the TFLite schema for what no real file has (dynamic dimensions,
int8 quantization, a resize the model cannot take)."""
from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest

from edgepose.backends import Backend, TensorInfo, open_backend

pytest.importorskip("ai_edge_litert")

from edgepose.backends.tflite import TFLiteBackend, check_tflite_flatbuffer  # noqa: E402

F32, U8 = np.dtype(np.float32), np.dtype(np.uint8)
POSENET_OUT_SCALE, POSENET_MID_SCALE = 0.0784313753247261, 1.3875764608383179


def _posenet_io(h, w):
    oh, ow = (h - 1) // 16 + 1, (w - 1) // 16 + 1
    return ([("sub_2", (1, h, w, 3), U8, 0.0078125, 128)],
            [("float_heatmaps", (1, oh, ow, 17), U8, POSENET_OUT_SCALE, 128),
             ("float_short_offsets", (1, oh, ow, 34), U8, POSENET_OUT_SCALE, 128),
             ("float_mid_offsets", (1, oh, ow, 64), U8, POSENET_MID_SCALE, 117)])


_BLAZE_OUT = [("Identity", (1, 195), F32), ("Identity_1", (1, 1), F32),
              ("Identity_2", (1, 256, 256, 1), F32), ("Identity_3", (1, 64, 64, 39), F32),
              ("Identity_4", (1, 117), F32)]

#: Every real TFLite file: (name, shape, dtype[, scale, zero point]).
TFLITE_IO = {
    "detectors/light_person_detector_model.tflite": (  # NCHW
        [("serving_default_images:0", (1, 3, 192, 192), F32)],
        [("PartitionedCall:0", (1, 756, 6), F32)]),
    "heatmap_cpm_hourglass/cpm_model.tflite": (
        [("image", (1, 192, 192, 3), F32)],
        [("Convolutional_Pose_Machine/stage_5_out", (1, 96, 96, 14), F32)]),
    "heatmap_cpm_hourglass/hourglass_model.tflite": (
        [("image", (1, 192, 192, 3), F32)], [("hourglass_out_3", (1, 48, 48, 14), F32)]),
    "mediapipe/pose_detection.tflite": (
        [("input_1", (1, 224, 224, 3), F32)],
        [("Identity", (1, 2254, 12), F32), ("Identity_1", (1, 2254, 1), F32)]),
    "mediapipe/pose_landmark_full.tflite": ([("input_1", (1, 256, 256, 3), F32)], _BLAZE_OUT),
    "mediapipe/pose_landmark_lite.tflite": ([("input_1", (1, 256, 256, 3), F32)], _BLAZE_OUT),
    "movenet/movenet_singlepose_lightning_int8_4.tflite": (  # uint8 input, scale 0: raw pixels
        [("serving_default_input:0", (1, 192, 192, 3), U8)],
        [("StatefulPartitionedCall:0", (1, 1, 17, 3), F32)]),
    "posenet/posenet_mobilenet_v1_075_353_481_quant.tflite": _posenet_io(353, 481),
    "posenet/posenet_mobilenet_v1_075_481_641_quant.tflite": _posenet_io(481, 641),
    "posenet/posenet_mobilenet_v1_075_721_1281_quant.tflite": _posenet_io(721, 1281),
}

CPM = "heatmap_cpm_hourglass/cpm_model.tflite"
POSENET = "posenet/posenet_mobilenet_v1_075_353_481_quant.tflite"


@pytest.mark.parametrize("relpath", sorted(TFLITE_IO))
def test_real_files_report_their_inputs_and_outputs(shared_dir, relpath):
    inputs, outputs = TFLITE_IO[relpath]
    with open_backend(shared_dir / "models" / relpath) as backend:
        assert isinstance(backend, TFLiteBackend) and isinstance(backend, Backend)
        assert backend.name == "tflite" and backend.interpreter_package == "ai_edge_litert"
        assert backend.inputs == tuple(TensorInfo(*e) for e in inputs)
        assert backend.outputs == tuple(TensorInfo(*e) for e in outputs)


def test_quantized_posenet_float_and_uint8_feeds_agree(shared_dir):
    """uint8 input with scale 1/128, zero point 128: real values (q - 128) / 128."""
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (1, 353, 481, 3), dtype=np.uint8)
    real = (pixels.astype(np.float32) - 128) / 128
    with open_backend(shared_dir / "models" / POSENET, threads=2) as backend:
        from_uint8 = backend.run({"sub_2": pixels})
        from_float = backend.run({"sub_2": real})
        from_float64 = backend.run({"sub_2": real.astype(np.float64) + 1e-3})  # rounds back
    for name, info in zip(from_uint8, backend.outputs):
        out = from_uint8[name]
        assert out.dtype == np.float32 and out.shape == info.shape
        np.testing.assert_array_equal(out, from_float[name])
        np.testing.assert_array_equal(out, from_float64[name])
        # Dequantized values lie on the grid (q - zero_point) * scale, q in 0..255.
        codes = out / np.float32(info.scale) + info.zero_point
        np.testing.assert_allclose(codes, np.round(codes), atol=1e-3)
        assert codes.min() >= -1e-3 and codes.max() <= 255 + 1e-3
    assert np.ptp(from_uint8["float_heatmaps"]) > 1  # not a constant map


def test_outputs_are_not_overwritten_by_the_next_run(shared_dir):
    with open_backend(shared_dir / "models" / CPM) as backend:
        first = backend.run({"image": np.full((1, 192, 192, 3), 50, np.float32)})
        kept = {k: v.copy() for k, v in first.items()}
        second = backend.run({"image": np.full((1, 192, 192, 3), 200, np.float32)})
    for name in first:
        np.testing.assert_array_equal(first[name], kept[name])
        assert not np.array_equal(first[name], second[name])


def test_static_model_rejects_other_sizes(shared_dir):
    with open_backend(shared_dir / "models" / CPM) as backend:
        with pytest.raises(ValueError, match=r"Input 'image' must have shape \(1, 192, 192, 3\), "
                                             r"got \(1, 128, 128, 3\)\."):
            backend.run({"image": np.zeros((1, 128, 128, 3), np.float32)})


def test_threads_reach_the_interpreter(shared_dir):
    with TFLiteBackend(shared_dir / "models" / CPM, threads=2) as backend:
        out = backend.run({"image": np.zeros((1, 192, 192, 3), np.float32)})
    assert out["Convolutional_Pose_Machine/stage_5_out"].shape == (1, 96, 96, 14)


# --- tiny models built with the TFLite schema -------------------------------------

def _tiny_tflite(kind: str) -> bytes:
    """``relu``: x (?, ?, ?, 3) -> RELU -> y. ``requantize``: int8 q_in (scale 0.5,
    zero point -3) -> QUANTIZE -> int8 q_out (scale 0.25, zero point 10).
    ``reshape``: x (?, 2, 2, 3) -> RESHAPE to a constant (1, 12) -> y. ``bad_index``:
    ``relu`` whose operator reads tensor 7 of 2."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    def tensor(name, shape, dtype, buffer, signature=None, quant=None):
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, dtype, buffer
        t.shapeSignature = signature
        if quant:
            t.quantization = s.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [quant[0]], [quant[1]]
        return t

    buffers = [s.BufferT(), s.BufferT(), s.BufferT()]
    if kind in ("relu", "bad_index"):
        tensors = [tensor("x", [1, 2, 2, 3], s.TensorType.FLOAT32, 1, [-1, -1, -1, 3]),
                   tensor("y", [1, 2, 2, 3], s.TensorType.FLOAT32, 2, [-1, -1, -1, 3])]
        op_code, op_inputs = s.BuiltinOperator.RELU, [0 if kind == "relu" else 7]
    elif kind == "requantize":
        tensors = [tensor("q_in", [1, 4], s.TensorType.INT8, 1, quant=(0.5, -3)),
                   tensor("q_out", [1, 4], s.TensorType.INT8, 2, quant=(0.25, 10))]
        op_code, op_inputs = s.BuiltinOperator.QUANTIZE, [0]
    else:
        shape = s.BufferT()
        shape.data = list(np.array([1, 12], np.int32).tobytes())
        buffers.append(shape)
        tensors = [tensor("x", [1, 2, 2, 3], s.TensorType.FLOAT32, 1, [-1, 2, 2, 3]),
                   tensor("y", [1, 12], s.TensorType.FLOAT32, 2),
                   tensor("shape", [2], s.TensorType.INT32, 3)]
        op_code, op_inputs = s.BuiltinOperator.RESHAPE, [0, 2]
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = op_code
    code.version = 1
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, op_inputs, [1]
    graph = s.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [0], [1], [op]
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [graph], buffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.fixture
def tiny(tmp_path):
    def make(kind):
        path = tmp_path / f"{kind}.tflite"
        path.write_bytes(_tiny_tflite(kind))
        return path
    return make


def test_dynamic_dims_resize_the_interpreter(tiny):
    rng = np.random.default_rng(3)
    with open_backend(tiny("relu")) as backend:
        assert backend.inputs == (TensorInfo("x", (None, None, None, 3), F32),)
        assert backend.outputs == (TensorInfo("y", (None, None, None, 3), F32),)
        for shape in [(1, 2, 2, 3), (2, 5, 7, 3), (1, 3, 3, 3), (2, 5, 7, 3)]:
            x = rng.standard_normal(shape).astype(np.float32)
            y = backend.run({"x": x})["y"]
            np.testing.assert_array_equal(y, np.maximum(x, 0))


def test_a_resize_the_model_cannot_take_is_a_value_error(tiny):
    with open_backend(tiny("reshape")) as backend:
        assert backend.inputs[0].shape == (None, 2, 2, 3)
        with pytest.raises(ValueError, match=r"The TFLite model .*reshape\.tflite cannot be "
                                             r"resized to 'x' \(2, 2, 2, 3\): "):
            backend.run({"x": np.ones((2, 2, 2, 3), np.float32)})
        x = np.arange(12, dtype=np.float32).reshape(1, 2, 2, 3)  # still runs at its size
        np.testing.assert_array_equal(backend.run({"x": x})["y"], x.reshape(1, 12))


def test_int8_quantization_with_negative_zero_point(tiny):
    with open_backend(tiny("requantize")) as backend:
        assert backend.inputs == (TensorInfo("q_in", (1, 4), np.int8, 0.5, -3),)
        assert backend.outputs == (TensorInfo("q_out", (1, 4), np.int8, 0.25, 10),)
        out = backend.run({"q_in": np.array([[-100.0, -1.25, 0.74, 100.0]], np.float32)})
        # in: -203 -> -128 (= -62.5), -6 (-1.5), -2 (0.5), 127 (65); out requantized, clipped
        np.testing.assert_array_equal(out["q_out"], np.float32([[-34.5, -1.5, 0.5, 29.25]]))
        raw = backend.run({"q_in": np.array([[-128, -6, -2, 127]], np.int8)})
        np.testing.assert_array_equal(raw["q_out"], out["q_out"])


# --- files that are not models ----------------------------------------------------

def _header(root: int, ident: bytes = b"TFL3") -> bytes:
    return struct.pack("<I", root) + ident


@pytest.mark.parametrize("data, problem", [
    (b"TFL3", "it is 4 bytes long, too short for a flatbuffer"),
    (_header(8, b"ONNX") + bytes(8), r"it lacks the TFLite file identifier 'TFL3' at bytes "
                                     r"4\.\.8 \(found b'ONNX'\)"),
    (_header(4096) + bytes(8), r"it is truncated or corrupt: a table at byte 4096 \(4 bytes\) "
                               r"lies outside the 16-byte file"),
    (_header(8) + struct.pack("<i", -100) + bytes(4), r"a vtable at byte 108"),
])
def test_flatbuffer_check_names_the_problem(data, problem):
    import re
    assert re.fullmatch(f".*{problem}.*", check_tflite_flatbuffer(data))


def test_flatbuffer_check_passes_every_real_file(shared_dir):
    for relpath in TFLITE_IO:
        assert check_tflite_flatbuffer((shared_dir / "models" / relpath).read_bytes()) is None


@pytest.mark.parametrize("content, match", [
    pytest.param(lambda real: np.random.default_rng(0).bytes(5000), "lacks the TFLite file "
                 "identifier", id="random"),
    pytest.param(lambda real: b"not a model at all\n" * 20, "lacks the TFLite file identifier",
                 id="text"),
    pytest.param(lambda real: real[: len(real) // 2], "it is truncated or corrupt", id="truncated"),
    pytest.param(lambda real: real[:8] + b"\0" * (len(real) - 8), "it is truncated or corrupt: "
                 "the vtable at byte 24 has an invalid size 0", id="zeroed"),
])
def test_not_a_model_is_a_value_error(shared_dir, tmp_path, content, match):
    path = tmp_path / "model.tflite"
    path.write_bytes(content((shared_dir / "models" / CPM).read_bytes()))
    with pytest.raises(ValueError, match=rf"{path} could not be loaded as a TFLite model.*{match}"):
        open_backend(path)


def test_a_sound_flatbuffer_the_interpreter_rejects_is_a_value_error(tiny):
    """The structure check passes; the interpreter's own checks give the message."""
    path = tiny("bad_index")
    assert check_tflite_flatbuffer(path.read_bytes()) is None
    with pytest.raises(ValueError, match=rf"{path} could not be loaded as a TFLite model by "
                                         r"ai_edge_litert: Invalid tensor index 7 in node inputs"):
        open_backend(path)


def test_truncations_never_crash(shared_dir, tmp_path):
    """Truncated copies of three real models at ~100 lengths each, in a child process so
    that a crash fails this test instead of killing pytest. Every cut is a ValueError,
    except inside the few padding bytes after the last structure (PoseNet has 8), where
    the model is complete and loads."""
    rng = np.random.default_rng(4)
    plan = {}
    for relpath in [CPM, POSENET, "movenet/movenet_singlepose_lightning_int8_4.tflite"]:
        size = (shared_dir / "models" / relpath).stat().st_size
        plan[str(shared_dir / "models" / relpath)] = sorted(
            {*range(0, 40, 3), *rng.integers(40, size - 64, 60).tolist(),
             *range(size - 64, size, 4), size - 1})
    code = f"""
import json, sys
from pathlib import Path
from edgepose.backends import open_backend
out = Path({str(tmp_path / "cut.tflite")!r})
results = {{}}
for src, lengths in {plan!r}.items():
    data = Path(src).read_bytes()
    for n in lengths:
        print(src, n, file=sys.stderr, flush=True)
        out.write_bytes(data[:n])
        try:
            open_backend(out).close()
            results[f"{{src}}:{{n}}"] = "loaded"
        except ValueError as error:
            results[f"{{src}}:{{n}}"] = "could not be loaded as a TFLite model" in str(error)
print(json.dumps(results))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    last = result.stderr.strip().splitlines()[-1:]
    assert result.returncode == 0, f"crashed (rc {result.returncode}) at {last}"
    results = json.loads(result.stdout)
    for src, lengths in plan.items():
        size = len(open(src, "rb").read())
        for n in lengths:
            outcome = results[f"{src}:{n}"]
            assert outcome is True or (outcome == "loaded" and n >= size - 32), (src, n, outcome)


def test_close_is_idempotent_and_run_after_close_fails(shared_dir):
    backend = open_backend(shared_dir / "models" / CPM)
    backend.close()
    backend.close()
    with pytest.raises(RuntimeError, match=r"The tflite backend for .*cpm_model\.tflite is "
                                           r"closed\."):
        backend.run({"image": np.zeros((1, 192, 192, 3), np.float32)})


def test_one_backend_shared_by_threads_gives_the_serial_answers(shared_dir):
    """The interpreter is not thread-safe; the backend serializes run()."""
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(7)
    images = [rng.uniform(0, 255, (1, 192, 192, 3)).astype(np.float32) for _ in range(8)]
    with open_backend(shared_dir / "models" / CPM) as backend:
        serial = [backend.run({"image": x}) for x in images]
        with ThreadPoolExecutor(max_workers=4) as pool:
            threaded = list(pool.map(lambda x: backend.run({"image": x}), images))
    for s, t in zip(serial, threaded):
        for name in s:
            np.testing.assert_array_equal(s[name], t[name])


def test_xnnpack_can_be_turned_off_and_threads_default_to_all_cores(shared_dir):
    import os

    from edgepose.backends import open_backend

    path = shared_dir / "models/heatmap_cpm_hourglass/cpm_model.tflite"
    image = np.random.default_rng(0).uniform(0, 255, (1, 192, 192, 3)).astype(np.float32)
    with open_backend(path) as fast, open_backend(path, xnnpack=False) as ref:
        assert fast.xnnpack and not ref.xnnpack
        a = fast.run({"image": image})
        b = ref.run({"image": image})
    name = next(iter(a))
    np.testing.assert_allclose(a[name], b[name], atol=1e-3)
    with pytest.raises(ValueError, match="xnnpack is a TFLite option"):
        open_backend(shared_dir / "models/heatmap_cpm_hourglass/onnx_converted/cpm_model.onnx",
                     xnnpack=False)
    assert len(os.sched_getaffinity(0)) >= 1


def test_the_public_interpreter_seams_read_the_files_graph(shared_dir):
    """import_interpreter / reference_kernels / graph_interpreter: what the export stage
    and the benchmarks use instead of the backend's internals."""
    from edgepose.backends.tflite import graph_interpreter, import_interpreter, reference_kernels

    Interpreter, package = import_interpreter()
    assert package == "ai_edge_litert" and Interpreter.__module__.startswith("ai_edge_litert")
    from ai_edge_litert.interpreter import OpResolverType

    assert reference_kernels(package) is OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter, got = graph_interpreter(
        shared_dir / "models/heatmap_cpm_hourglass/cpm_model.tflite")
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert got == package and "CONV_2D" in ops and "DELEGATE" not in ops
