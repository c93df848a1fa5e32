"""OpenPose-style PAF head parameters (the pipeline is :mod:`edgepose.paf`)."""
from __future__ import annotations

import dataclasses

from edgepose import _validate as v
from edgepose.heads._params import FIELD, MAX_CHANNEL, HeadParams, offset

__all__ = ["PafParams", "MAX_PEAKS", "MAX_PEAK_RADIUS", "MAX_SAMPLES", "MAX_LIMBS",
           "MAX_STRIDE"]

#: The most peaks per part a card may ask for (and never more than the map's h * w).
MAX_PEAKS = 1024
#: The largest peak window radius (map pixels).
MAX_PEAK_RADIUS = 16
#: The most field samples per limb candidate.
MAX_SAMPLES = 100
#: The most limbs.
MAX_LIMBS = 1024
#: The largest stride (input pixels per map pixel) and size multiple.
MAX_STRIDE = 1024
#: The largest min_peak_distance (map pixels) and distance_prior.
MAX_DISTANCE = 1024.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class PafParams(HeadParams):
    """``head_params`` of head ``"paf"`` (see :func:`edgepose.ops.group_paf`).

    Required: ``num_parts`` (the card's keypoint count), ``limbs`` ``(L, 2)``
    part ids below ``num_parts``, ``paf_channels`` ``(L, 2)`` field channels;
    ``paf_start`` (>= num_parts) when the outputs are one ``maps`` tensor.

    Attributes:
        layout: ``"NHWC"`` or ``"NCHW"`` of the output maps.
        stride: input pixels per map pixel, in (0, 1024]; ``offset``: +-1024.
        size_multiple: 1 to 1024 (``fit_height`` inputs).
        align: letterbox placement, ``"center"`` or ``"topleft"``.
        heatmap_threshold, min_good_ratio: in [0, 1]; min_paf_score: in
            [-1, 1]; min_person_score: finite.
        peak_radius: 0 to 16; max_peaks: 1 to 1024 (and at most h * w of the
            map when decoding); samples: 2 to 100; min_parts: 0 to num_parts;
        min_peak_distance, distance_prior: in [0, 1024]; refine: true / false.
        dequantize: see :class:`~edgepose.heads.HeadParams`.
    """

    num_parts: int
    limbs: tuple[tuple[int, int], ...]
    paf_channels: tuple[tuple[int, int], ...]
    paf_start: int | None = None
    layout: str = "NHWC"
    stride: float = 8.0
    offset: float = 0.0
    size_multiple: int = 8
    align: str = "center"
    heatmap_threshold: float = 0.1
    peak_radius: int = 1
    min_peak_distance: float = 0.0
    refine: bool = True
    max_peaks: int = 100
    samples: int = 10
    min_paf_score: float = 0.05
    min_good_ratio: float = 0.9
    distance_prior: float = 0.0
    min_parts: int = 3
    min_person_score: float = 0.0

    REQUIRED = ("num_parts", "limbs", "paf_channels")

    @classmethod
    def _checkers(cls):
        def f(n):
            return f"{FIELD}.{n}"
        return {
            **super()._checkers(),
            "num_parts": lambda n, x: v.integer(f(n), x, low=1, high=MAX_CHANNEL + 1),
            "limbs": lambda n, x: v.int_pairs(f(n), x, high=MAX_CHANNEL, max_len=MAX_LIMBS,
                                              distinct=True),
            "paf_channels": lambda n, x: v.int_pairs(f(n), x, high=MAX_CHANNEL,
                                                     max_len=MAX_LIMBS),
            "paf_start": lambda n, x: None if x is None else v.integer(
                f(n), x, low=1, high=MAX_CHANNEL),
            "layout": lambda n, x: v.choice(f(n), x, ("NHWC", "NCHW")),
            "stride": lambda n, x: v.real(f(n), x, low=0.0, low_open=True, high=MAX_STRIDE),
            "offset": offset,
            "size_multiple": lambda n, x: v.integer(f(n), x, low=1, high=MAX_STRIDE),
            "align": lambda n, x: v.choice(f(n), x, ("center", "topleft")),
            "heatmap_threshold": lambda n, x: v.probability(f(n), x),
            "peak_radius": lambda n, x: v.integer(f(n), x, low=0, high=MAX_PEAK_RADIUS),
            "min_peak_distance": lambda n, x: v.real(f(n), x, low=0.0, high=MAX_DISTANCE),
            "refine": lambda n, x: v.choice(f(n), x, (True, False)),
            "max_peaks": lambda n, x: v.integer(f(n), x, low=1, high=MAX_PEAKS),
            "samples": lambda n, x: v.integer(f(n), x, low=2, high=MAX_SAMPLES),
            "min_paf_score": lambda n, x: v.real(f(n), x, low=-1.0, high=1.0),
            "min_good_ratio": lambda n, x: v.probability(f(n), x),
            "distance_prior": lambda n, x: v.real(f(n), x, low=0.0, high=MAX_DISTANCE),
            "min_parts": lambda n, x: v.integer(f(n), x, low=0, high=MAX_CHANNEL + 1),
            "min_person_score": lambda n, x: v.real(f(n), x),
        }

    def _check_together(self) -> None:
        if len(self.limbs) != len(self.paf_channels):
            raise ValueError(
                f"{FIELD}.limbs and {FIELD}.paf_channels must have one row per limb, got "
                f"{len(self.limbs)} and {len(self.paf_channels)} rows.")
        used = [p for limb in self.limbs for p in limb]
        if used and max(used) >= self.num_parts:
            raise ValueError(
                f"{FIELD}.limbs names part {max(used)}, but num_parts is {self.num_parts} "
                f"(parts 0 to {self.num_parts - 1}).")
        if self.paf_start is not None and self.paf_start < self.num_parts:
            raise ValueError(
                f"{FIELD}.paf_start must be >= num_parts ({self.num_parts}): the fields follow "
                f"the part maps, got {self.paf_start}.")
        if self.min_parts > self.num_parts:
            raise ValueError(f"{FIELD}.min_parts must be at most num_parts ({self.num_parts}), "
                             f"got {self.min_parts}.")

    def output_roles(self):
        return ((("maps",), ()) if self.paf_start is not None
                else (("heatmaps", "pafs"), ()))

    def check_context(self, num_keypoints, roles):
        if roles is not None and "maps" in roles and self.paf_start is None:
            raise ValueError(f"{FIELD}.paf_start is required when the outputs are one 'maps' "
                             "tensor (part maps, then fields from channel paf_start).")
        super().check_context(num_keypoints, roles)
        if num_keypoints is not None and num_keypoints != self.num_parts:
            raise ValueError(
                f"{FIELD}.num_parts must equal the keypoint set's {num_keypoints} keypoints, got "
                f"{self.num_parts}.")

    def grouping_kwargs(self, map_hw: tuple[int, int]) -> dict:
        """The keyword arguments of :func:`edgepose.ops.group_paf` for a map of
        ``map_hw``: ``max_peaks`` is capped at its ``h * w`` pixels."""
        return {"heatmap_threshold": self.heatmap_threshold, "peak_radius": self.peak_radius,
                "min_peak_distance": self.min_peak_distance, "refine": self.refine,
                "max_peaks": max(1, min(self.max_peaks, map_hw[0] * map_hw[1])),
                "samples": self.samples, "min_paf_score": self.min_paf_score,
                "min_good_ratio": self.min_good_ratio, "distance_prior": self.distance_prior,
                "min_parts": self.min_parts, "min_person_score": self.min_person_score,
                "stride": self.stride, "offset": self.offset,
                "layout": "HWC" if self.layout == "NHWC" else "CHW"}
