"""Models by name: a checksum-pinned registry of known model files and a cache.

The registry (``edgepose/models.json``, data rather than code) lists the
model files edgepose knows: name, task, head, file name, sha256, size,
licence, the public upstream URL and the card preset. :class:`ModelStore`
finds the file of a name, in this order:

1. the user's model directory, ``EDGEPOSE_MODEL_DIR`` (files used in place);
2. the cache, ``EDGEPOSE_CACHE``, else ``$XDG_CACHE_HOME/edgepose``, else
   ``~/.cache/edgepose`` (files live in its ``models/`` folder);
3. a mirror, ``EDGEPOSE_MIRROR``: a directory searched recursively by file
   name, or an http(s) base URL to which the file name is appended -- how
   devices behind a firewall are fed; what it provides is copied into the cache;
4. the upstream URL, downloaded into the cache.

(An explicit path comes before all of these: ``Estimator("x.onnx")`` uses
the file as it is, without the registry.)

Every file is checked against its sha256 before first use; a verified
file's (path, size, mtime) is remembered in ``verified.json`` in the cache so
that loading it again does not hash it again. A mismatch raises
:class:`HashMismatchError` naming both hashes. Downloads and copies go to a
temporary file in the cache, are verified, then renamed: a partial or wrong
file never lands in the cache. Set ``EDGEPOSE_OFFLINE=1`` to never touch the
network; when nothing is found, :class:`ModelNotFoundError` lists every place
looked in and the URL to fetch from.

Entries whose sha256 this release could not pin (RTMPose, published as
zips on download.openmmlab.com) are never used unverified: the user imports
a copy they trust (:meth:`ModelStore.import_file`, ``edgepose models import
FILE --name rtmpose-m``), which records the sha256 they vouch for in
``imported.json`` in the cache.

``imported.json`` and ``verified.json`` are read, changed and written back
under the cache's lock (``cache.lock``, see :func:`edgepose._files.file_lock`),
which excludes other threads and other processes: concurrent imports and
pulls into one cache keep every pin. Every file is written through a
temporary file (fsynced, then renamed) with the mode of an ordinary new file.

Library calls print nothing; pass ``progress=`` to follow a download
(``edgepose.progress.ProgressBar("name")`` draws the bar the CLI draws).
"""
from __future__ import annotations

import difflib
import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Mapping

from edgepose._files import (TEMP_PREFIX, atomic_write, create_temp, file_lock, sha256_file,
                             sha256_stream)

__all__ = [
    "ArchiveSpec", "ModelEntry", "ModelRegistry", "ModelStore", "ResolvedModel", "CacheCheck",
    "ModelNotFoundError", "HashMismatchError", "UnverifiedModelError",
    "default_registry", "resolve", "looks_like_name",
    "CACHE_ENV", "MODEL_DIR_ENV", "MIRROR_ENV", "OFFLINE_ENV",
]

log = logging.getLogger(__name__)

CACHE_ENV = "EDGEPOSE_CACHE"
MODEL_DIR_ENV = "EDGEPOSE_MODEL_DIR"
MIRROR_ENV = "EDGEPOSE_MIRROR"
OFFLINE_ENV = "EDGEPOSE_OFFLINE"

#: ``progress(bytes_done, bytes_total_or_None)``, called while a file is fetched
#: (at most every 0.05 s, and once at the end); :class:`edgepose.progress.ProgressBar` is one.
ProgressFn = Callable[[int, "int | None"], None]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_PARTIAL_PREFIX = TEMP_PREFIX
_CHUNK = 1 << 16


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
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
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


# --- small file helpers ------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Writes JSON atomically (temporary file, fsync, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"))


def _copy_hashing(src: BinaryIO, dst: BinaryIO, total: int | None,
                  progress: ProgressFn | None) -> tuple[str, int]:
    digest, done = hashlib.sha256(), 0
    last = 0.0
    if progress is not None:
        progress(0, total)
    while True:
        chunk = src.read(_CHUNK)
        if not chunk:
            break
        dst.write(chunk)
        digest.update(chunk)
        done += len(chunk)
        now = time.monotonic()
        if progress is not None and now - last >= 0.05:
            progress(done, total)
            last = now
    dst.flush()
    os.fsync(dst.fileno())
    if progress is not None:
        progress(done, total)
    return digest.hexdigest(), done


