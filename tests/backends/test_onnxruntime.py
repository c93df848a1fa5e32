"""The onnxruntime backend on the real ONNX files of ../shared/models."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgepose.backends import Backend, TensorInfo, open_backend

pytest.importorskip("onnxruntime")

from edgepose.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402

F32, U8 = np.dtype(np.float32), np.dtype(np.uint8)

#: Every real ONNX file: inputs and outputs as (name, shape, dtype); None = dynamic.
ONNX_IO = {
    "detectors/light_person_detector_model.onnx": (
        [("images", (1, 3, 192, 192), F32)], [("output", (1, 756, 6), F32)]),
    "detectors/nanodet_nanodet_m_320.onnx": (
        [("input.1", (1, 3, 320, 320), F32)],
        [("cls_pred_stride_8", (1, 1600, 80), F32), ("cls_pred_stride_16", (1, 400, 80), F32),
         ("cls_pred_stride_32", (1, 100, 80), F32), ("dis_pred_stride_8", (1, 1600, 32), F32),
         ("dis_pred_stride_16", (1, 400, 32), F32), ("dis_pred_stride_32", (1, 100, 32), F32)]),
    "detectors/nanodet_nanodet_m_416.onnx": (
        [("input.1", (1, 3, 416, 416), F32)],
        [("cls_pred_stride_8", (1, 2704, 80), F32), ("cls_pred_stride_16", (1, 676, 80), F32),
         ("cls_pred_stride_32", (1, 169, 80), F32), ("dis_pred_stride_8", (1, 2704, 32), F32),
         ("dis_pred_stride_16", (1, 676, 32), F32), ("dis_pred_stride_32", (1, 169, 32), F32)]),
    "detectors/yolox_yolox_nano_416x416.onnx": (
        [("images", (1, 3, 416, 416), F32)], [("output", (1, 3549, 85), F32)]),
    "heatmap_cpm_hourglass/onnx_converted/cpm_model.onnx": (
        [("image", (1, 192, 192, 3), F32)],
        [("Convolutional_Pose_Machine/stage_5_out", (1, 96, 96, 14), F32)]),
    "heatmap_cpm_hourglass/onnx_converted/hourglass_model.onnx": (
        [("image", (1, 192, 192, 3), F32)], [("hourglass_out_3", (1, 48, 48, 14), F32)]),
    "mediapipe/onnx_converted/pose_landmark_lite.onnx": (
        [("input_1", (1, 256, 256, 3), F32)],
        [("Identity", (1, 195), F32), ("Identity_1", (1, 1), F32),
         ("Identity_2", (1, 256, 256, 1), F32), ("Identity_3", (1, 64, 64, 39), F32),
         ("Identity_4", (1, 117), F32)]),
    "movenet/onnx_converted/movenet_singlepose_lightning_int8_4.onnx": (
        [("serving_default_input:0", (1, 192, 192, 3), U8)],
        [("StatefulPartitionedCall:0", (1, 1, 17, 3), F32)]),
    "openpose_paf/tfpose_mobilenet_v2_small.onnx": (
        [("image:0", (None, None, None, 3), F32)],
        [("Openpose/concat_stage7:0", (None, None, None, 57), F32)]),
    "posenet/onnx_converted/posenet_mobilenet_v1_075_481_641_quant.onnx": (
        [("sub_2", (1, 481, 641, 3), U8)],
        [("float_heatmaps", (1, 31, 41, 17), U8), ("float_short_offsets", (1, 31, 41, 34), U8),
         ("float_mid_offsets", (1, 31, 41, 64), U8)]),
}

CPM = "heatmap_cpm_hourglass/onnx_converted/cpm_model.onnx"
TFPOSE = "openpose_paf/tfpose_mobilenet_v2_small.onnx"
POSENET = "posenet/onnx_converted/posenet_mobilenet_v1_075_481_641_quant.onnx"


def expected_infos(entries):
    return tuple(TensorInfo(name, shape, dtype) for name, shape, dtype in entries)


@pytest.mark.parametrize("relpath", sorted(ONNX_IO))
def test_real_files_report_their_inputs_and_outputs(shared_dir, relpath):
    inputs, outputs = ONNX_IO[relpath]
    with open_backend(shared_dir / "models" / relpath) as backend:
        assert isinstance(backend, OnnxRuntimeBackend) and isinstance(backend, Backend)
        assert backend.name == "onnxruntime"
        assert backend.path == shared_dir / "models" / relpath
        assert backend.inputs == expected_infos(inputs)
        assert backend.outputs == expected_infos(outputs)
        assert backend.providers == ("CPUExecutionProvider",)


def test_run_returns_float32_outputs_in_model_order(shared_dir):
    relpath = "detectors/nanodet_nanodet_m_320.onnx"
    with open_backend(shared_dir / "models" / relpath, threads=1) as backend:
        out = backend.run({"input.1": np.zeros((1, 3, 320, 320), np.float32)})
    assert list(out) == [name for name, _, _ in ONNX_IO[relpath][1]]
    assert all(v.dtype == np.float32 and v.shape == s for v, (_, s, _) in
               zip(out.values(), ONNX_IO[relpath][1]))


def test_graph_warnings_are_not_printed(shared_dir, capfd):
    """nanodet's initializers listed as graph inputs make onnxruntime warn 185 times."""
    import onnxruntime as ort
    path = shared_dir / "models/detectors/nanodet_nanodet_m_320.onnx"
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    if "appears in graph inputs" not in capfd.readouterr().err:
        pytest.skip("this onnxruntime does not warn about initializers in graph inputs")
    OnnxRuntimeBackend(path).close()
    assert capfd.readouterr().err == ""


