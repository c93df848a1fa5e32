"""Installed versions of distributions, from package metadata (nothing is imported).

One lookup for every place that records versions: benchmark JSON
(:func:`edgepose.bench.probe.runtime_versions`), the export stage's model
cards (``provenance["tools"]``) and the benchmark scripts.
"""
from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

__all__ = ["installed_version", "installed_versions"]


def installed_version(name: str) -> str | None:
    """The installed version of the distribution ``name`` (e.g. ``"onnxruntime"``,
    ``"ai-edge-litert"``), or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def installed_versions(names: Iterable[str]) -> dict[str, str]:
    """``{name: version}`` of the installed ones among ``names``, in their order
    (the absent ones left out)."""
    versions = {}
    for name in names:
        version = installed_version(name)
        if version is not None:
            versions[name] = version
    return versions
