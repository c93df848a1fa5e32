"""Parity: an exported artefact against its source, on the same input tensors.

Both models run on the same preprocessed tensors (a
:class:`~edgepose_export.api.CalibrationSet` made from real images): the
source as a PyTorch module or a model file, the artefact through
:func:`edgepose.backends.open_backend`, exactly as the runtime runs it. The
report (:class:`~edgepose_export.api.ParityReport`) holds

* the max abs difference of the raw outputs, per output role;
* the keypoint error in model-input pixels (mean, p95) between the poses
  both decode with the card's head (:func:`edgepose.heads.decode_head` for
  top-down and single-person heads; PAF grouping and the PoseNet decoder for
  bottom-up heads, whose people are matched greedily by OKS), over the
  keypoints both find with a score above ``score_threshold``;
* the OKS between source and artefact poses, with the keypoint set's sigmas,
  over the keypoints the source finds (an artefact that loses a keypoint
  scores 0 on it); the area is the person box inside a top-down crop (input
  area / 1.25**2) or the bounding box of a bottom-up person's keypoints;
* one-stage YOLO-pose models: people decoded on both sides and matched by
  box IoU (:func:`edgepose_export.yolo_pose.parity_figures`), as their INT8
  decision measures them;
* the latency p50 of each on this CPU (warm-up, then timed single-input runs);
* ``passed``: mean keypoint error and OKS within the tolerance.
"""
from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgepose.card import ModelCard, read_card
from edgepose.results import found_mask
from edgepose_export.api import CalibrationSet, ParityReport, Tolerance, require

__all__ = ["DEFAULT_SIGMA", "SCORE_THRESHOLD", "parity", "compare", "run_model", "open_runner",
           "decodable"]

#: OKS sigma for keypoint sets without their own (COCO-18 of OpenPose, BlazePose-33):
#: the mean of COCO's 17 sigmas.
DEFAULT_SIGMA = 0.067
#: Keypoints scoring at most this are not "found" (edgepose.estimator.KEYPOINT_SCORE_FLOOR).
SCORE_THRESHOLD = 0.2
#: Top-down crops are person boxes enlarged by this (the Estimator's padding).
_CROP_PADDING = 1.25


# --- running either side ---------------------------------------------------------------

def _to_layout(x: np.ndarray, src: str | None, dst: str) -> np.ndarray:
    if src is None or src == dst:
        return x
    axes = (0, 3, 1, 2) if dst == "NCHW" else (0, 2, 3, 1)
    return np.ascontiguousarray(x.transpose(axes))


class _TorchRunner:
    def __init__(self, module: Any, card: ModelCard, feed_layout: str | None) -> None:
        self._torch = require("torch")
        self.module, self.card = module, card
        self.feed_layout = feed_layout
        self._was_training = module.training
        module.eval()

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        from edgepose_export.onnx import torch_outputs

        torch = self._torch
        x = _to_layout(x, self.feed_layout, self.card.input.layout)
        with torch.no_grad():
            result = self.module(torch.from_numpy(np.ascontiguousarray(x)))
        outputs = torch_outputs(result, self.card)
        return {role: t.detach().cpu().float().numpy()
                for role, t in zip(self.card.outputs, outputs)}

    def close(self) -> None:
        self.module.train(self._was_training)


class _BackendRunner:
    def __init__(self, path: Path, card: ModelCard, threads: int | None,
                 feed_layout: str | None) -> None:
        from edgepose.backends import open_backend

        self.card, self.feed_layout = card, feed_layout
        self.backend = open_backend(path, threads=threads)
        try:
            inputs = {t.name: t for t in self.backend.inputs}
            name = card.input.name
            if name is not None and name in inputs:
                info = inputs[name]
            elif len(inputs) == 1:
                info = next(iter(inputs.values()))
            else:
                raise ValueError(
                    f"{path.name} has inputs {sorted(inputs)}; its card names {name!r}.")
            outputs = {t.name for t in self.backend.outputs}
            missing = {r: n for r, n in card.outputs.items() if n not in outputs}
            if missing or not card.outputs:
                raise ValueError(
                    f"The card of {path.name} maps outputs {dict(card.outputs)}, but the model's "
                    f"outputs are {sorted(outputs)}.")
        except Exception:
            self.backend.close()
            raise
        self.input = info.name
        self.max_batch = info.shape[0] if info.shape else None
        self.outputs = dict(card.outputs)
        self.dequantize = card.params.dequantize

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        x = _to_layout(x, self.feed_layout, self.card.input.layout)
        step = self.max_batch or len(x) or 1
        parts = []
        for i in range(0, len(x), step):
            result = self.backend.run({self.input: x[i:i + step]})
            parts.append({role: result[name] for role, name in self.outputs.items()})
        outputs = {role: np.concatenate([p[role] for p in parts]) for role in self.outputs}
        for role, value in outputs.items():  # as edgepose.model.LoadedModel does
            if value.dtype.kind in "iu" and role in self.dequantize:
                scale, zero_point = self.dequantize[role]
                outputs[role] = ((value.astype(np.float32) - np.float32(zero_point))
                                 * np.float32(scale))
        return outputs

    def close(self) -> None:
        self.backend.close()


