"""Model cards for models that edgepose did not export.

A preset is the card of a known model family, selectable by name
(``Estimator(path, preset="movenet-lightning")``) and recognised
automatically for the known files by their sha256. Presets are data: each is
the JSON form of a :class:`edgepose.card.ModelCard`, except that an input
``size`` of ``None`` is taken from the model file (families published at
several resolutions).
"""
from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from edgepose._files import sha256_file
from edgepose.card import ModelCard

if TYPE_CHECKING:
    from edgepose.registry.catalog import ModelRegistry

__all__ = ["PRESETS", "KNOWN_FILES", "preset_names", "preset_card", "recognise", "file_sha256"]

# MMPose's ImageNet normalisation in RGB.
_MMPOSE_MEAN = [123.675, 116.28, 103.53]
_MMPOSE_STD = [58.395, 57.12, 57.375]
_NO_NORM = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}

# AI-Challenger order from the CPM / hourglass channel order (head top, neck,
# R-sho, R-elb, R-wri, L-sho, L-elb, L-wri, R-hip, R-knee, R-ank, L-hip,
# L-knee, L-ank): the channel of each AIC-14 keypoint.
_CPM_TO_AIC14 = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 0, 1]

PRESETS: dict[str, dict[str, Any]] = {
    # An RTMPose ONNX as exported by MMPose / MMDeploy (and used by rtmlib):
    # input [1, 3, 256, 192], outputs simcc_x [1, 17, 384], simcc_y [1, 17, 512].
    "rtmpose": {
        "task": "topdown", "head": "simcc", "head_params": {"split_ratio": 2.0},
        "input": {"name": "input", "size": [256, 192], "layout": "NCHW", "dtype": "float32",
                  "color": "RGB", "mean": _MMPOSE_MEAN, "std": _MMPOSE_STD,
                  "resize": "affine", "pad_value": 0},
        "outputs": {"simcc_x": "simcc_x", "simcc_y": "simcc_y"},
        "keypoints": "coco17",
    },
    # TF-Hub MoveNet SinglePose Lightning (int8 TFLite; raw uint8 RGB pixels in).
    "movenet-lightning": {
        "task": "single", "head": "movenet", "head_params": {},
        "input": {"name": "serving_default_input:0", "size": [192, 192], "layout": "NHWC",
                  "dtype": "uint8", "color": "RGB", **_NO_NORM, "resize": "affine",
                  "pad_value": 0},
        "outputs": {"keypoints": "StatefulPartitionedCall:0"},
        "keypoints": "coco17",
    },
    # TF-Hub MoveNet MultiPose Lightning (float16 TFLite): one-stage, uint8 RGB
    # pixels in, any input whose sides are multiples of 32; one output [1, 6, 56]
    # (17 x (y, x, score), box, person score). The nominal size gives the default
    # longer side (256); the image is stretched to the rounded size (see
    # edgepose.heads.movenet_multipose for the measurement behind it).
    "movenet-multipose": {
        "task": "onestage", "head": "movenet_multipose", "head_params": {},
        "input": {"name": "serving_default_input:0", "size": [256, 256], "layout": "NHWC",
                  "dtype": "uint8", "color": "RGB", **_NO_NORM, "resize": "stretch",
                  "pad_value": 0},
        "outputs": {"people": "StatefulPartitionedCall:0"},
        "keypoints": "coco17",
    },
    # MediaPipe BlazePose landmark models: regression refined by the heatmap head.
    "blazepose-lite": {
        "task": "single", "head": "blazepose",
        "head_params": {"num_landmarks": 39, "channels": list(range(33)), "refine_kernel": 7,
                        "refine_min_confidence": 0.5},
        "input": {"name": "input_1", "size": [256, 256], "layout": "NHWC", "dtype": "float32",
                  "color": "RGB", "mean": [0.0, 0.0, 0.0], "std": [255.0, 255.0, 255.0],
                  "resize": "affine", "pad_value": 0},
        "outputs": {"landmarks": "Identity", "presence": "Identity_1", "heatmaps": "Identity_3"},
        "keypoints": "blazepose33",
    },
    # edvardHua/PoseEstimationForMobile CPM: BGR 0-255, heatmaps [1, 96, 96, 14].
    # Training targets were downsampled 2x by pixel averaging, so heatmap pixel
    # x sits at input 2x + 0.5; sigma 3 heatmap px -> blur kernel 17.
    "cpm-aic14": {
        "task": "single", "head": "heatmap",
        "head_params": {"layout": "NHWC", "refine": "dark", "blur_kernel": 17, "offset": 0.5,
                        "channels": _CPM_TO_AIC14},
        "input": {"name": "image", "size": [192, 192], "layout": "NHWC", "dtype": "float32",
                  "color": "BGR", **_NO_NORM, "resize": "affine", "pad_value": 0},
        "outputs": {"heatmaps": "Convolutional_Pose_Machine/stage_5_out"},
        "keypoints": "aic14",
    },
    # The same project's hourglass: heatmaps [1, 48, 48, 14] (4x: input 4x + 1.5),
    # sigma 1.5 heatmap px -> blur kernel 7.
    "hourglass-aic14": {
        "task": "single", "head": "heatmap",
        "head_params": {"layout": "NHWC", "refine": "dark", "blur_kernel": 7, "offset": 1.5,
                        "channels": _CPM_TO_AIC14},
        "input": {"name": "image", "size": [192, 192], "layout": "NHWC", "dtype": "float32",
                  "color": "BGR", **_NO_NORM, "resize": "affine", "pad_value": 0},
        "outputs": {"heatmaps": "hourglass_out_3"},
        "keypoints": "aic14",
    },
    # google-coral/project-posenet MobileNetV1-0.75 (raw outputs, no decoder
    # op): uint8 RGB pixels in, centred black letterbox; published at three
    # resolutions (size from the file). The quantized short offsets saturate
    # near +-10 px, so libcoral's refining decoder is used ("coral").
    "posenet-mobilenet-v1": {
        "task": "bottomup", "head": "posenet",
        "head_params": {"variant": "coral", "output_stride": 16, "score_threshold": 0.5,
                        "nms_radius": 20.0, "max_poses": 10, "align": "center",
                        # (scale, zero point) of the uint8 outputs, for conversions
                        # (the ONNX one) that dropped the TFLite quantization.
                        "dequantize": {"heatmaps": [0.0784313753247261, 128],
                                       "short_offsets": [0.0784313753247261, 128],
                                       "mid_offsets": [1.3875764608383179, 117]}},
        "input": {"name": None, "size": None, "layout": "NHWC", "dtype": "uint8",
                  "color": "RGB", **_NO_NORM, "resize": "letterbox", "pad_value": 0},
        "outputs": {"heatmaps": "float_heatmaps", "short_offsets": "float_short_offsets",
                    "mid_offsets": "float_mid_offsets"},
        "keypoints": "coco17",
    },
    # ildoonet/tf-pose-estimation MobileNetV2-small OpenPose (ONNX conversion): BGR
    # 0-255, any input size; one NHWC output of 18 part maps, background, then 38
    # fields in tf-pose's CocoPairsNetwork order. Targets were shrunk 8x by pixel
    # area, so map cell j is centred on input pixel 8j + 3.5. Grouping thresholds
    # are tf-pose's own (pafprocess.h): heatmap 0.05, 9 of 10 samples.
    "tfpose-mobilenet-v2": {
        "task": "bottomup", "head": "paf",
        "head_params": {
            "layout": "NHWC", "num_parts": 18, "paf_start": 19, "stride": 8, "offset": 3.5,
            "size_multiple": 8,
            "limbs": [[1, 2], [1, 5], [2, 3], [3, 4], [5, 6], [6, 7], [1, 8], [8, 9], [9, 10],
                      [1, 11], [11, 12], [12, 13], [1, 0], [0, 14], [14, 16], [0, 15],
                      [15, 17], [2, 16], [5, 17]],
            "paf_channels": [[12, 13], [20, 21], [14, 15], [16, 17], [22, 23], [24, 25],
                             [0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11], [28, 29],
                             [30, 31], [34, 35], [32, 33], [36, 37], [18, 19], [26, 27]],
            "heatmap_threshold": 0.05, "min_good_ratio": 0.9, "min_parts": 3},
        "input": {"name": None, "size": [368, 432], "layout": "NHWC", "dtype": "float32",
                  "color": "BGR", **_NO_NORM, "resize": "fit_height", "pad_value": 0},
        "outputs": {"maps": "Openpose/concat_stage7:0"},
        "keypoints": "coco18",
    },
    # Person detectors (Kazuhito00/Detection-PoseEstimation-Pipeline). All take
    # NCHW float32 BGR; YOLOX-style heads give (cx, cy, w, h) grid offsets and
    # log sizes with sigmoid-ed objectness and class scores.
    "yolox-nano": {
        "task": "detector", "head": "yolox",
        "head_params": {"strides": [8, 16, 32], "class_index": 0, "align": "topleft"},
        "input": {"name": None, "size": [416, 416], "layout": "NCHW", "dtype": "float32",
                  "color": "BGR", **_NO_NORM, "resize": "letterbox", "pad_value": 114},
        "outputs": {},
        "keypoints": None,
    },
    "light-person-detector": {
        "task": "detector", "head": "yolox",
        "head_params": {"strides": [8, 16, 32], "class_index": 0, "align": "topleft"},
        "input": {"name": None, "size": [192, 192], "layout": "NCHW", "dtype": "float32",
                  "color": "BGR", **_NO_NORM, "resize": "letterbox", "pad_value": 114},
        "outputs": {},
        "keypoints": None,
    },
    # NanoDet-m (v0.x): centred letterbox padded with 0, GFL distance bins,
    # anchor points at cell centres; published at 320 and 416 (size from the file).
    "nanodet-m": {
        "task": "detector", "head": "nanodet",
        "head_params": {"strides": [8, 16, 32], "reg_max": 7, "center_offset": 0.5,
                        "class_index": 0, "align": "center"},
        "input": {"name": None, "size": None, "layout": "NCHW", "dtype": "float32",
                  "color": "BGR", "mean": [103.53, 116.28, 123.675],
                  "std": [57.375, 57.12, 58.395], "resize": "letterbox", "pad_value": 0},
        "outputs": {f"{kind}_{s}": f"{kind}_pred_stride_{s}" for kind in ("cls", "dis")
                    for s in (8, 16, 32)},
        "keypoints": None,
    },
}
PRESETS["blazepose-full"] = copy.deepcopy(PRESETS["blazepose-lite"])

