"""``Estimator``: an image in, poses in image pixels out."""
from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgepose._arrays import check_boxes
from edgepose._timing import Stopwatch
from edgepose.geometry import (apply_affine, boxes_to_center_scale, crop_matrices,
                               invert_affine, warp_crops)
from edgepose.images import check_image, import_cv2
from edgepose.heads import check_finite_outputs, decode_head, HEAD_DECODERS
from edgepose.heads._one_stage import (OneStageOptions, check_one_stage_options,
                                       one_stage_runner)
from edgepose.keypoints import KeypointSet, convert_keypoints, get_keypoint_set
from edgepose.model import LoadedModel
from edgepose.results import PoseResult
from edgepose.runtime import RuntimeOptions

__all__ = ["Estimator"]

_BOTTOM_UP_HEADS = ("posenet", "paf")


#: Keypoints scoring at most this do not count towards a person's score.
KEYPOINT_SCORE_FLOOR = 0.2

#: Boxes cropped, run and decoded together when the model's batch size is
#: dynamic (a fixed batch size is used as it is): memory stays bounded however
#: many boxes come, and the runtime still gets batches.
DYNAMIC_BATCH_CHUNK = 8


def _person_scores(scores: np.ndarray, box_scores: np.ndarray | None) -> np.ndarray:
    """MMPose's top-down rescoring: the mean score of the keypoints above
    KEYPOINT_SCORE_FLOOR (0 if none), times the detection score when there is one."""
    s = np.nan_to_num(scores, nan=0.0)
    good = s > KEYPOINT_SCORE_FLOOR
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(good.any(axis=1), (s * good).sum(axis=1) / good.sum(axis=1), 0.0)
    if box_scores is not None:
        mean = mean * box_scores
    return mean.astype(np.float32)