def _is_path(model: Any) -> bool:
    return isinstance(model, (str, os.PathLike))


def open_runner(model: Any, card: ModelCard, *, threads: int | None = None,
                feed_layout: str | None = None):
    """Something with ``run(tensors) -> {role: outputs}``, ``card`` and ``close()`` for a
    torch module or a model file (the file's own card, else ``card``, says its input
    layout and output roles). Tensors in ``feed_layout`` are transposed to the model's."""
    if _is_path(model):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"No model file at {path}.")
        own = read_card(path)
        return _BackendRunner(path, own if own is not None else card, threads, feed_layout)
    if not (hasattr(model, "forward") and hasattr(model, "eval")):
        raise TypeError(
            f"The model must be a torch.nn.Module or the path of a model file, got "
            f"{type(model).__name__}.")
    return _TorchRunner(model, card, feed_layout)


def _tensors(inputs: Any) -> np.ndarray:
    tensors = inputs.tensors if isinstance(inputs, CalibrationSet) else np.asarray(inputs)
    if tensors.ndim != 4 or len(tensors) == 0:
        raise ValueError(
            f"inputs must be (M, ...) model input tensors with M >= 1 (a CalibrationSet), got "
            f"shape {tensors.shape}.")
    return tensors


def run_model(model: Any, card: ModelCard, inputs: Any, *, threads: int | None = None
              ) -> dict[str, np.ndarray]:
    """Outputs by role of a torch module or a model file on ``inputs`` ``(M, ...)``
    (in ``card``'s input layout)."""
    tensors = _tensors(inputs)
    runner = open_runner(model, card, threads=threads, feed_layout=card.input.layout)
    try:
        return runner.run(tensors)
    finally:
        runner.close()


# --- comparing outputs -------------------------------------------------------------------

def _sigmas(card: ModelCard, k: int) -> tuple[np.ndarray, bool]:
    kset = card.keypoint_set
    if kset is not None and kset.sigmas is not None and len(kset.sigmas) == k:
        return np.asarray(kset.sigmas, np.float64), True
    return np.full(k, DEFAULT_SIGMA), False


def _oks(ref_kp, ref_visible, cand_kp, cand_located, area, sigmas) -> float:
    # a keypoint the candidate did not find (NaN) scores 0, and no NaN is computed
    both = ref_visible & cand_located
    d2 = (np.where(both[..., None], ref_kp - cand_kp, 0.0) ** 2).sum(-1)
    k2 = (2 * sigmas) ** 2
    sim = np.exp(-d2 / (2 * max(area, 1.0) * k2))
    sim = np.where(both, sim, 0.0)
    return float(sim[ref_visible].mean())


def _people(card: ModelCard, outputs: Mapping[str, np.ndarray], hw: tuple[int, int]) -> list:
    """Per input tensor: (keypoints (P, K, 2), scores (P, K)) in model-input pixels."""
    params = card.params
    n = len(next(iter(outputs.values())))
    if card.head == "paf":
        from edgepose.paf import group_people, split_maps

        people = []
        for i in range(n):
            heatmaps, pafs = split_maps({r: v[i:i + 1] for r, v in outputs.items()}, params)
            persons, _ = group_people(heatmaps, pafs, params)
            kp = persons[..., :2].astype(np.float64)
            kp[~(persons[..., 2] > 0)] = np.nan  # a part not assembled: not found
            people.append((kp, persons[..., 2].astype(np.float64)))
        return people
    if card.head == "posenet":
        from edgepose.posenet import decode_posenet

        people = []
        for i in range(n):
            kp, scores, _ = decode_posenet(outputs["heatmaps"][i], outputs["short_offsets"][i],
                                           outputs["mid_offsets"][i],
                                           **params.decoder_kwargs())
            people.append((kp.astype(np.float64), scores.astype(np.float64)))
        return people
    from edgepose.heads import decode_head

    kp, scores = decode_head(card.head, outputs, params, hw)
    return [(kp[i:i + 1].astype(np.float64), scores[i:i + 1].astype(np.float64)) for i in range(n)]


