"""The OpenVINO backend (``pip install 'edgepose[openvino]'``).

Reads an OpenVINO IR (``.xml`` with its ``.bin`` beside it) or an ONNX file
directly, compiles it for a device named in OpenVINO's words (``"CPU"``,
``"GPU"``, ``"GPU.1"``, ``"NPU"``, ``"AUTO"``, ``"AUTO:GPU,CPU"``...) and runs
it with one infer request.

Precision: the model runs in f32 (``INFERENCE_PRECISION_HINT="f32"``) unless
asked otherwise. Left to itself, the CPU plugin runs bf16 on CPUs with
AVX512-BF16/AMX and f16 on some ARM CPUs, which moves raw outputs by ~1e-2
and breaks parity with the other runtimes. ``precision=None`` restores the
plugin's own choice.

Tensor names are the ONNX/IR tensor names (any of a port's names); OpenVINO
graph inputs and outputs carry no quantization parameters, so every
:class:`TensorInfo` here has ``scale = zero_point = None`` and integer outputs
come back unchanged (see the onnxruntime backend for the PoseNet conversion).
OpenVINO also reads ``.tflite`` files, but then a quantized TFLite model's
uint8 outputs come back as raw codes: open those with the TFLite backend.
"""
from __future__ import annotations

import os

import numpy as np

from edgepose.backends._base import (
    BackendBase,
    TensorInfo,
    check_model_path,
    check_threads,
    runtime_message,
)

__all__ = ["OpenVINOBackend", "PRECISIONS"]

#: Values of ``precision`` (OpenVINO's ``INFERENCE_PRECISION_HINT``).
PRECISIONS = ("f32", "f16", "bf16")

# Devices that name other devices after a colon ("AUTO:GPU,CPU").
_VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH")

# The frontend for each suffix read directly, so a bad file gets the right
# frontend's error (core.read_model would try every frontend in turn, and the
# TensorFlow one logs parse errors to stderr).
_FRONTENDS = {".xml": "ir", ".onnx": "onnx"}


def _import_openvino():
    try:
        import openvino
    except ImportError as error:
        raise ImportError(
            "Backend 'openvino' needs the OpenVINO runtime: pip install 'edgepose[openvino]'."
        ) from error
    return openvino


def _device_available(device: str, available: list[str]) -> bool:
    head, _, targets = device.partition(":")
    if head in _VIRTUAL_DEVICES:
        return all(_device_available(t.lstrip("-"), available)
                   for t in targets.split(",") if t)
    return device in available or device in {a.split(".")[0] for a in available}


def _port_name(port) -> str:
    try:
        return port.get_any_name()
    except RuntimeError:  # a port without tensor names
        return port.get_node().get_friendly_name()


def _tensor_info(port, name: str | None = None) -> TensorInfo:
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    return TensorInfo(name or _port_name(port), shape,
                      np.dtype(port.get_element_type().to_dtype()))


