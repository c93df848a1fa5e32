"""NanoDet person-detector head parameters (the decoder is :func:`edgepose.detectors.decode_nanodet`)."""
from __future__ import annotations

import dataclasses

from edgepose import _validate as v
from edgepose.heads._params import FIELD
from edgepose.heads.yolox import YoloxParams

__all__ = ["NanoDetParams", "MAX_REG_MAX"]

#: The largest NanoDet distance bin.
MAX_REG_MAX = 64


@dataclasses.dataclass(frozen=True, kw_only=True)
class NanoDetParams(YoloxParams):
    """``head_params`` of head ``"nanodet"``: those of :class:`YoloxParams` and

    Attributes:
        reg_max: the largest distance bin, 1 to 64 (7).
        center_offset: anchor point offset in cells, in [0, 1] (0.5).
    """

    reg_max: int = 7
    center_offset: float = 0.5

    @classmethod
    def _checkers(cls):
        return {**super()._checkers(),
                "reg_max": lambda n, x: v.integer(f"{FIELD}.{n}", x, low=1, high=MAX_REG_MAX),
                "center_offset": lambda n, x: v.real(f"{FIELD}.{n}", x, low=0.0, high=1.0)}

    def output_roles(self):
        return ((), tuple(f"{kind}_{s}" for s in self.strides for kind in ("cls", "dis")))

    def detector_kwargs(self) -> dict:
        return {**super().detector_kwargs(), "reg_max": self.reg_max,
                "center_offset": self.center_offset}
