"""Person detection for top-down pose: resize, decode, NMS, boxes in image pixels.

:class:`PersonDetector` runs a detector :class:`~edgepose.model.LoadedModel`:
the model's preprocessing (letterbox or stretch, :mod:`edgepose.geometry`),
the head's decoder (:mod:`edgepose.heads.yolox`, :mod:`edgepose.heads.nanodet`),
then threshold, NMS, the map back to the image and clipping. Boxes are
``xyxy`` float32 in image pixels with pixel *edges* as units (see
:mod:`edgepose.geometry`).

A one-stage multi-person pose model (card task ``"onestage"``, e.g. MoveNet
MultiPose, YOLO-pose) serves as a person detector too:
:meth:`PersonDetector.from_file` gives a :class:`OneStagePersonDetector`
for one, which runs the model's own runner and keeps each person's box and
person score (so ``Estimator(top_down_model, detector=one_stage_file)``
works).

The resizing functions and box maps (:func:`letterbox`, :func:`stretch`,
:func:`boxes_to_input`, :func:`boxes_to_image`) live in
:mod:`edgepose.geometry` and the decoders (:func:`decode_yolox`,
:func:`decode_nanodet`) in their head modules; they are importable from here
too. OpenCV is imported only by the functions that resample images.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgepose._arrays import read_only
from edgepose._validate import is_int
from edgepose.card import InputSpec, ModelCard
from edgepose.geometry import (
    ALIGNS,
    boxes_to_image,
    boxes_to_input,
    check_pad_value,
    check_size_hw,
    clip_boxes,
    letterbox,
    stretch,
)
from edgepose.heads.nanodet import NanoDetParams, decode_nanodet
from edgepose.heads.yolox import YoloxParams, check_strides, decode_yolox
from edgepose.ops import nms_boxes

if TYPE_CHECKING:
    from edgepose.model import LoadedModel
    from edgepose.runtime import RuntimeOptions

__all__ = [
    "Detections",
    "PersonDetector",
    "OneStagePersonDetector",
    "boxes_to_image",
    "boxes_to_input",
    "decode_nanodet",
    "decode_yolox",
    "letterbox",
    "stretch",
]

#: The score threshold of a detector built from a file, unless given.
DEFAULT_SCORE_THRESHOLD = 0.3

#: detector head -> its parameters class (which decodes its outputs).
_HEADS: dict[str, type[YoloxParams]] = {"yolox": YoloxParams, "nanodet": NanoDetParams}
_KINDS = tuple(_HEADS)
_RESIZES = ("letterbox", "stretch")
_LAYOUTS = ("NCHW", "NHWC")
_COLORS = ("BGR", "RGB")


@dataclass(frozen=True)
class Detections:
    """Person boxes in image pixels.

    Attributes:
        boxes: ``(M, 4)`` float32 ``x1, y1, x2, y2`` in image pixels (pixel
            edges: the image spans ``[0, W] x [0, H]``).
        scores: ``(M,)`` float32 confidences, in descending order when
            produced by :class:`PersonDetector`.

    The arrays are read-only copies; ``len(detections)`` is M and
    ``detections[i]``, ``[a:b]``, ``[mask]``, ``[indices]`` select boxes.
    """

    boxes: NDArray[np.float32]
    scores: NDArray[np.float32]

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32)
        scores = np.asarray(self.scores, dtype=np.float32)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must have shape (M, 4) as x1, y1, x2, y2, got {boxes.shape}.")
        if scores.shape != (boxes.shape[0],):
            raise ValueError(
                f"scores must have shape ({boxes.shape[0]},), one per box, got {scores.shape}.")
        object.__setattr__(self, "boxes", read_only(boxes))
        object.__setattr__(self, "scores", read_only(scores))

    @classmethod
    def empty(cls) -> Detections:
        """No detections: boxes ``(0, 4)`` and scores ``(0,)``."""
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def __getitem__(self, index: int | slice | ArrayLike) -> Detections:
        """Selects detections by int, slice, integer array or boolean mask."""
        n = len(self)
        if isinstance(index, (int, np.integer)):
            if not -n <= index < n:
                raise IndexError(f"detection index {index} out of range for {n} detections.")
            index = slice(int(index), int(index) + 1 if index != -1 else None)
        elif not isinstance(index, slice):
            index = np.asarray(index)
            if index.dtype == bool and index.shape != (n,):
                raise IndexError(f"a boolean mask must have shape ({n},), got {index.shape}.")
        return Detections(self.boxes[index], self.scores[index])


def _triple(name: str, value: Sequence[float], positive: bool = False) -> NDArray[np.float32]:
    arr = np.asarray(value, dtype=np.float64).ravel()
    if arr.shape != (3,) or not np.isfinite(arr).all() or (positive and (arr <= 0).any()):
        kind = "positive finite" if positive else "finite"
        raise ValueError(f"{name} must be three {kind} numbers (one per channel), got {value!r}.")
    return arr.astype(np.float32)


def _resolve_input(backend: Any, input_name: str | None, input_size: Sequence[int] | None,
                   layout: str) -> tuple[str, tuple[int, int]]:
    """The input to feed and its ``(h, w)``, from the backend's inputs and the options."""
    inputs = list(backend.inputs)
    names = [t.name for t in inputs]
    if input_name is None:
        if len(inputs) != 1:
            raise ValueError(f"the model has {len(inputs)} inputs {names}; pass input_name.")
        info = inputs[0]
    else:
        matches = [t for t in inputs if t.name == input_name]
        if not matches:
            raise ValueError(f"input_name {input_name!r} is not an input of the model; "
                             f"its inputs are {names}.")
        info = matches[0]
    shape = tuple(info.shape)
    if len(shape) != 4:
        raise ValueError(f"input {info.name!r} must be 4-D ({layout}), got shape {shape}.")
    c_axis, hw_axes = (1, (2, 3)) if layout == "NCHW" else (3, (1, 2))
    if shape[c_axis] not in (3, None):
        other = "NHWC" if layout == "NCHW" else "NCHW"
        hint = f"; it looks {other}: pass layout={other!r}" if shape[
            3 if other == "NHWC" else 1] == 3 else ""
        raise ValueError(
            f"input {info.name!r} has shape {shape}, which is not {layout} with 3 "
            f"channels{hint}.")
    static = tuple(shape[a] for a in hw_axes)
    if input_size is None:
        if None in static:
            raise ValueError(
                f"input {info.name!r} has a dynamic size {shape}; pass input_size=(h, w).")
        return info.name, (int(static[0]), int(static[1]))
    size = check_size_hw(input_size, "input_size")
    for got, want in zip(static, size):
        if got is not None and got != want:
            raise ValueError(
                f"input_size {size} does not match input {info.name!r} of shape {shape}.")
    return info.name, size


