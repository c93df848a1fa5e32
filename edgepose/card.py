"""The model card: what the runtime needs to run and decode a model file.

A :class:`ModelCard` is a small versioned JSON document stored inside the
model file itself, so that a model file alone is enough to run it:

- ONNX: the ``metadata_props`` entry ``"edgepose.card"``;
- TFLite: an associated file ``edgepose_card.json`` in the zip archive
  appended to the flatbuffer (the layout TFLite Support's metadata uses;
  the interpreter ignores the trailing bytes);
- OpenVINO IR: ``rt_info`` ``["edgepose", "card"]`` in the ``.xml``.

:func:`read_card` needs no inference runtime and loads no weights.
:func:`write_card` writes a copy of a model file with a card (ONNX needs the
``onnx`` package).

JSON, version 1 (``to_json`` writes the keys in this order)::

    {"edgepose_card": 1,
     "name": "rtmpose-s-coco-256x192",
     "task": "topdown",                  # topdown | bottomup | single | detector
     "head": "simcc",                    # see HEADS
     "keypoints": "coco17",              # a name in edgepose.keypoints.KEYPOINT_SETS, or null
     "input": {"name": "input", "size": [256, 192], "layout": "NCHW", "dtype": "float32",
               "color": "RGB", "mean": [123.675, 116.28, 103.53],
               "std": [58.395, 57.12, 57.375], "resize": "affine", "pad_value": 0.0},
     "head_params": {"split_ratio": 2.0},
     "outputs": {"simcc_x": "simcc_x", "simcc_y": "simcc_y"},
     "provenance": {"source_sha256": "..."}}

``head_params`` are the head's parameters, validated when the card is built
(whatever built it: :meth:`ModelCard.from_dict`, :func:`read_card`, a preset,
:func:`write_card`) by the head's parameters class in :mod:`edgepose.heads`
(e.g. :class:`edgepose.heads.SimCCParams`): an unknown key fails and names
the closest valid one, a missing required key is named, every value is
type- and range-checked; the typed object is :attr:`ModelCard.params`.
``outputs`` maps the head's output roles to tensor names (an unknown role
fails; the roles a head needs are checked when the model is loaded).
``provenance`` is a free-form JSON object.

A card is untrusted input, so it is bounded:

- the card text is at most :data:`MAX_CARD_BYTES` (1 MiB) of UTF-8, in every
  format (an ONNX metadata value, the TFLite zip member, read with a bounded
  decompressor whatever size its header declares, an OpenVINO rt_info value);
- JSON arrays and objects nest at most :data:`MAX_CARD_DEPTH` (32) deep,
  checked before parsing;
- each input side is at most :data:`MAX_INPUT_SIDE` (4096) pixels (and a
  model with a static input must match the card's size when it is loaded);
- head parameters have documented bounds in their classes (e.g. at most
  1024 PAF peaks per part, a peak radius of at most 16).
"""
from __future__ import annotations

import json
import math
import mmap
import os
import re
import shutil
import struct
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from edgepose import _validate as v
from edgepose.heads import HEAD_PARAMS, HeadParams, params_from_dict
from edgepose.keypoints import KEYPOINT_SETS, KeypointSet

__all__ = [
    "CARD_VERSION",
    "MAX_CARD_BYTES",
    "MAX_CARD_DEPTH",
    "MAX_INPUT_SIDE",
    "TASKS",
    "HEADS",
    "DETECTOR_HEADS",
    "BOTTOM_UP_HEADS",
    "LAYOUTS",
    "DTYPES",
    "COLORS",
    "RESIZES",
    "ONNX_METADATA_KEY",
    "TFLITE_ASSOCIATED_FILE",
    "OPENVINO_RT_INFO_PATH",
    "InputSpec",
    "ModelCard",
    "read_card",
    "write_card",
]

