"""What a caller may set on a one-stage multi-person model (task
``"onestage"``: one network gives every person's box and keypoints, e.g.
YOLO-pose, MoveNet MultiPose), and the runner protocol those heads follow.

A runner is ``run(model, image, keypoint_set, watch, options) -> PoseResult``
and its module has ``check_options(model, options)``, which the Estimator
calls when it is built so that options that cannot fit the model fail then,
not on the first image. The runner:
it resizes the whole BGR image to the model input (for a model with a
dynamic input, the smallest input its head allows), runs it, decodes, and
returns people in image pixels with their boxes and person scores.
:data:`ONE_STAGE_RUNNERS` maps each one-stage head to its runner as
``"module:function"`` (imported on first use, so that a device without one
head's needs still loads the others).
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any, Callable

from edgepose._validate import is_int, is_real

__all__ = ["OneStageOptions", "ONE_STAGE_RUNNERS", "one_stage_runner", "check_one_stage_options",
           "MAX_DETECTIONS"]

#: The most people a caller may ask a one-stage model for.
MAX_DETECTIONS = 10000

#: one-stage head -> "module:function" of its runner.
ONE_STAGE_RUNNERS: dict[str, str] = {
    "yolo_pose": "edgepose.heads.yolo_pose:run_yolo_pose",
    "movenet_multipose": "edgepose.heads.movenet_multipose:run_movenet_multipose",
}


@dataclass(frozen=True, kw_only=True)
class OneStageOptions:
    """A caller's settings for a one-stage model; None keeps the default of
    the model's card (its head parameters).

    Attributes:
        score_threshold: people scoring at most this are dropped, in [0, 1).
        iou_threshold: box NMS suppresses a box whose IoU with a kept
            higher-scoring box is above this, in (0, 1]; heads whose graph
            already suppresses duplicates reject it.
        max_detections: the most people returned per image, 1 to
            :data:`MAX_DETECTIONS`.
        input_size: for a model with a dynamic input size, the longer side
            of its input in pixels (a multiple of the head's size multiple,
            e.g. 32); a model with a fixed input size rejects it.

    Raises:
        ValueError: a value outside its range (the message names it).
    """

    score_threshold: float | None = None
    iou_threshold: float | None = None
    max_detections: int | None = None
    input_size: int | None = None

    def __post_init__(self) -> None:
        s, iou = self.score_threshold, self.iou_threshold
        if s is not None and not (is_real(s) and math.isfinite(s) and 0 <= s < 1):
            raise ValueError(f"score_threshold must be a number in [0, 1), got {s!r}.")
        if iou is not None and not (is_real(iou) and math.isfinite(iou) and 0 < iou <= 1):
            raise ValueError(f"iou_threshold must be a number in (0, 1], got {iou!r}.")
        m = self.max_detections
        if m is not None and not (is_int(m) and 1 <= m <= MAX_DETECTIONS):
            raise ValueError(
                f"max_detections must be an integer from 1 to {MAX_DETECTIONS}, got {m!r}.")
        size = self.input_size
        if size is not None and not (is_int(size) and 1 <= size <= 4096):
            raise ValueError(f"input_size must be an integer from 1 to 4096 pixels, got {size!r}.")

    @property
    def any_set(self) -> bool:
        """True when the caller set any option."""
        return any(v is not None for v in (self.score_threshold, self.iou_threshold,
                                           self.max_detections, self.input_size))


def one_stage_runner(head: str) -> Callable[..., Any]:
    """The runner of a one-stage head (:data:`ONE_STAGE_RUNNERS`).

    Raises:
        ValueError: ``head`` has no runner in this version of edgepose.
    """
    try:
        target = ONE_STAGE_RUNNERS[head]
    except KeyError:
        raise ValueError(
            f"No one-stage runner for head {head!r}; this version of edgepose runs "
            f"{sorted(ONE_STAGE_RUNNERS) or 'none'}.") from None
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def check_one_stage_options(model: Any, options: OneStageOptions) -> None:
    """Checks ``options`` against a loaded one-stage model with its head
    module's ``check_options`` (a fixed input size given another
    ``input_size``, an IoU threshold for a graph that suppresses duplicates
    itself, more detections than the graph has slots, ...).

    Raises:
        ValueError: an option that cannot apply to the model, naming it.
    """
    runner = one_stage_runner(model.card.head)
    importlib.import_module(runner.__module__).check_options(model, options)
