"""Heatmap decoding on real models: DARK against plain argmax, scored on ground truth.

Two real TFLite heatmap models from ``../shared`` run top-down on the
ground-truth person boxes of real annotated images. Their heatmaps are decoded
by :func:`edgepose.ops.decode_heatmap` with ``refine="none"`` (integer argmax)
and ``refine="dark"``, mapped back to image pixels and compared with the
annotations. Everything except ``refine`` is identical for the two methods:

* crop: the GT box (xyxy) is enlarged x1.25 about its centre, widened to the
  model's aspect ratio (1:1 here, never shrunk) and mapped by one affine
  matrix onto the model input (``cv2.warpAffine``, bilinear, zero border), box
  centre to the centre of the input array;
* decode: ``decode_heatmap(hm, refine, blur_kernel, layout="NHWC")``;
* heatmap to input pixels: ``x_in = x_hm * stride + offset``, with the offset
  that each model's own training or decoding code implies (constants below).
  Pixel centres sit at integer coordinates in the image, the input and the
  heatmap (OpenCV's convention, which ``cv2.warpAffine`` uses);
* input to image pixels: the inverse affine;
* error: Euclidean distance in image pixels, averaged over every GT-labelled
  keypoint (v > 0) of every person, failures included (no threshold, no
  outlier removal). Keypoints whose heatmap peak is <= 0 have no prediction
  (``decode_heatmap`` returns -1) and are counted separately.

Measured with ai-edge-litert 2.3.0 and OpenCV 5.0 on x86-64 (mean / median
error in image pixels; "better/worse": keypoints DARK moves closer/farther):

* CPM (MobileNetV2 CPM, 96x96 heatmaps, blur kernel 17) on ``data/aic``, 9
  people, 101 labelled keypoints, all predicted: none 60.1 / 21.0, dark
  57.6 / 15.8; better 68, worse 33.
* BlazePose full (64x64 heatmaps after a sigmoid, blur kernel 9) on
  ``data/coco``, 12 people, 181 labelled keypoints: none 13.54 / 5.90, dark
  12.79 / 5.48; better 109, worse 72. BlazePose lite: none 13.59 / 6.94,
  dark 12.87 / 6.46; better 102, worse 79. (The landmark regression output
  ``Identity`` of the same crops scores 12.4 (full) and 14.6 (lite).)

The absolute errors are fragile, the DARK gain is not. The means are
dominated by whole-person failures (CPM was trained on random scene crops and
often locks onto a neighbouring person), and which people fail flips with the
crop: shifting it by a quarter pixel or scaling it by 2 % moves the CPM mean
anywhere between 46 and 81 px, BlazePose full between 11.4 and 15.5 px and
lite between 12.5 and 19.0 px (mapping the box centre to ``out / 2`` as MMPose
does gives CPM 67.9 -> 64.6). Under ten such perturbations (shifts of 0.25 to
1 px, rescalings of 2 to 10 %) DARK lowered the mean error and moved more
keypoints closer than farther every time, for all three models: it refines
around the same argmax, so it cannot change which person was found, only how
precisely. On BlazePose the gain is small (~5 %) and the median can rise: on
the well-localised keypoints the residual (~0.75 heatmap px RMS) is model and
annotation error, well above the argmax quantisation that DARK removes
(0.29 px RMS).

The ceilings are 1.5x the measured means, so a broken crop, channel mapping
or decode fails the test while CPU-to-CPU float differences do not.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from edgepose.ops import decode_heatmap

cv2 = pytest.importorskip(
    "cv2", reason="The real-model tests need OpenCV: pip install 'edgepose[vision]'.")
litert = pytest.importorskip(
    "ai_edge_litert.interpreter",
    reason="The real-model tests need the TFLite runtime: pip install 'edgepose[tflite]'.")

_PADDING = 1.25

# --- CPM (edvardHua/PoseEstimationForMobile, MobileNetV2 CPM) -------------------
# Input [1, 192, 192, 3] float32 BGR 0-255, output [1, 96, 96, 14] heatmaps.
# Model channels: 0 head top, 1 neck, 2 R-sho, 3 R-elb, 4 R-wri, 5 L-sho,
# 6 L-elb, 7 L-wri, 8 R-hip, 9 R-knee, 10 R-ank, 11 L-hip, 12 L-knee, 13 L-ank.
# AIC annotation order: R-sho, R-elb, R-wri, L-sho, L-elb, L-wri, R-hip,
# R-knee, R-ank, L-hip, L-knee, L-ank, head top, neck. Model channel of each
# AIC keypoint (checked on the data: swapping left and right raises the mean
# argmax error from 60 px to 107 px):
_CPM_CHANNEL_OF_AIC = np.array([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 0, 1])
_CPM_INPUT = 192
_CPM_STRIDE = 2.0
# The training targets are Gaussians drawn at input resolution and shrunk by 2
# with cv2.INTER_AREA, so heatmap pixel i averages input pixels 2i and 2i + 1:
# its centre is input coordinate 2i + 0.5.
_CPM_OFFSET = 0.5
# Training sigma is 6 input px = 3 heatmap px (measured blob: ~3.4 px);
# OpenCV's kernel of sigma 0.3 * ((k - 1) / 2 - 1) + 0.8 ~ 3 is k = 17, the
# kernel MMPose uses for sigma-3 targets.
_CPM_BLUR_KERNEL = 17

# --- BlazePose landmark (MediaPipe 0.10.14 full, @mediapipe/pose lite) ----------
# Input [1, 256, 256, 3] float32 RGB in [0, 1]; heatmaps "Identity_3"
# [1, 64, 64, 39] are logits (MediaPipe applies a sigmoid before using them).
# Channels 0-32 are the BlazePose-33 landmarks; COCO-17 keypoint i is channel:
_BLAZEPOSE_CHANNEL_OF_COCO = np.array(
    [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])
_BLAZEPOSE_INPUT = 256
_BLAZEPOSE_HEATMAP_NAME = "Identity_3"
_BLAZEPOSE_STRIDE = 4.0
# MediaPipe's RefineLandmarksFromHeatmapCalculator turns heatmap column c into
# the normalised coordinate c / 64 and the landmarks into input pixels as
# x * 256, i.e. x_in = 4 * c with no half-pixel shift.
_BLAZEPOSE_OFFSET = 0.0
# The sigmoid maps have a measured blob sigma of 1.6 (full) to 1.75 (lite)
# heatmap px; OpenCV's sigma-0 formula gives sigma 1.7 for k = 9 (0.3 * 3 + 0.8).
_BLAZEPOSE_BLUR_KERNEL = 9


# --- crop geometry (to move into the runtime) -----------------------------------

def _crop_matrix(
    box_xyxy: NDArray[np.float64], out_w: int, out_h: int, padding: float = _PADDING
) -> NDArray[np.float64]:
    """Affine ``(2, 3)`` mapping image pixels to model-input pixels for a top-down crop.

    The box is enlarged by ``padding`` about its centre, then its shorter side
    (relative to the aspect ratio ``out_w / out_h``) is lengthened so that the
    region has the input's aspect ratio; the region is scaled uniformly onto
    the ``(out_h, out_w)`` input with the box centre at the centre of the
    array, ``((out_w - 1) / 2, (out_h - 1) / 2)``.
    """
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    w, h = (x2 - x1) * padding, (y2 - y1) * padding
    aspect = out_w / out_h
    if w > h * aspect:
        h = w / aspect
    else:
        w = h * aspect
    s = out_w / w
    return np.array([[s, 0.0, (out_w - 1) / 2.0 - s * cx],
                     [0.0, s, (out_h - 1) / 2.0 - s * cy]])


def _invert_affine(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    """Inverse of an affine ``(2, 3)`` matrix, as a ``(2, 3)`` matrix."""
    linear_inv = np.linalg.inv(matrix[:, :2])
    return np.hstack([linear_inv, -linear_inv @ matrix[:, 2:]])


def _apply_affine(matrix: NDArray[np.float64], points: NDArray) -> NDArray[np.float64]:
    """Applies an affine ``(2, 3)`` matrix to ``(..., 2)`` xy points."""
    return points @ matrix[:, :2].T + matrix[:, 2]


# --- data and models ------------------------------------------------------------

@dataclass(frozen=True)
class _Person:
    image: Path
    box_xyxy: NDArray[np.float64]   # (4,)
    keypoints: NDArray[np.float64]  # (K, 3) x, y, v in image pixels


def _load_people(annotation_file: Path) -> list[_Person]:
    """The annotated people (num_keypoints > 0) of a COCO-format file."""
    data = json.loads(annotation_file.read_text())
    files = {img["id"]: annotation_file.parent / img["file_name"] for img in data["images"]}
    people = []
    for ann in data["annotations"]:
        if ann.get("num_keypoints", 0) == 0:
            continue
        x, y, w, h = ann["bbox"]
        people.append(_Person(
            image=files[ann["image_id"]],
            box_xyxy=np.array([x, y, x + w, y + h], dtype=np.float64),
            keypoints=np.array(ann["keypoints"], dtype=np.float64).reshape(-1, 3)))
    return people


@dataclass(frozen=True)
class _Run:
    """Model outputs on every person, and what is needed to score them."""
    heatmaps: NDArray[np.float32]   # (N, H, W, C) what is decoded
    to_image: NDArray[np.float64]   # (N, 2, 3) model input -> image pixels
    gt: NDArray[np.float64]         # (N, K, 3) x, y, v in image pixels
    channels: NDArray[np.intp]      # (K,) heatmap channel of each GT keypoint
    stride: float
    offset: float


def _interpreter(model_file: Path):
    """A TFLite interpreter with its tensors allocated (once per model and module)."""
    interpreter = litert.Interpreter(model_path=str(model_file))
    interpreter.allocate_tensors()
    return interpreter


def _heatmap_output(interpreter, name: str | None = None) -> dict:
    """The 4-D output detail named ``name`` (or the only 4-D output)."""
    outputs = [o for o in interpreter.get_output_details() if len(o["shape"]) == 4]
    if name is not None:
        outputs = [o for o in outputs if o["name"] == name]
    names = [o["name"] for o in interpreter.get_output_details()]
    assert len(outputs) == 1, f"expected one heatmap output {name or ''}, outputs are {names}"
    return outputs[0]


def _run_top_down(interpreter, people: list[_Person], size: int, heatmap: dict,
                  rgb01: bool) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """Crops, runs and returns ``(N, H, W, C)`` heatmaps and ``(N, 2, 3)`` input->image matrices.

    The input is BGR 0-255 (CPM) or, with ``rgb01``, RGB scaled to [0, 1] (BlazePose).
    """
    inp = interpreter.get_input_details()[0]
    assert tuple(inp["shape"]) == (1, size, size, 3) and inp["dtype"] == np.float32
    images: dict[Path, np.ndarray] = {}
    heatmaps, to_image = [], []
    for person in people:
        if person.image not in images:
            bgr = cv2.imread(str(person.image), cv2.IMREAD_COLOR)
            assert bgr is not None, f"could not read {person.image}"
            images[person.image] = bgr[:, :, ::-1] if rgb01 else bgr
        matrix = _crop_matrix(person.box_xyxy, size, size)
        crop = cv2.warpAffine(images[person.image], matrix, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        x = crop.astype(np.float32)[None]
        if rgb01:
            x /= 255.0
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        heatmaps.append(interpreter.get_tensor(heatmap["index"])[0].copy())
        to_image.append(_invert_affine(matrix))
    return np.stack(heatmaps), np.stack(to_image)


def _sigmoid(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """The activation MediaPipe applies to the BlazePose heatmap logits (float32 out)."""
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)


@pytest.fixture(scope="module")
def cpm_run(shared_dir: Path) -> _Run:
    interpreter = _interpreter(shared_dir / "models/heatmap_cpm_hourglass/cpm_model.tflite")
    people = _load_people(shared_dir / "data/aic/test_aic.json")
    heatmaps, to_image = _run_top_down(
        interpreter, people, _CPM_INPUT, _heatmap_output(interpreter), rgb01=False)
    assert heatmaps.shape == (len(people), 96, 96, 14)
    return _Run(heatmaps, to_image, np.stack([p.keypoints for p in people]),
                _CPM_CHANNEL_OF_AIC, _CPM_STRIDE, _CPM_OFFSET)


@pytest.fixture(scope="module", params=["full", "lite"])
def blazepose_logits(request, shared_dir: Path) -> tuple[str, NDArray[np.float32], _Run]:
    """(variant, raw heatmap logits (N, 64, 64, 39), run on the sigmoid maps)."""
    variant = request.param
    interpreter = _interpreter(shared_dir / f"models/mediapipe/pose_landmark_{variant}.tflite")
    people = _load_people(shared_dir / "data/coco/test_coco.json")
    logits, to_image = _run_top_down(
        interpreter, people, _BLAZEPOSE_INPUT,
        _heatmap_output(interpreter, _BLAZEPOSE_HEATMAP_NAME), rgb01=True)
    assert logits.shape == (len(people), 64, 64, 39)
    run = _Run(_sigmoid(logits), to_image, np.stack([p.keypoints for p in people]),
               _BLAZEPOSE_CHANNEL_OF_COCO, _BLAZEPOSE_STRIDE, _BLAZEPOSE_OFFSET)
    return variant, logits, run


# --- scoring --------------------------------------------------------------------

def _errors_px(run: _Run, refine: str, blur_kernel: int) -> tuple[NDArray[np.float64], int]:
    """Errors in image pixels of the labelled, predicted keypoints, and the number unpredicted."""
    kp_hm, scores = decode_heatmap(run.heatmaps, refine, blur_kernel, layout="NHWC")
    kp_hm, scores = kp_hm[:, run.channels], scores[:, run.channels]
    kp_in = kp_hm.astype(np.float64) * run.stride + run.offset
    kp_img = np.stack([_apply_affine(m, k) for m, k in zip(run.to_image, kp_in)])
    labelled = run.gt[..., 2] > 0
    predicted = scores > 0
    errors = np.linalg.norm(kp_img - run.gt[..., :2], axis=-1)
    return errors[labelled & predicted], int((labelled & ~predicted).sum())


def _blob_sigma(maps: NDArray[np.float32], min_peak: float) -> float:
    """Median Gaussian-equivalent width (FWHM / 2.355) of the confident peaks, heatmap px.

    ``maps`` is ``(N, H, W, C)``; the half-maximum crossings left, right, up
    and down of each peak are found by linear interpolation.
    """
    sigmas = []
    for person in maps:
        for m in np.moveaxis(person, -1, 0):
            y, x = np.unravel_index(np.argmax(m), m.shape)
            half = m[y, x] / 2.0
            if m[y, x] < min_peak:
                continue
            reach = []
            for profile in (m[y, x::-1], m[y, x:], m[y::-1, x], m[y:, x]):
                below = np.flatnonzero(profile < half)
                if below.size == 0:
                    break
                i = below[0]
                reach.append(i - 1 + (profile[i - 1] - half) / (profile[i - 1] - profile[i]))
            else:
                sigmas.append(sum(reach) / 2.0 / 2.3548)
    assert len(sigmas) >= 20, f"too few confident peaks to measure the blob: {len(sigmas)}"
    return float(np.median(sigmas))


# --- tests ----------------------------------------------------------------------

def test_cpm_blob_width_matches_blur_kernel(cpm_run: _Run) -> None:
    """The CPM blobs are ~3 heatmap px wide (sigma), what kernel 17 assumes."""
    assert 2.5 < _blob_sigma(cpm_run.heatmaps, min_peak=0.3) < 4.0


def test_cpm_dark_lowers_keypoint_error_on_aic(cpm_run: _Run) -> None:
    """CPM on data/aic: argmax 60.1 px, DARK 57.6 px mean error (module docstring)."""
    none, missing_none = _errors_px(cpm_run, "none", _CPM_BLUR_KERNEL)
    dark, missing_dark = _errors_px(cpm_run, "dark", _CPM_BLUR_KERNEL)
    # Same keypoints for both: whether a peak exists does not depend on refine.
    assert (none.size, missing_none) == (dark.size, missing_dark)
    assert none.size + missing_none == 101 and none.size >= 95
    assert dark.mean() < none.mean()
    assert (dark < none).sum() > (dark > none).sum()
    assert none.mean() < 1.5 * 60.1
    assert dark.mean() < 1.5 * 57.6


def test_blazepose_heatmaps_are_logits_with_narrow_blobs(blazepose_logits) -> None:
    """The BlazePose heatmap head gives logits: a sigmoid is needed before decoding.

    The background sits far below zero and some landmark peaks are <= 0, which
    ``decode_heatmap`` (rightly) reports as no prediction; after the sigmoid
    the blobs have sigma ~1.7 heatmap px, what kernel 9 assumes.
    """
    _, logits, run = blazepose_logits
    landmarks = logits[..., :33]
    assert np.median(landmarks) < -5.0
    assert (landmarks.max(axis=(1, 2)) <= 0).any()
    kp_raw, _ = decode_heatmap(landmarks, "none", layout="NHWC")
    assert (kp_raw == -1).any()
    assert 1.3 < _blob_sigma(run.heatmaps[..., :33], min_peak=0.5) < 2.2


def test_blazepose_dark_lowers_keypoint_error_on_coco(blazepose_logits) -> None:
    """BlazePose on data/coco: DARK lowers the mean error by ~5 % (module docstring).

    full: argmax 13.54 px, DARK 12.79 px; lite: argmax 13.59 px, DARK 12.87 px.
    """
    variant, _, run = blazepose_logits
    none, missing_none = _errors_px(run, "none", _BLAZEPOSE_BLUR_KERNEL)
    dark, missing_dark = _errors_px(run, "dark", _BLAZEPOSE_BLUR_KERNEL)
    assert (none.size, missing_none) == (dark.size, missing_dark) == (181, 0)
    assert dark.mean() < none.mean()
    assert (dark < none).sum() > (dark > none).sum()
    measured_none = {"full": 13.54, "lite": 13.59}[variant]
    measured_dark = {"full": 12.79, "lite": 12.87}[variant]
    assert none.mean() < 1.5 * measured_none
    assert dark.mean() < 1.5 * measured_dark