#: The card format version this edgepose reads and writes.
CARD_VERSION = 1
TASKS = ("topdown", "bottomup", "single", "detector")
#: Output decoders (each with its parameters class in edgepose.heads.HEAD_PARAMS).
#: "blazepose": MediaPipe's landmark models (regression refined by their heatmaps).
HEADS = tuple(HEAD_PARAMS)
#: Heads of person detectors: exactly the heads allowed with task "detector".
DETECTOR_HEADS = ("yolox", "nanodet")
#: Heads of bottom-up models: exactly the heads allowed with task "bottomup".
BOTTOM_UP_HEADS = ("posenet", "paf")
LAYOUTS = ("NCHW", "NHWC")
DTYPES = ("float32", "uint8")
COLORS = ("RGB", "BGR")
RESIZES = ("affine", "letterbox", "stretch", "fit_height")

ONNX_METADATA_KEY = "edgepose.card"
TFLITE_ASSOCIATED_FILE = "edgepose_card.json"
OPENVINO_RT_INFO_PATH = ("edgepose", "card")
_SUFFIXES = (".onnx", ".tflite", ".xml")

#: The largest card, in bytes of UTF-8 JSON, in any model format.
MAX_CARD_BYTES = 1 << 20
#: The deepest nesting of JSON arrays and objects in a card.
MAX_CARD_DEPTH = 32
#: The largest input side (height or width) a card may give, in pixels.
MAX_INPUT_SIDE = 4096
# Bounds of the input normalisation (0-255 pixel units): a tiny std overflows float32.
_MIN_STD = 1e-3
_MAX_NORM = 1e4


# --- validation helpers --------------------------------------------------------

_choice = v.choice
_text = v.text
_is_real = v.is_real
_check_keys = v.check_keys


def _floats(field_name: str, value: Any, n: int) -> tuple[float, ...]:
    try:
        items = tuple(value)
    except TypeError:
        items = None
    if (items is None or len(items) != n
            or not all(_is_real(v) and math.isfinite(v) for v in items)):
        raise ValueError(f"{field_name} must be {n} finite numbers, got {value!r}.")
    return tuple(float(v) for v in items)


def _freeze(where: str, value: Any, depth: int = 1) -> Any:
    """A deep immutable copy of a JSON value: mappings -> MappingProxyType, lists -> tuples.

    Raises ValueError beyond :data:`MAX_CARD_DEPTH` levels of nesting."""
    if isinstance(value, (Mapping, list, tuple)) and depth > MAX_CARD_DEPTH:
        raise ValueError(f"{where} nests deeper than {MAX_CARD_DEPTH} levels of arrays and "
                         "objects.")
    if isinstance(value, np.generic) and not isinstance(value, np.bool_):
        value = value.item()
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)  # an IntEnum becomes the plain int JSON gives back
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} must be finite (JSON has no NaN or inf), got {value}.")
        return value
    if isinstance(value, Mapping):
        frozen = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} keys must be strings, got {key!r}.")
            frozen[key] = _freeze(f"{where}[{key!r}]", item, depth + 1)
        return MappingProxyType(frozen)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(f"{where}[{i}]", item, depth + 1) for i, item in enumerate(value))
    raise ValueError(
        f"{where} must hold only JSON values (str, int, float, bool, None, lists, "
        f"string-keyed mappings), got {type(value).__name__}.")


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    return value


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def _check_json_size_and_depth(text: str | bytes) -> None:
    """Rejects card text over :data:`MAX_CARD_BYTES` or nesting deeper than
    :data:`MAX_CARD_DEPTH`, before it is parsed (the parser recurses per level)."""
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > MAX_CARD_BYTES:
        raise ValueError(f"The card is {size} bytes; a card is at most {MAX_CARD_BYTES} bytes "
                         "(edgepose.card.MAX_CARD_BYTES).")
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    if deepest > MAX_CARD_DEPTH:
        raise ValueError(f"The card nests arrays and objects {deepest} levels deep; at most "
                         f"{MAX_CARD_DEPTH} are allowed (edgepose.card.MAX_CARD_DEPTH).")


