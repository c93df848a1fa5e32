"""Keypoint heatmap heads (SimpleBaseline, HRNet, CPM, hourglass), with DARK or UDP refinement."""
from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
from numpy.typing import NDArray

from edgepose import _validate as v
from edgepose import ops
from edgepose.heads._params import (FIELD, KeypointHeadParams, check_kernel_in_map,
                                    mark_not_found, odd_kernel, offset, select_channels, sigmoid)

__all__ = ["HeatmapParams", "decode_heatmap"]

LAYOUTS = ("NCHW", "NHWC")
REFINES = ("none", "dark", "dark_udp")
ACTIVATIONS = ("none", "sigmoid")


@dataclasses.dataclass(frozen=True, kw_only=True)
class HeatmapParams(KeypointHeadParams):
    """``head_params`` of head ``"heatmap"``.

    Attributes:
        layout: ``"NCHW"`` (``(N, K, h, w)``) or ``"NHWC"`` of the heatmaps.
        refine: ``"none"``, ``"dark"`` or ``"dark_udp"``
            (:func:`edgepose.ops.decode_heatmap`).
        blur_kernel: odd, 1 to 101 (and at most ``2 * min(h, w) - 1`` of
            the heatmap, checked when decoding).
        activation: ``"none"`` or ``"sigmoid"``, applied before decoding.
        offset: input pixels added after scaling by input / heatmap size,
            within +-1024.
        channels, dequantize: see :class:`~edgepose.heads.KeypointHeadParams`.
    """

    layout: str = "NCHW"
    refine: str = "dark"
    blur_kernel: int = 11
    activation: str = "none"
    offset: float = 0.0

    OUTPUT_ROLES = (("heatmaps",), ())

    @classmethod
    def _checkers(cls):
        return {**super()._checkers(),
                "layout": lambda n, x: v.choice(f"{FIELD}.{n}", x, LAYOUTS),
                "refine": lambda n, x: v.choice(f"{FIELD}.{n}", x, REFINES),
                "blur_kernel": odd_kernel,
                "activation": lambda n, x: v.choice(f"{FIELD}.{n}", x, ACTIVATIONS),
                "offset": offset}


def decode_heatmap(outputs: Mapping[str, NDArray[np.float32]], params: HeatmapParams,
                   input_hw: tuple[int, int]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Keypoint heatmaps ``(N, K, h, w)`` or ``(N, h, w, K)`` (``layout``) to
    keypoints ``(N, K, 2)`` in model-input pixels and scores ``(N, K)``.
    A keypoint whose peak is not > 0 was not found: NaN coordinates, its
    score as decoded.

    Raises:
        ValueError: ``channels`` beyond the heatmap channels, or a
            ``blur_kernel`` that does not fit the heatmap.
    """
    layout = params.layout
    hm = outputs["heatmaps"]
    axis = 1 if layout == "NCHW" else 3
    if params.channels is not None and hm.ndim == 4:
        select_channels(params.channels, hm.shape[axis])
        hm = np.take(hm, np.asarray(params.channels, dtype=np.intp), axis=axis)
    if params.activation == "sigmoid":
        hm = sigmoid(hm)
    hm_h, hm_w = (hm.shape[2], hm.shape[3]) if layout == "NCHW" else (hm.shape[1], hm.shape[2])
    if params.refine != "none" and hm_h and hm_w:
        check_kernel_in_map("blur_kernel", params.blur_kernel, (hm_h, hm_w))
    kp, sc = ops.decode_heatmap(hm, params.refine, params.blur_kernel, layout=layout)
    in_h, in_w = input_hw
    scaled = (mark_not_found(kp, sc) * np.array([in_w / hm_w, in_h / hm_h], np.float32)
              + np.float32(params.offset))
    return scaled.astype(np.float32), sc