def _output_shapes(backend: Any) -> dict[str, tuple]:
    return {t.name: tuple(t.shape) for t in backend.outputs}


class PersonDetector:
    """Detects people: preprocess, run the backend, decode, threshold, NMS.

    Every model parameter is explicit (presets and model cards fill them in);
    the options become a detector :class:`~edgepose.card.ModelCard` run by an
    :class:`edgepose.model.LoadedModel`, so the backend's inputs and outputs
    are checked here, not on the first frame, and preprocessing is the
    model's (:meth:`edgepose.model.LoadedModel.preprocess_image`). Decoding
    is the head's: :meth:`edgepose.heads.YoloxParams.decode_boxes` and
    :meth:`edgepose.heads.NanoDetParams.decode_boxes`.

    Args:
        backend: an object with ``inputs`` / ``outputs`` (name, shape,
            dtype) and ``run({input_name: array}) -> {output_name: array}``,
            e.g. from ``edgepose.backends.open_backend``. The detector owns
            it: :meth:`close` closes it.
        kind: ``"yolox"`` (one ``(1, A, 5 + C)`` output; YOLOX and the light
            person detector) or ``"nanodet"`` (per-stride ``cls`` and ``dis``
            outputs).
        input_size: ``(h, w)``; defaults to the backend input's static size.
        layout: ``"NCHW"`` or ``"NHWC"``, the input tensor layout.
        color: ``"BGR"`` or ``"RGB"``, the channel order the model expects.
        mean, std: per-channel normalisation in the model's channel order,
            applied to 0-255 values: ``(x - mean) / std``.
        resize: ``"letterbox"`` or ``"stretch"``.
        align: letterbox placement, ``"topleft"`` or ``"center"``.
        pad_value: letterbox fill (0-255, before normalisation).
        class_index: the person class among the model's classes.
        strides: feature strides, in output order.
        reg_max: NanoDet only: largest distance bin (default 7).
        center_offset: NanoDet only: anchor point offset in cells (default 0.5).
        outputs: output names by role, when they cannot be inferred:
            ``{"raw": name}`` for yolox, ``{"cls_8": name, "dis_8": name,
            ...}`` (one pair per stride) for nanodet.
        input_name: the input to feed, when the backend has several.
        score_threshold: keep candidates scoring above this.
        iou_threshold: NMS suppresses boxes overlapping a better one by more.
        max_detections: keep at most this many (None for all).

    Raises:
        TypeError: ``backend`` lacks ``inputs``, ``outputs`` or ``run``.
        ValueError: an invalid option, or options that do not match the
            backend's inputs and outputs. (The backend is not closed when
            the constructor fails: it is still the caller's.)
    """

    def __init__(
        self,
        backend: Any,
        *,
        kind: str,
        input_size: Sequence[int] | None = None,
        layout: str = "NCHW",
        color: str = "BGR",
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        resize: str = "letterbox",
        align: str = "topleft",
        pad_value: float | Sequence[float] = 114,
        class_index: int = 0,
        strides: Sequence[int] = (8, 16, 32),
        reg_max: int | None = None,
        center_offset: float | None = None,
        outputs: Mapping[str, str] | None = None,
        input_name: str | None = None,
        score_threshold: float = 0.3,
        iou_threshold: float = 0.45,
        max_detections: int | None = 100,
    ) -> None:
        from edgepose.model import LoadedModel

        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}.")
        if layout not in _LAYOUTS:
            raise ValueError(f"layout must be 'NCHW' or 'NHWC', got {layout!r}.")
        if color not in _COLORS:
            raise ValueError(f"color must be 'BGR' or 'RGB', got {color!r}.")
        if resize not in _RESIZES:
            raise ValueError(f"resize must be one of {_RESIZES}, got {resize!r}.")
        if align not in ALIGNS:
            raise ValueError(f"align must be 'topleft' or 'center', got {align!r}.")
        head_params: dict[str, Any] = {"strides": list(check_strides(strides)), "align": align}
        if kind == "nanodet":
            head_params["reg_max"] = 7 if reg_max is None else reg_max
            head_params["center_offset"] = 0.5 if center_offset is None else center_offset
            if not is_int(head_params["reg_max"]) or head_params["reg_max"] < 1:
                raise ValueError(f"reg_max must be a positive int, got {reg_max!r}.")
        else:
            for name, value in (("reg_max", reg_max), ("center_offset", center_offset)):
                if value is not None:
                    raise ValueError(f"{name} applies to kind='nanodet' only, got {name}={value!r} "
                                     f"for kind={kind!r}.")
        if not is_int(class_index) or class_index < 0:
            raise ValueError(f"class_index must be a non-negative int, got {class_index!r}.")
        head_params["class_index"] = int(class_index)
        for name in ("run", "inputs", "outputs"):
            if not hasattr(backend, name):
                raise TypeError(
                    f"backend must have inputs, outputs and run() (see edgepose.backends), "
                    f"got {type(backend).__name__} without {name!r}.")
        pad = check_pad_value(pad_value)
        mean3, std3 = _triple("mean", mean), _triple("std", std, positive=True)
        params = _HEADS[kind].from_dict(head_params)
        name, size = _resolve_input(backend, input_name, input_size, layout)
        roles = params.resolve_outputs(outputs, _output_shapes(backend), size)
        spec = InputSpec(size=size, name=name, layout=layout, dtype="float32", color=color,
                         mean=tuple(mean3.tolist()), std=tuple(std3.tolist()), resize=resize,
                         pad_value=float(pad[0]))
        card = ModelCard(name=f"{kind} person detector", task="detector", head=kind,
                         input=spec, head_params=head_params, outputs=roles)
        self._setup(LoadedModel.from_backend(backend, card), score_threshold, iou_threshold,
                    max_detections, pad)

    def _setup(self, model: LoadedModel, score_threshold: float, iou_threshold: float,
               max_detections: int | None, pad_value: tuple[int, int, int]) -> None:
        """Keeps the model and the thresholds (checked here)."""
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        if not (np.isfinite(self.score_threshold) and np.isfinite(self.iou_threshold)):
            raise ValueError(
                f"score_threshold and iou_threshold must be finite, got {score_threshold!r} "
                f"and {iou_threshold!r}.")
        if max_detections is not None and (
                not is_int(max_detections) or max_detections < 1):
            raise ValueError(f"max_detections must be None or a positive int, got {max_detections!r}.")
        self.max_detections = max_detections
        self.model = model
        self.params: YoloxParams = model.card.params
        self.pad_value = pad_value
        spec = model.card.input
        self.kind = model.card.head
        self.input_name, self.input_size = model.input_name, tuple(spec.size)
        self.layout, self.color, self.resize = spec.layout, spec.color, spec.resize
        self.mean = np.asarray(spec.mean, np.float32)
        self.std = np.asarray(spec.std, np.float32)
        self.align, self.strides = self.params.align, self.params.strides
        self.class_index = self.params.class_index
        self._outputs = dict(model.card.outputs)

    @property
    def _backend(self) -> Any:
        return self.model.backend

    @classmethod
    def from_file(cls, path: str | Path, *, preset: str | None = None,
                  score_threshold: float | None = None, iou_threshold: float = 0.45,
                  max_detections: int | None = 100, runtime: RuntimeOptions | None = None,
                  backend: str | None = None, threads: int | None = None,
                  device: str | None = None, providers: Any = None,
                  xnnpack: bool = True) -> PersonDetector | OneStagePersonDetector:
        """A detector from a model file and its card (in the file, a preset,
        or recognised by the file's sha256): a person detector's, or a
        one-stage multi-person pose model's (a :class:`OneStagePersonDetector`).

        Args:
            score_threshold: keep people scoring above this; None: 0.3 for a
                detector, the card's person threshold for a one-stage model
                (person scores of different models have different scales:
                MoveNet MultiPose's are lower than YOLOX's).
            iou_threshold: NMS threshold of a detector; a one-stage model
                suppresses duplicates as its card says, and does not use it.
            max_detections: keep at most this many (None for all).
            runtime: the runtime options; ``backend``, ``threads``,
                ``device``, ``providers`` and ``xnnpack`` are shortcuts for
                its fields (see :meth:`edgepose.RuntimeOptions.resolve`).

        Raises:
            FileNotFoundError, ImportError, ValueError: as
                :class:`edgepose.model.LoadedModel`, and a card that is
                neither a detector's nor a one-stage model's.
        """
        from edgepose.model import LoadedModel
        from edgepose.runtime import RuntimeOptions

        options = RuntimeOptions.resolve(runtime, backend=backend, threads=threads, device=device,
                                         providers=providers, xnnpack=xnnpack)
        loaded = LoadedModel(path, preset=preset, runtime=options, role="detector")
        card = loaded.card
        if card.task == "onestage":
            try:
                return OneStagePersonDetector(loaded, score_threshold=score_threshold,
                                              max_detections=max_detections)
            except Exception:
                loaded.close()
                raise
        if score_threshold is None:
            score_threshold = DEFAULT_SCORE_THRESHOLD
        try:
            if card.task != "detector":
                raise ValueError(
                    f"{Path(path).name} is a {card.task} pose model (head '{card.head}'), not a "
                    "person detector: pass it as the pose model (of pose models, only one-stage "
                    "multi-person ones serve as person detectors).")
            if card.input.resize not in _RESIZES:
                raise ValueError(f"The card of {Path(path).name}: a detector's input resize must "
                                 f"be one of {_RESIZES}, got {card.input.resize!r}.")
            roles = card.params.resolve_outputs(dict(card.outputs) or None,
                                                _output_shapes(loaded.backend),
                                                tuple(card.input.size))
            if roles != dict(card.outputs):
                loaded = LoadedModel.from_backend(loaded.backend, replace(card, outputs=roles),
                                                  path=loaded.path,
                                                  registry_entry=loaded.registry_entry,
                                                  runtime=loaded.runtime)
            detector = cls.__new__(cls)
            detector._setup(loaded, score_threshold, iou_threshold, max_detections,
                            check_pad_value(card.input.pad_value))
            return detector
        except Exception:
            loaded.close()
            raise

    def preprocess(
        self, image: NDArray[np.uint8]
    ) -> tuple[NDArray[np.float32], tuple[float, float], tuple[float, float]]:
        """Image to input tensor (:meth:`edgepose.model.LoadedModel.preprocess_image`).

        Returns:
            the ``(1, 3, h, w)`` or ``(1, h, w, 3)`` float32 tensor,
            ``(scale_x, scale_y)`` and ``(pad_x, pad_y)`` for
            :func:`boxes_to_image`.

        Raises:
            TypeError, ValueError: an invalid image (see :meth:`__call__`).
        """
        return self.model.preprocess_image(image, pad_value=self.pad_value)

    def postprocess(
        self,
        outputs: Mapping[str, NDArray],
        scale: Sequence[float],
        pad: Sequence[float],
        image_hw: Sequence[int],
    ) -> Detections:
        """Backend outputs (by tensor name, as ``backend.run`` returns them)
        to detections in image pixels; see :meth:`postprocess_roles`."""
        return self.postprocess_roles({role: outputs[name] for role, name in self._outputs.items()},
                                      scale, pad, image_hw)

    def postprocess_roles(
        self,
        outputs: Mapping[str, NDArray],
        scale: Sequence[float],
        pad: Sequence[float],
        image_hw: Sequence[int],
    ) -> Detections:
        """Outputs by role (as :meth:`edgepose.model.LoadedModel.run` gives
        them) to detections in image pixels.

        Decode (the head's ``decode_boxes``), keep finite boxes scoring above
        ``score_threshold``, NMS (:func:`edgepose.ops.nms_boxes`), map to the
        image, clip to ``[0, W] x [0, H]`` and drop boxes left empty by
        clipping.
        """
        boxes, scores = self.params.decode_boxes(outputs, self.input_size)
        keep = (scores > self.score_threshold) & np.isfinite(boxes).all(axis=1)
        boxes, scores = boxes[keep], scores[keep]
        order = nms_boxes(boxes, scores, self.iou_threshold, max_keep=self.max_detections)
        boxes, nonempty = clip_boxes(boxes_to_image(boxes[order], scale, pad), image_hw)
        return Detections(boxes[nonempty], scores[order][nonempty])

    def __call__(self, image: NDArray[np.uint8]) -> Detections:
        """Detects people in one image.

        Args:
            image: ``(H, W, 3)`` BGR uint8, as ``cv2.imread`` returns.

        Returns:
            :class:`Detections` in image pixels, best first.

        Raises:
            TypeError: not a uint8 NumPy array.
            ValueError: not ``(H, W, 3)`` (grayscale and BGRA images name the
                ``cv2.cvtColor`` conversion) or empty.
            RuntimeError: the backend failed.
        """
        tensor, scale, pad = self.preprocess(image)
        return self.postprocess_roles(self.model.run(tensor), scale, pad, image.shape[:2])

    def close(self) -> None:
        """Closes the backend. Idempotent."""
        close = getattr(self._backend, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> PersonDetector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"PersonDetector(kind={self.kind!r}, input_size={self.input_size}, "
                f"resize={self.resize!r}, score_threshold={self.score_threshold}, "
                f"iou_threshold={self.iou_threshold})")


