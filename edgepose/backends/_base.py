"""What every backend shares: tensor descriptions, feed checks, quantization.

A backend only moves tensors: it opens a model file, describes its inputs and
outputs (:class:`TensorInfo`), runs it on NumPy arrays and closes it. The rules
for converting feeds and outputs live here, once, so that the three runtimes
behave identically:

* feeds are checked by name, rank, fixed dimensions and dtype before the
  runtime sees them (:func:`prepare_feeds`);
* a float feed for a quantized integer input (``scale`` given) holds real
  values and is quantized as TFLite's quantize op does,
  ``q = zero_point + round(x / scale)`` with ties rounded away from zero, then
  clipped to the dtype's range; a float feed for a non-quantized integer
  input (MoveNet's uint8 pixels, the PoseNet ONNX conversion) is rounded and
  clipped the same way;
* an integer feed holds codes: of the input's dtype it passes through
  unchanged (raw quantized values), of another integer dtype it is converted
  exactly and clipped to the input dtype's range (never rescaled);
* quantized integer outputs come back dequantized to float32,
  ``(q - zero_point) * scale``; float outputs come back as float32; integer
  outputs *without* quantization parameters come back unchanged, in their
  file dtype (see :func:`convert_output`).

Layouts are never changed: NCHW and NHWC models take and give exactly the
shapes their files declare.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from edgepose._validate import is_int

__all__ = ["Backend", "TensorInfo", "available_cores", "convert_output", "prepare_feeds"]


@dataclass(frozen=True)
class TensorInfo:
    """One input or output tensor of a model, as the file declares it.

    Attributes:
        name: the tensor name the runtime uses (feeds and outputs are keyed by it).
        shape: dimensions; ``None`` marks a dynamic dimension (any size).
        dtype: the dtype in the file (``uint8`` for a quantized tensor).
        scale: quantization scale, ``real = (q - zero_point) * scale``; ``None``
            when the tensor is not quantized.
        zero_point: quantization zero point; ``None`` when not quantized.
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype
    scale: float | None = None
    zero_point: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        object.__setattr__(self, "shape", tuple(
            None if d is None else int(d) for d in self.shape))
        if (self.scale is None) != (self.zero_point is None):
            raise ValueError(
                f"TensorInfo {self.name!r}: scale and zero_point must both be given or both "
                f"be None, got scale={self.scale!r}, zero_point={self.zero_point!r}.")
        if self.scale is not None:
            if not (np.isfinite(self.scale) and self.scale > 0):
                raise ValueError(
                    f"TensorInfo {self.name!r}: scale must be a positive finite number, "
                    f"got {self.scale!r}.")
            if self.dtype.kind not in "iu":
                raise ValueError(
                    f"TensorInfo {self.name!r}: only integer tensors can be quantized, "
                    f"got dtype {self.dtype}.")
            object.__setattr__(self, "scale", float(self.scale))
            object.__setattr__(self, "zero_point", int(self.zero_point))

    @property
    def quantized(self) -> bool:
        """True when the tensor carries a scale and zero point."""
        return self.scale is not None

    def describe(self) -> str:
        """One line for error messages: ``image (1, 192, 192, 3) float32``."""
        text = f"{self.name} {format_shape(self.shape)} {self.dtype}"
        if self.scale is not None:
            text += f" (quantized: scale {self.scale:g}, zero point {self.zero_point})"
        return text


@runtime_checkable
class Backend(Protocol):
    """The interface every backend implements.

    ``run`` takes feeds by input name and returns a dict of output name to
    array, in the model's output order. ``close`` is idempotent; ``run`` after
    ``close`` raises RuntimeError. Backends are context managers.
    """

    name: str
    path: Path
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc: object) -> None: ...


def format_shape(shape: tuple[int | None, ...]) -> str:
    """``(1, ?, ?, 3)``: ``?`` for a dynamic dimension."""
    parts = ["?" if d is None else str(d) for d in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def describe_tensors(infos: tuple[TensorInfo, ...]) -> str:
    return "; ".join(info.describe() for info in infos) or "(none)"


def prepare_feeds(
    inputs: tuple[TensorInfo, ...], feeds: Mapping[str, object]
) -> dict[str, np.ndarray]:
    """Checks ``feeds`` against ``inputs`` and converts them to the input dtypes.

    Args:
        inputs: the model's inputs.
        feeds: input name -> array-like. Never modified.

    Returns:
        input name -> C-contiguous array of exactly the input's dtype, in the
        order of ``inputs``.

    Raises:
        TypeError: ``feeds`` is not a mapping, or a feed is not real-valued
            numeric data (complex, object, strings).
        ValueError: missing or unknown input names, a wrong rank, or a fixed
            dimension of the wrong size.
    """
    if not isinstance(feeds, Mapping):
        raise TypeError(
            f"feeds must be a mapping from input name to array, got {type(feeds).__name__}. "
            f"The model expects: {describe_tensors(inputs)}.")
    expected = [info.name for info in inputs]
    missing = [name for name in expected if name not in feeds]
    unknown = [name for name in feeds if name not in expected]
    if missing or unknown:
        problems = []
        if missing:
            problems.append("missing " + ", ".join(repr(n) for n in missing))
        if unknown:
            problems.append("unknown " + ", ".join(repr(n) for n in unknown))
        raise ValueError(
            f"Wrong input names ({'; '.join(problems)}). "
            f"The model expects: {describe_tensors(inputs)}.")
    return {info.name: _prepare_one(info, feeds[info.name]) for info in inputs}


def _prepare_one(info: TensorInfo, value: object) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"Input {info.name!r} must be a real-valued numeric array convertible to "
            f"{info.dtype}, got dtype {arr.dtype}.")
    if arr.ndim != len(info.shape):
        raise ValueError(
            f"Input {info.name!r} must have {len(info.shape)} dimensions, shape "
            f"{format_shape(info.shape)}{_dynamic_note(info.shape)}, got shape {arr.shape}.")
    if any(e is not None and e != g for e, g in zip(info.shape, arr.shape)):
        raise ValueError(
            f"Input {info.name!r} must have shape {format_shape(info.shape)}"
            f"{_dynamic_note(info.shape)}, got {arr.shape}.")
    if arr.dtype != info.dtype:
        arr = _convert(info, arr)
    return np.ascontiguousarray(arr)


