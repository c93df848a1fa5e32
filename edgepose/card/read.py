"""Reading a card from a model file, with no inference runtime and no weights loaded.

:func:`read_card` picks the reader by suffix:

- ONNX: ``metadata_props`` read from the protobuf wire format (no ``onnx``
  package; the graph and its weights are skipped unparsed);
- TFLite: the zip archive appended to the flatbuffer, its card member read
  with a bounded decompressor whatever size its header declares;
- OpenVINO IR: ``rt_info`` in the ``.xml``.

Every reader refuses a card over :data:`MAX_CARD_BYTES` before parsing it.
The locations (:data:`ONNX_METADATA_KEY`, ...) are shared with
:mod:`edgepose.card.write`.
"""
from __future__ import annotations

import mmap
import os
import struct
import zipfile
import zlib
from pathlib import Path

from edgepose.card._bounded import MAX_CARD_BYTES
from edgepose.card._card import ModelCard

ONNX_METADATA_KEY = "edgepose.card"
TFLITE_ASSOCIATED_FILE = "edgepose_card.json"
OPENVINO_RT_INFO_PATH = ("edgepose", "card")
_SUFFIXES = (".onnx", ".tflite", ".xml")


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
    return _read_zip_member(path, TFLITE_ASSOCIATED_FILE)


def _read_zip_member(path: Path, member: str) -> str | None:
    """The UTF-8 text of ``member`` in the zip archive appended to ``path``
    (a TFLite file's associated files), or None when there is no such
    archive or member. At most :data:`MAX_CARD_BYTES` + 1 bytes are ever
    decompressed, whatever size the member's header declares."""
    if _trailing_zip(path) is None:
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            if member not in archive.namelist():
                return None
            info = archive.getinfo(member)
            # The declared size is checked, but not trusted.
            if info.file_size > MAX_CARD_BYTES:
                raise _TooLarge(info.file_size)
            with archive.open(info) as stream:
                data = stream.read(MAX_CARD_BYTES + 1)
            if len(data) > MAX_CARD_BYTES:
                raise _TooLarge(f"more than {MAX_CARD_BYTES}")
    except _TooLarge as e:
        raise ValueError(
            f"{path} carries a {member} of {e} bytes; edgepose reads at most "
            f"{MAX_CARD_BYTES} bytes (edgepose.card.MAX_CARD_BYTES).") from None
    except (zipfile.BadZipFile, EOFError, ValueError, struct.error, zlib.error,
            NotImplementedError, RuntimeError) as e:
        raise ValueError(f"{path} ends with a damaged zip archive of associated files ({e}).") \
            from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        if member == TFLITE_ASSOCIATED_FILE:
            raise ValueError(f"{path} carries an invalid edgepose card: it is not UTF-8 "
                             "text.") from None
        raise ValueError(f"{path} carries a {member} that is not UTF-8 text.") from None


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
