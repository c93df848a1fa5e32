"""Models in a device lab: they travel by name and sha256, and as bytes only when a worker lacks them.

A :class:`ModelRef` is what crosses the wire: the model's name (a registry
name, or the file name of a model file) and each file's name, sha256 and
size. An OpenVINO IR is two files, the ``.xml`` and its ``.bin``; every
other format is one. On each worker, :func:`find_model` looks for the files
in this order and checks every one against its sha256:

1. the lab cache, ``<edgepose cache>/fleet/<sha256 of the main file>/``
   (what a client shipped before; the edgepose cache is ``EDGEPOSE_CACHE``,
   else ``$XDG_CACHE_HOME/edgepose``, else ``~/.cache/edgepose``);
2. a registry name: the worker's own registry store (its model dir, its
   cache, a folder ``EDGEPOSE_MIRROR``), never downloading during a run;
3. a model file: by file name in the worker's ``EDGEPOSE_MODEL_DIR``, then in
   a folder ``EDGEPOSE_MIRROR`` (searched recursively).

A worker never uses the client's path: two machines may hold different files
at one path. When a worker lacks the model, :func:`deliver_model` ships the
bytes from the client, once per worker, up to a size limit; the worker checks
the sha256 of what it received before writing it (atomically) into its lab
cache, and refuses bytes that do not match.

Everything that runs on a worker here is a module-level function taking and
returning plain data, so that Dask pickles it by reference.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgepose._files import atomic_write, sha256_file
from edgepose.registry.catalog import HashMismatchError

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["ModelFile", "ModelRef", "DEFAULT_MAX_SHIP_MB", "describe_model", "find_model",
           "local_model_path",
           "receive_model", "deliver_model", "lab_cache_dir"]

#: The largest model (all its files) a client ships to a worker unless told otherwise.
DEFAULT_MAX_SHIP_MB = 200.0


@dataclass(frozen=True)
class ModelFile:
    """One file of a model: its name (no folder), sha256 (hex) and size in bytes."""

    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ModelRef:
    """A model as it travels to the workers.

    Attributes:
        name: the registry name, or the main file's name.
        files: the main file first (``.onnx``, ``.tflite``, ``.xml``), then
            an OpenVINO IR's ``.bin``.
        registry: whether ``name`` is a registry name.
        preset: the registry entry's card preset (a worker uses it, as
            :class:`~edgepose.model.LoadedModel` does for a name, when the
            file carries no card and no preset is given), or None.
    """

    name: str
    files: tuple[ModelFile, ...]
    registry: bool = False
    preset: str | None = None

    @property
    def key(self) -> str:
        """The lab cache folder's name: the main file's sha256."""
        return self.files[0].sha256

    @property
    def size(self) -> int:
        """Bytes of all the files."""
        return sum(f.size for f in self.files)


def _companions(path: Path) -> list[Path]:
    """The model's files: itself, and the ``.bin`` of an OpenVINO ``.xml``."""
    if path.suffix.lower() != ".xml":
        return [path]
    weights = path.with_suffix(".bin")
    if not weights.is_file():
        raise FileNotFoundError(
            f"OpenVINO model {path} has no weights file {weights.name} beside it: an IR is the "
            ".xml and its .bin, with the same name, in one folder.")
    return [path, weights]


def describe_model(model: str | os.PathLike[str], role: str = "pose") -> tuple[ModelRef, list[Path]]:
    """The :class:`ModelRef` of a model on the client, and its local files.

    Args:
        model: a model file (.onnx, .tflite, OpenVINO .xml) or a registry
            name (resolved and verified by the client's own store).
        role: "pose" or "detector", for messages.

    Returns:
        (ref, paths): the paths in the order of ``ref.files``.

    Raises:
        FileNotFoundError: as :func:`edgepose.model.locate_model`, or an
            OpenVINO ``.xml`` without its ``.bin``.
        ValueError: a named model fails its sha256 check.
    """
    from edgepose.model import locate_model

    path, entry = locate_model(model, role)
    paths = _companions(Path(path))
    files = tuple(ModelFile(p.name, sha256_file(p), p.stat().st_size) for p in paths)
    if entry is not None:
        return ModelRef(entry.name, files, registry=True, preset=entry.preset), paths
    return ModelRef(paths[0].name, files), paths


