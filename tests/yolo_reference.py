"""Slow, independent NumPy reference of one-stage YOLO-pose decoding.

:func:`decode_yolo_pose_ref` follows Ultralytics 8.x ``non_max_suppression``
(as pose predict and val call it: ``multi_label=False``) and
``scale_boxes`` / ``scale_coords`` step by step, one image at a time, with a
plain greedy NMS written here (not :func:`edgepose.ops.nms_boxes`).
:func:`decode_yolo_dfl_ref` is the decode Ultralytics' exported graphs put
after the pose head (``Detect._inference`` with ``DFL`` and ``dist2bbox``,
``Pose.kpts_decode``), built from the published formulas. Both are the oracles
of ``tests/ops/test_yolo_decode.py`` and the baseline of
``benchmarks/bench_core.py``; they are meant to be read, not to be fast.

Where Ultralytics leaves a choice open, edgepose's documented rule is
implemented here:

* equal scores are visited by ascending anchor (row) index (torch's sort is
  not stable);
* a NaN among an anchor's class scores makes it no candidate (``amax``
  propagates NaN); a candidate whose box, xyxy corners or keypoint values
  are not finite is dropped;
* IoU is computed in float64 from the float32 xyxy boxes, without +1, and is
  0 where the union is not positive; classes are kept apart by groups, not
  by Ultralytics' coordinate offset (``max_wh``), which is the same unless
  boxes reach 7680 px;
* end to end, rows above the threshold are sorted stably by descending
  score before the first max_detections are kept (Ultralytics keeps the row
  order, which its end-to-end exports already sort);
* the image transform ``(x - pad) / scale`` and the clip are computed in
  float64 and rounded to float32 once.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["decode_yolo_dfl_ref", "decode_yolo_pose_ref", "greedy_nms_ref", "oks_ref"]


def _order(scores: NDArray) -> NDArray[np.intp]:
    """Descending score, ties by ascending position."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def _iou(box: NDArray[np.float64], others: NDArray[np.float64]) -> NDArray[np.float64]:
    def area(b):
        return np.maximum(0.0, b[..., 2] - b[..., 0]) * np.maximum(0.0, b[..., 3] - b[..., 1])

    iw = np.maximum(0.0, np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]))
    ih = np.maximum(0.0, np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]))
    inter = iw * ih
    union = area(box) + area(others) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def oks_ref(a: NDArray, others: NDArray, area_a: float, areas: NDArray,
            sigmas: NDArray) -> NDArray[np.float64]:
    """OKS of pose ``a`` (K, 2) with ``others`` (M, K, 2): the mean over
    keypoints of ``exp(-d^2 / (2 (2 sigma)^2 ((area_a + area) / 2 + eps)))``,
    eps = 2^-52 (MMPose ``oks_iou``, as :func:`edgepose.ops.nms_oks`)."""
    d2 = ((np.asarray(others, np.float64) - np.asarray(a, np.float64)) ** 2).sum(axis=2)
    var = (2.0 * np.asarray(sigmas, np.float64)) ** 2
    scale = (float(area_a) + np.asarray(areas, np.float64)[:, None]) / 2 + np.spacing(1)
    return np.exp(-d2 / var / scale / 2).mean(axis=1)


def greedy_nms_ref(similar, scores: NDArray, groups: NDArray | None,
                   threshold: float) -> list[int]:
    """Greedy NMS: visit by descending score (ties by index); keep the first
    left and drop every later one of its group with ``similar(i, rest) >
    threshold``. ``similar(i, idx)`` returns the similarities of i with idx."""
    order = _order(scores)
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        drop = similar(i, rest) > threshold
        if groups is not None:
            drop &= groups[rest] == groups[i]
        order = rest[~drop]
    return keep


def _to_image(values: NDArray, pad: float, scale: float, limit: float | None) -> NDArray:
    x = (np.asarray(values, np.float64) - pad) / scale
    if limit is not None:
        x = np.clip(x, 0.0, limit)
    with np.errstate(over="ignore"):
        return x.astype(np.float32)


