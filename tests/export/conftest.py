"""Export-stage test configuration: the ``slow`` marker.

Tests marked ``slow`` (training, full-size conversions) run in CI; skip them
locally with ``pytest -m "not slow"``.
"""
from __future__ import annotations


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "slow: slower than ~10 s (training, full-size conversions); "
                   "deselect with -m 'not slow'")
