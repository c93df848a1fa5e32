"""The model cache: :class:`ModelStore`, its verification records and imports.

:class:`ModelStore` finds the verified file of a registry name (model dir,
cache, mirror, upstream: the order is in :mod:`edgepose.registry`), keeps the
records of the cache (``verified.json``: which files were hashed already;
``imported.json``: the sha256 a user vouched for when importing an entry this
release could not pin), and checks the cache again (:meth:`ModelStore.verify`).
Copying and downloading live in :mod:`edgepose.registry.fetch`, mixed in.

Both records are read, changed and written back under the cache's lock
(``cache.lock``, see :func:`edgepose._files.file_lock`), through a temporary
file (fsynced, then renamed).
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from edgepose._files import TEMP_PREFIX, atomic_write, file_lock, sha256_file
from edgepose.registry.catalog import (CACHE_ENV, MIRROR_ENV, MODEL_DIR_ENV, OFFLINE_ENV, _SHA256,
                                       HashMismatchError, ModelEntry, ModelRegistry,
                                       ResolvedModel, UnverifiedModelError, default_registry)
from edgepose.registry.fetch import ProgressFn, _Fetching

__all__ = ["ModelStore", "CacheCheck", "resolve"]

log = logging.getLogger(__name__)

_PARTIAL_PREFIX = TEMP_PREFIX


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


class ModelStore(_Fetching):
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

    def _imported_by_sha256(self, sha: str) -> tuple[ModelEntry, bool] | None:
        for entry in self.registry:
            record = self.imported(entry)
            if record is not None and sha in (record.get("sha256"), record.get("archive_sha256")):
                return entry, sha == record.get("archive_sha256")
        return None

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


def resolve(name: str, *, progress: ProgressFn | None = None) -> Path:
    """The verified local file of registry model ``name``, found and fetched as
    configured by the environment (see the module docstring).

    Raises:
        as :meth:`ModelStore.resolve`.
    """
    return ModelStore.from_env().resolve(name, progress=progress).path
