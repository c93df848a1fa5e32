"""To TFLite from PyTorch through litert-torch: FP32, FP16, static INT8, dynamic-range INT8.

:func:`torch_to_tflite` converts a module with ``litert_torch.convert`` (FP32),
then quantizes the flatbuffer with AI Edge Quantizer (installed with
litert-torch):

- ``"fp16"``: weights stored as float16 with DEQUANTIZE ops (float compute);
- ``"int8-dynamic"``: dynamic-range INT8, int8 per-channel weights and
  activations quantized on the fly (``recipe.dynamic_wi8_afp32``);
- ``"int8"``: static INT8, int8 per-channel weights and int8 activations
  calibrated on the calibration tensors (``recipe.static_wi8_ai8``). As for
  OpenVINO, the keypoint error against the FP32 TFLite model is measured on
  the calibration tensors and, above ``max_keypoint_error_px``, the model is
  quantized again with the head's operations left in float (the layers
  nearest the outputs, counted as :func:`edgepose_export.openvino.head_scope`
  counts them), decided by :func:`edgepose_export.int8.decide_int8_head`, the
  decision and every measurement going into the card (``provenance["int8"]``).

Input layout: a PyTorch model takes NCHW, which the converter turns into a
TRANSPOSE in front of TFLite's NHWC kernels. With ``layout="auto"`` both an
NCHW model and an NHWC one (``litert_torch.to_channel_last_io``) are built in
the requested precision, their latency is measured with the TFLite backend
the runtime uses (XNNPACK, all cores), and the faster is kept; the card's
``input.layout`` says which, so the runtime feeds it correctly.

Needs the ``export-tflite`` extra (``pip install 'edgepose[export-tflite]'``:
litert-torch, about 2 GB with its dependencies).
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgepose.card import ModelCard, write_card
from edgepose.versions import installed_version
from edgepose_export.api import PRECISIONS, CalibrationSet, Tolerance, require, tool_versions
from edgepose_export.int8 import Int8Decision, decide_int8_head, error_figures, head_candidates
from edgepose_export.openvino import HEAD_DEPTHS, MEASURE, keypoint_error_px

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["TFLITE_PRECISIONS", "LAYOUTS", "WEIGHTED_TFLITE_OPS", "torch_to_tflite",
           "tflite_head_scope"]

log = logging.getLogger(__name__)

#: The precisions :func:`torch_to_tflite` writes.
TFLITE_PRECISIONS = PRECISIONS
#: Values of ``layout``.
LAYOUTS = ("auto", "NCHW", "NHWC")
#: TFLite operators that carry a layer's weights: the units of :func:`tflite_head_scope`.
WEIGHTED_TFLITE_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D",
                                 "FULLY_CONNECTED", "BATCH_MATMUL"})

_SIGNATURE = "serving_default"


def _require_litert():
    litert_torch = require("litert_torch", "export-tflite")
    require("ai_edge_quantizer", "export-tflite")
    return litert_torch


def torch_to_tflite(module: torch.nn.Module, card: ModelCard, out_path: str | Path,
                    precision: str, calib: CalibrationSet | None = None, *,
                    layout: str = "auto", max_keypoint_error_px: float = 3.0,
                    head_depths: Sequence[int] = HEAD_DEPTHS, latency_runs: int = 30) -> Path:
    """Converts a PyTorch module to a ``.tflite`` carrying its card.

    Args:
        module: the model; its forward takes the card's input tensor (in the
            card's layout, NCHW for PyTorch models) and returns the outputs
            in the order of ``card.outputs``.
        card: the model's card. The written card names the TFLite input and
            output tensors, and says the chosen input layout.
        out_path: the ``.tflite`` to write.
        precision: ``"fp32"``, ``"fp16"``, ``"int8"`` (static, calibrated)
            or ``"int8-dynamic"`` (dynamic range).
        calib: calibration tensors ``(M, ...)`` in the card's layout;
            required for ``"int8"``, where they are also the tensors the
            keypoint error is measured on.
        layout: ``"auto"`` (measure both, keep the faster), ``"NCHW"`` or
            ``"NHWC"`` (the model's input layout in the file). A module whose
            card already says NHWC stays NHWC.
        max_keypoint_error_px: ``"int8"``: the mean keypoint error (model-input
            pixels, against the FP32 TFLite model) above which the head is
            left in float.
        head_depths: ``"int8"``: the head sizes tried in turn.
        latency_runs: timed runs per layout for ``layout="auto"``.

    Returns:
        ``out_path`` as a Path.

    Raises:
        ImportError: litert-torch is not installed (names the extra).
        ValueError: an unknown precision or layout, ``"int8"`` without
            calibration tensors, calibration tensors or a card that do not
            fit the model, a wrong suffix.
        TypeError: ``module`` is not a torch module or ``card`` not a card.
        RuntimeError: litert-torch or the quantizer failed (their message
            is included).
    """
    if not isinstance(card, ModelCard):
        raise TypeError(f"card must be a ModelCard, got {type(card).__name__}.")
    if precision not in TFLITE_PRECISIONS:
        raise ValueError(
            f"precision must be one of {', '.join(TFLITE_PRECISIONS)}, got {precision!r}.")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}.")
    if precision == "int8" and calib is None:
        raise ValueError(
            "precision 'int8' needs calibration tensors: pass calib=CalibrationSet(...) "
            "(edgepose export --calib DIR), or use 'int8-dynamic'.")
    if not (np.isfinite(max_keypoint_error_px) and max_keypoint_error_px > 0):
        raise ValueError(
            f"max_keypoint_error_px must be a positive number, got {max_keypoint_error_px}.")
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".tflite":
        raise ValueError(f"out_path must end in .tflite, got {out_path.name!r}.")
    torch = require("torch")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}.")
    litert_torch = _require_litert()

    native = card.input.layout
    tensors = _check_calib(calib, card) if calib is not None else None
    sample = (tensors[:1] if tensors is not None
              else np.zeros(_input_shape(card.input.size, native, 1), card.input.dtype))
    if layout == "auto":
        layouts = ["NCHW", "NHWC"] if native == "NCHW" else ["NHWC"]
    elif layout == "NCHW" and native == "NHWC":
        raise ValueError("The module takes NHWC input (its card says so): layout 'NCHW' is not "
                         "available; use 'NHWC' or 'auto'.")
    else:
        layouts = [layout]

    was_training = module.training
    module.eval()
    try:
        with tempfile.TemporaryDirectory(prefix="edgepose-tflite-") as tmp:
            built = {}
            for lay in layouts:
                built[lay] = _build(litert_torch, torch, module, card, native, lay, precision,
                                    sample, tensors, Path(tmp), max_keypoint_error_px,
                                    tuple(head_depths))
            latency = _latencies({lay: b["path"] for lay, b in built.items()}, card,
                                 sample, native, latency_runs) if len(built) > 1 else None
            chosen = (min(latency, key=latency.get) if latency else layouts[0])
            final = built[chosen]
            new_card = _final_card(card, final, chosen, precision, calib, tensors, latency, module)
            out_path.parent.mkdir(parents=True, exist_ok=True)
            write_card(final["path"], out_path, new_card)
    finally:
        module.train(was_training)
    return out_path


# --- conversion -------------------------------------------------------------------------------

def _input_shape(size, layout: str, batch) -> list:
    h, w = size
    return [batch, 3, h, w] if layout == "NCHW" else [batch, h, w, 3]


def _to_layout(x: np.ndarray, src: str, dst: str) -> np.ndarray:
    if src == dst:
        return x
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1) if dst == "NHWC" else
                                x.transpose(0, 3, 1, 2))


def _check_calib(calib: CalibrationSet, card: ModelCard) -> np.ndarray:
    tensors = np.asarray(calib.tensors)
    expected = _input_shape(card.input.size, card.input.layout, None)
    if tensors.ndim != 4 or len(tensors) == 0 or list(tensors.shape[1:]) != expected[1:]:
        raise ValueError(
            f"Calibration tensors must have shape (M, {', '.join(map(str, expected[1:]))}) "
            f"({card.input.layout}, the card's input), got {tensors.shape}.")
    if tensors.dtype != np.dtype(card.input.dtype):
        raise ValueError(f"Calibration tensors must be {card.input.dtype} as the card's input, "
                         f"got {tensors.dtype}.")
    return tensors


@contextlib.contextmanager
def _quiet():
    """litert-torch's progress lines and the quantizer's progress bars off, for the duration."""
    quiet = {"LITERT_TORCH_SHOW_PROGRESS": "n", "TQDM_DISABLE": "1"}
    saved = {key: os.environ.get(key) for key in quiet}
    os.environ.update(quiet)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            # the quantizer's calibration interpreter keeps every tensor, and says so
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _convert_fp32(litert_torch, torch, module, native: str, layout: str, sample: np.ndarray,
                  path: Path) -> Path:
    target = module
    example = torch.from_numpy(np.ascontiguousarray(sample))
    if layout != native:  # NCHW module, NHWC file: the wrapper transposes
        target = litert_torch.to_channel_last_io(module, args=[0]).eval()
        example = torch.from_numpy(_to_layout(sample, native, layout))
    try:
        with _quiet(), torch.no_grad():
            edge = litert_torch.convert(target, (example,))
            edge.export(str(path))
    except Exception as error:
        raise RuntimeError(
            f"litert-torch {installed_version('litert-torch') or '?'} could "
            f"not convert {type(module).__name__} ({layout} input): "
            f"{type(error).__name__}: {error}") from error
    return path


def _signature_io(path: Path) -> tuple[str, str, list[str]]:
    """(signature input key, input tensor name, output tensor names in forward order)."""
    from edgepose.backends.tflite import graph_interpreter

    interpreter, _ = graph_interpreter(path)
    signature = interpreter._get_full_signature_list()[_SIGNATURE]
    names = {d["index"]: d["name"] for d in interpreter.get_tensor_details()}
    (key, index), = signature["inputs"].items()
    outputs = sorted(signature["outputs"].items(), key=lambda kv: _natural(kv[0]))
    return key, names[index], [names[i] for _, i in outputs]


def _natural(key: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def _build(litert_torch, torch, module, card: ModelCard, native: str, layout: str,
           precision: str, sample, tensors, tmp: Path, tolerance_px: float,
           head_depths: tuple[int, ...]) -> dict[str, Any]:
    """One layout: the FP32 conversion, then the precision. Returns path, names, decision."""
    fp32 = _convert_fp32(litert_torch, torch, module, native, layout, sample,
                         tmp / f"fp32_{layout}.tflite")
    key, input_name, output_names = _signature_io(fp32)
    if len(output_names) != len(card.outputs):
        raise ValueError(
            f"The card maps {len(card.outputs)} outputs {dict(card.outputs)}, but "
            f"{type(module).__name__} returns {len(output_names)}: its forward must return "
            "the outputs in the order of card.outputs.")
    result: dict[str, Any] = {"input_name": input_name, "output_names": output_names,
                              "decision": None}
    if precision == "fp32":
        result["path"] = fp32
        return result
    from ai_edge_quantizer import qtyping, quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    out = tmp / f"{precision}_{layout}.tflite"
    if precision == "fp16":
        q = quantizer.Quantizer(str(fp32))
        q.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                 num_bits=16, algorithm_key=AlgorithmName.FLOAT_CASTING)
        _quantize(q, out)
    elif precision == "int8-dynamic":
        _quantize(quantizer.Quantizer(str(fp32), recipe.dynamic_wi8_afp32()), out)
    else:
        x = _to_layout(tensors, native, layout)
        result["decision"] = _static_int8(fp32, out, card, key, x,
                                          Tolerance(max_keypoint_error_px=tolerance_px),
                                          head_depths)
    result["path"] = out
    return result


def _quantize(q, out: Path, calibration=None) -> None:
    try:
        with _quiet():
            q.quantize(calibration, enable_progress_report=False).export_model(
                str(out), overwrite=True)
    except Exception as error:
        raise RuntimeError(
            f"AI Edge Quantizer failed: {type(error).__name__}: {error}") from error


# --- static INT8 and the head decision ------------------------------------------------------

def tflite_head_scope(path: str | Path, depth: int) -> list[str]:
    """Output tensor names of the operators of a ``.tflite``'s head of ``depth`` layers.

    As :func:`edgepose_export.openvino.head_scope`: an operator's distance
    from the outputs is the least number of weighted operators
    (:data:`WEIGHTED_TFLITE_OPS`, itself included) on a path from it to a
    model output; the head of depth ``d`` is every operator at distance
    ``<= d``. AI Edge Quantizer selects operators by these names.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}.")
    from edgepose.backends.tflite import graph_interpreter

    interpreter, _ = graph_interpreter(path)
    ops = interpreter._get_ops_details()
    names = {d["index"]: d["name"] for d in interpreter.get_tensor_details()}
    outputs = {d["index"] for d in interpreter.get_output_details()}
    consumers: dict[int, list[int]] = {}
    for op in ops:
        for t in op["inputs"]:
            consumers.setdefault(int(t), []).append(op["index"])
    distance: dict[int, int] = {}
    for op in reversed(ops):  # the operators are in execution order
        known = [0 for t in op["outputs"] if int(t) in outputs]
        known += [distance[c] for t in op["outputs"] for c in consumers.get(int(t), [])
                  if c in distance]
        if known:
            distance[op["index"]] = min(known) + (1 if op["op_name"] in WEIGHTED_TFLITE_OPS
                                                  else 0)
    return [names[int(t)] for op in ops if distance.get(op["index"], depth + 1) <= depth
            for t in op["outputs"] if int(t) in names]


