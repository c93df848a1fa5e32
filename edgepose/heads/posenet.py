"""PoseNet head parameters (the decoder is :func:`edgepose.posenet.decode_posenet`)."""
from __future__ import annotations

import dataclasses

from edgepose import _validate as v
from edgepose.heads._params import FIELD, HeadParams

__all__ = ["PoseNetParams", "MAX_POSES", "MAX_LOCAL_MAX_RADIUS", "MAX_OUTPUT_STRIDE"]

#: The most people a PoseNet card may ask to decode.
MAX_POSES = 1000
#: The largest local-maximum window radius (cells).
MAX_LOCAL_MAX_RADIUS = 16
#: The largest output stride (input pixels per cell).
MAX_OUTPUT_STRIDE = 256
#: The largest NMS radius (input pixels): the largest input side.
MAX_NMS_RADIUS = 4096.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class PoseNetParams(HeadParams):
    """``head_params`` of head ``"posenet"`` (see :func:`edgepose.posenet.decode_posenet`).

    Attributes:
        output_stride: input pixels per grid cell, 1 to 256.
        max_poses: 0 to 1000.
        score_threshold: in [0, 1].
        nms_radius: input pixels, in (0, 4096].
        local_max_radius: cells, 0 to 16.
        variant: ``"tfjs"`` or ``"coral"``.
        align: letterbox placement, ``"center"`` or ``"topleft"``.
        dequantize: see :class:`~edgepose.heads.HeadParams`.
    """

    output_stride: int = 16
    max_poses: int = 10
    score_threshold: float = 0.5
    nms_radius: float = 20.0
    local_max_radius: int = 1
    variant: str = "tfjs"
    align: str = "center"

    OUTPUT_ROLES = (("heatmaps", "short_offsets", "mid_offsets"), ())

    @classmethod
    def _checkers(cls):
        return {
            **super()._checkers(),
            "output_stride": lambda n, x: v.integer(f"{FIELD}.{n}", x, low=1,
                                                    high=MAX_OUTPUT_STRIDE),
            "max_poses": lambda n, x: v.integer(f"{FIELD}.{n}", x, low=0, high=MAX_POSES),
            "score_threshold": lambda n, x: v.probability(f"{FIELD}.{n}", x),
            "nms_radius": lambda n, x: v.real(f"{FIELD}.{n}", x, low=0.0, low_open=True,
                                              high=MAX_NMS_RADIUS),
            "local_max_radius": lambda n, x: v.integer(f"{FIELD}.{n}", x, low=0,
                                                       high=MAX_LOCAL_MAX_RADIUS),
            "variant": lambda n, x: v.choice(f"{FIELD}.{n}", x, ("tfjs", "coral")),
            "align": lambda n, x: v.choice(f"{FIELD}.{n}", x, ("center", "topleft")),
        }

    def check_context(self, num_keypoints, roles):
        super().check_context(num_keypoints, roles)
        if num_keypoints is not None and num_keypoints != 17:
            raise ValueError(
                f"The posenet head gives the 17 COCO keypoints, but the card's keypoint set has "
                f"{num_keypoints}: use keypoints 'coco17'.")

    def decoder_kwargs(self) -> dict:
        """The keyword arguments of :func:`edgepose.posenet.decode_posenet`."""
        return {"output_stride": self.output_stride, "max_poses": self.max_poses,
                "score_threshold": self.score_threshold, "nms_radius": self.nms_radius,
                "local_max_radius": self.local_max_radius, "variant": self.variant}