def _detected(returned: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The ``(M, 4)`` float32 xyxy boxes and ``(M,)`` scores (or None) a
    detector callable returned: an object with ``.boxes`` (and ``.scores``),
    a pair ``(boxes, scores)`` whose first item is 2-D, or ``(M, 4)`` boxes.

    Raises:
        ValueError: anything else, naming what was returned.
    """
    if hasattr(returned, "boxes"):
        boxes, scores = returned.boxes, getattr(returned, "scores", None)
    elif (isinstance(returned, (tuple, list)) and len(returned) == 2
          and np.ndim(returned[0]) == 2):
        boxes, scores = returned
    else:
        boxes, scores = returned, None
    try:
        b = np.asarray(boxes, dtype=np.float32)
        s = None if scores is None else np.asarray(scores, dtype=np.float32)
    except (TypeError, ValueError):
        b = s = None
    if b is not None and b.shape == (0,):
        b = b.reshape(0, 4)
    if b is None or b.ndim != 2 or b.shape[1] != 4:
        kind = "an array" if isinstance(boxes, np.ndarray) else f"a {type(boxes).__name__}"
        what = kind if b is None or b.ndim == 0 else f"{kind} of shape {b.shape}"
        raise ValueError(
            f"The detector returned {what}; a detector callable must return (M, 4) xyxy boxes "
            "in image pixels, a pair (boxes, scores), or an object with .boxes and .scores "
            "(such as edgepose.detectors.Detections).")
    if s is not None and s.shape != (len(b),):
        raise ValueError(
            f"The detector returned {len(b)} boxes and scores of shape {s.shape}; it must "
            f"return one score per box, shape ({len(b)},).")
    return (check_boxes(b) if len(b) else b), s


class Estimator:
    """Runs a pose model (and a person detector) on BGR images.

    The backend is chosen from the file type (.onnx: onnxruntime, .tflite:
    TFLite, .xml: OpenVINO) unless ``backend`` names one. The model's card
    (inside the file, or a preset) says how to feed and decode it.

    Top-down and single-person models: each box (from ``boxes=``, else the
    detector, else the whole image) is cropped with an aspect-fitted affine
    warp, and the decoded keypoints go back to image pixels through the
    inverse warp. The boxes are streamed in chunks of the model's batch size
    (:data:`DYNAMIC_BATCH_CHUNK` for a dynamic batch): each chunk is cropped,
    run and decoded before the next, so memory does not grow with the number
    of boxes. Bottom-up models run on the whole image.

    Args:
        model: path or registry name of the pose model file.
        detector: None; a path or registry name of a person detector file
            (built with ``detector_runtime`` and closed by :meth:`close`);
            or a ready detector the Estimator uses but does not close: a
            :class:`edgepose.detectors.PersonDetector` or any callable
            ``detector(image) -> boxes``, returning ``(M, 4)`` xyxy boxes
            in image pixels, a pair ``(boxes, scores)``, or an object with
            ``.boxes`` and ``.scores`` (checked on every call).
        preset: card preset of the pose model when it carries no card.
        detector_preset: card preset of a detector built from a file.
        runtime: the :class:`~edgepose.runtime.RuntimeOptions` of the pose
            model (and of a detector built from a file, unless
            ``detector_runtime`` is given).
        detector_runtime: different options for a detector built from a
            file (e.g. the detector on the CPU, the pose model on a GPU).
        backend, threads, device, providers, xnnpack: shortcuts for the
            fields of ``runtime`` (:meth:`RuntimeOptions.resolve`); giving
            both is a ValueError.
        padding: enlargement of person boxes before cropping.
        detection_threshold: minimum score of a person, for a detector
            built from a file; None: 0.3 for a person detector, the card's
            person threshold for a one-stage pose model used as detector.
        keypoint_set: convert results to this keypoint set (e.g. "coco17").
        score_threshold, iou_threshold, max_detections, input_size: for
            one-stage multi-person models (card task ``"onestage"``, e.g.
            YOLO-pose) only: the :class:`~edgepose.heads._one_stage.OneStageOptions`
            (None: the model card's defaults).

    Each result carries the milliseconds of its call's stages in
    ``result.timings_ms`` (detect, preprocess, inference, decode, total), so
    one Estimator may serve several threads (each backend runs one inference
    at a time, under its lock). ``last_timings`` is a deprecated alias that
    reads the result returned last, whichever thread got it.

    Raises:
        FileNotFoundError, ValueError, ImportError: at construction, for a
            missing file, a model without a usable card or with inputs and
            outputs that disagree with it, or a runtime that is not installed.
        TypeError: ``detector`` is neither a path nor a callable.
    """

    def __init__(self, model: str | Path, detector: str | Path | Callable[..., Any] | None = None,
                 *, preset: str | None = None, detector_preset: str | None = None,
                 runtime: RuntimeOptions | None = None,
                 detector_runtime: RuntimeOptions | None = None,
                 backend: str | None = None, threads: int | None = None,
                 device: str | None = None, providers: Any = None, xnnpack: bool = True,
                 padding: float = 1.25,
                 detection_threshold: float | None = None, keypoint_set: str | None = None,
                 score_threshold: float | None = None, iou_threshold: float | None = None,
                 max_detections: int | None = None, input_size: int | None = None) -> None:
        if not (np.isfinite(padding) and padding > 0):
            raise ValueError(f"padding must be a positive number, got {padding}.")
        self._one_stage = OneStageOptions(
            score_threshold=score_threshold, iou_threshold=iou_threshold,
            max_detections=max_detections, input_size=input_size)
        runtime = RuntimeOptions.resolve(runtime, backend=backend, threads=threads,
                                         device=device, providers=providers, xnnpack=xnnpack)
        from_file = isinstance(detector, (str, os.PathLike))
        if detector is not None and not from_file and not callable(detector):
            raise TypeError(
                "detector must be a detector file or name, a PersonDetector, or a callable "
                f"detector(image) -> boxes, got {type(detector).__name__}.")
        if detector_runtime is not None and not from_file:
            raise ValueError(
                "detector_runtime applies to a detector built from a file; the detector given "
                "is " + ("None" if detector is None else "a ready object, which runs as it was "
                         "built") + ". Drop detector_runtime=.")
        if detector_runtime is not None and not isinstance(detector_runtime, RuntimeOptions):
            raise TypeError("detector_runtime must be an edgepose.RuntimeOptions, got "
                            f"{type(detector_runtime).__name__}.")
        import_cv2()  # crops need OpenCV: fail here, not on the first frame
        #: The options the pose model runs with.
        self.runtime = runtime
        self._pose = LoadedModel(model, preset=preset, role="pose", runtime=runtime)
        self._detector = None
        self._owns_detector = False
        self._last_timings: dict[str, float] = {}
        try:
            card = self._pose.card
            if card.task == "detector":
                raise ValueError(
                    f"{Path(model).name} is a person detector (its card says task 'detector'); "
                    "pass it as detector=..., and a pose model as the first argument.")
            if card.task == "onestage":
                check_one_stage_options(self._pose, self._one_stage)
            elif card.head not in HEAD_DECODERS and card.head not in _BOTTOM_UP_HEADS:
                raise ValueError(
                    f"{Path(model).name} has head '{card.head}', which this version of edgepose "
                    f"cannot decode; supported heads: {sorted(HEAD_DECODERS) + list(_BOTTOM_UP_HEADS)}.")
            if card.task != "onestage" and self._one_stage.any_set:
                raise ValueError(
                    f"score_threshold, iou_threshold, max_detections and input_size apply to "
                    f"one-stage multi-person models; {Path(model).name} has task {card.task!r}. "
                    "Drop them (a person detector's threshold is detection_threshold=).")
            self._model_set = get_keypoint_set(card.keypoints)
            self._out_set = self._model_set if keypoint_set is None else get_keypoint_set(keypoint_set)
            if detector is not None:
                if card.finds_people:
                    kind = "bottom-up" if card.task == "bottomup" else "one-stage multi-person"
                    raise ValueError(
                        f"{Path(model).name} is a {kind} model: it finds every person itself "
                        "and takes no detector.")
                if from_file:
                    from edgepose.detectors import PersonDetector

                    self._detector = PersonDetector.from_file(
                        detector, preset=detector_preset, score_threshold=detection_threshold,
                        runtime=detector_runtime or runtime)
                    self._owns_detector = True
                else:
                    self._detector = detector
        except Exception:
            self.close()
            raise
        self.padding = float(padding)

    @property
    def last_timings(self) -> dict[str, float]:
        """Deprecated: use ``result.timings_ms``. The stage timings of the
        result returned last ({} before the first call). Not thread-safe:
        with several threads calling, it is whichever call finished last."""
        warnings.warn("Estimator.last_timings is deprecated: read result.timings_ms, the "
                      "timings of the call that made each result.", DeprecationWarning,
                      stacklevel=2)
        return dict(self._last_timings)

    @property
    def card(self):
        """The pose model's card."""
        return self._pose.card

    @property
    def keypoint_set(self) -> KeypointSet:
        """The keypoint set of the results."""
        return self._out_set

    def __call__(self, image: NDArray[np.uint8], *, boxes: ArrayLike | None = None) -> PoseResult:
        """Finds poses in a BGR uint8 ``(H, W, 3)`` image.

        Args:
            image: the image, as ``cv2.imread`` returns it.
            boxes: optional ``(N, 4)`` xyxy person boxes in image pixels;
                skips the detector.

        Returns:
            a :class:`PoseResult` in image pixels, with ``timings_ms``.

        Raises:
            ValueError: an invalid image or boxes, or a detector callable
                that returned something other than boxes.
        """
        image = check_image(image)
        watch = Stopwatch()
        result = self._run(image, boxes, watch)
        timings = watch.result()
        self._last_timings = timings
        return dataclasses.replace(result, timings_ms=timings)

    def _run(self, image: np.ndarray, boxes: ArrayLike | None, watch: Stopwatch) -> PoseResult:
        card = self._pose.card
        if card.finds_people:
            if boxes is not None:
                kind = "bottom-up" if card.task == "bottomup" else "one-stage"
                raise ValueError(f"A {kind} model finds people itself: boxes= is not accepted.")
            if card.task == "onestage":
                result = one_stage_runner(card.head)(self._pose, image, self._model_set, watch,
                                                     self._one_stage)
            else:
                result = self._bottom_up(image, watch)
            watch.lap("decode")
            return self._convert(result)
        box_scores = None
        padding = self.padding
        if boxes is not None:
            b = check_boxes(boxes)
        elif self._detector is not None:
            b, box_scores = _detected(self._detector(image))
            watch.lap("detect")
        else:
            # No detector: the whole frame is the one person's box.
            h, w = image.shape[:2]
            b = np.array([[0, 0, w, h]], np.float32)
            padding = 1.0
        if len(b) == 0:
            return PoseResult.empty(self._out_set, with_boxes=True)
        return self._convert(self._top_down(image, b, box_scores, padding, watch))

    def _top_down(self, image: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray | None,
                  padding: float, watch: Stopwatch) -> PoseResult:
        model, card = self._pose, self._pose.card
        in_h, in_w = model.input_hw
        centers, sizes = boxes_to_center_scale(boxes, in_w / in_h, padding)
        matrices = crop_matrices(centers, sizes, (in_h, in_w))
        inverse = invert_affine(matrices)
        step = model.max_batch or DYNAMIC_BATCH_CHUNK
        keypoints, scores = [], []
        for start in range(0, len(matrices), step):
            part = slice(start, start + step)
            crops = warp_crops(image, matrices[part], (in_h, in_w),
                               pad_value=card.input.pad_value)
            tensor = model.preprocess(crops)
            watch.lap("preprocess")
            outputs = model.run(tensor)
            watch.lap("inference")
            check_finite_outputs(outputs, model.name)
            kp, sc = decode_head(card.head, outputs, card.params, (in_h, in_w))
            keypoints.append(apply_affine(kp, inverse[part]))
            scores.append(sc)
            watch.lap("decode")
        kp = keypoints[0] if len(keypoints) == 1 else np.concatenate(keypoints)
        sc = scores[0] if len(scores) == 1 else np.concatenate(scores)
        person = _person_scores(sc, box_scores)
        result = PoseResult(kp, sc, self._model_set, boxes=boxes, person_scores=person)
        watch.lap("decode")
        return result

    def _bottom_up(self, image: np.ndarray, watch: Stopwatch) -> PoseResult:
        if self._pose.card.head == "paf":
            from edgepose.paf import run_paf

            return run_paf(self._pose, image, self._model_set, watch)
        from edgepose.posenet import run_posenet

        return run_posenet(self._pose, image, self._model_set, watch)

    def _convert(self, result: PoseResult) -> PoseResult:
        if self._out_set is self._model_set:
            return result
        kp, sc = convert_keypoints(result.keypoints, result.scores, self._model_set.name,
                                   self._out_set.name)
        return PoseResult(kp, sc, self._out_set, boxes=result.boxes,
                          person_scores=result.person_scores, track_ids=result.track_ids)

    def close(self) -> None:
        """Releases the runtimes of the models the Estimator opened (not a
        detector it was given). Idempotent."""
        owned = (getattr(self, "_detector", None) if getattr(self, "_owns_detector", False)
                 else None, getattr(self, "_pose", None))
        for part in owned:
            if part is not None:
                part.close()

    def __enter__(self) -> Estimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
