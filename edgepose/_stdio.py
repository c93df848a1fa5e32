"""Keeping stdout clean: everything written to it, by Python or by C/C++ code, sent elsewhere."""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TextIO

__all__ = ["stdout_redirected"]


@contextlib.contextmanager
def stdout_redirected(python_target: TextIO) -> Iterator[TextIO]:
    """For the duration: Python's ``sys.stdout`` writes to ``python_target``,
    and file descriptor 1 (what C/C++ libraries such as onnxruntime, NNCF,
    OpenVINO or torch print) points at stderr; both are restored afterwards.

    Without a file descriptor 1 (a service), only the Python-level redirect
    applies. Yields ``python_target``.
    """
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    try:
        saved: int | None = os.dup(1)
    except OSError:
        saved = None
    if saved is not None:
        try:
            os.dup2(2, 1)
        except OSError:
            os.close(saved)
            saved = None
    try:
        with contextlib.redirect_stdout(python_target):
            yield python_target
    finally:
        if saved is not None:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 1)
            os.close(saved)
