"""Writing a card into a copy of a model file: :func:`write_card`.

ONNX is re-serialized by the ``onnx`` package (imported only here, only
when writing ONNX); TFLite keeps its flatbuffer bytes and rewrites the
trailing zip archive; OpenVINO IR gets its ``.xml`` rewritten and its
``.bin`` copied. Every file is written atomically.
"""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from edgepose.card._card import ModelCard
from edgepose.card.read import (
    _SUFFIXES,
    ONNX_METADATA_KEY,
    OPENVINO_RT_INFO_PATH,
    TFLITE_ASSOCIATED_FILE,
    _parse_ir,
    _rt_child,
    _trailing_zip,
)


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
