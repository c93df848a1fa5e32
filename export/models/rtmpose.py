"""RTMPose: a CSPNeXt backbone and the RTMCC SimCC head, with MMPose's parameter names.

The module tree reproduces MMPose 1.x's ``TopdownPoseEstimator`` with the
``CSPNeXt`` backbone (MMDetection's, as the RTMPose configs use it) and the
``RTMCCHead``, so that the ``state_dict`` of an official RTMPose checkpoint
loads with ``strict=True`` and no key renaming, without MMPose, MMDetection,
MMCV or MMEngine installed:

- ``backbone.stem.{0,1,2}`` and ``backbone.stage{1..4}`` (``stage4`` holds an
  ``SPPBottleneck`` at index 1, so its ``CSPLayer`` is index 2), built from
  MMCV-style ``ConvModule`` blocks (``.conv`` without bias, ``.bn``, SiLU);
- ``head.final_layer`` (a 7x7 conv to K channels), ``head.mlp`` (``ScaleNorm``
  ``.0.g`` and a bias-free ``Linear`` ``.1``), ``head.gau`` (the gated
  attention unit: ``uv``, ``o``, ``gamma``, ``beta``, ``ln.g``,
  ``res_scale.scale``), ``head.cls_x`` and ``head.cls_y``.

Sizes (the RTMPose body configs ``rtmpose-{t,s,m,l}_8xb256-420e_coco-256x192``):

====  =============  ============  ======================  ================
size  deepen_factor  widen_factor  head ``in_channels``     params (256x192)
====  =============  ============  ======================  ================
t     0.167          0.375         384                     3.34 M
s     0.33           0.5           512                     5.47 M
m     0.67           0.75          768                     13.59 M
l     1.0            1.0           1024                    27.66 M
====  =============  ============  ======================  ================

The forward pass returns the raw SimCC logits ``(simcc_x, simcc_y)`` (no
decoding inside), exactly the outputs of an RTMPose ONNX exported by MMPose /
MMDeploy; the runtime decodes them (``edgepose.ops.decode_simcc``).

Batch norm uses eps 1e-5 (the RTMPose configs set ``norm_cfg=dict(type='SyncBN')``,
which replaces CSPNeXt's default eps 1e-3).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgepose_export.api import require

torch = require("torch")
from torch import Tensor, nn  # noqa: E402

__all__ = ["RTMPOSE_SIZES", "RTMPoseSize", "RTMPose", "rtmpose", "load_mmpose_checkpoint",
           "ConvModule", "DepthwiseSeparableConvModule", "CSPNeXt", "RTMCCHead", "RTMCCBlock",
           "ScaleNorm"]


@dataclass(frozen=True)
class RTMPoseSize:
    """The scaling of one RTMPose size (MMPose config values)."""

    deepen_factor: float
    widen_factor: float


#: RTMPose sizes by name, as in MMPose's RTMPose body configs.
RTMPOSE_SIZES: dict[str, RTMPoseSize] = {
    "t": RTMPoseSize(0.167, 0.375),
    "s": RTMPoseSize(0.33, 0.5),
    "m": RTMPoseSize(0.67, 0.75),
    "l": RTMPoseSize(1.0, 1.0),
}

# CSPNeXt arch "P5": in_channels, out_channels, num_blocks, add_identity, use_spp.
_ARCH_P5 = ((64, 128, 3, True, False), (128, 256, 6, True, False),
            (256, 512, 6, True, False), (512, 1024, 3, False, True))

_STRIDE = 32  # the backbone's output stride (out_indices=(4,))


# --- MMCV-style building blocks ------------------------------------------------

class ConvModule(nn.Module):
    """Conv (no bias) -> BatchNorm -> SiLU, named ``conv`` and ``bn`` as MMCV's ConvModule."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, groups: int = 1, *, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=norm_eps)
        self.activate = nn.SiLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.bn(self.conv(x)))