def _dynamic_note(shape: tuple[int | None, ...]) -> str:
    return " (? = any size)" if any(d is None for d in shape) else ""


def _convert(info: TensorInfo, arr: np.ndarray) -> np.ndarray:
    target = info.dtype
    if target.kind == "f":
        return arr.astype(target)
    if target.kind == "b":
        return arr != 0
    if target.kind not in "iu":
        raise TypeError(
            f"Input {info.name!r} has dtype {target}, which edgepose cannot fill from "
            f"a {arr.dtype} array.")
    limits = np.iinfo(target)
    if arr.dtype.kind in "iub":
        # Integers are codes, quantized or not: converted exactly, clipped to the range.
        wide = arr.astype(np.uint64 if arr.dtype == np.uint64 else np.int64)
        wide_limits = np.iinfo(wide.dtype)
        low = wide.dtype.type(max(int(limits.min), int(wide_limits.min)))
        high = wide.dtype.type(min(int(limits.max), int(wide_limits.max)))
        return np.clip(wide, low, high).astype(target)
    values = arr.astype(np.float32 if target.itemsize <= 2 else np.float64)
    if info.scale is not None:
        values = values / values.dtype.type(info.scale)
    # TFLite's quantize: zero_point + round(x / scale), half away from zero.
    truncated = np.trunc(values)
    values = np.where(np.abs(values - truncated) == 0.5, truncated + np.sign(values),
                      np.rint(values))
    if info.scale is not None:
        values += info.zero_point
    low, high = float(limits.min), float(limits.max)
    if high > limits.max:  # 2**63 - 1 and 2**64 - 1 round up in float64
        high = float(np.nextafter(high, 0))
    return np.clip(values, low, high).astype(target)


def convert_output(info: TensorInfo, arr: np.ndarray) -> np.ndarray:
    """Brings one raw output to the dtype callers get.

    * quantized integer (``info.scale`` given): dequantized to float32,
      ``(q - zero_point) * scale``;
    * floating (float16/32/64): float32;
    * integer without quantization parameters: unchanged. The runtime cannot
      know their meaning: the PoseNet ONNX conversion, for example, declares
      plain uint8 outputs (its QuantizeLinear nodes sit inside the graph), so
      they come back as raw uint8 codes and the caller dequantizes them with
      the scale and zero point from the model card. Returning them as integers
      keeps that visible: the decoders reject integer arrays.
    """
    if info.scale is not None:
        return ((arr.astype(np.float32) - np.float32(info.zero_point))
                * np.float32(info.scale))
    if arr.dtype.kind == "f":
        return arr.astype(np.float32, copy=False)
    return arr


def check_model_path(path: str | os.PathLike[str], kind: str) -> Path:
    """Returns ``path`` as a Path after checking that it names a non-empty file.

    Raises:
        TypeError: ``path`` is not a str or os.PathLike.
        FileNotFoundError: nothing exists at ``path``.
        ValueError: ``path`` is a directory or an empty file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}.")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Model file not found: {path}")
    if not path.is_file():
        raise ValueError(f"{path} could not be loaded as {kind} model: it is not a file.")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} could not be loaded as {kind} model: the file is empty.")
    return path


def available_cores() -> int:
    """The number of cores this process may run on (its CPU affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def check_threads(threads: int | None) -> int | None:
    """``None`` (the runtime's default) or an int >= 1."""
    if threads is None:
        return None
    if not is_int(threads):
        raise TypeError(f"threads must be None or an int >= 1, got {type(threads).__name__}.")
    if threads < 1:
        raise ValueError(
            f"threads must be None (the runtime's default) or an int >= 1, got {threads}.")
    return int(threads)


def runtime_message(error: BaseException) -> str:
    """A runtime's exception text on one line, without blank lines."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


class BackendBase:
    """Shared behaviour: run() plumbing, close(), the context manager.

    Subclasses set ``name``, ``path``, ``inputs`` and ``outputs`` and
    implement ``_run(feeds) -> {output name: raw array}`` and ``_release()``.
    ``run`` holds a per-instance lock, so one backend may be shared by
    threads (calls are serialized).
    """

    name: str
    path: Path
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs the model once.

        Args:
            feeds: input name -> array with the input's rank and fixed
                dimensions. Float feeds for quantized inputs are quantized;
                see the module docstring for the conversions.

        Returns:
            output name -> array, in the model's output order. Quantized
            outputs are dequantized to float32, float outputs are float32,
            integer outputs without quantization parameters keep their dtype.
            Arrays are new (never views of runtime memory).

        Raises:
            TypeError: see :func:`prepare_feeds`.
            ValueError: see :func:`prepare_feeds`.
            RuntimeError: the backend is closed, or the runtime failed.
        """
        prepared = prepare_feeds(self.inputs, feeds)
        with self._lock:
            if self._closed:
                raise RuntimeError(f"The {self.name} backend for {self.path} is closed.")
            raw = self._run(prepared)
        return {info.name: convert_output(info, raw[info.name]) for info in self.outputs}

    def close(self) -> None:
        """Releases the runtime's session; idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._release()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return f"{type(self).__name__}({str(self.path)!r}{state})"

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError
