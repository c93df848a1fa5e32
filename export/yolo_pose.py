"""INT8 of one-stage YOLO-pose models that keeps its keypoints: the decode stays in float.

The end of an exported YOLO-pose graph is arithmetic, not learned layers: the
DFL softmax and its expectation (a fixed 1x1 convolution over the bins), the
anchor-grid additions, ``* stride``, and a concat that puts box coordinates in
the hundreds next to scores in 0-1 in one tensor. Under one shared int8 scale
that tensor loses its keypoints (Ultralytics issues 5889 and 17203, MMPose
3240). Here the backbone and neck are quantized and the decode is kept in
float, found from the graph structure (:func:`decode_region`), never by the
node names of one file; how much is kept is decided by measurement with
:func:`edgepose_export.int8.decide_int8_head`, as for the other heads:

* head depth 0: fully quantized (the naive export);
* head depth 1: the decode kept in float (everything after the last learned
  convolution of each branch: box, class and keypoint);
* head depth 2: the decode and those last convolutions in float.

Candidates are judged on decoded people (:func:`compare_people`): people of
the float model and of the candidate are decoded and matched by box IoU, and
the keypoint error in model-input pixels of matched people, the OKS between
them and the change of the person score are measured. A person the candidate
loses counts as the input's diagonal, so a collapsed export never passes.

Functions per format: :func:`onnx_decode_nodes` / :func:`quantize_onnx`
(onnxruntime static QDQ), :func:`openvino_decode_scope` /
:func:`quantize_openvino` (NNCF with an ``IgnoredScope``), :func:`tflite_decode_ops`
/ :func:`quantize_tflite` (AI Edge Quantizer, the decode's operators set to
``NO_QUANTIZE``).
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgepose_export.api import CalibrationSet, Tolerance, require
from edgepose_export.int8 import Int8Decision, decide_int8_head

__all__ = ["GraphNode", "People", "decode_region", "onnx_decode_nodes", "openvino_decode_scope",
           "tflite_decode_ops", "letterbox_tensors", "decode_people", "compare_people",
           "to_pixels", "looks_normalised", "default_tolerance", "quantize_onnx",
           "openvino_fp16", "quantize_openvino", "quantize_tflite", "parity_figures",
           "HEAD_DEPTHS", "COCO_SIGMAS", "MEASURE"]

#: Head depths tried after the fully quantized model: 1 the decode, 2 with the last convolutions.
HEAD_DEPTHS = (1, 2)
#: COCO-17 OKS sigmas (pycocotools).
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07,
                        .87, .87, .89, .89]) / 10.0
#: How candidates are measured (``provenance["int8"]["measure"]``).
MEASURE = ("edgepose_export.yolo_pose.compare_people: people decoded from both models "
           "(score > 0.25, box NMS IoU 0.7), matched by box IoU >= 0.5; keypoint error in "
           "model-input pixels over keypoints the float model sees (visibility > 0.5), a lost "
           "person counting as the input diagonal; OKS with COCO sigmas")
#: Weighted operation types per graph format (the units a learned layer is made of).
_WEIGHTED = {"onnx": {"Conv", "ConvTranspose", "Gemm", "MatMul"},
             "openvino": {"Convolution", "GroupConvolution", "MatMul"},
             "tflite": {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL"}}
_SOFTMAX = {"Softmax", "SoftMax", "SOFTMAX"}
#: Operations that only move data: seen through when asking "is this fed by a softmax?".
_LAYOUT_OPS = {"Reshape", "Transpose", "RESHAPE", "TRANSPOSE", "Convert"}

log = logging.getLogger(__name__)


# --- the decode subgraph, from the graph structure ---------------------------------------

@dataclass(frozen=True)
class GraphNode:
    """One operation of a graph, in any format: its name, type, and tensor names.

    ``weighted``: the operation has a constant weight input (a convolution or
    matrix product with learned or fixed weights).
    """

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    weighted: bool


def decode_region(nodes: Sequence[GraphNode], outputs: Iterable[str]
                  ) -> tuple[list[str], list[str]]:
    """The decode subgraph of a YOLO-style head and the last learned layers before it.

    Walks back from ``outputs`` through the producers of every input and
    stops at a weighted operation, which is a *learned layer* unless it is
    fed by a softmax (through reshapes and transposes only): such a
    convolution is the DFL expectation (a fixed weighted sum over the bins)
    and belongs to the decode, so the walk goes on through it.

    Args:
        nodes: the graph's operations, any order.
        outputs: the tensor names where the walk starts.

    Returns:
        ``(decode, last_layers)``: names of the operations after the last
        learned layer on every path to an output, and of those learned
        layers, each in the order of ``nodes``.
    """
    producer = {t: i for i, n in enumerate(nodes) for t in n.outputs}

    def fed_by_softmax(node: GraphNode) -> bool:
        seen, stack = set(), [node.inputs[0]] if node.inputs else []
        while stack:
            i = producer.get(stack.pop())
            if i is None or i in seen:
                continue
            seen.add(i)
            if nodes[i].op_type in _SOFTMAX:
                return True
            if nodes[i].op_type in _LAYOUT_OPS and nodes[i].inputs:
                stack.append(nodes[i].inputs[0])
        return False

    decode, last = set(), set()
    stack = [producer[t] for t in outputs if t in producer]
    while stack:
        i = stack.pop()
        if i in decode or i in last:
            continue
        node = nodes[i]
        if node.weighted and not fed_by_softmax(node):
            last.add(i)
            continue
        decode.add(i)
        stack.extend(producer[t] for t in node.inputs if t in producer)
    return ([nodes[i].name for i in sorted(decode)], [nodes[i].name for i in sorted(last)])


def _onnx_nodes(model) -> list[GraphNode]:
    graph = model.graph
    constants = {t.name for t in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    return [GraphNode(n.name, n.op_type, tuple(n.input), tuple(n.output),
                      n.op_type in _WEIGHTED["onnx"]
                      and any(i in constants for i in n.input[1:2]))
            for n in graph.node]


def onnx_decode_nodes(model: Any, depth: int = 1) -> list[str]:
    """ONNX node names kept in float at ``depth`` (1: the decode; 2: with the last
    convolutions), in graph order (:func:`decode_region` on the ONNX graph).

    Args:
        model: an ONNX file or ModelProto (nodes must have names, as after
            onnxruntime's pre-quantization step).
        depth: 1 or 2.

    Raises:
        ValueError: ``depth`` not 1 or 2.
    """
    _check_depth(depth)
    from edgepose_export.onnx import _load

    model = _load(model)
    nodes = _onnx_nodes(model)
    decode, last = decode_region(nodes, [o.name for o in model.graph.output])
    chosen = set(decode + last if depth == 2 else decode)
    return [n.name for n in nodes if n.name in chosen]


def openvino_decode_scope(model: Any, depth: int = 1) -> list[str]:
    """Friendly names of an ``openvino.Model``'s operations kept in float at ``depth``.

    Constants, parameters and results are left out (NNCF's ``IgnoredScope``
    takes operations).
    """
    _check_depth(depth)
    nodes, results = [], []
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        ins = tuple(f"{v.get_node().get_friendly_name()}:{v.get_index()}"
                    for v in (i.get_source_output() for i in op.inputs()))
        outs = tuple(f"{op.get_friendly_name()}:{i}" for i in range(op.get_output_size()))
        if kind == "Result":
            results.extend(ins)
            continue
        weighted = kind in _WEIGHTED["openvino"] and op.get_input_size() > 1 and _constant_like(
            op.input(1).get_source_output().get_node())
        nodes.append(GraphNode(op.get_friendly_name(), kind, ins, outs, weighted))
    decode, last = decode_region(nodes, results)
    chosen = set(decode + last if depth == 2 else decode)
    return [n.name for n in nodes
            if n.name in chosen and n.op_type not in ("Parameter", "Constant")]


def _constant_like(node) -> bool:
    """A weight input: a Constant, directly or through the Convert / Multiply /
    Subtract / Reshape of a decompressed (e.g. FP16) weight."""
    while node.get_type_name() in ("Convert", "Multiply", "Subtract", "Reshape"):
        node = node.input(0).get_source_output().get_node()
    return node.get_type_name() == "Constant"


def tflite_decode_ops(path: str | os.PathLike, depth: int = 1) -> list[str]:
    """Output tensor names of a ``.tflite``'s operators kept in float at ``depth``
    (AI Edge Quantizer selects operators by these names)."""
    _check_depth(depth)
    from edgepose.backends.tflite import graph_interpreter

    interpreter, _ = graph_interpreter(Path(path))
    ops = interpreter._get_ops_details()
    names = {d["index"]: d["name"] for d in interpreter.get_tensor_details()}
    produced = {int(t) for op in ops for t in op["outputs"]}
    produced |= {d["index"] for d in interpreter.get_input_details()}
    constants = set(names) - produced  # neither computed nor fed: weights
    nodes = []
    for op in ops:
        ins = tuple(str(int(t)) for t in op["inputs"] if int(t) >= 0)
        outs = tuple(str(int(t)) for t in op["outputs"])
        weighted = (op["op_name"] in _WEIGHTED["tflite"] and len(op["inputs"]) > 1
                    and int(op["inputs"][1]) in constants)
        nodes.append(GraphNode(";".join(outs), op["op_name"], ins, outs, weighted))
    outputs = [str(d["index"]) for d in interpreter.get_output_details()]
    decode, last = decode_region(nodes, outputs)
    chosen = set(decode + last if depth == 2 else decode)
    return [names[int(t)] for n in nodes if n.name in chosen for t in n.outputs]


def _check_depths(depths: Sequence[int], head_depth: int | None) -> None:
    for depth in depths:
        _check_depth(depth)
    if head_depth is not None and head_depth != 0:
        _check_depth(head_depth)


def _check_depth(depth: int) -> None:
    if depth not in HEAD_DEPTHS:
        raise ValueError(
            f"depth must be 1 (the decode in float) or 2 (with the last convolutions), "
            f"got {depth!r}.")


# --- inputs, decoding and comparing people -----------------------------------------------

def letterbox_tensors(images: Sequence[np.ndarray], size: tuple[int, int] = (640, 640)
                      ) -> np.ndarray:
    """BGR uint8 images to YOLO-pose inputs ``(M, 3, H, W)`` float32 RGB in [0, 1],
    letterboxed centred with pad 114, as the runtime feeds them
    (:func:`edgepose.model.preprocess_image`)."""
    from edgepose.card import InputSpec
    from edgepose.model import preprocess_image

    spec = InputSpec(size=tuple(size), layout="NCHW", dtype="float32", color="RGB",
                     std=(255.0, 255.0, 255.0), resize="letterbox", pad_value=114.0)
    return np.concatenate([preprocess_image(im, spec, align="center")[0] for im in images])


@dataclass(frozen=True)
class People:
    """Decoded people of one input, in model-input pixels."""

    boxes: np.ndarray            # (P, 4) xyxy
    scores: np.ndarray           # (P,)
    keypoints: np.ndarray        # (P, K, 2)
    visibility: np.ndarray       # (P, K)


def decode_people(output: np.ndarray, *, num_keypoints: int = 17, score_threshold: float = 0.25,
                  iou_threshold: float = 0.7, max_detections: int = 300) -> list[People]:
    """People from a YOLO-pose output ``(N, 4 + 1 + K*3, A)`` in model-input pixels,
    by the runtime's decoder (:func:`edgepose.ops.decode_yolo_pose`: score above
    ``score_threshold``, box NMS at ``iou_threshold``, at most ``max_detections``)."""
    from edgepose import ops

    found = ops.decode_yolo_pose(np.asarray(output, np.float32), num_keypoints=num_keypoints,
                                 score_threshold=score_threshold, iou_threshold=iou_threshold,
                                 max_detections=max_detections)
    return [People(d.boxes, d.scores, d.keypoints, d.keypoint_scores) for d in found]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), -1)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), -1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def compare_people(reference: np.ndarray, candidate: np.ndarray, *,
                   input_hw: tuple[int, int] = (640, 640), min_iou: float = 0.5,
                   visible: float = 0.5, sigmas: np.ndarray = COCO_SIGMAS,
                   **decode: Any) -> dict[str, float]:
    """A candidate model's people against the float model's, on the same inputs.

    People are decoded from both outputs (:func:`decode_people`, ``decode``
    passed on) and matched greedily by box IoU (>= ``min_iou``, highest
    first). Keypoint error: over the keypoints the reference sees
    (visibility > ``visible``) of every reference person; a person the
    candidate lost counts as the input diagonal for each of them. OKS: per
    reference person (area = its box area), 0 when lost.

    Returns:
        ``keypoint_error_px_mean``, ``keypoint_error_px_p95``, ``oks_mean``,
        ``score_change_mean`` (mean abs person-score change of matched people),
        ``keypoints`` (the keypoints the error is over), ``people`` (reference), ``matched``, ``extra`` (candidate people
        without a reference partner). Means over nothing are 0 (errors) or 1 (OKS).

    Raises:
        ValueError: outputs of different shapes.
    """
    if np.shape(reference) != np.shape(candidate):
        raise ValueError(
            f"reference and candidate must be outputs of the same inputs, of one shape; got "
            f"{np.shape(reference)} and {np.shape(candidate)}.")
    ref_people = decode_people(reference, **decode)
    cand_people = decode_people(candidate, **decode)
    diagonal = float(np.hypot(*input_hw))
    errors, oks, score_changes = [], [], []
    people = matched = extra = 0
    for ref, cand in zip(ref_people, cand_people, strict=True):
        iou = _iou(ref.boxes, cand.boxes) if len(ref.boxes) and len(cand.boxes) else \
            np.zeros((len(ref.boxes), len(cand.boxes)))
        pairs: dict[int, int] = {}
        for flat in np.argsort(-iou, axis=None, kind="stable"):
            p, q = divmod(int(flat), iou.shape[1])
            if iou[p, q] < min_iou:
                break
            if p not in pairs and q not in pairs.values():
                pairs[p] = q
        people += len(ref.boxes)
        matched += len(pairs)
        extra += len(cand.boxes) - len(pairs)
        for p in range(len(ref.boxes)):
            seen = ref.visibility[p] > visible
            if p not in pairs:
                errors.extend([diagonal] * int(seen.sum()))
                oks.append(0.0)
                continue
            q = pairs[p]
            d = np.linalg.norm(ref.keypoints[p] - cand.keypoints[q], axis=-1).astype(np.float64)
            errors.extend(d[seen].tolist())
            score_changes.append(abs(float(ref.scores[p]) - float(cand.scores[q])))
            if seen.any():
                area = float(np.prod(np.clip(ref.boxes[p, 2:] - ref.boxes[p, :2], 1, None)))
                e = d ** 2 / (2 * area * (2 * sigmas) ** 2)
                oks.append(float(np.exp(-e)[seen].mean()))
    errors_a = np.asarray(errors, np.float64)
    return {"keypoint_error_px_mean": float(errors_a.mean()) if errors else 0.0,
            "keypoint_error_px_p95": float(np.percentile(errors_a, 95)) if errors else 0.0,
            "oks_mean": float(np.mean(oks)) if oks else 1.0,
            "score_change_mean": float(np.mean(score_changes)) if score_changes else 0.0,
            "keypoints": len(errors), "people": people, "matched": matched, "extra": extra}


def to_pixels(output: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """A YOLO-pose output whose coordinates are normalised to 0-1 over the input
    (Ultralytics' LiteRT export) with x (box cx, w, keypoint x) times the input
    width and y times its height; scores and visibilities unchanged."""
    out = np.array(output, np.float32, copy=True)
    h, w = input_hw
    k = (out.shape[1] - 5) // 3
    xs = [0, 2] + [5 + 3 * i for i in range(k)]
    ys = [1, 3] + [6 + 3 * i for i in range(k)]
    out[:, xs] *= w
    out[:, ys] *= h
    return out


def looks_normalised(output: np.ndarray) -> bool:
    """True when every box centre of a float model's output on real images lies
    in [0, 1.5]: coordinates normalised over the input, not pixels (YOLO-pose
    inputs are at least 32 px, so a pixel output puts centres far past 1.5)."""
    centres = np.asarray(output)[:, :2]
    return bool(centres.size) and float(np.abs(centres).max()) <= 1.5


def default_tolerance(input_hw: tuple[int, int]) -> Tolerance:
    """The tolerance of a whole-image one-stage model: mean keypoint error of 3 px
    per 256 px of the input's longer side (the house 3 px of a 256 px crop; 7.5
    px at 640), and a mean OKS against the float model of at least 0.95.

    OKS 0.95, not the house 0.9: COCO AP averages the OKS thresholds 0.50 to
    0.95, so poses that sit at OKS 0.92 from the float model's lose matches at
    the strict thresholds (measured: YOLO11n-pose TFLite INT8 fully quantized,
    5.7 px and OKS 0.92, lost 0.16 AP on data/coco; the decode in float, OKS
    0.98, lost 0.01).
    """
    return Tolerance(max_keypoint_error_px=3.0 * max(input_hw) / 256.0, min_oks=0.95)


def _figures(reference: np.ndarray, candidate: np.ndarray, input_hw, normalised: bool
             ) -> dict[str, Any]:
    if normalised:
        reference, candidate = to_pixels(reference, input_hw), to_pixels(candidate, input_hw)
    figures = compare_people(reference, candidate, input_hw=input_hw)
    return {k: figures[k] for k in ("keypoint_error_px_mean", "keypoint_error_px_p95",
                                    "oks_mean")}


def _decide(depths: Sequence[int], head_depth: int | None, names: Mapping[int, Sequence[str]],
            measure: Callable[[int], Mapping[str, Any]], tolerance: Tolerance) -> Int8Decision:
    """:func:`decide_int8_head` over ``0, *depths``; or, with ``head_depth`` given,
    that one candidate measured and kept (the reason says the caller chose it)."""
    _check_depths(depths, head_depth)
    if head_depth is None:
        return decide_int8_head({d: list(names[d]) for d in (0, *depths)}, measure, tolerance)
    from edgepose_export.int8 import Int8Attempt, _number, _passes

    figures = measure(head_depth)
    err, oks = _number(figures["keypoint_error_px_mean"]), _number(figures.get("oks_mean"))
    attempt = Int8Attempt(head_depth=head_depth, float_ops=tuple(names[head_depth]),
                          keypoint_error_px_mean=err,
                          keypoint_error_px_p95=_number(figures.get("keypoint_error_px_p95")),
                          oks_mean=oks, passed=_passes(err, oks, tolerance, True))
    return Int8Decision(head="int8" if head_depth == 0 else "float", head_depth=head_depth,
                        within_tolerance=attempt.passed,
                        reason=f"head depth {head_depth} asked for by the caller (not decided)",
                        tolerance=tolerance, attempts=(attempt,))


def _check_tensors(name: str, tensors: Any) -> np.ndarray:
    tensors = getattr(tensors, "tensors", tensors)
    tensors = np.asarray(tensors, np.float32)
    if tensors.ndim != 4 or tensors.shape[1] != 3 or len(tensors) == 0:
        raise ValueError(
            f"{name} must be (M, 3, H, W) YOLO-pose input tensors with M >= 1 "
            f"(edgepose_export.yolo_pose.letterbox_tensors), got shape {tensors.shape}.")
    return tensors


def _provenance(decision: Int8Decision, engine: str, measured_on: str, inputs: int,
                **extra: Any) -> dict[str, Any]:
    return decision.to_provenance(engine=engine, measured_on=measured_on, measure=MEASURE,
                                  inputs=inputs, **extra)


# --- ONNX --------------------------------------------------------------------------------

def _run_onnx(path: Path, tensors: np.ndarray) -> np.ndarray:
    ort = require("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: tensors[i:i + 1]})[0]
                           for i in range(len(tensors))])


def quantize_onnx(src: str | os.PathLike, out_path: str | os.PathLike, calib: CalibrationSet,
                  *, measure_inputs: Any = None, card: Any = None,
                  tolerance: Tolerance | None = None, depths: Sequence[int] = HEAD_DEPTHS,
                  head_depth: int | None = None, activation_type: str = "uint8") -> tuple[Path, Int8Decision]:
    """Static INT8 (onnxruntime QDQ) of a YOLO-pose ONNX model with its decode in
    float where measurement says so.

    The model is quantized fully, then with the decode
    (:func:`onnx_decode_nodes` depth 1), then with the last convolutions as
    well (depth 2), each measured against ``src`` with :func:`compare_people`
    on ``measure_inputs``; :func:`edgepose_export.int8.decide_int8_head` keeps
    the first within ``tolerance``.

    Args:
        src: the FP32 ONNX file (raw head, output ``(1, 4 + 1 + K*3, A)`` in pixels).
        out_path: the INT8 file to write.
        calib: calibration tensors (:func:`letterbox_tensors` of real images).
        measure_inputs: ``(M, 3, H, W)`` tensors the candidates are judged on
            (default the calibration tensors; images not used to calibrate
            say more).
        card: the card to write (default the one in ``src``, if any); its
            provenance gets ``int8`` (the decision).
        tolerance: default :func:`default_tolerance` of the input size.
        depths: head depths tried after 0 (in order).
        head_depth: quantize at this depth only, without a decision (to
            compare candidates: 0 is the naive full-INT8 export); still
            measured and recorded.
        activation_type: ``"uint8"`` (U8S8, onnxruntime's x86 fast path) or ``"int8"``.

    Returns:
        ``(out_path, decision)``.

    Raises:
        ValueError: tensors that are not ``(M, 3, H, W)``, an unknown depth,
            an already quantized model.
        ImportError: onnx or onnxruntime is missing.
    """
    from edgepose.card import read_card
    from edgepose_export.onnx import (_load, _preprocess, _quantize_static, _save,
                                      is_quantized)

    require("onnxruntime")
    _check_depths(depths, head_depth)
    inputs = _check_tensors("measure_inputs", calib.tensors if measure_inputs is None
                            else measure_inputs)
    src = Path(src)
    if is_quantized(src):
        raise ValueError(f"{src.name} is already quantized: quantize its FP32 original.")
    card = card if card is not None else read_card(src)
    input_hw = tuple(int(v) for v in inputs.shape[2:])
    tolerance = tolerance or default_tolerance(input_hw)
    with tempfile.TemporaryDirectory(prefix="edgepose-yolo-int8-") as tmp:
        tmp_dir = Path(tmp)
        pre = _preprocess(src, tmp_dir / "pre.onnx")
        candidates = {0: []} | {d: onnx_decode_nodes(pre, d) for d in HEAD_DEPTHS}
        reference = _run_onnx(src, inputs)

        def measure(depth: int) -> dict[str, Any]:
            path = tmp_dir / f"head{depth}.onnx"
            _quantize_static(pre, path, calib, card, candidates[depth], src,
                             activation_type=activation_type, per_channel=True,
                             calibrate_method="minmax", extra={})
            return _figures(reference, _run_onnx(path, inputs), input_hw, False)

        decision = _decide(depths, head_depth, candidates, measure, tolerance)
        chosen = tmp_dir / f"head{decision.head_depth}.onnx"
        written = read_card(chosen)
        if written is not None:
            from edgepose_export.api import card_with_provenance

            written = card_with_provenance(written, int8=_provenance(
                decision, "onnxruntime.quantization.quantize_static (QDQ, U8S8 per-channel)"
                if activation_type == "uint8" else
                "onnxruntime.quantization.quantize_static (QDQ, S8S8 per-channel)",
                "calibration tensors" if measure_inputs is None
                else "measure_inputs",
                len(inputs)))
        return _save(_load(chosen), Path(out_path), written), decision


# --- OpenVINO ----------------------------------------------------------------------------

def _ov_compile(ov, model):
    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def _run_openvino(ov, model, tensors: np.ndarray) -> np.ndarray:
    compiled = _ov_compile(ov, model)
    request = compiled.create_infer_request()
    return np.concatenate([np.asarray(request.infer({0: tensors[i:i + 1]})[0], np.float32)
                           for i in range(len(tensors))])


def _save_openvino(ov, model, out_xml: Path, card: Any, compress_to_fp16: bool,
                   provenance: Mapping[str, Any]) -> Path:
    from edgepose.card import OPENVINO_RT_INFO_PATH
    from edgepose_export.api import card_with_provenance, tool_versions
    from edgepose_export.openvino import _save_ir

    out_xml = Path(out_xml)
    if out_xml.suffix.lower() != ".xml":
        raise ValueError(f"out_xml must end in .xml (the IR's .bin goes beside it), got "
                         f"{out_xml.name!r}.")
    if card is not None:
        card = card_with_provenance(card, target="openvino",
                                    tools=tool_versions("openvino", "nncf"), **provenance)
        model.set_rt_info(card.to_json(), list(OPENVINO_RT_INFO_PATH))
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    _save_ir(ov, model, out_xml, compress_to_fp16=compress_to_fp16)
    return out_xml


def openvino_fp16(src: str | os.PathLike, out_xml: str | os.PathLike, *, card: Any = None
                  ) -> Path:
    """A YOLO-pose ONNX or TFLite file as an OpenVINO IR with FP16 weights
    (``save_model(compress_to_fp16=True)``; the CPU plugin decompresses them
    and computes in f32, the GPU and NPU plugins in f16).

    Raises:
        ValueError: ``out_xml`` does not end in ``.xml``.
        ImportError: openvino is missing.
    """
    from edgepose.card import read_card

    ov = require("openvino")
    src = Path(src)
    card = card if card is not None else read_card(src)
    return _save_openvino(ov, ov.convert_model(str(src)), Path(out_xml), card, True,
                          {"precision": "fp16"})


def quantize_openvino(src: str | os.PathLike, out_xml: str | os.PathLike,
                      calib: CalibrationSet, *, measure_inputs: Any = None, card: Any = None,
                      tolerance: Tolerance | None = None, depths: Sequence[int] = HEAD_DEPTHS,
                      head_depth: int | None = None, preset: str = "mixed",
                      normalised: bool | None = None) -> tuple[Path, Int8Decision]:
    """INT8 OpenVINO IR of a YOLO-pose ONNX model (NNCF post-training
    quantization), the decode kept in float where measurement says so.

    NNCF's default model type (CNN) is used, not ``TRANSFORMER``: YOLO11's
    one attention block is small, and the transformer type would keep more
    of the convolutions' inputs in float. The decode is put in an
    ``nncf.IgnoredScope`` (:func:`openvino_decode_scope`). ``src`` may be an
    ``.onnx`` or a ``.tflite`` file; ``normalised`` as :func:`quantize_tflite`.
    As :func:`quantize_onnx` otherwise (arguments, measurement, decision).

    Raises:
        ValueError: bad tensors, depth, preset or ``out_xml``.
        ImportError: openvino or nncf is missing.
    """
    from edgepose.card import read_card

    ov = require("openvino")
    nncf = require("nncf")
    presets = {"mixed": nncf.QuantizationPreset.MIXED,
               "performance": nncf.QuantizationPreset.PERFORMANCE}
    if preset not in presets:
        raise ValueError(f"preset must be 'mixed' or 'performance', got {preset!r}.")
    _check_depths(depths, head_depth)
    src = Path(src)
    inputs = _check_tensors("measure_inputs", calib.tensors if measure_inputs is None
                            else measure_inputs)
    tensors = _check_tensors("calib", calib.tensors)
    card = card if card is not None else read_card(src)
    input_hw = tuple(int(v) for v in inputs.shape[2:])
    tolerance = tolerance or default_tolerance(input_hw)
    model = ov.convert_model(str(src))
    dataset = nncf.Dataset(list(tensors), lambda x: {0: x[None]})
    candidates = {0: []} | {d: openvino_decode_scope(model, d) for d in HEAD_DEPTHS}
    reference = _run_openvino(ov, model, inputs)
    if normalised is None:
        normalised = looks_normalised(reference)
    quantized: dict[int, Any] = {}

    def measure(depth: int) -> dict[str, Any]:
        names = candidates[depth]
        scope = nncf.IgnoredScope(names=names, validate=False) if names else None
        quantized[depth] = nncf.quantize(model.clone(), dataset, preset=presets[preset],
                                         subset_size=len(tensors), ignored_scope=scope)
        return _figures(reference, _run_openvino(ov, quantized[depth], inputs), input_hw,
                        normalised)

    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    nncf_log.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            decision = _decide(depths, head_depth, candidates, measure, tolerance)
    finally:
        nncf_log.setLevel(level)
    provenance = {"precision": "int8",
                  "calibration": {"images": len(tensors), "source": calib.source},
                  "int8": _provenance(decision, f"nncf.quantize (preset {preset}, model type CNN)",
                                      "calibration tensors" if measure_inputs is None
                                      else "measure_inputs", len(inputs))}
    return _save_openvino(ov, quantized[decision.head_depth], Path(out_xml), card, False,
                          provenance), decision


# --- TFLite ------------------------------------------------------------------------------

def _run_tflite(path: Path, tensors: np.ndarray) -> np.ndarray:
    """Outputs of a ``.tflite`` on float tensors (a quantized input or output is
    (de)quantized with its per-tensor scale and zero point)."""
    from edgepose.backends import open_backend

    with open_backend(path, backend="tflite") as backend:
        info, out = backend.inputs[0], backend.outputs[0]
        results = []
        for i in range(len(tensors)):
            x = tensors[i:i + 1]
            if info.dtype != np.float32:
                limits = np.iinfo(info.dtype)
                x = np.clip(np.round(x / info.scale + info.zero_point), limits.min,
                            limits.max).astype(info.dtype)
            r = np.asarray(backend.run({info.name: x})[out.name])
            if r.dtype != np.float32:
                r = (r.astype(np.float32) - out.zero_point) * out.scale
            results.append(r)
    return np.concatenate(results)


def quantize_tflite(src: str | os.PathLike, out_path: str | os.PathLike,
                    calib: CalibrationSet, *, measure_inputs: Any = None, card: Any = None,
                    tolerance: Tolerance | None = None, depths: Sequence[int] = HEAD_DEPTHS,
                    head_depth: int | None = None, normalised: bool | None = None) -> tuple[Path, Int8Decision]:
    """Static INT8 of a YOLO-pose ``.tflite`` with AI Edge Quantizer
    (``static_wi8_ai8``: int8 per-channel weights, int8 activations), the decode's
    operators set to ``NO_QUANTIZE`` where measurement says so.

    The model input stays float32 in every candidate (the quantizer's INPUT
    is set to ``NO_QUANTIZE``: the runtime feeds it as it feeds the float
    model); the fully quantized candidate has an int8 output (one scale for
    the whole tensor), the others a float one.

    Args:
        normalised: the float model's coordinates are normalised to 0-1 over
            the input (Ultralytics' LiteRT export is); None: judged from its
            outputs on ``measure_inputs`` (:func:`looks_normalised`).
        Others: as :func:`quantize_onnx`.

    Raises:
        ValueError: bad tensors or depth.
        RuntimeError: AI Edge Quantizer failed.
        ImportError: ai-edge-quantizer or ai-edge-litert is missing.
    """
    from edgepose.card import read_card, write_card

    require("ai_edge_quantizer", "export-tflite")
    from ai_edge_quantizer import qtyping, quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    _check_depths(depths, head_depth)
    src, out_path = Path(src), Path(out_path)
    inputs = _check_tensors("measure_inputs", calib.tensors if measure_inputs is None
                            else measure_inputs)
    tensors = _check_tensors("calib", calib.tensors)
    card = card if card is not None else read_card(src)
    input_hw = tuple(int(v) for v in inputs.shape[2:])
    tolerance = tolerance or default_tolerance(input_hw)
    reference = _run_tflite(src, inputs)
    if normalised is None:
        normalised = looks_normalised(reference)
    candidates = {0: []} | {d: tflite_decode_ops(src, d) for d in HEAD_DEPTHS}
    from edgepose.backends.tflite import graph_interpreter

    signatures = graph_interpreter(src)[0].get_signature_list()
    if not signatures:
        raise ValueError(f"{src.name} has no signature: AI Edge Quantizer calibrates by "
                         "signature (re-export it with one, as litert-torch does).")
    signature = next(iter(signatures))
    key = signatures[signature]["inputs"][0]
    q = quantizer.Quantizer(str(src), recipe.static_wi8_ai8())
    try:
        with _quiet():
            calibration = q.calibrate({signature: [{key: tensors[i:i + 1]}
                                                   for i in range(len(tensors))]})
    except Exception as error:
        raise RuntimeError(f"AI Edge Quantizer calibration failed: {error}") from error
    with tempfile.TemporaryDirectory(prefix="edgepose-yolo-int8-") as tmp:
        tmp_dir = Path(tmp)

        def measure(depth: int) -> dict[str, Any]:
            names = candidates[depth]
            qz = quantizer.Quantizer(str(src), recipe.static_wi8_ai8())
            # the model input stays float32: the runtime feeds it as the float model's
            qz.update_quantization_recipe(".*", qtyping.TFLOperationName.INPUT,
                                          algorithm_key=AlgorithmName.NO_QUANTIZE)
            if names:
                qz.update_quantization_recipe(
                    # the op scope is a regex over output tensor names, each followed by ";"
                    "(?:^|;)(?:" + "|".join(re.escape(n) for n in names) + ");",
                    qtyping.TFLOperationName.ALL_SUPPORTED,
                    algorithm_key=AlgorithmName.NO_QUANTIZE)
            path = tmp_dir / f"head{depth}.tflite"
            try:
                with _quiet():
                    qz.quantize(calibration).export_model(str(path), overwrite=True)
            except Exception as error:
                raise RuntimeError(
                    f"AI Edge Quantizer failed: {type(error).__name__}: {error}") from error
            return _figures(reference, _run_tflite(path, inputs), input_hw, normalised)

        decision = _decide(depths, head_depth, candidates, measure, tolerance)
        chosen = tmp_dir / f"head{decision.head_depth}.tflite"
        if card is None:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(chosen, out_path)
            return out_path, decision
        from edgepose_export.api import card_with_provenance, tool_versions

        written = card_with_provenance(
            card, target="tflite", precision="int8",
            tools=tool_versions("ai-edge-quantizer", "ai-edge-litert"),
            calibration={"images": len(tensors), "source": calib.source},
            int8=_provenance(decision, "ai_edge_quantizer static_wi8_ai8",
                             "calibration tensors" if measure_inputs is None
                             else "measure_inputs", len(inputs),
                             coordinates="normalised" if normalised else "pixels"))
        return write_card(chosen, out_path, written), decision


@contextlib.contextmanager
def _quiet():
    """AI Edge Quantizer prints progress bars and sizes: into a buffer."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


# --- parity of one-stage artefacts (edgepose_export.parity) ---------------------------------

def parity_figures(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray],
                   card: Any, candidate_card: Any = None) -> dict[str, Any]:
    """:func:`compare_people` of two ``"yolo_pose"`` models' outputs by role, each
    decoded as its card says (normalised coordinates scaled to the input), for
    :func:`edgepose_export.parity.compare`: the parity report then measures
    exactly what the INT8 decision measured.

    Returns:
        ``keypoint_error_px_mean``, ``keypoint_error_px_p95``, ``oks_mean``,
        ``keypoints`` (the keypoints the error is over) and the rest of
        :func:`compare_people`'s figures.

    Raises:
        ValueError: an output format other than ``"decoded"`` channels first.
    """
    outputs = []
    for c, out in ((card, reference), (candidate_card or card, candidate)):
        params = c.params
        fmt = getattr(params, "format", "decoded")
        if fmt != "decoded" or not getattr(params, "channels_first", True):
            raise ValueError(
                f"Parity decodes YOLO-pose outputs of format 'decoded', channels first; the "
                f"card says format {fmt!r}: compare the raw outputs instead.")
        value = np.asarray(out["output"], np.float32)
        if getattr(params, "normalized", False):
            value = to_pixels(value, tuple(c.input.size))
        outputs.append(value)
    params = card.params
    k = (outputs[0].shape[1] - 4 - getattr(params, "num_classes", 1)) // 3
    return compare_people(outputs[0], outputs[1], input_hw=tuple(card.input.size),
                          num_keypoints=k,
                          score_threshold=getattr(params, "score_threshold", 0.25),
                          iou_threshold=getattr(params, "iou_threshold", 0.7),
                          max_detections=getattr(params, "max_detections", 300))
