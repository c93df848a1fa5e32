"""YOLOX person-detector head: typed parameters and the decoder.

:func:`decode_yolox` turns the ``(A, 5 + C)`` grid output into boxes in
model-input pixels; :class:`YoloxParams` carries the card's
``head_params`` and, as every detector head's parameters do, names and
checks the head's outputs (:meth:`YoloxParams.resolve_outputs`) and decodes
them by role (:meth:`YoloxParams.decode_boxes`), so that
:class:`edgepose.detectors.PersonDetector` dispatches once, on the head.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgepose import _validate as v
from edgepose._validate import is_int
from edgepose.geometry import check_size_hw
from edgepose.heads._params import FIELD, HeadParams

__all__ = ["YoloxParams", "decode_yolox", "MAX_DETECTOR_STRIDE", "MAX_CLASS_INDEX"]

#: The largest feature stride, and the most strides.
MAX_DETECTOR_STRIDE = 1024
MAX_STRIDES = 8
#: The largest class index.
MAX_CLASS_INDEX = 65535

Boxes = tuple[NDArray[np.float32], NDArray[np.float32]]


def check_strides(strides: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(s) for s in strides)
    if not out or any(s <= 0 for s in out) or any(float(a) != b for a, b in zip(strides, out)):
        raise ValueError(f"strides must be positive ints, got {strides!r}.")
    return out


def float_2d(name: str, value: ArrayLike, shape_text: str) -> NDArray[np.float32]:
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        raise TypeError(
            f"{name} must be a floating-point array, got {arr.dtype}. Quantized model "
            "outputs must be dequantized first: (q - zero_point) * scale.")
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape {shape_text} (or with a batch of 1), got {arr.shape}.")
    return arr.astype(np.float32, copy=False)


def check_class_index(class_index: int, num_classes: int) -> int:
    if not is_int(class_index):
        raise TypeError(f"class_index must be an int, got {type(class_index).__name__}.")
    if not 0 <= class_index < num_classes:
        raise ValueError(
            f"class_index must be in [0, {num_classes}) for {num_classes} classes, got {class_index}.")
    return int(class_index)


def _yolox_grid(input_hw: tuple[int, int], strides: tuple[int, ...]) -> tuple[NDArray, NDArray]:
    """Cell indices (A, 2) as (x, y) and their strides (A,): stride by stride, row-major."""
    cells, per = [], []
    h, w = input_hw
    for s in strides:
        gh, gw = h // s, w // s
        ys, xs = np.mgrid[0:gh, 0:gw]
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        per.append(np.full(gh * gw, s))
    return (np.concatenate(cells).astype(np.float32),
            np.concatenate(per).astype(np.float32))


def decode_yolox(
    raw: ArrayLike,
    input_hw: Sequence[int],
    strides: Sequence[int] = (8, 16, 32),
    *,
    class_index: int = 0,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Decodes YOLOX-style outputs (anchor-free, one row per grid cell).

    Rows are the cells of each stride's ``(h // s, w // s)`` grid, row-major,
    strides in order. Each row is ``(dx, dy, log_w, log_h, objectness,
    class scores...)`` with objectness and class scores already
    sigmoid-activated (as YOLOX exports and the light person detector give
    them). ``cx = (dx + grid_x) * s``, ``w = exp(log_w) * s``.

    Args:
        raw: ``(A, 5 + C)`` or ``(1, A, 5 + C)``.
        input_hw: the model input ``(h, w)``.
        strides: the feature strides, in output order.
        class_index: the person class (0 in COCO-80 and one-class models).

    Returns:
        boxes ``(A, 4)`` float32 xyxy in model-input pixels (inf where the
        size overflows), and scores ``(A,)`` float32 = objectness * class score.

    Raises:
        TypeError: a non-floating ``raw``.
        ValueError: a wrong shape or anchor count, invalid strides or class.
    """
    r = float_2d("raw", raw, "(A, 5 + C)")
    if r.shape[1] < 6:
        raise ValueError(
            f"raw must have shape (A, 5 + C) with C >= 1: box (4), objectness, class scores; "
            f"got {r.shape}.")
    cls = check_class_index(class_index, r.shape[1] - 5)
    hw = check_size_hw(input_hw, "input_hw")
    cells, per = _yolox_grid(hw, check_strides(strides))
    if r.shape[0] != cells.shape[0]:
        raise ValueError(
            f"raw has {r.shape[0]} rows but input {hw[0]}x{hw[1]} with strides {tuple(strides)} "
            f"has {cells.shape[0]} grid cells; check input_hw and strides.")
    stride = per[:, None]
    centre = (r[:, 0:2] + cells) * stride
    with np.errstate(over="ignore"):
        half = np.exp(r[:, 2:4]) * stride * 0.5
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    scores = r[:, 4] * r[:, 5 + cls]
    return boxes.astype(np.float32, copy=False), scores.astype(np.float32, copy=False)


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

    def detector_roles(self) -> list[str]:
        """The output roles a detector needs, in order."""
        return ["raw"]

    def resolve_outputs(self, outputs: Mapping[str, str] | None,
                        infos: Mapping[str, tuple], input_hw: tuple[int, int]) -> dict[str, str]:
        """Output names by role: ``outputs`` checked, or inferred from the
        model's outputs ``infos`` (name -> shape); then their shapes checked.

        Raises:
            ValueError: roles missing or unknown, names the model lacks, roles
                that cannot be inferred, or shapes that do not fit the head.
        """
        if outputs is not None:
            roles = self.detector_roles()
            missing = [r for r in roles if r not in outputs]
            unknown = [r for r in outputs if r not in roles]
            if missing or unknown:
                raise ValueError(f"outputs must map exactly the roles {roles}, "
                                 f"missing {missing}, unknown {unknown}.")
            absent = [n for n in outputs.values() if n not in infos]
            if absent:
                raise ValueError(f"outputs {absent} are not outputs of the model; its outputs "
                                 f"are {list(infos)}.")
            resolved = dict(outputs)
        else:
            resolved = self._infer_outputs(infos, input_hw)
        self._check_output_shapes(resolved, infos, input_hw)
        return resolved

    def _infer_outputs(self, infos: Mapping[str, tuple], input_hw: tuple[int, int]) -> dict[str, str]:
        if len(infos) != 1:
            raise ValueError(f"the model has {len(infos)} outputs {list(infos)}; pass "
                             "outputs={'raw': name}.")
        return {"raw": next(iter(infos))}

    def _check_output_shapes(self, resolved: Mapping[str, str], infos: Mapping[str, tuple],
                             input_hw: tuple[int, int]) -> None:
        h, w = input_hw
        shape = infos[resolved["raw"]]
        cells = sum((h // s) * (w // s) for s in self.strides)
        if len(shape) not in (2, 3) or shape[-2] not in (cells, None) or (
                shape[-1] is not None and shape[-1] < 6):
            raise ValueError(
                f"output {resolved['raw']!r} has shape {shape}; a yolox head on a {h}x{w} "
                f"input with strides {self.strides} gives (1, {cells}, 5 + C).")
        if shape[-1] is not None and self.class_index >= shape[-1] - 5:
            raise ValueError(f"class_index {self.class_index} is out of range for "
                             f"{shape[-1] - 5} classes.")

    def decode_boxes(self, outputs: Mapping[str, NDArray], input_hw: tuple[int, int]) -> Boxes:
        """Boxes ``(A, 4)`` xyxy in model-input pixels and scores ``(A,)`` from
        the outputs by role (:func:`decode_yolox`)."""
        return decode_yolox(outputs["raw"], input_hw, self.strides, class_index=self.class_index)
