"""edgepose: 2D human pose estimation from training to edge devices.

Importing edgepose is cheap: it loads no inference runtime, no OpenCV and no
model. Public names are imported on first use::

    import edgepose
    with edgepose.Estimator("rtmpose.onnx", detector="yolox_nano.onnx") as est:
        poses = est(image)          # PoseResult, keypoints in image pixels
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it, imported lazily
_LAZY = {
    "Estimator": "edgepose.estimator",
    "PoseTracker": "edgepose.video",
    "OneEuroParams": "edgepose.video",
    "PoseResult": "edgepose.results",
    "RuntimeOptions": "edgepose.runtime",
    "ModelCard": "edgepose.card",
    "read_card": "edgepose.card",
    "write_card": "edgepose.card",
}
_SUBMODULES = ("ops", "backends", "card", "keypoints", "presets", "transforms", "results",
               "heads", "detectors", "posenet", "paf", "estimator", "registry", "evaluation",
               "video", "data", "runtime")
# moved into edgepose.video; still importable, with a DeprecationWarning
_DEPRECATED = ("tracking", "smoothing", "pipeline")

__all__ = ["__version__", *_LAZY, *_SUBMODULES]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES or name in _DEPRECATED:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'edgepose' has no attribute {name!r}")
