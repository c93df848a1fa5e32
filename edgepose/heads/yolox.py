"""YOLOX person-detector head parameters (the decoder is :func:`edgepose.detectors.decode_yolox`)."""
from __future__ import annotations

import dataclasses

from edgepose import _validate as v
from edgepose.heads._params import FIELD, HeadParams

__all__ = ["YoloxParams", "MAX_DETECTOR_STRIDE", "MAX_CLASS_INDEX"]

#: The largest feature stride, and the most strides.
MAX_DETECTOR_STRIDE = 1024
MAX_STRIDES = 8
#: The largest class index.
MAX_CLASS_INDEX = 65535


def _strides(n, x):
    return v.int_tuple(f"{FIELD}.{n}", x, low=1, high=MAX_DETECTOR_STRIDE, min_len=1,
                       max_len=MAX_STRIDES, unique=True)


@dataclasses.dataclass(frozen=True, kw_only=True)
class YoloxParams(HeadParams):
    """``head_params`` of head ``"yolox"``.

    Attributes:
        strides: 1 to 8 distinct feature strides, 1 to 1024, in output order.
        class_index: the person class, 0 to 65535.
        align: letterbox placement, ``"topleft"`` or ``"center"``.
        dequantize: see :class:`~edgepose.heads.HeadParams`.
    """

    strides: tuple[int, ...] = (8, 16, 32)
    class_index: int = 0
    align: str = "topleft"

    OUTPUT_ROLES = ((), ("raw",))

    @classmethod
    def _checkers(cls):
        return {**super()._checkers(), "strides": _strides,
                "class_index": lambda n, x: v.integer(f"{FIELD}.{n}", x, low=0,
                                                      high=MAX_CLASS_INDEX),
                "align": lambda n, x: v.choice(f"{FIELD}.{n}", x, ("topleft", "center"))}

    def detector_kwargs(self) -> dict:
        """The keyword arguments of :class:`edgepose.detectors.PersonDetector`."""
        return {"strides": self.strides, "class_index": self.class_index, "align": self.align}
