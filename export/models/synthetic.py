"""Synthetic stick figures with known keypoints, and a short CPU training loop.

INT8 quantization can only be judged on a model whose outputs are peaked
(a randomly initialised pose model outputs noise, whose argmax any rounding
moves). :func:`train_briefly` trains one of the reference architectures for a
few hundred steps on :func:`render_figures` images: enough for peaked
outputs and, on held-out figures, a keypoint error of about 5 px for a tiny
SimpleBaseline and 7 px (under a map pixel) for a tiny OpenPose; SimCC
learns slowly from scratch, and a tiny RTMPose gets about 8 px on 128 x 96
crops in 400 steps (the mean pose: 14 px).

The figures are COCO-17 skeletons drawn with OpenCV: a filled head with eyes,
nose and ears as dots, limbs as thick lines, in a fixed colour per limb (so
the person's left and right are told apart by colour, as a real model tells
them apart by appearance) jittered per figure, with random pose, scale,
rotation and position on a random background (a colour gradient, noise and
a few distractor shapes). Images are BGR uint8, like every image the
edgepose runtime takes; keypoints are in pixel-centre coordinates (pixel
``(i, j)`` has its centre at ``x = j, y = i``).

The figures need NumPy and OpenCV only; :func:`train_briefly` needs torch
(which importing ``edgepose_export.models`` loads anyway).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["FigureSet", "TrainingReport", "render_figures", "coco17_to_coco18", "preprocess",
           "simcc_targets", "heatmap_targets", "paf_targets", "train_briefly",
           "keypoint_error_px"]

# Keypoints, COCO-17 order: nose, l_eye, r_eye, l_ear, r_ear, l_sho, r_sho, l_elb, r_elb,
# l_wri, r_wri, l_hip, r_hip, l_knee, r_knee, l_ank, r_ank. Image x grows to the right;
# the figure faces the viewer, so the person's left is at +x.

#: limbs drawn as lines: (a, b, BGR colour)
_LIMBS = (
    (5, 7, (0, 200, 255)), (7, 9, (0, 255, 200)),        # left arm: orange / yellow
    (6, 8, (255, 120, 0)), (8, 10, (255, 0, 160)),       # right arm: blue / violet
    (11, 13, (0, 220, 0)), (13, 15, (120, 255, 120)),    # left leg: greens
    (12, 14, (0, 0, 230)), (14, 16, (140, 110, 255)),    # right leg: reds
    (5, 6, (200, 200, 200)), (11, 12, (160, 160, 160)),  # shoulders, hips
    (5, 11, (0, 160, 160)), (6, 12, (160, 0, 160)),      # torso sides
)
#: face dots: (keypoint, BGR colour, radius in head radii)
_FACE_DOTS = ((3, (0, 255, 255), 0.28), (4, (255, 0, 255), 0.28),   # ears
              (1, (0, 90, 0), 0.2), (2, (90, 0, 0), 0.2),           # eyes
              (0, (0, 0, 160), 0.18))                               # nose
_HEAD_COLOUR = (150, 190, 230)


@dataclass(frozen=True)
class FigureSet:
    """Rendered figures and their ground truth.

    Attributes:
        images: ``(N, H, W, 3)`` uint8 BGR.
        keypoints: ``(N, P, 17, 2)`` float32 (x, y) COCO-17 keypoints in image
            pixels (pixel-centre coordinates); P is the most people per image.
        visible: ``(N, P, 17)`` bool, the keypoint exists and lies inside the
            image (False for every keypoint of an absent person).
        people: ``(N,)`` int, how many people each image holds (the first ones).
    """

    images: NDArray[np.uint8]
    keypoints: NDArray[np.float32]
    visible: NDArray[np.bool_]
    people: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _pose(rng: np.random.Generator) -> NDArray[np.float64]:
    """One random COCO-17 pose in body units (about 1 tall), hips centred at the origin."""
    kp = np.zeros((17, 2))
    shoulder_w = 0.22 * rng.uniform(0.85, 1.15)
    hip_w = 0.15 * rng.uniform(0.85, 1.15)
    torso = 0.32 * rng.uniform(0.9, 1.1)
    lean = math.radians(rng.uniform(-12, 12))
    neck = np.array([math.sin(lean), -math.cos(lean)]) * torso
    across = np.array([math.cos(lean), math.sin(lean)])
    kp[5], kp[6] = neck + across * shoulder_w / 2, neck - across * shoulder_w / 2
    kp[11], kp[12] = across * hip_w / 2, -across * hip_w / 2

    def limb(start, angle_deg, length, side):
        # angle from straight down, positive = away from the body's midline
        a = math.radians(angle_deg) * side + lean
        return start + np.array([math.sin(a), math.cos(a)]) * length

    for side, (sho, elb, wri, hip, knee, ank) in ((1, (5, 7, 9, 11, 13, 15)),
                                                  (-1, (6, 8, 10, 12, 14, 16))):
        upper = rng.uniform(-30, 160)
        kp[elb] = limb(kp[sho], upper, 0.17 * rng.uniform(0.9, 1.1), side)
        kp[wri] = limb(kp[elb], upper + rng.uniform(-140, 40), 0.16 * rng.uniform(0.9, 1.1),
                       side)
        thigh = rng.uniform(-20, 45)
        kp[knee] = limb(kp[hip], thigh, 0.24 * rng.uniform(0.9, 1.1), side)
        kp[ank] = limb(kp[knee], thigh - rng.uniform(0, 70), 0.23 * rng.uniform(0.9, 1.1),
                       side)
    tilt = lean + math.radians(rng.uniform(-20, 20))
    up = np.array([math.sin(tilt), -math.cos(tilt)])
    right = np.array([math.cos(tilt), math.sin(tilt)])   # towards the person's left (+x)
    head = neck + up * 0.13
    turn = rng.uniform(-0.4, 0.4)                        # head yaw: shifts the face sideways
    kp[0] = head + right * 0.025 * turn - up * 0.005
    kp[1] = head + right * (0.032 + 0.02 * turn) + up * 0.02
    kp[2] = head - right * (0.032 - 0.02 * turn) + up * 0.02
    kp[3] = head + right * 0.068 * (1 - 0.3 * max(turn, 0)) + up * 0.005
    kp[4] = head - right * 0.068 * (1 + 0.3 * min(turn, 0)) + up * 0.005
    return kp


def _background(rng: np.random.Generator, h: int, w: int) -> NDArray[np.uint8]:
    import cv2

    ends = rng.integers(0, 256, (2, 1, 3)).astype(np.uint8)          # a two-colour gradient
    ends = ends if rng.random() < 0.5 else ends.transpose(1, 0, 2)
    img = cv2.resize(ends, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.int16)
    noise = rng.normal(0, rng.uniform(3, 18), (h // 4 + 1, w // 4 + 1, 3)).astype(np.float32)
    img += cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.int16)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(2, 7)):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x0, y0), (x0 + int(rng.integers(5, w // 2)),
                                          y0 + int(rng.integers(5, h // 2))), colour, -1)
        else:
            axes = (int(rng.integers(3, w // 4)), int(rng.integers(3, h // 4)))
            cv2.ellipse(img, (x0, y0), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    return img


def _draw(img: NDArray[np.uint8], kp: NDArray[np.float64], scale_px: float,
          rng: np.random.Generator) -> None:
    import cv2

    shift = 4  # sub-pixel drawing: coordinates in 1/16 px
    one = 1 << shift

    def pt(p):
        return int(round(p[0] * one)), int(round(p[1] * one))

    jitter = iter(rng.integers(-35, 36, (len(_LIMBS) + len(_FACE_DOTS) + 2, 3)).tolist())

    def colour_of(base):
        return tuple(min(255, max(0, c + j)) for c, j in zip(base, next(jitter)))

    thickness = max(1, int(round(0.04 * scale_px * rng.uniform(0.75, 1.25))))
    neck = (kp[5] + kp[6]) / 2
    head_r = 0.085 * scale_px
    head = kp[0] + (neck - kp[0]) * 0.1
    cv2.line(img, pt(neck), pt(head), colour_of((200, 200, 200)), thickness, cv2.LINE_AA, shift)
    for a, b, colour in _LIMBS:
        cv2.line(img, pt(kp[a]), pt(kp[b]), colour_of(colour), thickness, cv2.LINE_AA, shift)
    cv2.circle(img, pt(head), int(round(head_r * one)), colour_of(_HEAD_COLOUR), -1,
               cv2.LINE_AA, shift)
    for k, colour, radius in _FACE_DOTS:
        cv2.circle(img, pt(kp[k]), max(one, int(round(radius * head_r * one))),
                   colour_of(colour), -1, cv2.LINE_AA, shift)


def render_figures(n: int, size: tuple[int, int] = (256, 192), *, seed: int = 0,
                   people: int | tuple[int, int] = 1,
                   height: tuple[float, float] | None = None) -> FigureSet:
    """Renders ``n`` images of stick figures with their COCO-17 keypoints.

    Args:
        n: number of images.
        size: ``(H, W)`` of the images.
        seed: the random seed (the same seed gives the same images).
        people: people per image, or a ``(min, max)`` range. One person
            (the default) gives top-down crops: the figure centred and
            filling most of the height, as a detector box x1.25 would.
        height: the figure height as a fraction of the image height,
            ``(min, max)``; default ``(0.65, 0.9)`` for one person, else
            ``(0.3, 0.6)``.

    Returns:
        a :class:`FigureSet`.

    Raises:
        ValueError: ``n`` < 0, a size that is not two integers >= 16, or an
            invalid people range.
    """
    import cv2  # noqa: F401  (fail early when OpenCV is missing)

    h, w = (int(v) for v in size)
    if n < 0 or h < 16 or w < 16:
        raise ValueError(f"n must be >= 0 and size (H, W) at least 16 x 16, got {n} and {size}.")
    lo, hi = (people, people) if isinstance(people, (int, np.integer)) else people
    if not 1 <= lo <= hi:
        raise ValueError(f"people must be >= 1 (or a range 1 <= min <= max), got {people!r}.")
    single = hi == 1
    if height is None:
        height = (0.65, 0.9) if single else (0.3, 0.6)
    rng = np.random.default_rng(seed)
    images = np.empty((n, h, w, 3), dtype=np.uint8)
    keypoints = np.full((n, hi, 17, 2), -1.0, dtype=np.float32)
    visible = np.zeros((n, hi, 17), dtype=bool)
    counts = np.zeros(n, dtype=np.int64)
    for i in range(n):
        img = _background(rng, h, w)
        count = int(rng.integers(lo, hi + 1))
        counts[i] = count
        for p in range(count):
            body = _pose(rng)
            angle = math.radians(rng.uniform(-20, 20))
            rot = np.array([[math.cos(angle), -math.sin(angle)],
                            [math.sin(angle), math.cos(angle)]])
            body = body @ rot.T
            extent = body.max(axis=0) - body.min(axis=0)
            scale_px = rng.uniform(*height) * h / max(extent[1], 0.5)
            scale_px = min(scale_px, 0.95 * w / max(extent[0], 1e-3)) if single else scale_px
            pts = body * scale_px
            centre = (pts.max(axis=0) + pts.min(axis=0)) / 2
            if single:
                target = np.array([w / 2, h / 2]) + rng.uniform(-0.06, 0.06, 2) * [w, h]
            else:
                target = rng.uniform([0.1 * w, 0.15 * h], [0.9 * w, 0.85 * h])
            pts = pts - centre + target - 0.5  # pixel-centre coordinates
            _draw(img, pts, scale_px, rng)
            keypoints[i, p] = pts
            visible[i, p] = ((pts[:, 0] >= 0) & (pts[:, 0] <= w - 1)
                             & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1))
        images[i] = img
    return FigureSet(images, keypoints, visible, counts)


#: COCO-17 index of each COCO-18 (OpenPose) part; -1 is the neck (shoulder midpoint).
_COCO18_FROM_COCO17 = (0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)


def coco17_to_coco18(keypoints: NDArray[np.floating],
                     visible: NDArray[np.bool_]) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """COCO-17 keypoints ``(..., 17, 2)`` to OpenPose COCO-18 ``(..., 18, 2)``; the neck is
    the shoulder midpoint, visible when both shoulders are."""
    idx = np.array(_COCO18_FROM_COCO17)
    out = np.asarray(keypoints, dtype=np.float32)[..., np.maximum(idx, 0), :].copy()
    vis = np.asarray(visible)[..., np.maximum(idx, 0)].copy()
    out[..., 1, :] = (keypoints[..., 5, :] + keypoints[..., 6, :]) / 2
    vis[..., 1] = visible[..., 5] & visible[..., 6]
    return out, vis


def preprocess(images: NDArray[np.uint8], card: Any) -> NDArray[np.float32]:
    """BGR uint8 images ``(N, H, W, 3)`` (already at the model input size) to the model's
    input tensor as the card says (colour order, mean/std, layout), as the runtime does."""
    spec = card.input
    x = images if spec.color == "BGR" else images[..., ::-1]
    x = (x.astype(np.float32) - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std,
                                                                                np.float32)
    if spec.layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)


# --- targets ---------------------------------------------------------------------

def simcc_targets(keypoints: NDArray[np.floating], size: tuple[int, int], split_ratio: float = 2.0,
                  sigma: tuple[float, float] | None = None
                  ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """MMPose ``SimCCLabel`` targets (Gaussian, not normalised, no DARK): for keypoints
    ``(N, K, 2)`` in input pixels, ``(N, K, W * r)`` and ``(N, K, H * r)`` with peaks at
    ``x * r`` and ``y * r``. ``sigma`` in bins defaults to RTMPose's (4.9, 5.66) at 256x192,
    scaled with the input size."""
    h, w = size
    if sigma is None:
        sigma = (4.9 * w / 192, 5.66 * h / 256)
    bins_x = np.arange(int(w * split_ratio), dtype=np.float32)
    bins_y = np.arange(int(h * split_ratio), dtype=np.float32)
    mu = np.asarray(keypoints, np.float32) * split_ratio
    tx = np.exp(-((bins_x - mu[..., :1]) ** 2) / (2 * sigma[0] ** 2))
    ty = np.exp(-((bins_y - mu[..., 1:]) ** 2) / (2 * sigma[1] ** 2))
    return tx.astype(np.float32), ty.astype(np.float32)


def heatmap_targets(keypoints: NDArray[np.floating], heatmap_size: tuple[int, int],
                    stride: float, sigma: float = 2.0, offset: float = 0.0) -> NDArray[np.float32]:
    """Gaussian heatmaps ``(N, K, h, w)`` (peak 1) for keypoints ``(N, K, 2)`` in input
    pixels, where heatmap pixel ``j`` sits at input ``j * stride + offset`` (MMPose's
    ``MSRAHeatmap``: offset 0)."""
    h, w = heatmap_size
    mu = (np.asarray(keypoints, np.float32) - offset) / stride
    gx = np.exp(-((np.arange(w, dtype=np.float32) - mu[..., :1]) ** 2) / (2 * sigma ** 2))
    gy = np.exp(-((np.arange(h, dtype=np.float32) - mu[..., 1:]) ** 2) / (2 * sigma ** 2))
    return (gy[..., :, None] * gx[..., None, :]).astype(np.float32)


def paf_targets(keypoints: NDArray[np.floating], visible: NDArray[np.bool_],
                limbs: NDArray[np.integer], map_size: tuple[int, int], stride: float,
                offset: float, sigma: float = 1.0, limb_width: float = 1.0
                ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """OpenPose targets for one image: part heatmaps ``(K + 1, h, w)`` (the max over
    people of Gaussians of ``sigma`` map pixels, then a background channel
    ``1 - max``) and part affinity fields ``(2 L, h, w)`` (channels ``2 l, 2 l + 1``: the
    unit vector from part a to part b of limb l within ``limb_width`` map pixels of the
    segment, averaged where people overlap), for keypoints ``(P, K, 2)`` in input pixels;
    map pixel ``j`` sits at input ``j * stride + offset``."""
    h, w = map_size
    kp = (np.asarray(keypoints, np.float32) - offset) / stride
    p, k = kp.shape[:2]
    ys, xs = np.mgrid[:h, :w].astype(np.float32)
    heat = np.zeros((k + 1, h, w), np.float32)
    for i in range(p):
        for j in range(k):
            if visible[i, j]:
                g = np.exp(-((xs - kp[i, j, 0]) ** 2 + (ys - kp[i, j, 1]) ** 2) / (2 * sigma ** 2))
                np.maximum(heat[j], g, out=heat[j])
    heat[k] = 1.0 - heat[:k].max(axis=0)
    pafs = np.zeros((2 * len(limbs), h, w), np.float32)
    for li, (a, b) in enumerate(np.asarray(limbs)):
        count = np.zeros((h, w), np.float32)
        for i in range(p):
            # a limb with one end outside the image still crosses it
            if not (visible[i, a] or visible[i, b]):
                continue
            d = kp[i, b] - kp[i, a]
            length = float(np.hypot(*d))
            if length < 1e-3:
                continue
            u = d / length
            rx, ry = xs - kp[i, a, 0], ys - kp[i, a, 1]
            along = rx * u[0] + ry * u[1]
            across = np.abs(rx * u[1] - ry * u[0])
            on = (along >= -limb_width) & (along <= length + limb_width) & (across <= limb_width)
            pafs[2 * li][on] += u[0]
            pafs[2 * li + 1][on] += u[1]
            count += on
        nz = count > 0
        pafs[2 * li][nz] /= count[nz]
        pafs[2 * li + 1][nz] /= count[nz]
    return heat, pafs


# --- training ----------------------------------------------------------------------

@dataclass
class TrainingReport:
    """What :func:`train_briefly` did.

    Attributes:
        head: ``"simcc"``, ``"heatmap"`` or ``"paf"``.
        steps, batch_size: the optimisation run.
        seconds: wall-clock time of the whole call (data included).
        cpu_seconds: CPU time of the process during the call (all threads).
        loss_start, loss_end: the mean loss over the first and last 10% of steps.
        keypoint_error_px: the mean keypoint error on held-out figures, in
            model-input pixels, decoded with the runtime's decoder for the
            model's card (``"paf"``: people grouped by
            :func:`edgepose.ops.group_paf`, each true person compared with
            the grouped person nearest to it, over the parts both have).
        recall: the fraction of visible held-out keypoints found (``"paf"``:
            present in the matched grouped person).
        losses: the loss of every step.
    """

    head: str
    steps: int
    batch_size: int
    seconds: float
    cpu_seconds: float
    loss_start: float
    loss_end: float
    keypoint_error_px: float
    recall: float
    losses: list[float] = field(repr=False, default_factory=list)


def _simcc_loss(torch, pred, target, weight, beta: float = 10.0):
    # MMPose KLDiscretLoss(beta=10, label_softmax=True, use_target_weight=True), per image
    f = torch.nn.functional
    log_pt = f.log_softmax(pred * beta, dim=-1)
    labels = f.softmax(target * beta, dim=-1)
    kl = f.kl_div(log_pt, labels, reduction="none").mean(dim=-1)
    return (kl * weight).sum() / pred.shape[1] / pred.shape[0]


def train_briefly(model: Any, head: str | None = None, *, steps: int = 300,
                  batch_size: int = 16, seed: int = 0, lr: float = 2e-3,
                  input_size: tuple[int, int] | None = None, pool: int | None = None,
                  eval_images: int = 64, threads: int | None = None) -> TrainingReport:
    """Trains a reference model on synthetic figures for a few hundred CPU steps.

    SimCC (RTMPose): MMPose's KL loss (beta 10, label softmax) on Gaussian
    1-D targets; heatmaps (SimpleBaseline): MSE on Gaussian targets (sigma 2
    heatmap pixels, as the card's blur kernel 11 assumes); PAF (OpenPose):
    MSE on part heatmaps (sigma 1 map pixel) and affinity fields of 1-3
    people. AdamW with a short warm-up and cosine decay; training images come
    from a pool rendered up front (rendering costs more than a tiny model's
    step). The model is left in eval mode.

    SimCC learns slowly from scratch (MMPose trains RTMPose from a
    pretrained backbone for hundreds of epochs): a tiny RTMPose stays near
    the mean pose for the first ~100 steps, and 300 steps give a
    localising, peaked but coarse model (about 9 px on 128 x 96 crops,
    against 16 px for the mean pose); heatmap and PAF models learn faster.

    Args:
        model: an :class:`RTMPose`, :class:`SimpleBaseline` or :class:`OpenPose`
            (anything with ``card()`` and the matching outputs).
        head: ``"simcc"``, ``"heatmap"`` or ``"paf"``; default the card's head.
        steps, batch_size, lr: the optimisation.
        seed: seeds the rendered figures and the batch order (a local
            generator; torch's global RNG, which initialised the model, is not
            touched).
        input_size: ``(H, W)`` of the training images; default the card's
            input size (a PAF model may train smaller: it is fully convolutional).
        pool: training images rendered up front (default: a third of the
            images the steps draw, from 256 to 2048).
        eval_images: held-out images for the keypoint error.
        threads: torch intra-op threads during training (default: unchanged).

    Returns:
        a :class:`TrainingReport`.

    Raises:
        ValueError: an unknown head, or one that does not match the model's card.
    """
    from edgepose_export.api import require

    torch = require("torch")
    start, cpu_start = time.perf_counter(), time.process_time()
    card = model.card()
    head = card.head if head is None else head
    if head not in ("simcc", "heatmap", "paf"):
        raise ValueError(f"head must be 'simcc', 'heatmap' or 'paf', got {head!r}.")
    if head != card.head:
        raise ValueError(f"The model's card says head {card.head!r}, not {head!r}.")
    size = tuple(card.input.size) if input_size is None else tuple(int(v) for v in input_size)
    if head != "paf" and size != tuple(card.input.size):
        raise ValueError(f"A top-down model trains at its input size {card.input.size}, "
                         f"got input_size {input_size}.")
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        n_pool = pool if pool is not None else min(2048, max(256, steps * batch_size // 3))
        people = (1, 3) if head == "paf" else 1
        train = render_figures(n_pool, size, seed=seed, people=people)
        held_out = render_figures(eval_images, size, seed=seed + 1_000_003, people=people)
        # PAF targets are slow to draw: all up front (the maps are small); the others per batch
        targets = _paf_targets(card, train, size) if head == "paf" else None
        gen = torch.Generator().manual_seed(seed)
        params_decay = [p for n, p in model.named_parameters() if p.ndim > 1]
        params_other = [p for n, p in model.named_parameters() if p.ndim <= 1]
        opt = torch.optim.AdamW([{"params": params_decay, "weight_decay": 1e-4},
                                 {"params": params_other, "weight_decay": 0.0}], lr=lr)
        warmup = max(1, steps // 20)

        def schedule(step):
            if step < warmup:
                return (step + 1) / warmup
            t = (step - warmup) / max(1, steps - warmup)
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        model.train()
        losses: list[float] = []
        for _ in range(steps):
            idx = torch.randint(0, n_pool, (batch_size,), generator=gen).numpy()
            outputs = model(torch.from_numpy(preprocess(train.images[idx], card)))
            batch = ([t[idx] for t in targets] if targets is not None
                     else _targets(head, model, card, train, idx, size))
            loss = _loss(torch, head, outputs, [torch.from_numpy(t) for t in batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 35.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        model.eval()
        error, recall = _evaluate(torch, model, card, head, held_out, size)
    finally:
        if threads is not None:
            torch.set_num_threads(old_threads)
    tail = max(1, steps // 10)
    return TrainingReport(head=head, steps=steps, batch_size=batch_size,
                          seconds=time.perf_counter() - start,
                          cpu_seconds=time.process_time() - cpu_start,
                          loss_start=float(np.mean(losses[:tail])) if losses else float("nan"),
                          loss_end=float(np.mean(losses[-tail:])) if losses else float("nan"),
                          keypoint_error_px=error, recall=recall, losses=losses)


def _targets(head: str, model: Any, card: Any, data: FigureSet, idx: NDArray[np.intp],
             size: tuple[int, int]) -> list[NDArray[np.float32]]:
    kp, vis = data.keypoints[idx, 0], data.visible[idx, 0].astype(np.float32)
    if head == "simcc":
        tx, ty = simcc_targets(kp, size, card.params.split_ratio)
        return [tx, ty, vis]
    stride = int(getattr(model, "stride", 4))
    hm = heatmap_targets(kp, (size[0] // stride, size[1] // stride), stride,
                         offset=card.params.offset)
    return [hm, vis]


def _paf_targets(card: Any, data: FigureSet, size: tuple[int, int]) -> list[NDArray[np.float32]]:
    params = card.params
    stride, offset = params.stride, params.offset
    kp18, vis18 = coco17_to_coco18(data.keypoints, data.visible)
    map_size = (size[0] // int(stride), size[1] // int(stride))
    limbs = np.asarray(params.limbs)
    channels = np.asarray(params.paf_channels)  # (x, y) channel of each limb
    n = len(data)
    heat = np.empty((n, params.num_parts + 1) + map_size, np.float32)
    pafs = np.zeros((n, int(channels.max()) + 1) + map_size, np.float32)
    for i in range(n):
        p = int(data.people[i])
        h, f = paf_targets(kp18[i, :p], vis18[i, :p], limbs, map_size, stride, offset)
        heat[i] = h
        pafs[i, channels[:, 0]] = f[0::2]
        pafs[i, channels[:, 1]] = f[1::2]
    return [heat, pafs]


def _loss(torch, head: str, outputs, targets):
    if head == "simcc":
        tx, ty, w = targets
        return _simcc_loss(torch, outputs[0], tx, w) + _simcc_loss(torch, outputs[1], ty, w)
    if head == "heatmap":
        hm, w = targets
        # MMPose KeypointMSELoss (use_target_weight), times 1000 for readable numbers
        return 1000.0 * (((outputs - hm) ** 2).mean(dim=(2, 3)) * w).mean()
    heat, pafs = targets
    pred_heat, pred_pafs = outputs
    return 100.0 * (((pred_heat - heat) ** 2).mean() + ((pred_pafs - pafs) ** 2).mean())


def keypoint_error_px(predicted: NDArray[np.floating], truth: NDArray[np.floating],
                      visible: NDArray[np.bool_]) -> float:
    """Mean Euclidean distance over visible keypoints; a missed keypoint (not found:
    NaN, or the C core's (-1, -1)) counts as its distance from (-1, -1), so misses are
    punished, not ignored."""
    from edgepose.results import found_mask

    p = np.asarray(predicted, np.float64)
    p = np.where(found_mask(p)[..., None], p, -1.0)
    d = np.linalg.norm(p - np.asarray(truth, np.float64), axis=-1)
    return float(d[visible].mean()) if visible.any() else float("nan")


def _run(torch, model, card, images: NDArray[np.uint8]) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = model(torch.from_numpy(preprocess(images, card)))
    roles = list(card.outputs)
    out = out if isinstance(out, (tuple, list)) else (out,)
    return {role: o.numpy() for role, o in zip(roles, out)}


def _evaluate(torch, model, card, head: str, data: FigureSet,
              size: tuple[int, int]) -> tuple[float, float]:
    outputs = _run(torch, model, card, data.images)
    if head in ("simcc", "heatmap"):
        from edgepose.heads import decode_head

        kp, scores = decode_head(head, outputs, card.params, size)
        vis = data.visible[:, 0]
        from edgepose.results import found_mask

        found = found_mask(kp)
        return (keypoint_error_px(kp, data.keypoints[:, 0], vis),
                float((found & vis).sum() / max(1, vis.sum())))
    from edgepose import ops

    params = card.params
    kp18, vis18 = coco17_to_coco18(data.keypoints, data.visible)
    k = params.num_parts
    errors, found, total = [], 0, 0
    for i in range(len(data)):
        persons, _ = ops.group_paf(outputs["heatmaps"][i, :k], outputs["pafs"][i],
                                   params.limbs, params.paf_channels, layout="CHW",
                                   stride=params.stride, offset=params.offset)
        for p in range(int(data.people[i])):
            truth, vis = kp18[i, p], vis18[i, p]
            total += int(vis.sum())
            if len(persons) == 0:
                continue
            # the grouped person matching this one best
            d = np.linalg.norm(persons[..., :2] - truth[None], axis=-1)
            ok = (persons[..., 2] > 0) & vis[None]
            score = np.where(ok, d, 0).sum(axis=1) / np.maximum(ok.sum(axis=1), 1)
            score[ok.sum(axis=1) == 0] = np.inf
            best = int(np.argmin(score))
            if not np.isfinite(score[best]):
                continue
            sel = ok[best]
            errors.extend(d[best][sel].tolist())
            found += int(sel.sum())
    return (float(np.mean(errors)) if errors else float("nan"), found / max(1, total))
