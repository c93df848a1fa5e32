"""PoseNet (MobileNetV1 / ResNet50, bottom-up multi-person) decoding.

PoseNet predicts, on a grid of stride ``output_stride`` over the model input:

* ``heatmaps`` ``(H, W, 17)``: keypoint logits (score = sigmoid(logit));
* ``short_offsets`` ``(H, W, 34)``: per keypoint, the vector in input pixels
  from the grid point to the keypoint near it, 17 ``y`` channels then 17 ``x``;
* ``mid_offsets`` ``(H, W, 64)``: per edge of the part tree, the vector in
  input pixels from one keypoint of a person to the adjacent one. Four blocks
  of 16 channels: forward ``y``, forward ``x``, backward ``y``, backward ``x``
  (forward = parent to child along :data:`POSENET_EDGES`).

Grid cell ``(i, j)`` sits at input pixel ``(i * stride, j * stride)`` (the
models take inputs of size ``k * stride + 1``). Keypoints use the COCO-17
order (:data:`POSENET_KEYPOINTS`).

:func:`decode_posenet` is the greedy multi-person decoding of PersonLab
(Papandreou et al., ECCV 2018): local maxima of the keypoint scores above a
threshold form one queue of candidate roots over all keypoint types; each root
that is not within ``nms_radius`` of the same keypoint of an already decoded
person starts a new person, whose other keypoints are reached by walking the
part tree, following the mid-range offset of each edge from the known
keypoint and then the target keypoint's short-range offsets; a person's score
is the sum of the scores of its keypoints that no other person claims (within
``nms_radius``) divided by 17. Two published implementations differ in how an
edge is walked, and both are available (``variant``):

* ``"tfjs"``: TensorFlow.js PoseNet ``decodeMultiplePoses``: nearest grid
  cells, one short-range offset;
* ``"coral"``: libcoral ``posenet_decoder.cc``, the decoder Google ships as a
  TFLite custom op with the Coral PoseNet models: bilinear sampling and five
  short-range refinement steps (PersonLab's recurrent offset refinement).

Use ``"coral"`` for the quantized Coral models
(google-coral/project-posenet ``posenet_mobilenet_v1_075_*_quant.tflite``:
inputs uint8 RGB, the raw pixel values; outputs dequantized with each tensor's
own scale and zero point): their short-range offsets saturate at about
+/-10 pixels, less than the 16-pixel cell spacing, so a single offset step
often stops short of the keypoint; the refinement steps walk the rest.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgepose._arrays import check_finite, float_array
from edgepose._validate import is_int

__all__ = ["POSENET_KEYPOINTS", "POSENET_EDGES", "decode_posenet", "run_posenet"]

#: Keypoint names in PoseNet's channel order (the COCO-17 order).
POSENET_KEYPOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)

#: The part tree as (parent, child) keypoint indices, in the order of the
#: mid-range offset channels (edge ``e`` uses channels ``e`` and ``16 + e``
#: forward, ``32 + e`` and ``48 + e`` backward). Rooted at the nose; every
#: parent appears before its children.
POSENET_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 3), (0, 2), (2, 4),            # nose-eyes-ears
    (0, 5), (5, 7), (7, 9), (5, 11), (11, 13), (13, 15),   # left arm and leg
    (0, 6), (6, 8), (8, 10), (6, 12), (12, 14), (14, 16),  # right arm and leg
)

_NUM_KEYPOINTS = 17
_NUM_EDGES = 16
_VARIANTS = ("tfjs", "coral")


def _walk_orders() -> tuple[tuple[tuple[int, int, int, int], ...], ...]:
    """For each root keypoint, the tree edges in the order to traverse them.

    Each step is ``(source, target, y_channel, x_channel)``: the mid-range
    offset channels leading from ``source`` to ``target``. Breadth-first from
    the root; since the graph is a tree every keypoint is reached by one path,
    so the order does not change the result.
    """
    neighbours: list[list[tuple[int, int, int]]] = [[] for _ in range(_NUM_KEYPOINTS)]
    for e, (parent, child) in enumerate(POSENET_EDGES):
        neighbours[parent].append((child, e, _NUM_EDGES + e))                   # forward
        neighbours[child].append((parent, 2 * _NUM_EDGES + e, 3 * _NUM_EDGES + e))  # backward
    orders = []
    for root in range(_NUM_KEYPOINTS):
        seen = {root}
        frontier = [root]
        steps: list[tuple[int, int, int, int]] = []
        while frontier:
            source = frontier.pop(0)
            for target, cy, cx in neighbours[source]:
                if target not in seen:
                    seen.add(target)
                    steps.append((source, target, cy, cx))
                    frontier.append(target)
        orders.append(tuple(steps))
    return tuple(orders)


_WALK_ORDERS = _walk_orders()


def _float_map(name: str, value: ArrayLike, channels: int) -> NDArray[np.float32]:
    arr = float_array(name, value, 3, f"(H, W, {channels})")
    if arr.shape[2] != channels:
        raise ValueError(f"{name} must have shape (H, W, {channels}), got {arr.shape}.")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got {arr.shape}.")
    check_finite(name, arr)
    return arr


def _local_maximum_mask(scores: NDArray[np.float32], radius: int) -> NDArray[np.bool_]:
    """(H, W, K): True where no value of the same channel in the (2r+1)^2 window
    around the cell (clipped at the borders) is larger."""
    if radius == 0:
        return np.ones(scores.shape, dtype=bool)
    h, w, _ = scores.shape
    padded = np.pad(scores, ((radius, radius), (radius, radius), (0, 0)),
                    constant_values=-np.inf)
    size = 2 * radius + 1
    # Separable running maximum: over rows, then over columns.
    rows = np.lib.stride_tricks.sliding_window_view(padded, size, axis=0).max(axis=-1)
    window_max = np.lib.stride_tricks.sliding_window_view(rows, size, axis=1).max(axis=-1)
    return scores >= window_max[:h, :w]


def _sigmoid(x):
    # exact to float rounding and free of overflow warnings for large |x|
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _nearest_cell(v: float, n: int) -> int:
    """``Math.round`` (half up, as the published decoder) clamped to ``[0, n - 1]``."""
    i = math.floor(v + 0.5)
    return 0 if i < 0 else (n - 1 if i > n - 1 else i)


def _clamp(v: float, hi: float) -> float:
    return 0.0 if v < 0.0 else (float(hi) if v > hi else v)


def _bilinear2(arr: NDArray[np.float32], y: float, x: float, c0: int, c1: int
               ) -> tuple[float, float]:
    """Channels ``c0`` and ``c1`` of ``arr`` (H, W, C) at ``(y, x)`` inside the grid."""
    h, w, _ = arr.shape
    y0, x0 = int(y), int(x)           # y, x >= 0: int() is floor
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    ly, lx = y - y0, x - x0
    wa, wb, wc, wd = (1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx
    v = arr.item                      # Python floats: much cheaper than NumPy scalars
    return (wa * v(y0, x0, c0) + wb * v(y0, x1, c0) + wc * v(y1, x0, c0) + wd * v(y1, x1, c0),
            wa * v(y0, x0, c1) + wb * v(y0, x1, c1) + wc * v(y1, x0, c1) + wd * v(y1, x1, c1))


def _walk_tfjs(y0: int, x0: int, k0: int, logits, short, mid, stride: int):
    """TF.js ``decodePose``: nearest-cell displacements, one short-range offset."""
    h, w = logits.shape[:2]
    ys, xs, ls = [0.0] * _NUM_KEYPOINTS, [0.0] * _NUM_KEYPOINTS, [0.0] * _NUM_KEYPOINTS
    ys[k0] = y0 * stride + short.item(y0, x0, k0)
    xs[k0] = x0 * stride + short.item(y0, x0, _NUM_KEYPOINTS + k0)
    ls[k0] = logits.item(y0, x0, k0)
    for source, target, ch_y, ch_x in _WALK_ORDERS[k0]:
        sy = _nearest_cell(ys[source] / stride, h)
        sx = _nearest_cell(xs[source] / stride, w)
        ty = _nearest_cell((ys[source] + mid.item(sy, sx, ch_y)) / stride, h)
        tx = _nearest_cell((xs[source] + mid.item(sy, sx, ch_x)) / stride, w)
        ys[target] = ty * stride + short.item(ty, tx, target)
        xs[target] = tx * stride + short.item(ty, tx, _NUM_KEYPOINTS + target)
        ls[target] = logits.item(ty, tx, target)
    return xs, ys, ls


def _walk_coral(y0: int, x0: int, k0: int, logits, short, mid, stride: int,
                refine_steps: int = 5):
    """libcoral ``BacktrackDecodePose``: continuous grid positions clamped to the
    grid, bilinear sampling, mid-range displacement then ``refine_steps``
    short-range refinements; returns input pixels."""
    h, w = logits.shape[:2]
    ys, xs, ls = [0.0] * _NUM_KEYPOINTS, [0.0] * _NUM_KEYPOINTS, [0.0] * _NUM_KEYPOINTS
    ys[k0] = _clamp(y0 + short.item(y0, x0, k0) / stride, h - 1)
    xs[k0] = _clamp(x0 + short.item(y0, x0, _NUM_KEYPOINTS + k0) / stride, w - 1)
    ls[k0] = _bilinear2(logits, ys[k0], xs[k0], k0, k0)[0]
    for source, target, ch_y, ch_x in _WALK_ORDERS[k0]:
        dy, dx = _bilinear2(mid, ys[source], xs[source], ch_y, ch_x)
        y = _clamp(ys[source] + dy / stride, h - 1)
        x = _clamp(xs[source] + dx / stride, w - 1)
        for _ in range(refine_steps):
            dy, dx = _bilinear2(short, y, x, target, _NUM_KEYPOINTS + target)
            y = _clamp(y + dy / stride, h - 1)
            x = _clamp(x + dx / stride, w - 1)
        ys[target], xs[target] = y, x
        ls[target] = _bilinear2(logits, y, x, target, target)[0]
    return [v * stride for v in xs], [v * stride for v in ys], ls


def _claimed(xy: NDArray[np.float32], others: list[NDArray[np.float32]], squared_radius: float
             ) -> NDArray[np.bool_]:
    """Keypoints of ``xy`` within the radius of the same keypoint of any of ``others``."""
    claimed = np.zeros(_NUM_KEYPOINTS, dtype=bool)
    for p in others:
        claimed |= ((p - xy) ** 2).sum(axis=1) <= squared_radius
    return claimed


def _check_int(name: str, value: object, minimum: int) -> int:
    kind = "positive" if minimum == 1 else "non-negative"
    if not is_int(value):
        raise TypeError(f"{name} must be a {kind} int, got {type(value).__name__} {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be a {kind} int, got {value!r}.")
    return int(value)


def decode_posenet(
    heatmaps: ArrayLike,
    short_offsets: ArrayLike,
    mid_offsets: ArrayLike,
    *,
    output_stride: int = 16,
    max_poses: int = 10,
    score_threshold: float = 0.5,
    nms_radius: float = 20.0,
    local_max_radius: int = 1,
    variant: str = "tfjs",
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """Decodes the people in one PoseNet output (greedy part-tree decoding).

    Common to both variants (see the module docstring for the algorithm):

    * Keypoint scores are ``sigmoid(heatmaps)``. A root candidate is a grid
      cell whose score is ``>= score_threshold`` and whose logit is not
      smaller than any logit of the same keypoint within ``local_max_radius``
      cells (a (2r+1)^2 window clipped at the borders). Candidates are taken
      in decreasing score order, ties in row-major (y, x, keypoint) order.
    * A candidate at cell ``(i, j)`` sits at ``(i, j) * output_stride`` plus
      its short-range offset. It is skipped when its squared distance to the
      same keypoint of an already decoded person is ``<= nms_radius ** 2``.

    ``variant="tfjs"`` (default): TensorFlow.js PoseNet ``decodeMultiplePoses``.
    Walking an edge takes the mid-range displacement at the source keypoint's
    nearest cell (``round`` half up, clamped to the grid), then the target's
    short-range offset and score at the cell nearest to the displaced point.
    A person's score is the sum of the scores of its keypoints farther than
    ``nms_radius`` from the same keypoint of every person decoded before it,
    divided by 17; people are not filtered by score.

    ``variant="coral"``: the decoder Google ships with these models (libcoral
    ``posenet_decoder.cc``, the TFLite custom op of the Coral PoseNet
    models). Positions are continuous and clamped to the grid extent
    (``[0, (W-1) * stride] x [0, (H-1) * stride]``); offsets and logits are
    sampled bilinearly; an edge is walked by the mid-range displacement
    followed by 5 short-range refinement steps; a keypoint's score is the
    sigmoid of the bilinearly sampled logit. A person is kept (and counts
    towards ``max_poses``) when its mean keypoint score is
    ``>= score_threshold``; then, in decreasing order of that score, each is
    rescored as the sum of the scores of its keypoints farther than
    ``nms_radius`` from the same keypoint of every higher-scoring person,
    divided by 17, and dropped if that falls below ``score_threshold``.

    Args:
        heatmaps: ``(H, W, 17)`` keypoint logits (dequantized).
        short_offsets: ``(H, W, 34)`` short-range offsets in input pixels,
            17 ``y`` then 17 ``x`` channels.
        mid_offsets: ``(H, W, 64)`` mid-range offsets in input pixels:
            forward ``y``, forward ``x``, backward ``y``, backward ``x``, 16
            edges each, edges in :data:`POSENET_EDGES` order.
        output_stride: input pixels per grid cell (16 for the Coral models).
        max_poses: the largest number of people to return.
        score_threshold: the smallest keypoint score (a probability) of a
            root; with ``variant="coral"`` also the smallest person score.
        nms_radius: in input pixels; strictly positive.
        local_max_radius: the half-size, in cells, of the local-maximum window.
        variant: ``"tfjs"`` or ``"coral"``.

    Returns:
        ``(keypoints, keypoint_scores, pose_scores)``: ``(N, 17, 2)`` float32
        ``(x, y)`` in model-input pixels (integer = pixel centre; with
        ``"tfjs"`` points may fall slightly outside the input), ``(N, 17)``
        float32 in [0, 1] and ``(N,)`` float32, sorted by decreasing pose
        score. ``N`` is 0 when no person passes: shapes ``(0, 17, 2)``,
        ``(0, 17)`` and ``(0,)``.

    Raises:
        TypeError: non-floating tensors (quantized outputs not dequantized),
            or a non-int ``output_stride``, ``max_poses`` or
            ``local_max_radius``.
        ValueError: a wrong shape, mismatched grids, non-finite values, an
            out-of-range parameter or an unknown variant.
    """
    if variant not in _VARIANTS:
        raise ValueError(f"variant must be one of {list(_VARIANTS)}, got {variant!r}.")
    logits = _float_map("heatmaps", heatmaps, _NUM_KEYPOINTS)
    short = _float_map("short_offsets", short_offsets, 2 * _NUM_KEYPOINTS)
    mid = _float_map("mid_offsets", mid_offsets, 4 * _NUM_EDGES)
    if not (logits.shape[:2] == short.shape[:2] == mid.shape[:2]):
        raise ValueError(
            "heatmaps, short_offsets and mid_offsets must share the grid (H, W), got "
            f"{logits.shape}, {short.shape} and {mid.shape}.")
    stride = _check_int("output_stride", output_stride, 1)
    max_poses = _check_int("max_poses", max_poses, 0)
    radius = _check_int("local_max_radius", local_max_radius, 0)
    score_threshold = float(score_threshold)
    if not 0.0 <= score_threshold <= 1.0:
        raise ValueError(
            f"score_threshold is a probability and must be in [0, 1], got {score_threshold}.")
    nms_radius = float(nms_radius)
    if not (np.isfinite(nms_radius) and nms_radius > 0):
        raise ValueError(f"nms_radius must be a positive finite number, got {nms_radius}.")

    h, w = logits.shape[:2]
    scores = _sigmoid(logits)
    candidates = (scores >= np.float32(score_threshold)) & _local_maximum_mask(logits, radius)
    cy, cx, ck = np.nonzero(candidates)  # row-major (y, x, k)
    order = np.argsort(-logits[cy, cx, ck], kind="stable")

    walk = _walk_tfjs if variant == "tfjs" else _walk_coral
    squared_radius = nms_radius * nms_radius
    found_xy: list[NDArray[np.float32]] = []
    found_scores: list[NDArray[np.float32]] = []
    pose_scores: list[float] = []
    for i in order.tolist() if max_poses else ():
        y0, x0, k0 = int(cy[i]), int(cx[i]), int(ck[i])
        root_y = y0 * stride + short.item(y0, x0, k0)
        root_x = x0 * stride + short.item(y0, x0, _NUM_KEYPOINTS + k0)
        if variant == "coral":
            root_y = _clamp(root_y, (h - 1) * stride)
            root_x = _clamp(root_x, (w - 1) * stride)
        if any((float(p[k0, 0]) - root_x) ** 2 + (float(p[k0, 1]) - root_y) ** 2
               <= squared_radius for p in found_xy):
            continue
        xs, ys, ls = walk(y0, x0, k0, logits, short, mid, stride)
        xy = np.array([xs, ys], dtype=np.float64).T.astype(np.float32)
        kp_scores = _sigmoid(np.array(ls, dtype=np.float64)).astype(np.float32)
        if variant == "tfjs":
            score = float(kp_scores[~_claimed(xy, found_xy, squared_radius)].sum())
        else:
            score = float(kp_scores.sum())
            if score / _NUM_KEYPOINTS < score_threshold:
                continue
        found_xy.append(xy)
        found_scores.append(kp_scores)
        pose_scores.append(score / _NUM_KEYPOINTS)
        if len(found_xy) == max_poses:
            break

    if variant == "coral" and found_xy:
        # soft keypoint NMS against the higher-scoring people, then rescoring
        ranked = np.argsort(-np.array(pose_scores), kind="stable").tolist()
        for n, i in enumerate(ranked):
            higher = [found_xy[j] for j in ranked[:n]]
            claimed = _claimed(found_xy[i], higher, squared_radius)
            pose_scores[i] = float(found_scores[i][~claimed].sum()) / _NUM_KEYPOINTS
        keep = [i for i in range(len(found_xy)) if pose_scores[i] >= score_threshold]
        found_xy = [found_xy[i] for i in keep]
        found_scores = [found_scores[i] for i in keep]
        pose_scores = [pose_scores[i] for i in keep]

    if not found_xy:
        return (np.zeros((0, _NUM_KEYPOINTS, 2), np.float32),
                np.zeros((0, _NUM_KEYPOINTS), np.float32), np.zeros((0,), np.float32))
    pose_arr = np.array(pose_scores, dtype=np.float32)
    rank = np.argsort(-pose_arr, kind="stable")
    return np.stack(found_xy)[rank], np.stack(found_scores)[rank], pose_arr[rank]


def run_posenet(model: Any, image: NDArray[np.uint8], keypoint_set: Any,
                watch: Any = None) -> Any:
    """The whole-image PoseNet pipeline: letterbox, infer, decode, map back.

    Args:
        model: an :class:`edgepose.model.LoadedModel` whose card has head
            ``"posenet"``; its typed parameters
            (:class:`edgepose.heads.PoseNetParams`) are passed to
            :func:`decode_posenet` (``output_stride``, ``max_poses``,
            ``score_threshold``, ``nms_radius``, ``local_max_radius``,
            ``variant``), plus ``align`` for the letterbox ("center").
        image: BGR uint8 ``(H, W, 3)``.
        keypoint_set: the model's :class:`edgepose.keypoints.KeypointSet`.
        watch: an optional :class:`edgepose._timing.Stopwatch` for stage times.

    Returns:
        a :class:`edgepose.results.PoseResult` in image pixels.
    """
    from edgepose.geometry import points_to_image
    from edgepose.heads import check_finite_outputs
    from edgepose.results import PoseResult

    params = model.card.params  # dequantize is applied by the model when it runs
    tensor, scale, pad = model.preprocess_image(image)  # letterbox, params.align
    if watch is not None:
        watch.lap("preprocess")
    outputs = model.run(tensor)
    if watch is not None:
        watch.lap("inference")
    check_finite_outputs(outputs, model.name)
    kp, scores, pose_scores = decode_posenet(
        outputs["heatmaps"][0], outputs["short_offsets"][0], outputs["mid_offsets"][0],
        **params.decoder_kwargs())
    return PoseResult(points_to_image(kp, scale, pad), scores, keypoint_set,
                      person_scores=pose_scores)
