"""Ultralytics' export metadata -> model card (edgepose.card.ultralytics).

The real YOLO11n-pose exports (AGPL-3.0, read in place) and synthetic files
written into tmp_path with missing, malformed and hostile metadata.
"""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from edgepose.card import read_card
from edgepose.card.ultralytics import (MAX_LITERAL_CHARS, card_from_ultralytics,
                                       read_ultralytics_metadata)
from edgepose.keypoints import get_keypoint_set

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

STATIC, DYNAMIC, TFLITE = "yolo11n-pose.onnx", "yolo11n-pose-dynamic.onnx", "yolo11n-pose.tflite"

# What Ultralytics 8.4 writes into an ONNX pose export (values are strings).
ONNX_RECORD = {
    "description": "Ultralytics YOLO11n-pose model trained on coco-pose.yaml",
    "author": "Ultralytics", "date": "2026-12-03T07:50:59", "version": "8.4.190",
    "license": "AGPL-3.0 License (https://ultralytics.com/license)",
    "docs": "https://docs.ultralytics.com", "stride": "32", "task": "pose", "head": "Pose",
    "batch": "1", "imgsz": "[64, 64]", "names": "{0: 'person'}",
    "args": "{'batch': 1, 'dynamic': False}", "channels": "3", "end2end": "False",
    "kpt_shape": "[17, 3]",
}


@pytest.fixture(scope="module")
def yolo_dir(models):
    return models / "yolo_pose"


# --- the real files ------------------------------------------------------------------

@pytest.mark.parametrize("name", [STATIC, DYNAMIC, TFLITE])
def test_real_files(yolo_dir, name):
    path = yolo_dir / name
    assert read_card(path) is None  # no edgepose card: the metadata is what tells
    record = read_ultralytics_metadata(path)
    assert record["task"] == "pose" and record["author"] == "Ultralytics"
    card = card_from_ultralytics(record, source=str(path))
    assert (card.task, card.head, card.keypoints) == ("onestage", "yolo_pose", "coco17")
    spec = card.input
    assert (spec.size, spec.layout, spec.dtype, spec.color) == ((640, 640), "NCHW", "float32",
                                                                "RGB")
    assert (spec.mean, spec.std) == ((0.0, 0.0, 0.0), (255.0, 255.0, 255.0))
    assert (spec.resize, spec.pad_value) == ("letterbox", 114.0)
    params = card.params
    assert (params.align, params.num_classes, params.person_classes, params.keypoint_dims,
            params.size_multiple, params.format) == ("center", 1, (0,), 3, 32, "decoded")
    assert params.normalized is (name == TFLITE)
    assert card.provenance["card"] == "from Ultralytics metadata"
    assert card.provenance["ultralytics_version"] == "8.4.190"
    assert card.provenance["license"].startswith("AGPL-3.0")
    assert card.name == name.rsplit(".", 1)[0]


def test_real_file_outputs_by_role(yolo_dir):
    from edgepose.model import LoadedModel

    model = LoadedModel(yolo_dir / TFLITE)
    try:
        assert model.card.input.name == "serving_default_args_0"
        assert dict(model.card.outputs) == {"output": "serving_default_output_0_output"}
    finally:
        model.close()


# --- synthetic ONNX files ------------------------------------------------------------------

def write_onnx(path, metadata, output=None):
    """A tiny ONNX model: input images [1, 3, 64, 64], output0 a constant
    (default: no person) of shape [1, 4 + 1 + K*3, 84] (strides 8/16/32)."""
    if output is None:
        output = np.zeros((1, 56, 84), np.float32)
    const = numpy_helper.from_array(np.asarray(output, np.float32), "value")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["value"], ["output0"])], "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))],
        [const])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def _card_of(path):
    record = read_ultralytics_metadata(path)
    return card_from_ultralytics(record, source=str(path))


def test_synthetic_onnx_card(tmp_path):
    card = _card_of(write_onnx(tmp_path / "m.onnx", ONNX_RECORD))
    assert card.input.size == (64, 64) and card.keypoints == "coco17"