def decode_yolo_pose_ref(
    output: NDArray, *, num_classes: int = 1, num_keypoints: int = 17,
    keypoint_dims: int = 3, channels_first: bool = True, end_to_end: bool = False,
    score_threshold: float = 0.25, iou_threshold: float = 0.7, max_candidates: int = 30000,
    max_detections: int = 300, class_agnostic: bool = False, nms: str = "box",
    sigmas: NDArray | None = None, scale=(1.0, 1.0), pad=(0.0, 0.0), image_hw=None,
) -> list[tuple[NDArray, ...]]:
    """Per image: (boxes (M, 4), scores (M,), classes (M,), keypoints (M, K, 2),
    keypoint scores (M, K), rows (M,) the anchor index of each person).

    Arguments as :func:`edgepose.ops.decode_yolo_pose`; ``output`` must be a
    float32 ``(N, ...)`` array."""
    out = np.asarray(output, dtype=np.float32)
    if not end_to_end and channels_first:
        out = out.transpose(0, 2, 1)
    n = out.shape[0]
    k, d, c = num_keypoints, keypoint_dims, num_classes
    scale = np.broadcast_to(np.asarray(scale, np.float64), (n, 2))
    pad = np.broadcast_to(np.asarray(pad, np.float64), (n, 2))
    hw = None if image_hw is None else np.broadcast_to(np.asarray(image_hw, np.float64), (n, 2))
    results = []
    for i in range(n):
        rows_all = out[i]
        if end_to_end:
            score = rows_all[:, 4]
            cls_value = rows_all[:, 5].astype(np.float64)
            with np.errstate(invalid="ignore"):
                ok = (score.astype(np.float64) > score_threshold)
                ok &= (cls_value >= -0.5) & (cls_value < c - 0.5)
            boxes = rows_all[:, :4]
            kp_values = rows_all[:, 6:6 + k * d]
            ok &= np.isfinite(boxes).all(axis=1) & np.isfinite(kp_values).all(axis=1)
            rows = np.flatnonzero(ok)
            cls = np.floor(cls_value[rows] + 0.5).astype(np.intp)
            score = score[rows]
            boxes = boxes[rows]
        else:
            class_scores = rows_all[:, 4:4 + c]
            best = class_scores.max(axis=1)  # NaN propagates, as torch.amax
            with np.errstate(invalid="ignore"):
                ok = best.astype(np.float64) > score_threshold
            xywh = rows_all[:, :4]
            kp_values = rows_all[:, 4 + c:4 + c + k * d]
            ok &= np.isfinite(xywh).all(axis=1) & np.isfinite(kp_values).all(axis=1)
            with np.errstate(over="ignore", invalid="ignore"):
                half = xywh[:, 2:] / np.float32(2)
                xyxy = np.concatenate((xywh[:, :2] - half, xywh[:, :2] + half), axis=1)
            ok &= np.isfinite(xyxy).all(axis=1)
            rows = np.flatnonzero(ok)
            cls = np.argmax(class_scores[rows], axis=1).astype(np.intp)  # first maximum
            score = best[rows]
            boxes = xyxy[rows]
            if rows.size > max_candidates:
                top = np.sort(_order(score)[:max_candidates])
                rows, cls, score, boxes = rows[top], cls[top], score[top], boxes[top]
        points = out[i][rows][:, (6 if end_to_end else 4 + c):][:, :k * d].reshape(-1, k, d)
        groups = cls if (c > 1 and not class_agnostic) else None
        if end_to_end or nms == "none":
            keep = list(_order(score))
        elif nms == "box":
            b64 = boxes.astype(np.float64)
            keep = greedy_nms_ref(lambda j, idx, b=b64: _iou(b[j], b[idx]), score, groups,
                                  iou_threshold)
        else:
            if sigmas is None:
                raise ValueError("the reference needs the sigmas for nms='oks'")
            b64 = boxes.astype(np.float64)
            areas = (np.maximum(0.0, b64[:, 2] - b64[:, 0]) *
                     np.maximum(0.0, b64[:, 3] - b64[:, 1])).astype(np.float32)
            xy = points[:, :, :2]
            keep = greedy_nms_ref(
                lambda j, idx, xy=xy, a=areas: oks_ref(xy[j], xy[idx], a[j], a[idx], sigmas),
                score, groups, iou_threshold)
        keep = np.array(keep[:max_detections], dtype=np.intp)
        limit_x = None if hw is None else hw[i, 1]
        limit_y = None if hw is None else hw[i, 0]
        b = boxes[keep]
        img_boxes = np.stack([
            _to_image(b[:, 0], pad[i, 0], scale[i, 0], limit_x),
            _to_image(b[:, 1], pad[i, 1], scale[i, 1], limit_y),
            _to_image(b[:, 2], pad[i, 0], scale[i, 0], limit_x),
            _to_image(b[:, 3], pad[i, 1], scale[i, 1], limit_y)], axis=1).reshape(-1, 4)
        p = points[keep]
        img_kp = np.stack([_to_image(p[:, :, 0], pad[i, 0], scale[i, 0], limit_x),
                           _to_image(p[:, :, 1], pad[i, 1], scale[i, 1], limit_y)],
                          axis=2).reshape(-1, k, 2)
        kp_scores = (p[:, :, 2] if d == 3 else np.repeat(score[keep][:, None], k, axis=1))
        results.append((img_boxes, score[keep].astype(np.float32), cls[keep], img_kp,
                        kp_scores.astype(np.float32).reshape(-1, k), rows[keep]))
    return results


