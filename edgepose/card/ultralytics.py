"""A model card from the metadata Ultralytics writes into its exports.

``yolo export`` stores a flat metadata record in every file it writes
(``task``, ``kpt_shape``, ``imgsz``, ``stride``, ``names``, ``version``,
``license``, ...):

- ONNX: ``metadata_props``, every value a string, structured ones as Python
  literals (``"{0: 'person'}"``, ``"[17, 3]"``);
- TFLite (LiteRT): ``metadata.json`` in the zip archive appended to the
  flatbuffer (JSON values; ``names`` keys are strings);
- OpenVINO: ``metadata.yaml`` beside the ``.xml`` (PyYAML's block style).

:func:`read_ultralytics_metadata` reads that record without any inference
runtime and :func:`card_from_ultralytics` turns a pose model's record into a
:class:`~edgepose.card.ModelCard` (task ``"onestage"``, head
``"yolo_pose"``). The record is untrusted input: literals are parsed with
:func:`ast.literal_eval` (never ``eval``) after bounding their size, nesting
and element count, the YAML with a small strict parser of the flat subset
Ultralytics writes (no PyYAML, no aliases, no tags), and every field the
card uses is validated, with errors naming the file and the field.

Keypoints: ``kpt_shape [17, D]`` gives the COCO-17 set (the only K that
Ultralytics' pose datasets share a meaning for); any other K gives a
keypoint set named ``"keypoints<K>"`` without names, sigmas or flip pairs
(:func:`edgepose.keypoints.unnamed_keypoint_set`), so OKS NMS, OKS AP and
conversion to another set are not available for it.
"""
from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgepose._validate import is_int
from edgepose.card._bounded import MAX_CARD_BYTES, _check_json_size_and_depth
from edgepose.card._card import MAX_INPUT_SIDE, ModelCard

__all__ = ["read_ultralytics_metadata", "card_from_ultralytics", "is_ultralytics_metadata",
           "MAX_LITERAL_CHARS", "MAX_LITERAL_DEPTH", "MAX_LITERAL_ITEMS",
           "MAX_ULTRALYTICS_KEYPOINTS", "METADATA_YAML"]

#: The longest metadata value parsed as a literal, in characters.
MAX_LITERAL_CHARS = 1 << 16
#: The deepest nesting of brackets in a literal.
MAX_LITERAL_DEPTH = 4
#: The most syntax nodes in one literal (e.g. a names dict of ~1000 classes).
MAX_LITERAL_ITEMS = 10000
#: The most keypoints per person a ``kpt_shape`` may give.
MAX_ULTRALYTICS_KEYPOINTS = 1024
#: The most class names.
MAX_CLASSES = 4096
#: The longest text field kept in the provenance (version, licence).
MAX_TEXT_CHARS = 1024
#: The OpenVINO metadata file Ultralytics writes beside the model's .xml.
METADATA_YAML = "metadata.yaml"
_TFLITE_MEMBER = "metadata.json"
#: With ``task``, one of these marks a record as Ultralytics' (its author aside).
_MARKERS = ("kpt_shape", "imgsz")
# Fields the card reads (others, e.g. "args", are ignored unparsed).
_LITERAL_FIELDS = ("stride", "imgsz", "names", "kpt_shape", "batch", "channels", "end2end")
_TEXT_FIELDS = ("task", "version", "license", "author", "description", "date", "docs")
_YAML_FIELDS = _LITERAL_FIELDS + _TEXT_FIELDS


def is_ultralytics_metadata(metadata: Mapping[str, Any]) -> bool:
    """True when a metadata record is Ultralytics' (its author says so, or it
    has ``task`` and ``kpt_shape`` or ``imgsz``)."""
    return metadata.get("author") == "Ultralytics" or (
        "task" in metadata and any(k in metadata for k in _MARKERS))


def read_ultralytics_metadata(path: str | Path) -> dict[str, Any] | None:
    """The Ultralytics metadata record of a model file, or None when it has none.

    ONNX: ``metadata_props``; TFLite: ``metadata.json`` in the appended zip;
    OpenVINO ``.xml``: ``metadata.yaml`` in the same folder. Values are as
    stored (ONNX: strings; TFLite: JSON values; YAML: scalars, lists and
    one-level mappings); :func:`card_from_ultralytics` parses and checks
    them.

    Raises:
        ValueError: a damaged file, a record over :data:`MAX_CARD_BYTES`,
            invalid JSON or YAML (the message names the file).
    """
    from edgepose.card import read as _read

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        record: dict[str, Any] | None = _read._onnx_metadata(path)
    elif suffix == ".tflite":
        record = _read_tflite_json(path)
    elif suffix == ".xml":
        yaml_path = path.parent / METADATA_YAML
        record = _read_yaml(yaml_path) if yaml_path.is_file() else None
    else:
        return None
    if not record or not is_ultralytics_metadata(record):
        return None
    return record


