"""The TFLite backend (``pip install 'edgepose[tflite]'``).

The interpreter comes from ``ai_edge_litert`` (LiteRT, the maintained
package), else ``tflite_runtime``, else ``tensorflow.lite``, whichever is
installed first in that order.

Quantization parameters come from the interpreter's tensor details: a tensor
with a non-zero per-tensor scale is quantized (PoseNet: uint8 input with
scale 1/128 and zero point 128, uint8 outputs). A scale of 0 means not
quantized: MoveNet's uint8 input takes raw pixel values. Per-channel
quantized inputs or outputs are refused.

Dynamic dimensions are those the file's shape signature marks -1; an input
fed at a new size along them is resized (``resize_tensor_input`` with
``strict=True`` and ``allocate_tensors``), under the backend's lock, and the
size is kept: feeding the same size again (every frame of a video) does not
reallocate. A dynamic dimension may be at most
:data:`edgepose.card.MAX_INPUT_SIDE` (4096), the largest input side a card
may give. Fixed dimensions must match: most TFLite files are fully static.

Before the interpreter sees a file, its flatbuffer structure is checked
(:func:`check_tflite_flatbuffer`): a truncated or corrupt file is a
ValueError, never a crash of the process, whichever interpreter is installed.
"""
from __future__ import annotations

import mmap
import os
import struct

import numpy as np

from edgepose.backends._base import (
    BackendBase,
    TensorInfo,
    available_cores,
    check_model_path,
    check_threads,
    format_shape,
    runtime_message,
)

__all__ = ["TFLiteBackend", "check_tflite_flatbuffer", "import_interpreter", "reference_kernels",
           "graph_interpreter"]

_IMPORT_ERROR = ("Backend 'tflite' needs a TFLite interpreter (ai-edge-litert, tflite-runtime "
                 "or tensorflow): pip install 'edgepose[tflite]'.")


