"""Inference backends: one small interface over onnxruntime, TFLite and OpenVINO.

A backend opens a model file, describes its inputs and outputs
(:class:`TensorInfo`), runs it on NumPy arrays and closes it; nothing else
(no pre- or postprocessing, no layout changes). The runtime is chosen from the
file's suffix and can be overridden::

    from edgepose.backends import open_backend

    with open_backend("cpm_model.tflite", threads=4) as backend:
        print(backend.inputs)            # (TensorInfo(name='image', shape=(1, 192, 192, 3), ...),)
        outputs = backend.run({"image": crop})

    open_backend("model.onnx", providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    open_backend("model.xml", device="GPU")                       # OpenVINO, f32 by default
    open_backend("model.onnx", backend="openvino", precision=None)  # the plugin's own choice
    open_backend("model.onnx", runtime=edgepose.RuntimeOptions(backend="openvino"))

Options are named in each runtime's own words: ``providers`` (onnxruntime),
``device`` and ``precision`` (OpenVINO), ``threads`` (all three). Importing
this package imports no runtime; the runtime is imported when a backend is
opened, and a missing one raises ImportError naming the extra to install.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgepose.backends._base import Backend, TensorInfo

if TYPE_CHECKING:
    from edgepose.runtime import RuntimeOptions

__all__ = ["BACKENDS", "Backend", "BackendEntry", "TensorInfo", "backend_for_path",
           "open_backend"]


@dataclass(frozen=True)
class BackendEntry:
    """Where a backend lives and which options it takes.

    Attributes:
        module: the module that implements it (imported on first use).
        cls: the :class:`Backend` class in that module; it is constructed as
            ``cls(path, threads=..., **{option: ... for option in options})``.
        options: the keywords of :func:`open_backend` this runtime alone takes.
    """

    module: str
    cls: str
    options: tuple[str, ...]


#: Backend name -> where it lives and what it takes (nothing is imported here).
BACKENDS: dict[str, BackendEntry] = {
    "onnxruntime": BackendEntry("edgepose.backends.onnxruntime", "OnnxRuntimeBackend",
                                ("providers",)),
    "tflite": BackendEntry("edgepose.backends.tflite", "TFLiteBackend", ("xnnpack",)),
    "openvino": BackendEntry("edgepose.backends.openvino", "OpenVINOBackend",
                             ("device", "precision")),
}

#: The default of each runtime-specific option: any other value is "given".
_OPTION_DEFAULTS: dict[str, Any] = {"providers": None, "device": None, "precision": "f32",
                                    "xnnpack": True}

_SUFFIXES = {".onnx": "onnxruntime", ".tflite": "tflite", ".xml": "openvino"}


def backend_for_path(path: str | os.PathLike[str]) -> str:
    """The backend that runs a model file, from its suffix.

    ``.onnx`` -> ``"onnxruntime"``, ``.tflite`` -> ``"tflite"``, ``.xml``
    (OpenVINO IR, with its ``.bin`` beside it) -> ``"openvino"``. The suffix is
    matched case-insensitively; the file need not exist.

    Raises:
        TypeError: ``path`` is not a str or os.PathLike.
        ValueError: any other suffix.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}.")
    suffix = Path(path).suffix.lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    known = ", ".join(f"{s} ({b})" for s, b in _SUFFIXES.items())
    hint = " For an OpenVINO IR, pass the .xml beside the .bin." if suffix == ".bin" else ""
    raise ValueError(
        f"Cannot tell which runtime runs {Path(path).name!r} from its suffix "
        f"{suffix or '(none)'!r}: expected one of {known}.{hint} "
        f"Pass backend= (one of {', '.join(BACKENDS)}) to choose one.")