# --- the card ------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class InputSpec:
    """How to turn an image (crop) into the model's input tensor.

    The feed is ``(pixel - mean) / std`` per channel, where ``pixel`` is the
    0-255 value in ``color`` order, after resizing the image (or box crop)
    to ``size`` with ``resize`` (``pad_value`` fills any border).

    Attributes:
        size: ``(H, W)`` of the model input, integers from 1 to
            :data:`MAX_INPUT_SIDE` (4096).
        name: the input tensor's name, or None for the model's only input.
        layout: ``"NCHW"`` or ``"NHWC"``.
        dtype: ``"float32"`` or ``"uint8"`` (uint8 feeds are raw pixels:
            mean 0 and std 1 only).
        color: ``"RGB"`` or ``"BGR"``.
        mean, std: 3 numbers each, in 0-255 pixel units; mean within
            +-10000, std from 0.001 to 10000.
        resize: ``"affine"`` (aspect-preserving warp around a box, top-down),
            ``"letterbox"`` (aspect-preserving resize, padded),
            ``"stretch"`` (plain resize) or ``"fit_height"`` (models with a
            dynamic input width: scale to ``size``'s height keeping the
            aspect ratio; the width follows, padded at the right to a
            multiple of the head's ``size_multiple``).
        pad_value: the 0-255 value of padding / border pixels.

    Raises:
        ValueError: any field out of its domain (the message names it).
    """

    size: tuple[int, int]
    name: str | None = None
    layout: str = "NCHW"
    dtype: str = "float32"
    color: str = "RGB"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    resize: str = "affine"
    pad_value: float = 0.0

    def __post_init__(self) -> None:
        try:
            size = tuple(self.size)
        except TypeError:
            size = ()
        if len(size) != 2 or not all(v.is_int(side) and side > 0 for side in size):
            raise ValueError(
                f"input size must be (H, W), two positive integers, got {self.size!r}.")
        if max(size) > MAX_INPUT_SIDE:
            raise ValueError(
                f"input size must be at most {MAX_INPUT_SIDE} pixels per side "
                f"(edgepose.card.MAX_INPUT_SIDE), got {tuple(int(side) for side in size)}.")
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        if self.name is not None:
            _text("input name", self.name)
        _choice("input layout", self.layout, LAYOUTS)
        _choice("input dtype", self.dtype, DTYPES)
        _choice("input color", self.color, COLORS)
        _choice("input resize", self.resize, RESIZES)
        mean = _floats("input mean", self.mean, 3)
        std = _floats("input std", self.std, 3)
        if not all(v > 0 for v in std):
            raise ValueError(f"input std must be positive, got {std}.")
        if not all(_MIN_STD <= x <= _MAX_NORM for x in std) or not all(
                abs(x) <= _MAX_NORM for x in mean):
            raise ValueError(
                f"input mean must lie within +-{_MAX_NORM:g} and std in [{_MIN_STD:g}, "
                f"{_MAX_NORM:g}] (0-255 pixel units), got mean {mean} and std {std}.")
        if self.dtype == "uint8" and (mean != (0.0, 0.0, 0.0) or std != (1.0, 1.0, 1.0)):
            raise ValueError(
                "A uint8 input takes raw pixels: mean must be (0, 0, 0) and std (1, 1, 1), "
                f"got mean {mean} and std {std}. Use dtype 'float32' to normalise.")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        if not (_is_real(self.pad_value) and math.isfinite(self.pad_value)):
            raise ValueError(f"input pad_value must be a finite number, got {self.pad_value!r}.")
        if not 0 <= self.pad_value <= 255:
            raise ValueError(f"input pad_value must be a pixel value from 0 to 255, got "
                             f"{self.pad_value!r}.")
        object.__setattr__(self, "pad_value", float(self.pad_value))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this input spec (plain dicts and lists)."""
        return {"name": self.name, "size": list(self.size), "layout": self.layout,
                "dtype": self.dtype, "color": self.color, "mean": list(self.mean),
                "std": list(self.std), "resize": self.resize, "pad_value": self.pad_value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSpec:
        """Parses the JSON object of an input spec.

        Raises:
            ValueError: not an object, missing ``size``, unknown fields or
                invalid values.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"The card's input must be a JSON object, got {data!r}.")
        _check_keys("The card's input", data, ("size",),
                    ("name", "layout", "dtype", "color", "mean", "std", "resize", "pad_value"))
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """Everything the runtime needs to run and decode one model file.

    Attributes:
        name: a human-readable model name.
        task: ``"topdown"``, ``"bottomup"``, ``"single"`` or ``"detector"``.
        head: the output decoder, one of :data:`HEADS`; ``"yolox"`` and
            ``"nanodet"`` exactly when task is ``"detector"``.
        input: the :class:`InputSpec` (a mapping is converted).
        keypoints: the name of a keypoint set in
            :data:`edgepose.keypoints.KEYPOINT_SETS`; required unless the
            task is ``"detector"``.
        head_params: decoder parameters (JSON object), e.g.
            ``{"split_ratio": 2.0}``, validated by the head's parameters
            class; read-only, as written (defaults not filled in).
        params: the typed parameters (e.g. :class:`edgepose.heads.SimCCParams`,
            defaults filled in), built from ``head_params``; not an argument.
        outputs: role -> output tensor name, e.g. ``{"heatmaps": "out"}``.
        provenance: free-form JSON object (source hash, tool versions,
            precision, parity figures).

    The three mappings are stored as read-only deep copies
    (``MappingProxyType``, lists as tuples).

    Raises:
        ValueError: any field out of its domain (the message names it).
    """

    name: str
    task: str
    head: str
    input: InputSpec
    keypoints: str | None = None
    head_params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    outputs: Mapping[str, str] = field(default_factory=dict, hash=False)
    provenance: Mapping[str, Any] = field(default_factory=dict, hash=False)
    params: HeadParams = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        _text("name", self.name)
        _choice("task", self.task, TASKS)
        _choice("head", self.head, HEADS)
        if (self.task == "detector") != (self.head in DETECTOR_HEADS):
            raise ValueError(
                f"head {self.head!r} does not fit task {self.task!r}: detector heads "
                f"({', '.join(DETECTOR_HEADS)}) go with task 'detector' and only they do.")
        if (self.task == "bottomup") != (self.head in BOTTOM_UP_HEADS):
            raise ValueError(
                f"head {self.head!r} does not fit task {self.task!r}: bottom-up heads "
                f"({', '.join(BOTTOM_UP_HEADS)}) go with task 'bottomup' and only they do.")
        spec = self.input
        if isinstance(spec, Mapping):
            spec = InputSpec.from_dict(spec)
        elif not isinstance(spec, InputSpec):
            raise ValueError(
                f"input must be an InputSpec or a mapping of its fields, got "
                f"{type(spec).__name__}.")
        object.__setattr__(self, "input", spec)
        if self.keypoints is None:
            if self.task != "detector":
                raise ValueError(
                    f"keypoints must name a keypoint set for task {self.task!r}; known sets: "
                    f"{', '.join(KEYPOINT_SETS)}.")
        elif not isinstance(self.keypoints, str) or self.keypoints not in KEYPOINT_SETS:
            raise ValueError(
                f"keypoints must name a keypoint set, one of {', '.join(KEYPOINT_SETS)}, got "
                f"{self.keypoints!r}.")
        for name in ("head_params", "outputs", "provenance"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise ValueError(f"{name} must be a JSON object (a mapping), got {value!r}.")
            object.__setattr__(self, name, _freeze(name, value))
        for role, tensor in self.outputs.items():
            _text(f"outputs[{role!r}]", tensor)
        keypoint_set = self.keypoint_set
        object.__setattr__(self, "params", params_from_dict(
            self.head, self.head_params,
            num_keypoints=None if keypoint_set is None else len(keypoint_set.names),
            roles=tuple(self.outputs)))

    @property
    def keypoint_set(self) -> KeypointSet | None:
        """The :class:`~edgepose.keypoints.KeypointSet` named by ``keypoints``, or None."""
        return None if self.keypoints is None else KEYPOINT_SETS[self.keypoints]

    def to_dict(self) -> dict[str, Any]:
        """The card as a JSON-ready dict (plain dicts and lists), version key first."""
        return {"edgepose_card": CARD_VERSION, "name": self.name, "task": self.task,
                "head": self.head, "keypoints": self.keypoints, "input": self.input.to_dict(),
                "head_params": _thaw(self.head_params), "outputs": _thaw(self.outputs),
                "provenance": _thaw(self.provenance)}

    def to_json(self, indent: int | None = None) -> str:
        """The card as JSON text (compact unless ``indent`` is given)."""
        separators = (",", ":") if indent is None else None
        return json.dumps(self.to_dict(), indent=indent, separators=separators,
                          ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        """Parses a card from its JSON object.

        Raises:
            ValueError: not an object, a missing or unsupported
                ``edgepose_card`` version (a newer one asks to upgrade
                edgepose), missing or unknown fields, or invalid values.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"An edgepose card must be a JSON object, got {type(data).__name__}.")
        if "edgepose_card" not in data:
            raise ValueError(
                f"Not an edgepose card: the 'edgepose_card' version field is missing "
                f"(expected \"edgepose_card\": {CARD_VERSION}).")
        version = data["edgepose_card"]
        if not v.is_int(version) or version < 1:
            raise ValueError(
                f"Unsupported edgepose card version {version!r}; expected {CARD_VERSION}.")
        if version > CARD_VERSION:
            raise ValueError(
                f"This is an edgepose card version {version}, newer than this edgepose reads "
                f"(version {CARD_VERSION}). Upgrade edgepose: pip install -U edgepose.")
        fields = {k: v for k, v in data.items() if k != "edgepose_card"}
        _check_keys("The card", fields, ("name", "task", "head", "input"),
                    ("keypoints", "head_params", "outputs", "provenance"))
        return cls(**fields)

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelCard:
        """Parses a card from JSON text.

        Raises:
            ValueError: invalid JSON, or any error of :meth:`from_dict`.
        """
        _check_json_size_and_depth(text)
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            raise ValueError(f"The card is not valid JSON: {e}.") from None
        return cls.from_dict(data)


# --- reading -------------------------------------------------------------------

def read_card(path: str | os.PathLike) -> ModelCard | None:
    """The card stored in a model file, or None when it carries none.

    Needs no inference runtime and loads no weights. The format follows the
    suffix: ``.onnx``, ``.tflite`` or ``.xml`` (OpenVINO IR).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: an unsupported suffix, a file that is not a valid model of
            its format, or a card that is present but invalid (the message
            names the file).
    """
    path = Path(path)
    reader = {".onnx": _read_onnx_card, ".tflite": _read_tflite_card,
              ".xml": _read_openvino_card}.get(path.suffix.lower())
    if reader is None:
        raise ValueError(
            f"Cannot read a model card from {path}: the suffix must be one of "
            f"{', '.join(_SUFFIXES)}, got {path.suffix!r}.")
    text = reader(path)
    if text is None:
        return None
    try:
        return ModelCard.from_json(text)
    except ValueError as e:
        raise ValueError(f"{path} carries an invalid edgepose card: {e}") from None


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ValueError("truncated or malformed varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf, pos: int, end: int):
    """Yields (field number, wire type, value or (start, stop)) of a protobuf message."""
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            value, pos = (pos, pos + size), pos + size
        elif wire == 2:
            size, pos = _varint(buf, pos, end)
            value, pos = (pos, pos + size), pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > end or number == 0:
            raise ValueError("truncated or malformed protobuf message")
        yield number, wire, value


_ONNX_GRAPH = 7           # ModelProto.graph
_ONNX_METADATA_PROPS = 14  # ModelProto.metadata_props (StringStringEntryProto: key 1, value 2)


def _onnx_metadata(path: Path) -> dict[str, str]:
    """``metadata_props`` of an ONNX file, read from the protobuf wire format.

    Skips the graph (and its weights) without parsing it, so it needs neither
    ``onnx`` nor ``onnxruntime``. Keys and values longer than
    :data:`MAX_CARD_BYTES` are refused before they are copied.
    """
    metadata: dict[str, str] = {}
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise ValueError(f"{path} is not an ONNX model: the file is empty.")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            try:
                has_graph = False
                for number, wire, value in _proto_fields(buf, 0, size):
                    if number == _ONNX_GRAPH and wire == 2:
                        has_graph = True
                    elif number == _ONNX_METADATA_PROPS and wire == 2:
                        entry = {1: b"", 2: b""}
                        for n, w, span in _proto_fields(buf, *value):
                            if n in entry and w == 2:
                                if span[1] - span[0] > MAX_CARD_BYTES:
                                    raise _TooLarge(
                                        f"{path} carries an ONNX metadata "
                                        f"{'key' if n == 1 else 'value'} of {span[1] - span[0]} "
                                        f"bytes; edgepose reads at most {MAX_CARD_BYTES} bytes "
                                        "(edgepose.card.MAX_CARD_BYTES).")
                                entry[n] = bytes(buf[span[0]:span[1]])
                        key = entry[1].decode("utf-8")
                        try:
                            metadata[key] = entry[2].decode("utf-8")
                        except UnicodeDecodeError:
                            if key != ONNX_METADATA_KEY:
                                raise
                            raise _TooLarge(f"{path} carries an invalid edgepose card: it is "
                                            "not UTF-8 text.") from None
            except _TooLarge as e:
                raise ValueError(str(e)) from None
            except (ValueError, UnicodeDecodeError) as e:
                raise ValueError(f"{path} is not a valid ONNX model ({e}).") from None
    if not has_graph:
        raise ValueError(f"{path} is not a valid ONNX model (it has no graph).")
    return metadata


class _TooLarge(Exception):
    """A card (or metadata entry) over :data:`MAX_CARD_BYTES`, or a card that is not text:
    the message is the final one."""


def _read_onnx_card(path: Path) -> str | None:
    return _onnx_metadata(path).get(ONNX_METADATA_KEY)


_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_MAX_ZIP_COMMENT = 0xFFFF


def _trailing_zip(path: Path) -> tuple[int, int] | None:
    """(EOCD offset, central directory size) of a zip archive ending the file, or None.

    Only an end-of-central-directory record whose comment reaches exactly to
    the end of the file counts, so bytes inside a flatbuffer never pass for one.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        start = max(0, size - _EOCD_SIZE - _MAX_ZIP_COMMENT)
        f.seek(start)
        tail = f.read()
    pos = tail.rfind(_EOCD)
    while pos >= 0:
        if pos + _EOCD_SIZE <= len(tail):
            (cd_size,) = struct.unpack_from("<I", tail, pos + 12)
            (comment,) = struct.unpack_from("<H", tail, pos + 20)
            if pos + _EOCD_SIZE + comment == len(tail):
                return start + pos, cd_size
        pos = tail.rfind(_EOCD, 0, pos)
    return None


def _read_tflite_card(path: Path) -> str | None:
    if _trailing_zip(path) is None:
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            if TFLITE_ASSOCIATED_FILE not in archive.namelist():
                return None
            info = archive.getinfo(TFLITE_ASSOCIATED_FILE)
            # The declared size is checked, but not trusted: at most
            # MAX_CARD_BYTES + 1 bytes are ever decompressed.
            if info.file_size > MAX_CARD_BYTES:
                raise _TooLarge(info.file_size)
            with archive.open(info) as member:
                data = member.read(MAX_CARD_BYTES + 1)
            if len(data) > MAX_CARD_BYTES:
                raise _TooLarge(f"more than {MAX_CARD_BYTES}")
    except _TooLarge as e:
        raise ValueError(
            f"{path} carries a {TFLITE_ASSOCIATED_FILE} of {e} bytes; edgepose reads at most "
            f"{MAX_CARD_BYTES} bytes (edgepose.card.MAX_CARD_BYTES).") from None
    except (zipfile.BadZipFile, EOFError, ValueError, struct.error, zlib.error,
            NotImplementedError, RuntimeError) as e:
        raise ValueError(f"{path} ends with a damaged zip archive of associated files ({e}).") \
            from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} carries an invalid edgepose card: it is not UTF-8 text.") \
            from None


def _rt_child(element, key: str):
    """The rt_info child named ``key``: ``<key .../>`` or ``<info name="key" .../>``."""
    for child in element:
        if child.tag == key or (child.tag == "info" and child.get("name") == key):
            return child
    return None


def _parse_ir(path: Path):
    import xml.etree.ElementTree as ET

    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    try:
        tree = ET.parse(path, parser=parser)
    except ET.ParseError as e:
        raise ValueError(f"{path} is not an OpenVINO IR: invalid XML ({e}).") from None
    if tree.getroot().tag != "net":
        raise ValueError(
            f"{path} is not an OpenVINO IR: expected a <net> root element, got "
            f"<{tree.getroot().tag}>.")
    return tree


def _read_openvino_card(path: Path) -> str | None:
    node = _parse_ir(path).getroot().find("rt_info")
    for key in OPENVINO_RT_INFO_PATH:
        if node is None:
            return None
        node = _rt_child(node, key)
    text = None if node is None else node.get("value")
    if text is not None and len(text.encode("utf-8", "surrogatepass")) > MAX_CARD_BYTES:
        raise ValueError(
            f"{path} carries an rt_info card of {len(text.encode('utf-8', 'surrogatepass'))} "
            f"bytes; edgepose reads at most {MAX_CARD_BYTES} bytes "
            "(edgepose.card.MAX_CARD_BYTES).")
    return text


# --- writing -------------------------------------------------------------------

def write_card(src: str | os.PathLike, dst: str | os.PathLike, card: ModelCard) -> Path:
    """Writes a copy of the model file ``src`` to ``dst`` with ``card`` embedded.

    Everything else in the file is kept: ONNX is re-serialized by the
    ``onnx`` package with only ``metadata_props["edgepose.card"]`` set (a
    model with external data has its data files copied beside ``dst``);
    TFLite keeps the flatbuffer bytes and any other associated files and
    replaces ``edgepose_card.json``; OpenVINO IR gets ``rt_info``
    ``edgepose/card`` in the ``.xml`` and a byte copy of the ``.bin``.
    An existing card is replaced. ``dst`` is written atomically.

    Returns:
        ``dst`` as a Path.

    Raises:
        TypeError: ``card`` is not a ModelCard.
        ValueError: ``src`` and ``dst`` are the same file, their suffixes
            differ, or the suffix is not ``.onnx``, ``.tflite`` or ``.xml``.
        FileNotFoundError: ``src`` does not exist.
        ImportError: writing ONNX without the ``onnx`` package.
    """
    if not isinstance(card, ModelCard):
        raise TypeError(f"card must be a ModelCard, got {type(card).__name__}.")
    src, dst = Path(src), Path(dst)
    suffix = src.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(
            f"Cannot write a model card into {src}: the suffix must be one of "
            f"{', '.join(_SUFFIXES)}, got {src.suffix!r}.")
    if dst.suffix.lower() != suffix:
        raise ValueError(
            f"dst must have the same suffix as src ({src.suffix!r}), got {dst.name!r}.")
    if not src.is_file():
        raise FileNotFoundError(f"No model file at {src}.")
    if src.resolve() == dst.resolve() or (dst.exists() and os.path.samefile(src, dst)):
        raise ValueError(
            f"dst must differ from src ({src}): write_card always writes a copy. "
            "Choose another dst.")
    text = card.to_json()
    {".onnx": _write_onnx, ".tflite": _write_tflite, ".xml": _write_openvino}[suffix](
        src, dst, text)
    return dst


def _write_atomic(dst: Path, write) -> None:
    """Calls ``write(file)`` on a temporary file beside ``dst``, then renames it to ``dst``
    (:func:`edgepose._files.atomic_write`: fsynced, with the mode of an ordinary new file)."""
    from edgepose._files import atomic_write

    atomic_write(dst, write)


def _copy_into(src: Path, f) -> None:
    with open(src, "rb") as source:
        shutil.copyfileobj(source, f, 1 << 20)


def _write_onnx(src: Path, dst: Path, text: str) -> None:
    try:
        import onnx
    except ImportError:
        raise ImportError(
            "Writing a card into an ONNX file needs the onnx package: pip install onnx "
            "(or pip install 'edgepose[export]').") from None
    model = onnx.load(str(src), load_external_data=False)
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != ONNX_METADATA_KEY]
    del model.metadata_props[:]
    for key, value in kept + [(ONNX_METADATA_KEY, text)]:
        model.metadata_props.add(key=key, value=value)
    _copy_onnx_external_data(onnx, model, src.parent, dst.parent)
    _write_atomic(dst, lambda f: f.write(model.SerializeToString()))


