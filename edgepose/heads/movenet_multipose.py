"""MoveNet MultiPose: a one-stage multi-person model whose graph decodes,
suppresses duplicates and returns a fixed number of people.

The TF-Hub model (``movenet/multipose/lightning``) takes a uint8 RGB image
``[1, H, W, 3]`` whose sides are multiples of 32 (dynamic: any such size)
and returns ``[1, P, 5 + 3K]`` (P = 6, K = 17): per person K x (y, x, score)
normalised 0-1 over the input, then ymin, xmin, ymax, xmax (normalised) and
the person score. Its runner, :func:`run_movenet_multipose`, resizes the
whole image so that its longer side is the input size, runs it and maps the
people back to image pixels.

Resizing: the card's ``input.resize`` is ``"stretch"`` (the default preset)
or ``"letterbox"``. ``"stretch"`` scales the longer side to the input size
and the other side by the same factor, then rounds each side to the nearest
multiple of ``size_multiple``, and resizes the image to exactly that size:
the aspect ratio changes by at most half a multiple. ``"letterbox"`` keeps
the aspect ratio exactly and pads the bottom and right up to the multiples.
On ``data/coco`` at 256 pixels, stretching scored OKS AP 0.54 and the
letterbox 0.48 (at 384 the order flips, 0.58 and 0.64; see
``docs/one_stage.md``): the preset stretches at 256, as the reference
pipeline of the model does.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgepose import _validate as v
from edgepose.heads._params import FIELD, HeadParams

__all__ = ["MoveNetMultiPoseParams", "run_movenet_multipose", "input_size_for",
           "MAX_SIZE_MULTIPLE"]

#: The largest ``size_multiple`` a card may give (pixels).
MAX_SIZE_MULTIPLE = 1024


@dataclasses.dataclass(frozen=True, kw_only=True)
class MoveNetMultiPoseParams(HeadParams):
    """``head_params`` of head ``"movenet_multipose"``.

    Attributes:
        size_multiple: both input sides are multiples of this (pixels),
            1 to 1024; 32 for MoveNet MultiPose.
        score_threshold: people whose person score is at most this are
            dropped, in [0, 1). 0.1 by default: it keeps every person the
            graph is fairly sure of (the TF-Hub example draws people above
            0.11) and drops its empty slots, which score near 0.
        max_detections: the most people returned, 1 to 1000 (never more
            than the graph's slots).
        dequantize: see :class:`~edgepose.heads.HeadParams`.
    """

    size_multiple: int = 32
    score_threshold: float = 0.1
    max_detections: int = 6

    OUTPUT_ROLES = (("people",), ())

    @classmethod
    def _checkers(cls):
        def f(n):
            return f"{FIELD}.{n}"
        return {
            **super()._checkers(),
            "size_multiple": lambda n, x: v.integer(f(n), x, low=1, high=MAX_SIZE_MULTIPLE),
            "score_threshold": _below_one,
            "max_detections": lambda n, x: v.integer(f(n), x, low=1, high=1000),
        }


def _below_one(name: str, value: Any) -> float:
    x = v.real(f"{FIELD}.{name}", value, low=0.0, high=1.0)
    if x >= 1.0:
        raise ValueError(f"{FIELD}.{name} must be a number in [0, 1), got {value!r}: a person "
                         "score is at most 1, so 1 would drop everyone.")
    return x


def input_size_for(image_hw: tuple[int, int], longer: int, multiple: int,
                   resize: str) -> tuple[int, int]:
    """The input size ``(h, w)`` for an image.

    Args:
        image_hw: the image's ``(H, W)``.
        longer: the input's longer side (a multiple of ``multiple``).
        multiple: both input sides are multiples of this.
        resize: ``"stretch"``: the image's sides scaled by ``longer / max(H, W)``
            and rounded to the nearest multiple (at least one), so that the
            image fills the input; ``"letterbox"``: the smallest letterbox
            (:func:`edgepose.geometry.letterbox_size`: the scaled sides
            rounded to whole pixels, then up to the next multiple; the image
            keeps its aspect ratio, padded at the bottom or right).
    """
    if resize != "stretch":
        from edgepose.geometry import letterbox_size

        return letterbox_size(image_hw, longer, multiple)
    h, w = image_hw
    scale = longer / max(h, w)
    return (max(multiple, int(round(h * scale / multiple)) * multiple),
            max(multiple, int(round(w * scale / multiple)) * multiple))


def _longer_side(model: Any, options: Any, params: MoveNetMultiPoseParams) -> int:
    size = options.input_size
    what = "input_size"
    if size is None:
        size, what = max(model.card.input.size), "the longer side of the card's input size"
    multiple = params.size_multiple
    if size % multiple:
        lower = max(multiple, size // multiple * multiple)
        raise ValueError(
            f"{what} must be a multiple of {multiple} for {model.name} (its head's "
            f"size_multiple), got {size}. Use {lower} or {lower + multiple}.")
    return size


def _check_iou(model: Any, options: Any) -> None:
    if options.iou_threshold is not None:
        raise ValueError(
            f"iou_threshold does not apply to {model.name}: the MoveNet MultiPose graph "
            f"suppresses duplicate people itself. Drop iou_threshold (got "
            f"{options.iou_threshold!r}).")


def _settings(model: Any, options: Any, params: MoveNetMultiPoseParams, slots: int
              ) -> tuple[float, int]:
    threshold = (params.score_threshold if options.score_threshold is None
                 else float(options.score_threshold))
    limit = params.max_detections if options.max_detections is None else options.max_detections
    if options.max_detections is not None and limit > slots:
        raise ValueError(
            f"max_detections must be at most {slots} for {model.name} (its graph returns "
            f"{slots} people), got {limit}.")
    return threshold, min(limit, slots)


def _fixed_size(model: Any, options: Any) -> None:
    if options.input_size is not None:
        raise ValueError(
            f"input_size applies to models with a dynamic input size; {model.name} takes "
            f"{model.input_hw[0]}x{model.input_hw[1]} only. Drop input_size (got "
            f"{options.input_size}).")


def check_options(model: Any, options: Any) -> None:
    """Checks the caller's options against the model, before any image (the
    Estimator calls it when it is built): ``iou_threshold``, ``input_size``,
    and ``max_detections`` against the people slots of the graph's output
    when its shape says them.

    Raises:
        ValueError: as :func:`run_movenet_multipose` does for options.
    """
    _check_iou(model, options)
    params: MoveNetMultiPoseParams = model.card.params
    if model.dynamic_input:
        _longer_side(model, options, params)
    else:
        _fixed_size(model, options)
    shapes = {t.name: tuple(t.shape) for t in model.backend.outputs}
    shape = shapes.get(model.card.outputs.get("people"), ())
    if len(shape) == 3 and isinstance(shape[1], int):
        _settings(model, options, params, shape[1])


def run_movenet_multipose(model: Any, image: NDArray[np.uint8], keypoint_set: Any, watch: Any,
                          options: Any) -> Any:
    """Finds every person in a whole image with a MoveNet MultiPose model.

    The image is resized as the card's ``input.resize`` says (see the module
    docstring) to an input whose longer side is ``options.input_size``
    (default: the longer side of the card's input size, 256 for the preset),
    for a model with a dynamic input; a model with a fixed input gets its
    card's size. The outputs, normalised over the input, are mapped back to
    image pixels through the resize: ``x_image = (x * W_input - pad_x) /
    scale_x`` (pixel edges, :mod:`edgepose.geometry`).

    Args:
        model: a :class:`~edgepose.model.LoadedModel` with head
            ``"movenet_multipose"``.
        image: BGR uint8 ``(H, W, 3)``.
        keypoint_set: the model's keypoint set.
        watch: a :class:`~edgepose._timing.Stopwatch` (laps "preprocess",
            "inference", "decode").
        options: :class:`~edgepose.heads._one_stage.OneStageOptions`; None
            fields take the card's ``head_params``.

    Returns:
        a :class:`~edgepose.results.PoseResult` in image pixels, people by
        descending person score, with ``boxes`` (N, 4) xyxy and
        ``person_scores``. Every keypoint keeps its score, however low;
        only a non-finite location is NaN (not found).

    Raises:
        ValueError: ``iou_threshold`` given (the graph suppresses duplicates
            itself), ``max_detections`` above the graph's slot count,
            ``input_size`` not a multiple of the head's ``size_multiple`` or
            given for a model with a fixed input size, or outputs whose
            shape is not ``(1, P, 5 + 3K)``.
    """
    from edgepose.geometry import resize_to_input
    from edgepose.model import preprocess_crops
    from edgepose.results import PoseResult

    _check_iou(model, options)
    params: MoveNetMultiPoseParams = model.card.params
    spec = model.card.input
    resize = "stretch" if spec.resize == "stretch" else "letterbox"
    if model.dynamic_input:
        longer = _longer_side(model, options, params)
        input_hw = input_size_for(image.shape[:2], longer, params.size_multiple, resize)
    else:
        _fixed_size(model, options)
        input_hw = tuple(model.input_hw)
    canvas, (scale_x, scale_y), (pad_x, pad_y) = resize_to_input(
        image, resize, input_hw, pad_value=spec.pad_value, align="topleft")
    tensor = preprocess_crops(canvas[None], spec)
    watch.lap("preprocess")
    raw = model.run(tensor)["people"]
    watch.lap("inference")
    k = len(keypoint_set.names)
    people = np.asarray(raw, dtype=np.float32)
    if people.ndim != 3 or people.shape[0] != 1 or people.shape[2] != 5 + 3 * k:
        raise ValueError(
            f"{model.name}'s 'people' output must have shape (1, P, {5 + 3 * k}) (per person "
            f"{k} x (y, x, score), then ymin, xmin, ymax, xmax, score), got {people.shape}. "
            "Check the card's keypoints and outputs.")
    people = people[0]
    threshold, limit = _settings(model, options, params, len(people))
    person = people[:, -1]
    box_finite = np.isfinite(people[:, 3 * k:]).all(axis=1)
    with np.errstate(invalid="ignore"):
        keep = np.flatnonzero(box_finite & (person > threshold))
    keep = keep[np.argsort(-person[keep], kind="stable")][:limit]
    people = people[keep]
    # (y, x) are normalised over the whole input: x_input = x * W_input, on pixel
    # edges, then back through the resize (x_image = (x_input - pad_x) / scale_x).
    in_h, in_w = input_hw
    triples = people[:, :3 * k].reshape(-1, k, 3)
    keypoints = np.stack([(triples[..., 1] * in_w - pad_x) / scale_x,
                          (triples[..., 0] * in_h - pad_y) / scale_y], axis=-1)
    keypoints[~np.isfinite(keypoints).all(axis=-1)] = np.nan
    box = people[:, 3 * k:3 * k + 4]
    boxes = np.stack([(box[:, 1] * in_w - pad_x) / scale_x, (box[:, 0] * in_h - pad_y) / scale_y,
                      (box[:, 3] * in_w - pad_x) / scale_x, (box[:, 2] * in_h - pad_y) / scale_y],
                     axis=1)
    result = PoseResult(keypoints.astype(np.float32), triples[..., 2].copy(), keypoint_set,
                        boxes=boxes.astype(np.float32), person_scores=people[:, -1].copy())
    watch.lap("decode")
    return result
