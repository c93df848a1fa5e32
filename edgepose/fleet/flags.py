"""The device-lab flags of ``edgepose bench`` and ``edgepose eval``, defined
once: ``--cluster``, ``--devices``, ``--insecure``, ``--tls-ca-file``,
``--tls-cert``, ``--tls-key``, ``--allow-mixed-versions``; and
:func:`open_lab`, which turns them into a connected, checked lab.

This module imports nothing of Dask: a command run without ``--cluster``
never loads it.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgepose._cli import UsageError

if TYPE_CHECKING:
    import distributed

    from edgepose.fleet.cluster import LabWorker, VersionReport

__all__ = ["add_cluster_flags", "check_cluster_flags", "add_lab_bench_flags",
           "check_lab_bench_flags", "Lab", "open_lab"]

#: The flags that mean nothing without --cluster (dest -> flag).
_LAB_ONLY = {"devices": "--devices", "insecure": "--insecure", "tls_ca_file": "--tls-ca-file",
             "tls_cert": "--tls-cert", "tls_key": "--tls-key",
             "allow_mixed_versions": "--allow-mixed-versions"}


def _names(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected worker names, comma-separated, got {text!r}")
    return items


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    """Adds the device-lab flags to a command's parser (one argument group)."""
    g = parser.add_argument_group(
        "device lab (pip install 'edgepose[fleet]')",
        "run on the workers of a Dask scheduler instead of this machine: `dask scheduler` "
        "on one machine, `dask worker tcp://HOST:8786 --nthreads 1 --resources device=1 "
        "--name NAME` on each device")
    g.add_argument("--cluster", metavar="ADDR", default=None,
                   help="the Dask scheduler, e.g. tcp://127.0.0.1:8786; a non-local address "
                        "needs tls:// and --tls-* (or --insecure)")
    g.add_argument("--devices", type=_names, default=None, metavar="NAME[,NAME...]",
                   help="only these workers (Dask worker names or addresses; default: all)")
    g.add_argument("--insecure", action="store_true",
                   help="allow a non-local scheduler without TLS: anyone who reaches it can "
                        "run code on every device")
    g.add_argument("--tls-ca-file", type=Path, default=None, metavar="PEM",
                   help="the lab's CA certificate (tls:// schedulers)")
    g.add_argument("--tls-cert", type=Path, default=None, metavar="PEM",
                   help="this client's certificate")
    g.add_argument("--tls-key", type=Path, default=None, metavar="PEM",
                   help="this client's private key (if not inside --tls-cert)")
    g.add_argument("--allow-mixed-versions", action="store_true",
                   help="run even when workers have other versions of edgepose, Python, "
                        "NumPy, Dask or a runtime (the report lists them)")


def check_cluster_flags(args: argparse.Namespace) -> None:
    """Refuses lab flags given without ``--cluster``.

    Raises:
        UsageError: naming the flag.
    """
    if args.cluster is not None:
        return
    for dest, flag in _LAB_ONLY.items():
        if getattr(args, dest, None):
            raise UsageError(f"{flag} is a device-lab option and needs --cluster ADDR (the "
                             "Dask scheduler): add --cluster, or drop it.")


@dataclass
class Lab:
    """A connected lab: the client, the chosen workers, their versions.

    Attributes:
        client: the Dask client (closed by :meth:`close`).
        address: the scheduler's address.
        workers: the workers chosen by ``--devices`` (all by default).
        versions: their :class:`~edgepose.fleet.cluster.VersionReport`.
    """

    client: distributed.Client
    address: str
    workers: list[LabWorker]
    versions: VersionReport

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_lab(args: argparse.Namespace, *, quiet: bool = False) -> Lab:
    """Connects to ``args.cluster`` with the security flags, picks the
    ``--devices`` and checks their versions, before any work.

    Args:
        args: parsed with :func:`add_cluster_flags`.
        quiet: no notes on stderr (the ``--insecure`` warning and version
            differences allowed by ``--allow-mixed-versions`` are printed
            otherwise).

    Returns:
        the :class:`Lab`.

    Raises:
        UsageError: bad TLS files, a refused address, unknown ``--devices``.
        ConnectionError: no scheduler answers.
        VersionMismatchError: versions differ without ``--allow-mixed-versions``.
        ImportError: Dask is not installed.
    """
    from edgepose.fleet import cluster as fc

    try:
        security = fc.security_from_files(args.tls_ca_file, args.tls_cert, args.tls_key)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", fc.InsecureClusterWarning)
        try:
            client = fc.connect(args.cluster, security=security, insecure=args.insecure)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    for w in caught:
        if issubclass(w.category, fc.InsecureClusterWarning):
            print(f"warning: {w.message}", file=sys.stderr)
    try:
        try:
            workers = fc.lab_workers(client, args.devices)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        versions = fc.check_versions(client, workers, allow_mixed=args.allow_mixed_versions)
        if versions.mixed and not quiet:
            print(f"warning (--allow-mixed-versions): {versions.describe()}", file=sys.stderr)
    except BaseException:
        client.close()
        raise
    return Lab(client=client, address=str(client.scheduler.address), workers=workers,
               versions=versions)


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected AP points between 0 and 1, got {text!r}")
    return value


#: The bench's lab-only flags (dest -> flag), besides those of add_cluster_flags.
_BENCH_LAB_ONLY = {"plot": "--plot", "annotations": "--annotations", "images": "--images"}


def add_lab_bench_flags(parser: argparse.ArgumentParser) -> None:
    """Adds the flags only ``edgepose bench --cluster`` takes: ``--plot``,
    ``--ap-tolerance``, ``--annotations``, ``--images``."""
    g = parser.add_argument_group("device lab report (with --cluster)")
    g.add_argument("--plot", type=Path, default=None, metavar="PNG",
                   help="draw the lab: latency against AP per device (or latency per "
                        "configuration without AP), each device's choice marked")
    g.add_argument("--annotations", type=Path, default=None, metavar="JSON",
                   help="COCO keypoint annotations: each device also measures each "
                        "configuration's OKS AP on them (sent to every device; keep it small)")
    g.add_argument("--images", type=Path, default=None, metavar="DIR",
                   help="the folder of the --annotations images")
    g.add_argument("--ap-tolerance", type=_tolerance, default=None, metavar="AP",
                   help="the choice per device: its fastest configuration whose AP is within "
                        "AP points of its best (default 0.02)")


def check_lab_bench_flags(args: argparse.Namespace) -> None:
    """Refuses the bench's lab flags without ``--cluster``, and half of
    ``--annotations``/``--images``.

    Raises:
        UsageError: naming the flag.
    """
    check_cluster_flags(args)
    if args.cluster is None:
        given = [flag for dest, flag in _BENCH_LAB_ONLY.items() if getattr(args, dest, None)]
        if args.ap_tolerance is not None:
            given.append("--ap-tolerance")
        if given:
            raise UsageError(f"{given[0]} is an option of the device lab and needs --cluster "
                             "ADDR (the Dask scheduler): add --cluster, or drop it.")
        return
    if (args.annotations is None) != (args.images is None):
        have, miss = (("--annotations", "--images") if args.images is None
                      else ("--images", "--annotations"))
        raise UsageError(f"{have} needs {miss} too: the AP takes the annotation file and the "
                         "folder of its images.")
    if args.ap_tolerance is not None and args.annotations is None:
        raise UsageError("--ap-tolerance chooses among configurations by AP, which needs "
                         "--annotations and --images: add them, or drop --ap-tolerance.")
    if getattr(args, "video", None) is not None:
        raise UsageError("--video does not run on a device lab: drop --video or --cluster.")
