"""The export stage's shared types and its entry point, ``export_model``."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgepose.card import ModelCard

__all__ = ["PRECISIONS", "TARGETS", "CalibrationSet", "Tolerance", "ParityReport", "Artifact",
           "ExportResult", "require"]

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


@dataclass
class ParityReport:
    """An artefact against its source on real images (see export/parity.py)."""

    max_abs_diff: dict[str, float]
    keypoint_error_px_mean: float
    keypoint_error_px_p95: float
    oks_mean: float
    latency_ms_p50: float
    source_latency_ms_p50: float | None
    images: int
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Artifact:
    """One exported file."""

    path: Path
    target: str
    precision: str
    card: ModelCard
    parity: ParityReport | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "target": self.target, "precision": self.precision,
                "size_bytes": self.path.stat().st_size if self.path.exists() else None,
                "parity": None if self.parity is None else self.parity.to_dict()}


@dataclass
class ExportResult:
    """Every artefact of one export, with its parity report."""

    artifacts: list[Artifact] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(a.parity is None or a.parity.passed for a in self.artifacts)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps({"passed": self.passed,
                           "artifacts": [a.to_dict() for a in self.artifacts]}, **kwargs)

    def table(self) -> str:
        """A plain-text table for people."""
        head = (f"{'target':9} {'precision':12} {'size':>9} {'max|diff|':>10} {'kp err':>8} "
                f"{'kp p95':>8} {'OKS':>6} {'ms p50':>8}  ok")
        rows = [head, "-" * len(head)]
        for a in self.artifacts:
            size = a.path.stat().st_size / 1e6 if a.path.exists() else float("nan")
            p = a.parity
            if p is None:
                rows.append(f"{a.target:9} {a.precision:12} {size:8.2f}M {'-':>10} {'-':>8} "
                            f"{'-':>8} {'-':>6} {'-':>8}  -")
                continue
            diff = max(p.max_abs_diff.values()) if p.max_abs_diff else float("nan")
            rows.append(f"{a.target:9} {a.precision:12} {size:8.2f}M {diff:10.2e} "
                        f"{p.keypoint_error_px_mean:8.2f} {p.keypoint_error_px_p95:8.2f} "
                        f"{p.oks_mean:6.3f} {p.latency_ms_p50:8.2f}  {'yes' if p.passed else 'NO'}")
        return "\n".join(rows)