def _copy_onnx_external_data(onnx, model, src_dir: Path, dst_dir: Path) -> None:
    """Copies the external data files ``model`` refers to from ``src_dir`` to ``dst_dir``."""
    if src_dir.resolve() == dst_dir.resolve():
        return
    locations = set()

    def visit_graph(graph):
        for tensor in graph.initializer:
            visit_tensor(tensor)
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    visit_tensor(attr.t)
                for tensor in attr.tensors:
                    visit_tensor(tensor)
                if attr.HasField("g"):
                    visit_graph(attr.g)
                for sub in attr.graphs:
                    visit_graph(sub)

    def visit_tensor(tensor):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location":
                    locations.add(entry.value)

    visit_graph(model.graph)
    for location in sorted(locations):
        source, target = src_dir / location, dst_dir / location
        if not source.is_file():
            raise FileNotFoundError(f"The external data file {source} of {src_dir} is missing.")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def _write_tflite(src: Path, dst: Path, text: str) -> None:
    found = _trailing_zip(src)
    entries: list[tuple[zipfile.ZipInfo, bytes]] = []
    model_end = src.stat().st_size
    if found is not None:
        eocd, cd_size = found
        with zipfile.ZipFile(src) as archive:
            infos = archive.infolist()
            model_end = min((i.header_offset for i in infos), default=eocd - cd_size)
            entries = [(i, archive.read(i)) for i in infos if i.filename != TFLITE_ASSOCIATED_FILE]
    card_info = zipfile.ZipInfo(TFLITE_ASSOCIATED_FILE, date_time=(1980, 1, 1, 0, 0, 0))
    card_info.compress_type = zipfile.ZIP_STORED

    def write(f) -> None:
        with open(src, "rb") as model:
            remaining = model_end
            while remaining:
                chunk = model.read(min(remaining, 1 << 20))
                if not chunk:
                    raise ValueError(f"{src} changed while it was being copied.")
                f.write(chunk)
                remaining -= len(chunk)
        # Offsets in the archive count from the start of the file, as TFLite
        # Support writes them.
        with zipfile.ZipFile(f, "w") as archive:
            for info, data in entries:
                archive.writestr(info, data)
            archive.writestr(card_info, text.encode("utf-8"))

    _write_atomic(dst, write)