def import_interpreter() -> tuple[type, str]:
    """The TFLite interpreter class of the first installed package, and its name.

    Public: the export stage and the benchmarks open interpreters with it, so
    that every part of edgepose picks the same package in the same order:
    ``ai_edge_litert`` (LiteRT), else ``tflite_runtime``, else ``tensorflow``.

    Returns:
        ``(Interpreter, package)``, package one of ``"ai_edge_litert"``,
        ``"tflite_runtime"``, ``"tensorflow"``.

    Raises:
        ImportError: none is installed (names the extra).
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter, "tflite_runtime"
    except ImportError:
        pass
    try:
        import tensorflow as tf
        return tf.lite.Interpreter, "tensorflow"
    except (ImportError, AttributeError):
        pass
    raise ImportError(_IMPORT_ERROR)


def reference_kernels(package: str):
    """The ``experimental_op_resolver_type`` for TFLite's builtin kernels without
    delegates (no XNNPACK), for the interpreter of ``package`` (see
    :func:`import_interpreter`).

    Raises:
        ImportError, AttributeError: that package has no op-resolver setting.
    """
    if package == "ai_edge_litert":
        from ai_edge_litert.interpreter import OpResolverType
    elif package == "tflite_runtime":
        from tflite_runtime.interpreter import OpResolverType
    else:
        import tensorflow as tf
        OpResolverType = tf.lite.experimental.OpResolverType
    return OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES


def graph_interpreter(path: str | os.PathLike[str]):
    """An interpreter that reads a ``.tflite``'s graph: its operators, tensors and
    signatures, as the file has them.

    It uses the builtin kernels without delegates where the package allows
    (with XNNPACK the operator details describe the delegate's partition, not
    the file), and allocates nothing: for inspecting a model, not running it.
    The file is not structure-checked (:func:`check_tflite_flatbuffer`).

    Returns:
        ``(interpreter, package)``.

    Raises:
        ImportError: no TFLite interpreter is installed.
    """
    Interpreter, package = import_interpreter()
    kwargs = {}
    try:
        kwargs["experimental_op_resolver_type"] = reference_kernels(package)
    except (ImportError, AttributeError):  # an old package: its default kernels
        pass
    return Interpreter(model_path=str(path), **kwargs), package


# --- flatbuffer structure check --------------------------------------------
#
# The TFLite schema (tensorflow/compiler/mlir/lite/schema/schema.fbs), fields
# by index, as far as the interpreter follows offsets when it builds a model.
# Union members (operator options) are checked as tables without their fields.

_MODEL = {1: "tables:operator_code", 2: "tables:subgraph", 3: "string", 4: "tables:buffer",
          5: "vector:4", 6: "tables:metadata", 7: "tables:signature_def", 8: "tables:any",
          9: "tables:any"}
_OPERATOR_CODE = {1: "string"}
_SUBGRAPH = {0: "tables:tensor", 1: "vector:4", 2: "vector:4", 3: "tables:operator",
             4: "string"}
_TENSOR = {0: "vector:4", 3: "string", 4: "table:quantization", 6: "table:any",
           7: "vector:4", 9: "tables:any"}
_QUANTIZATION = {0: "vector:4", 1: "vector:4", 2: "vector:4", 3: "vector:8", 5: "table:any"}
_OPERATOR = {1: "vector:4", 2: "vector:4", 4: "table:any", 5: "vector:1", 7: "vector:1",
             8: "vector:4", 12: "table:any"}
_BUFFER = {0: "vector:1"}
_METADATA = {0: "string"}
_SIGNATURE_DEF = {0: "tables:tensor_map", 1: "tables:tensor_map", 2: "string", 3: "string"}
_TENSOR_MAP = {0: "string"}
_TABLES = {"operator_code": _OPERATOR_CODE, "subgraph": _SUBGRAPH, "tensor": _TENSOR,
           "quantization": _QUANTIZATION, "operator": _OPERATOR, "buffer": _BUFFER,
           "metadata": _METADATA, "signature_def": _SIGNATURE_DEF,
           "tensor_map": _TENSOR_MAP, "any": {}}


class _Corrupt(Exception):
    pass


class _FlatbufferChecker:
    """Bounds checks of every table, vector and string the schema reaches."""

    def __init__(self, buf) -> None:
        self.buf = buf
        self.size = len(buf)

    def _u32(self, pos: int) -> int:
        self._need(pos, 4, "offset")
        return struct.unpack_from("<I", self.buf, pos)[0]

    def _need(self, pos: int, length: int, what: str) -> None:
        if pos < 0 or length < 0 or pos + length > self.size:
            raise _Corrupt(f"a {what} at byte {pos} ({length} bytes) lies outside the "
                           f"{self.size}-byte file")

    def table(self, pos: int, fields: dict[int, str]) -> None:
        self._need(pos, 4, "table")
        vtable = pos - struct.unpack_from("<i", self.buf, pos)[0]
        self._need(vtable, 4, "vtable")
        vtable_size, object_size = struct.unpack_from("<HH", self.buf, vtable)
        if vtable_size < 4 or vtable_size % 2:
            raise _Corrupt(f"the vtable at byte {vtable} has an invalid size {vtable_size}")
        self._need(vtable, vtable_size, "vtable")
        self._need(pos, max(object_size, 4), "table")
        count = (vtable_size - 4) // 2
        offsets = struct.unpack_from(f"<{count}H", self.buf, vtable + 4)
        for index, offset in enumerate(offsets):
            if offset and offset >= object_size:
                raise _Corrupt(f"field {index} of the table at byte {pos} lies outside it")
        for index, kind in fields.items():
            if index < count and offsets[index]:
                field = pos + offsets[index]
                self.follow(field + self._u32(field), kind)

    def follow(self, target: int, kind: str) -> None:
        if kind == "string":
            length = self._u32(target)
            self._need(target + 4, length + 1, "string")
        elif kind.startswith("vector:"):
            length = self._u32(target)
            self._need(target + 4, length * int(kind[7:]), "vector")
        elif kind.startswith("table:"):
            self.table(target, _TABLES[kind[6:]])
        elif kind.startswith("tables:"):
            length = self._u32(target)
            self._need(target + 4, 4 * length, "vector")
            fields = _TABLES[kind[7:]]
            for i in range(length):
                element = target + 4 + 4 * i
                self.table(element + self._u32(element), fields)
                if kind == "tables:buffer":
                    self._external_buffer(element + self._u32(element))

    def _external_buffer(self, pos: int) -> None:
        # Models over 2 GB keep buffer data after the flatbuffer: offset, size (uint64).
        vtable = pos - struct.unpack_from("<i", self.buf, pos)[0]
        vtable_size = struct.unpack_from("<H", self.buf, vtable)[0]
        fields = struct.unpack_from(f"<{(vtable_size - 4) // 2}H", self.buf, vtable + 4)
        if len(fields) > 2 and fields[1] and fields[2]:
            self._need(pos + fields[1], 8, "buffer offset")
            self._need(pos + fields[2], 8, "buffer size")
            offset = struct.unpack_from("<Q", self.buf, pos + fields[1])[0]
            size = struct.unpack_from("<Q", self.buf, pos + fields[2])[0]
            if size and offset > 1:
                self._need(offset, size, "buffer")


def check_tflite_flatbuffer(data) -> str | None:
    """Checks that ``data`` is structurally a complete TFLite flatbuffer.

    Checks the size, the ``TFL3`` file identifier at bytes 4..8, and that every
    table, vtable, vector and string reachable through the schema (operator
    codes, subgraphs, tensors, quantization, operators, buffers, metadata,
    signatures) lies inside the data, so that an interpreter that trusts the
    file cannot read past its end. It does not check that the model is
    meaningful (the interpreter does).

    Args:
        data: the file's bytes (bytes, mmap or memoryview).

    Returns:
        ``None`` if the structure is sound, else what is wrong.
    """
    if len(data) < 8:
        return f"it is {len(data)} bytes long, too short for a flatbuffer"
    if bytes(data[4:8]) != b"TFL3":
        return (f"it lacks the TFLite file identifier 'TFL3' at bytes 4..8 "
                f"(found {bytes(data[4:8])!r})")
    checker = _FlatbufferChecker(data)
    try:
        checker.table(checker._u32(0), _MODEL)
    except _Corrupt as problem:
        return f"it is truncated or corrupt: {problem}"
    except struct.error as problem:  # pragma: no cover - _need guards every read
        return f"it is truncated or corrupt: {problem}"
    return None


def _check_file(path) -> None:
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        problem = check_tflite_flatbuffer(data)
    if problem is not None:
        raise ValueError(f"{path} could not be loaded as a TFLite model: {problem}.")


class TFLiteBackend(BackendBase):
    """Runs a TFLite model with the LiteRT / TFLite interpreter.

    Attributes:
        name: ``"tflite"``.
        path: the model file.
        inputs, outputs: :class:`TensorInfo` per signature input/output, with
            ``scale``/``zero_point`` for quantized tensors and ``None`` for
            dimensions the file marks dynamic.
        interpreter_package: ``"ai_edge_litert"``, ``"tflite_runtime"`` or
            ``"tensorflow"``: where the interpreter came from.
    """

    name = "tflite"

    def __init__(self, path: str | os.PathLike[str], *, threads: int | None = None,
                 xnnpack: bool = True) -> None:
        """Opens ``path`` in a TFLite interpreter and allocates its tensors.

        Args:
            path: a ``.tflite`` flatbuffer.
            threads: the interpreter's ``num_threads``; ``None`` uses every
                core this process may run on (the interpreters' own default
                is 1 thread, which leaves a Raspberry Pi's other cores idle).
            xnnpack: run with the XNNPACK delegate (TFLite's default, much
                faster on ARM and x86). False uses TFLite's reference kernels,
                whose int8 rounding can differ from XNNPACK's (the MoveNet int8
                model scores a little higher with them).

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: bad ``threads``, a file that is not a complete TFLite
                flatbuffer or that the interpreter rejects, or per-channel
                quantized inputs/outputs.
            TypeError: ``threads`` is not an int.
            ImportError: no TFLite interpreter is installed.
        """
        super().__init__()
        threads = check_threads(threads)
        self.path = check_model_path(path, "a TFLite")
        Interpreter, self.interpreter_package = import_interpreter()
        _check_file(self.path)
        if threads is None:
            threads = available_cores()
        kwargs: dict = {"num_threads": threads}
        self.xnnpack = bool(xnnpack)
        if not self.xnnpack:
            kwargs["experimental_op_resolver_type"] = reference_kernels(self.interpreter_package)
        try:
            interpreter = Interpreter(model_path=str(self.path), **kwargs)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ValueError(
                f"{self.path} could not be loaded as a TFLite model by "
                f"{self.interpreter_package}: {runtime_message(error)}") from error
        input_details = interpreter.get_input_details()
        output_details = interpreter.get_output_details()
        self.inputs = tuple(self._tensor_info(d, "input") for d in input_details)
        self.outputs = tuple(self._tensor_info(d, "output") for d in output_details)
        self._input_index = {d["name"]: d["index"] for d in input_details}
        self._input_shape = {d["name"]: tuple(int(s) for s in d["shape"])
                             for d in input_details}
        self._output_index = {d["name"]: d["index"] for d in output_details}
        self._interpreter = interpreter

    def _tensor_info(self, details: dict, role: str) -> TensorInfo:
        name = details["name"]
        signature = details.get("shape_signature")
        if signature is None or len(signature) != len(details["shape"]):
            signature = details["shape"]
        shape = tuple(None if int(d) < 0 else int(d) for d in signature)
        params = details.get("quantization_parameters") or {}
        scales = np.asarray(params.get("scales", ()))
        if scales.size > 1:
            raise ValueError(
                f"{self.path}: {role} {name!r} is quantized per channel ({scales.size} "
                "scales); edgepose supports per-tensor quantized inputs and outputs only.")
        scale, zero_point = details.get("quantization", (0.0, 0))
        if scale == 0.0:
            return TensorInfo(name, shape, np.dtype(details["dtype"]))
        return TensorInfo(name, shape, np.dtype(details["dtype"]), float(scale), int(zero_point))

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        interpreter = self._interpreter
        resized = {name: arr.shape for name, arr in feeds.items()
                   if arr.shape != self._input_shape[name]}
        if resized:
            self._resize(resized)
        try:
            for name, arr in feeds.items():
                interpreter.set_tensor(self._input_index[name], arr)
            interpreter.invoke()
        except (ValueError, RuntimeError) as error:
            raise RuntimeError(
                f"TFLite failed to run {self.path}: {runtime_message(error)}") from error
        outputs = {}
        for name, index in self._output_index.items():
            value = interpreter.get_tensor(index)
            # Some interpreters hand out views of their buffers, which the next
            # invoke overwrites: keep only arrays that own their memory.
            outputs[name] = value if value.flags.owndata else value.copy()
        return outputs

    def _resize(self, shapes: dict[str, tuple[int, ...]]) -> None:
        from edgepose.card import MAX_INPUT_SIDE

        infos = {info.name: info for info in self.inputs}
        for name, shape in shapes.items():
            dynamic = [size for size, declared in zip(shape, infos[name].shape)
                       if declared is None]
            if max(dynamic, default=0) > MAX_INPUT_SIDE:
                raise ValueError(
                    f"Input {name!r} of {self.path.name} was fed with shape {shape}; a dynamic "
                    f"dimension may be at most {MAX_INPUT_SIDE} (edgepose.card.MAX_INPUT_SIDE). "
                    "Feed a smaller image or input size.")
        interpreter = self._interpreter
        try:
            for name, shape in shapes.items():
                interpreter.resize_tensor_input(self._input_index[name], list(shape), strict=True)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            # Put the interpreter back to the shapes it last ran with.
            for name in shapes:
                interpreter.resize_tensor_input(
                    self._input_index[name], list(self._input_shape[name]), strict=True)
            interpreter.allocate_tensors()
            wanted = ", ".join(f"{n!r} {format_shape(s)}" for n, s in shapes.items())
            raise ValueError(
                f"The TFLite model {self.path} cannot be resized to {wanted}: "
                f"{runtime_message(error)}") from error
        self._input_shape.update(shapes)

    def _release(self) -> None:
        self._interpreter = None
