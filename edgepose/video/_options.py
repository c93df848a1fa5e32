"""The tracker's options: checks of numbers, the models it is given or
builds, and the OKS sigmas its keypoint set allows."""
from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from edgepose._validate import is_int, is_real


def oks_sigmas(metric: str, sigmas: np.ndarray | None, keypoint_set: Any) -> np.ndarray | None:
    """The OKS sigmas for poses of ``keypoint_set``: ``sigmas`` if given,
    else the set's; None when neither has any (and the metric allows IoU).

    Raises:
        ValueError: ``metric="oks"`` and no sigmas, or sigmas that are not
            one per keypoint.
    """
    if sigmas is None and getattr(keypoint_set, "sigmas", None) is not None:
        sigmas = np.asarray(keypoint_set.sigmas, np.float64)
    if sigmas is None:
        if metric == "oks":
            raise ValueError(
                f"metric='oks' needs OKS sigmas, and keypoint set {keypoint_set.name!r} defines "
                "none: pass sigmas=(one per keypoint) or metric='iou'.")
        return None
    k = len(keypoint_set.names)
    if sigmas.shape != (k,):
        raise ValueError(f"sigmas must have shape ({k},), one per keypoint of "
                         f"{keypoint_set.name!r}, got {sigmas.shape}.")
    return sigmas


def is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def positive_number(name: str, value: Any, *, allow_zero: bool = False) -> float:
    if not is_real(value):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}.")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} "
                         f"finite number, got {value}.")
    return v


def fraction(name: str, value: Any) -> float:
    v = positive_number(name, value, allow_zero=True)
    if v > 1:
        raise ValueError(f"{name} must be in [0, 1], got {value}.")
    return v


def count(name: str, value: Any, minimum: int) -> int:
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
    return int(value)


def pose_model(model: Any, runtime: Any) -> tuple[Any, bool]:
    """The pose callable for ``model``, and whether the tracker built it (and
    closes it); one built from a file runs with ``runtime`` (RuntimeOptions)."""
    if is_path(model):
        from edgepose.estimator import Estimator

        return Estimator(model, runtime=runtime), True
    if callable(model):
        return model, False
    raise TypeError("model must be a model file or name, or a callable "
                    f"pose(frame, boxes=...) -> PoseResult, got {type(model).__name__}.")


def person_detector(detector: Any, score_threshold: float | None, runtime: Any) -> tuple[Any, bool]:
    """The detector callable (or None), and whether the tracker built it (with
    ``runtime``, a RuntimeOptions)."""
    if detector is None:
        return None, False
    if is_path(detector):
        from edgepose.detectors import PersonDetector

        return PersonDetector.from_file(detector, score_threshold=score_threshold,
                                        runtime=runtime), True
    if callable(detector):
        return detector, False
    raise TypeError("detector must be a detector file or name, a callable "
                    f"detector(frame) -> Detections, or None, got {type(detector).__name__}.")