class DepthwiseSeparableConvModule(nn.Module):
    """A depthwise ``ConvModule`` then a pointwise (1x1) one, as MMCV's."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, *, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.depthwise_conv = ConvModule(in_channels, in_channels, kernel_size, stride, padding,
                                         groups=in_channels, norm_eps=norm_eps)
        self.pointwise_conv = ConvModule(in_channels, out_channels, 1, norm_eps=norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class ChannelAttention(nn.Module):
    """Global average pool -> 1x1 conv (with bias) -> hard sigmoid, scaling the channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(channels, channels, 1, 1, 0, bias=True)
        self.act = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.act(self.fc(self.global_avgpool(x)))


class CSPNeXtBlock(nn.Module):
    """3x3 ``ConvModule`` then a 5x5 depthwise separable one, with an identity shortcut."""

    def __init__(self, in_channels: int, out_channels: int, expansion: float = 0.5,
                 add_identity: bool = True, kernel_size: int = 5, *,
                 norm_eps: float = 1e-5) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = ConvModule(in_channels, hidden, 3, 1, 1, norm_eps=norm_eps)
        self.conv2 = DepthwiseSeparableConvModule(hidden, out_channels, kernel_size, 1,
                                                  kernel_size // 2, norm_eps=norm_eps)
        self.add_identity = add_identity and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class CSPLayer(nn.Module):
    """Cross Stage Partial layer with CSPNeXt blocks and channel attention."""

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: float = 0.5,
                 num_blocks: int = 1, add_identity: bool = True, channel_attention: bool = True,
                 *, norm_eps: float = 1e-5) -> None:
        super().__init__()
        mid = int(out_channels * expand_ratio)
        self.channel_attention = channel_attention
        self.main_conv = ConvModule(in_channels, mid, 1, norm_eps=norm_eps)
        self.short_conv = ConvModule(in_channels, mid, 1, norm_eps=norm_eps)
        self.final_conv = ConvModule(2 * mid, out_channels, 1, norm_eps=norm_eps)
        self.blocks = nn.Sequential(*[
            CSPNeXtBlock(mid, mid, 1.0, add_identity, norm_eps=norm_eps)
            for _ in range(num_blocks)])
        if channel_attention:
            self.attention = ChannelAttention(2 * mid)

    def forward(self, x: Tensor) -> Tensor:
        x_short = self.short_conv(x)
        x_main = self.blocks(self.main_conv(x))
        x_final = torch.cat((x_main, x_short), dim=1)
        if self.channel_attention:
            x_final = self.attention(x_final)
        return self.final_conv(x_final)


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling: 1x1 conv, max pools 5/9/13 concatenated, 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_sizes: tuple[int, ...] = (5, 9, 13), *, norm_eps: float = 1e-5) -> None:
        super().__init__()
        mid = in_channels // 2
        self.conv1 = ConvModule(in_channels, mid, 1, norm_eps=norm_eps)
        self.poolings = nn.ModuleList(
            [nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2) for k in kernel_sizes])
        self.conv2 = ConvModule(mid * (len(kernel_sizes) + 1), out_channels, 1, norm_eps=norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [pool(x) for pool in self.poolings], dim=1))