class _KnownFiles(Mapping[str, str]):
    """sha256 of a known model file -> its preset name: every entry of the
    model registry (``edgepose/models.json``) with a pinned sha256 and a
    preset. Read-only; the registry is read on first use, not on import."""

    def _table(self) -> Mapping[str, str]:
        from edgepose.registry.catalog import default_registry
        return _known_files(default_registry())

    def __getitem__(self, sha256: str) -> str:
        return self._table()[sha256]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __repr__(self) -> str:
        return f"KNOWN_FILES({dict(self._table())!r})"


@lru_cache(maxsize=1)
def _known_files(registry: ModelRegistry) -> Mapping[str, str]:
    return MappingProxyType({entry.sha256: entry.preset for entry in registry
                             if entry.sha256 is not None and entry.preset is not None})


#: sha256 of known model files -> preset name (from the registry, read-only).
KNOWN_FILES: Mapping[str, str] = _KnownFiles()


def preset_names() -> list[str]:
    """The names of every preset."""
    return sorted(PRESETS)


def preset_card(name: str, model_input_hw: tuple[int, int] | None = None) -> ModelCard:
    """The card of preset ``name``.

    Args:
        name: a preset name (see :func:`preset_names`).
        model_input_hw: the model file's fixed input size, used where the
            preset leaves the size open.

    Raises:
        ValueError: an unknown name, or an open size with no model size.
    """
    try:
        data = copy.deepcopy(PRESETS[name])
    except KeyError:
        raise ValueError(f"Unknown preset {name!r}; available presets: {preset_names()}.") from None
    if data["input"]["size"] is None:
        if model_input_hw is None:
            raise ValueError(
                f"Preset {name!r} takes its input size from the model file, and the model's "
                "input size is not fixed: write a card with the size into the file.")
        data["input"]["size"] = list(model_input_hw)
    data["name"] = name
    data.setdefault("provenance", {"card": f"edgepose preset {name}"})
    return ModelCard.from_dict({"edgepose_card": 1, **data})


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file, hex (:func:`edgepose._files.sha256_file`)."""
    return sha256_file(path)


def recognise(path: str | Path) -> str | None:
    """The preset of a known model file (by sha256), or None."""
    return KNOWN_FILES.get(file_sha256(path))
