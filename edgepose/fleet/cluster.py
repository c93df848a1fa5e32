"""Connecting to a device lab, and what the lab is: its workers, their
hardware and their software versions.

**Security policy** (:func:`connect`). Dask's wire protocol carries pickled
functions that every worker runs: whoever can reach the scheduler can run
code on every device. So a scheduler is reached without TLS only at a local
address: ``inproc://``, ``localhost``, a loopback IP (``127.0.0.0/8``,
``::1``) or a :class:`distributed.LocalCluster` object. Any other address
needs ``tls://`` and a :class:`distributed.Security` with the lab's CA, this
client's certificate and its key (the CLI's ``--tls-ca-file``,
``--tls-cert``, ``--tls-key``), unless the caller says ``insecure=True``
(``--insecure``), which emits an :class:`InsecureClusterWarning` naming the
risk. Host names are not resolved: ``tcp://laptop:8786`` is remote even if
``laptop`` is this machine (the scheduler then listens on a network).

**Versions** (:func:`check_versions`). Before any work, every worker reports
its versions (:func:`worker_versions`). Two kinds are compared:

* the *code* the client and the workers exchange: edgepose, Python
  (major.minor: pickles cross patch releases), NumPy and distributed, each
  compared with the client's own;
* the *runtimes* (onnxruntime, ai-edge-litert, OpenVINO, ...), compared
  among the workers that have them (the most common version is the
  reference), since results of different runtime builds are different
  measurements; a runtime the client lacks does not matter, and a worker
  without a runtime is not a mismatch (its configurations on that runtime
  fail with a message naming the extra to install).

A mismatch raises :class:`VersionMismatchError` listing each worker's
differences, unless ``allow_mixed=True`` (``--allow-mixed-versions``): the
report then records them.

**Workers** (:func:`lab_workers`). A worker is named by its Dask name
(``dask worker --name pi5``; Dask's default is the address); ``devices``
selects by name or address. :func:`probe_workers` runs
:func:`edgepose.bench.probe.probe_machine` on each.
"""
from __future__ import annotations

import ipaddress
import platform
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily: a run without --cluster never loads Dask
    import distributed

__all__ = ["DEFAULT_TIMEOUT_S", "InsecureClusterWarning", "VersionMismatchError",
           "VersionReport", "LabWorker", "is_local_address", "security_from_files", "connect",
           "local_versions", "worker_versions", "compare_versions", "check_versions",
           "lab_workers", "scheduler_workers", "probe_workers", "fleet_import_error"]

#: Seconds :func:`connect` waits for the scheduler.
DEFAULT_TIMEOUT_S = 10.0

#: The code the client and the workers exchange: compared with the client's.
CODE_PACKAGES = ("edgepose", "python", "numpy", "distributed")

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class InsecureClusterWarning(UserWarning):
    """A scheduler at a non-local address reached without TLS (``insecure=True``)."""


class VersionMismatchError(RuntimeError):
    """The workers run other versions of edgepose, Python, NumPy, Dask or a
    runtime than the client or each other (see :func:`check_versions`)."""

    def __init__(self, report: VersionReport) -> None:
        super().__init__(report.describe() + " Install the same versions on every device "
                         "(pip install 'edgepose[fleet]==...' and the same runtime wheels), or "
                         "pass --allow-mixed-versions (allow_mixed=True) to run anyway and have "
                         "the report list the differences.")
        self.report = report


def fleet_import_error() -> ImportError:
    """The error raised when Dask is not installed."""
    return ImportError("The device lab (--cluster) needs Dask distributed and matplotlib: "
                       "pip install 'edgepose[fleet]'.")


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise fleet_import_error() from None
    return distributed


# --- addresses and security ---------------------------------------------------------

