"""The export stage's shared types and its entry point, ``export_model``."""
from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgepose.card import ModelCard

__all__ = ["PRECISIONS", "TARGETS", "CalibrationSet", "Tolerance", "ParityReport", "Artifact",
           "ExportResult", "ParityError", "require", "tool_versions", "card_with_provenance",
           "export_model"]

PRECISIONS = ("fp32", "fp16", "int8", "int8-dynamic")
TARGETS = ("onnx", "openvino", "tflite")


def require(module: str, extra: str = "export"):
    """Imports a workstation dependency, or raises ImportError naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"The export stage needs {module.split('.')[0]}: pip install 'edgepose[{extra}]'."
        ) from exc


#: Distributions whose versions go into a card's provenance, when installed.
TOOLS = ("edgepose", "torch", "onnx", "onnxscript", "onnxruntime", "openvino", "nncf",
         "litert-torch")


def tool_versions(*names: str) -> dict[str, str]:
    """``{distribution: version}`` of the installed ones among ``names`` (default: TOOLS)."""
    from edgepose.versions import installed_versions

    return installed_versions(names or TOOLS)


def card_with_provenance(card: ModelCard, **fields: Any) -> ModelCard:
    """A copy of ``card`` whose provenance has ``fields`` set (a value of None removes the key).

    Raises:
        ValueError: a value that is not JSON (see :class:`edgepose.card.ModelCard`).
    """
    data = card.to_dict()
    provenance = dict(data.get("provenance") or {})
    for key, value in fields.items():
        if value is None:
            provenance.pop(key, None)
        else:
            provenance[key] = value
    data["provenance"] = provenance
    return ModelCard.from_dict(data)


@dataclass(frozen=True)
class CalibrationSet:
    """Model input tensors for calibrating INT8 quantization.

    Attributes:
        tensors: ``(M, ...)`` input tensors, preprocessed exactly as the
            card says (layout, dtype, colour, mean/std).
        source: where they came from (a folder, a video), for provenance.
    """

    tensors: np.ndarray
    source: str

    def __len__(self) -> int:
        return int(self.tensors.shape[0])

    def batches(self, batch_size: int = 1) -> Iterator[np.ndarray]:
        """The tensors in batches of ``batch_size`` (the last may be smaller)."""
        for i in range(0, len(self), batch_size):
            yield self.tensors[i:i + batch_size]


@dataclass(frozen=True)
class Tolerance:
    """How far an artefact may drift from its source before the export fails."""

    max_keypoint_error_px: float = 3.0  # mean keypoint error in model-input pixels
    min_oks: float = 0.9                # mean OKS between source and artefact poses


def _json_number(value: Any) -> Any:
    """NaN and inf as None (JSON has neither), recursively."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_number(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_number(v) for v in value]
    return value


