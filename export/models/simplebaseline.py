"""SimpleBaseline: a ResNet backbone and a deconvolution heatmap head, with MMPose's names.

Xiao et al., "Simple Baselines for Human Pose Estimation and Tracking"
(2018), as MMPose 1.x builds it (``ResNet`` backbone + ``HeatmapHead``):

- ``backbone.conv1``, ``backbone.bn1`` (7x7 stride-2 stem, then a 3x3
  stride-2 max pool), ``backbone.layer{1..4}.{i}`` blocks with ``conv1``,
  ``bn1``, ``conv2``, ``bn2`` (``conv3``, ``bn3`` for bottlenecks) and
  ``downsample.{0,1}``: the torchvision / MMPose ResNet names;
- ``head.deconv_layers.{3i}`` (4x4 stride-2 transposed convs without bias),
  ``head.deconv_layers.{3i+1}`` (batch norm), ReLU between;
- ``head.final_layer``: a 1x1 conv (with bias) to K heatmaps.

An MMPose SimpleBaseline checkpoint (e.g. ``td-hm_res50_8xb64-210e_coco-256x192``,
34.0 M parameters) loads with ``strict=True``; ``depth`` 18 or 34 and a
smaller ``base_channels`` give light variants with the same names.

The forward pass returns heatmaps ``(N, K, H/4, W/4)`` (output stride 4),
decoded by the runtime with DARK (MMPose's ``MSRAHeatmap`` convention:
heatmap pixel ``j`` sits at input pixel ``4 j``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgepose_export.api import require

torch = require("torch")
from torch import Tensor, nn  # noqa: E402

__all__ = ["RESNET_DEPTHS", "SimpleBaseline", "simplebaseline"]

#: ResNet depth -> (block, blocks per stage)
RESNET_DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """The "pytorch" style bottleneck (stride on the 3x3 conv), as MMPose's default."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, channels * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    """ResNet without the classifier; returns the stride-32 features."""

    def __init__(self, depth: int = 50, base_channels: int = 64) -> None:
        super().__init__()
        kind, counts = RESNET_DEPTHS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.conv1 = nn.Conv2d(3, base_channels, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_channels)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch = base_channels
        for i, count in enumerate(counts):
            channels = base_channels * 2 ** i
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or in_ch != channels * block.expansion:
                downsample = nn.Sequential(
                    nn.Conv2d(in_ch, channels * block.expansion, 1, stride, bias=False),
                    nn.BatchNorm2d(channels * block.expansion))
            blocks = [block(in_ch, channels, stride, downsample)]
            in_ch = channels * block.expansion
            blocks += [block(in_ch, channels) for _ in range(count - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.out_channels = in_ch

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class HeatmapHead(nn.Module):
    """Transposed convs (4x4, stride 2) with BN and ReLU, then a 1x1 conv to K heatmaps."""

    def __init__(self, in_channels: int, out_channels: int,
                 deconv_out_channels: Sequence[int] = (256, 256, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for channels in deconv_out_channels:
            layers += [nn.ConvTranspose2d(in_channels, channels, 4, 2, 1, 0, bias=False),
                       nn.BatchNorm2d(channels), nn.ReLU()]
            in_channels = channels
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.final_layer(self.deconv_layers(x))


class SimpleBaseline(nn.Module):
    """``x (N, 3, H, W)`` -> heatmaps ``(N, K, H/4, W/4)``.

    Build it with :func:`simplebaseline`.

    Args:
        depth: ResNet depth, one of :data:`RESNET_DEPTHS`.
        base_channels: ResNet width (64 is the standard ResNet).
        deconv_out_channels: channels of the three deconv layers.
        num_keypoints: K.
        input_size: ``(H, W)``, multiples of 32.
        name: the model name written into the card.

    Raises:
        ValueError: an unknown depth, or invalid sizes or widths.
    """

    #: input pixels per heatmap pixel
    stride = 4

    def __init__(self, *, depth: int = 50, base_channels: int = 64,
                 deconv_out_channels: Sequence[int] = (256, 256, 256), num_keypoints: int = 17,
                 input_size: tuple[int, int] = (256, 192), name: str = "simplebaseline") -> None:
        super().__init__()
        if depth not in RESNET_DEPTHS:
            raise ValueError(
                f"Unknown ResNet depth {depth!r}; available: {', '.join(map(str, RESNET_DEPTHS))}.")
        if base_channels < 1 or len(deconv_out_channels) != 3 or min(deconv_out_channels) < 1:
            raise ValueError(
                "base_channels must be >= 1 and deconv_out_channels three positive widths, got "
                f"{base_channels} and {tuple(deconv_out_channels)}.")
        if not (isinstance(num_keypoints, int) and num_keypoints > 0):
            raise ValueError(f"num_keypoints must be a positive integer, got {num_keypoints!r}.")
        self.input_size = _check_input_size(input_size)
        self.num_keypoints = num_keypoints
        self.name = name
        self.backbone = ResNet(depth, base_channels)
        self.head = HeatmapHead(self.backbone.out_channels, num_keypoints,
                                tuple(deconv_out_channels))
        for module in self.head.modules():  # MMPose's head initialisation
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(module.weight, std=0.001)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``x (N, 3, H, W)`` normalised -> heatmaps ``(N, K, H/4, W/4)``."""
        return self.head(self.backbone(x))

    def card(self, keypoints: str | None = None) -> Any:
        """The :class:`edgepose.card.ModelCard` for this model: top-down, head
        ``"heatmap"`` (NCHW, DARK refinement with an 11-pixel blur, for sigma-2
        targets), RGB with MMPose's mean/std, affine crops, input ``"input"``,
        output ``"heatmaps"``.

        Args:
            keypoints: the keypoint set; defaults to ``"coco17"`` when K is 17.

        Raises:
            ValueError: K is not 17 and no keypoint set is given, or the set's
                size differs from K.
        """
        from edgepose.card import ModelCard
        from edgepose_export.models.rtmpose import _keypoint_set

        keypoints = _keypoint_set(self.num_keypoints, keypoints)
        return ModelCard(
            name=f"{self.name}-{keypoints}", task="topdown", head="heatmap", keypoints=keypoints,
            input={"name": "input", "size": list(self.input_size), "layout": "NCHW",
                   "dtype": "float32", "color": "RGB", "mean": [123.675, 116.28, 103.53],
                   "std": [58.395, 57.12, 57.375], "resize": "affine", "pad_value": 0.0},
            head_params={"layout": "NCHW", "refine": "dark", "blur_kernel": 11},
            outputs={"heatmaps": "heatmaps"},
            provenance={"architecture": "edgepose_export.models.SimpleBaseline",
                        "model": self.name})

    @classmethod
    def from_mmpose_checkpoint(cls, checkpoint: str | Path | Mapping[str, Any], *,
                               input_size: tuple[int, int] = (256, 192),
                               trusted: bool = False) -> SimpleBaseline:
        """Builds the SimpleBaseline an MMPose checkpoint describes and loads it strictly.

        Depth, widths and K come from the shapes; the input size is not in
        the weights (the head is fully convolutional), so it is an argument.

        Raises:
            ValueError: not a ResNet + HeatmapHead state dict of a known depth.
        """
        from edgepose_export.models.rtmpose import load_mmpose_checkpoint

        state = load_mmpose_checkpoint(checkpoint, trusted=trusted)
        if "backbone.conv1.weight" not in state or "head.final_layer.weight" not in state:
            raise ValueError("Not a SimpleBaseline (ResNet + HeatmapHead) state dict: missing "
                             "backbone.conv1.weight or head.final_layer.weight.")
        counts = tuple(len({k.split(".")[2] for k in state if k.startswith(f"backbone.layer{i}.")})
                       for i in range(1, 5))
        bottleneck = any(k.endswith(".conv3.weight") for k in state)
        depth = next((d for d, (kind, c) in RESNET_DEPTHS.items()
                      if c == counts and (kind == "bottleneck") == bottleneck), None)
        if depth is None:
            raise ValueError(f"The checkpoint's ResNet (blocks per stage {counts}, "
                             f"{'bottleneck' if bottleneck else 'basic'} blocks) is not one of "
                             f"depths {', '.join(map(str, RESNET_DEPTHS))}.")
        deconv = tuple(int(state[f"head.deconv_layers.{3 * i}.weight"].shape[1])
                       for i in range(3))
        model = cls(depth=depth, base_channels=int(state["backbone.conv1.weight"].shape[0]),
                    deconv_out_channels=deconv,
                    num_keypoints=int(state["head.final_layer.weight"].shape[0]),
                    input_size=input_size, name=f"simplebaseline-res{depth}")
        model.load_state_dict(state, strict=True)
        return model.eval()


def _check_input_size(input_size: Any) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise ValueError(f"input_size must be (H, W), got {input_size!r}.") from None
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise ValueError(f"input_size (H, W) must be positive multiples of 32 (the backbone's "
                         f"stride), got {input_size!r}; SimpleBaseline uses (256, 192).")
    return h, w


def simplebaseline(depth: int = 18, num_keypoints: int = 17,
                   input_size: tuple[int, int] = (256, 192), *, base_channels: int = 64,
                   deconv_out_channels: Sequence[int] = (256, 256, 256)) -> SimpleBaseline:
    """A SimpleBaseline heatmap model, randomly initialised, in eval mode.

    Args:
        depth: ResNet depth (18, 34, 50, 101, 152); 50 is MMPose's ``res50``.
        num_keypoints: K.
        input_size: ``(H, W)``, multiples of 32.
        base_channels: ResNet width; e.g. 16 for a tiny test variant.
        deconv_out_channels: widths of the three deconv layers; e.g.
            ``(64, 64, 64)`` for a tiny test variant.

    Raises:
        ValueError: an unknown depth, or invalid sizes or widths.
    """
    h, w = _check_input_size(input_size)
    name = f"simplebaseline-res{depth}"
    if base_channels != 64 or tuple(deconv_out_channels) != (256, 256, 256):
        name += f"-c{base_channels}-d{'x'.join(map(str, deconv_out_channels))}"
    return SimpleBaseline(depth=depth, base_channels=base_channels,
                          deconv_out_channels=deconv_out_channels, num_keypoints=num_keypoints,
                          input_size=(h, w), name=f"{name}-{h}x{w}").eval()