def test_no_metadata_is_none(tmp_path):
    assert read_ultralytics_metadata(write_onnx(tmp_path / "m.onnx", {})) is None
    assert read_ultralytics_metadata(write_onnx(tmp_path / "o.onnx", {"a": "b"})) is None
    # another tool's "stride" or "imgsz" alone is not Ultralytics' record
    assert read_ultralytics_metadata(write_onnx(tmp_path / "s.onnx", {"stride": "8",
                                                                     "imgsz": "[64]"})) is None


HUGE = "{0: '" + "a" * (MAX_LITERAL_CHARS + 1) + "'}"


@pytest.mark.parametrize("change, message", [
    ({"task": "detect"}, r"m.onnx is an Ultralytics 'detect' model \(metadata task 'detect'\), "
                         r"not a pose model"),
    ({"task": None}, r"m.onnx: Ultralytics metadata field 'task' is missing"),
    ({"kpt_shape": None}, r"field 'kpt_shape' is missing; a pose model gives \[K, 2\] or "
                          r"\[K, 3\]."),
    ({"kpt_shape": "[17, 4]"}, r"field 'kpt_shape' must be \[K, 2\] or \[K, 3\] with K from 1 "
                               r"to 1024, got \[17, 4\]."),
    ({"kpt_shape": "[0, 3]"}, r"field 'kpt_shape' must be \[K, 2\] or \[K, 3\]"),
    ({"kpt_shape": "[100000, 3]"}, r"field 'kpt_shape' must be \[K, 2\] or \[K, 3\]"),
    ({"kpt_shape": "[17.0, 3]"}, r"field 'kpt_shape' must be \[K, 2\] or \[K, 3\]"),
    ({"kpt_shape": "17"}, r"field 'kpt_shape' must be a list of integers, got 17."),
    ({"kpt_shape": "__import__('os').system('echo pwned')"},
     r"field 'kpt_shape' is not a plain Python literal"),
    ({"names": "(lambda: 1)()"}, r"field 'names' is not a plain Python literal"),
    ({"names": "['person']"}, r"field 'names' must be a dict of class index -> name"),
    ({"names": "{0: 1}"}, r"field 'names' must map class indices \(0 to 4095\) to names, got "
                          r"the entry 0: 1."),
    ({"names": "{1: 'person'}"}, r"field 'names' must number its classes 0 to 0, got \[1\]."),
    ({"names": HUGE}, rf"field 'names' is {len(HUGE)} characters long; edgepose parses at most "
                      rf"{MAX_LITERAL_CHARS}."),
    ({"names": "[" * 60 + "]" * 60}, r"field 'names' nests brackets 60 levels deep; at most 4"),
    ({"imgsz": "[" + "1, " * 12000 + "]"}, r"field 'imgsz' is not a plain Python literal .*"
                                          r"syntax nodes"),
    ({"imgsz": "9" * 5000}, r"field 'imgsz' is not a plain Python literal"),
    ({"imgsz": "-" * 60000 + "1"}, r"field 'imgsz' is not a plain Python literal"),
    ({"imgsz": "1+" * 20000 + "1"}, r"field 'imgsz' is not a plain Python literal"),
    ({"imgsz": "[640, 640, 3]"}, r"field 'imgsz' must be 1 or 2 integers from 1 to 4096"),
    ({"imgsz": "[0, 640]"}, r"field 'imgsz' must be 1 or 2 integers from 1 to 4096"),
    ({"imgsz": "[8192, 8192]"}, r"field 'imgsz' must be 1 or 2 integers from 1 to 4096"),
    ({"imgsz": None}, r"field 'imgsz' is missing"),
    ({"stride": "-32"}, r"field 'stride' must be an integer from 1 to 1024, got -32."),
    ({"end2end": "'yes'"}, r"field 'end2end' must be True or False, got 'yes'."),
    ({"channels": "1"}, r"field 'channels' is 1; edgepose feeds 3-channel colour images."),
    ({"license": "x" * 5000}, r"field 'license' is 5000 characters long; at most 1024"),
])
def test_bad_metadata(tmp_path, change, message):
    record = {k: v for k, v in {**ONNX_RECORD, **change}.items() if v is not None}
    path = write_onnx(tmp_path / "m.onnx", record)
    with pytest.raises(ValueError, match=message):
        _card_of(path)


