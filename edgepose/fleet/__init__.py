"""A device lab on Dask distributed: ``edgepose bench`` and ``edgepose eval``
across many devices at once (``pip install 'edgepose[fleet]'``).

::

    dask scheduler                                                  # on a laptop
    dask worker tcp://laptop:8786 --nthreads 1 --resources device=1  # on each device
    edgepose bench movenet-lightning --cluster tcp://laptop:8786 --json lab.json --plot lab.png

Modules: :mod:`.cluster` (connecting with the security policy, the lab's
workers, their hardware probes, the version check), :mod:`.flags` (the
``--cluster`` flags of ``bench`` and ``eval``, :func:`~.flags.open_lab`),
:mod:`.models` (models by name and sha256, shipped when a device lacks
them), :mod:`.bench` and :mod:`.bench_cli` (every configuration on every
device), :mod:`.report` and :mod:`.plot` (the bench's merged report: text,
JSON, markdown, PNG), :mod:`.eval` (``edgepose eval`` sharded over the lab).

Importing this package imports nothing of Dask: ``distributed`` is imported
by the functions that talk to a cluster, so a command run without
``--cluster`` never loads it. Everything that runs on a worker is a plain
module-level function of this package taking and returning plain data
(paths, bytes, dicts, arrays): workers have edgepose installed and import
it; no open runtime crosses the wire.
"""
from __future__ import annotations

__all__: list[str] = []
