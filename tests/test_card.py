"""edgepose.card: the model card, its JSON, and its round trip through real model files.

Cards are written into copies in tmp_path, never into the shared folder. Each
format is checked with its own runtime: the copy with a card still loads and
gives bit-identical outputs, and the runtime sees the card where the format
keeps it (onnxruntime's custom metadata, OpenVINO's rt_info).
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgepose.card import (
    CARD_VERSION,
    ONNX_METADATA_KEY,
    TFLITE_ASSOCIATED_FILE,
    InputSpec,
    ModelCard,
    _onnx_metadata,
    read_card,
    write_card,
)
from edgepose.keypoints import AIC14

CPM_ONNX = "models/heatmap_cpm_hourglass/onnx_converted/cpm_model.onnx"
MOVENET_TFLITE = "models/movenet/movenet_singlepose_lightning_int8_4.tflite"
# MediaPipe's detector ends with an empty zip archive: TFLite Support metadata
# with no associated files.
DETECTION_TFLITE = "models/mediapipe/pose_detection.tflite"


def rtmpose_card(**changes) -> ModelCard:
    card = ModelCard(
        name="rtmpose-s-coco-256x192", task="topdown", head="simcc", keypoints="coco17",
        input=InputSpec(name="input", size=(256, 192), mean=(123.675, 116.28, 103.53),
                        std=(58.395, 57.12, 57.375)),
        head_params={"split_ratio": 2.0},
        outputs={"simcc_x": "simcc_x", "simcc_y": "simcc_y"},
        provenance={"source_sha256": "ab" * 32, "tools": {"onnx": "1.17"}, "parity": [0.0, 1e-6],
                    "note": "ünïcode ✓"})
    return dataclasses.replace(card, **changes)


def cpm_card() -> ModelCard:
    return ModelCard(
        name="cpm", task="single", head="heatmap", keypoints="aic14",
        input=InputSpec(name="image", size=(192, 192), layout="NHWC", color="BGR"),
        head_params={"refine": "dark", "blur_kernel": 17, "layout": "NHWC",
                     "channels": [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 0, 1]},
        outputs={"heatmaps": "Convolutional_Pose_Machine/stage_5_out"})


def movenet_card() -> ModelCard:
    return ModelCard(
        name="movenet-lightning-int8", task="single", head="movenet", keypoints="coco17",
        input=InputSpec(size=(192, 192), layout="NHWC", dtype="uint8", resize="letterbox"),
        outputs={"keypoints": "StatefulPartitionedCall:0"})


def yolox_card() -> ModelCard:
    return ModelCard(
        name="yolox-nano", task="detector", head="yolox",
        input=InputSpec(size=(416, 416), color="BGR", resize="letterbox", pad_value=114),
        head_params={"strides": [8, 16, 32], "class_index": 0})


CARDS = [rtmpose_card, cpm_card, movenet_card, yolox_card]


# --- the card and its JSON ------------------------------------------------------

@pytest.mark.parametrize("make", CARDS)
def test_json_round_trip_is_exact(make):
    card = make()
    text = card.to_json()
    again = ModelCard.from_json(text)
    assert again == card and hash(again) == hash(card)
    assert again.to_json() == text
    assert ModelCard.from_dict(card.to_dict()) == card
    assert ModelCard.from_json(card.to_json(indent=2)) == card
    assert json.loads(text) == card.to_dict()
    assert next(iter(card.to_dict())) == "edgepose_card"


def test_the_v1_schema_by_example():
    text = """{
      "edgepose_card": 1,
      "name": "rtmpose-s-coco-256x192",
      "task": "topdown",
      "head": "simcc",
      "keypoints": "coco17",
      "input": {"name": "input", "size": [256, 192], "layout": "NCHW", "dtype": "float32",
                "color": "RGB", "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375],
                "resize": "affine", "pad_value": 0},
      "head_params": {"split_ratio": 2.0},
      "outputs": {"simcc_x": "simcc_x", "simcc_y": "simcc_y"},
      "provenance": {}
    }"""
    card = ModelCard.from_json(text)
    assert card == rtmpose_card(provenance={})
    assert card.input.size == (256, 192) and card.input.pad_value == 0.0
    assert card.keypoint_set.name == "coco17"
    # optional fields take their defaults
    minimal = ModelCard.from_json(
        '{"edgepose_card": 1, "name": "d", "task": "detector", "head": "nanodet",'
        ' "input": {"size": [320, 320]}}')
    assert minimal.keypoints is None and minimal.keypoint_set is None
    assert minimal.input == InputSpec(size=(320, 320))
    assert minimal.input.layout == "NCHW" and minimal.input.std == (1.0, 1.0, 1.0)
    assert dict(minimal.head_params) == {} and dict(minimal.outputs) == {}


def test_card_is_immutable_and_owns_its_data():
    params = {"split_ratio": 2.0, "channels": list(range(17))}
    provenance = {"nested": {"list": [1, 2]}}
    card = rtmpose_card(head_params=params, provenance=provenance)
    params["split_ratio"] = 3.0
    params["channels"].append(17)
    provenance["nested"]["list"].append(3)
    assert card.head_params["split_ratio"] == 2.0 and card.params.split_ratio == 2.0
    assert card.head_params["channels"] == tuple(range(17)) == card.params.channels
    assert card.provenance["nested"]["list"] == (1, 2)
    with pytest.raises(TypeError):
        card.head_params["split_ratio"] = 1.0
    with pytest.raises(TypeError):
        card.provenance["nested"]["x"] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.name = "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.params.split_ratio = 1.0
    assert card.to_dict()["head_params"] == {"split_ratio": 2.0, "channels": list(range(17))}
    assert card.to_dict()["provenance"] == {"nested": {"list": [1, 2]}}


def test_inputs_are_coerced():
    spec = InputSpec(size=[np.int64(256), 192], mean=[0, np.float32(0.5), 1], pad_value=np.uint8(7))
    assert spec.size == (256, 192) and type(spec.size[0]) is int
    assert spec.mean == (0.0, 0.5, 1.0) and spec.pad_value == 7.0
    card = rtmpose_card(input={"size": [256, 192]}, head_params={"split_ratio": np.float32(0.5)})
    assert card.input == InputSpec(size=(256, 192))
    assert card.head_params["split_ratio"] == 0.5 and type(card.head_params["split_ratio"]) is float
    assert card.params.split_ratio == 0.5 and type(card.params.split_ratio) is float


@pytest.mark.parametrize("change, message", [
    ({"task": "top-down"}, "task must be one of 'topdown', 'bottomup', 'single', 'detector', "
                           "'onestage', got 'top-down'."),
    ({"head": "rtmcc"}, "head must be one of 'simcc', 'heatmap', 'movenet', 'blazepose', "
                        "'posenet', 'paf', 'yolox', 'nanodet', .*got 'rtmcc'."),
    ({"head": "regression"}, "head must be one of .* got 'regression'."),
    ({"head": "yolox"}, r"head 'yolox' does not fit task 'topdown': detector heads "
                        r"\(yolox, nanodet\) go with task 'detector' and only they do."),
    ({"keypoints": "coco_17"}, "keypoints must name a keypoint set, one of coco17, coco18, aic14, "
                               "mpii16, crowdpose14, blazepose33, unified21, got 'coco_17'."),
    ({"keypoints": None}, "keypoints must name a keypoint set for task 'topdown'"),
    ({"keypoints": ["coco17"]}, r"keypoints must name a keypoint set, one of .* got \['coco17'\]."),
    ({"name": ""}, "name must be a non-empty string, got ''."),
    ({"input": "256x192"}, "input must be an InputSpec or a mapping of its fields, got str."),
    ({"head_params": [1]}, r"head_params must be a JSON object \(a mapping\), got \[1\]."),
    ({"head_params": {"split_ratio": float("nan")}},
     r"head_params\['split_ratio'\] must be finite \(JSON has no NaN or inf\), got nan."),
    ({"provenance": {1: "a"}}, "provenance keys must be strings, got 1."),
    ({"provenance": {"a": {1, 2}}}, r"provenance\['a'\] must hold only JSON values .* got set."),
    ({"outputs": {"heatmaps": 3}}, r"outputs\['heatmaps'\] must be a non-empty string, got 3."),
    ({"outputs": {"simcc_x": "a", "simcc_z": "b"}},
     r"outputs has an unknown role 'simcc_z' for this head. Did you mean 'simcc_y'\? Roles: "
     r"simcc_x, simcc_y."),
    ({"task": "bottomup"}, r"head 'simcc' does not fit task 'bottomup': bottom-up heads "
                           r"\(posenet, paf\) go with task 'bottomup' and only they do."),
    ({"head_params": {"split_ratio": 1e9}},
     r"head_params.split_ratio must be a finite number in \(0, 64\], got 1000000000.0."),
    ({"head_params": {"spilt_ratio": 2.0}},
     r"head_params has an unknown field 'spilt_ratio'. Did you mean 'split_ratio'\?"),
    ({"head_params": {"channels": [0, 1]}},
     r"head_params.channels must give one channel per keypoint \(17\), got 2."),
])
def test_card_validation(change, message):
    with pytest.raises(ValueError, match=message):
        rtmpose_card(**change)


@pytest.mark.parametrize("change, message", [
    ({"size": (256,)}, r"input size must be \(H, W\), two positive integers, got \(256,\)."),
    ({"size": (256, 0)}, r"input size must be \(H, W\)"),
    ({"size": (256.0, 192.0)}, r"input size must be \(H, W\)"),
    ({"layout": "NWHC"}, "input layout must be one of 'NCHW', 'NHWC', got 'NWHC'."),
    ({"dtype": "int8"}, "input dtype must be one of 'float32', 'uint8', got 'int8'."),
    ({"color": "rgb"}, "input color must be one of 'RGB', 'BGR', got 'rgb'."),
    ({"resize": "crop"}, "input resize must be one of 'affine', 'letterbox', 'stretch', "
                         "'fit_height', got 'crop'."),
    ({"mean": (0, 0)}, r"input mean must be 3 finite numbers, got \(0, 0\)."),
    ({"std": (1, 0, 1)}, r"input std must be positive, got \(1.0, 0.0, 1.0\)."),
    ({"std": (1, float("inf"), 1)}, "input std must be 3 finite numbers"),
    ({"dtype": "uint8", "std": (255, 255, 255)},
     r"A uint8 input takes raw pixels: mean must be \(0, 0, 0\) and std \(1, 1, 1\)"),
    ({"pad_value": "114"}, "input pad_value must be a finite number, got '114'."),
    ({"pad_value": 300}, "input pad_value must be a pixel value from 0 to 255, got 300."),
    ({"size": (100000, 100000)}, r"input size must be at most 4096 pixels per side "
                                 r"\(edgepose.card.MAX_INPUT_SIDE\), got \(100000, 100000\)."),
    ({"size": (4097, 1)}, r"input size must be at most 4096 pixels per side"),
    ({"std": (1e-9, 1, 1)}, r"input mean must lie within \+-10000 and std in \[0.001, 10000\]"),
    ({"mean": (1e6, 0, 0)}, r"input mean must lie within \+-10000"),
    ({"name": ""}, "input name must be a non-empty string"),
])
def test_input_validation(change, message):
    with pytest.raises(ValueError, match=message):
        InputSpec(**{"size": (256, 192), **change})


def _card_dict(**changes):
    data = rtmpose_card().to_dict()
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


@pytest.mark.parametrize("text, message", [
    ('{"edgepose_card": 1,', "The card is not valid JSON: Expecting property name"),
    ("[1, 2]", "An edgepose card must be a JSON object, got list."),
    (json.dumps(_card_dict(edgepose_card=...)),
     r"Not an edgepose card: the 'edgepose_card' version field is missing "
     r"\(expected \"edgepose_card\": 1\)."),
    (json.dumps(_card_dict(edgepose_card=2)),
     r"This is an edgepose card version 2, newer than this edgepose reads \(version 1\). "
     r"Upgrade edgepose: pip install -U edgepose."),
    (json.dumps(_card_dict(edgepose_card="1")),
     "Unsupported edgepose card version '1'; expected 1."),
    (json.dumps(_card_dict(edgepose_card=0)), "Unsupported edgepose card version 0; expected 1."),
    (json.dumps(_card_dict(task=..., head=...)),
     "The card is missing required field\\(s\\) 'task', 'head'."),
    (json.dumps(_card_dict(kepoints="coco17")),
     "The card has an unknown field 'kepoints'. Did you mean 'keypoints'\\? Valid fields: name, "
     "task, head, input, keypoints, head_params, outputs, provenance."),
    (json.dumps(_card_dict(input={"size": [256, 192], "colour": "RGB"})),
     "The card's input has an unknown field 'colour'. Did you mean 'color'\\?"),
    (json.dumps(_card_dict(input={"layout": "NCHW"})),
     "The card's input is missing required field\\(s\\) 'size'."),
    (json.dumps(_card_dict(input=[256, 192])),
     "input must be an InputSpec or a mapping of its fields, got list."),
])
def test_from_json_errors(text, message):
    with pytest.raises(ValueError, match=message):
        ModelCard.from_json(text)


def test_importing_the_card_loads_no_runtime():
    heavy = ["onnx", "onnxruntime", "openvino", "ai_edge_litert", "tensorflow", "torch", "cv2"]
    code = ("import sys, edgepose.card, edgepose.keypoints; "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_the_package_exports_the_names_of_the_former_module():
    """edgepose.card became a package: every name the single module exported
    is still importable from it, and is the object its submodule defines."""
    import edgepose.card as card
    from edgepose.card import _bounded, _card, read, write

    assert card.__all__ == [
        "CARD_VERSION", "MAX_CARD_BYTES", "MAX_CARD_DEPTH", "MAX_INPUT_SIDE", "TASKS", "HEADS",
        "DETECTOR_HEADS", "BOTTOM_UP_HEADS", "ONE_STAGE_HEADS", "WHOLE_IMAGE_TASKS", "LAYOUTS", "DTYPES", "COLORS", "RESIZES",
        "ONNX_METADATA_KEY", "TFLITE_ASSOCIATED_FILE", "OPENVINO_RT_INFO_PATH", "InputSpec",
        "ModelCard", "read_card", "write_card"]
    namespace: dict = {}
    exec("from edgepose.card import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(card.__all__)
    defined = {**vars(_bounded), **vars(_card), **vars(read), **vars(write)}
    for name in card.__all__ + ["_onnx_metadata"]:
        assert getattr(card, name) is defined[name], name


# --- ONNX ------------------------------------------------------------------------

def _run_onnx(path: Path, feed: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: feed})


def test_onnx_round_trip(shared_dir: Path, tmp_path: Path):
    import onnx
    import onnxruntime as ort

    src = shared_dir / CPM_ONNX
    assert read_card(src) is None
    card = cpm_card()
    dst = write_card(src, tmp_path / "cpm.onnx", card)
    assert dst == tmp_path / "cpm.onnx"
    assert read_card(dst) == card
    # onnxruntime sees the card where the design says it is
    meta = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).get_modelmeta()
    assert meta.custom_metadata_map == {ONNX_METADATA_KEY: card.to_json()}
    # everything else is kept: the model is the same protobuf once the card is removed
    original, copy = onnx.load(str(src)), onnx.load(str(dst))
    del copy.metadata_props[:]
    assert copy.SerializeToString() == original.SerializeToString()
    feed = np.random.default_rng(0).uniform(0, 255, (1, 192, 192, 3)).astype(np.float32)
    for a, b in zip(_run_onnx(src, feed), _run_onnx(dst, feed)):
        np.testing.assert_array_equal(a, b)


def test_onnx_rewrite_replaces_the_card_and_keeps_other_metadata(shared_dir: Path,
                                                                 tmp_path: Path):
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(shared_dir / CPM_ONNX))
    model.metadata_props.add(key="author", value="me")
    model.metadata_props.add(key=ONNX_METADATA_KEY, value="stale")
    onnx.save(model, str(tmp_path / "a.onnx"))
    with pytest.raises(ValueError, match="a.onnx carries an invalid edgepose card: The card is "
                                         "not valid JSON"):
        read_card(tmp_path / "a.onnx")
    card = cpm_card()
    write_card(tmp_path / "a.onnx", tmp_path / "b.onnx", card)
    keys = [p.key for p in onnx.load(str(tmp_path / "b.onnx"), load_external_data=False)
            .metadata_props]
    assert keys == ["author", ONNX_METADATA_KEY]
    assert read_card(tmp_path / "b.onnx") == card
    meta = ort.InferenceSession(str(tmp_path / "b.onnx"),
                                providers=["CPUExecutionProvider"]).get_modelmeta()
    assert meta.custom_metadata_map["author"] == "me"


def _tiny_onnx(path: Path, external: bool, metadata: dict[str, str] | None = None) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(64, 64), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    if external:
        onnx.save(model, str(path), save_as_external_data=True, location="tiny.data",
                  size_threshold=0)
    else:
        onnx.save(model, str(path))


def test_onnx_metadata_reader_agrees_with_onnxruntime(tmp_path: Path):
    import onnxruntime as ort

    metadata = {"a": "1", "ünï": "✓ " * 100, "empty": "", ONNX_METADATA_KEY: "x" * 5000}
    _tiny_onnx(tmp_path / "m.onnx", external=False, metadata=metadata)
    expected = ort.InferenceSession(str(tmp_path / "m.onnx"),
                                    providers=["CPUExecutionProvider"]).get_modelmeta()
    assert _onnx_metadata(tmp_path / "m.onnx") == expected.custom_metadata_map == metadata


def test_onnx_with_external_data_is_copied_with_its_data(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _tiny_onnx(tmp_path / "a/tiny.onnx", external=True)
    card = yolox_card()
    write_card(tmp_path / "a/tiny.onnx", tmp_path / "b/tiny.onnx", card)
    assert (tmp_path / "b/tiny.data").read_bytes() == (tmp_path / "a/tiny.data").read_bytes()
    assert read_card(tmp_path / "b/tiny.onnx") == card
    feed = np.ones((1, 64), np.float32)
    np.testing.assert_array_equal(_run_onnx(tmp_path / "b/tiny.onnx", feed)[0],
                                  _run_onnx(tmp_path / "a/tiny.onnx", feed)[0])


def test_writing_onnx_without_the_onnx_package(shared_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"needs the onnx package: pip install onnx "
                                          r"\(or pip install 'edgepose\[export\]'\)"):
        write_card(shared_dir / CPM_ONNX, tmp_path / "cpm.onnx", cpm_card())
    # reading needs neither onnx nor onnxruntime
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert read_card(shared_dir / CPM_ONNX) is None


def test_not_an_onnx_file(tmp_path: Path):
    (tmp_path / "x.onnx").write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match="x.onnx is not a valid ONNX model"):
        read_card(tmp_path / "x.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.onnx is not an ONNX model: the file is empty"):
        read_card(tmp_path / "empty.onnx")


# --- TFLite ----------------------------------------------------------------------

def _run_tflite(path: Path, feed: np.ndarray) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], feed)
    interpreter.invoke()
    return [interpreter.get_tensor(o["index"]).copy() for o in interpreter.get_output_details()]


def test_tflite_round_trip_runs_bit_identically(shared_dir: Path, tmp_path: Path):
    src = shared_dir / MOVENET_TFLITE
    assert read_card(src) is None
    card = movenet_card()
    dst = write_card(src, tmp_path / "movenet.tflite", card)
    assert read_card(dst) == card
    original = src.read_bytes()
    copy = dst.read_bytes()
    assert copy[:len(original)] == original  # the flatbuffer is untouched; the zip follows it
    with zipfile.ZipFile(dst) as archive:
        assert archive.namelist() == [TFLITE_ASSOCIATED_FILE]
        assert archive.read(TFLITE_ASSOCIATED_FILE).decode() == card.to_json()
    feed = np.random.default_rng(0).integers(0, 256, (1, 192, 192, 3), dtype=np.uint8)
    expected = _run_tflite(src, feed)
    got = _run_tflite(dst, feed)
    assert len(got) == len(expected) == 1
    np.testing.assert_array_equal(got[0], expected[0])
    # writing again replaces the card and leaves the model bytes alone
    other = dataclasses.replace(card, name="renamed")
    write_card(dst, tmp_path / "again.tflite", other)
    assert read_card(tmp_path / "again.tflite") == other
    again = (tmp_path / "again.tflite").read_bytes()
    assert again[:len(original)] == original
    assert len(again) == len(copy) + len(b"renamed") - len(b"movenet-lightning-int8")
    # and the writer is deterministic
    write_card(src, tmp_path / "twice.tflite", card)
    assert (tmp_path / "twice.tflite").read_bytes() == copy


def test_tflite_with_an_existing_metadata_zip(shared_dir: Path, tmp_path: Path):
    src = shared_dir / DETECTION_TFLITE
    with zipfile.ZipFile(src) as archive:
        assert archive.namelist() == []
    assert read_card(src) is None
    card = dataclasses.replace(yolox_card(), name="blazepose-detector")
    write_card(src, tmp_path / "det.tflite", card)
    assert read_card(tmp_path / "det.tflite") == card
    model = src.read_bytes()[:-22]  # without the empty archive's end record
    assert (tmp_path / "det.tflite").read_bytes()[:len(model)] == model
    feed = np.random.default_rng(1).uniform(0, 1, (1, 224, 224, 3)).astype(np.float32)
    for a, b in zip(_run_tflite(src, feed), _run_tflite(tmp_path / "det.tflite", feed)):
        np.testing.assert_array_equal(a, b)


def test_tflite_keeps_other_associated_files(shared_dir: Path, tmp_path: Path):
    labelled = tmp_path / "labelled.tflite"
    with open(labelled, "wb") as f:
        f.write((shared_dir / MOVENET_TFLITE).read_bytes())
        with zipfile.ZipFile(f, "w") as archive:
            archive.writestr("labels.txt", "person\n")
    assert read_card(labelled) is None  # an archive without a card
    write_card(labelled, tmp_path / "carded.tflite", movenet_card())
    with zipfile.ZipFile(tmp_path / "carded.tflite") as archive:
        assert archive.namelist() == ["labels.txt", TFLITE_ASSOCIATED_FILE]
        assert archive.read("labels.txt") == b"person\n"
    assert read_card(tmp_path / "carded.tflite") == movenet_card()


def test_tflite_zip_signature_inside_the_model_is_not_an_archive(shared_dir: Path,
                                                                  tmp_path: Path):
    # an end-of-central-directory signature that does not reach the end of the file
    path = tmp_path / "odd.tflite"
    path.write_bytes((shared_dir / MOVENET_TFLITE).read_bytes() + b"PK\x05\x06" + b"\0" * 40)
    assert read_card(path) is None


def test_tflite_damaged_archive(shared_dir: Path, tmp_path: Path):
    path = tmp_path / "damaged.tflite"
    # an end record that claims a central directory which is not there
    eocd = b"PK\x05\x06" + b"\0" * 4 + (1).to_bytes(2, "little") * 2 + (46).to_bytes(4, "little") \
        + (0).to_bytes(4, "little") + b"\0\0"
    path.write_bytes((shared_dir / MOVENET_TFLITE).read_bytes() + eocd)
    with pytest.raises(ValueError, match="damaged.tflite ends with a damaged zip archive"):
        read_card(path)


def test_tflite_card_from_a_newer_edgepose(shared_dir: Path, tmp_path: Path):
    path = tmp_path / "newer.tflite"
    data = movenet_card().to_dict()
    data["edgepose_card"] = CARD_VERSION + 1
    with open(path, "wb") as f:
        f.write((shared_dir / MOVENET_TFLITE).read_bytes())
        with zipfile.ZipFile(f, "w") as archive:
            archive.writestr(TFLITE_ASSOCIATED_FILE, json.dumps(data))
    with pytest.raises(ValueError, match=r"newer.tflite carries an invalid edgepose card: This is "
                                         r"an edgepose card version 2, .* Upgrade edgepose"):
        read_card(path)


# --- OpenVINO --------------------------------------------------------------------

@pytest.fixture(scope="module")
def cpm_ir(shared_dir: Path, tmp_path_factory) -> Path:
    import openvino as ov

    path = tmp_path_factory.mktemp("ir") / "cpm.xml"
    ov.save_model(ov.convert_model(shared_dir / CPM_ONNX), path, compress_to_fp16=False)
    return path


def _run_openvino(path: Path, feed: np.ndarray) -> np.ndarray:
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU")
    return compiled(feed)[compiled.output(0)]


def test_openvino_round_trip(cpm_ir: Path, tmp_path: Path):
    import openvino as ov

    assert read_card(cpm_ir) is None
    card = cpm_card()
    dst = write_card(cpm_ir, tmp_path / "cpm_card.xml", card)
    assert read_card(dst) == card
    assert (tmp_path / "cpm_card.bin").read_bytes() == cpm_ir.with_suffix(".bin").read_bytes()
    model = ov.Core().read_model(str(dst))
    assert model.get_rt_info(["edgepose", "card"]).astype(str) == card.to_json()
    feed = np.random.default_rng(2).uniform(0, 255, (1, 192, 192, 3)).astype(np.float32)
    np.testing.assert_array_equal(_run_openvino(dst, feed), _run_openvino(cpm_ir, feed))
    # a second write replaces the card
    other = dataclasses.replace(card, keypoints="crowdpose14")  # also 14 keypoints
    write_card(dst, tmp_path / "again.xml", other)
    assert read_card(tmp_path / "again.xml") == other
    assert (tmp_path / "again.xml").read_text().count("<edgepose>") == 1


def test_openvino_reads_a_card_openvino_wrote(cpm_ir: Path, tmp_path: Path):
    import openvino as ov

    model = ov.Core().read_model(str(cpm_ir))
    model.set_rt_info(cpm_card().to_json(), ["edgepose", "card"])
    ov.save_model(model, tmp_path / "by_openvino.xml", compress_to_fp16=False)
    assert read_card(tmp_path / "by_openvino.xml") == cpm_card()


def test_openvino_ir_without_rt_info(cpm_ir: Path, tmp_path: Path):
    import re

    bare = tmp_path / "bare.xml"
    bare.write_text(re.sub(r"\s*<rt_info>.*</rt_info>", "", cpm_ir.read_text(), flags=re.S))
    (tmp_path / "bare.bin").write_bytes(cpm_ir.with_suffix(".bin").read_bytes())
    assert "rt_info" not in bare.read_text()
    assert read_card(bare) is None
    write_card(bare, tmp_path / "carded.xml", cpm_card())
    assert read_card(tmp_path / "carded.xml") == cpm_card()
    feed = np.zeros((1, 192, 192, 3), np.float32)
    np.testing.assert_array_equal(_run_openvino(tmp_path / "carded.xml", feed),
                                  _run_openvino(cpm_ir, feed))


def test_not_an_openvino_ir(tmp_path: Path):
    (tmp_path / "a.xml").write_text("<net><layers>")
    with pytest.raises(ValueError, match="a.xml is not an OpenVINO IR: invalid XML"):
        read_card(tmp_path / "a.xml")
    (tmp_path / "b.xml").write_text("<svg/>")
    with pytest.raises(ValueError, match="b.xml is not an OpenVINO IR: expected a <net> root "
                                         "element, got <svg>"):
        read_card(tmp_path / "b.xml")


# --- argument errors ---------------------------------------------------------------

def test_write_card_argument_errors(shared_dir: Path, tmp_path: Path):
    src = shared_dir / MOVENET_TFLITE
    copy = write_card(src, tmp_path / "m.tflite", movenet_card())
    with pytest.raises(ValueError, match="dst must differ from src .*: write_card always writes "
                                         "a copy"):
        write_card(copy, tmp_path / "." / "m.tflite", movenet_card())
    with pytest.raises(ValueError, match=r"dst must have the same suffix as src \('.tflite'\), "
                                         r"got 'm.onnx'"):
        write_card(src, tmp_path / "m.onnx", movenet_card())
    with pytest.raises(ValueError, match=r"the suffix must be one of .onnx, .tflite, .xml, "
                                         r"got '.pb'"):
        write_card(tmp_path / "m.pb", tmp_path / "n.pb", movenet_card())
    with pytest.raises(TypeError, match="card must be a ModelCard, got dict"):
        write_card(src, tmp_path / "n.tflite", movenet_card().to_dict())
    with pytest.raises(FileNotFoundError, match="No model file at"):
        write_card(tmp_path / "missing.tflite", tmp_path / "n.tflite", movenet_card())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]  # nothing left behind


def test_read_card_argument_errors(tmp_path: Path):
    with pytest.raises(ValueError, match=r"Cannot read a model card from .*m.bin: the suffix must "
                                         r"be one of .onnx, .tflite, .xml, got '.bin'"):
        read_card(tmp_path / "m.bin")
    with pytest.raises(FileNotFoundError):
        read_card(tmp_path / "missing.onnx")


def test_aic_card_keypoint_set():
    assert cpm_card().keypoint_set is AIC14