def test_bad_metadata_through_the_estimator(tmp_path):
    from edgepose import Estimator

    path = write_onnx(tmp_path / "det.onnx", {**ONNX_RECORD, "task": "detect"})
    with pytest.raises(ValueError, match=r"det.onnx is an Ultralytics 'detect' model"):
        Estimator(path)


def test_other_keypoint_counts(tmp_path):
    """kpt_shape [5, 2]: an unnamed 5-keypoint set; the person is decoded and
    mapped back, and what needs keypoint meanings is refused clearly."""
    from edgepose import Estimator

    k = 5
    out = np.zeros((1, 4 + 1 + k * 2, 84), np.float32)
    out[0, :5, 0] = [16, 16, 10, 20, 0.9]                       # one person at anchor 0
    out[0, 5:, 0] = np.stack([np.arange(k) + 12.0, np.arange(k) + 8.0], 1).ravel()
    path = write_onnx(tmp_path / "five.onnx", {**ONNX_RECORD, "kpt_shape": "[5, 2]"}, out)
    with Estimator(path) as est:
        assert est.card.keypoints == "keypoints5"
        assert est.keypoint_set is get_keypoint_set("keypoints5")
        assert est.keypoint_set.sigmas is None and est.keypoint_set.flip_pairs == ()
        result = est(np.zeros((64, 64, 3), np.uint8))
    assert result.keypoints.shape == (1, k, 2)
    np.testing.assert_allclose(result.boxes, [[11, 6, 21, 26]], atol=1e-4)
    np.testing.assert_allclose(result.keypoints[0, :, 0], np.arange(k) + 12.0, atol=1e-4)
    np.testing.assert_allclose(result.scores, 0.9, atol=1e-6)  # D = 2: the person's score
    with Estimator(path, keypoint_set="coco17") as est:
        with pytest.raises(ValueError, match="Cannot convert 'keypoints5' keypoints to 'coco17': "
                                             "the points of an unnamed keypoint set"):
            est(np.zeros((64, 64, 3), np.uint8))
    from edgepose.evaluation import resolve_sigmas

    with pytest.raises(ValueError, match="Cannot tell which OKS sigmas fit these 5 keypoints"):
        resolve_sigmas(k, keypoint_names=get_keypoint_set("keypoints5").names)
    from edgepose.ops import nms_oks

    with pytest.raises(ValueError, match="sigmas are required for K=5 keypoints"):
        nms_oks(np.zeros((2, k, 2)), [1.0, 0.5], [1.0, 1.0], 0.5)


def test_end2end_metadata_gives_the_end_to_end_format(tmp_path):
    path = write_onnx(tmp_path / "e2e.onnx", {**ONNX_RECORD, "end2end": "True"},
                      np.zeros((1, 300, 57), np.float32))
    assert _card_of(path).params.format == "end_to_end"


# --- synthetic TFLite files (a flatbuffer stand-in with the zip Ultralytics appends) ---------

def write_tflite(path, text):
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("metadata.json", text)
    return path


def test_tflite_json(tmp_path):
    record = {"author": "Ultralytics", "version": "8.4.190", "license": "AGPL-3.0",
              "stride": 32, "task": "pose", "imgsz": [320, 320], "names": {"0": "person"},
              "end2end": False, "kpt_shape": [17, 3]}
    card = _card_of(write_tflite(tmp_path / "m.tflite", json.dumps(record)))
    assert card.input.size == (320, 320) and card.params.normalized is True


@pytest.mark.parametrize("text, message", [
    ("{not json", r"m.tflite carries an invalid Ultralytics metadata.json"),
    ("[" * 100 + "]" * 100, r"m.tflite carries an invalid Ultralytics metadata.json: .*100 "
                            r"levels deep"),
    ('{"task": "pose", "imgsz": [64], "kpt_shape": [17, 3], "names": {"x": "person"}}',
     r"field 'names' must map class indices \(0 to 4095\) to names, got the entry 'x'"),
    ('{"task": "pose", "imgsz": [64], "kpt_shape": {"a": 1}, "names": {"0": "person"}}',
     r"m.tflite: Ultralytics metadata field 'kpt_shape' must be a list of integers, got "
     r"\{'a': 1\}."),
])
def test_bad_tflite_json(tmp_path, text, message):
    path = write_tflite(tmp_path / "m.tflite", text)
    with pytest.raises(ValueError, match=message):
        _card_of(path)