def _split_address(address: str) -> tuple[str, str]:
    """``(scheme, host)`` of a Dask address (``tcp`` when it has no scheme)."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if rest.startswith("["):  # [::1]:8786
        host = rest[1:].partition("]")[0]
    elif rest.count(":") > 1:  # a bare IPv6 address without a port
        host = rest
    else:
        host = rest.partition(":")[0]
    return scheme.lower(), host.rstrip("/")


def is_local_address(address: str) -> bool:
    """Whether ``address`` reaches a scheduler on this machine only:
    ``inproc://...``, or a host that is ``localhost`` or a loopback IP
    literal (names are not resolved)."""
    scheme, host = _split_address(str(address))
    if scheme == "inproc":
        return True
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def security_from_files(ca_file: str | Path | None, cert: str | Path | None,
                        key: str | Path | None) -> distributed.Security | None:
    """A :class:`distributed.Security` requiring TLS, from the lab's CA
    certificate, this client's certificate and its private key (PEM files).

    Args:
        ca_file, cert, key: the three files (``--tls-ca-file``,
            ``--tls-cert``, ``--tls-key``); all None: no TLS (returns None).
            ``key`` may be None when ``cert`` holds the key too.

    Raises:
        ValueError: only some of them given, or a file that does not exist.
        ImportError: Dask is not installed.
    """
    given = {"--tls-ca-file": ca_file, "--tls-cert": cert, "--tls-key": key}
    if all(v is None for v in given.values()):
        return None
    if ca_file is None or cert is None:
        missing = [flag for flag, v in given.items() if v is None and flag != "--tls-key"]
        raise ValueError(f"TLS needs the lab's CA certificate and this client's certificate: "
                         f"got {', '.join(f for f, v in given.items() if v is not None)} "
                         f"without {', '.join(missing)}. Pass --tls-ca-file CA.pem "
                         "--tls-cert CLIENT.pem --tls-key CLIENT.key (the key may be inside "
                         "CLIENT.pem).")
    for flag, value in given.items():
        if value is not None and not Path(value).is_file():
            raise ValueError(f"{flag} {value} does not exist: pass a PEM file.")
    distributed = _import_distributed()
    return distributed.Security(tls_ca_file=str(ca_file), tls_client_cert=str(cert),
                                tls_client_key=None if key is None else str(key),
                                require_encryption=True)


def _check_policy(address: str, security: Any, insecure: bool) -> None:
    """Refuses a non-local scheduler without TLS (see the module docstring)."""
    scheme, _ = _split_address(address)
    if is_local_address(address):
        return
    tls = scheme == "tls" and security is not None
    if tls:
        return
    if insecure:
        warnings.warn(
            f"Connecting to the scheduler at {address} without TLS (--insecure): anyone who "
            "can reach that scheduler can run any code on every device of the lab (Dask "
            "sends pickled functions). Use only on a network you trust, or use tls:// with "
            "--tls-ca-file/--tls-cert/--tls-key.", InsecureClusterWarning, stacklevel=3)
        return
    if scheme == "tls":
        got = "tls:// without certificates"
    elif security is not None:
        got = f"{scheme}:// (certificates given, but the address is not tls://)"
    else:
        got = f"{scheme}:// without TLS"
    raise ValueError(
        f"Refusing the scheduler at {address}: it is not a local address (localhost, "
        f"127.0.0.1, ::1, inproc://) and was given {got}. Dask runs pickled code on every "
        "worker, so an open scheduler is remote code execution on every device. Start the "
        "scheduler and workers with TLS and connect with tls://HOST:PORT --tls-ca-file CA.pem "
        "--tls-cert CLIENT.pem --tls-key CLIENT.key, or pass --insecure on a network you "
        "trust.")


def connect(address: str | Any, *, security: distributed.Security | None = None,
            insecure: bool = False, timeout: float = DEFAULT_TIMEOUT_S) -> distributed.Client:
    """A Dask client of the lab's scheduler, after the security policy.

    Args:
        address: ``tcp://HOST:PORT``, ``tls://HOST:PORT``, ``inproc://...``,
            or a :class:`distributed.LocalCluster` (or any cluster object
            with a ``scheduler_address``: it runs on this machine).
        security: TLS settings (:func:`security_from_files`); a cluster
            object's own are used when None.
        insecure: allow a non-local address without TLS, with an
            :class:`InsecureClusterWarning`.
        timeout: seconds to wait for the scheduler.

    Returns:
        a :class:`distributed.Client` (not set as Dask's default); close it
        when done (it is a context manager).

    Raises:
        ValueError: a non-local address without TLS and not ``insecure``.
        ConnectionError: the scheduler does not answer within ``timeout``.
        ImportError: Dask is not installed.
    """
    distributed = _import_distributed()
    if hasattr(address, "scheduler_address"):
        cluster = address
        security = security if security is not None else getattr(cluster, "security", None)
        target: Any = cluster
        shown = cluster.scheduler_address
    else:
        if not isinstance(address, str) or not address.strip():
            raise ValueError(f"address must be a scheduler address such as tcp://HOST:8786, "
                             f"got {address!r}.")
        target = shown = address.strip()
        _check_policy(shown, security, insecure)
    try:
        return distributed.Client(target, security=security, timeout=timeout,
                                  set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ConnectionError(
            f"No Dask scheduler answered at {shown} within {timeout:g} s ({exc}). Start one "
            "with `dask scheduler` (or `dask scheduler --host 127.0.0.1` for this machine "
            "only) and check the address and port.") from None


# --- versions -----------------------------------------------------------------------

def local_versions() -> dict[str, Any]:
    """This process's versions: ``{"edgepose", "python", "numpy",
    "distributed", "runtimes": {package: version}}`` (package metadata;
    nothing is imported but edgepose)."""
    import edgepose
    from edgepose.bench.probe import runtime_versions
    from edgepose.versions import installed_version

    runtimes = runtime_versions()
    return {"edgepose": edgepose.__version__, "python": platform.python_version(),
            "numpy": runtimes.pop("numpy", None),
            "distributed": installed_version("distributed"), "runtimes": runtimes}


def worker_versions() -> dict[str, Any]:
    """The versions of the worker it runs on (:func:`local_versions`); a task."""
    return local_versions()


def _code_version(package: str, version: str | None) -> str | None:
    if package == "python" and version is not None:
        return ".".join(version.split(".")[:2])
    return version


@dataclass(frozen=True)
class VersionReport:
    """The versions of a lab.

    Attributes:
        client: the client's :func:`local_versions`.
        workers: worker name -> its versions.
        mismatches: worker name -> ``{package: {"expected", "got"}}``; only
            workers with a difference.
    """

    client: dict[str, Any]
    workers: dict[str, dict[str, Any]]
    mismatches: dict[str, dict[str, dict[str, str | None]]] = field(default_factory=dict)

    @property
    def mixed(self) -> bool:
        """Whether any worker differs."""
        return bool(self.mismatches)

    def describe(self) -> str:
        """One line per worker with differences."""
        if not self.mismatches:
            return f"All {len(self.workers)} workers run the same versions."
        parts = []
        for name, diffs in self.mismatches.items():
            items = ", ".join(f"{pkg} {d['got'] or 'missing'} (expected {d['expected']})"
                              for pkg, d in diffs.items())
            parts.append(f"{name}: {items}")
        return (f"Versions differ on {len(self.mismatches)} of {len(self.workers)} workers: "
                + "; ".join(parts) + ".")

    def to_dict(self) -> dict[str, Any]:
        return {"client": self.client, "workers": self.workers, "mismatches": self.mismatches}


def compare_versions(client: dict[str, Any],
                     workers: dict[str, dict[str, Any]]) -> VersionReport:
    """Compares the versions of the workers (see the module docstring).

    Args:
        client: the client's :func:`local_versions`.
        workers: worker name -> its :func:`worker_versions`.

    Returns:
        the report, with ``mismatches`` filled.
    """
    mismatches: dict[str, dict[str, dict[str, str | None]]] = {}
    for name, theirs in workers.items():
        for pkg in CODE_PACKAGES:
            want, got = client.get(pkg), theirs.get(pkg)
            if _code_version(pkg, want) != _code_version(pkg, got):
                mismatches.setdefault(name, {})[pkg] = {"expected": want, "got": got}
    packages = sorted({p for v in workers.values() for p in v.get("runtimes", {})})
    for pkg in packages:
        seen = Counter(v["runtimes"][pkg] for v in workers.values()
                       if pkg in v.get("runtimes", {}))
        reference = seen.most_common(1)[0][0]
        for name, theirs in workers.items():
            got = theirs.get("runtimes", {}).get(pkg)
            if got is not None and got != reference:
                mismatches.setdefault(name, {})[pkg] = {"expected": reference, "got": got}
    return VersionReport(client=client, workers=dict(workers), mismatches=mismatches)


def check_versions(client: distributed.Client, workers: list[LabWorker] | None = None, *,
                   allow_mixed: bool = False) -> VersionReport:
    """Asks every worker its versions and compares them before any work.

    Args:
        client: a client of the lab.
        workers: the workers to check (default: all of :func:`lab_workers`).
        allow_mixed: return the report instead of raising on a mismatch.

    Returns:
        the :class:`VersionReport`.

    Raises:
        VersionMismatchError: a mismatch, and not ``allow_mixed``.
    """
    workers = lab_workers(client) if workers is None else workers
    answers = client.run(worker_versions, workers=[w.address for w in workers])
    by_name = {w.name: answers[w.address] for w in workers if w.address in answers}
    report = compare_versions(local_versions(), by_name)
    if report.mixed and not allow_mixed:
        raise VersionMismatchError(report)
    return report


# --- workers ------------------------------------------------------------------------

def scheduler_workers(client: distributed.Client) -> dict[str, dict[str, Any]]:
    """Address -> the scheduler's record of every worker now present."""
    try:
        return client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # distributed before 2025.2 lists every worker anyway
        return client.scheduler_info()["workers"]


