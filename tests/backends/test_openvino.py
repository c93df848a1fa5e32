"""The OpenVINO backend: the real ONNX files read directly, and an IR written here."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgepose.backends import Backend, TensorInfo, backend_for_path, open_backend

ov = pytest.importorskip("openvino")

from edgepose.backends.openvino import OpenVINOBackend  # noqa: E402
from tests.backends.test_onnxruntime import ONNX_IO  # noqa: E402

CPM = "heatmap_cpm_hourglass/onnx_converted/cpm_model.onnx"
TFPOSE = "openpose_paf/tfpose_mobilenet_v2_small.onnx"
CPM_OUT = "Convolutional_Pose_Machine/stage_5_out"


@pytest.fixture(scope="module")
def cpm_ir(shared_dir, tmp_path_factory):
    """The CPM ONNX converted to an OpenVINO IR (.xml + .bin) with openvino.save_model."""
    xml = tmp_path_factory.mktemp("ir") / "cpm_model.xml"
    ov.save_model(ov.Core().read_model(shared_dir / "models" / CPM), xml)
    return xml


@pytest.mark.parametrize("relpath", [
    CPM, "detectors/light_person_detector_model.onnx",  # NHWC, NCHW
    "posenet/onnx_converted/posenet_mobilenet_v1_075_481_641_quant.onnx"])  # uint8 I/O
def test_reads_onnx_files_with_the_onnxruntime_names(shared_dir, relpath):
    inputs, outputs = ONNX_IO[relpath]
    with open_backend(shared_dir / "models" / relpath, "openvino") as backend:
        assert isinstance(backend, OpenVINOBackend) and isinstance(backend, Backend)
        assert backend.name == "openvino" and backend.device == "CPU"
        assert backend.inputs == tuple(TensorInfo(*e) for e in inputs)
        assert backend.outputs == tuple(TensorInfo(*e) for e in outputs)


def test_ir_is_chosen_from_the_xml_suffix(cpm_ir):
    assert backend_for_path(cpm_ir) == "openvino"
    with open_backend(cpm_ir, threads=1) as backend:
        assert isinstance(backend, OpenVINOBackend)
        assert backend.inputs == (TensorInfo("image", (1, 192, 192, 3), np.float32),)
        assert backend.outputs == (TensorInfo(CPM_OUT, (1, 96, 96, 14), np.float32),)
        out = backend.run({"image": np.zeros((1, 192, 192, 3), np.float32)})
        assert backend._compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert out[CPM_OUT].shape == (1, 96, 96, 14) and out[CPM_OUT].dtype == np.float32


def test_ir_without_its_bin_is_file_not_found(cpm_ir, tmp_path):
    lonely = tmp_path / "cpm_model.xml"
    lonely.write_bytes(cpm_ir.read_bytes())
    with pytest.raises(FileNotFoundError, match=rf"The OpenVINO IR {lonely} needs its weights "
                                                rf"file {tmp_path / 'cpm_model.bin'} beside it"):
        open_backend(lonely)


def test_runs_f32_unless_asked_otherwise(shared_dir):
    """The CPU plugin's own default is bf16 on CPUs with AVX512-BF16/AMX (this moves the
    CPM heatmaps by ~3e-2); the backend asks for f32."""
    path = shared_dir / "models" / CPM
    with open_backend(path, "openvino") as backend:
        assert backend.precision == "f32"
        assert backend._compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    plugin_default = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").to_string()
    with open_backend(path, "openvino", precision=None) as backend:
        assert backend.precision == plugin_default
    with pytest.raises(ValueError, match=r"precision must be one of f32, f16, bf16 or None "
                                         r"\(the plugin's default\), got 'fp16'\."):
        open_backend(path, "openvino", precision="fp16")


def test_devices_in_openvino_words(shared_dir):
    path = shared_dir / "models" / CPM
    available = ov.Core().available_devices
    missing = next(d for d in ["NPU", "GPU", "NO_SUCH_DEVICE"] if d not in available)
    with pytest.raises(ValueError, match=(
            rf"OpenVINO device '{missing}' is unavailable\. Available devices: "
            rf"{', '.join(available)}; also AUTO, MULTI:\.\.\., HETERO:\.\.\.\.")):
        open_backend(path, "openvino", device=missing)
    with pytest.raises(ValueError, match=rf"OpenVINO device 'AUTO:{missing},CPU' is unavailable"):
        open_backend(path, "openvino", device=f"AUTO:{missing},CPU")
    with pytest.raises(TypeError, match="device must be a str such as 'CPU', got int"):
        OpenVINOBackend(path, device=0)
    with open_backend(path, "openvino", device="AUTO:CPU") as backend:
        assert backend.device == "AUTO:CPU"
        out = backend.run({"image": np.zeros((1, 192, 192, 3), np.float32)})
    assert out[CPM_OUT].shape == (1, 96, 96, 14)


def test_dynamic_batch_height_and_width(shared_dir):
    rng = np.random.default_rng(5)
    with open_backend(shared_dir / "models" / TFPOSE, "openvino") as backend:
        inputs, outputs = ONNX_IO[TFPOSE]
        assert backend.inputs == tuple(TensorInfo(*e) for e in inputs)
        assert backend.outputs == tuple(TensorInfo(*e) for e in outputs)
        for shape in [(1, 368, 432, 3), (2, 256, 320, 3)]:
            image = rng.uniform(0, 255, shape).astype(np.float32)
            out = backend.run({"image:0": image})["Openpose/concat_stage7:0"]
            assert out.shape == (shape[0], shape[1] // 8, shape[2] // 8, 57)


@pytest.mark.parametrize("suffix, content, message", [
    (".onnx", lambda real: np.random.default_rng(0).bytes(5000), "Model can't be parsed"),
    (".onnx", lambda real: real[: len(real) // 3], "Model can't be parsed"),
    (".xml", lambda real: b"not a model\n", "No document element found"),
    (".xml", lambda real: b"<?xml version='1.0'?>\n<net name='x' version='11'><layers>",
     "Start-end tags mismatch"),
])
def test_not_a_model_is_a_value_error(shared_dir, tmp_path, capfd, suffix, content, message):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(content((shared_dir / "models" / CPM).read_bytes()))
    path.with_suffix(".bin").write_bytes(b"")
    with pytest.raises(ValueError, match=rf"{path} could not be loaded as an OpenVINO model by "
                                         rf"OpenVINO [\d.]+: .*{message}"):
        open_backend(path, "openvino")
    assert capfd.readouterr().err == ""  # no frontend probing noise on stderr


def test_truncated_ir_weights_never_crash(cpm_ir, tmp_path):
    """An IR whose .bin is cut at several lengths, and a cut ONNX file, in a child process
    so that a crash fails this test instead of killing pytest."""
    weights = cpm_ir.with_suffix(".bin").read_bytes()
    lengths = [0, 1, 100, len(weights) // 2, len(weights) - 1]
    code = f"""
