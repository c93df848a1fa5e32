"""A model file opened on a backend with its card: the unit pipelines run.

:class:`LoadedModel` takes a path or a registry name (``"movenet-lightning"``,
resolved to a verified file by :mod:`edgepose.registry`), resolves the card
(explicit preset, else the card inside the file, else the registry entry's
preset, else the metadata Ultralytics writes into its exports
(:mod:`edgepose.card.ultralytics`), else a preset recognised by the file's
sha256, else RTMPose's I/O signature), checks the model's
inputs and outputs against it, turns BGR uint8 images into the model's input
tensor, runs batches, and hands back the outputs by role.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
from numpy.typing import NDArray

from edgepose.card import InputSpec, ModelCard, read_card
from edgepose.presets import preset_card, preset_names, recognise
from edgepose.runtime import RuntimeOptions

if TYPE_CHECKING:
    from edgepose.registry import ModelEntry

__all__ = ["LoadedModel", "locate_model", "preprocess_crops", "preprocess_image"]


def locate_model(path_or_name: str | Path, role: str = "pose") -> tuple[Path, ModelEntry | None]:
    """The file of a model argument: an existing path as it is, else the
    verified file of a registry name (see :mod:`edgepose.registry`).

    Returns:
        (path, registry entry or None).

    Raises:
        FileNotFoundError: neither a file nor a registry name, or no copy of
            the named model was found (the message lists where it looked).
        ValueError: a named model's file fails its sha256 check, or has no
            pinned sha256 and was not imported.
    """
    path = Path(path_or_name)
    if path.is_file():
        return path, None
    text = str(path_or_name)
    from edgepose import registry

    if registry.looks_like_name(text):
        store = registry.ModelStore.from_env()
        try:
            store.registry.get(text)
        except ValueError as exc:
            raise FileNotFoundError(
                f"The {role} model file {text!r} does not exist, and it is not a registry "
                f"model name either. {exc}") from None
        found = store.resolve(text)
        return found.path, found.entry
    raise FileNotFoundError(
        f"The {role} model file {text!r} does not exist. Pass the path of an "
        ".onnx, .tflite or OpenVINO .xml file, or a model name (edgepose models list).")


def _fixed_hw(shape: tuple, layout: str) -> tuple[int, int] | None:
    if len(shape) != 4:
        return None
    h, w = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    return (int(h), int(w)) if isinstance(h, int) and isinstance(w, int) else None


def preprocess_crops(crops: NDArray[np.uint8], spec: InputSpec) -> np.ndarray:
    """BGR uint8 crops ``(N, h, w, 3)`` to a model's input tensor, as its
    card's :class:`~edgepose.card.InputSpec` says: colour order, layout,
    then ``(x - mean) / std`` in float32 (a uint8 input without
    normalisation gets the raw pixels).

    The layout change happens on the uint8 view and the float conversion,
    mean and std in place on one float32 buffer (6x faster than converting
    first, with bit-identical results). The runtime and the export stage's
    calibration both use this function.
    """
    mean = np.asarray(spec.mean, np.float32)
    std = np.asarray(spec.std, np.float32)
    normalise = not (np.all(mean == 0) and np.all(std == 1))
    nchw = spec.layout == "NCHW"
    x = crops if spec.color == "BGR" else crops[..., ::-1]
    if nchw:
        x = x.transpose(0, 3, 1, 2)
    if spec.dtype == "uint8" and not normalise:
        return np.ascontiguousarray(x)
    out = np.empty(x.shape, np.float32)
    out[...] = x
    if normalise:
        shape = (3, 1, 1) if nchw else (3,)
        out -= mean.reshape(shape)
        out /= std.reshape(shape)
    return out


def preprocess_image(
    image: NDArray[np.uint8], spec: InputSpec, *, align: str = "topleft",
    size_multiple: int = 1, pad_value: float | tuple[float, float, float] | None = None,
) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """A whole BGR uint8 image ``(H, W, 3)`` to a model's ``(1, ...)`` input
    tensor: resized as ``spec.resize`` says
    (:func:`edgepose.geometry.resize_to_input`: letterbox, stretch or
    fit_height, padded with ``pad_value``, default ``spec.pad_value``; a
    spec for crops, ``"affine"``, is letterboxed), then
    :func:`preprocess_crops`.

    Returns:
        the tensor, ``(scale_x, scale_y)`` and ``(pad_x, pad_y)`` with
        ``x_input = scale_x * x_image + pad_x`` on pixel edges
        (:func:`edgepose.geometry.boxes_to_image` inverts it).

    Raises:
        TypeError, ValueError: an invalid image or pad value.
        ImportError: OpenCV is not installed.
    """
    from edgepose.geometry import resize_to_input

    # "affine" describes top-down crops; a whole image is letterboxed.
    resize = "letterbox" if spec.resize == "affine" else spec.resize
    canvas, scale, pad = resize_to_input(
        image, resize, spec.size, align=align, size_multiple=size_multiple,
        pad_value=spec.pad_value if pad_value is None else pad_value)
    return preprocess_crops(canvas[None], spec), scale, pad


class LoadedModel:
    """A model file, its backend and its card.

    Args:
        path: the model file (.onnx, .tflite or OpenVINO .xml), or a registry
            name such as ``"movenet-lightning"`` (see :mod:`edgepose.registry`).
        preset: a preset name; overrides any card in the file.
        runtime: the :class:`~edgepose.runtime.RuntimeOptions` that open the
            file (None: the defaults, or the shortcuts below).
        backend, threads, device, providers, xnnpack: shortcuts for the
            fields of ``runtime`` (:meth:`RuntimeOptions.resolve`); giving
            both ``runtime`` and a shortcut is a ValueError.
        role: "pose" or "detector", for messages.

    Raises:
        FileNotFoundError: the file does not exist and is not a registry name,
            or no copy of the named model was found.
        ValueError: no card can be found, the model's inputs and outputs
            do not match its card, or a named model fails its sha256 check.
        ImportError: the runtime for the file is not installed.
    """

    def __init__(self, path: str | Path, *, preset: str | None = None,
                 runtime: RuntimeOptions | None = None, backend: str | None = None,
                 threads: int | None = None, device: str | None = None,
                 providers: Any = None, xnnpack: bool = True, role: str = "pose") -> None:
        self.runtime = RuntimeOptions.resolve(runtime, backend=backend, threads=threads,
                                              device=device, providers=providers,
                                              xnnpack=xnnpack)
        self.path, self.registry_entry = locate_model(path, role)
        self.backend = self.runtime.open(self.path)
        try:
            self.card = self._resolve_card(preset, role)
            self._input, self._outputs = self._check_io()
        except Exception:
            self.backend.close()
            raise
        self.input_hw: tuple[int, int] = tuple(self.card.input.size)  # type: ignore[assignment]
        batch = self._input.shape[0] if self._input.shape else None
        self.max_batch: int | None = None if batch is None else int(batch)

    @classmethod
    def from_backend(cls, backend: Any, card: ModelCard, *, path: str | Path | None = None,
                     registry_entry: ModelEntry | None = None,
                     runtime: RuntimeOptions | None = None) -> LoadedModel:
        """A model around an open backend and a card (no file is opened):
        the card's inputs and outputs are checked against the backend's as
        for a file. The model owns the backend: :meth:`close` closes it, but
        a failed check leaves it open (it is still the caller's). ``runtime``
        records the options the backend was opened with (``.runtime``; None
        when unknown).

        Raises:
            ValueError: the model's inputs and outputs do not match the card.
        """
        self = cls.__new__(cls)
        self.path = Path(path if path is not None else card.name)
        self.registry_entry = registry_entry
        self.runtime = runtime  # what the backend was opened with, if known
        self.backend = backend
        self.card = card
        self._input, self._outputs = self._check_io()
        self.input_hw = tuple(card.input.size)  # type: ignore[assignment]
        batch = self._input.shape[0] if self._input.shape else None
        self.max_batch = None if batch is None else int(batch)
        return self

    @property
    def dynamic_input(self) -> bool:
        """True when the model's input height or width is not fixed in the
        graph (the card's ``input.size`` is then its nominal size, and a
        whole-image runner may feed other sizes)."""
        shape = tuple(self._input.shape)
        layout = self.card.input.layout
        return len(shape) == 4 and _fixed_hw(shape, layout) is None

    @property
    def input_name(self) -> str:
        """The name of the input tensor the model is fed through."""
        return self._input.name

    @property
    def name(self) -> str:
        return self.card.name or self.path.name

    def _resolve_card(self, preset: str | None, role: str) -> ModelCard:
        inputs = self.backend.inputs
        hw = None
        if inputs:
            hw = _fixed_hw(tuple(inputs[0].shape), "NHWC" if inputs[0].shape[-1] == 3 else "NCHW")
        if preset is not None:
            return preset_card(preset, hw)
        card = read_card(self.path)
        if card is not None:
            return card
        entry = self.registry_entry
        if entry is not None and entry.preset is not None:
            return preset_card(entry.preset, hw)
        # Ultralytics' metadata describes this very file, so it comes before the
        # sha256 list; a card written into the file, or chosen, comes first.
        ultralytics = self._ultralytics_card()
        if ultralytics is not None:
            return ultralytics
        known = recognise(self.path)
        if known is not None:
            return preset_card(known, hw)
        signature = self._recognise_signature()
        if signature is not None:
            return signature
        raise ValueError(
            f"The {role} model {str(self.path)!r} carries no edgepose model card and is not a "
            f"known file. Pass preset=... naming its family (one of {preset_names()}), or write "
            "a card into it with edgepose.card.write_card.")

    def _ultralytics_card(self) -> ModelCard | None:
        """The card built from Ultralytics' export metadata, or None when the
        file has none (:func:`edgepose.card.ultralytics.card_from_ultralytics`)."""
        from edgepose.card.ultralytics import card_from_ultralytics, read_ultralytics_metadata

        record = read_ultralytics_metadata(self.path)
        if record is None:
            return None
        return card_from_ultralytics(record, source=str(self.path), inputs=self.backend.inputs,
                                     outputs=self.backend.outputs)

    def _recognise_signature(self) -> ModelCard | None:
        """The rtmpose preset for a file with RTMPose's I/O signature (one NCHW
        input, outputs simcc_x (N, 17, 2W) and simcc_y (N, 17, 2H)), as MMPose and
        MMDeploy export it; the input size is taken from the file."""
        inputs, outputs = self.backend.inputs, {t.name: t for t in self.backend.outputs}
        if len(inputs) != 1 or set(outputs) != {"simcc_x", "simcc_y"}:
            return None
        shape = tuple(inputs[0].shape)
        hw = _fixed_hw(shape, "NCHW")
        sx, sy = tuple(outputs["simcc_x"].shape), tuple(outputs["simcc_y"].shape)
        if (hw is None or len(shape) != 4 or shape[1] != 3 or len(sx) != 3 or len(sy) != 3
                or sx[1] != 17 or sy[1] != 17 or sx[2] != 2 * hw[1] or sy[2] != 2 * hw[0]):
            return None
        card = preset_card("rtmpose")
        data = card.to_dict()
        data["input"] = dict(data["input"], name=inputs[0].name, size=list(hw))
        data["provenance"] = {"card": "edgepose preset rtmpose, recognised by its I/O signature"}
        return ModelCard.from_dict(data)

    def _check_io(self):
        spec = self.card.input
        inputs = {t.name: t for t in self.backend.inputs}
        if spec.name is not None:
            if spec.name not in inputs:
                raise ValueError(
                    f"The card of {self.path.name} names input {spec.name!r}, but the model's "
                    f"inputs are {sorted(inputs)}.")
            tensor = inputs[spec.name]
        elif len(inputs) == 1:
            tensor = next(iter(inputs.values()))
        else:
            raise ValueError(
                f"{self.path.name} has several inputs {sorted(inputs)}: its card must name one.")
        shape = tuple(tensor.shape)
        expected = ((None, 3, *spec.size) if spec.layout == "NCHW" else (None, *spec.size, 3))
        if len(shape) != 4 or any(
                e is not None and s is not None and s != e for s, e in zip(shape[1:], expected[1:])):
            raise ValueError(
                f"The card of {self.path.name} describes a {spec.layout} input of size "
                f"{tuple(spec.size)}, i.e. shape {expected}, but the model's input "
                f"{tensor.name!r} has shape {shape}. Fix the card's input size and layout "
                "to match the model.")
        try:
            self.card.params.check_roles(tuple(self.card.outputs))
        except ValueError as e:
            raise ValueError(f"The card of {self.path.name}: {e}") from None
        outputs = {t.name for t in self.backend.outputs}
        missing = {role: name for role, name in self.card.outputs.items() if name not in outputs}
        if missing:
            raise ValueError(
                f"The card of {self.path.name} maps outputs {missing}, which the model does not "
                f"have; its outputs are {sorted(outputs)}.")
        return tensor, dict(self.card.outputs)

    def preprocess(self, crops: NDArray[np.uint8]) -> np.ndarray:
        """BGR uint8 crops ``(N, h, w, 3)`` to the model's input tensor
        (:func:`preprocess_crops` with this model's card)."""
        return preprocess_crops(crops, self.card.input)

    def preprocess_image(
        self, image: NDArray[np.uint8], *,
        pad_value: float | tuple[float, float, float] | None = None,
    ) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
        """A whole BGR uint8 image to the model's ``(1, ...)`` input tensor
        (:func:`preprocess_image` with this model's card: its ``resize`` and
        the head's ``align`` and ``size_multiple``, where it has them).

        Returns:
            the tensor, ``(scale_x, scale_y)`` and ``(pad_x, pad_y)``.
        """
        params = self.card.params
        return preprocess_image(image, self.card.input, align=getattr(params, "align", "topleft"),
                                size_multiple=getattr(params, "size_multiple", 1),
                                pad_value=pad_value)

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        """Runs a batch, in one call when the model's batch size allows, and
        returns the outputs by role, concatenated over the batch."""
        n = tensor.shape[0]
        if self.max_batch is None or n <= self.max_batch:
            chunks = [tensor]
        else:
            chunks = [tensor[i:i + self.max_batch] for i in range(0, n, self.max_batch)]
        parts: list[Mapping[str, np.ndarray]] = []
        for chunk in chunks:
            result = self.backend.run({self._input.name: chunk})
            parts.append({role: result[name] for role, name in self._outputs.items()})
        if len(parts) == 1:
            outputs = dict(parts[0])
        else:
            outputs = {role: np.concatenate([p[role] for p in parts]) for role in self._outputs}
        return self._dequantize(outputs)

    def _dequantize(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Integer outputs the card gives (scale, zero point) for, as float32.

        A model file that keeps its quantization (TFLite) is dequantized by
        its backend; this covers conversions that dropped it."""
        table = self.card.params.dequantize
        for role, value in outputs.items():
            if value.dtype.kind in "iu" and role in table:
                scale, zero_point = table[role]
                outputs[role] = ((value.astype(np.float32) - np.float32(zero_point))
                                 * np.float32(scale))
        return outputs

    def close(self) -> None:
        self.backend.close()