@dataclass(frozen=True)
class LabWorker:
    """A device of the lab: a Dask worker.

    Attributes:
        name: its Dask name (``dask worker --name``), as text.
        address: its address at the scheduler.
        resources: its Dask resources (``--resources device=1``).
        nthreads: its threads.
    """

    name: str
    address: str
    resources: dict[str, float]
    nthreads: int

    @property
    def is_device(self) -> bool:
        """Whether it declares the ``device`` resource (one task at a time)."""
        return self.resources.get("device", 0) >= 1


def lab_workers(client: distributed.Client,
                devices: list[str] | None = None) -> list[LabWorker]:
    """The workers of the lab, sorted by name, or those named in ``devices``.

    Args:
        client: a client of the lab.
        devices: worker names or addresses (``--devices``); None: all.

    Returns:
        the workers, in ``devices``' order when given.

    Raises:
        RuntimeError: the scheduler has no worker.
        ValueError: a name in ``devices`` that no worker has.
    """
    info = scheduler_workers(client)
    workers = sorted((LabWorker(name=str(w.get("name", addr)), address=addr,
                                resources=dict(w.get("resources") or {}),
                                nthreads=int(w.get("nthreads", 1)))
                      for addr, w in info.items()), key=lambda w: w.name)
    if not workers:
        raise RuntimeError(f"The scheduler at {client.scheduler.address} has no worker: start "
                           "one on each device with `dask worker SCHEDULER --nthreads 1 "
                           "--resources device=1 --name NAME`.")
    if devices is None:
        return workers
    by_key = {w.name: w for w in workers} | {w.address: w for w in workers}
    unknown = [d for d in devices if d not in by_key]
    if unknown:
        raise ValueError(f"--devices names {', '.join(map(repr, unknown))}, which no worker "
                         f"of the lab is; the workers are: "
                         f"{', '.join(w.name for w in workers)}.")
    chosen: list[LabWorker] = []
    for d in devices:
        if by_key[d] not in chosen:
            chosen.append(by_key[d])
    return chosen


def probe_workers(client: distributed.Client,
                  workers: list[LabWorker]) -> dict[str, dict[str, Any]]:
    """Each worker's hardware (:func:`edgepose.bench.probe.probe_machine`
    run on it): worker name -> probe."""
    from edgepose.bench.probe import probe_machine

    answers = client.run(probe_machine, workers=[w.address for w in workers])
    return {w.name: answers[w.address] for w in workers if w.address in answers}