def lab_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The lab cache of this machine: ``<cache>/fleet``, ``cache`` being the
    edgepose cache (``cache_dir``, else as :class:`~edgepose.registry.ModelStore`
    finds it from the environment)."""
    from edgepose.registry import ModelStore

    store = ModelStore.from_env(**({"cache_dir": cache_dir} if cache_dir else {}))
    return store.cache_dir / "fleet"


def _matches(path: Path, file: ModelFile, verify: bool) -> bool:
    if not path.is_file() or path.stat().st_size != file.size:
        return False
    return not verify or sha256_file(path) == file.sha256


def _beside(main: Path, ref: ModelRef, verify: bool) -> Path | None:
    """``main`` when it and every companion file (same folder) match ``ref``."""
    folder = main.parent
    if all(_matches(folder / f.name, f, verify) for f in ref.files):
        return main
    return None


def _find_by_name(root: Path, name: str) -> list[Path]:
    if (root / name).is_file():
        return [root / name]
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        if name in files:
            found.append(Path(folder) / name)
    return found


def find_model(ref: ModelRef, *, verify: bool = True,
               cache_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Runs on a worker: where this machine holds the files of ``ref``.

    Args:
        ref: the model.
        verify: hash every candidate file (False: trust a lab cache or
            registry file whose size matches; a run verifies once, when it
            starts, then its tasks look again without hashing).
        cache_dir: the edgepose cache (None: from the environment).

    Returns:
        ``{"path": str, "place": "lab cache" | "registry" | "model dir" |
        "mirror"}``, or ``{"path": None, "looked": [str, ...]}`` when no
        place holds the files with the right hashes.
    """
    looked: list[str] = []
    cached = lab_cache_dir(cache_dir) / ref.key / ref.files[0].name
    if _beside(cached, ref, verify) is not None:
        return {"path": str(cached), "place": "lab cache"}
    looked.append(f"lab cache: no verified {cached}")
    if ref.registry:
        found = _from_registry(ref, cache_dir, verify, looked)
        if found is not None:
            return {"path": str(found), "place": "registry"}
    for env, place in (("EDGEPOSE_MODEL_DIR", "model dir"), ("EDGEPOSE_MIRROR", "mirror")):
        root = os.environ.get(env)
        if not root or root.startswith(("http://", "https://")) or not Path(root).is_dir():
            looked.append(f"{place}: {env} is not a folder")
            continue
        for candidate in _find_by_name(Path(root), ref.files[0].name):
            if _beside(candidate, ref, verify=True) is not None:
                return {"path": str(candidate), "place": place}
        looked.append(f"{place}: no {ref.files[0].name} with sha256 {ref.key[:12]}... in {root}")
    return {"path": None, "looked": looked}