def _run_tflite(path: Path, x: np.ndarray, output_names: list[str]) -> list[np.ndarray]:
    from edgepose.backends import open_backend

    with open_backend(path, backend="tflite") as backend:
        name = backend.inputs[0].name
        outs = [backend.run({name: x[i:i + 1]}) for i in range(len(x))]
    return [np.concatenate([o[n] for o in outs]) for n in output_names]


def _static_int8(fp32: Path, out: Path, card: ModelCard, key: str, x: np.ndarray,
                 tolerance: Tolerance, head_depths: tuple[int, ...]) -> Int8Decision:
    from ai_edge_quantizer import qtyping, quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    _, _, output_names = _signature_io(fp32)
    roles = list(card.outputs)
    reference = dict(zip(roles, _run_tflite(fp32, x, output_names)))
    q = quantizer.Quantizer(str(fp32), recipe.static_wi8_ai8())
    try:
        # its progress bar cannot be turned off: it goes to a buffer
        with _quiet(), contextlib.redirect_stderr(io.StringIO()):
            calibration = q.calibrate({_SIGNATURE: [{key: x[i:i + 1]} for i in range(len(x))]})
    except Exception as error:
        raise RuntimeError(f"AI Edge Quantizer calibration failed: {error}") from error
    candidates = head_candidates(lambda depth: tflite_head_scope(fp32, depth), head_depths)

    def target(depth: int) -> Path:
        return out.with_name(f"{out.stem}_head{depth}.tflite")

    def measure(depth: int) -> dict[str, Any]:
        names = candidates[depth]
        qz = quantizer.Quantizer(str(fp32), recipe.static_wi8_ai8())
        if names:
            qz.update_quantization_recipe(
                # AI Edge Quantizer's op scope: its output tensor names, each followed by ";"
                "(?:^|;)(?:" + "|".join(re.escape(n) for n in names) + ");",
                qtyping.TFLOperationName.ALL_SUPPORTED, algorithm_key=AlgorithmName.NO_QUANTIZE)
        _quantize(qz, target(depth), calibration)
        got = dict(zip(roles, _run_tflite(target(depth), x, output_names)))
        return error_figures(keypoint_error_px(card, reference, got))

    decision = decide_int8_head(candidates, measure, tolerance)
    os.replace(target(decision.head_depth), out)
    return decision


