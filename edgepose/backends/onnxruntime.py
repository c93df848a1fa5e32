"""The onnxruntime backend (``pip install 'edgepose[onnx]'``).

Execution providers are given as onnxruntime takes them: an ordered list of
names or ``(name, options)`` pairs. A provider this onnxruntime build does not
have is an error, never a silent fall back to the CPU.

ONNX graph inputs and outputs carry no quantization parameters, so every
:class:`TensorInfo` here has ``scale = zero_point = None``. An integer input
(MoveNet's uint8 image, the PoseNet conversion's uint8 input) takes raw
integer values: a float feed is rounded and clipped to the dtype's range, not
quantized. Integer outputs come back unchanged in their dtype: the PoseNet
ONNX conversion's three uint8 outputs are the raw codes of the TFLite model
(its QuantizeLinear nodes sit inside the graph), so
``(q - zero_point) * scale`` with the parameters of the TFLite file (or the
model card) gives the TFLite backend's float outputs.
"""
from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Sequence

import numpy as np

from edgepose._stdio import stdout_redirected
from edgepose.backends._base import (
    BackendBase,
    TensorInfo,
    check_model_path,
    check_threads,
    runtime_message,
)

__all__ = ["OnnxRuntimeBackend"]

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16,
    "tensor(int32)": np.int32,
    "tensor(uint32)": np.uint32,
    "tensor(int64)": np.int64,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}

# onnxruntime's error classes for a file it cannot parse or build a graph from
# (a damaged file can also fail on decoding its own error message).
_LOAD_ERRORS = ("InvalidProtobuf", "InvalidGraph", "InvalidArgument", "Fail",
                "NotImplemented", "NoModel", "UnicodeDecodeError")

#: Session log severity: 3 = errors only. onnxruntime's graph warnings (such as
#: "Initializer ... appears in graph inputs", which many exported detectors
#: trigger) are about the file, not the user's code.
_LOG_SEVERITY_ERROR = 3


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(
            "Backend 'onnxruntime' needs ONNX Runtime: pip install 'edgepose[onnx]'."
        ) from error
    return onnxruntime


def _normalize_providers(providers, available: list[str]) -> tuple[list[str], list[dict]]:
    if providers is None:
        providers = ["CPUExecutionProvider"]
    elif isinstance(providers, str) or (
            isinstance(providers, tuple) and len(providers) == 2
            and isinstance(providers[1], dict)):
        providers = [providers]  # one provider, or one (name, options) pair
    if not isinstance(providers, Sequence) or len(providers) == 0:
        raise ValueError(
            "providers must be a non-empty list of provider names or (name, options) pairs, "
            f"got {providers!r}. Available providers: {', '.join(available)}.")
    names, options = [], []
    for item in providers:
        if isinstance(item, str):
            name, opts = item, {}
        elif (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)
              and isinstance(item[1], dict)):
            name, opts = item
        else:
            raise TypeError(
                f"Each provider must be a name or a (name, options dict) pair, got {item!r}.")
        if name not in available:
            raise ValueError(
                f"Specified provider '{name}' is unavailable. Available providers: "
                f"{', '.join(available)}.")
        names.append(name)
        options.append(dict(opts))
    return names, options


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[io.StringIO]:
    """Keeps onnxruntime's chatter off stdout while an InferenceSession is created.

    onnxruntime prints its "EP Error ... Falling back ... and retrying" banner
    with ``print`` on stdout (and its C++ code may write to file descriptor 1),
    which would corrupt a caller's stdout, such as ``edgepose run --out -``'s
    JSON lines. Python's ``sys.stdout`` goes into the yielded buffer (the
    banner repeats the error the session raises; a caller may quote it), file
    descriptor 1 points at stderr; both are restored afterwards.
    """
    with stdout_redirected(io.StringIO()) as buffer:
        yield buffer


def _tensor_info(node, path, role: str) -> TensorInfo:
    dtype = _DTYPES.get(node.type)
    if dtype is None:
        raise ValueError(
            f"{path}: {role} {node.name!r} has type {node.type}, which edgepose cannot "
            f"exchange as a NumPy array (supported: {', '.join(_DTYPES)}).")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in node.shape)
    return TensorInfo(node.name, shape, np.dtype(dtype))


class OnnxRuntimeBackend(BackendBase):
    """Runs an ONNX model with onnxruntime.

    Attributes:
        name: ``"onnxruntime"``.
        path: the model file.
        inputs, outputs: :class:`TensorInfo` per graph input/output, dynamic
            (symbolic) dimensions as ``None``.
        providers: the providers the session actually uses, in priority order.
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        providers: Sequence[str | tuple[str, dict]] | str | None = None,
        threads: int | None = None,
    ) -> None:
        """Opens ``path`` in an onnxruntime InferenceSession.

        Args:
            path: an ONNX (or ORT-format) model file.
            providers: ordered execution providers, each a name or
                ``(name, options)`` as onnxruntime takes them; ``None``:
                ``["CPUExecutionProvider"]``.
            threads: ``intra_op_num_threads``; ``None`` keeps onnxruntime's
                default (one per physical core).

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: an unavailable provider, bad ``threads``, or a file
                onnxruntime cannot load as an ONNX model.
            TypeError: a malformed provider entry or ``threads``.
            ImportError: onnxruntime is not installed.
            RuntimeError: onnxruntime failed to create the session otherwise,
                or dropped a requested provider.
        """
        super().__init__()
        threads = check_threads(threads)
        self.path = check_model_path(path, "an ONNX")
        ort = _import_onnxruntime()
        names, options = _normalize_providers(providers, ort.get_available_providers())

        session_options = ort.SessionOptions()
        session_options.log_severity_level = _LOG_SEVERITY_ERROR
        if threads is not None:
            session_options.intra_op_num_threads = threads
        try:
            with _quiet_stdout() as banner:
                session = ort.InferenceSession(
                    str(self.path), sess_options=session_options, providers=names,
                    provider_options=options)
        except Exception as error:  # onnxruntime raises its own pybind classes
            if type(error).__name__ in _LOAD_ERRORS:
                raise ValueError(
                    f"{self.path} could not be loaded as an ONNX model by onnxruntime "
                    f"{ort.__version__}: {runtime_message(error)}") from error
            raise RuntimeError(
                f"onnxruntime could not create a session for {self.path}: "
                f"{runtime_message(error)}") from error
        active = session.get_providers()
        dropped = [n for n in names if n not in active]
        if dropped:
            said = " ".join(line.strip("* ") for line in banner.getvalue().splitlines()
                            if line.strip("* "))
            raise RuntimeError(
                f"onnxruntime did not enable provider(s) {', '.join(dropped)} for {self.path} "
                f"(active: {', '.join(active)}); "
                + (f"onnxruntime said: {said}" if said else "see onnxruntime's log for the reason")
                + ".")
        self.inputs = tuple(_tensor_info(n, self.path, "input") for n in session.get_inputs())
        self.outputs = tuple(_tensor_info(n, self.path, "output")
                             for n in session.get_outputs())
        self.providers = tuple(active)
        self._session = session
        self._output_names = [info.name for info in self.outputs]

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self._session.run(self._output_names, feeds)
        except Exception as error:
            raise RuntimeError(
                f"onnxruntime failed to run {self.path}: {runtime_message(error)}") from error
        return dict(zip(self._output_names, values))

    def _release(self) -> None:
        self._session = None
