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
     "task": "topdown",                  # topdown | bottomup | single | detector | onestage
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

The package: :mod:`edgepose.card._card` (:class:`InputSpec`,
:class:`ModelCard`), :mod:`edgepose.card._bounded` (size and depth limits),
:mod:`edgepose.card.read` and :mod:`edgepose.card.write`; every public name
is importable from ``edgepose.card``.
"""
from __future__ import annotations

from edgepose.card._bounded import MAX_CARD_BYTES, MAX_CARD_DEPTH
from edgepose.card._card import (
    BOTTOM_UP_HEADS,
    CARD_VERSION,
    COLORS,
    DETECTOR_HEADS,
    DTYPES,
    HEADS,
    LAYOUTS,
    MAX_INPUT_SIDE,
    ONE_STAGE_HEADS,
    RESIZES,
    TASKS,
    WHOLE_IMAGE_TASKS,
    InputSpec,
    ModelCard,
)

# _onnx_metadata is private, kept importable from edgepose.card as before the
# split (tests/test_card.py uses it).
from edgepose.card.read import (
    ONNX_METADATA_KEY,
    OPENVINO_RT_INFO_PATH,
    TFLITE_ASSOCIATED_FILE,
    read_card,
)
from edgepose.card.read import _onnx_metadata as _onnx_metadata
from edgepose.card.write import write_card

__all__ = [
    "CARD_VERSION",
    "MAX_CARD_BYTES",
    "MAX_CARD_DEPTH",
    "MAX_INPUT_SIDE",
    "TASKS",
    "HEADS",
    "DETECTOR_HEADS",
    "BOTTOM_UP_HEADS",
    "ONE_STAGE_HEADS",
    "WHOLE_IMAGE_TASKS",
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
