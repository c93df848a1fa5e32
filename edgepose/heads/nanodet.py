"""NanoDet person-detector head: typed parameters and the decoder (GFL head)."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgepose import _validate as v
from edgepose._validate import is_int
from edgepose.geometry import check_size_hw
from edgepose.heads._params import FIELD
from edgepose.heads.yolox import (
    Boxes,
    YoloxParams,
    check_class_index,
    check_strides,
    float_2d,
)

__all__ = ["NanoDetParams", "decode_nanodet", "MAX_REG_MAX"]

#: The largest NanoDet distance bin.
MAX_REG_MAX = 64


def decode_nanodet(
    cls_per_stride: Sequence[ArrayLike],
    dis_per_stride: Sequence[ArrayLike],
    input_hw: Sequence[int],
    strides: Sequence[int] = (8, 16, 32),
    *,
    reg_max: int = 7,
    class_index: int = 0,
    center_offset: float = 0.5,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Decodes NanoDet outputs (GFL head: sigmoid scores, distance distributions).

    Per stride ``s`` the grid is ``(ceil(h / s), ceil(w / s))``, row-major.
    Each of the four distances (left, top, right, bottom) is the expectation
    of a softmax over ``reg_max + 1`` bins, times ``s``, measured from the
    anchor point ``((x + center_offset) * s, (y + center_offset) * s)``:
    0.5 for NanoDet v0.x (NanoDet-m), 0 for NanoDet-Plus.

    Args:
        cls_per_stride: per stride ``(A_i, C)`` (or ``(1, A_i, C)``) class
            scores, already sigmoid-activated.
        dis_per_stride: per stride ``(A_i, 4 * (reg_max + 1))`` bin logits.
        input_hw: the model input ``(h, w)``.
        strides: the strides of the lists' entries.
        reg_max: the largest bin index (NanoDet: 7, so 8 bins).
        class_index: the person class (0 in COCO-80).
        center_offset: anchor point offset in cells.

    Returns:
        boxes ``(A, 4)`` float32 xyxy in model-input pixels and scores
        ``(A,)`` float32, strides concatenated in order.

    Raises:
        TypeError: non-floating outputs.
        ValueError: mismatched lists, shapes or anchor counts; invalid
            strides, reg_max or class.
    """
    st = check_strides(strides)
    hw = check_size_hw(input_hw, "input_hw")
    if len(cls_per_stride) != len(st) or len(dis_per_stride) != len(st):
        raise ValueError(
            f"cls_per_stride and dis_per_stride need one array per stride {st}, "
            f"got {len(cls_per_stride)} and {len(dis_per_stride)}.")
    if not is_int(reg_max) or reg_max < 1:
        raise ValueError(f"reg_max must be a positive int, got {reg_max!r}.")
    center_offset = float(center_offset)
    if not np.isfinite(center_offset):
        raise ValueError(f"center_offset must be finite, got {center_offset}.")
    bins = int(reg_max) + 1
    project = np.arange(bins, dtype=np.float32)
    all_boxes, all_scores = [], []
    cls = None
    for s, cls_raw, dis_raw in zip(st, cls_per_stride, dis_per_stride):
        c = float_2d(f"cls (stride {s})", cls_raw, "(A, C)")
        d = float_2d(f"dis (stride {s})", dis_raw, "(A, 4 * (reg_max + 1))")
        gh, gw = -(-hw[0] // s), -(-hw[1] // s)
        if c.shape[0] != gh * gw or d.shape[0] != gh * gw:
            raise ValueError(
                f"stride {s} of input {hw[0]}x{hw[1]} has {gh * gw} grid cells, got cls "
                f"{c.shape} and dis {d.shape}; check input_hw and strides.")
        if d.shape[1] != 4 * bins:
            raise ValueError(
                f"dis (stride {s}) must have 4 * (reg_max + 1) = {4 * bins} columns for "
                f"reg_max={reg_max}, got {d.shape}.")
        if cls is None:
            cls = check_class_index(class_index, c.shape[1])
        logits = d.reshape(-1, 4, bins)
        e = np.exp(logits - logits.max(axis=2, keepdims=True))
        dist = (e @ project) / e.sum(axis=2) * s  # (A_i, 4): left, top, right, bottom
        ys, xs = np.mgrid[0:gh, 0:gw]
        px = (xs.ravel().astype(np.float32) + center_offset) * s
        py = (ys.ravel().astype(np.float32) + center_offset) * s
        all_boxes.append(np.stack(
            [px - dist[:, 0], py - dist[:, 1], px + dist[:, 2], py + dist[:, 3]], axis=1))
        all_scores.append(c[:, cls])
    boxes = np.concatenate(all_boxes).astype(np.float32, copy=False)
    scores = np.concatenate(all_scores).astype(np.float32, copy=False)
    return boxes, scores


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

    def detector_roles(self) -> list[str]:
        return [f"{p}_{s}" for s in self.strides for p in ("cls", "dis")]

    def _infer_outputs(self, infos: Mapping[str, tuple], input_hw: tuple[int, int]) -> dict[str, str]:
        # NanoDet's own export names first, then the tensors' shapes.
        named = {f"{p}_{s}": f"{p}_pred_stride_{s}" for s in self.strides for p in ("cls", "dis")}
        if all(n in infos for n in named.values()):
            return named
        h, w = input_hw
        dis_cols = 4 * (self.reg_max + 1)
        resolved = {}
        for s in self.strides:
            cells = (-(-h // s)) * (-(-w // s))
            hits = [n for n, shp in infos.items() if len(shp) >= 2 and shp[-2] == cells]
            dis = [n for n in hits if infos[n][-1] == dis_cols]
            cls = [n for n in hits if infos[n][-1] != dis_cols]
            if len(dis) != 1 or len(cls) != 1:
                raise ValueError(
                    f"cannot tell the cls and dis outputs of stride {s} ({cells} cells) apart "
                    f"among {dict(infos)}; pass outputs={{'cls_{s}': name, 'dis_{s}': name, ...}}.")
            resolved[f"cls_{s}"], resolved[f"dis_{s}"] = cls[0], dis[0]
        return resolved

    def _check_output_shapes(self, resolved: Mapping[str, str], infos: Mapping[str, tuple],
                             input_hw: tuple[int, int]) -> None:
        h, w = input_hw
        for s in self.strides:
            cells = (-(-h // s)) * (-(-w // s))
            for role in (f"cls_{s}", f"dis_{s}"):
                shape = infos[resolved[role]]
                if len(shape) not in (2, 3) or shape[-2] not in (cells, None):
                    raise ValueError(
                        f"output {resolved[role]!r} ({role}) has shape {shape}; stride {s} of a "
                        f"{h}x{w} input has {cells} cells.")
            cls_shape = infos[resolved[f"cls_{s}"]]
            if cls_shape[-1] is not None and self.class_index >= cls_shape[-1]:
                raise ValueError(f"class_index {self.class_index} is out of range for "
                                 f"{cls_shape[-1]} classes.")

    def decode_boxes(self, outputs: Mapping[str, NDArray], input_hw: tuple[int, int]) -> Boxes:
        """Boxes and scores from the per-stride ``cls_<s>`` / ``dis_<s>``
        outputs (:func:`decode_nanodet`)."""
        return decode_nanodet([outputs[f"cls_{s}"] for s in self.strides],
                              [outputs[f"dis_{s}"] for s in self.strides], input_hw,
                              self.strides, reg_max=self.reg_max, class_index=self.class_index,
                              center_offset=self.center_offset)
