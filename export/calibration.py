"""Calibration sets: model input tensors from real images, preprocessed exactly as the card says.

INT8 quantization calibrates activation ranges on tensors the model will
really see, and the parity report compares models on them. Both therefore
use the runtime's own preprocessing, not a copy of it:

* top-down and single-person models (``task`` ``"topdown"`` / ``"single"``):
  aspect-fitted affine crops around person boxes (:mod:`edgepose.transforms`,
  as :class:`edgepose.Estimator` crops them, boxes enlarged by ``padding``),
  the boxes coming from a COCO-style annotation file, a ``{file name: boxes}``
  mapping, or a person detector (:class:`edgepose.detectors.PersonDetector`);
  without any, the whole image is the one box, as the Estimator does;
* bottom-up models: the whole image, letterboxed or stretched to the input
  size (:func:`edgepose.detectors.letterbox` / :func:`~edgepose.detectors.stretch`),
  as :func:`edgepose.paf.run_paf` and :func:`edgepose.posenet.run_posenet` do
  (``"fit_height"`` models, whose width follows each image, get the card's
  nominal size, filled from the top left, so that the tensors stack);
* then the card's colour order, mean/std, dtype and layout, exactly as
  :meth:`edgepose.model.LoadedModel.preprocess` (:func:`preprocess_crops`).

Fewer than :data:`MIN_RECOMMENDED` tensors give a warning: a handful of
images calibrates INT8 ranges poorly.
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgepose._validate import is_int
from edgepose.card import ModelCard
from edgepose.model import preprocess_crops
from edgepose_export.api import CalibrationSet

__all__ = ["MIN_RECOMMENDED", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "calibration_set",
           "model_inputs", "preprocess_crops", "read_annotation_boxes"]

#: Fewer calibration tensors than this give a warning.
MIN_RECOMMENDED = 100
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
_TOP_DOWN_TASKS = ("topdown", "single")


def model_inputs(image: NDArray[np.uint8], card: ModelCard, boxes: ArrayLike | None = None,
                 *, padding: float = 1.25) -> np.ndarray:
    """The model input tensors the runtime makes from one image.

    Top-down and single-person cards: one crop per xyxy box (``(M, 4)``,
    image pixels, enlarged by ``padding``), or the whole image (no padding)
    when ``boxes`` is None, as :class:`edgepose.Estimator` does. Bottom-up
    cards: the whole image, letterboxed (centred unless ``head_params``
    says ``align``) or stretched as the card's ``input.resize`` says
    (``"fit_height"``: letterboxed at the top left to the card's size).

    Returns:
        ``(M, ...)`` tensors in the card's layout and dtype (M may be 0).

    Raises:
        ValueError: boxes for a bottom-up card, or invalid boxes.
        TypeError: an image that is not BGR uint8 ``(H, W, 3)``.
    """
    from edgepose.images import check_image

    image = check_image(image)
    spec = card.input
    if card.task in _TOP_DOWN_TASKS:
        from edgepose.transforms import boxes_to_center_scale, crop_matrices, warp_crops

        in_h, in_w = spec.size
        if boxes is None:
            h, w = image.shape[:2]
            boxes, padding = np.array([[0, 0, w, h]], np.float32), 1.0
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            shape = ((0, 3, in_h, in_w) if spec.layout == "NCHW" else (0, in_h, in_w, 3))
            return np.zeros(shape, np.uint8 if spec.dtype == "uint8" else np.float32)
        centers, sizes = boxes_to_center_scale(boxes, in_w / in_h, padding)
        matrices = crop_matrices(centers, sizes, (in_h, in_w))
        crops = warp_crops(image, matrices, (in_h, in_w), pad_value=spec.pad_value)
        return preprocess_crops(crops, spec)
    if boxes is not None:
        raise ValueError(
            f"The card describes a {card.task} model, which takes whole images: person boxes "
            "are not used. Drop boxes= (and the detector).")
    from edgepose.detectors import letterbox, stretch

    if spec.resize == "stretch":
        canvas, _ = stretch(image, spec.size)
    else:
        # "fit_height" models take any width; tensors that stack need one size:
        # the card's, filled from the top-left as the runtime fills it
        align = ("topleft" if spec.resize == "fit_height"
                 else getattr(card.params, "align", "center"))
        canvas, _, _ = letterbox(image, spec.size, pad_value=spec.pad_value, align=align)
    return preprocess_crops(canvas[None], spec)


def read_annotation_boxes(path: str | os.PathLike, *, with_keypoints_only: bool = True
                          ) -> dict[str, NDArray[np.float32]]:
    """Person boxes of a COCO-style annotation file, by image file name.

    Keeps annotations that are not crowds, of category 1 (COCO's person)
    when the file has categories, with a positive width and height and,
    when ``with_keypoints_only`` and the file counts them, at least one
    labelled keypoint (MMPose's rule for ground-truth boxes).

    Returns:
        image file name (without folders) -> ``(M, 4)`` float32 xyxy boxes.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not JSON, or not a COCO dataset (``images`` and
            ``annotations`` lists).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No annotation file at {path}.")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a JSON file ({exc}).") from None
    if not (isinstance(data, Mapping) and isinstance(data.get("images"), list)
            and isinstance(data.get("annotations"), list)):
        raise ValueError(
            f"{path} is not a COCO-style annotation file: expected an object with 'images' "
            "and 'annotations' lists (a detection-results list has no file names; use "
            "detector= instead).")
    names = {img["id"]: Path(img["file_name"]).name for img in data["images"]}
    person = 1 if data.get("categories") else None
    found: dict[str, list[list[float]]] = {}
    for ann in data["annotations"]:
        if ann.get("iscrowd", 0) or (person is not None and ann.get("category_id", 1) != person):
            continue
        if with_keypoints_only and ann.get("num_keypoints", 1) <= 0:
            continue
        x, y, w, h = (float(v) for v in ann["bbox"])
        if w <= 0 or h <= 0 or ann.get("image_id") not in names:
            continue
        found.setdefault(names[ann["image_id"]], []).append([x, y, x + w, y + h])
    return {name: np.asarray(b, np.float32).reshape(-1, 4) for name, b in found.items()}


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _images(source: Path, max_images: int) -> tuple[Iterator[tuple[str, np.ndarray]], int | None]:
    """(name, BGR image) of a folder, an image or a video; and the count when known."""
    from edgepose.images import import_cv2

    cv2 = import_cv2()
    if source.is_dir():
        files = _image_files(source)
        if not files:
            raise ValueError(
                f"No images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {source}.")

        def read() -> Iterator[tuple[str, np.ndarray]]:
            for f in files:
                image = cv2.imread(str(f), cv2.IMREAD_COLOR)
                if image is None:
                    warnings.warn(f"{f} could not be read as an image; skipped.", stacklevel=3)
                    continue
                yield f.name, image

        return read(), len(files)
    if source.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(source), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{source} could not be read as an image.")
        return iter([(source.name, image)]), 1
    if source.suffix.lower() in VIDEO_SUFFIXES:
        cap = cv2.VideoCapture(str(source))
        if not cap.isOpened():
            cap.release()
            raise ValueError(f"{source} could not be opened as a video.")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        step = max(1, count // max_images) if count else 1

        def frames() -> Iterator[tuple[str, np.ndarray]]:
            index = 0
            try:
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    if index % step == 0:
                        yield f"frame_{index:06d}", frame
                    index += 1
            finally:
                cap.release()

        return frames(), (None if count is None else -(-count // step))
    raise ValueError(
        f"{source} is neither a folder of images, an image nor a video "
        f"({', '.join(sorted(VIDEO_SUFFIXES))}).")


def calibration_set(source: str | os.PathLike, card: ModelCard, *,
                    boxes: str | os.PathLike | Mapping[str, ArrayLike] | None = None,
                    detector: Any = None, max_images: int = 300, padding: float = 1.25,
                    progress: bool = True, warn_below: int = MIN_RECOMMENDED) -> CalibrationSet:
    """Model input tensors from a folder of images (or one image, or a video).

    Args:
        source: a folder of images, an image, or a video file (frames are
            sampled evenly when the video is longer than ``max_images``).
        card: the model's card: task, input size, colour, mean/std, dtype,
            layout (see the module docstring for how each task is fed).
        boxes: top-down models: person boxes, as the path of a COCO-style
            annotation file (see :func:`read_annotation_boxes`; images
            without annotations are skipped) or a mapping from image file
            name to ``(M, 4)`` xyxy boxes.
        detector: top-down models: a person detector, a
            :class:`~edgepose.detectors.PersonDetector` or a model file or
            registry name opened with ``PersonDetector.from_file`` (and closed
            afterwards). Ignored images: those where it finds nobody.
        max_images: at most this many tensors (crops for top-down models).
        padding: enlargement of person boxes before cropping (the
            Estimator's default).
        progress: a progress bar on stderr.
        warn_below: warn when fewer tensors than this are made (0 for sets
            that only feed parity reports).

    Returns:
        a :class:`CalibrationSet` whose ``tensors`` are ``(M, ...)`` in the
        card's layout and dtype, ``M <= max_images``.

    Warns:
        UserWarning: fewer than ``warn_below`` (:data:`MIN_RECOMMENDED`) tensors; a top-down
            card with neither boxes nor a detector (whole images are used).

    Raises:
        ValueError: both ``boxes`` and ``detector``, boxes or a detector for
            a bottom-up or detector card, a source that is not images or a
            video, or no tensor at all (e.g. no image has annotations).
        FileNotFoundError: ``source`` or the annotation file does not exist.
    """
    if not isinstance(card, ModelCard):
        raise TypeError(f"card must be a ModelCard, got {type(card).__name__}.")
    if not is_int(max_images) or max_images < 1:
        raise ValueError(f"max_images must be a positive int, got {max_images!r}.")
    if card.task == "detector":
        raise ValueError(
            "calibration_set makes pose-model inputs; the card describes a person detector.")
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(
            f"The calibration source {source} does not exist (expected a folder of images, "
            "an image or a video).")
    if boxes is not None and detector is not None:
        raise ValueError("Pass boxes= or detector=, not both.")
    top_down = card.task in _TOP_DOWN_TASKS
    if not top_down and (boxes is not None or detector is not None):
        raise ValueError(
            f"The card describes a {card.task} model, which takes whole images: boxes= and "
            "detector= are for top-down models. Drop them.")

    table: Mapping[str, ArrayLike] | None = None
    origin = "whole images"
    if isinstance(boxes, (str, os.PathLike)):
        table = read_annotation_boxes(boxes)
        origin = f"boxes from {Path(boxes).name}"
    elif boxes is not None:
        if not isinstance(boxes, Mapping):
            raise TypeError(
                "boxes must be the path of a COCO-style annotation file or a mapping from "
                f"image file name to (M, 4) xyxy boxes, got {type(boxes).__name__}.")
        table, origin = boxes, "given boxes"
    if table is not None and not source.is_dir() and source.suffix.lower() in VIDEO_SUFFIXES:
        raise ValueError("Annotation boxes name image files; a video needs detector= instead.")

    from edgepose.progress import ProgressBar

    frames, total = _images(source, max_images)
    if top_down and table is None and detector is None:
        warnings.warn(
            f"No person boxes for the top-down model {card.name!r}: each whole image is "
            "used as one crop. Pass boxes= (COCO annotations) or detector= so calibration "
            "sees person crops like the runtime's.", stacklevel=2)
    owned = None
    if detector is not None:
        if isinstance(detector, (str, os.PathLike)):
            from edgepose.detectors import PersonDetector

            origin = f"boxes from the detector {Path(detector).name}"
            owned = detector = PersonDetector.from_file(detector)
        else:
            origin = "boxes from the detector"

    bar = ProgressBar("calibration images", total=total,
                      enabled=progress, unit="images")
    chunks: list[np.ndarray] = []
    count = used = 0
    try:
        for name, image in frames:
            bar.update()
            if table is not None:
                if name not in table:
                    continue
                image_boxes = np.asarray(table[name], np.float32).reshape(-1, 4)
            elif detector is not None:
                image_boxes = detector(image).boxes
            else:
                image_boxes = None
            if image_boxes is not None and len(image_boxes) == 0:
                continue
            tensors = model_inputs(image, card, image_boxes if top_down else None,
                                   padding=padding)[:max_images - count]
            chunks.append(tensors)
            count += len(tensors)
            used += 1
            if count >= max_images:
                break
    finally:
        bar.close()
        if owned is not None:
            owned.close()
    if count == 0:
        hint = (" None of its images has an annotation in the annotation file: do the file "
                "names match?" if table is not None else "")
        raise ValueError(f"No calibration tensors could be made from {source}.{hint}")
    tensors = np.concatenate(chunks)
    kind = "crops" if top_down else "images"
    if count < warn_below:
        warnings.warn(
            f"Only {count} calibration {kind} from {used} image(s) in {source}: INT8 ranges "
            f"calibrated on fewer than {warn_below} are unreliable. Add images.",
            stacklevel=2)
    description = f"{source} ({used} images, {count} {kind}, {origin})"
    return CalibrationSet(tensors=tensors, source=description)
