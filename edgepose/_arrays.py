"""Array validation and coercion shared across edgepose (messages included)."""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["float_array", "check_finite", "read_only", "check_boxes"]


def float_array(name: str, value: ArrayLike, ndim: int, shape_text: str, *,
                integers: bool = False) -> NDArray[np.float32]:
    """Coerces ``value`` to a float32 array of rank ``ndim``, without copying
    when possible, with errors that name ``name`` and ``shape_text``.

    Integer arrays are rejected with a hint to dequantize (model outputs),
    unless ``integers`` is true (user data such as boxes, areas or scores),
    when they are converted to float32."""
    arr = np.asarray(value)
    if arr.dtype.kind in "iu" and integers:
        arr = arr.astype(np.float32)
    if arr.dtype.kind != "f":
        if arr.dtype.kind in "iu":
            raise TypeError(
                f"{name} must be a floating-point array, got {arr.dtype}. Quantized model "
                "outputs must be dequantized first: (q - zero_point) * scale.")
        raise TypeError(f"{name} must be a floating-point array, got {arr.dtype}.")
    if arr.ndim != ndim:
        hint = (" Drop the batch axis (outputs[0])."
                if arr.ndim == ndim + 1 and arr.shape[0] == 1 else "")
        raise ValueError(f"{name} must have shape {shape_text}, got {arr.shape}.{hint}")
    arr = arr.astype(np.float32, copy=False)
    # The C core takes strides in elements: a view whose byte strides are not a
    # multiple of 4 (a field of a structured array) must be copied.
    if any(s % 4 for s in arr.strides):
        arr = np.ascontiguousarray(arr)
    return arr


def check_finite(name: str, arr: np.ndarray) -> None:
    """Raises ValueError when ``arr`` holds NaN or inf."""
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, check for NaN or inf values.")


def read_only(a: np.ndarray) -> np.ndarray:
    """A contiguous read-only array: ``a`` itself if already so, else a copy."""
    a = np.ascontiguousarray(a)
    if a.flags.writeable:
        a = a.copy()
        a.setflags(write=False)
    return a


def check_boxes(boxes: ArrayLike) -> NDArray[np.float32]:
    """``(N, 4)`` float32 xyxy boxes with positive width and height (a single
    ``(4,)`` box is promoted), or ValueError saying which box is wrong."""
    b = np.asarray(boxes, dtype=np.float32)
    if b.ndim == 1 and b.shape == (4,):
        b = b[None]
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4) as x1, y1, x2, y2 in pixels, got {b.shape}.")
    check_finite("boxes", b)
    bad = np.flatnonzero((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"box {i} has zero or negative size: {b[i].tolist()} (x1, y1, x2, y2); "
            "boxes need x2 > x1 and y2 > y1.")
    return b