def test_tflite_json_not_an_object(tmp_path):
    with pytest.raises(ValueError, match=r"metadata.json that is not a JSON object \(got list\)"):
        read_ultralytics_metadata(write_tflite(tmp_path / "m.tflite", "[1]"))


# --- OpenVINO: metadata.yaml beside the .xml ----------------------------------------------

YAML = """description: Ultralytics YOLO11n-pose model trained on coco-pose.yaml
author: Ultralytics
date: '2026-12-03T07:50:59.623599+00:00'
version: 8.4.190
license: AGPL-3.0 License (https://ultralytics.com/license)
docs: https://docs.ultralytics.com
stride: 32
task: pose
head: Pose
batch: 1
imgsz:
- 640
- 640
names:
  0: person
args:
  data: null
  dynamic: false
  imgsz:
  - 640
  - 640
channels: 3
end2end: false
kpt_shape:
- 17
- 3
"""


@pytest.fixture(scope="module")
def openvino_ir(yolo_dir, tmp_path_factory):
    """The ONNX file converted to an OpenVINO IR in a temporary folder, with
    the metadata.yaml Ultralytics writes beside it."""
    ov = pytest.importorskip("openvino")
    folder = tmp_path_factory.mktemp("yolo11n-pose_openvino_model")
    xml = folder / "yolo11n-pose.xml"
    ov.save_model(ov.convert_model(str(yolo_dir / STATIC)), str(xml), compress_to_fp16=False)
    (folder / "metadata.yaml").write_text(YAML, encoding="utf-8")
    return xml


def test_openvino_yaml(openvino_ir, yolo_dir, shared_dir):
    import cv2

    from edgepose import Estimator

    record = read_ultralytics_metadata(openvino_ir)
    assert record["imgsz"] == [640, 640] and record["names"] == {0: "person"}
    assert record["kpt_shape"] == [17, 3] and record["end2end"] is False
    assert record["version"] == "8.4.190" and record["args"] is None  # args: skipped unparsed
    image = cv2.imread(str(shared_dir / "data/coco/000000197388.jpg"))
    with Estimator(openvino_ir) as est, Estimator(yolo_dir / STATIC) as ref:
        assert est.card.provenance["card"] == "from Ultralytics metadata"
        assert est.card.params.normalized is False
        ours, theirs = est(image), ref(image)
    assert len(ours) == len(theirs) > 0
    np.testing.assert_allclose(ours.boxes, theirs.boxes, atol=0.05)
    np.testing.assert_allclose(ours.keypoints, theirs.keypoints, atol=0.05)


def test_pyyaml_output_reads_the_same(tmp_path):
    """What PyYAML's safe_dump writes (Ultralytics' writer) parses to the same values."""
    yaml = pytest.importorskip("yaml")
    (tmp_path / "m.xml").write_text("<net/>")
    (tmp_path / "metadata.yaml").write_text(YAML)
    ours = read_ultralytics_metadata(tmp_path / "m.xml")
    reference = yaml.safe_load(YAML)
    for key in ("stride", "task", "batch", "imgsz", "names", "channels", "end2end", "kpt_shape",
                "license", "author", "date", "docs", "description"):
        assert ours[key] == reference[key] or str(ours[key]) == str(reference[key]), key


