"""MoveNet single-pose head: (y, x, score) per keypoint, normalised to [0, 1]."""
from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
from numpy.typing import NDArray

from edgepose.heads._params import KeypointHeadParams, mark_not_found, offset, take_channels

__all__ = ["MoveNetParams", "decode_movenet"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class MoveNetParams(KeypointHeadParams):
    """``head_params`` of head ``"movenet"``.

    Attributes:
        offset: input pixels added after scaling, within +-1024.
        channels, dequantize: see :class:`~edgepose.heads.KeypointHeadParams`.
    """

    offset: float = 0.0

    OUTPUT_ROLES = (("keypoints",), ())

    @classmethod
    def _checkers(cls):
        return {**super()._checkers(), "offset": offset}


def decode_movenet(outputs: Mapping[str, NDArray[np.float32]], params: MoveNetParams,
                   input_hw: tuple[int, int]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """MoveNet single-pose: ``keypoints (N, 1, K, 3)`` = (y, x, score) in
    [0, 1] to keypoints ``(N, K, 2)`` in model-input pixels and scores ``(N, K)``;
    a keypoint scoring <= 0 (or NaN) was not found: NaN coordinates."""
    raw = np.asarray(outputs["keypoints"], dtype=np.float32)
    raw = raw.reshape(raw.shape[0], -1, 3)
    in_h, in_w = input_hw
    kp = np.stack([raw[..., 1] * in_w + params.offset, raw[..., 0] * in_h + params.offset],
                  axis=-1)
    scores = raw[..., 2].copy()
    return take_channels(mark_not_found(kp, scores), scores, params.channels)