def _read_tflite_json(path: Path) -> dict[str, Any] | None:
    from edgepose.card.read import _read_zip_member

    text = _read_zip_member(path, _TFLITE_MEMBER)
    if text is None:
        return None
    try:
        _check_json_size_and_depth(text)
        data = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{path} carries an invalid Ultralytics {_TFLITE_MEMBER}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} carries an Ultralytics {_TFLITE_MEMBER} that is not a JSON "
                         f"object (got {type(data).__name__}).")
    return data


# --- literals ---------------------------------------------------------------------

_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", re.DOTALL)


def _literal(where: str, text: str) -> Any:
    """``ast.literal_eval`` of ``text`` after bounding its size, bracket depth
    and node count; a ValueError naming ``where`` otherwise."""
    if len(text) > MAX_LITERAL_CHARS:
        raise ValueError(f"{where} is {len(text)} characters long; edgepose parses at most "
                         f"{MAX_LITERAL_CHARS}.")
    depth = deepest = 0
    for ch in _QUOTED.sub("''", text):
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    if deepest > MAX_LITERAL_DEPTH:
        raise ValueError(f"{where} nests brackets {deepest} levels deep; at most "
                         f"{MAX_LITERAL_DEPTH} are allowed.")
    try:
        tree = ast.parse(text.strip(), mode="eval")
        count = sum(1 for _ in ast.walk(tree))
        if count > MAX_LITERAL_ITEMS:
            raise ValueError(f"{count} syntax nodes, at most {MAX_LITERAL_ITEMS} are allowed")
        return ast.literal_eval(tree)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as e:
        raise ValueError(f"{where} is not a plain Python literal ({text[:60]!r}: "
                         f"{type(e).__name__}: {e}).") from None


def _value(where: str, raw: Any, *, text: bool) -> Any:
    """A field as stored: strings are literals unless the field is text."""
    if isinstance(raw, str) and not text:
        return _literal(where, raw)
    return raw


# --- the strict YAML subset -----------------------------------------------------------

_YAML_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*|-?\d+):(?: (.*))?$")


def _yaml_scalar(where: str, text: str) -> Any:
    text = text.strip()
    if text.startswith("'"):
        if len(text) < 2 or not text.endswith("'") or "'" in text[1:-1].replace("''", ""):
            raise ValueError(f"{where}: a malformed single-quoted string {text[:60]!r}.")
        return text[1:-1].replace("''", "'")
    if text.startswith('"'):
        try:
            value = json.loads(text)
        except ValueError:
            raise ValueError(f"{where}: a malformed double-quoted string {text[:60]!r}.") \
                from None
        return value
    if text in ("", "null", "~"):
        return None
    if text in ("true", "false"):
        return text == "true"
    if text[0] in "[{&*!|>%@`":
        raise ValueError(f"{where}: {text[:60]!r} uses YAML that edgepose does not read "
                         "(flow collections, anchors, aliases, tags, block scalars).")
    if re.fullmatch(r"[-+]?\d{1,18}", text):
        return int(text)
    if len(text) <= 40 and re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+)([eE][-+]?\d+)?", text):
        return float(text)
    return text  # a plain string (digits beyond 18 stay text: never a huge int)


