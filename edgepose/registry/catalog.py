"""The registry of known model files: entries and the parsing of ``models.json``.

The registry (``edgepose/models.json``, data rather than code) lists the
model files edgepose knows: name, task, head, file name, sha256, size,
licence, the public upstream URL and the card preset. This module holds the
entries (:class:`ModelEntry`, :class:`ArchiveSpec`), the registry
(:class:`ModelRegistry`, :func:`default_registry`), the errors of the
registry package, the environment variables that configure a
:class:`~edgepose.registry.ModelStore`, and :class:`ResolvedModel`, what a
name resolves to. Nothing here touches the cache or the network.
"""
from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from edgepose._validate import is_int

__all__ = [
    "ArchiveSpec", "ModelEntry", "ModelRegistry", "ResolvedModel",
    "ModelNotFoundError", "HashMismatchError", "UnverifiedModelError",
    "default_registry", "looks_like_name",
    "CACHE_ENV", "MODEL_DIR_ENV", "MIRROR_ENV", "OFFLINE_ENV",
]

CACHE_ENV = "EDGEPOSE_CACHE"
MODEL_DIR_ENV = "EDGEPOSE_MODEL_DIR"
MIRROR_ENV = "EDGEPOSE_MIRROR"
OFFLINE_ENV = "EDGEPOSE_OFFLINE"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


# --- errors ----------------------------------------------------------------------


class ModelNotFoundError(FileNotFoundError):
    """No copy of a registry model was found: the message lists every place
    looked in and the URL to fetch the file from."""


class HashMismatchError(ValueError):
    """A file's sha256 differs from the pinned one; the message names both."""


class UnverifiedModelError(ValueError):
    """A registry entry without a pinned sha256, which has not been imported."""


# --- the registry ----------------------------------------------------------------


