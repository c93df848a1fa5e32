"""YOLO-pose head (Ultralytics YOLOv8/11-pose layouts): typed parameters and the runner.

A YOLO-pose network gives, for every anchor (a cell of each stride's grid),
a box, class scores and the keypoints of the person it would be, all in
model-input pixels; a score threshold, box NMS and a cap on the count pick
the people. :class:`YoloPoseParams` is the card's ``head_params``;
:func:`run_yolo_pose` is the one-stage runner (see
:mod:`edgepose.heads._one_stage`): letterbox, inference, decode, people in
image pixels with their boxes and person scores.

Output formats (``head_params.format``):

- ``"decoded"``: one tensor ``(N, 4 + C + K*D, A)`` (``channels_first``)
  or ``(N, A, 4 + C + K*D)``: box ``(cx, cy, w, h)``, C class scores
  (sigmoid applied), K keypoints of D values ``(x, y[, visibility])``; what
  ``yolo export format=onnx|litert|openvino`` writes. Role ``"output"``.
- ``"dfl"``: the raw head whose decode was cut off the graph (how an INT8
  export keeps the decode in float): roles ``"box_class"`` ``(N, 4 *
  reg_max + C, A)`` and ``"keypoints"`` ``(N, K*D, A)``, decoded on the CPU
  to the ``"decoded"`` layout first.
- ``"end_to_end"``: ``(N, M, 6 + K*D)`` rows ``x1, y1, x2, y2, score,
  class, keypoints``, already suppressed by the graph (no IoU threshold).
  Role ``"output"``.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgepose import _validate as v
from edgepose.heads._one_stage import MAX_DETECTIONS
from edgepose.heads._params import FIELD, HeadParams

__all__ = ["YoloPoseParams", "run_yolo_pose", "FORMATS", "MAX_CANDIDATES", "MAX_CLASSES",
           "MAX_REG_MAX", "MAX_KEYPOINTS"]

#: The output formats of the head (see the module docstring).
FORMATS = ("decoded", "dfl", "end_to_end")
#: The most candidates kept (top-k by score) before NMS.
MAX_CANDIDATES = 1_000_000
#: The most classes a YOLO-pose output may have.
MAX_CLASSES = 65536
#: The largest number of DFL bins per box side.
MAX_REG_MAX = 256
#: The largest stride, and the most strides.
MAX_STRIDE = 1024
MAX_STRIDES = 8
#: The most keypoints per person a YOLO-pose model may give.
MAX_KEYPOINTS = 1024
#: The largest size multiple (input sides of a dynamic model are multiples of it).
MAX_SIZE_MULTIPLE = 1024


def _bool(name: str, value: Any) -> bool:
    return v.choice(f"{FIELD}.{name}", value, (True, False))


def _person_classes(name: str, value: Any) -> tuple[int, ...]:
    return v.int_tuple(f"{FIELD}.{name}", value, low=0, high=MAX_CLASSES - 1, min_len=1,
                       max_len=MAX_CLASSES, unique=True)


def _strides(name: str, value: Any) -> tuple[int, ...]:
    return v.int_tuple(f"{FIELD}.{name}", value, low=1, high=MAX_STRIDE, min_len=1,
                       max_len=MAX_STRIDES, unique=True)


@dataclasses.dataclass(frozen=True, kw_only=True)
class YoloPoseParams(HeadParams):
    """``head_params`` of head ``"yolo_pose"``.

    Attributes:
        format: ``"decoded"`` (default), ``"dfl"`` or ``"end_to_end"`` (see
            :mod:`edgepose.heads.yolo_pose`).
        channels_first: the ``"decoded"`` output is ``(N, 4 + C + K*D, A)``
            (True, Ultralytics' exports) or ``(N, A, 4 + C + K*D)``.
        normalized: box and keypoint coordinates come divided by the input
            width and height (0-1), as Ultralytics' TFLite exports give them;
            False (default): input pixels.
        num_classes: C, 1 to 65536 (Ultralytics pose models: 1).
        person_classes: the class indices that are people, each below
            ``num_classes``, no repeats (default ``[0]``).
        keypoint_dims: D, 2 (x, y) or 3 (x, y, visibility).
        strides: the grid strides in anchor order, for ``"dfl"``; 1 to 8
            distinct values from 1 to 1024 (default ``[8, 16, 32]``).
        reg_max: DFL bins per box side, for ``"dfl"``, 1 to 256 (default 16).
        score_threshold: a person needs a score above this, in [0, 1)
            (default 0.25; the caller's ``score_threshold`` overrides it).
        iou_threshold: box NMS drops a box whose IoU with a kept one is
            above this, in (0, 1] (default 0.7); unused by ``"end_to_end"``.
        max_detections: the most people per image, 1 to 10000 (default 300).
        max_candidates: the most candidates (top scores) that enter NMS, 1
            to 1000000 (default 30000).
        align: letterbox placement, ``"center"`` (default) or ``"topleft"``.
        size_multiple: for a model with a dynamic input size, both input
            sides are multiples of this (the largest stride), 1 to 1024
            (default 32).
        dequantize: see :class:`~edgepose.heads.HeadParams`.
    """

    format: str = "decoded"
    channels_first: bool = True
    normalized: bool = False
    num_classes: int = 1
    person_classes: tuple[int, ...] = (0,)
    keypoint_dims: int = 3
    strides: tuple[int, ...] = (8, 16, 32)
    reg_max: int = 16
    score_threshold: float = 0.25
    iou_threshold: float = 0.7
    max_detections: int = 300
    max_candidates: int = 30000
    align: str = "center"
    size_multiple: int = 32

    @classmethod
    def _checkers(cls):
        def integer(low, high):
            return lambda n, x: v.integer(f"{FIELD}.{n}", x, low=low, high=high)

        return {
            **super()._checkers(),
            "format": lambda n, x: v.choice(f"{FIELD}.{n}", x, FORMATS),
            "channels_first": _bool,
            "normalized": _bool,
            "num_classes": integer(1, MAX_CLASSES),
            "person_classes": _person_classes,
            "keypoint_dims": lambda n, x: v.choice(f"{FIELD}.{n}", x, (2, 3)),
            "strides": _strides,
            "reg_max": integer(1, MAX_REG_MAX),
            "score_threshold": lambda n, x: _below_one(f"{FIELD}.{n}", x),
            "iou_threshold": lambda n, x: v.real(f"{FIELD}.{n}", x, low=0.0, low_open=True,
                                                 high=1.0),
            "max_detections": integer(1, MAX_DETECTIONS),
            "max_candidates": integer(1, MAX_CANDIDATES),
            "align": lambda n, x: v.choice(f"{FIELD}.{n}", x, ("center", "topleft")),
            "size_multiple": integer(1, MAX_SIZE_MULTIPLE),
        }

    def _check_together(self) -> None:
        too_big = [c for c in self.person_classes if c >= self.num_classes]
        if too_big:
            raise ValueError(
                f"{FIELD}.person_classes must be class indices below num_classes "
                f"({self.num_classes}), got {too_big}.")

    def output_roles(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if self.format == "dfl":
            return ("box_class", "keypoints"), ()
        return ("output",), ()

    def check_context(self, num_keypoints, roles):
        super().check_context(num_keypoints, roles)
        if num_keypoints is not None and num_keypoints > MAX_KEYPOINTS:
            raise ValueError(f"A yolo_pose head gives at most {MAX_KEYPOINTS} keypoints, the "
                             f"card's keypoint set has {num_keypoints}.")


def _below_one(field: str, value: Any) -> float:
    x = v.real(field, value, low=0.0, high=1.0)
    if x >= 1.0:
        raise ValueError(f"{field} must be a finite number in [0, 1), got {value!r}.")
    return x


# --- the runner -------------------------------------------------------------------

def _input_hw(model: Any, image_hw: tuple[int, int], input_size: int | None,
              params: YoloPoseParams) -> tuple[int, int]:
    """The input size for this image: the card's for a fixed-size model; for a
    dynamic one the smallest letterbox of longer side ``input_size`` (else the
    card's longer side) with both sides multiples of ``size_multiple``."""
    from edgepose.geometry import letterbox_size

    nominal = tuple(model.input_hw)
    if not model.dynamic_input:
        if input_size is not None and input_size != max(nominal):
            raise ValueError(
                f"input_size={input_size}: {model.name} has a fixed input size "
                f"{nominal[0]}x{nominal[1]} (its graph fixes it), so input_size must be "
                f"{max(nominal)} or None. Export the model with a dynamic input to choose.")
        return nominal  # type: ignore[return-value]
    longer = max(nominal) if input_size is None else input_size
    if longer % params.size_multiple:
        raise ValueError(
            f"input_size must be a multiple of {params.size_multiple} (the model's largest "
            f"stride, head_params.size_multiple) for {model.name}, got {longer}.")
    return letterbox_size(image_hw, longer, params.size_multiple)


def check_options(model: Any, options: Any) -> None:
    """Checks the caller's options against the model, before any image (the
    Estimator calls it when it is built).

    Raises:
        ValueError: as :func:`run_yolo_pose` does for options.
    """
    params: YoloPoseParams = model.card.params
    if params.format == "end_to_end" and options.iou_threshold is not None:
        raise ValueError(
            f"iou_threshold does not apply to {model.name}: its graph already suppresses "
            "duplicate people (head_params.format 'end_to_end'). Drop iou_threshold=.")
    if options.input_size is not None:
        _input_hw(model, tuple(model.input_hw), options.input_size, params)


def run_yolo_pose(model: Any, image: NDArray[np.uint8], keypoint_set: Any, watch: Any,
                  options: Any) -> Any:
    """The one-stage YOLO-pose pipeline: letterbox, infer, decode, map back.

    Args:
        model: an :class:`edgepose.model.LoadedModel` whose card has head
            ``"yolo_pose"`` (:class:`YoloPoseParams`).
        image: BGR uint8 ``(H, W, 3)``.
        keypoint_set: the model's :class:`edgepose.keypoints.KeypointSet`.
        watch: a :class:`edgepose._timing.Stopwatch` (laps "preprocess",
            "inference", "decode").
        options: the caller's :class:`~edgepose.heads._one_stage.OneStageOptions`;
            None fields take the card's ``head_params``.

    Returns:
        a :class:`edgepose.results.PoseResult` in image pixels, people by
        descending score, with ``boxes`` ``(N, 4)`` xyxy and
        ``person_scores`` ``(N,)``; keypoint scores are the visibilities.

    Raises:
        ValueError: ``iou_threshold`` for an ``"end_to_end"`` model (its
            graph already suppresses duplicates), ``input_size`` other than
            the input size of a fixed-size model, or not a multiple of
            ``size_multiple``.
        RuntimeError: the model produced NaN or inf.
    """
    from edgepose.geometry import letterbox
    from edgepose.heads import check_finite_outputs
    from edgepose.model import preprocess_crops
    from edgepose.ops import decode_yolo_dfl, decode_yolo_pose
    from edgepose.results import PoseResult

    card = model.card
    params: YoloPoseParams = card.params
    check_options(model, options)
    image_hw = (int(image.shape[0]), int(image.shape[1]))
    input_hw = _input_hw(model, image_hw, options.input_size, params)
    canvas, scale, pad = letterbox(image, input_hw, pad_value=card.input.pad_value,
                                   align=params.align)
    tensor = preprocess_crops(canvas[None], card.input)
    watch.lap("preprocess")
    outputs = model.run(tensor)
    watch.lap("inference")
    check_finite_outputs(outputs, model.name)
    k = len(keypoint_set.names)
    if params.format == "dfl":
        output = decode_yolo_dfl(outputs["box_class"], outputs["keypoints"], input_hw=input_hw,
                                  strides=params.strides, reg_max=params.reg_max,
                                  num_keypoints=k, keypoint_dims=params.keypoint_dims)
    else:
        output = outputs["output"]

    def pick(option: Any, default: Any) -> Any:
        return default if option is None else option

    # x_input = scale * x_image + pad; normalized outputs give x_input / W.
    in_h, in_w = input_hw
    norm_x, norm_y = (1.0 / in_w, 1.0 / in_h) if params.normalized else (1.0, 1.0)
    found = decode_yolo_pose(
        output, num_classes=params.num_classes, num_keypoints=k,
        keypoint_dims=params.keypoint_dims, channels_first=params.channels_first,
        end_to_end=params.format == "end_to_end",
        score_threshold=pick(options.score_threshold, params.score_threshold),
        iou_threshold=pick(options.iou_threshold, params.iou_threshold),
        max_candidates=params.max_candidates,
        max_detections=pick(options.max_detections, params.max_detections),
        scale=(scale * norm_x, scale * norm_y), pad=(pad[0] * norm_x, pad[1] * norm_y),
        image_hw=image_hw)[0]
    people = np.isin(found.classes, params.person_classes)
    keypoints = found.keypoints[people]
    with np.errstate(invalid="ignore"):
        keypoints = np.where(np.isfinite(keypoints).all(axis=-1, keepdims=True), keypoints,
                             np.float32(np.nan)).astype(np.float32)
    return PoseResult(keypoints, found.keypoint_scores[people], keypoint_set,
                      boxes=found.boxes[people], person_scores=found.scores[people])
