"""Pose-model heads: typed ``head_params`` and the decoders of raw outputs.

One module per head family, each with a frozen parameters dataclass whose
``from_dict`` validates the card's ``head_params`` (:data:`HEAD_PARAMS`):
:mod:`~edgepose.heads.simcc`, :mod:`~edgepose.heads.heatmap`,
:mod:`~edgepose.heads.movenet`, :mod:`~edgepose.heads.blazepose`,
:mod:`~edgepose.heads.posenet`, :mod:`~edgepose.heads.paf`,
:mod:`~edgepose.heads.yolox`, :mod:`~edgepose.heads.nanodet`.

The top-down and single-person decoders (:data:`HEAD_DECODERS`) take the
model's outputs by role (the card's ``outputs`` map roles to tensor names),
the head's parameters and the model input size ``(h, w)``, and return
keypoints ``(N, K, 2)`` float32 (x, y) in model-input pixels and scores
``(N, K)`` float32, where N is the batch. A keypoint that was not found
(score <= 0 or NaN, or a non-finite location) has NaN coordinates and the
score the decoder gave it: the C core's marks of :mod:`edgepose.ops`
((-1, -1); SimCC ``-1 / split_ratio``) are translated, never passed on
(:func:`edgepose.results.found_mask` reads the mark). Parameters come from the model card, never from the decoder:
nothing about a particular model is hard-coded here. Bottom-up heads
(PoseNet, PAF) return several people per image and are decoded with their
grouping code (:mod:`edgepose.posenet`, :mod:`edgepose.paf`), detectors in
:mod:`edgepose.detectors`.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
from numpy.typing import NDArray

from edgepose.heads._params import HeadParams, KeypointHeadParams
from edgepose.heads.blazepose import BlazePoseParams, decode_blazepose
from edgepose.heads.heatmap import HeatmapParams, decode_heatmap
from edgepose.heads.movenet import MoveNetParams, decode_movenet
from edgepose.heads.movenet_multipose import MoveNetMultiPoseParams
from edgepose.heads.nanodet import NanoDetParams
from edgepose.heads.paf import PafParams
from edgepose.heads.posenet import PoseNetParams
from edgepose.heads.simcc import SimCCParams, decode_simcc
from edgepose.heads.yolo_pose import YoloPoseParams
from edgepose.heads.yolox import YoloxParams

__all__ = ["HEAD_DECODERS", "HEAD_PARAMS", "decode_head", "check_finite_outputs",
           "params_from_dict", "HeadParams", "KeypointHeadParams", "SimCCParams",
           "HeatmapParams", "MoveNetParams", "BlazePoseParams", "PoseNetParams", "PafParams",
           "YoloxParams", "NanoDetParams", "decode_simcc", "decode_heatmap", "decode_movenet",
           "decode_blazepose"]

Outputs = Mapping[str, NDArray[np.float32]]
Decoded = tuple[NDArray[np.float32], NDArray[np.float32]]

#: head name -> its parameters class.
HEAD_PARAMS: dict[str, type[HeadParams]] = {
    "simcc": SimCCParams,
    "heatmap": HeatmapParams,
    "movenet": MoveNetParams,
    "blazepose": BlazePoseParams,
    "posenet": PoseNetParams,
    "paf": PafParams,
    "yolox": YoloxParams,
    "nanodet": NanoDetParams,
    "yolo_pose": YoloPoseParams,
    "movenet_multipose": MoveNetMultiPoseParams,
}

#: head name -> decoder, for the top-down and single-person heads.
HEAD_DECODERS: dict[str, Callable[[Outputs, Any, tuple[int, int]], Decoded]] = {
    "simcc": decode_simcc,
    "heatmap": decode_heatmap,
    "movenet": decode_movenet,
    "blazepose": decode_blazepose,
}


def params_from_dict(head: str, data: Mapping[str, Any], *, num_keypoints: int | None = None,
                     roles: tuple[str, ...] | None = None) -> HeadParams:
    """The typed, validated ``head_params`` of ``head`` (see :meth:`HeadParams.from_dict`).

    Raises:
        ValueError: an unknown head, or invalid parameters (the message names
            ``head_params.<key>``).
    """
    try:
        cls = HEAD_PARAMS[head]
    except KeyError:
        raise ValueError(f"head must be one of {', '.join(map(repr, HEAD_PARAMS))}, got "
                         f"{head!r}.") from None
    return cls.from_dict(data, num_keypoints=num_keypoints, roles=roles)


def check_finite_outputs(outputs: Outputs, model: str) -> None:
    """Raises RuntimeError when a model output holds NaN or inf."""
    for role, value in outputs.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise RuntimeError(
                f"The model {model} produced NaN or inf in its '{role}' output. The model file "
                "may be corrupt, or the input preprocessing (mean/std, colour order, dtype) "
                "does not match what the model expects: check its card.")


def decode_head(head: str, outputs: Outputs, params: HeadParams | Mapping[str, Any],
                input_hw: tuple[int, int]) -> Decoded:
    """Decodes ``outputs`` with the decoder of ``head``.

    Args:
        head: a key of :data:`HEAD_DECODERS`.
        outputs: the model's outputs by role.
        params: the head's parameters (a card's ``params``), or a
            ``head_params`` mapping, validated here.
        input_hw: the model input size ``(h, w)``.

    Raises:
        ValueError: no decoder for ``head``, invalid parameters, or (for
            parameters of a card) a keypoint count other than the card's.
    """
    try:
        decoder = HEAD_DECODERS[head]
    except KeyError:
        raise ValueError(
            f"No top-down decoder for head '{head}'; available: {sorted(HEAD_DECODERS)}.") from None
    if not isinstance(params, HEAD_PARAMS[head]):
        params = params_from_dict(head, params)
    keypoints, scores = decoder(outputs, params, input_hw)
    expected = params.keypoint_count
    if expected is not None and keypoints.shape[1] != expected:
        raise ValueError(
            f"The {head} head decoded {keypoints.shape[1]} keypoints from outputs of shapes "
            f"{ {role: tuple(np.shape(v)) for role, v in outputs.items()} }, but the card's "
            f"keypoint set has {expected}: check head_params (layout, channels) against the "
            "model's outputs.")
    return keypoints, scores
