"""RTMPose SimCC head: 1-D classification of x and y per keypoint."""
from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
from numpy.typing import NDArray

from edgepose import _validate as v
from edgepose import ops
from edgepose.heads._params import FIELD, KeypointHeadParams, mark_not_found, take_channels

__all__ = ["SimCCParams", "decode_simcc", "MAX_SPLIT_RATIO"]

#: The largest SimCC split ratio (bins per input pixel) a card may give.
MAX_SPLIT_RATIO = 64.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimCCParams(KeypointHeadParams):
    """``head_params`` of head ``"simcc"``.

    Attributes:
        split_ratio: bins per input pixel, finite, in (0, 64] (RTMPose: 2.0).
        channels, dequantize: see :class:`~edgepose.heads.KeypointHeadParams`.
    """

    split_ratio: float = 2.0

    OUTPUT_ROLES = (("simcc_x", "simcc_y"), ())

    @classmethod
    def _checkers(cls):
        return {**super()._checkers(), "split_ratio": lambda name, value: v.real(
            f"{FIELD}.{name}", value, low=0.0, low_open=True, high=MAX_SPLIT_RATIO)}


def decode_simcc(outputs: Mapping[str, NDArray[np.float32]], params: SimCCParams,
                 input_hw: tuple[int, int]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """RTMPose SimCC: ``simcc_x (N, K, Wx)``, ``simcc_y (N, K, Wy)`` to
    keypoints ``(N, K, 2)`` in model-input pixels and scores ``(N, K)``.

    A keypoint whose score is not > 0 was not found: NaN coordinates (the
    C core's ``-1 / split_ratio`` is never passed on), its score as decoded."""
    kp, sc = ops.decode_simcc(outputs["simcc_x"], outputs["simcc_y"], params.split_ratio)
    return take_channels(mark_not_found(kp, sc), sc, params.channels)
