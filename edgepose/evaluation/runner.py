"""Evaluating a pose model over an annotated image folder.

:func:`evaluate_model` runs any callable ``image -> PoseResult`` (an
:class:`~edgepose.Estimator`, or your own function) over the images of a
COCO-format (COCO, CrowdPose, AIC) or MPII annotation file and returns an
:class:`EvaluationReport`: OKS AP/AR (COCO-format files), PCK at several
thresholds normalised by the ground-truth box, MPII PCKh (MPII files), mean
keypoint error and NME, and the model's latency per image.

With ``gt_boxes=True`` the model is called as ``model(image, boxes=B)`` with
the ground-truth person boxes (xyxy) of the image and must return one pose per
box, in order; PCK and errors then compare each pose with its own annotation.
Otherwise the model is called as ``model(image)`` and finds people itself (a
detector, a bottom-up or a single-person model); PCK and errors then compare
each annotated person with the detection COCO's matching assigns to it at
OKS >= 0.5, and a person no detection matched counts as missed (incorrect in
PCK, left out of the pixel errors).
"""
from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgepose.evaluation.annotations import (CocoKeypoints, KeypointDetections,
                                             coco_from_data, load_json, match_keypoint_set)
from edgepose.evaluation.coco import CocoMetrics, evaluate_coco
from edgepose.evaluation.mpii import MpiiAnnotations, MpiiPCKh, evaluate_pckh, load_mpii
from edgepose.evaluation.pck import KeypointErrors, PCKResult, bbox_size, keypoint_errors, pck
from edgepose.keypoints import (MPII16, KeypointSet, can_convert, convert_keypoints,
                                get_keypoint_set)
from edgepose.runtime import RuntimeOptions

__all__ = ["EvaluationReport", "evaluate_model", "load_annotations", "eval_estimator",
           "ONE_STAGE_EVAL_SCORE_THRESHOLD"]

#: The person score threshold of a one-stage model (e.g. YOLO-pose) built for
#: evaluation when the caller gives none, as ``yolo val`` uses: AP ranks people
#: by score over the whole precision-recall curve, so low-scoring people count.
ONE_STAGE_EVAL_SCORE_THRESHOLD = 0.001

PoseModel = Callable[..., Any]