@pytest.mark.parametrize("text, message", [
    ("task: pose\nimgsz: [640, 640]\n", r"line 2: '\[640, 640\]' uses YAML that edgepose does "
                                       r"not read"),
    ("task: pose\nimgsz: &a 640\nstride: *a\n", r"line 2: '&a 640' uses YAML"),
    ("task: !!python/object:os.system pose\nimgsz: 640\n", r"line 1: .* uses YAML"),
    ("task: pose\ntask: pose\nimgsz: 640\n", r"line 2: the key 'task' appears twice."),
    ("task: pose\nnames:\n  0: person\n  0: people\nimgsz: 640\n",
     r"line 4: the key '0' appears twice under 'names'."),
    ("task: pose\nimgsz:\n\t- 640\n", r"line 3: indentation must be spaces."),
    ("task: pose\nnames:\n  0:\n    a: b\nimgsz: 640\n", r"line 3: expected '- item' or "
                                                        r"'key: value' under 'names'"),
    ("task: pose\nkpt_shape:\n- 17\n  a: 3\nimgsz: 640\n", r"line 4: a 'key: value' pair "
                                                          r"inside the list 'kpt_shape'."),
    ("  - 640\ntask: pose\n", r"line 1: a block line '- 640' that belongs to no key"),
    ("task pose\nimgsz: 640\n", r"line 1: expected 'key: value', got 'task pose'."),
    ("task: 'pose\nimgsz: 640\n", r"line 1: a malformed single-quoted string"),
])
def test_bad_yaml(tmp_path, text, message):
    (tmp_path / "m.xml").write_text("<net/>")
    (tmp_path / "metadata.yaml").write_text(text)
    with pytest.raises(ValueError, match=message):
        read_ultralytics_metadata(tmp_path / "m.xml")


def test_yaml_values_are_validated(tmp_path):
    (tmp_path / "m.xml").write_text("<net/>")
    (tmp_path / "metadata.yaml").write_text(
        "task: pose\nimgsz:\n- 640\nkpt_shape:\n- 17\n- '3'\nnames:\n  0: person\n")
    record = read_ultralytics_metadata(tmp_path / "m.xml")
    with pytest.raises(ValueError, match=r"m.xml: Ultralytics metadata field 'kpt_shape' must "
                                         r"be \[K, 2\] or \[K, 3\]"):
        card_from_ultralytics(record, source=str(tmp_path / "m.xml"))


def test_huge_yaml_is_refused_before_reading(tmp_path):
    from edgepose.card import MAX_CARD_BYTES

    (tmp_path / "m.xml").write_text("<net/>")
    with open(tmp_path / "metadata.yaml", "wb") as f:
        f.truncate(MAX_CARD_BYTES + 1)
    with pytest.raises(ValueError, match=rf"metadata.yaml is {MAX_CARD_BYTES + 1} bytes; "
                                         "edgepose reads at most"):
        read_ultralytics_metadata(tmp_path / "m.xml")


# --- unnamed keypoint sets (K != 17) ---------------------------------------------------------

def test_unnamed_keypoint_sets():
    from edgepose.keypoints import (KEYPOINT_SETS, can_convert, convert_keypoints, is_unnamed,
                                    unnamed_keypoint_set)

    five = unnamed_keypoint_set(5)
    assert KEYPOINT_SETS["keypoints5"] is five and "keypoints5" in KEYPOINT_SETS
    assert five.names == tuple(f"keypoint_{i}" for i in range(5))
    assert five.sigmas is None and five.skeleton == () and five.flip_pairs == ()
    assert is_unnamed(five) and not is_unnamed(get_keypoint_set("coco17"))
    assert "keypoints5" not in list(KEYPOINT_SETS)  # listed sets are the named ones
    for name in ("keypoints0", "keypoints1025", "keypoints05", "keypoints"):
        assert name not in KEYPOINT_SETS
    with pytest.raises(ValueError, match="An unnamed keypoint set has 1 to 1024 keypoints, got 0"):
        unnamed_keypoint_set(0)
    assert can_convert("keypoints5", "keypoints5") and not can_convert("keypoints5", "coco17")
    assert not can_convert("coco17", "keypoints17")
    kp, sc = convert_keypoints(np.ones((1, 5, 2)), np.ones((1, 5)), five, "keypoints5")
    assert kp.shape == (1, 5, 2)
    with pytest.raises(ValueError, match="Cannot convert 'coco17' keypoints to 'keypoints17': "
                                         "the points of an unnamed keypoint set"):
        convert_keypoints(np.ones((1, 17, 2)), np.ones((1, 17)), "coco17", "keypoints17")
