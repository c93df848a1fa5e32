"""edgepose-bench: what a frame costs on this machine, per stage, honestly.

``python -m edgepose.bench MODEL --detector D --image PATH`` (or the
``edgepose-bench`` command) times decode image, detector, crop/preprocess,
inference, postprocess and total per model x backend x thread count on a real
image, with a header that identifies the machine. The parts:

* :mod:`edgepose.bench.stats`: percentiles, summaries, drift;
* :mod:`edgepose.bench.probe`: CPU, board (Raspberry Pi, Jetson), OS,
  runtimes, governor, temperature, read from a root folder;
* :mod:`edgepose.bench.graph`: parameters and GFLOPs counted from the graph;
* :mod:`edgepose.bench.runner`: one configuration, loaded, warmed up, timed;
* :mod:`edgepose.bench.report`: the JSON document, text and markdown;
* :mod:`edgepose.bench.cli`: the command.

Importing this package imports no runtime.
"""
from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """The ``edgepose-bench`` command (see :mod:`edgepose.bench.cli`)."""
    from edgepose.bench.cli import main as _main

    return _main(argv)