def _match(ref, cand, sigmas, threshold, top_down, hw):
    """Pairs (reference person, candidate person or None, area), greedily by OKS."""
    ref_kp, ref_sc = ref
    cand_kp, cand_sc = cand
    areas = []
    for p in range(len(ref_kp)):
        if top_down:
            areas.append(hw[0] * hw[1] / _CROP_PADDING ** 2)
            continue
        good = found_mask(ref_kp[p]) & (ref_sc[p] > threshold)
        pts = ref_kp[p][good]
        areas.append(float(np.prod(pts.max(0) - pts.min(0))) if len(pts) > 1 else 1.0)
    if top_down:
        return [(0, 0 if len(cand_kp) else None, areas[0])] if len(ref_kp) else []
    scores = np.full((len(ref_kp), len(cand_kp)), -1.0)
    for p in range(len(ref_kp)):
        visible = found_mask(ref_kp[p]) & (ref_sc[p] > threshold)
        if not visible.any():
            continue
        for q in range(len(cand_kp)):
            scores[p, q] = _oks(ref_kp[p], visible, cand_kp[q], found_mask(cand_kp[q]),
                                areas[p], sigmas)
    pairs, used_r, used_c = [], set(), set()
    for flat in np.argsort(-scores, axis=None, kind="stable"):
        p, q = divmod(int(flat), max(len(cand_kp), 1))
        if scores.size == 0 or scores[p, q] <= 0 or p in used_r or q in used_c:
            continue
        pairs.append((p, q, areas[p]))
        used_r.add(p)
        used_c.add(q)
    pairs += [(p, None, areas[p]) for p in range(len(ref_kp)) if p not in used_r]
    return pairs


def decodable(card: ModelCard) -> bool:
    """True when parity can decode poses from the card's head."""
    from edgepose.heads import HEAD_DECODERS

    if card.head == "yolo_pose":  # one-stage: edgepose_export.yolo_pose.parity_figures
        return getattr(card.params, "format", None) == "decoded"
    return card.head in HEAD_DECODERS or card.head in ("paf", "posenet")


def compare(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray],
            card: ModelCard, *, candidate_card: ModelCard | None = None,
            score_threshold: float = SCORE_THRESHOLD) -> dict[str, Any]:
    """Raw and decoded agreement of two models' outputs on the same inputs.

    Args:
        reference, candidate: outputs by role, each ``(M, ...)`` (see
            :func:`run_model`).
        card: the reference's card (head, head_params, input size, keypoint set).
        candidate_card: the candidate's, when it differs (e.g. a TFLite file
            with another layout); default ``card``.
        score_threshold: keypoints scoring at most this are not found.

    Returns:
        ``{"max_abs_diff": {role: float}, "keypoint_error_px_mean",
        "keypoint_error_px_p95", "oks_mean": float (NaN when undefined),
        "keypoints": n compared, "notes": [str]}``.

    Raises:
        ValueError: outputs of different shapes.
    """
    notes: list[str] = []
    diffs: dict[str, float] = {}
    for role in card.outputs:
        if role not in reference or role not in candidate:
            continue
        a = np.asarray(reference[role], np.float64)
        b = np.asarray(candidate[role], np.float64)
        if a.shape != b.shape:
            raise ValueError(f"Output {role!r} has shape {a.shape} in the source and {b.shape} "
                             "in the artefact.")
        diff = np.abs(a - b)
        diffs[role] = float(diff.max()) if np.isfinite(diff).all() else float("inf")
    result = {"max_abs_diff": diffs, "keypoint_error_px_mean": float("nan"),
              "keypoint_error_px_p95": float("nan"), "oks_mean": float("nan"), "keypoints": 0,
              "decoded": decodable(card), "notes": notes}
    if not result["decoded"]:
        notes.append(f"head {card.head!r} has no pose decoder: raw outputs only")
        return result
    if any(not np.isfinite(np.asarray(v, np.float64)).all() for v in candidate.values()):
        notes.append("the artefact produced NaN or inf")
        return result
    if card.head == "yolo_pose":
        from edgepose_export.yolo_pose import parity_figures

        figures = parity_figures(reference, candidate, card, candidate_card)
        result.update({k: figures[k] for k in ("keypoint_error_px_mean", "keypoint_error_px_p95",
                                                "oks_mean", "keypoints")})
        notes.append(
            f"one-stage: people decoded on both sides and matched by box IoU; "
            f"{figures['matched']} of {figures['people']} matched, a lost person counts as the "
            "input diagonal; keypoints the source sees (visibility > 0.5); OKS with box areas")
        return result
    hw = tuple(card.input.size)
    top_down = card.task in ("topdown", "single")
    ref_people = _people(card, reference, hw)
    cand_people = _people(candidate_card or card, candidate, hw)
    k = ref_people[0][0].shape[1] if ref_people and ref_people[0][0].ndim == 3 else 0
    sigmas, own = _sigmas(card, k)
    if not own:
        notes.append(f"OKS with sigma {DEFAULT_SIGMA} for every keypoint (the keypoint set "
                     f"{card.keypoints!r} has no OKS sigmas)")
    if not top_down:
        notes.append("bottom-up: people grouped on both sides and matched by OKS")
    errors: list[np.ndarray] = []
    oks: list[float] = []
    for ref, cand in zip(ref_people, cand_people):
        for p, q, area in _match(ref, cand, sigmas, score_threshold, top_down, hw):
            visible = found_mask(ref[0][p]) & (ref[1][p] > score_threshold)
            if not visible.any():
                continue
            if q is None:
                oks.append(0.0)
                continue
            located = found_mask(cand[0][q])
            oks.append(_oks(ref[0][p], visible, cand[0][q], located, area, sigmas))
            both = visible & located & (cand[1][q] > score_threshold)
            errors.append(np.linalg.norm(ref[0][p][both] - cand[0][q][both], axis=-1))
    found = np.concatenate(errors) if errors else np.zeros(0)
    result["keypoints"] = int(len(found))
    if len(found):
        result["keypoint_error_px_mean"] = float(found.mean())
        result["keypoint_error_px_p95"] = float(np.percentile(found, 95))
    if oks:
        result["oks_mean"] = float(np.mean(oks))
    else:
        notes.append(f"the source finds no keypoint scoring above {score_threshold} on these "
                     "inputs: keypoint error and OKS are undefined")
    return result


