"""MPII annotations (centre / scale / joints) and MPII-style PCKh.

The MPII annotation files MMPose uses (``mpii_val.json``, and
``../shared/data/mpii/test_mpii.json``) are a list of people with ``image``,
``center`` and ``scale`` (the person's height / 200), 16 ``joints`` in
MATLAB's 1-based pixels, and ``joints_vis``. They carry no head boxes.

PCKh normalises by the head-segment length. MPII's own evaluation and
MMPose take it as 0.6 x the diagonal of the annotated head box from
``mpii_gt_val.mat`` (MMPose has no fallback: without ``headbox_file`` it
cannot compute PCKh). Without head boxes, edgepose measures the head
segment directly: ``|head_top - upper_neck|`` of the ground truth, and
``200 * scale / 6`` where either joint is not labelled (in MPII the two
coincide: the scale is derived from that segment, which
``tests/test_eval.py`` checks on every person in the shared file). Pass
``head_sizes=`` (e.g. :func:`~edgepose.evaluation.pck.head_size_from_boxes`
of the official boxes) to reproduce the published numbers.

The summary follows MMPose's ``MpiiPCKAccuracy``: PCKh per joint at 0.5,
body-part means (left/right averaged), ``Mean`` = correct / labelled over
the 14 joints other than pelvis and thorax, and the same mean at 0.1.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgepose._arrays import read_only
from edgepose.evaluation.annotations import load_json
from edgepose.evaluation.pck import PCKResult, pck
from edgepose.keypoints import MPII16

__all__ = ["MpiiAnnotations", "MpiiPCKh", "load_mpii", "evaluate_pckh", "MPII_BODY_PARTS"]

#: MPII's body-part summary (MMPose ``MpiiPCKAccuracy``): MPII16 indices.
MPII_BODY_PARTS: dict[str, tuple[int, ...]] = {
    "head": (9,), "shoulder": (12, 13), "elbow": (11, 14), "wrist": (10, 15),
    "hip": (2, 3), "knee": (1, 4), "ankle": (0, 5)}
_EXCLUDED = (6, 7)  # pelvis and thorax are left out of MPII's mean
_PIXEL_STD = 200.0
_HEAD_PER_SCALE = 1.0 / 6.0  # head segment = 200 * scale / 6 in MPII's annotations


@dataclass(frozen=True, eq=False)
class MpiiAnnotations:
    """MPII single-person annotations, N people, in 0-based image pixels.

    Attributes:
        image_files: ``(N,)`` image file names (people of one image repeat it).
        centers: ``(N, 2)`` float64 person centre (file value - 1).
        scales: ``(N,)`` float64 MPII scale (person height / 200 px).
        joints: ``(N, 16, 2)`` float64 MPII16 joints (file value - 1).
        visible: ``(N, 16)`` bool ``joints_vis``.
        source: where they came from.
    """

    image_files: tuple[str, ...]
    centers: NDArray[np.float64]
    scales: NDArray[np.float64]
    joints: NDArray[np.float64]
    visible: NDArray[np.bool_]
    source: str = "<list>"

    def __len__(self) -> int:
        return len(self.image_files)

    @property
    def boxes(self) -> NDArray[np.float64]:
        """``(N, 4)`` xyxy person boxes as MMPose builds them: a square of
        side ``200 * scale`` around the centre moved down by ``15 * scale``."""
        side = _PIXEL_STD * self.scales
        cx = self.centers[:, 0]
        cy = self.centers[:, 1] + 15.0 * self.scales
        return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)

    def head_sizes(self) -> NDArray[np.float64]:
        """``(N,)`` head-segment length: ``|head_top - upper_neck|`` where
        both are labelled, else ``200 * scale / 6``."""
        seg = np.linalg.norm(self.joints[:, 9] - self.joints[:, 8], axis=1)
        both = self.visible[:, 9] & self.visible[:, 8]
        return np.where(both, seg, _PIXEL_STD * self.scales * _HEAD_PER_SCALE)


def load_mpii(source: str | Path | Sequence[dict]) -> MpiiAnnotations:
    """Loads an MPII annotation file in MMPose's JSON format.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a list of people with image, center, scale, joints
            and joints_vis (16 each).
    """
    data = load_json(source, "MPII annotation")
    where = str(source) if isinstance(source, (str, Path)) else "<list>"
    if not isinstance(data, list) or not all(isinstance(a, dict) for a in data):
        raise ValueError(f"{where} is not an MPII annotation file: expected a JSON list of "
                         "people (a COCO-format file is an object; use load_coco_keypoints).")
    for i, a in enumerate(data):
        missing = [k for k in ("image", "center", "scale", "joints", "joints_vis") if k not in a]
        if missing:
            raise ValueError(f"person {i} in {where} has no {', '.join(missing)}.")
        if len(a["joints"]) != 16 or len(a["joints_vis"]) != 16:
            raise ValueError(f"person {i} in {where} has {len(a['joints'])} joints; MPII has 16.")
    n = len(data)
    return MpiiAnnotations(
        image_files=tuple(str(a["image"]) for a in data),
        centers=read_only(np.array([a["center"] for a in data], np.float64).reshape(n, 2) - 1.0),
        scales=read_only(np.array([a["scale"] for a in data], np.float64).reshape(n)),
        joints=read_only(np.array([a["joints"] for a in data], np.float64).reshape(n, 16, 2) - 1.0),
        visible=read_only(np.array([a["joints_vis"] for a in data]).reshape(n, 16) > 0),
        source=where,
    )


@dataclass(frozen=True, eq=False)
class MpiiPCKh:
    """MPII-style PCKh.

    Attributes:
        pckh: :class:`PCKResult` at the threshold (0.5).
        pckh_01: :class:`PCKResult` at 0.1.
        normaliser: how the head sizes were obtained.
    """

    pckh: PCKResult
    pckh_01: PCKResult
    normaliser: str

    @staticmethod
    def _mean(result: PCKResult) -> float:
        keep = np.ones(16, bool)
        keep[list(_EXCLUDED)] = False
        total = int(result.counts[keep].sum())
        return float(result.correct[keep].sum() / total) if total else float("nan")

    @property
    def mean(self) -> float:
        """PCKh over the 14 joints other than pelvis and thorax, weighted by
        how many are labelled (MPII's "Mean"), as a fraction."""
        return self._mean(self.pckh)

    @property
    def mean_01(self) -> float:
        """The same at threshold 0.1."""
        return self._mean(self.pckh_01)

    @property
    def body_parts(self) -> dict[str, float]:
        """PCKh per body part, left and right averaged."""
        p = self.pckh.per_keypoint
        return {name: float(np.mean(p[list(idx)])) for name, idx in MPII_BODY_PARTS.items()}

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if not np.isfinite(x) else round(float(x), 6)

        return {f"PCKh@{self.pckh.alpha:g}": num(self.mean),
                f"PCKh@{self.pckh_01.alpha:g}": num(self.mean_01),
                "body_parts": {k: num(v) for k, v in self.body_parts.items()},
                "normaliser": self.normaliser,
                "per_keypoint": self.pckh.to_dict().get("per_keypoint", {})}


def evaluate_pckh(pred: ArrayLike, annotations: MpiiAnnotations, *, threshold: float = 0.5,
                  head_sizes: ArrayLike | None = None) -> MpiiPCKh:
    """MPII PCKh of ``(N, 16, 2)`` MPII16 predictions, one per annotated person.

    Args:
        pred: ``(N, 16, 2)`` x, y in 0-based image pixels (as
            :class:`~edgepose.results.PoseResult`), in annotation order.
        annotations: from :func:`load_mpii`.
        threshold: PCKh threshold (0.5).
        head_sizes: ``(N,)`` normalisers (e.g. 0.6 x the official head box
            diagonals); default :meth:`MpiiAnnotations.head_sizes`.

    Returns:
        :class:`MpiiPCKh`.
    """
    names = MPII16.names
    if head_sizes is None:
        sizes = annotations.head_sizes()
        how = "head segment |head_top - upper_neck| (else 200 * scale / 6)"
    else:
        sizes = np.asarray(head_sizes, dtype=np.float64)
        how = "given head sizes"
    p = np.asarray(pred, dtype=np.float64)
    if p.shape != annotations.joints.shape:
        raise ValueError(f"pred must have shape {annotations.joints.shape} (one MPII16 pose per "
                         f"annotated person), got {p.shape}.")
    first = pck(p, annotations.joints, annotations.visible, sizes, threshold,
                normaliser_name="head", names=names)
    second = pck(p, annotations.joints, annotations.visible, sizes, 0.1,
                 normaliser_name="head", names=names)
    return MpiiPCKh(first, second, how)