def _urlopen(request: urllib.request.Request, timeout: float):
    """urllib's urlopen (one place, so that tests can forbid the internet)."""
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http(s) only)


def _short(sha: str | None) -> str:
    return "unknown" if sha is None else sha


class _Interrupted(Exception):
    """A download that ended before its announced length."""


# --- the store -------------------------------------------------------------------


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


@dataclass(frozen=True)
class CacheCheck:
    """The outcome of checking one file of the cache (:meth:`ModelStore.verify`).

    ``status`` is "ok", "mismatch" (sha256 differs; ``expected`` and ``actual``
    say how), "unpinned" (an entry without a sha256 that was never imported),
    "unknown" (not a registry file) or "partial" (a leftover temporary file).
    """

    path: Path
    status: str
    entry: ModelEntry | None = None
    expected: str | None = None
    actual: str | None = None
    removed: bool = False


def _default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "edgepose"


class ModelStore:
    """Where model files are looked for, fetched to and verified.

    Args:
        cache_dir: the cache (model files go in its ``models/`` folder);
            default: ``EDGEPOSE_CACHE``, else ``$XDG_CACHE_HOME/edgepose``,
            else ``~/.cache/edgepose``.
        model_dir: a folder of the user's model files, used in place
            (searched by file name, then recursively); None for none.
        mirror: a folder searched recursively by file name, or an http(s)
            base URL; None for none.
        registry: the registry; default: :func:`default_registry`.
        offline: never use the network (http mirror, upstream).
        timeout: seconds to wait for a server before giving up on it.

    :meth:`from_env` builds one from the environment variables.
    """

    def __init__(self, *, cache_dir: str | os.PathLike | None = None,
                 model_dir: str | os.PathLike | None = None,
                 mirror: str | os.PathLike | None = None,
                 registry: ModelRegistry | None = None, offline: bool = False,
                 timeout: float = 30.0) -> None:
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else _default_cache_dir()
        self.model_dir = Path(model_dir).expanduser() if model_dir else None
        mirror_text = os.fspath(mirror) if mirror else None
        self.mirror_url = (mirror_text.rstrip("/") + "/"
                           if mirror_text and mirror_text.startswith(("http://", "https://"))
                           else None)
        self.mirror_dir = (Path(mirror_text).expanduser()
                           if mirror_text and self.mirror_url is None else None)
        self.registry = registry if registry is not None else default_registry()
        self.offline = bool(offline)
        self.timeout = float(timeout)

    @classmethod
    def from_env(cls, **overrides: Any) -> ModelStore:
        """A store configured by ``EDGEPOSE_CACHE``, ``EDGEPOSE_MODEL_DIR``,
        ``EDGEPOSE_MIRROR`` and ``EDGEPOSE_OFFLINE`` (keyword arguments win)."""
        offline = os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")
        kwargs: dict[str, Any] = {"model_dir": os.environ.get(MODEL_DIR_ENV) or None,
                                  "mirror": os.environ.get(MIRROR_ENV) or None,
                                  "offline": offline}
        kwargs.update(overrides)
        return cls(**kwargs)

    @property
    def models_dir(self) -> Path:
        """The cache folder that holds the model files."""
        return self.cache_dir / "models"

    @property
    def mirror(self) -> str | None:
        """The mirror, as configured (a folder or a base URL), or None."""
        return self.mirror_url or (str(self.mirror_dir) if self.mirror_dir else None)

    # -- pins and the verification index ----------------------------------------

    def _imports_path(self) -> Path:
        return self.cache_dir / "imported.json"

    def _index_path(self) -> Path:
        return self.cache_dir / "verified.json"

    def _lock(self):
        """The cache's lock (``cache.lock``): held by every read-modify-write of
        ``imported.json`` and ``verified.json``, by threads and processes alike."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        return file_lock(self.cache_dir / "cache.lock")

    def imported(self, entry: ModelEntry) -> dict[str, Any] | None:
        """What the user vouched for when importing an entry without a pinned
        sha256 (``{"sha256", "size", "imported_from", ...}``), or None."""
        record = _read_json(self._imports_path()).get("models", {}).get(entry.name)
        if isinstance(record, dict) and _SHA256.match(str(record.get("sha256", ""))):
            return record
        return None

    def expected_sha256(self, entry: ModelEntry) -> str | None:
        """The sha256 a file of ``entry`` must have: the registry's, else the
        one recorded by an import, else None (the file cannot be used)."""
        if entry.sha256 is not None:
            return entry.sha256
        record = self.imported(entry)
        return None if record is None else str(record["sha256"])

    def expected_size(self, entry: ModelEntry) -> int | None:
        """The size a file of ``entry`` must have (pinned or imported), or None."""
        if entry.size is not None:
            return entry.size
        record = self.imported(entry)
        return None if record is None else record.get("size")

    def _indexed_sha256(self, path: Path, st: os.stat_result) -> str | None:
        record = _read_json(self._index_path()).get("files", {}).get(str(path))
        if (isinstance(record, list) and len(record) == 3 and record[0] == st.st_size
                and record[1] == st.st_mtime_ns):
            return str(record[2])
        return None

    def _remember(self, path: Path, sha256: str) -> None:
        try:
            st = path.stat()
            with self._lock():
                data = _read_json(self._index_path())
                files = {p: r for p, r in data.get("files", {}).items() if Path(p).exists()}
                files[str(path)] = [st.st_size, st.st_mtime_ns, sha256]
                _write_json(self._index_path(), {"version": 1, "files": files})
        except OSError as exc:  # a read-only cache still works, it just hashes again
            log.debug("could not record the verification of %s: %s", path, exc)

    def _check(self, path: Path, entry: ModelEntry, expected: str, place: str, *,
               use_index: bool = True) -> None:
        """Raises HashMismatchError unless ``path`` has sha256 ``expected``;
        ``place`` ("model dir", "cache", "mirror") is for the message."""
        path = path.resolve()
        st = path.stat()
        if use_index and self._indexed_sha256(path, st) == expected:
            return
        actual = sha256_file(path)
        if actual != expected:
            raise self._mismatch(entry, f"the {place} file {path}", expected, actual, st.st_size,
                                 place)
        self._remember(path, actual)

    def _mismatch(self, entry: ModelEntry, source: str, expected: str, actual: str, size: int,
                  place: str, *, archive: bool = False) -> HashMismatchError:
        want = (entry.archive.size if archive and entry.archive else self.expected_size(entry))
        sizes = ""
        if want is not None and size != want:
            sizes = (f" It is {size} bytes, expected {want}"
                     + (" (truncated or incomplete)." if size < want else "."))
        what = f"archive {entry.archive.file}" if archive and entry.archive else "file"
        fix = {
            "cache": (" Remove it (edgepose models verify --remove-bad) and fetch it again "
                      f"(edgepose models pull {entry.name})."),
            "model dir": f" Replace it with {entry.file} (sha256 {expected}) or remove it.",
            "import": f" This is not the file of {entry.name!r}.",
        }.get(place, " Nothing was written to the cache: the source holds a different or "
                     "damaged file.")
        return HashMismatchError(
            f"The {what} for model {entry.name!r} from {source} has sha256 {actual}, "
            f"expected {expected}.{sizes}{fix}")

    # -- finding files -----------------------------------------------------------

    @staticmethod
    def _find_in_dir(root: Path, names: tuple[str, ...]) -> Path | None:
        """``root/name``, else the first file named ``name`` below ``root``
        (folders in sorted order), for each name in turn."""
        for name in names:
            if (root / name).is_file():
                return root / name
        for name in names:
            for folder, dirs, files in os.walk(root):
                dirs.sort()
                if name in files:
                    return Path(folder) / name
        return None

    def _source_names(self, entry: ModelEntry) -> tuple[str, ...]:
        return (entry.file,) if entry.archive is None else (entry.file, entry.archive.file)

    def cached_path(self, entry: ModelEntry) -> Path | None:
        """The cache's copy of ``entry`` (not verified here), or None."""
        path = self.models_dir / entry.file
        return path if path.is_file() else None

    def local_path(self, entry: ModelEntry) -> tuple[str, Path] | None:
        """(place, path) of a copy in the model dir or the cache (not
        verified: for listings), or None."""
        if self.model_dir is not None and self.model_dir.is_dir():
            found = self._find_in_dir(self.model_dir, (entry.file,))
            if found is not None:
                return "model dir", found
        cached = self.cached_path(entry)
        return ("cache", cached) if cached is not None else None

    # -- resolving ----------------------------------------------------------------

    def resolve(self, name: str, *, progress: ProgressFn | None = None) -> ResolvedModel:
        """The verified file of registry model ``name``, fetched into the cache
        from the mirror or upstream when needed.

        Args:
            name: a registry name (see ``edgepose models list``).
            progress: called with (bytes done, total) while copying or downloading.

        Raises:
            ValueError: an unknown name.
            HashMismatchError: a file was found but its sha256 is not the pinned one.
            UnverifiedModelError: the entry has no pinned sha256 and was not imported.
            ModelNotFoundError: no copy anywhere; the message lists the places
                looked in and the URL to fetch from.
        """
        entry = self.registry.get(name)
        expected = self.expected_sha256(entry)
        tried: list[str] = []
        if self.model_dir is None:
            tried.append(f"model dir: {MODEL_DIR_ENV} is not set")
        elif not self.model_dir.is_dir():
            tried.append(f"model dir: {self.model_dir} does not exist")
        else:
            found = self._find_in_dir(self.model_dir, (entry.file,))
            if found is None:
                tried.append(f"model dir: no {entry.file} in {self.model_dir} or below")
            else:
                self._require_pin(entry, found)
                self._check(found, entry, expected, "model dir")
                return ResolvedModel(entry, found, "model dir", str(found))
        cached = self.models_dir / entry.file
        if cached.is_file():
            self._require_pin(entry, cached)
            self._check(cached, entry, expected, "cache")
            return ResolvedModel(entry, cached, "cache", str(cached))
        tried.append(f"cache: no {cached}")
        return self._fetch(entry, tried, progress)

    def pull(self, name: str, *, progress: ProgressFn | None = None,
             force: bool = False) -> ResolvedModel:
        """Puts a verified copy of ``name`` into the cache (from the mirror or
        upstream; the model dir is not a source), unless it is already there.

        Args:
            force: fetch again even if the cache holds a verified copy.

        Raises:
            as :meth:`resolve`.
        """
        entry = self.registry.get(name)
        cached = self.models_dir / entry.file
        tried: list[str] = []
        if cached.is_file() and not force:
            self._require_pin(entry, cached)
            self._check(cached, entry, self.expected_sha256(entry), "cache")
            return ResolvedModel(entry, cached, "cache", str(cached))
        tried.append(f"cache: no {cached}" if not force else f"cache: {cached} (skipped: forced)")
        return self._fetch(entry, tried, progress)

    def _require_pin(self, entry: ModelEntry, found: Path | None = None) -> None:
        if self.expected_sha256(entry) is not None:
            return
        if found is not None:
            how = (f"A copy was found at {found}, but edgepose does not use a file it cannot "
                   "verify. If you trust it, import it")
            target = str(found)
        else:
            how = (f"edgepose does not download or use a file it cannot verify. Download "
                   f"{entry.url or entry.file}, check it, then import it")
            target = "FILE"
        raise UnverifiedModelError(
            f"Model {entry.name!r} has no pinned sha256 in this edgepose release. {how}: "
            f"`edgepose models import {target} --name {entry.name}` (or "
            f"ModelStore.import_file(path, name={entry.name!r})); this records the sha256 you "
            f"vouch for in {self._imports_path()}.")

    def _fetch(self, entry: ModelEntry, tried: list[str],
               progress: ProgressFn | None) -> ResolvedModel:
        self._require_pin(entry)
        # the mirror: a folder, or a base URL
        if self.mirror_dir is not None:
            if not self.mirror_dir.is_dir():
                tried.append(f"mirror: {self.mirror_dir} does not exist")
            else:
                found = self._find_in_dir(self.mirror_dir, self._source_names(entry))
                if found is None:
                    tried.append(f"mirror: no {' or '.join(self._source_names(entry))} in "
                                 f"{self.mirror_dir} or below")
                else:
                    return self._from_mirror_file(entry, found, progress)
        elif self.mirror_url is None:
            tried.append(f"mirror: {MIRROR_ENV} is not set")
        elif self.offline:
            tried.append(f"mirror: {self.mirror_url} (skipped: {OFFLINE_ENV} is set)")
        else:
            for file_name in self._source_names(entry):
                url = self.mirror_url + urllib.parse.quote(file_name)
                is_archive = entry.archive is not None and file_name == entry.archive.file
                result = self._try_download(entry, url, is_archive, "mirror", tried, progress)
                if result is not None:
                    return result
        # upstream
        if entry.url is None:
            tried.append("upstream: none (this file is a conversion with no public release)")
        elif self.offline:
            tried.append(f"upstream: {entry.url} (skipped: {OFFLINE_ENV} is set)")
        else:
            result = self._try_download(entry, entry.url, entry.archive is not None, "upstream",
                                        tried, progress)
            if result is not None:
                return result
        raise ModelNotFoundError(self._not_found_message(entry, tried))

    def _not_found_message(self, entry: ModelEntry, tried: list[str]) -> str:
        size = f", {entry.size} bytes" if entry.size else ""
        expected = self.expected_sha256(entry)
        lines = [f"No copy of model {entry.name!r} ({entry.file}{size}, sha256 "
                 f"{_short(expected)}) was found. Looked in:"]
        lines += [f"  - {t}" for t in tried]
        target = self.models_dir / entry.file
        if entry.url is not None:
            what = (f"the archive {entry.archive.file} (it holds {entry.archive.member})"
                    if entry.archive else entry.file)
            lines.append(f"Fetch {entry.url} ({what}) on a machine with internet access, then "
                         f"either put {entry.file} at {target}, or into the folder "
                         f"{MODEL_DIR_ENV} names, or into a folder (or web server) named by "
                         f"{MIRROR_ENV}; or run `edgepose models import FILE`.")
        else:
            lines.append(f"{entry.file} has no public download: copy it from a machine that "
                         f"has it to {target}, or into the folder {MODEL_DIR_ENV} names, or "
                         f"point {MIRROR_ENV} at a folder (or web server) that holds it; or "
                         "run `edgepose models import FILE`.")
        return "\n".join(lines)

    # -- installing into the cache -------------------------------------------------

    def _temp_file(self, name: str) -> tuple[BinaryIO, Path]:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        return create_temp(self.models_dir, name)

    def _install(self, entry: ModelEntry, tmp: Path, sha256: str, place: str,
                 source: str) -> Path:
        """Renames a verified temporary file into the cache."""
        expected = self.expected_sha256(entry)
        if sha256 != expected:
            raise self._mismatch(entry, source, expected, sha256, tmp.stat().st_size, place)
        final = self.models_dir / entry.file
        os.replace(tmp, final)
        self._remember(final.resolve(), sha256)
        return final

    def _unpack_or_install(self, entry: ModelEntry, tmp: Path, sha256: str, is_archive: bool,
                           place: str, source: str) -> Path:
        """Installs a fetched file, or (for an archive) checks the archive
        and installs its member."""
        if not is_archive:
            return self._install(entry, tmp, sha256, place, source)
        assert entry.archive is not None
        if entry.archive.sha256 is not None and sha256 != entry.archive.sha256:
            raise self._mismatch(entry, source, entry.archive.sha256, sha256, tmp.stat().st_size,
                                 place, archive=True)
        member_tmp: Path | None = None
        try:
            with zipfile.ZipFile(tmp) as zf:
                member = self._archive_member(entry, zf, source)
                out, member_tmp = self._temp_file(entry.file)
                with out, zf.open(member) as src:
                    member_sha, _ = _copy_hashing(src, out, None, None)
            return self._install(entry, member_tmp, member_sha, place, f"{source} ({member})")
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{source} is not a valid zip archive ({exc}); expected "
                             f"{entry.archive.file}, which holds {entry.archive.member}.") from None
        finally:
            if member_tmp is not None:
                member_tmp.unlink(missing_ok=True)

    @staticmethod
    def _archive_member(entry: ModelEntry, zf: zipfile.ZipFile, where: str) -> str:
        assert entry.archive is not None
        names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == entry.archive.member]
        if len(names) != 1:
            raise ValueError(
                f"The archive from {where} should hold exactly one {entry.archive.member} (model "
                f"{entry.name!r}); it holds {len(names)}: {names[:5] or zf.namelist()[:10]}.")
        return names[0]

    def _from_mirror_file(self, entry: ModelEntry, found: Path,
                          progress: ProgressFn | None) -> ResolvedModel:
        is_archive = entry.archive is not None and found.name == entry.archive.file
        where = f"mirror {found}"
        tmp: Path | None = None
        try:
            out, tmp = self._temp_file(entry.file)
            with out, open(found, "rb") as src:
                sha, _ = _copy_hashing(src, out, found.stat().st_size, progress)
            path = self._unpack_or_install(entry, tmp, sha, is_archive, "mirror", where)
        except (HashMismatchError, UnverifiedModelError):
            raise
        except OSError as exc:
            if is_archive:
                raise
            # A read-only cache: use the mirror's file in place, once verified.
            log.warning("cannot copy %s into the cache %s (%s); using it in place",
                        found, self.models_dir, exc)
            self._check(found, entry, self.expected_sha256(entry), "mirror")
            return ResolvedModel(entry, found, "mirror", str(found))
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        return ResolvedModel(entry, path, "mirror", str(found))

    def _try_download(self, entry: ModelEntry, url: str, is_archive: bool, place: str,
                      tried: list[str], progress: ProgressFn | None) -> ResolvedModel | None:
        """Downloads ``url`` into the cache; None (with the reason appended to
        ``tried``) when the server cannot be reached or the download breaks off."""
        tmp: Path | None = None
        request = urllib.request.Request(url, headers={"User-Agent": _user_agent()})
        try:
            log.info("downloading %s", url)
            with _urlopen(request, self.timeout) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                out, tmp = self._temp_file(entry.file)
                with out:
                    sha, done = _copy_hashing(response, out, total, progress)
                if total is not None and done < total:
                    raise _Interrupted(f"the download broke off after {done} of {total} bytes")
            path = self._unpack_or_install(entry, tmp, sha, is_archive, place, f"{place} {url}")
            return ResolvedModel(entry, path, place, url)
        except urllib.error.HTTPError as exc:
            tried.append(f"{place}: {url}: HTTP {exc.code} {exc.reason}")
        except urllib.error.URLError as exc:
            tried.append(f"{place}: {url}: cannot connect ({exc.reason})")
        except _Interrupted as exc:
            tried.append(f"{place}: {url}: {exc}")
        except http.client.HTTPException as exc:  # IncompleteRead, RemoteDisconnected, ...
            tried.append(f"{place}: {url}: the download broke off ({type(exc).__name__})")
        except OSError as exc:  # timeouts, resets, a cache that cannot be written
            tried.append(f"{place}: {url}: {type(exc).__name__}: {exc}")
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        return None

    # -- import and verify --------------------------------------------------------

    def import_file(self, path: str | os.PathLike, name: str | None = None) -> ResolvedModel:
        """Copies a model file (or its published zip) the user already has into
        the cache, verified.

        Without ``name`` the file is recognised by its sha256 (or its zip's).
        With ``name``, a file of an entry that has a pinned sha256 must match
        it; for an entry without one (RTMPose) the file's sha256 (for a zip:
        its member's) is recorded as the one the user vouches for, and from
        then on every copy of that model must match it.

        Raises:
            FileNotFoundError: no such file.
            ValueError: an unknown name, or (without ``name``) a file that is
                not a registry model.
            HashMismatchError: the file is not the pinned one.
        """
        src = Path(path).expanduser()
        if not src.is_file():
            raise FileNotFoundError(f"{str(src)!r} is not a file: pass the model file to import.")
        sha, size = sha256_file(src), src.stat().st_size
        source = f"import {src}"
        if name is None:
            hit = self.registry.by_sha256(sha) or self._imported_by_sha256(sha)
            if hit is None:
                raise ValueError(
                    f"{src} (sha256 {sha}) is not a file the registry knows. If it is the "
                    "release of an entry without a pinned sha256 (such as rtmpose-m), name it: "
                    "`edgepose models import FILE --name NAME` (edgepose models list shows the "
                    "names).")
            entry, is_archive = hit
            vouch = False
        else:
            entry = self.registry.get(name)
            is_archive = (entry.archive is not None and src.suffix.lower() != f".{entry.format}"
                          and zipfile.is_zipfile(src))
            pinned = entry.sha256
            if is_archive and entry.archive is not None:
                pinned = entry.archive.sha256
            if pinned is not None and sha != pinned:
                raise self._mismatch(entry, str(src), pinned, sha, size, "import",
                                     archive=is_archive)
            vouch = entry.sha256 is None
        tmp: Path | None = None
        try:
            out, tmp = self._temp_file(entry.file)
            with out, open(src, "rb") as f:
                copied_sha, _ = _copy_hashing(f, out, None, None)
            if copied_sha != sha:
                raise OSError(f"{src} changed while it was being copied; import it again.")
            if vouch:
                member_sha, member_size = (self._member_hash(entry, tmp, str(src)) if is_archive
                                           else (sha, size))
            # The pin and the file it pins land together: under the cache's lock.
            with self._lock():
                if vouch:
                    self._pin(entry, member_sha, member_size, src,
                              archive_sha=sha if is_archive else None)
                path = self._unpack_or_install(entry, tmp, sha, is_archive, "import", source)
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        return ResolvedModel(entry, path, "import", str(src))

    def _imported_by_sha256(self, sha: str) -> tuple[ModelEntry, bool] | None:
        for entry in self.registry:
            record = self.imported(entry)
            if record is not None and sha in (record.get("sha256"), record.get("archive_sha256")):
                return entry, sha == record.get("archive_sha256")
        return None

    def _member_hash(self, entry: ModelEntry, archive: Path, where: str) -> tuple[str, int]:
        try:
            with zipfile.ZipFile(archive) as zf:
                member = self._archive_member(entry, zf, where)
                with zf.open(member) as f:
                    return sha256_stream(f), zf.getinfo(member).file_size
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{where} is not a valid zip archive ({exc}).") from None

    def _pin(self, entry: ModelEntry, sha: str, size: int, src: Path, *,
             archive_sha: str | None) -> None:
        record: dict[str, Any] = {"sha256": sha, "size": size, "imported_from": str(src),
                                  "imported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if archive_sha is not None:
            record["archive_sha256"] = archive_sha
        with self._lock():  # read, change and write as one step: no pin is lost
            data = _read_json(self._imports_path())
            models = dict(data.get("models", {}))
            models[entry.name] = record
            _write_json(self._imports_path(), {"version": 1, "models": models})

    def verify(self, *, remove_bad: bool = False) -> list[CacheCheck]:
        """Hashes every file in the cache again and checks it.

        Args:
            remove_bad: delete files whose sha256 is wrong, and leftover
                temporary files of interrupted downloads.

        Returns:
            one :class:`CacheCheck` per file, sorted by file name.
        """
        results: list[CacheCheck] = []
        if not self.models_dir.is_dir():
            return results
        for path in sorted(self.models_dir.iterdir()):
            if not path.is_file():
                continue
            if path.name.startswith(_PARTIAL_PREFIX):
                if remove_bad:
                    path.unlink(missing_ok=True)
                results.append(CacheCheck(path, "partial", removed=remove_bad))
                continue
            entry = self.registry.by_file(path.name)
            if entry is None or path.name != entry.file:
                results.append(CacheCheck(path, "unknown", entry))
                continue
            expected = self.expected_sha256(entry)
            if expected is None:
                results.append(CacheCheck(path, "unpinned", entry))
                continue
            actual = sha256_file(path)
            if actual == expected:
                self._remember(path.resolve(), actual)
                results.append(CacheCheck(path, "ok", entry, expected, actual))
            else:
                if remove_bad:
                    path.unlink(missing_ok=True)
                results.append(CacheCheck(path, "mismatch", entry, expected, actual,
                                          removed=remove_bad))
        return results


def _user_agent() -> str:
    from edgepose import __version__
    return f"edgepose/{__version__} (+python urllib)"


def resolve(name: str, *, progress: ProgressFn | None = None) -> Path:
    """The verified local file of registry model ``name``, found and fetched as
    configured by the environment (see the module docstring).

    Raises:
        as :meth:`ModelStore.resolve`.
    """
    return ModelStore.from_env().resolve(name, progress=progress).path