def _read_yaml(path: Path) -> dict[str, Any]:
    """The flat YAML Ultralytics writes (PyYAML ``safe_dump``, block style):
    ``key: scalar``, or a key followed by a block of ``- scalar`` items or of
    indented ``key: scalar`` pairs (one level). The blocks of fields the card
    does not read (e.g. ``args``) are skipped unparsed; anything else
    (flow collections, anchors, aliases, tags, deeper nesting) is a
    ValueError naming the line."""
    size = path.stat().st_size
    if size > MAX_CARD_BYTES:
        raise ValueError(f"{path} is {size} bytes; edgepose reads at most {MAX_CARD_BYTES} "
                         "bytes of metadata (edgepose.card.MAX_CARD_BYTES).")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text.") from None
    record: dict[str, Any] = {}
    key: str | None = None
    block: list | dict | None = None
    for number, line in enumerate(lines, 1):
        where = f"{path} line {number}"
        body = line.strip()
        if not body or body.startswith("#") or body == "---":
            continue
        if "\t" in line[:len(line) - len(line.lstrip())]:
            raise ValueError(f"{where}: indentation must be spaces.")
        item = body == "-" or body.startswith("- ")
        if not line.startswith(" ") and not item:
            match = _YAML_KEY.match(line)
            if match is None:
                raise ValueError(f"{where}: expected 'key: value', got {line[:60]!r}.")
            key, rest, block = match.group(1), match.group(2), None
            if key in record:
                raise ValueError(f"{where}: the key {key!r} appears twice.")
            if key not in _YAML_FIELDS:
                record[key] = None  # not read: its value and block are skipped
            elif rest is None or not rest.strip():
                record[key] = None  # filled by the block that follows
            else:
                record[key] = _yaml_scalar(where, rest)
                key = None
            continue
        if key is None:
            raise ValueError(f"{where}: a block line {body[:60]!r} that belongs to no key "
                             "(or follows a key that already has a value).")
        if key not in _YAML_FIELDS:
            continue
        if item:
            if block is None:
                block = record[key] = []
            if not isinstance(block, list):
                raise ValueError(f"{where}: a list item inside the mapping {key!r}.")
            block.append(_yaml_scalar(where, body[1:]))
            continue
        pair = _YAML_KEY.match(body)
        if pair is None or pair.group(2) is None or not pair.group(2).strip():
            raise ValueError(f"{where}: expected '- item' or 'key: value' under {key!r}, got "
                             f"{body[:60]!r} (nested blocks are not read).")
        if block is None:
            block = record[key] = {}
        if not isinstance(block, dict):
            raise ValueError(f"{where}: a 'key: value' pair inside the list {key!r}.")
        sub = pair.group(1)
        sub_key: Any = int(sub) if re.fullmatch(r"-?\d+", sub) else sub
        if sub_key in block:
            raise ValueError(f"{where}: the key {sub!r} appears twice under {key!r}.")
        block[sub_key] = _yaml_scalar(where, pair.group(2))
    return record


# --- validation -----------------------------------------------------------------------

