"""ONNX artefacts: from PyTorch, to FP16, to INT8; each with its model card inside.

* :func:`torch_to_onnx`: ``torch.onnx.export(..., dynamo=True)`` into one
  self-contained file (weights inside, no external data), input and output
  names from the card, a dynamic batch axis when the model allows it.
* :func:`onnx_to_fp16`: FP16 weights and compute, inputs and outputs kept
  float32 (onnxruntime's ``convert_float_to_float16(keep_io_types=True)``).
  On an x86 CPU onnxruntime has few FP16 kernels and runs such a model
  *slower* than FP32; FP16 is for GPUs, NPUs and ARM CPUs with FP16 units.
* :func:`onnx_to_int8`: static INT8, QDQ format, weights int8 per output
  channel (symmetric), activations uint8 (asymmetric) by default, ranges
  calibrated (MinMax) on a :class:`CalibrationSet`; ``exclude_nodes`` stay
  float. uint8 activations with int8 weights (U8S8) are onnxruntime's fast
  path on x86 (CPM: 21 ms vs 45 ms for S8S8 here, and no less accurate); on x86 CPUs without VNNI its
  kernels can saturate, which the parity report would show: pass
  ``activation_type="int8"`` there.
* :func:`onnx_to_int8_decided`: the same, with the head kept in float only
  where quantizing it breaks the tolerance, *measured* on the calibration
  tensors (INT8 pose heads often collapse: MMPose issues 3148 and 3240),
  decided by :func:`edgepose_export.int8.decide_int8_head` as for OpenVINO
  and TFLite.
* :func:`onnx_to_int8_dynamic`: dynamic INT8 (weights only). onnxruntime runs
  convolutions quantized this way about 7x slower than FP32, so it warns for
  convolutional models.

Every function writes the card into its output (``metadata_props``) with its
provenance: the tools' versions, the precision, the calibration set, the
float nodes, and the sha256 of the file it was made from.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgepose.card import ONNX_METADATA_KEY, ModelCard, read_card
from edgepose._files import atomic_write, sha256_file
from edgepose_export.api import (CalibrationSet, Tolerance, card_with_provenance, require,
                                 tool_versions)
from edgepose_export.int8 import Int8Decision, decide_int8_head, head_candidates

__all__ = ["torch_to_onnx", "onnx_to_fp16", "onnx_to_int8", "onnx_to_int8_decided",
           "onnx_to_int8_dynamic", "attach_card", "head_nodes", "is_convolutional",
           "is_quantized"]

_ONNX_TOOLS = ("edgepose", "onnx", "onnxruntime")
#: Ops that carry learned weights: where a head's walk back from the outputs stops.
_WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
#: How ONNX INT8 candidates are measured (``provenance["int8"]["measure"]``).
MEASURE = ("edgepose_export.parity.compare: keypoint error and OKS against the float model, "
           "as the parity report measures them")
_QUANTIZED_OPS = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
                  "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear")


# --- helpers ---------------------------------------------------------------------------

def _load(src: str | os.PathLike | Any):
    onnx = require("onnx")
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.is_file():
            raise FileNotFoundError(f"No ONNX file at {path}.")
        return onnx.load(str(path))
    return src


def _save(model, out_path: Path, card: ModelCard | None) -> Path:
    """Saves ``model`` as one self-contained file with ``card`` in its metadata, atomically."""
    onnx = require("onnx")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if card is not None:
        kept = [(p.key, p.value) for p in model.metadata_props if p.key != ONNX_METADATA_KEY]
        del model.metadata_props[:]
        for key, value in kept + [(ONNX_METADATA_KEY, card.to_json())]:
            model.metadata_props.add(key=key, value=value)
    data = model.SerializeToString()  # raises ValueError past protobuf's 2 GB limit
    onnx.checker.check_model(data)  # the bytes about to be written
    return atomic_write(out_path, data)


def _sort_topologically(model) -> None:
    """Puts the graph's nodes in an order where every input is produced before use
    (``convert_float_to_float16`` appends its casts at the end)."""
    graph = model.graph
    nodes = list(graph.node)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
    users: dict[int, list[int]] = {i: [] for i in range(len(nodes))}
    pending = [0] * len(nodes)
    for i, node in enumerate(nodes):
        for name in set(node.input):
            j = producer.get(name)
            if j is not None and j != i:
                users[j].append(i)
                pending[i] += 1
    ready = [i for i in range(len(nodes)) if pending[i] == 0]
    order = []
    while ready:
        i = ready.pop(0)
        order.append(i)
        for u in users[i]:
            pending[u] -= 1
            if pending[u] == 0:
                ready.append(u)
    if len(order) != len(nodes):
        raise ValueError("The ONNX graph has a cycle.")
    if order != list(range(len(nodes))):
        del graph.node[:]
        graph.node.extend(nodes[i] for i in order)


def _omit_empty_resize_inputs(model) -> None:
    """Resize nodes fed an empty ``roi``/``scales`` initializer (tf2onnx writes them)
    get those inputs omitted (``""``), which means the same; else the FP16
    converter casts the empty tensor at run time and the node then has both
    ``scales`` and ``sizes`` as far as shape inference can tell."""
    empty = {t.name for t in model.graph.initializer if 0 in tuple(t.dims)}
    for node in model.graph.node:
        if node.op_type == "Resize":
            for i in (1, 2):
                if i < len(node.input) and node.input[i] in empty and len(node.input) > 3 \
                        and node.input[3]:
                    node.input[i] = ""


def _source_card(src: Path, card: ModelCard | None) -> ModelCard | None:
    return card if card is not None else read_card(src)


def _derived(card: ModelCard | None, src: Path, precision: str, **fields: Any
             ) -> ModelCard | None:
    """The card of a file made from ``src``: provenance gets the precision, the tools
    and ``derived_from`` (the sha256 of ``src``); stale parity figures are dropped."""
    if card is None:
        return None
    return card_with_provenance(
        card, precision=precision, derived_from={"file": src.name, "sha256": sha256_file(src)},
        tools=tool_versions(*_ONNX_TOOLS), parity=None, **fields)


def _input(model) -> Any:
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ValueError(
            f"Expected an ONNX model with one input, got {[i.name for i in inputs]}.")
    return inputs[0]


def _dims(value_info) -> tuple[int | None, ...]:
    return tuple(d.dim_value if d.HasField("dim_value") else None
                 for d in value_info.type.tensor_type.shape.dim)


def is_quantized(model) -> bool:
    """True when the ONNX model (a path or ModelProto) already holds quantized ops."""
    return any(n.op_type in _QUANTIZED_OPS for n in _load(model).graph.node)


def is_convolutional(model) -> bool:
    """True when the ONNX model (a path or ModelProto) has Conv or ConvTranspose nodes."""
    return any(n.op_type in ("Conv", "ConvTranspose") for n in _load(model).graph.node)


def attach_card(src: str | os.PathLike, out_path: str | os.PathLike, card: ModelCard) -> Path:
    """A copy of the model file ``src`` with ``card`` inside, its provenance naming ``src``.

    Works for ``.onnx``, ``.tflite`` and OpenVINO ``.xml`` (see
    :func:`edgepose.card.write_card`); the provenance records ``src``'s
    file name and sha256 and the tool versions, and an existing precision
    is kept (else ``"fp32"`` or ``"quantized (as the source)"`` for ONNX, and
    ``"as the source (a copy)"`` for the other formats).
    """
    from edgepose.card import write_card

    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"No model file at {src}.")
    precision = card.provenance.get("precision")
    if precision is None:
        precision = "as the source (a copy)"
        if src.suffix.lower() == ".onnx":
            precision = "quantized (as the source)" if is_quantized(src) else "fp32"
    card = card_with_provenance(
        card, source={"file": src.name, "sha256": sha256_file(src)}, precision=precision,
        tools=tool_versions("edgepose"))
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    return write_card(src, out_path, card)


# --- torch -> ONNX ---------------------------------------------------------------------

def torch_outputs(result: Any, card: ModelCard) -> list:
    """A module's outputs in the order of ``card.outputs``.

    A module may return one tensor (a card with one output role), a tuple or
    list in the order of ``card.outputs``, or a mapping keyed by role or by
    output tensor name.

    Raises:
        ValueError: a count or keys that do not match the card.
    """
    roles = list(card.outputs)
    names = [card.outputs[r] for r in roles]
    if isinstance(result, Mapping):
        out = []
        for role, name in zip(roles, names):
            if role in result:
                out.append(result[role])
            elif name in result:
                out.append(result[name])
            else:
                raise ValueError(
                    f"The module returned outputs {sorted(result)}, without the card's role "
                    f"{role!r} (tensor {name!r}).")
        return out
    items = list(result) if isinstance(result, (tuple, list)) else [result]
    if len(items) != len(roles):
        raise ValueError(
            f"The module returned {len(items)} output(s), but the card maps {len(roles)} "
            f"({', '.join(roles)}): return them in that order, or as a dict keyed by role.")
    return items


def _example(card: ModelCard, batch: int, torch):
    spec = card.input
    h, w = spec.size
    shape = (batch, 3, h, w) if spec.layout == "NCHW" else (batch, h, w, 3)
    gen = torch.Generator().manual_seed(0)
    if spec.dtype == "uint8":
        return torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
    return torch.randn(shape, generator=gen)


def torch_to_onnx(module: Any, card: ModelCard, out_path: str | os.PathLike, *,
                  batch_dynamic: bool = True, opset: int | None = None) -> Path:
    """Exports a PyTorch module to one self-contained ONNX file with its card.

    Uses ``torch.onnx.export(..., dynamo=True)``. The input is named after
    the card (``input.name``, else ``"input"``) and shaped as the card says
    (layout, size, dtype); the outputs are named after ``card.outputs``
    (the module returns them in that order, or as a dict keyed by role, see
    :func:`torch_outputs`). The batch axis is dynamic when ``batch_dynamic``
    and the module allows it, else fixed at 1 (with a warning). The module
    is run in eval mode and its mode restored afterwards.

    Returns:
        ``out_path``; the card inside has ``input.name`` set and provenance
        ``source`` ("torch module <class>"), ``precision`` "fp32", the
        exporter, the opset, the batch axis and the tool versions.

    Raises:
        ValueError: a card without output roles, outputs that do not match
            it, or a module torch.export cannot capture (the message says
            which step failed).
        ImportError: torch, onnx or onnxscript is missing (names the extra).
    """
    torch = require("torch")
    require("onnxscript")
    require("onnx")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}.")
    if not isinstance(card, ModelCard):
        raise TypeError(f"card must be a ModelCard, got {type(card).__name__}.")
    if not card.outputs:
        raise ValueError(
            "The card must map each output role to a tensor name (card.outputs, e.g. "
            "{'simcc_x': 'simcc_x', 'simcc_y': 'simcc_y'}): the runtime finds the outputs by "
            "those names.")
    input_name = card.input.name or "input"
    output_names = [card.outputs[r] for r in card.outputs]
    if len(set(output_names)) != len(output_names):
        raise ValueError(f"The card maps several roles to one tensor name: {dict(card.outputs)}.")

    class _Ordered(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return tuple(torch_outputs(self.inner(x), card))

    wrapper = _Ordered(module)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            wrapper(_example(card, 1, torch))  # outputs that do not fit the card fail here
        program, dynamic = None, False
        errors = []
        attempts = [True, False] if batch_dynamic else [False]
        for dynamic in attempts:
            try:
                program = _export(torch, wrapper, card, input_name, output_names, dynamic, opset)
                break
            except Exception as exc:  # torch.export's errors have many types
                errors.append(exc)
                if dynamic:
                    warnings.warn(
                        f"{type(module).__name__} could not be exported with a dynamic batch axis "
                        f"({_first_line(exc)}); exporting with batch 1.", stacklevel=2)
        if program is None:
            raise ValueError(
                f"torch.onnx.export could not export {type(module).__name__}: "
                f"{_first_line(errors[-1])}") from errors[-1]
    finally:
        module.train(was_training)
    model = program.model_proto
    names = [o.name for o in model.graph.output]
    if names != output_names:
        raise ValueError(f"The exported outputs are {names}, expected {output_names}.")
    opset_version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                         None)
    spec = card.input.to_dict()
    spec["name"] = input_name
    data = card.to_dict()
    data["input"] = spec
    cls = type(module)
    written = card_with_provenance(
        ModelCard.from_dict(data), source=f"torch module {cls.__module__}.{cls.__qualname__}",
        precision="fp32", exporter="torch.onnx.export(dynamo=True)", opset=opset_version,
        batch="dynamic" if dynamic else 1,
        tools=tool_versions("edgepose", "torch", "onnx", "onnxscript"))
    return _save(model, Path(out_path), written)


def _export(torch, wrapper, card, input_name, output_names, dynamic, opset):
    kwargs: dict[str, Any] = {"dynamo": True, "input_names": [input_name],
                              "output_names": output_names, "external_data": False,
                              "verbose": False}
    if opset is not None:
        kwargs["opset_version"] = opset
    if dynamic:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=4096)},)
    example = _example(card, 2 if dynamic else 1, torch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.onnx.export(wrapper, (example,), **kwargs)


def _first_line(exc: BaseException) -> str:
    """The gist of an exception: torch.onnx's errors put the cause after a header."""
    text = str(exc).strip()
    if "## Exception summary" in text:
        tail = text.split("## Exception summary", 1)[1].strip().splitlines()
        if tail:
            return tail[0].strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- FP16 --------------------------------------------------------------------------------