class OneStagePersonDetector:
    """A one-stage multi-person pose model used as a person detector: the
    boxes and person scores of the people its runner finds
    (:func:`edgepose.heads._one_stage.one_stage_runner`), its keypoints
    dropped. Generic over the one-stage heads; built by
    :meth:`PersonDetector.from_file` for a model whose card says task
    ``"onestage"``.

    Args:
        model: the one-stage model (the detector owns it: :meth:`close`
            closes it).
        score_threshold: keep people whose person score is above this, in
            [0, 1); None: the card's default.
        max_detections: keep at most this many, best first (None for all).

    Raises:
        ValueError: a card whose task is not ``"onestage"``, a head this
            edgepose has no runner for, or an invalid threshold or count.
    """

    def __init__(self, model: LoadedModel, *, score_threshold: float | None = None,
                 max_detections: int | None = 100) -> None:
        from edgepose.heads._one_stage import OneStageOptions, one_stage_runner

        card = model.card
        if card.task != "onestage":
            raise ValueError(f"OneStagePersonDetector needs a one-stage model (card task "
                             f"'onestage'), got task {card.task!r}.")
        if max_detections is not None and (not is_int(max_detections) or max_detections < 1):
            raise ValueError(
                f"max_detections must be None or a positive int, got {max_detections!r}.")
        self._run = one_stage_runner(card.head)
        self._options = OneStageOptions(score_threshold=score_threshold)
        self.model = model
        self.kind = card.head
        #: The threshold in force: the one given, else the card's default.
        self.score_threshold = (getattr(card.params, "score_threshold", None)
                                if score_threshold is None else float(score_threshold))
        self.max_detections = max_detections

    def __call__(self, image: NDArray[np.uint8]) -> Detections:
        """Detects people in one BGR uint8 ``(H, W, 3)`` image.

        Returns:
            :class:`Detections` in image pixels, best first, clipped to the
            image (boxes left empty by clipping are dropped).

        Raises:
            TypeError, ValueError: an invalid image.
            RuntimeError: the backend failed.
        """
        from edgepose._timing import Stopwatch
        from edgepose.images import check_image

        image = check_image(image)
        people = self._run(self.model, image, self.model.card.keypoint_set, Stopwatch(),
                           self._options)
        scores = np.asarray(people.person_scores, np.float32)
        order = np.argsort(-scores, kind="stable")[:self.max_detections]
        boxes, nonempty = clip_boxes(np.asarray(people.boxes, np.float32)[order],
                                     image.shape[:2])
        return Detections(boxes[nonempty], scores[order][nonempty])

    def close(self) -> None:
        """Closes the model. Idempotent."""
        self.model.close()

    def __enter__(self) -> OneStagePersonDetector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"OneStagePersonDetector(kind={self.kind!r}, model={self.model.name!r}, "
                f"score_threshold={self.score_threshold})")
