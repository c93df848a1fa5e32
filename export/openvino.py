"""To OpenVINO IR: FP32, FP16 weight compression, INT8 with NNCF.

:func:`to_openvino` converts an ONNX or TFLite file, an existing IR or a
PyTorch module with ``openvino.convert_model``, names its input and outputs as
the card says, writes the card (with provenance) into the IR's ``rt_info``
(``["edgepose", "card"]``, where :func:`edgepose.card.read_card` looks) and
saves it with ``openvino.save_model``.

INT8 is NNCF post-training quantization with the ``MIXED`` preset
(symmetric weights, asymmetric activations). Pose heads are where INT8 breaks,
so the head is kept in float where measurement says it must be, decided by
:func:`edgepose_export.int8.decide_int8_head` as for ONNX and TFLite: the
quantized model is decoded on the calibration tensors with the card's head
and compared with the FP32 model (:func:`keypoint_error_px`); when the mean
keypoint error exceeds ``max_keypoint_error_px``, the model is quantized
again with the head in an ``nncf.IgnoredScope``, taking progressively more of
the layers nearest the outputs (see :func:`head_scope`) until the error is
within tolerance. Every attempt, and the decision, go into the card's
provenance (``provenance["int8"]``, :meth:`edgepose_export.int8.Int8Decision.to_provenance`).

Precisions: ``"fp32"``, ``"fp16"`` (weights stored as FP16, decompressed by
the plugin; the runtime still computes in f32), ``"int8"`` (needs a
calibration set). ``"int8-dynamic"`` is refused: OpenVINO has no
dynamic-range INT8 for convolutional networks (NNCF's weight compression
targets large MatMuls and leaves the compute in float).
"""
from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgepose._files import create_temp, fsync_file, sha256_file
from edgepose.card import OPENVINO_RT_INFO_PATH, ModelCard
from edgepose_export.api import PRECISIONS, CalibrationSet, Tolerance, require, tool_versions
from edgepose_export.int8 import Int8Decision, decide_int8_head, error_figures, head_candidates

if TYPE_CHECKING:  # pragma: no cover
    import openvino
    import torch

__all__ = ["OPENVINO_PRECISIONS", "WEIGHTED_OP_TYPES", "HEAD_DEPTHS", "MEASURE", "to_openvino",
           "head_scope", "keypoint_error_px"]

log = logging.getLogger(__name__)

#: The precisions :func:`to_openvino` writes.
OPENVINO_PRECISIONS = ("fp32", "fp16", "int8")

#: OpenVINO operation types that carry the weights of a layer (and that NNCF
#: quantizes): the units :func:`head_scope` counts from the outputs.
WEIGHTED_OP_TYPES = frozenset({"Convolution", "GroupConvolution", "ConvolutionBackpropData",
                               "GroupConvolutionBackpropData", "MatMul"})

#: Head depths (weighted layers counted from the outputs) tried, in order, when
#: the fully quantized model exceeds its tolerance.
HEAD_DEPTHS = (1, 2, 4, 8)
#: How OpenVINO and TFLite INT8 candidates are measured (``provenance["int8"]["measure"]``).
MEASURE = ("keypoint_error_px: keypoint error against the float model, decoded with the "
           "card's head (no OKS)")

_NNCF_PRESETS = ("mixed", "performance")
_SOURCE_SUFFIXES = (".onnx", ".tflite", ".xml")


# --- public API -------------------------------------------------------------------------------