def onnx_to_fp16(src: str | os.PathLike, out_path: str | os.PathLike, *,
                 card: ModelCard | None = None) -> Path:
    """An FP16 copy of an ONNX model: weights and compute in float16, inputs
    and outputs kept float32 (``convert_float_to_float16(keep_io_types=True)``).

    Args:
        src: the FP32 ONNX file.
        out_path: where to write the FP16 file.
        card: the card to write (default: the one in ``src``; none if neither).

    Raises:
        ValueError: an already quantized model.
        ImportError: onnx or onnxruntime is missing.
    """
    require("onnxruntime")
    from onnxruntime.transformers.float16 import convert_float_to_float16

    src = Path(src)
    model = _load(src)
    if is_quantized(model):
        raise ValueError(f"{src.name} is already quantized (it has QDQ or integer ops): "
                         "convert its FP32 original to FP16 instead.")
    _omit_empty_resize_inputs(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the model's values were truncated/clamped to fp16"
        half = convert_float_to_float16(model, keep_io_types=True)
    _sort_topologically(half)
    return _save(half, Path(out_path), _derived(_source_card(src, card), src, "fp16"))


# --- INT8 --------------------------------------------------------------------------------

def _preprocess(src: Path, dst: Path) -> Path:
    """onnxruntime's recommended pre-quantization step (shape inference, graph
    optimisation, e.g. Conv + BatchNorm fusion); falls back gracefully."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # When its symbolic shape inference fails, onnxruntime saves the half-inferred
    # model (the user's weights) as sym_shape_infer_temp.onnx + .data in the working
    # directory: work in dst's (temporary) folder, so nothing lands where the user is.
    here = os.getcwd()
    for options in ({}, {"skip_symbolic_shape": True}):
        try:
            os.chdir(dst.parent)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quant_pre_process(str(Path(src).resolve()), str(dst.resolve()), **options)
            return dst
        except Exception:  # shape inference fails on some graphs: try the next way
            continue
        finally:
            os.chdir(here)
    shutil.copyfile(src, dst)
    return dst


class _Reader:
    """onnxruntime's CalibrationDataReader over a CalibrationSet."""

    def __init__(self, name: str, dtype: np.dtype, batch: int | None, calib: CalibrationSet):
        self._batches = iter(calib.batches(1 if batch is None else batch))
        self._name, self._dtype = name, dtype

    def get_next(self):
        batch = next(self._batches, None)
        return None if batch is None else {self._name: np.ascontiguousarray(batch, self._dtype)}


def _check_calibration(model, calib: CalibrationSet) -> tuple[str, np.dtype, int | None]:
    from onnx import helper

    if not isinstance(calib, CalibrationSet):
        raise TypeError(
            f"calib must be a CalibrationSet (edgepose_export.calibration.calibration_set), "
            f"got {type(calib).__name__}.")
    if len(calib) == 0:
        raise ValueError("The calibration set is empty.")
    info = _input(model)
    dims = _dims(info)
    shape = tuple(calib.tensors.shape)
    if len(dims) != len(shape) or any(
            d is not None and d != s for d, s in zip(dims[1:], shape[1:])):
        raise ValueError(
            f"The calibration tensors have shape {shape}, but the model input {info.name!r} "
            f"has shape {tuple('?' if d is None else d for d in dims)}: make the calibration set "
            "with this model's card.")
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(info.type.tensor_type.elem_type))
    batch = dims[0] if dims and dims[0] is not None else None
    return info.name, dtype, (1 if batch is None else batch)