@dataclass(frozen=True, eq=False)
class EvaluationReport:
    """What :func:`evaluate_model` measured.

    Attributes:
        annotations: the annotation file.
        mode: "gt-boxes" or "model-boxes".
        keypoint_set: the dataset's keypoint set name (predictions were
            converted to it when the model's differs), or "".
        keypoint_names: the K names.
        num_images, num_people: images run; annotated people compared.
        latency_ms: ``(num_images,)`` wall time of each model call.
        coco: OKS AP/AR (COCO-format annotations), else None.
        pck: PCK at each alpha, normalised by the ground-truth box (COCO-format).
        pckh: MPII PCKh (MPII annotations), else None.
        errors: pixel errors and NME (box-normalised; head-normalised for MPII).
    """

    annotations: str
    mode: str
    keypoint_set: str
    keypoint_names: tuple[str, ...]
    num_images: int
    num_people: int
    latency_ms: np.ndarray
    coco: CocoMetrics | None
    pck: tuple[PCKResult, ...]
    pckh: MpiiPCKh | None
    errors: KeypointErrors | None

    def summary(self) -> dict[str, float]:
        """The headline numbers, flat: name -> value."""
        out: dict[str, float] = {}
        if self.coco is not None:
            out.update({n: self.coco[n] for n in self.coco.names()})
        for r in self.pck:
            out[r.name] = r.mean
        if self.pckh is not None:
            out[f"PCKh@{self.pckh.pckh.alpha:g}"] = self.pckh.mean
            out[f"PCKh@{self.pckh.pckh_01.alpha:g}"] = self.pckh.mean_01
        if self.errors is not None:
            out["error_px"] = self.errors.mean_px
            out["NME"] = self.errors.nme
        if self.latency_ms.size:
            out["latency_ms_p50"] = float(np.percentile(self.latency_ms, 50))
            out["latency_ms_p90"] = float(np.percentile(self.latency_ms, 90))
        return out

    def to_dict(self, per_keypoint: bool = False) -> dict[str, Any]:
        """JSON-ready: the summary, then each metric family in detail."""
        def num(x: float) -> float | None:
            return None if not np.isfinite(x) else round(float(x), 6)

        out: dict[str, Any] = {
            "annotations": self.annotations, "mode": self.mode,
            "keypoint_set": self.keypoint_set, "num_images": self.num_images,
            "num_people": self.num_people,
            "summary": {k: num(v) for k, v in self.summary().items()},
        }
        if self.coco is not None:
            coco = self.coco.to_dict()
            if not per_keypoint:
                coco.pop("per_keypoint", None)
            out["coco"] = coco
        if self.pck:
            out["pck"] = []
            for r in self.pck:
                d = r.to_dict()
                if not per_keypoint:
                    d.pop("per_keypoint", None)
                out["pck"].append(d)
        if self.pckh is not None:
            d = self.pckh.to_dict()
            if not per_keypoint:
                d.pop("per_keypoint", None)
            out["pckh"] = d
        if self.errors is not None:
            d = self.errors.to_dict()
            if not per_keypoint:
                d.pop("per_keypoint_px", None)
            out["errors"] = d
        return out

    def format_table(self, per_keypoint: bool = False) -> str:
        """A plain-text table of :meth:`summary` (and per keypoint)."""
        lines = [f"{self.annotations}: {self.num_images} images, {self.num_people} people, "
                 f"{self.mode}"]
        if self.coco is not None:
            lines[0] += f", OKS area from {self.coco.area_source}"
        rows = self.summary()
        width = max((len(k) for k in rows), default=8)
        lines.append(f"{'metric':<{width}}  value")
        lines.append(f"{'-' * width}  --------")
        for k, v in rows.items():
            text = "n/a" if not np.isfinite(v) else (f"{v:8.3f}" if "latency" in k or "px" in k
                                                     else f"{v:8.4f}")
            lines.append(f"{k:<{width}}  {text}")
        if per_keypoint:
            lines.append("")
            lines.extend(self._keypoint_table())
        return "\n".join(lines)

    def _keypoint_table(self) -> list[str]:
        columns: list[tuple[str, np.ndarray, str]] = []
        if self.coco is not None and self.coco.per_keypoint is not None:
            pk = self.coco.per_keypoint
            columns.append(("OKS sim", pk.similarity, "{:8.3f}"))
        for r in self.pck:
            columns.append((r.name, r.per_keypoint, "{:8.3f}"))
        if self.pckh is not None:
            columns.append((self.pckh.pckh.name, self.pckh.pckh.per_keypoint, "{:8.3f}"))
        if self.errors is not None:
            columns.append(("err px", self.errors.per_keypoint_px, "{:8.1f}"))
            columns.append(("count", self.errors.counts, "{:8d}"))
        width = max((len(n) for n in self.keypoint_names), default=8)
        head = f"{'keypoint':<{width}}" + "".join(f"  {c[0]:>8}" for c in columns)
        lines = [head, "-" * len(head)]
        for i, name in enumerate(self.keypoint_names):
            cells = []
            for _, values, fmt in columns:
                v = values[i]
                cells.append("     n/a" if (np.issubdtype(type(v), np.floating) and not np.isfinite(v))
                             else fmt.format(v))
            lines.append(f"{name:<{width}}" + "".join(f"  {c:>8}" for c in cells))
        return lines


def load_annotations(source: str | Path) -> CocoKeypoints | MpiiAnnotations:
    """A COCO-format (object) or MPII (list) annotation file, by its content."""
    data = load_json(source, "annotation")
    if not isinstance(data, list):
        return coco_from_data(data, str(source) if isinstance(source, (str, Path)) else "<dict>")
    ann = load_mpii(data)
    if not isinstance(source, (str, Path)):  # parsed content: "<list>"
        return ann
    return dataclasses.replace(ann, source=str(source))


def _dataset_set(names: tuple[str, ...], keypoint_set: str | KeypointSet | None
                 ) -> KeypointSet | None:
    if keypoint_set is not None:
        return get_keypoint_set(keypoint_set) if isinstance(keypoint_set, str) else keypoint_set
    return match_keypoint_set(names)