def local_model_path(ref: ModelRef, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Runs on a worker: this device's verified copy of a model
    (:func:`find_model`: its lab cache, registry, model dir or mirror; never
    the client's path), the one lookup the lab's bench and eval share.

    Raises:
        FileNotFoundError: no verified copy here (the device joined after the
            models were delivered, or lost them), naming where it looked.
    """
    found = find_model(ref, verify=False, cache_dir=cache_dir)
    if found["path"] is None:  # e.g. a cache cleaned since the run began
        found = find_model(ref, verify=True, cache_dir=cache_dir)
    if found["path"] is None:
        raise FileNotFoundError(
            f"this device has no verified copy of model {ref.name!r} (sha256 "
            f"{ref.key[:12]}...): it joined after the models were delivered, or lost them. "
            "Looked in: " + "; ".join(found["looked"]))
    return Path(found["path"])

def _from_registry(ref: ModelRef, cache_dir, verify: bool, looked: list[str]) -> Path | None:
    from edgepose.registry import ModelStore

    store = ModelStore.from_env(offline=True, **({"cache_dir": cache_dir} if cache_dir else {}))
    try:
        entry = store.registry.get(ref.name)
    except ValueError:
        looked.append(f"registry: this worker's edgepose has no model {ref.name!r}")
        return None
    if store.expected_sha256(entry) != ref.key:
        looked.append(f"registry: {ref.name!r} is pinned to sha256 "
                      f"{store.expected_sha256(entry)} here, the client's file has {ref.key}")
        return None
    if not verify:  # the run's first look verified it: size only
        local = store.local_path(entry)
        if local is not None and _matches(local[1], ref.files[0], verify=False):
            return local[1]
        looked.append(f"registry: no copy of {ref.name!r} in the model dir or cache")
        return None
    try:
        return store.resolve(ref.name).path
    except (FileNotFoundError, ValueError) as exc:
        looked.append(f"registry: {exc}")
        return None


def receive_model(ref: ModelRef, index: int, data: bytes, *,
                  cache_dir: str | os.PathLike[str] | None = None) -> str:
    """Runs on a worker: checks shipped bytes of ``ref.files[index]`` against
    their sha256 and writes them atomically into the lab cache.

    Returns:
        the path of the written file.

    Raises:
        HashMismatchError: the bytes do not have the file's sha256 (or size);
            nothing is written.
    """
    file = ref.files[index]
    actual = hashlib.sha256(data).hexdigest()
    if actual != file.sha256 or len(data) != file.size:
        raise HashMismatchError(
            f"refused the shipped file {file.name} of model {ref.name!r}: {len(data)} bytes "
            f"with sha256 {actual}, expected {file.size} bytes with sha256 {file.sha256}. "
            "Nothing was written; the client's copy changed while it was sent, or the "
            "transfer was damaged: run again.")
    folder = lab_cache_dir(cache_dir) / ref.key
    folder.mkdir(parents=True, exist_ok=True)
    target = atomic_write(folder / file.name, data)
    if sha256_file(target) != file.sha256:  # what landed on the disk
        target.unlink(missing_ok=True)
        raise HashMismatchError(f"{target} does not have sha256 {file.sha256} after writing: "
                                "the disk of this worker lost data. It was removed.")
    return str(target)


def deliver_model(client: Client, ref: ModelRef, paths: list[Path], workers: list[str], *,
                  max_ship_mb: float = DEFAULT_MAX_SHIP_MB,
                  cache_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Makes sure every worker holds ``ref``: each looks for it
    (:func:`find_model`, hashing), and those that lack it get the client's
    files, once.

    Args:
        client: a connected ``distributed.Client``.
        ref, paths: from :func:`describe_model`.
        workers: the workers' addresses.
        max_ship_mb: the largest model (all its files, MB = 10^6 bytes)
            shipped; a bigger one must already be on the workers.
        cache_dir: the workers' edgepose cache (None: their environment's).

    Returns:
        ``{worker address: how it has the model}``: a place of
        :func:`find_model`, or ``"shipped"``.

    Raises:
        ValueError: a worker lacks the model and it is over ``max_ship_mb``
            (the message names the workers and where they looked), or the
            client's files changed since :func:`describe_model`.
        HashMismatchError: a worker refused the shipped bytes.
    """
    looks = {w: client.submit(find_model, ref, verify=True, cache_dir=cache_dir, workers=[w],
                              allow_other_workers=False, pure=False,
                              key=f"edgepose-find-model-{ref.key[:12]}-{_uid()}")
             for w in workers}
    found = {w: f.result() for w, f in looks.items()}
    how = {w: r["place"] for w, r in found.items() if r["path"] is not None}
    missing = [w for w in workers if w not in how]
    if not missing:
        return how
    if ref.size > max_ship_mb * 1e6:
        where = "; ".join(found[missing[0]]["looked"])
        raise ValueError(
            f"{len(missing)} worker(s) ({', '.join(missing)}) lack model {ref.name!r}, which is "
            f"{ref.size / 1e6:.1f} MB, over the shipping limit of {max_ship_mb:g} MB "
            f"(--max-ship-mb). Put the file into each worker's EDGEPOSE_MODEL_DIR or "
            f"EDGEPOSE_MIRROR folder, or raise --max-ship-mb. The first worker looked in: {where}.")
    for i, (file, path) in enumerate(zip(ref.files, paths)):
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != file.sha256:
            raise ValueError(f"{path} changed since it was hashed (sha256 {file.sha256}): "
                             "run again once it is written completely.")
        remotes = {w: client.scatter([data], workers=[w], hash=False)[0] for w in missing}
        try:  # the workers check and write their copies at the same time
            client.gather([client.submit(receive_model, ref, i, remotes[w], cache_dir=cache_dir,
                                         workers=[w], allow_other_workers=False, pure=False,
                                         key=f"edgepose-receive-model-{file.sha256[:12]}-{_uid()}")
                           for w in missing])
        finally:
            for remote in remotes.values():
                remote.release()
    how.update({w: "shipped" for w in missing})
    return how


def _uid() -> str:
    import uuid

    return uuid.uuid4().hex[:8]