def to_openvino(src: str | Path | torch.nn.Module, out_xml: str | Path, card: ModelCard,
                precision: str, calib: CalibrationSet | None = None, *,
                example: np.ndarray | None = None,
                max_keypoint_error_px: float = 3.0,
                preset: str = "mixed",
                head_depths: Sequence[int] = HEAD_DEPTHS,
                batch_dynamic: bool = True) -> Path:
    """Converts a model to an OpenVINO IR carrying its card.

    Args:
        src: an ``.onnx`` or ``.tflite`` file, an IR ``.xml`` (with its
            ``.bin``), or a ``torch.nn.Module`` in eval mode whose forward
            takes the card's input tensor and returns the outputs in the
            order of ``card.outputs``.
        out_xml: the IR to write (``.xml``; the ``.bin`` goes beside it).
        card: the model's card. For a torch module the IR's input and
            outputs are named as the card says; for a file the card's names
            must exist in the model.
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        calib: calibration tensors, required for ``"int8"``; they are also
            the tensors the INT8 keypoint error is measured on.
        example: torch only: an example input ``(N, ...)`` for tracing;
            default the first calibration tensor, else zeros of the card's
            input shape.
        max_keypoint_error_px: INT8: the mean keypoint error (model-input
            pixels, FP32 IR vs INT8 IR, decoded with the card's head) above
            which the head is kept in float.
        preset: INT8: NNCF's quantization preset, ``"mixed"`` (default) or
            ``"performance"`` (symmetric activations: faster on some devices,
            worse for pose heads).
        head_depths: INT8: the head sizes tried in turn (see
            :func:`head_scope`).
        batch_dynamic: torch only: a dynamic batch dimension (else the
            example's batch size).

    Returns:
        ``out_xml`` as a Path.

    Raises:
        ValueError: an unknown or unsupported precision, ``"int8"`` without
            calibration tensors, a suffix OpenVINO cannot read, a card whose
            input or outputs do not match the model, calibration tensors of
            the wrong shape, or a source that is already quantized (INT8).
        TypeError: ``card`` is not a ModelCard.
        FileNotFoundError: ``src`` does not exist.
        ImportError: OpenVINO, NNCF (INT8) or torch (a module) is missing.
    """
    if not isinstance(card, ModelCard):
        raise TypeError(f"card must be a ModelCard, got {type(card).__name__}.")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    if precision == "int8-dynamic":
        raise ValueError(
            "OpenVINO has no dynamic-range INT8 for convolutional pose models (NNCF's weight "
            "compression leaves the compute in float). Use precision 'int8' with a calibration "
            "set, or 'fp16'.")
    if precision == "int8" and calib is None:
        raise ValueError(
            "precision 'int8' needs calibration tensors: pass calib=CalibrationSet(...) "
            "(edgepose export --calib DIR).")
    if preset not in _NNCF_PRESETS:
        raise ValueError(f"preset must be one of {', '.join(_NNCF_PRESETS)}, got {preset!r}.")
    if not (np.isfinite(max_keypoint_error_px) and max_keypoint_error_px > 0):
        raise ValueError(
            f"max_keypoint_error_px must be a positive number, got {max_keypoint_error_px}.")
    out_xml = Path(out_xml)
    if out_xml.suffix.lower() != ".xml":
        raise ValueError(f"out_xml must end in .xml (the IR's .bin goes beside it), got "
                         f"{out_xml.name!r}.")
    ov = require("openvino")

    model, provenance = _read_source(ov, src, card, example, calib, batch_dynamic)
    _check_io(model, card, _source_name(src))
    tools = ["openvino"] + (["nncf"] if precision == "int8" else []) + (
        [] if isinstance(src, (str, Path)) else ["torch"])
    provenance.update({"target": "openvino", "precision": precision,
                       "tools": tool_versions(*tools)})
    if precision == "int8":
        tensors = _check_calib(calib, model, card)
        model, decision = _quantize(ov, model, card, tensors,
                                    Tolerance(max_keypoint_error_px=max_keypoint_error_px),
                                    preset, tuple(head_depths))
        provenance["calibration"] = {"images": int(tensors.shape[0]), "source": calib.source}
        provenance["int8"] = decision.to_provenance(
            engine=f"nncf.quantize (preset {preset})", measured_on="calibration tensors",
            measure=MEASURE, inputs=int(tensors.shape[0]))

    data = card.to_dict()
    data["provenance"] = {**data["provenance"], **provenance}
    final = ModelCard.from_dict(data)
    model.set_rt_info(final.to_json(), list(OPENVINO_RT_INFO_PATH))
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    _save_ir(ov, model, out_xml, compress_to_fp16=(precision == "fp16"))
    return out_xml


def _save_ir(ov, model, out_xml: Path, *, compress_to_fp16: bool) -> None:
    """``openvino.save_model`` into a temporary ``.xml``/``.bin`` pair beside
    ``out_xml``, fsynced, then renamed (the .bin first): an interrupted export
    leaves no half-written IR. OpenVINO creates the files as any new file (the
    umask applies)."""
    f, tmp_xml = create_temp(out_xml.parent, out_xml.name, suffix=".xml")
    f.close()
    pairs = [(tmp_xml.with_suffix(".bin"), out_xml.with_suffix(".bin")), (tmp_xml, out_xml)]
    try:
        ov.save_model(model, str(tmp_xml), compress_to_fp16=compress_to_fp16)
        for tmp, _ in pairs:
            fsync_file(tmp)
        for tmp, final in pairs:
            os.replace(tmp, final)
    finally:
        for tmp, _ in pairs:
            tmp.unlink(missing_ok=True)


