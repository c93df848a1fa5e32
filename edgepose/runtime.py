"""How to run a model: one options object for every entry point.

:class:`RuntimeOptions` names the inference runtime and its settings in the
runtimes' own words (as MediaPipe's task options do), once, for
``Estimator``, ``PersonDetector``, ``PoseTracker``, evaluation and bench::

    import edgepose

    gpu = edgepose.RuntimeOptions(backend="openvino", device="GPU", threads=2)
    with edgepose.PoseTracker("movenet-lightning", "yolox-nano", runtime=gpu) as tracker:
        ...

Options that belong to one runtime (``providers`` for onnxruntime,
``device`` and ``precision`` for OpenVINO, ``xnnpack`` for TFLite) are
passed only to a model that runs on it, so one object serves a pose model
and a detector that run on different runtimes; with ``backend`` fixed, an
option of another runtime is an error (see
:meth:`RuntimeOptions.backend_kwargs`). When the detector needs other
options than the pose model (the pose model on the GPU, the detector on the
CPU), ``Estimator`` and ``PoseTracker`` take ``detector_runtime=``::

    edgepose.Estimator("rtmpose.xml", "yolox_nano.onnx", runtime=gpu,
                       detector_runtime=edgepose.RuntimeOptions(threads=1))

Every entry point also keeps the fields as keyword shortcuts
(``threads=2``); giving both those and ``runtime=`` is a ValueError
(:meth:`RuntimeOptions.resolve`).
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgepose._validate import is_int

__all__ = ["RuntimeOptions", "OPENVINO_PRECISIONS"]

#: OpenVINO's INFERENCE_PRECISION_HINT values (None: the plugin's own choice).
OPENVINO_PRECISIONS = ("f32", "f16", "bf16")


def _backend_names() -> tuple[str, ...]:
    from edgepose.backends import BACKENDS

    return tuple(BACKENDS)


def _providers(value: Any) -> tuple[str | tuple[str, Mapping[str, Any]], ...]:
    items = (value,) if isinstance(value, str) else value
    if not isinstance(items, Sequence) or not items:
        raise ValueError(
            "providers must be a non-empty list of onnxruntime execution providers, each a "
            "name or (name, options), e.g. ['CPUExecutionProvider'], got "
            f"{value!r}.")
    out = []
    for item in items:
        if isinstance(item, str) and item:
            out.append(item)
        elif (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)
              and item[0] and isinstance(item[1], Mapping)):
            out.append((item[0], dict(item[1])))
        else:
            raise ValueError(
                f"Each provider must be a name or (name, options dict), got {item!r}.")
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class RuntimeOptions:
    """Which inference runtime runs a model, and how.

    Attributes:
        backend: ``"onnxruntime"``, ``"tflite"`` or ``"openvino"``
            (:data:`edgepose.backends.BACKENDS`); None chooses from each
            file's suffix (.onnx, .tflite, .xml).
        threads: intra-op threads per model (a positive int); None keeps the
            runtime's default (TFLite: every available core).
        device: OpenVINO's device: ``"CPU"``, ``"GPU"``, ``"NPU"``,
            ``"AUTO"``, ... (None: ``"CPU"``).
        providers: onnxruntime's ordered execution providers, each a name or
            ``(name, options)`` (None: ``["CPUExecutionProvider"]``).
        precision: OpenVINO's inference precision hint, ``"f32"`` (the
            default: the CPU plugin would otherwise pick bf16 on some CPUs),
            ``"f16"``, ``"bf16"``, or None for the plugin's choice.
        xnnpack: TFLite: False runs TFLite's reference kernels instead of
            the XNNPACK delegate (slower; int8 rounds as the reference does).

    Raises:
        ValueError: a field out of its domain (the message names it).
    """

    backend: str | None = None
    threads: int | None = None
    device: str | None = None
    providers: tuple[str | tuple[str, Mapping[str, Any]], ...] | None = None
    precision: str | None = "f32"
    xnnpack: bool = True

    def __post_init__(self) -> None:
        if self.backend is not None and self.backend not in _backend_names():
            raise ValueError(
                f"backend must be one of {', '.join(_backend_names())} (or None to choose "
                f"from the file's suffix), got {self.backend!r}.")
        if self.threads is not None and not (is_int(self.threads) and self.threads >= 1):
            raise ValueError(
                f"threads must be a positive integer (or None for the runtime's default), "
                f"got {self.threads!r}.")
        if self.threads is not None:
            object.__setattr__(self, "threads", int(self.threads))
        if self.device is not None and not (isinstance(self.device, str) and self.device):
            raise ValueError(
                f"device must be an OpenVINO device name such as 'CPU', 'GPU' or 'AUTO', got "
                f"{self.device!r}.")
        if self.providers is not None:
            object.__setattr__(self, "providers", _providers(self.providers))
        if self.precision is not None and self.precision not in OPENVINO_PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(OPENVINO_PRECISIONS)} or None, got "
                f"{self.precision!r}.")
        if not isinstance(self.xnnpack, bool):
            raise ValueError(f"xnnpack must be True or False, got {self.xnnpack!r}.")

    @classmethod
    def resolve(cls, runtime: RuntimeOptions | None = None, **shortcuts: Any) -> RuntimeOptions:
        """``runtime``, or one built from the flat keyword shortcuts.

        The entry points accept ``runtime=`` and, as shortcuts, the fields as
        keywords (``backend=``, ``threads=``, ...); a shortcut left at None
        (or, for ``xnnpack``, True) is not given. Giving both ``runtime``
        and a shortcut is a ValueError naming the shortcut.
        """
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        given = {k: v for k, v in shortcuts.items()
                 if k in defaults and v is not None and not (k == "xnnpack" and v is True)}
        unknown = sorted(set(shortcuts) - set(defaults))
        if unknown:
            raise TypeError(f"unknown runtime option(s): {', '.join(unknown)}; expected "
                            f"{', '.join(defaults)}.")
        if runtime is None:
            return cls(**given)
        if not isinstance(runtime, RuntimeOptions):
            raise TypeError(
                f"runtime must be an edgepose.RuntimeOptions, got {type(runtime).__name__}.")
        if given:
            raise ValueError(
                f"Give runtime options either as runtime= or as keywords, not both: got "
                f"runtime= and {', '.join(sorted(given))}=. Put them in the RuntimeOptions: "
                f"runtime.replace({', '.join(f'{k}=...' for k in sorted(given))}).")
        return runtime

    def replace(self, **changes: Any) -> RuntimeOptions:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON types (providers as lists)."""
        providers = None if self.providers is None else [
            p if isinstance(p, str) else [p[0], dict(p[1])] for p in self.providers]
        return {"backend": self.backend, "threads": self.threads, "device": self.device,
                "providers": providers, "precision": self.precision, "xnnpack": self.xnnpack}

    def only_for(self, name: str) -> RuntimeOptions:
        """These options with ``backend`` fixed to ``name`` and the options
        of the other runtimes back at their defaults, so one object serves a
        sweep over runtimes (``edgepose bench --backend a,b --device GPU``)."""
        from edgepose.backends import BACKENDS

        if name not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}.")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        foreign = {option: defaults[option] for entry_name, entry in BACKENDS.items()
                   if entry_name != name for option in entry.options}
        return self.replace(backend=name, **foreign)

    def backend_for(self, path: str | os.PathLike[str]) -> str:
        """The backend that runs ``path``: ``backend``, else from the suffix."""
        from edgepose.backends import backend_for_path

        return self.backend if self.backend is not None else backend_for_path(path)

    def backend_kwargs(self, name: str) -> dict[str, Any]:
        """The keywords of :func:`edgepose.backends.open_backend` for backend ``name``.

        ``threads`` goes to every runtime. The options of one runtime go only to
        it, so a TFLite pose model and an ONNX detector share one options object
        (``xnnpack=False`` reaches the TFLite model alone). When ``backend`` is
        fixed, an option of another runtime is a ValueError (it could reach no
        model); :func:`edgepose.backends.open_backend` says which.
        """
        kwargs: dict[str, Any] = {"threads": self.threads}
        fixed = self.backend is not None
        if name == "onnxruntime" or (fixed and self.providers is not None):
            kwargs["providers"] = None if self.providers is None else list(self.providers)
        if name == "openvino" or (fixed and self.device is not None):
            kwargs["device"] = self.device
        if name == "openvino" or (fixed and self.precision not in ("f32", None)):
            kwargs["precision"] = self.precision
        if name == "tflite" or (fixed and not self.xnnpack):
            kwargs["xnnpack"] = self.xnnpack
        return kwargs

    def open(self, path: str | os.PathLike[str]):
        """Opens ``path`` with these options: an :class:`edgepose.backends.Backend`."""
        from edgepose.backends import open_backend

        name = self.backend_for(path)
        return open_backend(path, name, **self.backend_kwargs(name))