@dataclass
class ParityReport:
    """An artefact against its source on real images (see export/parity.py).

    Figures that are undefined (no keypoint found by both, no latency
    measured) are NaN here and None in :meth:`to_dict`.
    """

    max_abs_diff: dict[str, float]
    keypoint_error_px_mean: float
    keypoint_error_px_p95: float
    oks_mean: float
    latency_ms_p50: float
    source_latency_ms_p50: float | None
    images: int
    passed: bool
    score_threshold: float = 0.2       # keypoints scoring at most this are not "found"
    keypoints: int = 0                 # keypoints the keypoint error is over
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN and inf as None)."""
        return _json_number(asdict(self))


@dataclass
class Artifact:
    """One exported file.

    ``notes`` say what a conversion decided (e.g. INT8 keeping the head in
    float, and the measurements behind it).
    """

    path: Path
    target: str
    precision: str
    card: ModelCard
    parity: ParityReport | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "target": self.target, "precision": self.precision,
                "size_bytes": self.path.stat().st_size if self.path.exists() else None,
                "parity": None if self.parity is None else self.parity.to_dict(),
                "notes": list(self.notes)}


@dataclass
class ExportResult:
    """Every artefact of one export, with its parity report.

    ``skipped``: the (target, precision) pairs that were asked for but not
    made, each ``{"target", "precision", "reason"}`` (e.g. TFLite without
    litert-torch installed).
    """

    artifacts: list[Artifact] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(a.parity is None or a.parity.passed for a in self.artifacts)

    @property
    def failed(self) -> list[Artifact]:
        """The artefacts outside their tolerance."""
        return [a for a in self.artifacts if a.parity is not None and not a.parity.passed]

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps({"passed": self.passed,
                           "artifacts": [a.to_dict() for a in self.artifacts],
                           "skipped": list(self.skipped)}, allow_nan=False, **kwargs)

    def table(self) -> str:
        """A plain-text table for people."""
        head = (f"{'target':9} {'precision':12} {'size':>9} {'max|diff|':>10} {'kp err':>8} "
                f"{'kp p95':>8} {'OKS':>6} {'ms p50':>8} {'src ms':>8}  ok")
        rows = [head, "-" * len(head)]
        notes = []
        for a in self.artifacts:
            size = _size_mb(a.path)
            p = a.parity
            if p is None:
                rows.append(f"{a.target:9} {a.precision:12} {size:8.2f}M {'-':>10} {'-':>8} "
                            f"{'-':>8} {'-':>6} {'-':>8} {'-':>8}  -")
            else:
                diff = max(p.max_abs_diff.values()) if p.max_abs_diff else float("nan")
                src = (float("nan") if p.source_latency_ms_p50 is None
                       else p.source_latency_ms_p50)
                rows.append(f"{a.target:9} {a.precision:12} {size:8.2f}M {diff:10.2e} "
                            f"{p.keypoint_error_px_mean:8.2f} {p.keypoint_error_px_p95:8.2f} "
                            f"{p.oks_mean:6.3f} {p.latency_ms_p50:8.2f} {src:8.2f}  "
                            f"{'yes' if p.passed else 'NO'}")
                notes += [f"{a.target} {a.precision}: {n}" for n in p.notes]
            notes += [f"{a.target} {a.precision}: {n}" for n in a.notes]
        for s in self.skipped:
            rows.append(f"{s['target']:9} {s['precision']:12} {'skipped':>9}  {s['reason']}")
        if self.artifacts:
            p = next((a.parity for a in self.artifacts if a.parity is not None), None)
            if p is not None:
                notes.insert(0, f"parity on {p.images} input(s); keypoint error in model-input "
                                f"pixels over keypoints scoring > {p.score_threshold} in both")
        return "\n".join(rows + [f"  * {n}" for n in notes])


def _size_mb(path: Path) -> float:
    if not path.exists():
        return float("nan")
    size = path.stat().st_size
    if path.suffix.lower() == ".xml" and path.with_suffix(".bin").exists():
        size += path.with_suffix(".bin").stat().st_size
    return size / 1e6


class ParityError(RuntimeError):
    """An artefact's parity report is outside its tolerance (``export_model(force=False)``).

    Attributes:
        result: the :class:`ExportResult`, every artefact included (the files
            are kept for inspection; their cards record the failed parity).
    """

    def __init__(self, result: ExportResult) -> None:
        self.result = result
        failed = ", ".join(
            f"{a.path.name} (keypoint error {a.parity.keypoint_error_px_mean:.2f} px, "
            f"OKS {a.parity.oks_mean:.3f})" for a in result.failed)
        super().__init__(
            f"Outside the tolerance: {failed}. The files are kept, their cards say they failed; "
            "pass force=True (edgepose export --force) to accept them, or relax the tolerance.")


# --- export_model -------------------------------------------------------------------------

_SOURCE_SUFFIXES = (".onnx", ".tflite")
#: Parity and the INT8 head measurement use at most this many input tensors.
MAX_PARITY_INPUTS = 100


def _choices(name: str, values: Any, allowed: tuple[str, ...]) -> list[str]:
    items = values.split(",") if isinstance(values, str) else list(values)
    items = [str(v).strip().lower() for v in items if str(v).strip()]
    unknown = [v for v in items if v not in allowed]
    if unknown or not items:
        raise ValueError(
            f"{name} must be one or more of {', '.join(allowed)}, got {values!r}.")
    return list(dict.fromkeys(items))


def _is_torch_module(source: Any) -> bool:
    if isinstance(source, (str, os.PathLike)):
        return False
    if not (hasattr(source, "forward") and hasattr(source, "state_dict")):
        return False
    torch = require("torch")
    return isinstance(source, torch.nn.Module)


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "model"


def _subset(tensors: np.ndarray, n: int) -> np.ndarray:
    if len(tensors) <= n:
        return tensors
    return tensors[np.linspace(0, len(tensors) - 1, n).round().astype(int)]


def _rewrite_card(path: Path, card: ModelCard) -> None:
    """Replaces the card inside ``path`` (write_card writes a copy: write beside, rename)."""
    from edgepose._files import create_temp
    from edgepose.card import write_card

    f, tmp = create_temp(path.parent, path.name, suffix=path.suffix)
    f.close()
    try:
        write_card(path, tmp, card)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        if path.suffix.lower() == ".xml":
            tmp.with_suffix(".bin").unlink(missing_ok=True)


def _parity_provenance(report: ParityReport, tolerance: Tolerance, inputs: str) -> dict:
    data = report.to_dict()
    data["inputs"] = inputs
    data["tolerance"] = asdict(tolerance)
    for key in ("keypoint_error_px_mean", "keypoint_error_px_p95", "oks_mean", "latency_ms_p50",
                "source_latency_ms_p50"):
        if isinstance(data.get(key), float):
            data[key] = round(data[key], 4)
    data["max_abs_diff"] = {k: (None if v is None else float(f"{v:.4g}"))
                            for k, v in data["max_abs_diff"].items()}
    return data


def _resolve_card(path: Path, card: ModelCard | None, preset: str | None) -> ModelCard:
    """The card of a source file: given, else as the runtime resolves it (a preset
    named, the card in the file, a known file's preset, RTMPose's I/O signature)."""
    from edgepose.model import LoadedModel

    if card is not None:
        if preset is not None:
            raise ValueError("Pass card= or preset=, not both.")
        return card
    loaded = LoadedModel(path, preset=preset)
    try:
        return loaded.card
    finally:
        loaded.close()


def _as_inputs(value: Any, card: ModelCard, boxes: Any, progress: bool,
               max_images: int, warn_below: int) -> CalibrationSet | None:
    if value is None or isinstance(value, CalibrationSet):
        return value
    if isinstance(value, (str, os.PathLike)):
        from edgepose_export.calibration import calibration_set

        top_down = card.task in ("topdown", "single")
        return calibration_set(value, card, boxes=boxes if top_down else None,
                               max_images=max_images, progress=progress, warn_below=warn_below)
    tensors = np.asarray(value)
    return CalibrationSet(tensors=tensors, source=f"{len(tensors)} given tensors")


def export_model(source: Any, *, card: ModelCard | None = None, preset: str | None = None,
                 targets: Any = ("onnx",), precisions: Any = ("fp32",),
                 calibration: Any = None, out_dir: str | os.PathLike,
                 parity_inputs: Any = None, tolerance: Tolerance | None = None,
                 force: bool = False, boxes: Any = None, name: str | None = None,
                 exclude_nodes: Any = None, max_calibration_images: int = 300,
                 latency_runs: int = 20, progress: bool = False) -> ExportResult:
    """Exports a pose model to every target x precision asked for, each file with
    its card and a parity report against the source.

    Sources and what they give:

    * a ``torch.nn.Module`` (with ``card=``, ``preset=``, or a ``card()``
      method as the reference models have): ONNX by the dynamo exporter
      (:func:`edgepose_export.onnx.torch_to_onnx`), FP16 and INT8 from it;
      OpenVINO from that ONNX; TFLite by litert-torch (skipped, with the
      reason in ``result.skipped``, when litert-torch is not installed);
    * an ``.onnx`` file: a copy with the card attached, FP16, INT8, OpenVINO;
      no TFLite (onnx2tf needs its own environment);
    * a ``.tflite`` file: a copy with the card attached (FP32 only) and
      OpenVINO (which reads TFLite); no ONNX.

    The card of a file comes from ``card=``, ``preset=``, the file itself, its
    sha256 (a known model) or RTMPose's I/O signature, as the runtime finds it.

    INT8 (ONNX static QDQ per-channel, OpenVINO NNCF, TFLite AI Edge
    Quantizer): the model is quantized fully, measured on the calibration
    tensors, and the head kept in float only when the fully quantized model
    breaks ``tolerance``, one decision for the three formats
    (:func:`edgepose_export.int8.decide_int8_head`, recorded in the card as
    ``provenance["int8"]``; OpenVINO and TFLite judge the keypoint error
    only). For ONNX, ``exclude_nodes`` replaces the decision. YOLO-pose
    (head ``"yolo_pose"``) keeps its decode in float where measurement says
    so (:mod:`edgepose_export.yolo_pose`, judged on the parity images), and
    its ``.tflite`` source can be quantized to ``"int8"`` (AI Edge Quantizer).
    ``"int8-dynamic"`` is ONNX and TFLite only, with a warning for
    convolutional ONNX models.

    Every artefact's parity report (:func:`edgepose_export.parity.parity`) is
    written into its card's provenance (``provenance["parity"]``).

    Args:
        source: a torch module, or the path of an ``.onnx`` or ``.tflite`` file.
        card, preset: the model's card, or a preset name (see above).
        targets: some of ``"onnx"``, ``"openvino"``, ``"tflite"`` (a list or
            a comma-separated string).
        precisions: some of ``"fp32"``, ``"fp16"``, ``"int8"``, ``"int8-dynamic"``.
        calibration: a CalibrationSet, or a folder of images / a video to
            make one from (:func:`edgepose_export.calibration.calibration_set`);
            needed for ``"int8"``.
        out_dir: the folder the artefacts are written to (created).
        parity_inputs: a CalibrationSet, ``(M, ...)`` tensors or a folder of
            images (or a video); default the calibration tensors; one of the
            two is required. At most :data:`MAX_PARITY_INPUTS` are used.
        tolerance: the limits each artefact must meet; None: :class:`Tolerance`'s
            defaults, except for one-stage YOLO-pose cards, whose whole-image
            input gets 3 px per 256 px of its longer side (7.5 px at 640)
            and OKS >= 0.95 (:func:`edgepose_export.yolo_pose.default_tolerance`).
        force: keep going and return when an artefact fails its tolerance
            (else :class:`ParityError` after every artefact is made).
        boxes: person boxes for the top-down crops of image folders given
            as ``calibration`` / ``parity_inputs``: a COCO-style annotation
            file or ``{file name: (M, 4) xyxy}``.
        name: the artefacts' file name stem (default: the card's name).
        exclude_nodes: ONNX INT8: nodes kept in float, instead of the
            measured head decision.
        max_calibration_images: at most this many calibration tensors.
        latency_runs: timed runs per latency figure.
        progress: progress bars on stderr while reading images.

    Returns:
        the :class:`ExportResult`.

    Raises:
        ParityError: an artefact is outside its tolerance and not ``force``.
        ValueError: an unsupported source, target or precision combination
            (checked before anything is written), a missing card, INT8
            without calibration, no parity images, or a card that does not
            fit the model.
        FileNotFoundError: a missing source file or image folder.
        ImportError: a missing toolchain package (names the extra).
    """
    targets = _choices("targets", targets, TARGETS)
    precisions = _choices("precisions", precisions, PRECISIONS)
    out_dir = Path(out_dir)
    torch_source = _is_torch_module(source)
    if not torch_source:
        if not isinstance(source, (str, os.PathLike)):
            raise TypeError(
                f"source must be a torch.nn.Module or the path of an .onnx or .tflite file, got "
                f"{type(source).__name__}.")
        source = Path(source)
        if not source.is_file():
            raise FileNotFoundError(f"No model file at {source}.")
        if source.suffix.lower() not in _SOURCE_SUFFIXES:
            raise ValueError(
                f"The source must be a torch module or an .onnx or .tflite file, got "
                f"{source.name!r}. (An OpenVINO IR is already a target format.)")
        card = _resolve_card(source, card, preset)
    else:
        if card is None and preset is not None:
            from edgepose.presets import preset_card

            card = preset_card(preset)
        if card is None and callable(getattr(source, "card", None)):
            card = source.card()
        if not isinstance(card, ModelCard):
            raise ValueError(
                f"A torch module needs its card: pass card=ModelCard(...) or preset=NAME "
                f"(got {type(card).__name__}).")
    kind = "torch" if torch_source else source.suffix.lower()[1:]
    if tolerance is None:
        tolerance = Tolerance()
        if card.head == "yolo_pose":
            from edgepose_export.yolo_pose import default_tolerance

            tolerance = default_tolerance(card.input.size)

    # -- every combination checked before anything is written
    for target in targets:
        if kind == "tflite" and target == "onnx":
            raise ValueError(
                "ONNX from a TFLite source is not supported: convert the original (PyTorch or "
                "ONNX) model instead, or use tf2onnx in its own environment.")
        if kind == "onnx" and target == "tflite":
            raise ValueError(
                "TFLite from an ONNX source is not supported here: onnx2tf needs its own "
                "environment (its pins clash with this one). Export from the PyTorch model "
                "(litert-torch), or run onnx2tf separately.")
        for precision in precisions:
            if kind == "tflite" and target == "tflite" and precision != "fp32" and not (
                    card.head == "yolo_pose" and precision == "int8"):
                raise ValueError(
                    f"A TFLite source is only copied with its card (precision fp32), not "
                    f"converted to {precision}: quantize the original model instead.")
            if target == "openvino" and precision == "int8-dynamic":
                raise ValueError(
                    "OpenVINO has no dynamic-range INT8 for convolutional pose models: use "
                    "precision 'int8' with calibration images, or 'fp16'.")
    if "int8" in precisions and calibration is None:
        raise ValueError(
            "Precision 'int8' needs calibration images: pass calibration= (a folder of images, "
            "a video, or a CalibrationSet; edgepose export --calib DIR).")
    if kind == "onnx" and any(p != "fp32" for p in precisions) and "onnx" in targets:
        from edgepose_export.onnx import is_quantized

        if is_quantized(source):
            raise ValueError(
                f"{source.name} is already quantized: only fp32 (a copy with its card) can be "
                "made from it. Quantize its float original instead.")

    from edgepose_export.calibration import MIN_RECOMMENDED

    calib = _as_inputs(calibration, card, boxes, progress, max_calibration_images,
                       MIN_RECOMMENDED)
    parity_set = _as_inputs(parity_inputs, card, boxes, progress, MAX_PARITY_INPUTS, 0)
    if parity_set is None:
        parity_set = calib
    if parity_set is None:
        raise ValueError(
            "The parity reports need real images: pass parity_inputs= (a folder of images, or "
            "tensors) or calibration= (edgepose export --parity-images DIR or --calib DIR). "
            "On random inputs keypoint error and OKS say nothing.")
    parity_tensors = _subset(parity_set.tensors, MAX_PARITY_INPUTS)

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = _file_name(name or card.name)
    result = ExportResult()
    work = tempfile.TemporaryDirectory(prefix="edgepose-export-")
    try:
        base = _base_onnx(source, kind, card, targets, precisions, out_dir, stem, Path(work.name))
        if base is not None:
            from edgepose.card import read_card

            card = read_card(base) or card
        for target in [t for t in TARGETS if t in targets]:
            for precision in precisions:
                path, notes = _convert(source, kind, base, card, target, precision, calib,
                                       tolerance, exclude_nodes, out_dir, stem, result,
                                       parity_tensors)
                if path is None:
                    continue
                artifact = _check_artifact(source, path, target, precision, card, parity_tensors,
                                           parity_set.source, tolerance, latency_runs)
                artifact.notes.extend(notes)
                result.artifacts.append(artifact)
    finally:
        work.cleanup()
    if not result.passed and not force:
        raise ParityError(result)
    return result


def _base_onnx(source, kind, card, targets, precisions, out_dir, stem, work) -> Path | None:
    """The FP32 ONNX everything else is made from (an artefact when asked for)."""
    if kind == "tflite":
        return None
    needed = "onnx" in targets or "openvino" in targets
    if not needed:
        return None
    wanted = "onnx" in targets and "fp32" in precisions
    path = (out_dir if wanted else work) / f"{stem}_fp32.onnx"
    from edgepose_export import onnx as onnx_export

    if kind == "torch":
        return onnx_export.torch_to_onnx(source, card, path)
    return onnx_export.attach_card(source, path, card)


def _convert(source, kind, base, card, target, precision, calib, tolerance, exclude_nodes,
             out_dir, stem, result, parity_tensors=None) -> tuple[Path | None, list[str]]:
    from edgepose_export import onnx as onnx_export

    if card.head == "yolo_pose" and precision == "int8" and exclude_nodes is None:
        return _convert_yolo_int8(source, kind, base, card, target, calib, tolerance, out_dir,
                                  stem, parity_tensors)

    if target == "onnx":
        path = out_dir / f"{stem}_{precision}.onnx"
        if precision == "fp32":
            return base, []
        if precision == "fp16":
            return onnx_export.onnx_to_fp16(base, path), []
        if precision == "int8-dynamic":
            return onnx_export.onnx_to_int8_dynamic(base, path), []
        if exclude_nodes is not None:
            return onnx_export.onnx_to_int8(base, path, calib, card,
                                            exclude_nodes=list(exclude_nodes)), []
        path, _ = onnx_export.onnx_to_int8_decided(
            base, path, calib, card, tolerance=tolerance,
            measure_inputs=_subset(calib.tensors, MAX_PARITY_INPUTS))
        return path, _int8_notes(path)
    if target == "openvino":
        from edgepose_export.openvino import to_openvino

        src = source if kind == "tflite" else base
        path = to_openvino(src, out_dir / f"{stem}_{precision}.xml", card, precision,
                           calib if precision == "int8" else None,
                           max_keypoint_error_px=tolerance.max_keypoint_error_px)
        return path, _int8_notes(path)
    # tflite
    path = out_dir / f"{stem}_{precision}.tflite"
    if kind == "tflite":
        return onnx_export.attach_card(source, path, card), []
    try:
        from edgepose_export.tflite import torch_to_tflite
    except ImportError as exc:
        result.skipped.append({"target": target, "precision": precision,
                               "reason": f"the TFLite converter is unavailable ({exc})"})
        return None, []
    try:
        path = torch_to_tflite(source, card, path, precision,
                               calib if precision == "int8" else None,
                               max_keypoint_error_px=tolerance.max_keypoint_error_px)
    except ImportError as exc:
        result.skipped.append({"target": target, "precision": precision, "reason": str(exc)})
        return None, []
    return path, _int8_notes(path)


def _convert_yolo_int8(source, kind, base, card, target, calib, tolerance, out_dir, stem,
                       parity_tensors) -> tuple[Path, list[str]]:
    """YOLO-pose INT8, the decode in float where measurement (on the parity
    images) says so: :mod:`edgepose_export.yolo_pose`."""
    from edgepose_export import yolo_pose

    judge = parity_tensors if parity_tensors is not None else _subset(calib.tensors,
                                                                      MAX_PARITY_INPUTS)
    if target == "onnx":
        path, _ = yolo_pose.quantize_onnx(base, out_dir / f"{stem}_int8.onnx", calib,
                                          measure_inputs=judge, card=card, tolerance=tolerance)
    elif target == "openvino":
        src = source if kind == "tflite" else base
        path, _ = yolo_pose.quantize_openvino(src, out_dir / f"{stem}_int8.xml", calib,
                                              measure_inputs=judge, card=card,
                                              tolerance=tolerance, normalised=bool(
                                                  getattr(card.params, "normalized", False)))
    else:
        path, _ = yolo_pose.quantize_tflite(source, out_dir / f"{stem}_int8.tflite", calib,
                                            measure_inputs=judge, card=card, tolerance=tolerance,
                                            normalised=bool(getattr(card.params, "normalized",
                                                                    False)))
    return path, _int8_notes(path)


def _int8_notes(path: Path) -> list[str]:
    """What an INT8 conversion decided about the head, from the card it wrote."""
    from edgepose.card import read_card
    from edgepose_export.int8 import describe_int8

    written = read_card(path)
    record = None if written is None else written.provenance.get("int8")
    return [describe_int8(record)] if isinstance(record, Mapping) else []


def _check_artifact(source, path, target, precision, card, tensors, inputs_source, tolerance,
                    runs) -> Artifact:
    """Parity of one artefact, written into its card; the runtime must load it as it is."""
    from edgepose.card import read_card
    from edgepose.model import LoadedModel
    from edgepose_export.parity import parity

    own = read_card(path)
    if own is None:
        raise RuntimeError(f"{path.name} was written without a card: a converter bug.")
    loaded = LoadedModel(path)  # what Estimator(path) does: the card must fit the file
    loaded.close()
    report = parity(source, path, own, tensors, tolerance, source_card=card, runs=runs)
    updated = card_with_provenance(own, parity=_parity_provenance(report, tolerance,
                                                                  inputs_source))
    _rewrite_card(path, updated)
    return Artifact(path=path, target=target, precision=precision, card=updated, parity=report)
