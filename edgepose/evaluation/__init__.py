"""Accuracy evaluation on the device runtime: OKS AP/AR, PCK, PCKh, errors.

NumPy only (no pycocotools, torch or MMCV at run time)::

    from edgepose.evaluation import (load_coco_keypoints, KeypointDetections,
                                     evaluate_coco, evaluate_model)

    gt = load_coco_keypoints("person_keypoints_val2017.json")
    dt = KeypointDetections.from_coco("results.json")
    metrics = evaluate_coco(gt, dt)          # == pycocotools COCOeval("keypoints")
    print(metrics["AP"], metrics.stats)

    with edgepose.Estimator("movenet-lightning", detector="yolox-nano") as est:
        report = evaluate_model(est, "ann.json", "images/", progress=True)
    print(report.format_table())

Modules: :mod:`.annotations` (COCO-format ground truth and detections),
:mod:`.oks` (OKS and sigmas, bit-identical to pycocotools), :mod:`.coco`
(OKS AP/AR, identical to pycocotools; CrowdPose splits),
:mod:`.pck` (PCK, tPCK, errors, NME), :mod:`.mpii` (MPII files and PCKh),
:mod:`.runner` (a model over an image folder), :mod:`.cli` (``edgepose eval``).
"""
from __future__ import annotations

from edgepose.evaluation.annotations import CocoKeypoints, KeypointDetections, load_coco_keypoints
from edgepose.evaluation.cli import main_eval
from edgepose.evaluation.coco import CocoMetrics, PerKeypointOks, STAT_NAMES, evaluate_coco
from edgepose.evaluation.oks import compute_oks, resolve_sigmas
from edgepose.evaluation.mpii import MpiiAnnotations, MpiiPCKh, evaluate_pckh, load_mpii
from edgepose.evaluation.pck import (KeypointErrors, PCKResult, bbox_size, head_size_from_boxes,
                                     keypoint_errors, pck, torso_size)
from edgepose.evaluation.runner import EvaluationReport, evaluate_model, load_annotations

__all__ = [
    "CocoKeypoints", "KeypointDetections", "load_coco_keypoints",
    "CocoMetrics", "PerKeypointOks", "STAT_NAMES", "compute_oks", "evaluate_coco",
    "resolve_sigmas",
    "MpiiAnnotations", "MpiiPCKh", "evaluate_pckh", "load_mpii",
    "KeypointErrors", "PCKResult", "bbox_size", "head_size_from_boxes", "keypoint_errors",
    "pck", "torso_size",
    "EvaluationReport", "evaluate_model", "load_annotations",
    "main_eval",
]
