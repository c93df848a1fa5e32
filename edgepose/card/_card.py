"""The card itself: :class:`InputSpec` and :class:`ModelCard`, their fields'
domains (:data:`TASKS`, :data:`HEADS`, ...) and their JSON form.

Reading a card from a model file is in :mod:`edgepose.card.read`, writing
one in :mod:`edgepose.card.write`; the format is documented in
:mod:`edgepose.card`.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgepose import _validate as v
from edgepose.card._bounded import _check_json_size_and_depth, _freeze, _thaw
from edgepose.heads import HEAD_PARAMS, HeadParams, params_from_dict
from edgepose.keypoints import KEYPOINT_SETS, KeypointSet

#: The card format version this edgepose reads and writes.
CARD_VERSION = 1
TASKS = ("topdown", "bottomup", "single", "detector", "onestage")
#: Output decoders (each with its parameters class in edgepose.heads.HEAD_PARAMS).
#: "blazepose": MediaPipe's landmark models (regression refined by their heatmaps).
HEADS = tuple(HEAD_PARAMS)
#: Heads of person detectors: exactly the heads allowed with task "detector".
DETECTOR_HEADS = ("yolox", "nanodet")
#: Heads of bottom-up models: exactly the heads allowed with task "bottomup".
BOTTOM_UP_HEADS = ("posenet", "paf")
#: Heads of one-stage multi-person models (a box and its keypoints per person,
#: from one network on the whole image): exactly the heads of task "onestage".
ONE_STAGE_HEADS = ("yolo_pose", "movenet_multipose")
#: Tasks whose models find every person in the whole image themselves (no
#: person detector, no crops).
WHOLE_IMAGE_TASKS = ("bottomup", "onestage")
LAYOUTS = ("NCHW", "NHWC")
DTYPES = ("float32", "uint8")
COLORS = ("RGB", "BGR")
RESIZES = ("affine", "letterbox", "stretch", "fit_height")

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
        task: ``"topdown"``, ``"bottomup"``, ``"single"``, ``"detector"``
            or ``"onestage"`` (one network gives each person's box and
            keypoints, e.g. YOLO-pose).
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
        if (self.task == "onestage") != (self.head in ONE_STAGE_HEADS):
            raise ValueError(
                f"head {self.head!r} does not fit task {self.task!r}: one-stage heads "
                f"({', '.join(ONE_STAGE_HEADS)}) go with task 'onestage' and only they do.")
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
    def finds_people(self) -> bool:
        """True for models that find every person in the whole image
        themselves (:data:`WHOLE_IMAGE_TASKS`): they take no detector and
        no boxes."""
        return self.task in WHOLE_IMAGE_TASKS

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