def _int_list(where: str, value: Any) -> list:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{where} must be a list of integers, got {_short(value)}.")
    return list(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _text(where: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value) if isinstance(value, (int, float)) else None
        if value is None:
            raise ValueError(f"{where} must be text.")
    if len(value) > MAX_TEXT_CHARS:
        raise ValueError(f"{where} is {len(value)} characters long; at most {MAX_TEXT_CHARS} "
                         "are allowed.")
    return value


def _fields(source: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields the card needs, parsed and validated."""
    def where(field: str) -> str:
        return f"{source}: Ultralytics metadata field {field!r}"

    out: dict[str, Any] = {}
    for field in _TEXT_FIELDS:
        out[field] = _text(where(field), record.get(field))
    for field in _LITERAL_FIELDS:
        out[field] = (None if field not in record
                      else _value(where(field), record[field], text=False))

    task = out["task"]
    if task is None:
        raise ValueError(f"{where('task')} is missing; a pose model's metadata says "
                         "task 'pose'.")
    if task != "pose":
        raise ValueError(
            f"{source} is an Ultralytics {task!r} model (metadata task {task!r}), not a pose "
            "model: edgepose runs pose models (task 'pose', e.g. yolo11n-pose). A person "
            "detector goes to Estimator(..., detector=) with a card of its own.")

    shape = out["kpt_shape"]
    if shape is None:
        raise ValueError(f"{where('kpt_shape')} is missing; a pose model gives [K, 2] or "
                         "[K, 3].")
    shape = _int_list(where("kpt_shape"), shape)
    if (len(shape) != 2 or not all(is_int(x) for x in shape) or shape[1] not in (2, 3)
            or not 1 <= shape[0] <= MAX_ULTRALYTICS_KEYPOINTS):
        raise ValueError(
            f"{where('kpt_shape')} must be [K, 2] or [K, 3] with K from 1 to "
            f"{MAX_ULTRALYTICS_KEYPOINTS}, got {_short(out['kpt_shape'])}.")
    out["kpt_shape"] = (int(shape[0]), int(shape[1]))

    imgsz = out["imgsz"]
    if imgsz is None:
        raise ValueError(f"{where('imgsz')} is missing; it gives the input size, e.g. "
                         "[640, 640].")
    sizes = [imgsz] if is_int(imgsz) else _int_list(where("imgsz"), imgsz)
    if not 1 <= len(sizes) <= 2 or not all(is_int(x) and 1 <= x <= MAX_INPUT_SIDE
                                           for x in sizes):
        raise ValueError(f"{where('imgsz')} must be 1 or 2 integers from 1 to "
                         f"{MAX_INPUT_SIDE}, got {_short(imgsz)}.")
    out["imgsz"] = (int(sizes[0]), int(sizes[-1]))

    stride = out["stride"]
    if stride is None:
        stride = 32
    if not (is_int(stride) and 1 <= stride <= 1024):
        raise ValueError(f"{where('stride')} must be an integer from 1 to 1024, got "
                         f"{_short(stride)}.")
    out["stride"] = int(stride)

    names = out["names"]
    if names is None:
        names = {0: "person"}
    if not isinstance(names, Mapping) or not 1 <= len(names) <= MAX_CLASSES:
        raise ValueError(f"{where('names')} must be a dict of class index -> name with 1 to "
                         f"{MAX_CLASSES} entries, got {_short(names)}.")
    parsed = {}
    for index, name in names.items():
        if isinstance(index, str) and re.fullmatch(r"\d{1,6}", index):
            index = int(index)  # JSON object keys are strings
        if not (is_int(index) and 0 <= index < MAX_CLASSES) or not isinstance(name, str):
            raise ValueError(f"{where('names')} must map class indices (0 to "
                             f"{MAX_CLASSES - 1}) to names, got the entry "
                             f"{_short(index)}: {_short(name)}.")
        parsed[int(index)] = name
    if sorted(parsed) != list(range(len(parsed))):
        raise ValueError(f"{where('names')} must number its classes 0 to {len(parsed) - 1}, "
                         f"got {sorted(parsed)[:10]}.")
    out["names"] = parsed

    end2end = out["end2end"]
    if end2end is not None and not isinstance(end2end, bool):
        raise ValueError(f"{where('end2end')} must be True or False, got {_short(end2end)}.")
    channels = out["channels"]
    if channels is not None and channels != 3:
        raise ValueError(f"{where('channels')} is {_short(channels)}; edgepose feeds 3-channel "
                         "colour images.")
    return out


def card_from_ultralytics(record: Mapping[str, Any], *, source: str,
                          inputs: Sequence[Any] = (), outputs: Sequence[Any] = ()) -> ModelCard:
    """The card of an Ultralytics pose export, from its metadata record.

    The input is NCHW float32 RGB scaled by 1/255 (mean 0, std 255),
    letterboxed centred with pad 114, at ``imgsz``; head ``"yolo_pose"``
    with one output (role ``"output"``; an ``end2end`` record gives format
    ``"end_to_end"``), ``num_classes`` from ``names`` and person class 0
    (the class named "person" when there is one); a ``.tflite`` source
    gives coordinates normalised to the input size (``normalized``), as
    Ultralytics' TFLite exports do.

    Args:
        record: :func:`read_ultralytics_metadata`'s record.
        source: the file, for messages.
        inputs, outputs: the model's tensors (objects with ``name`` and
            ``shape``, e.g. a backend's ``inputs`` / ``outputs``): the card
            names the input, and the output when there is exactly one.

    Returns:
        the :class:`ModelCard`; its provenance says ``"card": "from Ultralytics
        metadata"`` and gives the Ultralytics version and licence the record states.

    Raises:
        ValueError: not a pose model (e.g. task ``"detect"``), or a missing
            or malformed field (the message names the file and the field).
    """
    from edgepose.keypoints import unnamed_keypoint_set

    f = _fields(source, record)
    k, dims = f["kpt_shape"]
    names = f["names"]
    if len(outputs) > 1:
        raise ValueError(
            f"{source} has {len(outputs)} outputs {[t.name for t in outputs]}; an Ultralytics "
            "pose export has one. Write an edgepose card into it (format 'dfl' maps the raw "
            "head's two outputs).")
    persons = [i for i, n in names.items() if n == "person"] or [0]
    keypoints = "coco17" if k == 17 else unnamed_keypoint_set(k).name
    head_params: dict[str, Any] = {"keypoint_dims": dims, "num_classes": len(names),
                                   "person_classes": persons,
                                   "size_multiple": f["stride"]}
    if f["end2end"]:
        head_params["format"] = "end_to_end"
    if Path(source).suffix.lower() == ".tflite":
        # Ultralytics' TFLite exports divide coordinates by the input size.
        head_params["normalized"] = True
    provenance = {"card": "from Ultralytics metadata",
                  "ultralytics_version": f["version"], "license": f["license"],
                  "task": f["task"], "kpt_shape": [k, dims], "names": {str(i): n for i, n in
                                                                      names.items()}}
    description = f["description"] or "Ultralytics pose model"
    return ModelCard(
        name=Path(source).stem, task="onestage", head="yolo_pose", keypoints=keypoints,
        input={"name": inputs[0].name if len(inputs) == 1 else None,
               "size": list(f["imgsz"]), "layout": "NCHW", "dtype": "float32", "color": "RGB",
               "mean": [0.0, 0.0, 0.0], "std": [255.0, 255.0, 255.0], "resize": "letterbox",
               "pad_value": 114.0},
        head_params=head_params,
        outputs={"output": outputs[0].name} if len(outputs) == 1 else {},
        provenance={**provenance, "description": description[:MAX_TEXT_CHARS]})