def _sha256_or_none(where: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _SHA256.match(value):
        raise ValueError(f"{where}: sha256 must be 64 lowercase hex digits or null, got {value!r}.")
    return value


def _size_or_none(where: str, value: Any) -> int | None:
    if value is None:
        return None
    if not is_int(value) or value <= 0:
        raise ValueError(f"{where}: size must be a positive integer or null, got {value!r}.")
    return value


def _plain_file_name(where: str, value: Any) -> str:
    if (not isinstance(value, str) or not value or value != Path(value).name
            or value.startswith(".")):
        raise ValueError(f"{where}: a file name without folders is expected, got {value!r}.")
    return value


@dataclass(frozen=True)
class ArchiveSpec:
    """The published archive (a zip) that holds an entry's model file.

    Attributes:
        file: the archive's file name (what a mirror holds, and the upstream
            URL's last part).
        member: the model file's name inside the archive, in any folder of it.
        sha256: the archive's sha256, or None if not pinned.
        size: the archive's size in bytes, or None.
    """

    file: str
    member: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class ModelEntry:
    """One known model file.

    Attributes:
        name: the registry name (``Estimator("movenet-lightning")``).
        file: the model file's name; the cache stores it under this name.
        sha256, size: the pinned hash and size of the file, or None if this
            release could not pin them (the file must then be imported).
        url: the public upstream URL where the file (or its ``archive``) is
            published; None for files that exist only as conversions.
        preset: the card preset used when the file carries no card, or None.
        task, head, keypoints, input_hw, format, description, license,
        source, note: what the model is and where it comes from.
    """

    name: str
    description: str
    task: str
    head: str
    keypoints: str | None
    input_hw: tuple[int, int] | None
    format: str
    file: str
    sha256: str | None
    size: int | None
    license: str
    url: str | None
    preset: str | None
    source: str
    archive: ArchiveSpec | None = None
    note: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelEntry:
        """An entry from its JSON form (an object of ``models.json``).

        Raises:
            ValueError: a missing or malformed field, naming it.
        """
        name = data.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError("A registry entry's 'name' must be letters, digits, '-' or '_', "
                             f"got {name!r}.")
        where = f"Registry entry {name!r}"
        required = ("description", "task", "head", "format", "file", "sha256", "size",
                    "license", "url", "preset", "source")
        missing = [k for k in required if k not in data]
        if missing:
            raise ValueError(f"{where} is missing {missing}.")
        archive = data.get("archive")
        if archive is not None:
            archive = ArchiveSpec(file=_plain_file_name(f"{where} archive", archive.get("file")),
                                  member=_plain_file_name(f"{where} archive member",
                                                          archive.get("member")),
                                  sha256=_sha256_or_none(f"{where} archive", archive.get("sha256")),
                                  size=_size_or_none(f"{where} archive", archive.get("size")))
        url = data["url"]
        if url is not None and not (isinstance(url, str)
                                    and url.startswith(("https://", "http://"))):
            raise ValueError(f"{where}: url must be an http(s) URL or null, got {url!r}.")
        hw = data.get("input_hw")
        return cls(name=name, description=str(data["description"]), task=str(data["task"]),
                   head=str(data["head"]), keypoints=data.get("keypoints"),
                   input_hw=None if hw is None else (int(hw[0]), int(hw[1])),
                   format=str(data["format"]), file=_plain_file_name(where, data["file"]),
                   sha256=_sha256_or_none(where, data["sha256"]),
                   size=_size_or_none(where, data["size"]), license=str(data["license"]),
                   url=url, preset=data["preset"], source=str(data["source"]), archive=archive,
                   note=data.get("note"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as in ``models.json``."""
        out: dict[str, Any] = {
            "name": self.name, "description": self.description, "task": self.task,
            "head": self.head, "keypoints": self.keypoints,
            "input_hw": None if self.input_hw is None else list(self.input_hw),
            "format": self.format, "file": self.file, "sha256": self.sha256, "size": self.size,
            "license": self.license, "url": self.url,
            "archive": None if self.archive is None else {
                "file": self.archive.file, "member": self.archive.member,
                "sha256": self.archive.sha256, "size": self.archive.size},
            "preset": self.preset, "source": self.source}
        if self.note is not None:
            out["note"] = self.note
        return out


class ModelRegistry:
    """The known model files, by name.

    Args:
        entries: the entries; names and file names must be unique.

    Raises:
        ValueError: duplicate names or file names.
    """

    def __init__(self, entries: Iterable[ModelEntry]) -> None:
        self._entries: dict[str, ModelEntry] = {}
        files: dict[str, str] = {}
        for entry in entries:
            if entry.name in self._entries:
                raise ValueError(f"The registry lists {entry.name!r} twice.")
            for f in (entry.file, entry.archive.file if entry.archive else None):
                if f is not None and f in files:
                    raise ValueError(f"Registry entries {files[f]!r} and {entry.name!r} both use "
                                     f"the file name {f!r}; the cache stores files by name.")
                if f is not None:
                    files[f] = entry.name
            self._entries[entry.name] = entry

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelRegistry:
        """A registry from its JSON form: ``{"schema": 1, "models": [...]}``."""
        if data.get("schema") != 1 or not isinstance(data.get("models"), list):
            raise ValueError("A model registry must be {\"schema\": 1, \"models\": [...]}, got "
                             f"keys {sorted(data)} with schema {data.get('schema')!r}.")
        return cls(ModelEntry.from_dict(m) for m in data["models"])

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> ModelRegistry:
        """A registry from a JSON file in the format of ``edgepose/models.json``."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def names(self) -> list[str]:
        """Every name, in registry order."""
        return list(self._entries)

    def get(self, name: str) -> ModelEntry:
        """The entry of ``name``.

        Raises:
            ValueError: an unknown name, with the closest known names.
        """
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(f"Unknown model name {name!r}.{hint} Known names: "
                             f"{self.names()} (edgepose models list).") from None

    def by_file(self, file_name: str) -> ModelEntry | None:
        """The entry whose model file (or archive) has this name, or None."""
        for entry in self._entries.values():
            if file_name == entry.file or (entry.archive and file_name == entry.archive.file):
                return entry
        return None

    def by_sha256(self, sha256: str) -> tuple[ModelEntry, bool] | None:
        """(entry, is_archive) of a file with this pinned sha256, or None."""
        for entry in self._entries.values():
            if entry.sha256 == sha256:
                return entry, False
            if entry.archive is not None and entry.archive.sha256 == sha256:
                return entry, True
        return None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


@lru_cache(maxsize=1)
def default_registry() -> ModelRegistry:
    """The registry shipped with edgepose (``edgepose/models.json``)."""
    text = resources.files("edgepose").joinpath("models.json").read_text(encoding="utf-8")
    return ModelRegistry.from_dict(json.loads(text))


def looks_like_name(text: str) -> bool:
    """Whether ``text`` could be a registry name (no folder, no suffix)."""
    return bool(_NAME.match(text))


@dataclass(frozen=True)
class ResolvedModel:
    """A verified local model file.

    Attributes:
        entry: its registry entry.
        path: the file.
        origin: where it came from: "model dir", "cache", "mirror" or "upstream".
        detail: the path or URL it came from.
    """

    entry: ModelEntry
    path: Path
    origin: str
    detail: str