def head_scope(model: openvino.Model, depth: int) -> list[str]:
    """The friendly names of the operations of a model's head of ``depth`` layers.

    The distance of an operation from the outputs is the least number of
    weighted layers (:data:`WEIGHTED_OP_TYPES`, itself included) on a path
    from it to any output. The head of depth ``d`` is every operation at a
    distance of at most ``d``: ``1`` is the final layers (SimCC's two
    classifiers, a heatmap model's last convolution) and everything after
    them; each step adds the layers feeding those, through residual
    shortcuts as well.

    Args:
        model: an ``openvino.Model``.
        depth: how many weighted layers deep, >= 1.

    Returns:
        The names, in the model's topological order (parameters, constants
        and results excluded).
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}.")
    ops = list(model.get_ordered_ops())
    distance: dict[str, int] = {}
    for op in reversed(ops):  # consumers come before their producers
        name = op.get_friendly_name()
        kind = op.get_type_name()
        if kind == "Result":
            distance[name] = 0
            continue
        consumers = [t.get_node().get_friendly_name()
                     for out in op.outputs() for t in out.get_target_inputs()]
        known = [distance[c] for c in consumers if c in distance]
        if not known:
            continue  # feeds no output
        distance[name] = min(known) + (1 if kind in WEIGHTED_OP_TYPES else 0)
    skip = {"Parameter", "Constant", "Result"}
    return [op.get_friendly_name() for op in ops
            if op.get_type_name() not in skip and distance.get(op.get_friendly_name(), depth + 1)
            <= depth]


def keypoint_error_px(card: ModelCard, reference: Mapping[str, np.ndarray],
                      candidate: Mapping[str, np.ndarray], *,
                      relative_score: float = 0.1) -> np.ndarray:
    """Per-keypoint distance (model-input pixels) between two sets of outputs.

    Both are decoded with the card's head (:func:`edgepose.heads.decode_head`;
    bottom-up heads: the peak of each part heatmap). Only the keypoints the
    reference is confident about count: found, with a score of at least
    ``relative_score`` times the 90th percentile of the reference's scores
    (the peak of a keypoint outside the crop moves under any perturbation,
    and no runtime reports it). A keypoint the candidate loses (no peak)
    counts as the input's diagonal, so a collapsed output never passes.

    Args:
        card: the model's card.
        reference, candidate: outputs by role (the card's ``outputs`` keys),
            batch first.
        relative_score: see above; 0 counts every keypoint the reference finds.

    Returns:
        ``(M,)`` float64 distances of the counted keypoints.
    """
    ref_kp, ref_score = _decode_keypoints(card, reference)
    cand_kp, _ = _decode_keypoints(card, candidate)
    from edgepose.results import found_mask  # not found: NaN coordinates

    counted = found_mask(ref_kp) & np.isfinite(ref_score)
    if relative_score > 0 and counted.any():
        floor = float(np.percentile(ref_score[counted], 90))
        if floor > 0:
            counted &= ref_score >= relative_score * floor
    lost = ~found_mask(cand_kp)
    with np.errstate(invalid="ignore"):
        diff = np.linalg.norm(ref_kp.astype(np.float64) - cand_kp, axis=-1)
    diff = np.where(lost, float(np.hypot(*card.input.size)), diff)
    return diff[counted]


# --- reading the source -----------------------------------------------------------------------

def _source_name(src: Any) -> str:
    return str(src) if isinstance(src, (str, Path)) else f"torch module {type(src).__name__}"


def _read_source(ov, src, card: ModelCard, example, calib, batch_dynamic: bool):
    """(openvino.Model, provenance) of a file or a torch module."""
    if isinstance(src, (str, Path)):
        path = Path(src)
        suffix = path.suffix.lower()
        if suffix not in _SOURCE_SUFFIXES:
            raise ValueError(
                f"Cannot convert {path.name!r} to OpenVINO: expected one of "
                f"{', '.join(_SOURCE_SUFFIXES)} or a torch.nn.Module.")
        if not path.is_file():
            raise FileNotFoundError(f"No model file at {path}.")
        try:
            model = (ov.Core().read_model(str(path)) if suffix == ".xml"
                     else ov.convert_model(str(path)))
        except Exception as error:  # OpenVINO raises RuntimeError and frontend errors
            raise ValueError(f"OpenVINO could not read {path}: {error}") from error
        return model, {"source": path.name, "source_sha256": sha256_file(path)}
    torch = require("torch")
    if not isinstance(src, torch.nn.Module):
        raise TypeError(
            f"src must be a path (.onnx, .tflite, .xml) or a torch.nn.Module, got "
            f"{type(src).__name__}.")
    return _convert_torch(ov, torch, src, card, example, calib, batch_dynamic), {
        "source": f"torch module {type(src).__module__}.{type(src).__qualname__}"}


def _input_shape(card: ModelCard, batch: int | None) -> list:
    h, w = card.input.size
    return [batch, 3, h, w] if card.input.layout == "NCHW" else [batch, h, w, 3]


def _convert_torch(ov, torch, module, card: ModelCard, example, calib, batch_dynamic: bool):
    if example is None:
        if calib is not None and len(calib):
            example = np.asarray(calib.tensors[:1])
        else:
            example = np.zeros(_input_shape(card, 1), dtype=card.input.dtype)
    example = np.ascontiguousarray(example)
    expected = _input_shape(card, example.shape[0] if example.ndim else None)
    if list(example.shape) != expected:
        raise ValueError(
            f"example must have the card's {card.input.layout} input shape {tuple(expected)}, "
            f"got {example.shape}.")
    was_training = module.training
    module.eval()
    try:
        shape = _input_shape(card, -1 if batch_dynamic else example.shape[0])
        # OpenVINO traces the module (torch.jit.trace, deprecated in torch 2.13 but still
        # the robust path: torch.export needs a batch of 2 and leaves H, W dynamic)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            model = ov.convert_model(module, example_input=torch.from_numpy(example),
                                     input=[ov.PartialShape(shape)])
    except Exception as error:
        raise RuntimeError(
            f"openvino.convert_model could not convert {type(module).__name__}: {error}") \
            from error
    finally:
        module.train(was_training)
    if len(model.inputs) != 1:
        raise ValueError(
            f"{type(module).__name__} has {len(model.inputs)} inputs; a pose model takes one.")
    if card.input.name is not None:
        model.inputs[0].get_tensor().set_names({card.input.name})
    names = list(card.outputs.values())
    if len(names) != len(model.outputs):
        raise ValueError(
            f"The card maps {len(names)} outputs {dict(card.outputs)}, but "
            f"{type(module).__name__} returns {len(model.outputs)}: its forward must return the "
            "outputs in the order of card.outputs.")
    for port, name in zip(model.outputs, names):
        port.get_tensor().set_names({name})
    return model


def _names(port) -> set[str]:
    return set(port.get_names())


def _check_io(model, card: ModelCard, source: str) -> None:
    """The card's input and outputs exist in the model, with the card's shape."""
    inputs = list(model.inputs)
    if card.input.name is not None:
        matching = [p for p in inputs if card.input.name in _names(p)]
        if not matching:
            raise ValueError(
                f"The card names input {card.input.name!r}, but the inputs of {source} are "
                f"{sorted(n for p in inputs for n in _names(p))}.")
        port = matching[0]
    elif len(inputs) == 1:
        port = inputs[0]
    else:
        raise ValueError(f"{source} has {len(inputs)} inputs: the card must name one.")
    shape = port.get_partial_shape()
    expected = _input_shape(card, None)
    if shape.rank.is_static:
        dims = [d.get_length() if d.is_static else None for d in shape]
        if len(dims) != 4 or any(e is not None and d is not None and d != e
                                 for d, e in zip(dims[1:], expected[1:])):
            raise ValueError(
                f"The card describes a {card.input.layout} input of size {card.input.size}, i.e. "
                f"shape {tuple(expected)}, but the input of {source} has shape {tuple(dims)}.")
    outputs = {n for p in model.outputs for n in _names(p)}
    missing = {role: name for role, name in card.outputs.items() if name not in outputs}
    if missing:
        raise ValueError(
            f"The card maps outputs {missing}, which {source} does not have; its outputs are "
            f"{sorted(outputs)}.")


# --- INT8 -------------------------------------------------------------------------------------

def _check_calib(calib: CalibrationSet, model, card: ModelCard) -> np.ndarray:
    tensors = np.asarray(calib.tensors)
    expected = _input_shape(card, None)
    if tensors.ndim != 4 or len(tensors) == 0 or list(tensors.shape[1:]) != expected[1:]:
        raise ValueError(
            f"Calibration tensors must have shape (M, {', '.join(map(str, expected[1:]))}) "
            f"({card.input.layout}, the card's input), got {tensors.shape}.")
    if tensors.dtype != np.dtype(card.input.dtype):
        raise ValueError(
            f"Calibration tensors must be {card.input.dtype} as the card's input, got "
            f"{tensors.dtype}.")
    if any(op.get_type_name() == "FakeQuantize" for op in model.get_ordered_ops()):
        raise ValueError(
            "The source model is already quantized (it holds FakeQuantize operations): "
            "convert it with precision 'fp32' or 'fp16' instead of 'int8'.")
    return tensors


def _input_port_name(model, card: ModelCard) -> int:
    if card.input.name is None:
        return 0
    for i, port in enumerate(model.inputs):
        if card.input.name in _names(port):
            return i
    return 0


class _Runner:
    """Runs an openvino.Model in f32 on every tensor, returning outputs by role."""

    def __init__(self, ov, model, card: ModelCard) -> None:
        self._compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        self._index = _input_port_name(model, card)
        self._roles = {}
        for role, name in card.outputs.items():
            for port in self._compiled.outputs:
                if name in _names(port):
                    self._roles[role] = port
                    break

    def __call__(self, tensors: np.ndarray) -> dict[str, np.ndarray]:
        request = self._compiled.create_infer_request()
        parts: dict[str, list[np.ndarray]] = {role: [] for role in self._roles}
        for x in tensors:
            result = request.infer({self._index: x[None]}, share_outputs=False)
            for role, port in self._roles.items():
                parts[role].append(np.asarray(result[port], dtype=np.float32))
        return {role: np.concatenate(v) for role, v in parts.items()}


def _quantize(ov, model, card: ModelCard, tensors: np.ndarray, tolerance: Tolerance,
              preset: str, head_depths: tuple[int, ...]) -> tuple[Any, Int8Decision]:
    """The INT8 model and how it was decided (:func:`edgepose_export.int8.decide_int8_head`)."""
    nncf = require("nncf")
    index = _input_port_name(model, card)
    dataset = nncf.Dataset(list(tensors), lambda x: {index: x[None]})
    nncf_preset = {"mixed": nncf.QuantizationPreset.MIXED,
                   "performance": nncf.QuantizationPreset.PERFORMANCE}[preset]
    reference = _Runner(ov, model, card)(tensors)
    candidates = head_candidates(lambda depth: head_scope(model, depth), head_depths)
    quantized: dict[int, Any] = {}

    def measure(depth: int) -> dict[str, Any]:
        names = candidates[depth]
        scope = nncf.IgnoredScope(names=names, validate=False) if names else None
        quantized[depth] = nncf.quantize(model.clone(), dataset, preset=nncf_preset,
                                         subset_size=len(tensors), ignored_scope=scope)
        return error_figures(keypoint_error_px(
            card, reference, _Runner(ov, quantized[depth], card)(tensors)))

    # Quiet NNCF's progress bars and info lines for the duration.
    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    nncf_log.setLevel(logging.WARNING)
    try:
        decision = decide_int8_head(candidates, measure, tolerance)
    finally:
        nncf_log.setLevel(level)
    return quantized[decision.head_depth], decision


def _decode_keypoints(card: ModelCard, outputs: Mapping[str, np.ndarray]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints ``(N, K, 2)`` in model-input pixels and their scores ``(N, K)``."""
    from edgepose.heads import HEAD_DECODERS, decode_head

    if card.head in HEAD_DECODERS:
        return decode_head(card.head, outputs, card.params, card.input.size)
    if card.head in ("paf", "posenet"):
        return _heatmap_peaks(card, outputs)
    raise ValueError(f"Cannot measure keypoint error for head {card.head!r}.")


def _heatmap_peaks(card: ModelCard, outputs: Mapping[str, np.ndarray]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Bottom-up heads: the peak of every part heatmap, in model-input pixels."""
    from edgepose import ops

    params = card.params
    if card.head == "paf":
        layout = params.layout
        k = params.num_parts
        maps = outputs["maps"] if "maps" in outputs else outputs["heatmaps"]
        maps = maps[..., :k] if layout == "NHWC" else maps[:, :k]
    else:  # posenet: NHWC heatmaps
        layout, maps = "NHWC", outputs["heatmaps"]
    maps = np.ascontiguousarray(maps, dtype=np.float32)
    kp, scores = ops.decode_heatmap(maps, "none", layout=layout)
    hm_h, hm_w = (maps.shape[1], maps.shape[2]) if layout == "NHWC" else maps.shape[2:]
    in_h, in_w = card.input.size
    found = scores > 0  # as the heads' decoders: not found is NaN
    scaled = kp * np.array([in_w / hm_w, in_h / hm_h], np.float32)
    return np.where(found[..., None], scaled, np.nan).astype(np.float32), scores


