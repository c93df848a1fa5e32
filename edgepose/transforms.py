"""Alias of :mod:`edgepose.geometry`, where the affine crops of top-down pose
now live with the rest of the image geometry; kept so existing imports work."""
from __future__ import annotations

from edgepose.geometry import (
    apply_affine,
    boxes_to_center_scale,
    crop_matrices,
    invert_affine,
    warp_crops,
)

__all__ = ["boxes_to_center_scale", "crop_matrices", "invert_affine", "apply_affine", "warp_crops"]