import json, sys
from pathlib import Path
from edgepose.backends import open_backend
xml = Path({str(tmp_path / "cut.xml")!r})
xml.write_bytes(Path({str(cpm_ir)!r}).read_bytes())
weights = Path({str(cpm_ir.with_suffix(".bin"))!r}).read_bytes()
results = {{}}
for n in {lengths!r}:
    print(n, file=sys.stderr, flush=True)
    xml.with_suffix(".bin").write_bytes(weights[:n])
    try:
        open_backend(xml).close()
        results[n] = "loaded"
    except ValueError as error:
        results[n] = "Incorrect weights in bin file" in str(error)
print(json.dumps(results))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, (
        f"crashed (rc {result.returncode}) at length {result.stderr.split()[-1:]}")
    assert json.loads(result.stdout) == {str(n): True for n in lengths}


def test_close_is_idempotent_and_run_after_close_fails(cpm_ir):
    backend = open_backend(cpm_ir)
    backend.close()
    backend.close()
    with pytest.raises(RuntimeError, match=r"The openvino backend for .*cpm_model\.xml is "
                                           r"closed\."):
        backend.run({"image": np.zeros((1, 192, 192, 3), np.float32)})


def test_other_formats_go_through_read_model(shared_dir):
    """OpenVINO reads a .tflite too; its graph I/O carries no quantization parameters,
    so quantized TFLite outputs would come back as raw codes here (use backend="tflite")."""
    path = shared_dir / "models/heatmap_cpm_hourglass/cpm_model.tflite"
    x = np.random.default_rng(6).uniform(0, 255, (1, 192, 192, 3)).astype(np.float32)
    with open_backend(path, "openvino") as ov_backend, open_backend(path) as tflite:
        assert ov_backend.inputs == tflite.inputs and ov_backend.outputs == tflite.outputs
        a, b = ov_backend.run({"image": x})[CPM_OUT], tflite.run({"image": x})[CPM_OUT]
    assert np.abs(a - b).max() < 1e-4


def test_input_names_are_the_files_after_compilation_fuses_a_cast(shared_dir, tmp_path):
    """An FP16 ONNX whose inputs pass through an inserted Cast: compiling fuses the
    Cast into the input port and adds its tensor name; the backend must still call
    the input by the file's name."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper

    src = shared_dir / "models/heatmap_cpm_hourglass/onnx_converted/cpm_model.onnx"
    model = onnx.load(str(src))
    graph = model.graph
    name = graph.input[0].name
    cast = helper.make_node("Cast", [name], ["graph_input_cast_0"], to=onnx.TensorProto.FLOAT)
    for node in graph.node:
        node.input[:] = ["graph_input_cast_0" if i == name else i for i in node.input]
    graph.node.insert(0, cast)
    path = tmp_path / "cast.onnx"
    onnx.save(model, str(path))
    from edgepose.backends import open_backend

    with open_backend(path, "openvino") as backend:
        assert [t.name for t in backend.inputs] == [name]
        out = backend.run({name: np.zeros((1, 192, 192, 3), np.float32)})
    assert list(out) == [t.name for t in backend.outputs]