def test_providers_in_onnxruntime_words(shared_dir):
    import onnxruntime as ort
    path = shared_dir / "models" / CPM
    with open_backend(path, providers=[("CPUExecutionProvider", {})]) as backend:
        assert backend.providers == ("CPUExecutionProvider",)
    # Shorthands: one name, one (name, options) pair, a tuple of names.
    for providers in ["CPUExecutionProvider", ("CPUExecutionProvider", {}),
                      ("CPUExecutionProvider",)]:
        with open_backend(path, providers=providers) as backend:
            assert backend.providers == ("CPUExecutionProvider",)
    available = ", ".join(ort.get_available_providers())
    with pytest.raises(ValueError, match=(
            r"Specified provider 'NoSuchExecutionProvider' is unavailable\. Available "
            rf"providers: {available}\.")):
        open_backend(path, providers=["NoSuchExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(ValueError, match="providers must be a non-empty list"):
        open_backend(path, providers=[])
    with pytest.raises(TypeError, match=r"Each provider must be a name or a \(name, options "
                                        r"dict\) pair, got \('CPUExecutionProvider',\)"):
        open_backend(path, providers=[("CPUExecutionProvider",)])
    with pytest.raises(TypeError, match=r"Each provider must be .* got 3"):
        open_backend(path, providers=[3])


def test_threads_set_intra_op_threads(shared_dir):
    with OnnxRuntimeBackend(shared_dir / "models" / CPM, threads=3) as backend:
        assert backend._session.get_session_options().intra_op_num_threads == 3


def test_dynamic_batch_height_and_width(shared_dir):
    rng = np.random.default_rng(0)
    with open_backend(shared_dir / "models" / TFPOSE) as backend:
        for shape in [(1, 368, 432, 3), (2, 256, 320, 3)]:
            image = rng.uniform(0, 255, shape).astype(np.float32)
            out = backend.run({"image:0": image})["Openpose/concat_stage7:0"]
            assert out.shape == (shape[0], shape[1] // 8, shape[2] // 8, 57)
            assert out.dtype == np.float32 and np.isfinite(out).all()
        with pytest.raises(ValueError, match=r"must have shape \(\?, \?, \?, 3\) \(\? = any "
                                             r"size\), got \(1, 64, 64, 4\)"):
            backend.run({"image:0": np.zeros((1, 64, 64, 4), np.float32)})


def test_uint8_io_without_quantization_parameters_stays_raw(shared_dir):
    """The PoseNet conversion has plain uint8 I/O: no dequantization, raw codes out."""
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (1, 481, 641, 3), dtype=np.uint8)
    with open_backend(shared_dir / "models" / POSENET) as backend:
        assert all(not info.quantized for info in backend.inputs + backend.outputs)
        raw = backend.run({"sub_2": pixels})
        as_float = backend.run({"sub_2": pixels.astype(np.float32) + 0.25})  # rounded back
    assert all(v.dtype == np.uint8 for v in raw.values())
    for name in raw:
        np.testing.assert_array_equal(raw[name], as_float[name])


@pytest.mark.parametrize("content", [
    pytest.param(lambda real: np.random.default_rng(0).bytes(5000), id="random"),
    pytest.param(lambda real: b"name: not a model\n" * 20, id="text"),
    pytest.param(lambda real: real[: len(real) // 3], id="truncated"),
])
def test_not_a_model_is_a_value_error(shared_dir, tmp_path, content):
    path = tmp_path / "model.onnx"
    path.write_bytes(content((shared_dir / "models" / CPM).read_bytes()))
    with pytest.raises(ValueError, match=rf"{path} could not be loaded as an ONNX model by "
                                         r"onnxruntime [\d.]+: .*Protobuf parsing failed"):
        open_backend(path)


def test_truncations_never_crash(shared_dir, tmp_path):
    """Truncated copies at many lengths: ValueError each time, in a child process so
    that a crash fails this test instead of killing pytest."""
    src = shared_dir / "models" / CPM
    size = src.stat().st_size
    lengths = sorted({1, 2, 7, 8, 16, 100, 1000, size - 1, size - 100,
                      *np.linspace(0, size, 25, dtype=int)[1:-1].tolist()})
    code = f"""
import json, sys
from pathlib import Path
from edgepose.backends import open_backend
data = Path({str(src)!r}).read_bytes()
out = Path({str(tmp_path / "cut.onnx")!r})
results = {{}}
for n in {lengths!r}:
    print(n, file=sys.stderr, flush=True)
    out.write_bytes(data[:n])
    try:
        open_backend(out).close()
        results[n] = "loaded"
    except ValueError as error:
        results[n] = "could not be loaded as an ONNX model" in str(error)
print(json.dumps(results))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, (
        f"crashed (rc {result.returncode}) at length {result.stderr.split()[-1:]}")
    results = json.loads(result.stdout)
    assert results == {str(n): True for n in lengths}


def test_close_is_idempotent_and_run_after_close_fails(shared_dir):
    backend = open_backend(shared_dir / "models" / CPM)
    with backend as same:
        assert same is backend
    assert backend.closed
    backend.close()
    with pytest.raises(RuntimeError, match=r"The onnxruntime backend for .*cpm_model\.onnx is "
                                           r"closed\."):
        backend.run({"image": np.zeros((1, 192, 192, 3), np.float32)})
    assert repr(backend).endswith("cpm_model.onnx', closed)")
