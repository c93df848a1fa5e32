"""Validation of input images, shared by every pipeline."""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["check_image", "import_cv2"]


def check_image(image: Any) -> NDArray[np.uint8]:
    """Returns ``image`` if it is a BGR uint8 ``(H, W, 3)`` array (as
    ``cv2.imread`` gives), else raises with a message that says how to fix it.

    Raises:
        TypeError: not a NumPy array, or not uint8.
        ValueError: grayscale, with alpha, another shape, or empty.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"image must be a NumPy array of shape (H, W, 3), BGR uint8 as cv2.imread returns, "
            f"got {type(image).__name__}.")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise ValueError(
            f"image must have shape (H, W, 3) BGR, got {image.shape}: a grayscale image. "
            "Convert it with cv2.cvtColor(img, cv2.COLOR_GRAY2BGR).")
    if image.ndim == 3 and image.shape[2] == 4:
        raise ValueError(
            f"image must have shape (H, W, 3) BGR, got {image.shape}: an image with alpha. "
            "Convert it with cv2.cvtColor(img, cv2.COLOR_BGRA2BGR).")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3) BGR, got {image.shape}.")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image must not be empty, got shape {image.shape}.")
    if image.dtype != np.uint8:
        raise TypeError(
            f"image must have dtype uint8 (BGR 0-255, as cv2.imread returns), got {image.dtype}. "
            "Scale it to 0-255 and convert with .astype(np.uint8).")
    return image


def import_cv2():
    """The cv2 module, or an ImportError that names the extra to install."""
    try:
        import cv2
    except ImportError as exc:
        raise ImportError(
            "edgepose needs OpenCV for image crops, resizing and drawing: "
            "pip install 'edgepose[vision]' (or opencv-python).") from exc
    return cv2
