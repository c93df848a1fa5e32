"""RuntimeOptions: validation, the flat keyword shortcuts, and which options reach which runtime."""
from __future__ import annotations

import json

import pytest

from edgepose.runtime import RuntimeOptions

MOVENET = "movenet/movenet_singlepose_lightning_int8_4.tflite"
YOLOX = "detectors/yolox_yolox_nano_416x416.onnx"


@pytest.mark.parametrize("field, value, message", [
    ("backend", "tensorrt", "backend must be one of onnxruntime, tflite, openvino"),
    ("threads", 0, "threads must be a positive integer"),
    ("threads", True, "threads must be a positive integer"),
    ("threads", 2.0, "threads must be a positive integer"),
    ("device", "", "device must be an OpenVINO device name"),
    ("providers", [], "providers must be a non-empty list"),
    ("providers", [("CUDAExecutionProvider", "fast")], r"name or \(name, options dict\)"),
    ("precision", "int8", "precision must be one of f32, f16, bf16"),
    ("xnnpack", 0, "xnnpack must be True or False"),
])
def test_fields_are_checked_when_built(field, value, message):
    with pytest.raises(ValueError, match=message):
        RuntimeOptions(**{field: value})


def test_values_are_normalised_and_frozen():
    options = RuntimeOptions(providers="CPUExecutionProvider", threads=2)
    assert options.providers == ("CPUExecutionProvider",)
    with pytest.raises(AttributeError):
        options.threads = 3
    assert options.replace(threads=4).threads == 4 and options.threads == 2
    with pytest.raises(ValueError, match="threads"):
        options.replace(threads=-1)


def test_resolve_takes_runtime_or_the_shortcuts_not_both():
    assert RuntimeOptions.resolve() == RuntimeOptions()
    assert RuntimeOptions.resolve(backend="openvino", threads=2) == \
        RuntimeOptions(backend="openvino", threads=2)
    gpu = RuntimeOptions(device="GPU")
    assert RuntimeOptions.resolve(gpu, backend=None, xnnpack=True) is gpu  # defaults: not given
    with pytest.raises(ValueError, match=r"not both: got runtime= and threads="):
        RuntimeOptions.resolve(gpu, threads=2)
    with pytest.raises(TypeError, match="unknown runtime option"):
        RuntimeOptions.resolve(thread=2)
    with pytest.raises(TypeError, match="must be an edgepose.RuntimeOptions"):
        RuntimeOptions.resolve({"threads": 2})


def test_each_runtime_gets_only_its_own_options():
    options = RuntimeOptions(threads=1, device="GPU", providers=["CPUExecutionProvider"],
                             xnnpack=False)
    assert options.backend_kwargs("tflite") == {"threads": 1, "xnnpack": False}
    assert options.backend_kwargs("onnxruntime") == {"threads": 1,
                                                     "providers": ["CPUExecutionProvider"]}
    assert options.backend_kwargs("openvino") == {"threads": 1, "device": "GPU",
                                                  "precision": "f32"}
    assert options.backend_for("a/model.TFLITE") == "tflite"
    assert options.replace(backend="openvino").backend_for("model.onnx") == "openvino"


def test_opening_real_files(shared_dir):
    models = shared_dir / "models"
    options = RuntimeOptions(threads=1, xnnpack=False)
    with options.open(models / MOVENET) as tflite, options.open(models / YOLOX) as onnx:
        assert tflite.xnnpack is False          # the TFLite option reached the TFLite model
        assert type(onnx).__name__ == "OnnxRuntimeBackend"
    with RuntimeOptions(backend="openvino").open(models / YOLOX) as ov:
        assert type(ov).__name__ == "OpenVINOBackend"


def test_an_option_the_fixed_backend_cannot_take_is_an_error(shared_dir):
    path = shared_dir / "models" / YOLOX
    with pytest.raises(ValueError, match="device is an OpenVINO option"):
        RuntimeOptions(backend="onnxruntime", device="GPU").open(path)
    with pytest.raises(ValueError, match="xnnpack is a TFLite option"):
        RuntimeOptions(backend="onnxruntime", xnnpack=False).open(path)