def _quantize_static(pre: Path, out_path: Path, calib: CalibrationSet, card: ModelCard | None,
                     exclude: Sequence[str], parent: Path, *, activation_type: str,
                     per_channel: bool, calibrate_method: str, extra: Mapping[str, Any]) -> Path:
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    acts = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if activation_type not in acts:
        raise ValueError(f"activation_type must be 'uint8' or 'int8', got {activation_type!r}.")
    if calibrate_method not in methods:
        raise ValueError(
            f"calibrate_method must be one of {sorted(methods)}, got {calibrate_method!r}.")
    model = _load(pre)
    names = {n.name for n in model.graph.node}
    unknown = [n for n in exclude if n not in names]
    if unknown:
        raise ValueError(
            f"exclude_nodes names nodes the model does not have: {unknown[:5]}. Node names "
            "are those of the model after onnxruntime's pre-quantization optimisation "
            "(edgepose_export.onnx.head_nodes lists the head's).")
    input_name, dtype, batch = _check_calibration(model, calib)
    with tempfile.TemporaryDirectory(prefix="edgepose-int8-") as tmp:
        raw = Path(tmp) / "int8.onnx"
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            quantize_static(
                str(pre), str(raw), _Reader(input_name, dtype, batch, calib),
                quant_format=QuantFormat.QDQ, per_channel=per_channel,
                activation_type=acts[activation_type], weight_type=QuantType.QInt8,
                calibrate_method=methods[calibrate_method], nodes_to_exclude=list(exclude),
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                               **dict(extra)})
        quantized = _load(raw)
    if not is_quantized(quantized):
        warnings.warn(
            f"onnxruntime quantized nothing in {parent.name} (no convolution, MatMul or other "
            "quantizable op with float inputs): the INT8 file computes in float.", stacklevel=3)
    scheme = {"format": "QDQ", "weights": "int8 symmetric" + (" per-channel" if per_channel
                                                                else " per-tensor"),
              "activations": f"{activation_type} asymmetric", "calibration": calibrate_method,
              "tool": "onnxruntime.quantization.quantize_static"}
    written = _derived(card, parent, "int8",
                       calibration={"tensors": len(calib), "source": calib.source},
                       quantization=scheme, float_nodes=list(exclude))
    return _save(quantized, out_path, written)