def _to_dataset(result: Any, target: KeypointSet | None, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(keypoints, scores) of a PoseResult in the dataset's keypoint set."""
    if not hasattr(result, "keypoints") or not hasattr(result, "keypoint_set"):
        raise TypeError(f"the model must return a PoseResult, got {type(result).__name__}.")
    src = result.keypoint_set
    if target is None or src.names == target.names:
        if result.keypoints.shape[1] != k:
            raise ValueError(f"the model gives {result.keypoints.shape[1]} keypoints "
                             f"({src.name}); the annotations have {k}. Pass keypoint_set= to "
                             "say which registered set the annotations use.")
        return result.keypoints, result.scores
    if not can_convert(src, target):
        raise ValueError(f"the model's keypoints ({src.name}) cannot be converted to the "
                         f"dataset's ({target.name}).")
    return convert_keypoints(result.keypoints, result.scores, src, target)


def _read(path: Path) -> np.ndarray:
    from edgepose.images import import_cv2

    cv2 = import_cv2()
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path} could not be read as an image.")
    return image


def _check_files(folder: Path, files: list[str]) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist.")
    missing = [f for f in dict.fromkeys(files) if not (folder / f).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise FileNotFoundError(f"{len(missing)} annotated images are not in {folder}: "
                                f"{', '.join(missing[:3])}{more}.")


def _progress(progress: bool | Callable[[int, int], None], total: int, label: str):
    if callable(progress):
        return progress
    if not progress:
        return None
    from edgepose.progress import ProgressBar

    bar = ProgressBar(label, total=total, unit="images")

    def tick(done: int, total: int) -> None:
        bar.update(done - bar.count)
        if done >= total:
            bar.close()

    return tick


def _call(model: PoseModel, image: np.ndarray, boxes: np.ndarray | None, n_expected: int | None,
          latency: list[float]) -> Any:
    t = time.perf_counter()
    result = model(image) if boxes is None else model(image, boxes=boxes)
    latency.append((time.perf_counter() - t) * 1e3)
    if n_expected is not None and len(result) != n_expected:
        raise ValueError(f"the model returned {len(result)} poses for {n_expected} boxes; with "
                         "gt_boxes it must return one pose per box, in order.")
    return result


def evaluate_model(
    model: PoseModel | str | os.PathLike[str],
    annotations: str | Path | CocoKeypoints | MpiiAnnotations,
    images: str | Path,
    *,
    detector: str | os.PathLike[str] | Callable[..., Any] | None = None,
    runtime: RuntimeOptions | None = None,
    gt_boxes: bool = False,
    score_threshold: float | None = None,
    keypoint_set: str | KeypointSet | None = None,
    sigmas: Any = None,
    area_source: str = "auto",
    pck_alphas: tuple[float, ...] = (0.05, 0.1, 0.2),
    per_keypoint: bool = False,
    progress: bool | Callable[[int, int], None] = False,
) -> EvaluationReport:
    """Runs ``model`` over the annotated images and measures its accuracy.

    Args:
        model: ``model(image)`` (or ``model(image, boxes=B)`` with
            ``gt_boxes``) returning a :class:`~edgepose.results.PoseResult`
            for a BGR uint8 image; an :class:`~edgepose.Estimator` is one.
            Or a model file or registry name: an Estimator is built for it
            (with ``detector`` and ``runtime``) and closed at the end.
        detector: the person detector of an Estimator built from a file
            (see :class:`~edgepose.Estimator`).
        runtime: the :class:`~edgepose.runtime.RuntimeOptions` of an
            Estimator built from a file.
        annotations: a COCO-format or MPII annotation file, or loaded
            annotations (:func:`load_annotations`).
        images: the folder holding the annotated images.
        gt_boxes: feed the ground-truth person boxes (required for MPII).
        score_threshold: for a one-stage model built from a file: its
            person score threshold; None: 0.001
            (:data:`ONE_STAGE_EVAL_SCORE_THRESHOLD`, as ``yolo val``), not
            the card's default (see :func:`eval_estimator`).
        keypoint_set: the dataset's keypoint set when its names are not
            recognised; predictions of another set are converted to it.
        sigmas: OKS sigmas, overriding the keypoint set's.
        area_source: see :func:`~edgepose.evaluation.evaluate_coco`.
        pck_alphas: PCK thresholds (box-normalised), COCO-format files.
        per_keypoint: compute the per-keypoint breakdowns.
        progress: True for a progress bar on stderr, or a callable
            ``(done, total)``.

    Returns:
        :class:`EvaluationReport`.

    Raises:
        FileNotFoundError: the annotation file, the image folder or an
            annotated image is missing.
        ValueError: annotations with nothing to evaluate (no person with a
            labelled keypoint), MPII without ``gt_boxes``, keypoints that
            cannot be matched to the dataset, a model that returns the wrong
            number of poses for the boxes, ``detector``, ``runtime`` or
            ``score_threshold`` with a ready model.
    """
    if not isinstance(model, (str, os.PathLike)):
        if detector is not None or runtime is not None or score_threshold is not None:
            raise ValueError(
                "detector=, score_threshold= and runtime= build an Estimator for a model file "
                "or name; the model "
                f"given is a ready {type(model).__name__}, which runs as it was built. Build it "
                "with them, or pass the model's file.")
        return _evaluate(model, annotations, images, gt_boxes, keypoint_set, sigmas,
                         area_source, pck_alphas, per_keypoint, progress)
    with eval_estimator(model, detector, runtime=runtime,
                        score_threshold=score_threshold) as est:
        return _evaluate(est, annotations, images, gt_boxes, keypoint_set, sigmas, area_source,
                         pck_alphas, per_keypoint, progress)


def eval_estimator(model: str | os.PathLike[str], detector: Any = None, *,
                   score_threshold: float | None = None, **options: Any) -> Any:
    """The :class:`~edgepose.Estimator` that evaluation builds for a model file.

    A one-stage model (card task ``"onestage"``, e.g. YOLO-pose) gets
    ``score_threshold`` (None: :data:`ONE_STAGE_EVAL_SCORE_THRESHOLD`,
    0.001, as ``yolo val`` does), not its card's default meant for
    applications (0.25 for YOLO-pose). Other models take no score threshold.

    Args:
        model: the pose model file or registry name.
        detector: as for the Estimator.
        score_threshold: a one-stage model's person score threshold.
        options: further :class:`~edgepose.Estimator` keywords (``runtime``,
            ``preset``, ``detector_preset``, ``padding``, ...); the local
            eval and the device lab's workers build it here alike.

    Returns:
        the Estimator (the caller closes it).

    Raises:
        ValueError: ``score_threshold`` for a model that is not one-stage,
            and whatever the Estimator raises.
    """
    from edgepose.estimator import Estimator

    kwargs = dict(options)
    est = Estimator(model, detector, **kwargs)
    if est.card.task != "onestage":
        if score_threshold is not None:
            est.close()
            raise ValueError(
                f"score_threshold applies to one-stage models (card task 'onestage', e.g. "
                f"YOLO-pose); {model} has task {est.card.task!r}. Drop score_threshold.")
        return est
    est.close()  # rebuilt with the evaluation threshold (the card said one-stage)
    threshold = ONE_STAGE_EVAL_SCORE_THRESHOLD if score_threshold is None else score_threshold
    return Estimator(model, detector, score_threshold=threshold, **kwargs)


def _evaluate(model: PoseModel, annotations, images, gt_boxes, keypoint_set, sigmas,
              area_source, pck_alphas, per_keypoint, progress) -> EvaluationReport:
    ann = annotations if isinstance(annotations, (CocoKeypoints, MpiiAnnotations)) \
        else load_annotations(annotations)
    _check_not_empty(ann)
    folder = Path(images)
    if isinstance(ann, MpiiAnnotations):
        if not gt_boxes:
            raise ValueError("MPII annotations are single-person with a centre and scale per "
                             "person: evaluate them with gt_boxes=True (--gt-boxes).")
        return _evaluate_mpii(model, ann, folder, per_keypoint, progress)
    return _evaluate_coco_files(model, ann, folder, gt_boxes, keypoint_set, sigmas, area_source,
                                pck_alphas, per_keypoint, progress)


def _check_not_empty(ann: CocoKeypoints | MpiiAnnotations) -> None:
    """Every metric needs one annotated person: refuses annotations without
    (all metrics would be n/a)."""
    if isinstance(ann, MpiiAnnotations):
        if len(ann) == 0:
            raise ValueError(f"nothing to evaluate: {ann.source} has no annotated person.")
        return
    evaluable = (~ann.iscrowd & (ann.num_keypoints > 0)
                 & np.isin(ann.category_ids, ann.categories))
    if not evaluable.any():
        raise ValueError(
            f"nothing to evaluate: {ann.source} has {ann.num_images} images and {len(ann)} "
            "annotations, none of them a person with a labelled keypoint (not crowd, "
            "num_keypoints > 0): every metric would be n/a.")


def _evaluate_coco_files(model, ann: CocoKeypoints, folder: Path, gt_boxes: bool, keypoint_set,
                         sigmas, area_source, pck_alphas, per_keypoint, progress
                         ) -> EvaluationReport:
    target = _dataset_set(ann.keypoint_names, keypoint_set)
    _check_files(folder, list(ann.image_files))
    bar = _progress(progress, ann.num_images, "eval")
    results: dict[int, Any] = {}
    latency: list[float] = []
    eligible = ann.eligible_for_boxes()
    for i, (image_id, file) in enumerate(zip(ann.image_ids.tolist(), ann.image_files)):
        boxes = image_boxes(ann, i, gt_boxes, eligible)
        if boxes is None or len(boxes):
            results[image_id] = predict_image(model, _read(folder / file), boxes, target,
                                              ann.num_keypoint_channels, latency)
        if bar is not None:
            bar(i + 1, ann.num_images)
    return score_coco(ann, results, np.array(latency), gt_boxes=gt_boxes, target=target,
                      sigmas=sigmas, area_source=area_source, pck_alphas=pck_alphas,
                      per_keypoint=per_keypoint)


def image_boxes(ann: CocoKeypoints, index: int, gt_boxes: bool,
                eligible: np.ndarray | None = None) -> np.ndarray | None:
    """The boxes the model is given for image ``index`` (file order): None
    without ``gt_boxes`` (the model finds people), else the ``(R, 4)`` xyxy
    float32 ground-truth boxes of its evaluable people (R may be 0: the image
    is then not run). ``eligible``: ``ann.eligible_for_boxes()``, if at hand."""
    if not gt_boxes:
        return None
    if eligible is None:
        eligible = ann.eligible_for_boxes()
    rows = np.flatnonzero(eligible & (ann.image_index == index))
    return ann.boxes[rows].astype(np.float32)


def predict_image(model: PoseModel, image: np.ndarray, boxes: np.ndarray | None,
                  target: KeypointSet | None, k: int, latency: list[float]) -> Any:
    """One image's poses, in the dataset's keypoint set: what every evaluation
    (local, or sharded over a device lab by :mod:`edgepose.fleet.eval`) runs
    per image.

    Args:
        model: as :func:`evaluate_model`'s.
        image: ``(H, W, 3)`` BGR uint8.
        boxes: ``(R, 4)`` xyxy ground-truth boxes (:func:`image_boxes`), or
            None for the model to find people itself.
        target: the dataset's keypoint set (None: the model's is kept).
        k: the dataset's keypoint count.
        latency: the model call's wall time (ms) is appended to it.

    Returns:
        a :class:`~edgepose.results.PoseResult` (one pose per box, in order,
        with ``boxes``).

    Raises:
        ValueError, TypeError: as :func:`evaluate_model`.
    """
    result = _call(model, image, boxes, None if boxes is None else len(boxes), latency)
    kp, sc = _to_dataset(result, target, k)
    return _with(result, kp, sc, target)


def score_coco(ann: CocoKeypoints, results: dict[int, Any], latency_ms: np.ndarray, *,
               gt_boxes: bool, target: KeypointSet | None, sigmas: Any = None,
               area_source: str = "auto", pck_alphas: tuple[float, ...] = (0.05, 0.1, 0.2),
               per_keypoint: bool = False) -> EvaluationReport:
    """The report of the predictions of every image.

    Args:
        ann: the COCO-format annotations.
        results: ``{image_id: PoseResult}`` from :func:`predict_image`, in the
            annotations' image order (detections are ranked and matched in
            this order, as pycocotools does); with ``gt_boxes``, images
            without evaluable people are left out.
        latency_ms: ``(num_images,)`` model call times, in the same order.
        gt_boxes, sigmas, area_source, pck_alphas, per_keypoint: as
            :func:`evaluate_model`.
        target: the dataset's keypoint set (``_dataset_set``).

    Returns:
        :class:`EvaluationReport`.
    """
    k = ann.num_keypoint_channels
    names = target.names if target is not None else ann.keypoint_names
    eligible = ann.eligible_for_boxes()
    boxes_all = ann.boxes
    detections = KeypointDetections.from_results(results) if results else KeypointDetections.empty(k)
    if len(detections) and detections.keypoints.shape[1] != k:
        raise ValueError(f"predictions have {detections.keypoints.shape[1]} keypoints, the "
                         f"annotations {k}.")
    with_sigmas = target if target is not None and target.sigmas is not None else None
    coco = evaluate_coco(ann, detections, sigmas=sigmas, keypoint_set=with_sigmas,
                         area_source=area_source, per_keypoint=per_keypoint)

    rows = np.flatnonzero(eligible)
    pred = np.full((len(rows), k, 2), np.nan)
    if gt_boxes:
        # each image's poses follow its evaluable rows, in order
        index = {image_id: i for i, image_id in enumerate(ann.image_ids.tolist())}
        for image_id, result in results.items():
            image_rows = np.flatnonzero(eligible & (ann.image_index == index[image_id]))
            pred[np.searchsorted(rows, image_rows)] = result.keypoints
    else:
        # the detections' keypoints as the model gave them (not found: NaN,
        # left out of the errors and incorrect for PCK), in detection order
        found_kp = [res.keypoints for res in results.values() if len(res)]
        pred_kp = np.concatenate(found_kp) if found_kp else np.zeros((0, k, 2))
        where = {int(g): int(d) for g, d in coco.matches}
        for j, r in enumerate(rows):
            if int(r) in where:
                pred[j] = pred_kp[where[int(r)]]
    gt = ann.keypoints[rows, :, :2]
    mask = ann.keypoints[rows, :, 2] > 0
    size = bbox_size(boxes_all[rows])
    pcks = tuple(pck(pred, gt, mask, size, a, normaliser_name="bbox", names=names)
                 for a in pck_alphas)
    errors = keypoint_errors(pred, gt, mask, size, names=names)
    return EvaluationReport(
        annotations=ann.source, mode="gt-boxes" if gt_boxes else "model-boxes",
        keypoint_set=target.name if target is not None else "", keypoint_names=tuple(names),
        num_images=ann.num_images, num_people=len(rows), latency_ms=np.asarray(latency_ms),
        coco=coco, pck=pcks, pckh=None, errors=errors)


def _with(result: Any, kp: np.ndarray, sc: np.ndarray, target: KeypointSet | None) -> Any:
    if kp is result.keypoints:
        return result
    from edgepose.results import PoseResult

    return PoseResult(kp, sc, target, boxes=result.boxes, person_scores=result.person_scores)


def _evaluate_mpii(model, ann: MpiiAnnotations, folder: Path, per_keypoint, progress
                   ) -> EvaluationReport:
    _check_files(folder, list(ann.image_files))
    files = list(dict.fromkeys(ann.image_files))
    boxes = ann.boxes
    pred = np.full(ann.joints.shape, np.nan)
    bar = _progress(progress, len(files), "eval")
    latency: list[float] = []
    for i, file in enumerate(files):
        rows = np.flatnonzero(np.array(ann.image_files) == file)
        result = _call(model, _read(folder / file), boxes[rows].astype(np.float32), len(rows),
                       latency)
        kp, _ = _to_dataset(result, MPII16, 16)
        pred[rows] = kp
        if bar is not None:
            bar(i + 1, len(files))
    pckh = evaluate_pckh(pred, ann)
    errors = keypoint_errors(pred, ann.joints, ann.visible, ann.head_sizes(), names=MPII16.names)
    return EvaluationReport(
        annotations=ann.source, mode="gt-boxes", keypoint_set=MPII16.name,
        keypoint_names=MPII16.names, num_images=len(files), num_people=len(ann),
        latency_ms=np.array(latency), coco=None, pck=(), pckh=pckh, errors=errors)
