"""A tiny SimCC pose model for the export tests: an RTMCC-shaped head on a small
CNN, trained in seconds on Gaussian blobs so its outputs are peaked (INT8 can only
be judged on a trained model). Shared by test_openvino.py and test_tflite.py; the
trained weights are cached once per session in pytest's base temporary folder."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgepose.card import ModelCard

INPUT_HW = (64, 48)
K = 17


# --- a tiny SimCC model: CNN backbone + RTMCC-like head ------------------------------------

class TinySimCC(nn.Module):
    """``(N, 3, 64, 48)`` -> ``simcc_x (N, 17, 96)``, ``simcc_y (N, 17, 128)``: a stride-8
    CNN, then RTMCC's head shape (final conv to K channels, flatten, a linear layer, a
    residual gated block, two classifiers)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU())
        self.final_layer = nn.Conv2d(32, K, 3, 1, 1)
        self.mlp = nn.Linear((INPUT_HW[0] // 8) * (INPUT_HW[1] // 8), 64)
        self.gate = nn.Linear(64, 64)
        self.cls_x = nn.Linear(64, INPUT_HW[1] * 2)
        self.cls_y = nn.Linear(64, INPUT_HW[0] * 2)

    def forward(self, x):
        t = self.mlp(self.final_layer(self.backbone(x)).flatten(2))
        t = t + torch.relu(self.gate(t))
        return self.cls_x(t), self.cls_y(t)


def tiny_card(**input_overrides) -> ModelCard:
    return ModelCard.from_dict({
        "edgepose_card": 1, "name": "tiny-simcc", "task": "topdown", "head": "simcc",
        "keypoints": "coco17",
        "input": {"name": "input", "size": list(INPUT_HW), "mean": [128.0] * 3,
                  "std": [64.0] * 3, **input_overrides},
        "head_params": {"split_ratio": 2.0},
        "outputs": {"simcc_x": "simcc_x", "simcc_y": "simcc_y"},
        "provenance": {"card": "test"}})


# 17 keypoints at fixed offsets around one blob: a task a tiny model learns in seconds.
_OFFSETS = 6.0 * np.stack([np.cos(np.arange(K) * 2.3), np.sin(np.arange(K) * 2.3)], axis=1)


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 3, 64, 48)`` normalised tensors with a Gaussian blob, and ``(n, 17, 2)``
    keypoints (x, y) in input pixels."""
    rng = np.random.default_rng(seed)
    h, w = INPUT_HW
    cx, cy = rng.uniform(10, w - 10, n), rng.uniform(10, h - 10, n)
    yy, xx = np.mgrid[:h, :w]
    blob = np.exp(-((xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2) / 18.0)
    x = blob[:, None] * np.array([1.0, 0.5, -0.5])[None, :, None, None]
    x = x + 0.1 * rng.standard_normal((n, 3, h, w))
    kp = np.stack([cx, cy], axis=1)[:, None] + _OFFSETS[None]
    return x.astype(np.float32), kp.astype(np.float32)


def _soft_labels(coords: np.ndarray, bins: int, sigma: float = 2.0) -> np.ndarray:
    d = np.arange(bins)[None, None] / 2.0 - coords[..., None]
    p = np.exp(-d ** 2 / (2 * (sigma / 2.0) ** 2))
    return (p / p.sum(-1, keepdims=True)).astype(np.float32)


def train_tiny(steps: int = 100, seed: int = 0) -> TinySimCC:
    """Adam on soft SimCC labels, batches of 16 fresh blobs ."""
    torch.manual_seed(seed)
    model = TinySimCC()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    x, kp = blobs(steps * 16, seed + 100)
    for i in range(steps):
        xb, kb = torch.from_numpy(x[i * 16:(i + 1) * 16]), kp[i * 16:(i + 1) * 16]
        lx = torch.from_numpy(_soft_labels(kb[..., 0], INPUT_HW[1] * 2))
        ly = torch.from_numpy(_soft_labels(kb[..., 1], INPUT_HW[0] * 2))
        ox, oy = model(xb)
        loss = -(lx * torch.log_softmax(ox, -1)).sum(-1).mean() \
            - (ly * torch.log_softmax(oy, -1)).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> TinySimCC:
    """Trained once per session (~10 s of CPU), cached in pytest's base temporary folder."""
    cache = tmp_path_factory.getbasetemp() / "tiny_simcc_trained.pt"
    if cache.is_file():
        model = TinySimCC()
        model.load_state_dict(torch.load(cache))
        return model.eval()
    model = train_tiny()
    torch.save(model.state_dict(), cache)
    return model


def torch_outputs(model, x) -> dict[str, np.ndarray]:
    with torch.no_grad():
        sx, sy = model(torch.from_numpy(x))
    return {"simcc_x": sx.numpy(), "simcc_y": sy.numpy()}