def _sigmoid(x: NDArray) -> NDArray[np.float64]:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def decode_yolo_dfl_ref(box_class: NDArray, keypoints: NDArray, *, input_hw,
                        strides=(8, 16, 32), reg_max: int = 16, num_keypoints: int = 17,
                        keypoint_dims: int = 3) -> NDArray[np.float32]:
    """The decode of Ultralytics' exported pose graphs, from the formulas:
    anchors ``make_anchors(offset=0.5)``, ``DFL`` (softmax over the bins,
    expectation of 0 .. reg_max - 1), ``dist2bbox(xywh=True) * stride``,
    sigmoid classes, ``Pose.kpts_decode``. (N, 4R + C, A), (N, K*D, A) ->
    (N, 4 + C + K*D, A) float32, computed in float64."""
    bc = np.asarray(box_class, np.float64)
    kp = np.asarray(keypoints, np.float64)
    n, _, a = bc.shape
    r, k, d = reg_max, num_keypoints, keypoint_dims
    h, w = input_hw
    ax, ay, st = [], [], []
    for s in strides:
        gy, gx = np.meshgrid(np.arange(h // s), np.arange(w // s), indexing="ij")
        ax.append(gx.ravel() + 0.5)
        ay.append(gy.ravel() + 0.5)
        st.append(np.full(gx.size, float(s)))
    ax, ay, st = np.concatenate(ax), np.concatenate(ay), np.concatenate(st)
    assert ax.size == a
    logits = bc[:, :4 * r].reshape(n, 4, r, a)
    with np.errstate(invalid="ignore"):
        shifted = logits - logits.max(axis=2, keepdims=True)
        e = np.exp(shifted)
        dist = (e * np.arange(r)[None, None, :, None]).sum(axis=2) / e.sum(axis=2)
    left, top, right, bottom = dist[:, 0], dist[:, 1], dist[:, 2], dist[:, 3]
    x1, y1, x2, y2 = ax - left, ay - top, ax + right, ay + bottom
    box = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=1) * st
    cls = _sigmoid(bc[:, 4 * r:])
    y = kp.reshape(n, k, d, a)
    kx = (y[:, :, 0] * 2.0 + (ax - 0.5)) * st
    ky = (y[:, :, 1] * 2.0 + (ay - 0.5)) * st
    parts = [kx, ky] + ([_sigmoid(y[:, :, 2])] if d == 3 else [])
    kps = np.stack(parts, axis=2).reshape(n, k * d, a)
    with np.errstate(over="ignore"):
        return np.concatenate([box, cls, kps], axis=1).astype(np.float32)