# --- layout -----------------------------------------------------------------------------------

def _latencies(paths: Mapping[str, Path], card: ModelCard, sample: np.ndarray, native: str,
               runs: int) -> dict[str, float]:
    """p50 latency (ms) of each layout's model with the runtime's TFLite backend, runs
    interleaved so that a change in machine load hits both alike."""
    from edgepose.backends import open_backend

    backends = {lay: open_backend(p, backend="tflite") for lay, p in paths.items()}
    try:
        feeds = {lay: {b.inputs[0].name: _to_layout(sample, native, lay)}
                 for lay, b in backends.items()}
        times: dict[str, list[float]] = {lay: [] for lay in backends}
        for lay, b in backends.items():  # warm-up
            for _ in range(3):
                b.run(feeds[lay])
        for _ in range(max(1, runs)):
            for lay, b in backends.items():
                start = time.perf_counter_ns()
                b.run(feeds[lay])
                times[lay].append((time.perf_counter_ns() - start) / 1e6)
    finally:
        for b in backends.values():
            b.close()
    return {lay: round(float(np.median(t)), 4) for lay, t in times.items()}


# --- the card ---------------------------------------------------------------------------------

def _final_card(card: ModelCard, built: Mapping[str, Any], layout: str, precision: str,
                calib: CalibrationSet | None, tensors, latency, module) -> ModelCard:
    data = card.to_dict()
    data["input"] = {**data["input"], "name": built["input_name"], "layout": layout}
    data["outputs"] = dict(zip(card.outputs, built["output_names"]))
    provenance = {
        "source": f"torch module {type(module).__module__}.{type(module).__qualname__}",
        "target": "tflite", "precision": precision,
        "tools": tool_versions("litert-torch", "ai-edge-quantizer", "ai-edge-litert", "torch"),
        "input_layout": {"chosen": layout, "latency_ms_p50": latency,
                         "measured_with": "edgepose TFLite backend (XNNPACK, all cores)"}
        if latency else {"chosen": layout},
    }
    if precision == "int8":
        provenance["calibration"] = {"images": int(tensors.shape[0]), "source": calib.source}
        provenance["int8"] = built["decision"].to_provenance(
            engine="ai_edge_quantizer static_wi8_ai8", measured_on="calibration tensors",
            measure=MEASURE, inputs=int(tensors.shape[0]))
    data["provenance"] = {**data["provenance"], **provenance}
    return ModelCard.from_dict(data)