def open_backend(
    path: str | os.PathLike[str],
    backend: str | None = None,
    *,
    runtime: RuntimeOptions | None = None,
    threads: int | None = None,
    device: str | None = None,
    providers: Sequence[str | tuple[str, dict]] | str | None = None,
    precision: str | None = "f32",
    xnnpack: bool = True,
) -> Backend:
    """Opens a model file with the backend its suffix names, or with ``backend``.

    Args:
        path: the model file (``.onnx``, ``.tflite``, or an OpenVINO ``.xml``
            with its ``.bin`` beside it).
        backend: ``"onnxruntime"``, ``"tflite"`` or ``"openvino"``; ``None``
            chooses from the suffix (:func:`backend_for_path`). OpenVINO also
            reads ``.onnx`` files directly.
        runtime: all of these options as one
            :class:`edgepose.runtime.RuntimeOptions`, instead of the
            keywords (giving both is a ValueError).
        threads: intra-op threads (onnxruntime ``intra_op_num_threads``, TFLite
            ``num_threads``, OpenVINO ``INFERENCE_NUM_THREADS``); ``None`` keeps
            the runtime's default, except TFLite, whose default of one thread
            becomes every available core.
        device: OpenVINO only: ``"CPU"``, ``"GPU"``, ``"NPU"``, ``"AUTO"``...
            (``None``: ``"CPU"``).
        providers: onnxruntime only: ordered execution providers, each a name
            or ``(name, options)``; ``None``: ``["CPUExecutionProvider"]``.
        precision: OpenVINO only: ``INFERENCE_PRECISION_HINT`` (``"f32"``,
            ``"f16"``, ``"bf16"``), ``None`` for the plugin's default (which
            is bf16 or f16 on some CPUs and breaks parity with the other
            runtimes). The other backends run the precision stored in the
            file and accept only the default.
        xnnpack: TFLite only: False runs TFLite's reference kernels instead
            of the XNNPACK delegate (slower; int8 rounding as the reference).

    The backend is built from its :data:`BACKENDS` entry: its module is
    imported and its class constructed with ``threads`` and the options the
    entry lists.

    Returns:
        An open :class:`Backend`; use it as a context manager or call close().

    Raises:
        ValueError: unknown backend or suffix, an option the chosen backend does
            not take, ``runtime`` together with keywords, an unavailable
            provider or device, or a file the runtime cannot load.
        FileNotFoundError: no file at ``path``.
        ImportError: the runtime is not installed (names the extra).
    """
    options = {"device": device, "providers": providers, "precision": precision,
               "xnnpack": xnnpack}
    if runtime is not None:
        given = [k for k, v in (("backend", backend), ("threads", threads)) if v is not None]
        given += [k for k, v in options.items() if v != _OPTION_DEFAULTS[k]]
        if given:
            raise ValueError(
                "Give runtime options either as runtime= or as keywords, not both: got runtime= "
                f"and {', '.join(f'{k}=' for k in given)}. Put them in the RuntimeOptions: "
                f"runtime.replace({', '.join(f'{k}=...' for k in given)}).")
        backend = runtime.backend_for(path)
        kwargs = runtime.backend_kwargs(backend)
        threads = kwargs.pop("threads")
        options = {**_OPTION_DEFAULTS, **kwargs}
    name = backend_for_path(path) if backend is None else backend
    entry = BACKENDS.get(name) if isinstance(name, str) else None
    if entry is None:
        raise ValueError(f"Unknown backend {name!r}: expected one of {', '.join(BACKENDS)}.")
    for option, value in options.items():
        if option not in entry.options and value != _OPTION_DEFAULTS[option] and not (
                option == "precision" and value is None):
            raise ValueError(_foreign_option(option, value, name))
    cls = getattr(importlib.import_module(entry.module), entry.cls)
    return cls(path, threads=threads, **{option: options[option] for option in entry.options})


def _foreign_option(option: str, value: Any, name: str) -> str:
    """The message for ``option`` given to backend ``name``, which does not take it."""
    if option == "providers":
        return (f"providers is an onnxruntime option; backend {name!r} does not take it"
                + (" (use device=)." if name == "openvino" else "."))
    if option == "device":
        return (f"device is an OpenVINO option; backend {name!r} does not take it"
                + (" (onnxruntime selects hardware with providers=)." if name == "onnxruntime"
                   else " (TFLite runs on the CPU)."))
    if option == "precision":
        return (f"precision is an OpenVINO option; backend {name!r} runs the precision stored "
                f"in the file, got precision={value!r}.")
    return f"xnnpack is a TFLite option; backend {name!r} does not take it."