# --- the report --------------------------------------------------------------------------

def _latency_ms(runner, x: np.ndarray, warmup: int, runs: int) -> float:
    for _ in range(warmup):
        runner.run(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        runner.run(x)
        times.append((time.perf_counter_ns() - start) / 1e6)
    return float(np.median(times)) if times else float("nan")


def parity(source: Any, artifact_path: str | os.PathLike, card: ModelCard, inputs: Any,
           tolerance: Tolerance = Tolerance(), *, source_card: ModelCard | None = None,
           runs: int = 20, warmup: int = 3, threads: int | None = None,
           score_threshold: float = SCORE_THRESHOLD) -> ParityReport:
    """The parity report of an artefact against its source.

    Args:
        source: the torch module, or the model file, the artefact was made from.
        artifact_path: the artefact (.onnx, .tflite or OpenVINO .xml), run
            through :func:`edgepose.backends.open_backend`.
        card: the artefact's card, used when the file carries none (the
            file's own card comes first: it says the input layout and output
            names the runtime will use).
        inputs: ``(M, ...)`` input tensors or a CalibrationSet, made with the
            source's card (layout, normalisation); tensors are transposed for
            an artefact whose input layout differs.
        tolerance: the limits ``passed`` checks.
        source_card: the source's card (default: the source file's own, else
            ``card``); the source's outputs are decoded with it, the
            artefact's with its own.
        runs, warmup: timed and untimed single-input runs for the latency
            (``runs=0``: no latency, NaN).
        threads: inference threads (None: each runtime's default).
        score_threshold: keypoints scoring at most this are not found.

    Returns:
        a :class:`ParityReport`.

    Raises:
        FileNotFoundError: a missing file.
        ValueError: outputs that do not match the card, or of different shapes.
    """
    tensors = _tensors(inputs)
    src_runner = open_runner(source, source_card or card, threads=threads)
    feed = src_runner.card.input.layout
    src_runner.feed_layout = feed
    try:
        reference = src_runner.run(tensors)
        source_ms = _latency_ms(src_runner, tensors[:1], warmup, runs) if runs else None
    finally:
        src_runner.close()
    art_runner = open_runner(Path(artifact_path), card, threads=threads, feed_layout=feed)
    try:
        candidate = art_runner.run(tensors)
        artifact_ms = _latency_ms(art_runner, tensors[:1], warmup, runs) if runs else float("nan")
    finally:
        art_runner.close()
    figures = compare(reference, candidate, src_runner.card, candidate_card=art_runner.card,
                      score_threshold=score_threshold)
    err, oks = figures["keypoint_error_px_mean"], figures["oks_mean"]
    if figures["decoded"]:
        passed = bool(np.isfinite(err) and np.isfinite(oks)
                      and err <= tolerance.max_keypoint_error_px and oks >= tolerance.min_oks)
    else:
        passed = all(np.isfinite(v) for v in figures["max_abs_diff"].values())
    return ParityReport(max_abs_diff=figures["max_abs_diff"], keypoint_error_px_mean=err,
                        keypoint_error_px_p95=figures["keypoint_error_px_p95"], oks_mean=oks,
                        latency_ms_p50=artifact_ms, source_latency_ms_p50=source_ms,
                        images=int(len(tensors)), passed=passed, score_threshold=score_threshold,
                        keypoints=figures["keypoints"], notes=figures["notes"])
