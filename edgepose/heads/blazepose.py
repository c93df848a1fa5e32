"""MediaPipe BlazePose landmark head: regression refined by its heatmaps."""
from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
from numpy.typing import NDArray

from edgepose import _validate as v
from edgepose.heads._params import (FIELD, MAX_CHANNEL, KeypointHeadParams, check_kernel_in_map,
                                    mark_not_found, odd_kernel, sigmoid, take_channels)

__all__ = ["BlazePoseParams", "decode_blazepose"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class BlazePoseParams(KeypointHeadParams):
    """``head_params`` of head ``"blazepose"``.

    Attributes:
        num_landmarks: rows of the landmark tensor (39), 1 to 4096.
        refine_kernel: the refinement window, odd, 1 to 101, or 0 to
            disable (and at most ``2 * min(h, w) - 1`` of the heatmap).
        refine_min_confidence: in [0, 1].
        channels: the landmarks to return (e.g. the 33 body landmarks), each
            below ``num_landmarks``; dequantize: see
            :class:`~edgepose.heads.KeypointHeadParams`.
    """

    num_landmarks: int = 39
    refine_kernel: int = 7
    refine_min_confidence: float = 0.5

    OUTPUT_ROLES = (("landmarks",), ("heatmaps", "presence"))

    @classmethod
    def _checkers(cls):
        return {**super()._checkers(),
                "num_landmarks": lambda n, x: v.integer(f"{FIELD}.{n}", x, low=1,
                                                        high=MAX_CHANNEL + 1),
                "refine_kernel": lambda n, x: odd_kernel(n, x, allow_zero=True),
                "refine_min_confidence": lambda n, x: v.probability(f"{FIELD}.{n}", x)}

    def _check_together(self) -> None:
        if self.channels is not None and max(self.channels) >= self.num_landmarks:
            raise ValueError(
                f"{FIELD}.channels names landmark {max(self.channels)}, but num_landmarks is "
                f"{self.num_landmarks} (landmarks 0 to {self.num_landmarks - 1}).")


def decode_blazepose(outputs: Mapping[str, NDArray[np.float32]], params: BlazePoseParams,
                     input_hw: tuple[int, int]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """BlazePose landmarks: regression ``landmarks (N, 5L)`` = L x (x, y, z,
    visibility logit, presence logit) in input pixels, refined with the
    heatmap head ``heatmaps (N, h, w, L)`` as MediaPipe does.

    The refinement (MediaPipe's RefineLandmarksFromHeatmap): in a
    ``refine_kernel`` window of the sigmoid heatmap around the regressed
    point, the confidence-weighted mean position replaces it when the
    window's highest confidence is at least ``refine_min_confidence``.
    Scores are sigmoid(visibility); a landmark scoring 0 (or NaN) was not
    found: NaN coordinates.

    Raises:
        ValueError: a landmark tensor that is not a multiple of
            ``5 * num_landmarks``, or a refine_kernel that does not fit the heatmap.
    """
    rows = params.num_landmarks
    raw = np.asarray(outputs["landmarks"], dtype=np.float32)
    if raw.size % (rows * 5):
        raise ValueError(
            f"The landmarks output has shape {raw.shape}, not a multiple of 5 x num_landmarks "
            f"= {5 * rows} values: check {FIELD}.num_landmarks in the card.")
    raw = raw.reshape(-1, rows, 5)
    kp = raw[..., :2].copy()
    scores = sigmoid(raw[..., 3])
    kernel = params.refine_kernel
    if kernel > 0 and "heatmaps" in outputs:
        heatmaps = outputs["heatmaps"]
        check_kernel_in_map("refine_kernel", kernel, heatmaps.shape[1:3])
        kp = _refine_from_heatmap(kp, heatmaps, input_hw, kernel, params.refine_min_confidence)
    return take_channels(mark_not_found(kp, scores), scores, params.channels)


def _refine_from_heatmap(kp: np.ndarray, heatmaps: np.ndarray, input_hw: tuple[int, int],
                         kernel: int, min_confidence: float) -> np.ndarray:
    n, hm_h, hm_w, channels = heatmaps.shape
    in_h, in_w = input_hw
    sx, sy = hm_w / in_w, hm_h / in_h
    half = (kernel - 1) // 2
    out = kp.copy()
    for i in range(n):
        for j in range(min(channels, kp.shape[1])):
            cx = int(kp[i, j, 0] * sx)
            cy = int(kp[i, j, 1] * sy)
            x0, x1 = max(0, cx - half), min(hm_w, cx + half + 1)
            y0, y1 = max(0, cy - half), min(hm_h, cy + half + 1)
            if x0 >= x1 or y0 >= y1:
                continue
            conf = sigmoid(heatmaps[i, y0:y1, x0:x1, j])
            total = float(conf.sum())
            if total <= 0 or float(conf.max()) < min_confidence:
                continue
            ys, xs = np.mgrid[y0:y1, x0:x1]
            out[i, j, 0] = float((conf * xs).sum()) / total / sx
            out[i, j, 1] = float((conf * ys).sum()) / total / sy
    return out