def test_loaded_model_takes_runtime_or_the_shortcuts(shared_dir):
    from edgepose.model import LoadedModel

    path = shared_dir / "models" / YOLOX
    gpu_like = RuntimeOptions(backend="openvino", threads=1)
    model = LoadedModel(path, role="detector", runtime=gpu_like)
    try:
        assert type(model.backend).__name__ == "OpenVINOBackend"
        assert model.runtime is gpu_like
    finally:
        model.close()
    model = LoadedModel(path, role="detector", backend="openvino", threads=1)
    try:
        assert type(model.backend).__name__ == "OpenVINOBackend"
        assert model.runtime == gpu_like
    finally:
        model.close()
    with pytest.raises(ValueError, match=r"not both: got runtime= and threads="):
        LoadedModel(path, role="detector", runtime=RuntimeOptions(), threads=2)


def test_every_backends_entry_names_a_class_taking_its_options():
    import importlib
    import inspect

    from edgepose.backends import BACKENDS

    options = set()
    for name, entry in BACKENDS.items():
        cls = getattr(importlib.import_module(entry.module), entry.cls)
        assert all(callable(getattr(cls, m, None)) for m in ("run", "close")), name
        params = inspect.signature(cls.__init__).parameters
        assert {"threads", *entry.options} <= set(params), name
        options |= set(entry.options)
    assert options == {"providers", "device", "precision", "xnnpack"}


def test_open_backend_constructs_from_the_table(monkeypatch, tmp_path):
    """A new entry in BACKENDS is all open_backend needs: no name switch."""
    from edgepose import backends

    class Recorder:
        def __init__(self, path, *, threads=None, device=None):
            self.args = (path, threads, device)

    module = type(backends)("edgepose_test_fake_backend")
    module.Recorder = Recorder
    monkeypatch.setitem(__import__("sys").modules, "edgepose_test_fake_backend", module)
    monkeypatch.setitem(backends.BACKENDS, "fake",
                        backends.BackendEntry("edgepose_test_fake_backend", "Recorder",
                                              ("device",)))
    opened = backends.open_backend(tmp_path / "m.onnx", "fake", threads=3, device="NPU")
    assert isinstance(opened, Recorder) and opened.args == (tmp_path / "m.onnx", 3, "NPU")
    with pytest.raises(ValueError, match="providers is an onnxruntime option; backend 'fake'"):
        backends.open_backend(tmp_path / "m.onnx", "fake", providers=["CPUExecutionProvider"])
    with pytest.raises(ValueError, match="Unknown backend 'tensorrt': expected one of "
                                         "onnxruntime, tflite, openvino, fake"):
        backends.open_backend(tmp_path / "m.onnx", "tensorrt")


def test_open_backend_takes_runtime_or_keywords(shared_dir):
    from edgepose.backends import open_backend

    path = shared_dir / "models" / YOLOX
    with open_backend(path, runtime=RuntimeOptions(backend="openvino", threads=1,
                                                   precision=None)) as ov:
        assert type(ov).__name__ == "OpenVINOBackend"
    with open_backend(shared_dir / "models" / MOVENET, runtime=RuntimeOptions(xnnpack=False)) as t:
        assert t.xnnpack is False
    with pytest.raises(ValueError, match=r"not both: got runtime= and threads=, precision="):
        open_backend(path, runtime=RuntimeOptions(), threads=2, precision="f16")
    with pytest.raises(ValueError, match="device is an OpenVINO option; backend 'onnxruntime'"):
        open_backend(path, runtime=RuntimeOptions(backend="onnxruntime", device="GPU"))


def test_only_for_keeps_the_options_of_one_runtime():
    options = RuntimeOptions(threads=2, device="GPU", providers=["CPUExecutionProvider"],
                             precision="f16", xnnpack=False)
    assert options.only_for("openvino") == RuntimeOptions(backend="openvino", threads=2,
                                                          device="GPU", precision="f16")
    assert options.only_for("tflite") == RuntimeOptions(backend="tflite", threads=2,
                                                        xnnpack=False)
    assert options.only_for("onnxruntime") == RuntimeOptions(
        backend="onnxruntime", threads=2, providers=["CPUExecutionProvider"])
    with pytest.raises(ValueError, match="backend must be one of onnxruntime, tflite, openvino"):
        options.only_for("tensorrt")


