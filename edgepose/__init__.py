"""edgepose: 2D human pose estimation from training to edge devices.

Importing edgepose is cheap: it loads no inference runtime and no model.
Submodules are imported on first use (``edgepose.ops``).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("ops",)

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'edgepose' has no attribute {name!r}")
