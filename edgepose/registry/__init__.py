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

The package: :mod:`~edgepose.registry.catalog` (entries, ``models.json``),
:mod:`~edgepose.registry.store` (:class:`ModelStore`: the cache, its
verification records, imports) and :mod:`~edgepose.registry.fetch` (mirror
and upstream downloads); every public name is importable from here.
"""
from __future__ import annotations

from edgepose.registry.catalog import (CACHE_ENV, MIRROR_ENV, MODEL_DIR_ENV, OFFLINE_ENV,
                                       ArchiveSpec, HashMismatchError, ModelEntry,
                                       ModelNotFoundError, ModelRegistry, ResolvedModel,
                                       UnverifiedModelError, default_registry, looks_like_name)
from edgepose.registry.fetch import ProgressFn
from edgepose.registry.store import CacheCheck, ModelStore, resolve

__all__ = [
    "ArchiveSpec", "ModelEntry", "ModelRegistry", "ModelStore", "ResolvedModel", "CacheCheck",
    "ModelNotFoundError", "HashMismatchError", "UnverifiedModelError",
    "default_registry", "resolve", "looks_like_name",
    "CACHE_ENV", "MODEL_DIR_ENV", "MIRROR_ENV", "OFFLINE_ENV", "ProgressFn",
]