class OpenVINOBackend(BackendBase):
    """Runs an OpenVINO IR or ONNX model with OpenVINO.

    Attributes:
        name: ``"openvino"``.
        path: the model file.
        inputs, outputs: :class:`TensorInfo` per model input/output, dynamic
            dimensions as ``None``.
        device: the device the model was compiled for.
        precision: the inference precision the compiled model reports
            (``"f32"`` unless asked otherwise).
    """

    name = "openvino"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        device: str | None = None,
        threads: int | None = None,
        precision: str | None = "f32",
    ) -> None:
        """Reads and compiles ``path``.

        Args:
            path: an IR ``.xml`` (with its ``.bin`` beside it) or an ``.onnx``
                file; other formats OpenVINO reads (``.tflite``, ``.pb``...) go
                through ``Core.read_model``.
            device: OpenVINO device name; ``None``: ``"CPU"``.
            threads: ``INFERENCE_NUM_THREADS`` (CPU plugin); ``None`` keeps
                OpenVINO's default.
            precision: ``INFERENCE_PRECISION_HINT``, one of ``"f32"``,
                ``"f16"``, ``"bf16"``; ``None`` for the plugin's default.

        Raises:
            FileNotFoundError: no file at ``path``, or an IR's ``.bin`` is
                missing.
            ValueError: an unavailable device, an unknown precision, bad
                ``threads``, or a file OpenVINO cannot read.
            TypeError: ``threads`` or ``device`` of the wrong type.
            ImportError: OpenVINO is not installed.
            RuntimeError: compilation failed.
        """
        super().__init__()
        threads = check_threads(threads)
        if device is not None and not isinstance(device, str):
            raise TypeError(f"device must be a str such as 'CPU', got {type(device).__name__}.")
        if precision is not None and precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)} or None (the plugin's "
                f"default), got {precision!r}.")
        self.path = check_model_path(path, "an OpenVINO")
        ov = _import_openvino()
        core = ov.Core()
        device = "CPU" if device is None else device
        available = list(core.available_devices)
        if not _device_available(device, available):
            raise ValueError(
                f"OpenVINO device {device!r} is unavailable. Available devices: "
                f"{', '.join(available) or '(none)'}; also AUTO, MULTI:..., HETERO:....")

        model = self._read(ov, core)
        config: dict[str, object] = {}
        if precision is not None:
            config["INFERENCE_PRECISION_HINT"] = precision
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            compiled = core.compile_model(model, device, config)
        except RuntimeError as error:
            raise RuntimeError(
                f"OpenVINO could not compile {self.path} for {device!r} with {config}: "
                f"{runtime_message(error)}") from error
        # Names from the model as read: compiling can fuse a node into a port and
        # add its tensor name (e.g. an FP16 model's input Cast), after which
        # get_any_name() may return the fused name instead of the file's. The
        # compiled ports keep the model's order; shapes and types come from them.
        self.inputs = tuple(_tensor_info(c, _port_name(m))
                            for c, m in zip(compiled.inputs, model.inputs))
        self.outputs = tuple(_tensor_info(c, _port_name(m))
                             for c, m in zip(compiled.outputs, model.outputs))
        self.device = device
        try:
            hint = compiled.get_property("INFERENCE_PRECISION_HINT")  # an openvino.Type
            self.precision = hint.to_string() if hasattr(hint, "to_string") else str(hint)
        except RuntimeError:  # devices without the property
            self.precision = precision
        self._compiled = compiled
        self._request = compiled.create_infer_request()

    def _read(self, ov, core):
        suffix = self.path.suffix.lower()
        try:
            if suffix in _FRONTENDS:
                frontend = ov.frontend.FrontEndManager().load_by_framework(_FRONTENDS[suffix])
                model = frontend.convert(frontend.load(str(self.path)))
            else:
                model = core.read_model(str(self.path))
        except Exception as error:  # OpenVINO raises RuntimeError and frontend errors
            weights = self.path.with_suffix(".bin")
            if suffix == ".xml" and not weights.exists():
                raise FileNotFoundError(
                    f"The OpenVINO IR {self.path} needs its weights file {weights} beside it "
                    f"({runtime_message(error)})") from error
            raise ValueError(
                f"{self.path} could not be loaded as an OpenVINO model by OpenVINO "
                f"{ov.__version__.split('-')[0]}: {runtime_message(error)}") from error
        if not model.inputs or not model.outputs:
            raise ValueError(
                f"{self.path} could not be loaded as an OpenVINO model: the model has no "
                f"{'inputs' if not model.inputs else 'outputs'}.")
        return model

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            results = self._request.infer(
                {i: feeds[info.name] for i, info in enumerate(self.inputs)},
                share_inputs=False, share_outputs=False)
        except Exception as error:
            raise RuntimeError(
                f"OpenVINO failed to run {self.path}: {runtime_message(error)}") from error
        return {info.name: results[port]
                for info, port in zip(self.outputs, self._compiled.outputs)}

    def _release(self) -> None:
        self._request = None
        self._compiled = None

