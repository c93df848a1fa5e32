"""Decoders of pose-model heads: raw outputs to keypoints in model-input pixels.

Each decoder takes the model's outputs by role (the card's ``outputs`` map
roles to tensor names), the card's ``head_params`` and the model input size
``(h, w)``, and returns keypoints ``(N, K, 2)`` float32 (x, y) in model-input
pixels and scores ``(N, K)`` float32, where N is the batch. Keypoints that are
not found are (-1, -1). Parameters come from the model card, never from the
decoder: nothing about a particular model is hard-coded here.

Top-down and single-person heads only; bottom-up heads (PoseNet, PAF) return
several people per image and live with their grouping code.
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
from numpy.typing import NDArray

from edgepose import ops

__all__ = ["HEAD_DECODERS", "decode_head", "check_finite_outputs"]

Outputs = Mapping[str, NDArray[np.float32]]
Decoded = tuple[NDArray[np.float32], NDArray[np.float32]]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def _select_channels(keypoints: np.ndarray, scores: np.ndarray, params: Mapping) -> Decoded:
    channels = params.get("channels")
    if channels is None:
        return keypoints, scores
    idx = np.asarray(channels, dtype=np.intp)
    return keypoints[:, idx], scores[:, idx]


def decode_simcc(outputs: Outputs, params: Mapping, input_hw: tuple[int, int]) -> Decoded:
    """RTMPose SimCC: ``simcc_x (N, K, Wx)``, ``simcc_y (N, K, Wy)``."""
    kp, sc = ops.decode_simcc(outputs["simcc_x"], outputs["simcc_y"],
                              float(params.get("split_ratio", 2.0)))
    return _select_channels(kp, sc, params)


def decode_heatmap(outputs: Outputs, params: Mapping, input_hw: tuple[int, int]) -> Decoded:
    """Keypoint heatmaps ``(N, K, h, w)`` or ``(N, h, w, K)`` (``layout``).

    head_params: ``layout`` ("NCHW"), ``refine`` ("dark"), ``blur_kernel``
    (11), ``activation`` ("none" or "sigmoid", applied before decoding),
    ``offset`` (added after scaling by input / heatmap size, in input
    pixels: the model's own pixel convention), ``channels`` (which heatmap
    channels are the keypoints, in keypoint-set order).
    """
    layout = params.get("layout", "NCHW")
    hm = outputs["heatmaps"]
    channels = params.get("channels")
    if channels is not None:
        axis = 1 if layout == "NCHW" else 3
        hm = np.take(hm, np.asarray(channels, dtype=np.intp), axis=axis)
    if params.get("activation", "none") == "sigmoid":
        hm = _sigmoid(hm)
    hm_h, hm_w = (hm.shape[2], hm.shape[3]) if layout == "NCHW" else (hm.shape[1], hm.shape[2])
    kp, sc = ops.decode_heatmap(hm, params.get("refine", "dark"),
                                int(params.get("blur_kernel", 11)), layout=layout)
    in_h, in_w = input_hw
    offset = float(params.get("offset", 0.0))
    found = kp[..., 0] >= 0
    scaled = kp * np.array([in_w / hm_w, in_h / hm_h], np.float32) + offset
    return np.where(found[..., None], scaled, -1).astype(np.float32), sc


def decode_movenet(outputs: Outputs, params: Mapping, input_hw: tuple[int, int]) -> Decoded:
    """MoveNet single-pose: ``keypoints (N, 1, K, 3)`` = (y, x, score) in [0, 1]."""
    raw = np.asarray(outputs["keypoints"], dtype=np.float32)
    raw = raw.reshape(raw.shape[0], -1, 3)
    in_h, in_w = input_hw
    offset = float(params.get("offset", 0.0))
    kp = np.stack([raw[..., 1] * in_w + offset, raw[..., 0] * in_h + offset], axis=-1)
    return _select_channels(kp.astype(np.float32), raw[..., 2].copy(), params)


def decode_blazepose(outputs: Outputs, params: Mapping, input_hw: tuple[int, int]) -> Decoded:
    """BlazePose landmarks: regression ``landmarks (N, 5L)`` = L x (x, y, z,
    visibility logit, presence logit) in input pixels, refined with the
    heatmap head ``heatmaps (N, h, w, L)`` as MediaPipe does.

    The refinement (MediaPipe's RefineLandmarksFromHeatmap): in a
    ``refine_kernel`` window of the sigmoid heatmap around the regressed
    point, the confidence-weighted mean position replaces it when the
    window's highest confidence is at least ``refine_min_confidence``.
    Scores are sigmoid(visibility). head_params: ``num_landmarks`` (39
    rows in the tensor), ``channels`` (the keypoints to return, e.g. the 33
    body landmarks), ``refine_kernel`` (7; 0 disables), ``refine_min_confidence`` (0.5).
    """
    rows = int(params.get("num_landmarks", 39))
    raw = np.asarray(outputs["landmarks"], dtype=np.float32).reshape(-1, rows, 5)
    kp = raw[..., :2].copy()
    scores = _sigmoid(raw[..., 3])
    kernel = int(params.get("refine_kernel", 7))
    if kernel > 0 and "heatmaps" in outputs:
        kp = _refine_from_heatmap(kp, outputs["heatmaps"], input_hw, kernel,
                                  float(params.get("refine_min_confidence", 0.5)))
    return _select_channels(kp, scores, params)


def _refine_from_heatmap(kp: np.ndarray, heatmaps: np.ndarray, input_hw: tuple[int, int],
                         kernel: int, min_confidence: float) -> np.ndarray:
    n, hm_h, hm_w, channels = heatmaps.shape
    in_h, in_w = input_hw
    sx, sy = hm_w / in_w, hm_h / in_h
    half = (kernel - 1) // 2
    out = kp.copy()
    for i in range(n):
        for j in range(min(channels, kp.shape[1])):
            cx = int(kp[i, j, 0] * sx)
            cy = int(kp[i, j, 1] * sy)
            x0, x1 = max(0, cx - half), min(hm_w, cx + half + 1)
            y0, y1 = max(0, cy - half), min(hm_h, cy + half + 1)
            if x0 >= x1 or y0 >= y1:
                continue
            conf = _sigmoid(heatmaps[i, y0:y1, x0:x1, j])
            total = float(conf.sum())
            if total <= 0 or float(conf.max()) < min_confidence:
                continue
            ys, xs = np.mgrid[y0:y1, x0:x1]
            out[i, j, 0] = float((conf * xs).sum()) / total / sx
            out[i, j, 1] = float((conf * ys).sum()) / total / sy
    return out


#: head name -> decoder, for the top-down and single-person heads.
HEAD_DECODERS: dict[str, Callable[[Outputs, Mapping, tuple[int, int]], Decoded]] = {
    "simcc": decode_simcc,
    "heatmap": decode_heatmap,
    "movenet": decode_movenet,
    "blazepose": decode_blazepose,
}


def check_finite_outputs(outputs: Outputs, model: str) -> None:
    """Raises RuntimeError when a model output holds NaN or inf."""
    for role, value in outputs.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise RuntimeError(
                f"The model {model} produced NaN or inf in its '{role}' output. The model file "
                "may be corrupt, or the input preprocessing (mean/std, colour order, dtype) "
                "does not match what the model expects: check its card.")


def decode_head(head: str, outputs: Outputs, params: Mapping, input_hw: tuple[int, int]) -> Decoded:
    """Decodes ``outputs`` with the decoder of ``head``."""
    try:
        decoder = HEAD_DECODERS[head]
    except KeyError:
        raise ValueError(
            f"No top-down decoder for head '{head}'; available: {sorted(HEAD_DECODERS)}.") from None
    return decoder(outputs, params, input_hw)