def onnx_to_int8(src: str | os.PathLike, out_path: str | os.PathLike, calib: CalibrationSet,
                 card: ModelCard | None = None, *, exclude_nodes: Sequence[str] = (),
                 activation_type: str = "uint8", per_channel: bool = True,
                 calibrate_method: str = "minmax",
                 extra_options: Mapping[str, Any] | None = None) -> Path:
    """Static INT8 quantization (QDQ) of an FP32 ONNX model, calibrated on ``calib``.

    The model first goes through onnxruntime's pre-quantization step (shape
    inference, graph optimisation); ``exclude_nodes`` name nodes of *that*
    graph (:func:`head_nodes` gives the head's), which stay float.

    Args:
        src: the FP32 ONNX file.
        out_path: where to write the INT8 file.
        calib: tensors preprocessed as the card says
            (:func:`edgepose_export.calibration.calibration_set`).
        card: the card to write (default: the one in ``src``).
        exclude_nodes: nodes kept in float.
        activation_type: ``"uint8"`` (default; U8S8, fast on x86) or ``"int8"`` (S8S8).
        per_channel: per-output-channel weight scales (default) or per tensor.
        calibrate_method: ``"minmax"`` (default), ``"entropy"`` or ``"percentile"``.
        extra_options: more of quantize_static's ``extra_options``.

    Raises:
        ValueError: an already quantized model, calibration tensors that do
            not fit the model's input, unknown ``exclude_nodes``.
        ImportError: onnx or onnxruntime is missing.
    """
    require("onnxruntime")
    src = Path(src)
    if is_quantized(src):
        raise ValueError(f"{src.name} is already quantized: quantize its FP32 original.")
    with tempfile.TemporaryDirectory(prefix="edgepose-int8-") as tmp:
        pre = _preprocess(src, Path(tmp) / "pre.onnx")
        return _quantize_static(pre, Path(out_path), calib, _source_card(src, card),
                                list(exclude_nodes), src, activation_type=activation_type,
                                per_channel=per_channel, calibrate_method=calibrate_method,
                                extra=extra_options or {})


