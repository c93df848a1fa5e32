"""The device lab of the fleet tests: one real :class:`distributed.LocalCluster`
per test module, two worker processes with one thread each and the
``device=1`` resource, as ``dask worker --nthreads 1 --resources device=1``
starts them on real devices. Its workers are named ``"0"`` and ``"1"``.

A test that closes or kills a worker must not use these two (the other
tests share them): start its own worker against ``lab_cluster.scheduler_address``
(:func:`start_worker`).

Per module, not per session: the scheduler and nannies of a LocalCluster run on
threads of this process, and a lab left running would keep working beside the
rest of the suite; CPython 3.11's AST constructor keeps its recursion depth per
interpreter (cpython#106905), so a Dask thread parsing a config value while
pytest parses a source file in the main thread failed a CI run with
"SystemError: AST constructor recursion depth mismatch". Each module's lab is
closed before the next module runs.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

distributed = pytest.importorskip("distributed", reason="the fleet extra: pip install "
                                  "'edgepose[fleet]'")


@pytest.fixture(scope="session")
def worker_cache(tmp_path_factory):
    """The workers' edgepose cache (``EDGEPOSE_CACHE``): models shipped to
    them land here, not in this machine's own cache."""
    return tmp_path_factory.mktemp("worker-cache")


@pytest.fixture(scope="module")
def lab_cluster(worker_cache):
    """A LocalCluster: 2 worker processes, 1 thread each, resources device=1,
    ``EDGEPOSE_CACHE`` set to :func:`worker_cache`."""
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, resources={"device": 1},
        dashboard_address=":0", host="127.0.0.1", silence_logs=40,
        env={"EDGEPOSE_CACHE": str(worker_cache)})
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def lab_client(lab_cluster):
    """A client of :func:`lab_cluster`."""
    client = distributed.Client(lab_cluster, set_as_default=False)
    client.wait_for_workers(2, timeout=120)
    try:
        yield client
    finally:
        client.close()


def start_worker(address: str, name: str, *, timeout_s: float = 120.0,
                 client=None, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Starts ``dask worker ADDRESS --name NAME --nthreads 1 --resources device=1
    --no-nanny`` as a process of its own (kill it to make the device leave),
    with ``env`` added to this process's environment, and waits until the
    scheduler lists it (with ``client``)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--name", name,
         "--nthreads", "1", "--resources", "device=1", "--no-nanny", "--no-dashboard",
         "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ | (env or {}))
    if client is not None:
        deadline = time.monotonic() + timeout_s
        while not any(str(w.get("name")) == name
                      for w in client.scheduler_info(n_workers=-1)["workers"].values()):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the worker {name} did not join {address}")
            time.sleep(0.2)
    return proc