class CSPNeXt(nn.Module):
    """The CSPNeXt P5 backbone; returns the last stage (stride 32) only.

    Args:
        deepen_factor: blocks per CSP layer = ``max(round(n * deepen_factor), 1)``.
        widen_factor: channels = ``int(c * widen_factor)``.
        expand_ratio: hidden channels of the CSP layers.
        channel_attention: channel attention in every CSP layer.
        norm_eps: batch norm eps.
    """

    def __init__(self, deepen_factor: float = 1.0, widen_factor: float = 1.0,
                 expand_ratio: float = 0.5, channel_attention: bool = True, *,
                 norm_eps: float = 1e-5) -> None:
        super().__init__()
        stem = int(_ARCH_P5[0][0] * widen_factor)
        self.stem = nn.Sequential(
            ConvModule(3, int(_ARCH_P5[0][0] * widen_factor // 2), 3, 2, 1, norm_eps=norm_eps),
            ConvModule(int(_ARCH_P5[0][0] * widen_factor // 2),
                       int(_ARCH_P5[0][0] * widen_factor // 2), 3, 1, 1, norm_eps=norm_eps),
            ConvModule(int(_ARCH_P5[0][0] * widen_factor // 2), stem, 3, 1, 1,
                       norm_eps=norm_eps))
        self.out_channels = stem
        for i, (cin, cout, blocks, add_identity, use_spp) in enumerate(_ARCH_P5):
            cin, cout = int(cin * widen_factor), int(cout * widen_factor)
            layers: list[nn.Module] = [ConvModule(cin, cout, 3, 2, 1, norm_eps=norm_eps)]
            if use_spp:
                layers.append(SPPBottleneck(cout, cout, norm_eps=norm_eps))
            layers.append(CSPLayer(cout, cout, expand_ratio,
                                   max(round(blocks * deepen_factor), 1), add_identity,
                                   channel_attention, norm_eps=norm_eps))
            self.add_module(f"stage{i + 1}", nn.Sequential(*layers))
            self.out_channels = cout

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = self.stage1(x)
        x = self.stage2(x)
        x = self.stage3(x)
        return self.stage4(x)


# --- the RTMCC head ------------------------------------------------------------

class ScaleNorm(nn.Module):
    """``x / max(||x|| / sqrt(dim), eps) * g`` over the last axis, with one learned ``g``."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.scale = dim ** -0.5
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True) * self.scale
        return x / norm.clamp(min=self.eps) * self.g


class Scale(nn.Module):
    """Element-wise learned scale (``scale``)."""

    def __init__(self, dim: int, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(init_value * torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class RTMCCBlock(nn.Module):
    """The gated attention unit (self-attention, no relative bias, no RoPE) of RTMCC.

    Args:
        num_token: tokens (keypoints).
        in_token_dims, out_token_dims: token widths (equal: residual with
            ``res_scale``).
        expansion_factor: ``e = in_token_dims * expansion_factor``.
        s: the attention feature width.
    """

    def __init__(self, num_token: int, in_token_dims: int, out_token_dims: int,
                 expansion_factor: float = 2, s: int = 128, eps: float = 1e-5) -> None:
        super().__init__()
        self.s = s
        self.num_token = num_token
        self.e = int(in_token_dims * expansion_factor)
        self.o = nn.Linear(self.e, out_token_dims, bias=False)
        self.uv = nn.Linear(in_token_dims, 2 * self.e + self.s, bias=False)
        self.gamma = nn.Parameter(torch.rand((2, self.s)))
        self.beta = nn.Parameter(torch.rand((2, self.s)))
        self.ln = ScaleNorm(in_token_dims, eps=eps)
        nn.init.xavier_uniform_(self.uv.weight)
        self.act_fn = nn.SiLU()
        self.shortcut = in_token_dims == out_token_dims
        if self.shortcut:
            self.res_scale = Scale(in_token_dims)
        self.sqrt_s = math.sqrt(s)

    def _attention(self, x: Tensor) -> Tensor:
        x = self.ln(x)
        uv = self.act_fn(self.uv(x))                                   # (N, K, 2e + s)
        u, v, base = torch.split(uv, [self.e, self.e, self.s], dim=2)
        base = base.unsqueeze(2) * self.gamma[None, None, :] + self.beta  # (N, K, 2, s)
        q, k = torch.unbind(base, dim=2)
        qk = torch.bmm(q, k.permute(0, 2, 1))                           # (N, K, K)
        kernel = torch.square(torch.relu(qk / self.sqrt_s))
        return self.o(u * torch.bmm(kernel, v))

    def forward(self, x: Tensor) -> Tensor:
        if self.shortcut:
            return self.res_scale(x) + self._attention(x)
        return self._attention(x)


class RTMCCHead(nn.Module):
    """SimCC head: 7x7 conv to K maps, flatten, ScaleNorm + Linear, GAU, two classifiers.

    Args:
        in_channels: backbone output channels.
        out_channels: keypoints K.
        input_size: ``(H, W)`` of the model input.
        in_featuremap_size: ``(h, w)`` of the backbone output.
        simcc_split_ratio: bins per input pixel.
        final_layer_kernel_size: the first conv's kernel (RTMPose: 7).
        hidden_dims, s, expansion_factor: the GAU (RTMPose: 256, 128, 2).
    """

    def __init__(self, in_channels: int, out_channels: int, input_size: tuple[int, int],
                 in_featuremap_size: tuple[int, int], simcc_split_ratio: float = 2.0,
                 final_layer_kernel_size: int = 7, hidden_dims: int = 256, s: int = 128,
                 expansion_factor: float = 2) -> None:
        super().__init__()
        flatten_dims = in_featuremap_size[0] * in_featuremap_size[1]
        self.final_layer = nn.Conv2d(in_channels, out_channels, final_layer_kernel_size, 1,
                                     final_layer_kernel_size // 2)
        self.mlp = nn.Sequential(ScaleNorm(flatten_dims),
                                 nn.Linear(flatten_dims, hidden_dims, bias=False))
        self.gau = RTMCCBlock(out_channels, hidden_dims, hidden_dims, expansion_factor, s)
        self.cls_x = nn.Linear(hidden_dims, int(input_size[1] * simcc_split_ratio), bias=False)
        self.cls_y = nn.Linear(hidden_dims, int(input_size[0] * simcc_split_ratio), bias=False)

    def forward(self, feats: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.flatten(self.final_layer(feats), 2)    # (N, K, h * w)
        x = self.gau(self.mlp(x))                         # (N, K, hidden)
        return self.cls_x(x), self.cls_y(x)


def _init_like_mmpose(model: nn.Module) -> None:
    """MMPose's initialisation (MMEngine ``init_cfg``): backbone convs Kaiming-uniform with
    a = sqrt(5) (PyTorch's default) and zero bias; head convs N(0, 0.001), every head
    linear N(0, 0.01) (the GAU's included: MMEngine applies the head's ``init_cfg`` to all
    its linears), biases zero; batch norm weight 1, bias 0 (PyTorch's default)."""
    for module in model.backbone.modules():
        if isinstance(module, nn.Conv2d) and module.bias is not None:
            nn.init.zeros_(module.bias)
    for module in model.head.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(module.weight, std=0.001 if isinstance(module, nn.Conv2d) else 0.01)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


# --- the model -------------------------------------------------------------------

class RTMPose(nn.Module):
    """RTMPose: ``x (N, 3, H, W)`` -> ``simcc_x (N, K, W * r)``, ``simcc_y (N, K, H * r)``.

    The input is normalised as the card says (RGB, MMPose's ImageNet mean and
    std in 0-255 units); the outputs are the raw SimCC logits. Build it with
    :func:`rtmpose`; load official weights with :meth:`from_mmpose_checkpoint`.

    Args:
        deepen_factor, widen_factor: the CSPNeXt scaling (see :data:`RTMPOSE_SIZES`).
        num_keypoints: K.
        input_size: ``(H, W)``, multiples of 32.
        split_ratio: SimCC bins per input pixel.
        name: the model name written into the card.

    Raises:
        ValueError: an input size that is not two positive multiples of 32, or
            a factor or K out of range.
    """

    def __init__(self, *, deepen_factor: float, widen_factor: float, num_keypoints: int = 17,
                 input_size: tuple[int, int] = (256, 192), split_ratio: float = 2.0,
                 name: str = "rtmpose") -> None:
        super().__init__()
        size = _check_input_size(input_size)
        if not (deepen_factor > 0 and widen_factor > 0):
            raise ValueError(
                f"deepen_factor and widen_factor must be positive, got {deepen_factor} and "
                f"{widen_factor}.")
        if int(_ARCH_P5[0][0] * widen_factor // 2) < 1:
            raise ValueError(f"widen_factor {widen_factor} leaves the stem without channels; "
                             "use at least 1/32.")
        if not (isinstance(num_keypoints, int) and num_keypoints > 0):
            raise ValueError(f"num_keypoints must be a positive integer, got {num_keypoints!r}.")
        if not (split_ratio > 0 and math.isfinite(split_ratio)):
            raise ValueError(f"split_ratio must be a positive number, got {split_ratio}.")
        self.input_size = size
        self.num_keypoints = num_keypoints
        self.split_ratio = float(split_ratio)
        self.name = name
        self.backbone = CSPNeXt(deepen_factor, widen_factor)
        self.head = RTMCCHead(self.backbone.out_channels, num_keypoints, size,
                              (size[0] // _STRIDE, size[1] // _STRIDE), split_ratio)
        _init_like_mmpose(self)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x (N, 3, H, W)`` normalised -> ``(simcc_x (N, K, W*r), simcc_y (N, K, H*r))``."""
        return self.head(self.backbone(x))

    def card(self, keypoints: str | None = None) -> Any:
        """The :class:`edgepose.card.ModelCard` the runtime needs for this model.

        Based on the ``"rtmpose"`` preset (top-down, SimCC, RGB with MMPose's
        mean/std, affine crops, input ``"input"``, outputs ``simcc_x`` and
        ``simcc_y``), with this model's name, input size, split ratio and keypoints.

        Args:
            keypoints: the keypoint set name; defaults to ``"coco17"`` when K is 17.

        Raises:
            ValueError: K is not 17 and no keypoint set is given, or the set's
                size differs from K.
        """
        return _card(self, "rtmpose", keypoints)

    @classmethod
    def from_mmpose_checkpoint(cls, checkpoint: str | Path | Mapping[str, Any], *,
                               trusted: bool = False) -> RTMPose:
        """Builds the RTMPose that an MMPose checkpoint describes and loads it strictly.

        The size (t/s/m/l) is recognised from the stem width and the block
        counts, K from ``head.final_layer``, the input size from ``cls_x`` and
        ``cls_y`` (split ratio 2) and checked against ``head.mlp.1``.

        Args:
            checkpoint: a ``.pth`` path, or an already loaded checkpoint /
                state dict (see :func:`load_mmpose_checkpoint`).
            trusted: see :func:`load_mmpose_checkpoint`.

        Raises:
            FileNotFoundError, ValueError: see :func:`load_mmpose_checkpoint`.
            ValueError: not an RTMPose checkpoint of a known size (the message
                lists the known ones).
            RuntimeError: keys or shapes that do not match (PyTorch's message
                lists them).
        """
        state = load_mmpose_checkpoint(checkpoint, trusted=trusted)
        config = _infer_config(state)
        model = cls(**config)
        model.load_state_dict(state, strict=True)
        return model.eval()


def _check_input_size(input_size: Any) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise ValueError(f"input_size must be (H, W), got {input_size!r}.") from None
    if h <= 0 or w <= 0 or h % _STRIDE or w % _STRIDE:
        raise ValueError(
            f"input_size (H, W) must be positive multiples of {_STRIDE} (the backbone's stride), "
            f"got {input_size!r}; RTMPose uses (256, 192) or (384, 288).")
    return h, w


def rtmpose(size: str = "t", num_keypoints: int = 17, input_size: tuple[int, int] = (256, 192),
            *, deepen_factor: float | None = None, widen_factor: float | None = None,
            split_ratio: float = 2.0) -> RTMPose:
    """An RTMPose of a named size, randomly initialised as MMPose does.

    Args:
        size: ``"t"``, ``"s"``, ``"m"`` or ``"l"`` (see :data:`RTMPOSE_SIZES`).
        num_keypoints: K (17 for COCO).
        input_size: ``(H, W)`` of the model input, multiples of 32.
        deepen_factor, widen_factor: override the size's factors (a tiny
            variant for tests, e.g. ``widen_factor=0.125``); the parameter
            names stay MMPose's, the shapes follow the factors.
        split_ratio: SimCC bins per input pixel.

    Returns:
        the model in eval mode.

    Raises:
        ValueError: an unknown size, or invalid sizes or factors.
    """
    try:
        base = RTMPOSE_SIZES[size]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown RTMPose size {size!r}; available: {', '.join(RTMPOSE_SIZES)}.") from None
    deepen = base.deepen_factor if deepen_factor is None else float(deepen_factor)
    widen = base.widen_factor if widen_factor is None else float(widen_factor)
    h, w = _check_input_size(input_size)
    name = f"rtmpose-{size}" if deepen_factor is None and widen_factor is None else (
        f"rtmpose-{size}-d{deepen:g}-w{widen:g}")
    model = RTMPose(deepen_factor=deepen, widen_factor=widen, num_keypoints=num_keypoints,
                    input_size=(h, w), split_ratio=split_ratio, name=f"{name}-{h}x{w}")
    return model.eval()


# --- checkpoints -----------------------------------------------------------------

def load_mmpose_checkpoint(checkpoint: str | Path | Mapping[str, Any], *,
                           trusted: bool = False) -> dict[str, Any]:
    """The model state dict of an MMPose checkpoint, keys unchanged.

    Takes ``checkpoint["state_dict"]`` when present (MMEngine checkpoints),
    else the mapping itself; drops the ``data_preprocessor.*`` buffers (mean
    and std, which the card carries instead). No other key is renamed or
    stripped: the names are MMPose's, as the reference models use them.

    Args:
        checkpoint: a path to a ``.pth`` file, or a loaded checkpoint or state dict.
        trusted: load the file with full unpickling (``weights_only=False``).
            Without it, the file is read with PyTorch's safe loader, which
            accepts tensors, plain containers and NumPy arrays (MMPose stores
            dataset metadata as arrays) and refuses any other object.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file holds objects the safe loader refuses (the
            message says how to proceed), or no state dict of tensors.
    """
    if isinstance(checkpoint, Mapping):
        raw = checkpoint
    else:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"The checkpoint {path} does not exist.")
        raw = _torch_load(path, trusted)
    if not isinstance(raw, Mapping):
        raise ValueError(f"A checkpoint must be a mapping, got {type(raw).__name__}.")
    state = raw["state_dict"] if "state_dict" in raw else raw
    if not isinstance(state, Mapping):
        raise ValueError(f"The checkpoint's state_dict must be a mapping, got "
                         f"{type(state).__name__}.")
    out = {}
    for key, value in state.items():
        if key.startswith("data_preprocessor."):
            continue
        if not isinstance(value, torch.Tensor):
            raise ValueError(
                f"The state dict entry {key!r} is a {type(value).__name__}, not a tensor: "
                "pass the model's state dict or an MMPose checkpoint holding one under "
                "'state_dict'.")
        out[key] = value
    return out


def _torch_load(path: Path, trusted: bool) -> Any:
    if trusted:
        return torch.load(path, map_location="cpu", weights_only=False)
    import pickle

    import numpy as np

    allowed: list[Any] = [np.ndarray, np.dtype]
    for module_name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            module = __import__(module_name, fromlist=["_reconstruct", "scalar"])
        except ImportError:
            continue
        allowed += [module._reconstruct, module.scalar]
        break
    allowed += [type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int32,
                                             np.int64, np.uint8, np.bool_)]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"The checkpoint {path} holds objects that PyTorch's safe loader refuses ({first}). "
            "If you trust the file, pass trusted=True; otherwise extract its state dict where "
            "it can be unpickled: torch.save(torch.load(p, weights_only=False)['state_dict'], "
            "'state_dict.pth').") from None


def _infer_config(state: Mapping[str, Any]) -> dict[str, Any]:
    """RTMPose constructor arguments from the shapes of an MMPose state dict."""
    required = ("backbone.stem.2.conv.weight", "head.final_layer.weight", "head.cls_x.weight",
                "head.cls_y.weight", "head.mlp.1.weight")
    missing = [k for k in required if k not in state]
    if missing:
        raise ValueError(
            f"Not an RTMPose (CSPNeXt + RTMCC head) state dict: missing {', '.join(missing)}.")
    stem = int(state["backbone.stem.2.conv.weight"].shape[0])
    blocks = []
    for stage, index in ((1, 1), (2, 1), (3, 1), (4, 2)):
        prefix = f"backbone.stage{stage}.{index}.blocks."
        blocks.append(len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)}))
    found = None
    for name, size in RTMPOSE_SIZES.items():
        expected = [max(round(n * size.deepen_factor), 1) for _, _, n, _, _ in _ARCH_P5]
        if int(_ARCH_P5[0][0] * size.widen_factor) == stem and expected == blocks:
            found = name, size
            break
    if found is None:
        known = ", ".join(
            f"{n} (stem {int(64 * s.widen_factor)}, blocks "
            f"{[max(round(b * s.deepen_factor), 1) for _, _, b, _, _ in _ARCH_P5]})"
            for n, s in RTMPOSE_SIZES.items())
        raise ValueError(
            f"The checkpoint's CSPNeXt (stem width {stem}, blocks per stage {blocks}) is not a "
            f"known RTMPose size; known: {known}.")
    name, size = found
    k = int(state["head.final_layer.weight"].shape[0])
    ratio = 2.0
    w = int(state["head.cls_x.weight"].shape[0]) / ratio
    h = int(state["head.cls_y.weight"].shape[0]) / ratio
    flat = int(state["head.mlp.1.weight"].shape[1])
    if not (w.is_integer() and h.is_integer()) or (h // _STRIDE) * (w // _STRIDE) != flat:
        raise ValueError(
            f"The head's shapes (cls_x {tuple(state['head.cls_x.weight'].shape)}, cls_y "
            f"{tuple(state['head.cls_y.weight'].shape)}, mlp.1 "
            f"{tuple(state['head.mlp.1.weight'].shape)}) do not fit a split ratio of 2.0.")
    size_hw = (int(h), int(w))
    return {"deepen_factor": size.deepen_factor, "widen_factor": size.widen_factor,
            "num_keypoints": k, "input_size": size_hw, "split_ratio": ratio,
            "name": f"rtmpose-{name}-{size_hw[0]}x{size_hw[1]}"}


# --- cards -----------------------------------------------------------------------

def _keypoint_set(k: int, keypoints: str | None) -> str:
    """The keypoint set name of a K-keypoint model's card (default coco17 for K = 17)."""
    from edgepose.keypoints import KEYPOINT_SETS

    if keypoints is None:
        if k != 17:
            raise ValueError(
                f"This model has {k} keypoints: name its keypoint set, e.g. card(keypoints=...), "
                f"one of {', '.join(KEYPOINT_SETS)}.")
        return "coco17"
    if keypoints not in KEYPOINT_SETS:
        raise ValueError(f"Unknown keypoint set {keypoints!r}; known: {', '.join(KEYPOINT_SETS)}.")
    if len(KEYPOINT_SETS[keypoints]) != k:
        raise ValueError(f"Keypoint set {keypoints!r} has {len(KEYPOINT_SETS[keypoints])} "
                         f"keypoints, the model {k}.")
    return keypoints


def _card(model: RTMPose, preset: str, keypoints: str | None) -> Any:
    import dataclasses

    from edgepose.presets import preset_card

    keypoints = _keypoint_set(model.num_keypoints, keypoints)
    base = preset_card(preset)
    return dataclasses.replace(
        base, name=f"{model.name}-{keypoints}", keypoints=keypoints,
        input=dataclasses.replace(base.input, size=model.input_size),
        head_params={**base.head_params, "split_ratio": model.split_ratio},
        provenance={"architecture": f"edgepose_export.models.{type(model).__name__}",
                    "model": model.name})