# -- the command lines build one RuntimeOptions from their flags -----------------


@pytest.fixture
def spy_estimators(monkeypatch):
    """The runtime of every Estimator built, and its models' backends."""
    import edgepose.estimator

    built = []

    class Spy(edgepose.estimator.Estimator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            det = self._detector
            built.append((self.runtime, type(self._pose.backend).__name__,
                          None if det is None else type(det._backend).__name__))

    monkeypatch.setattr(edgepose.estimator, "Estimator", Spy)
    return built


def test_edgepose_run_passes_one_runtime_to_both_models(shared_dir, tmp_path, spy_estimators,
                                                         capsys):
    from edgepose.cli import main

    models = shared_dir / "models"
    code = main(["run", str(shared_dir / "data/coco/000000000785.jpg"),
                 "--model", str(models / "movenet/onnx_converted/"
                                         "movenet_singlepose_lightning_int8_4.onnx"),
                 "--detector", str(models / YOLOX), "--backend", "openvino", "--device", "CPU",
                 "--precision", "auto", "--threads", "1", "--out", "-", "--quiet"])
    assert code == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(record["people"]) >= 1
    assert spy_estimators == [(RuntimeOptions(backend="openvino", device="CPU", precision=None,
                                              threads=1), "OpenVINOBackend", "OpenVINOBackend")]


@pytest.mark.parametrize("argv, message", [
    (["--backend", "onnxruntime", "--device", "GPU"],
     "--device is an option of openvino, and --backend onnxruntime does not run openvino"),
    (["--backend", "openvino", "--no-xnnpack"], "--no-xnnpack is an option of tflite"),
    (["--backend", "tflite", "--providers", "CUDAExecutionProvider"],
     "--providers is an option of onnxruntime"),
])
def test_a_runtime_flag_no_chosen_backend_takes_is_a_usage_error(shared_dir, capsys, argv,
                                                                   message):
    from edgepose.cli import main

    code = main(["run", str(shared_dir / "data/coco/000000000785.jpg"),
                 "--model", str(shared_dir / "models" / MOVENET), *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_bad_precision_flag_is_a_usage_error(shared_dir, capsys):
    from edgepose.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["run", "x.jpg", "--model", "m.onnx", "--precision", "int8"])
    assert exit_.value.code == 2
    assert "expected one of f32, f16, bf16 or auto" in capsys.readouterr().err


def test_edgepose_eval_passes_its_runtime(shared_dir, tmp_path, spy_estimators):
    from edgepose.evaluation import main_eval

    out = tmp_path / "eval.json"
    code = main_eval([str(shared_dir / "models" / MOVENET), "--annotations",
                      str(shared_dir / "data/mpii/test_mpii.json"), "--images",
                      str(shared_dir / "data/mpii"), "--gt-boxes", "--threads", "1",
                      "--no-xnnpack", "--json", str(out), "--quiet"])
    assert code == 0
    assert spy_estimators == [(RuntimeOptions(threads=1, xnnpack=False), "TFLiteBackend", None)]
    record = json.loads(out.read_text())
    assert record["runtime"] == {"backend": None, "threads": 1, "device": None,
                                 "providers": None, "precision": "f32", "xnnpack": False}


def test_person_detector_from_file_hands_the_whole_runtime_to_its_model(shared_dir):
    """precision has no keyword shortcut: it reaches the detector's model only
    when the RuntimeOptions is passed down whole."""
    from edgepose.detectors import PersonDetector

    options = RuntimeOptions(backend="openvino", threads=1, precision="bf16")
    with PersonDetector.from_file(shared_dir / "models" / YOLOX, runtime=options) as det:
        assert det.model.runtime is options
        assert type(det.model.backend).__name__ == "OpenVINOBackend"