def head_nodes(model: str | os.PathLike | Any, card: ModelCard) -> list[str]:
    """The nodes of the model's head: what INT8 keeps in float when quantizing it hurts.

    Walks back from every output of the card through the graph and stops at
    the last layer with learned weights on each path (that layer included):
    for SimCC heads only at a convolution, so the head is RTMPose's
    ``final_layer`` convolution with everything after it (the MLP, the GAU
    and the ``cls_x``/``cls_y`` classifiers); for heatmap, PAF and the other
    heads the last Conv/ConvTranspose/Gemm/MatMul with weights producing
    each output, with what follows it (activations, resizes, transposes).

    Args:
        model: an ONNX file or ModelProto (quantize the one
            :func:`onnx_to_int8` pre-processes: call this on it, or use
            :func:`onnx_to_int8_decided`).
        card: the model's card (head type, output names).

    Returns:
        node names, in graph order (empty when no output path reaches a
        weighted layer).
    """
    graph = _load(model).graph
    producers = {}
    for index, node in enumerate(graph.node):
        for out in node.output:
            producers[out] = index
    initializers = {t.name for t in graph.initializer}
    constants = {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    stops = ("Conv",) if card.head == "simcc" else _WEIGHTED_OPS
    wanted = [name for name in card.outputs.values() if name in producers] or [
        o.name for o in graph.output if o.name in producers]
    head: set[int] = set()
    stack = [producers[name] for name in wanted]
    while stack:
        index = stack.pop()
        if index in head:
            continue
        node = graph.node[index]
        head.add(index)
        weighted = node.op_type in stops and any(
            i in initializers or i in constants for i in node.input[1:])
        if weighted:
            continue
        stack.extend(producers[i] for i in node.input if i in producers)
    return [graph.node[i].name for i in sorted(head)]


def onnx_to_int8_decided(src: str | os.PathLike, out_path: str | os.PathLike,
                         calib: CalibrationSet, card: ModelCard, *,
                         tolerance: Tolerance = Tolerance(), measure_inputs: Any = None,
                         exclude_nodes: Sequence[str] = (), activation_type: str = "uint8",
                         per_channel: bool = True, calibrate_method: str = "minmax"
                         ) -> tuple[Path, Int8Decision]:
    """INT8 with the head in float exactly where quantizing it breaks the tolerance.

    Quantizes the model fully (``exclude_nodes`` stay float) and measures it
    against ``src`` on ``measure_inputs`` (default: the calibration tensors)
    with :func:`edgepose_export.parity.compare`: mean keypoint error and OKS.
    When that breaks ``tolerance``, quantizes it again with the head
    (:func:`head_nodes`, head depth 1) kept in float as well. The decision is
    :func:`edgepose_export.int8.decide_int8_head`'s, as for OpenVINO and
    TFLite: the first within ``tolerance``, else the one with the lower
    keypoint error (its parity report will fail).

    Returns:
        ``(out_path, decision)``: the :class:`~edgepose_export.int8.Int8Decision`,
        also written into the card's provenance as ``int8``
        (:meth:`~edgepose_export.int8.Int8Decision.to_provenance`).
    """
    from edgepose_export.parity import compare, run_model

    require("onnxruntime")
    src = Path(src)
    if is_quantized(src):
        raise ValueError(f"{src.name} is already quantized: quantize its FP32 original.")
    card = _source_card(src, card)
    if card is None:
        raise ValueError(f"{src.name} carries no card: pass card=.")
    inputs = calib.tensors if measure_inputs is None else measure_inputs
    inputs = getattr(inputs, "tensors", inputs)
    options = {"activation_type": activation_type, "per_channel": per_channel,
               "calibrate_method": calibrate_method, "extra": {}}
    with tempfile.TemporaryDirectory(prefix="edgepose-int8-") as tmp:
        tmp_dir = Path(tmp)
        pre = _preprocess(src, tmp_dir / "pre.onnx")
        total = len(_load(pre).graph.node)
        head = [n for n in head_nodes(pre, card) if n not in set(exclude_nodes)]
        candidates = head_candidates(lambda depth: head if len(head) < total else [], (1,),
                                     always_float=exclude_nodes)
        reference = run_model(src, card, inputs)

        def measure(depth: int) -> dict[str, Any]:
            path = tmp_dir / f"head{depth}.onnx"
            _quantize_static(pre, path, calib, card, candidates[depth], src, **options)
            figures = compare(reference, run_model(path, card, inputs), card)
            return {key: figures[key] for key in
                    ("keypoint_error_px_mean", "keypoint_error_px_p95", "oks_mean")}

        decision = decide_int8_head(candidates, measure, tolerance)
        chosen = tmp_dir / f"head{decision.head_depth}.onnx"
        written = read_card(chosen)
        if written is not None:
            written = card_with_provenance(written, int8=decision.to_provenance(
                engine="onnxruntime.quantization.quantize_static", measured_on=(
                    "calibration tensors" if measure_inputs is None else "measure_inputs"),
                measure=MEASURE, inputs=int(len(inputs))))
        return _save(_load(chosen), Path(out_path), written), decision


def onnx_to_int8_dynamic(src: str | os.PathLike, out_path: str | os.PathLike, *,
                         card: ModelCard | None = None) -> Path:
    """Dynamic INT8: weights stored int8, activations quantized at run time.

    Needs no calibration, but onnxruntime runs convolutions quantized this
    way (ConvInteger) about 7x slower than FP32 on a CPU: a warning says so
    for convolutional models, and static INT8 (:func:`onnx_to_int8`) is the
    better choice for them.

    Warns:
        UserWarning: the model has convolutions.
    """
    require("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = Path(src)
    model = _load(src)
    if is_quantized(model):
        raise ValueError(f"{src.name} is already quantized: quantize its FP32 original.")
    if is_convolutional(model):
        warnings.warn(
            f"Dynamic INT8 of the convolutional model {src.name}: onnxruntime runs its "
            "convolutions (ConvInteger) about 7x slower than FP32 on a CPU. Prefer static INT8 "
            "(precision 'int8', with calibration images).", stacklevel=2)
    with tempfile.TemporaryDirectory(prefix="edgepose-int8d-") as tmp:
        raw = Path(tmp) / "dynamic.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(src), str(raw), weight_type=QuantType.QInt8)
        quantized = _load(raw)
    written = _derived(_source_card(src, card), src, "int8-dynamic",
                       quantization={"format": "dynamic", "weights": "int8 per-tensor",
                                     "activations": "uint8, quantized at run time",
                                     "tool": "onnxruntime.quantization.quantize_dynamic"})
    return _save(quantized, Path(out_path), written)