def _write_openvino(src: Path, dst: Path, text: str) -> None:
    import xml.etree.ElementTree as ET

    tree = _parse_ir(src)
    node = tree.getroot()
    rt_info = node.find("rt_info")
    if rt_info is None:
        rt_info = ET.SubElement(node, "rt_info")
        rt_info.text, rt_info.tail = "\n\t\t", "\n"
        if len(node) > 1:
            node[-2].tail = "\n\t"
    parent, depth = rt_info, 2
    for key in OPENVINO_RT_INFO_PATH:
        child = _rt_child(parent, key)
        if child is None:
            if len(parent):
                parent[-1].tail = "\n" + "\t" * depth
            child = ET.SubElement(parent, key)
            child.tail = "\n" + "\t" * (depth - 1)
            if key != OPENVINO_RT_INFO_PATH[-1]:
                child.text = "\n" + "\t" * (depth + 1)
        parent, depth = child, depth + 1
    parent.set("value", text)

    src_bin, dst_bin = src.with_suffix(".bin"), dst.with_suffix(".bin")
    if src_bin.is_file():
        _write_atomic(dst_bin, lambda f: _copy_into(src_bin, f))
    if tree.getroot().tail is None:
        tree.getroot().tail = "\n"
    _write_atomic(dst, lambda f: tree.write(f, encoding="utf-8", xml_declaration=True))
