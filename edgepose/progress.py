"""One progress bar on stderr for every long task: frames, images, downloads, benchmark runs.

Used by ``edgepose run`` and ``edgepose models``, ``edgepose bench``, the
export stage's calibration and the registry's downloads (a
:class:`ProgressBar` is a registry ``progress=`` callback)::

    bar = ProgressBar("calibration images", total=len(files))
    for f in files:
        ...
        bar.update()            # label [#########.....................] 10/30 4.2 fps
    bar.close()

    bar = ProgressBar("fetching movenet-lightning")
    store.resolve("movenet-lightning", progress=bar)   # ... [####...] 1.2/2.9 MB 3.1 MB/s
    bar.close()

On a terminal the line is redrawn in place, at most ten times a second (and
whenever the work is complete); elsewhere (a log file, a pipe) nothing is
drawn until :meth:`ProgressBar.close`, which writes the final line once.
Library code draws nothing unless asked: callers pass ``enabled``.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable

__all__ = ["ProgressBar", "meter"]

#: Characters in a bar.
WIDTH = 30


def meter(fraction: float, width: int = WIDTH) -> str:
    """``"#####....."``: ``fraction`` (clipped to [0, 1]) of ``width`` characters filled."""
    n = max(0, min(width, int(width * fraction))) if fraction == fraction else 0
    return "#" * n + "." * (width - n)


class ProgressBar:
    """A one-line progress bar on stderr.

    Feed it in whichever way the work counts:

    * :meth:`update`: one more item (frames, images):
      ``label [###...] 3/10 2.5 fps``, or ``label 3 frames 2.5 fps`` without
      a total;
    * call it as ``bar(done, total)`` with bytes (the registry's ``progress=``
      callback): ``label [###...] 1.2/2.9 MB 3.1 MB/s``;
    * :meth:`show`: a line of the caller's own (``edgepose bench``'s), with
      :func:`meter` for its bar.

    Args:
        label: what the bar is about.
        total: how many items :meth:`update` counts to (None: unknown).
        enabled: draw at all (False: count silently).
        live: redraw in place (default: when stderr is a terminal); else only
            :meth:`close` writes, the final line.
        unit: what :meth:`update` counts (``"frames"`` gives ``fps``).

    Attributes:
        count: the items counted by :meth:`update`.
    """

    def __init__(self, label: str = "", *, total: int | None = None, enabled: bool = True,
                 live: bool | None = None, unit: str = "frames") -> None:
        self.label, self.total, self.enabled, self.unit = label, total, enabled, unit
        self.live = sys.stderr.isatty() if live is None else bool(live)
        self.count = 0
        self._bytes: tuple[int, int | None] = (0, None)
        self._start = time.perf_counter()
        self._line: Callable[[], str] | None = None
        self._last = 0.0
        self._width = 0          # characters on screen (0: nothing drawn)

    # --- the three ways to feed it ------------------------------------------------------

    def update(self, n: int = 1) -> None:
        """Counts ``n`` more items."""
        self.count += n
        self._line = self._items_line
        self._draw(self.total is not None and self.count >= self.total)

    def __call__(self, done: int, total: int | None) -> None:
        """Bytes done of ``total`` (None: unknown): a registry ``progress=`` callback."""
        self._bytes = (int(done), total)
        self._line = self._bytes_line
        self._draw(total is not None and done >= total)

    def show(self, text: str, *, force: bool = False) -> None:
        """Draws ``text`` as the line (``force``: even within a tenth of a second)."""
        self._line = lambda: text
        self._draw(force)

    # --- the lines ----------------------------------------------------------------------

    def _rate(self, amount: float) -> float:
        return amount / max(time.perf_counter() - self._start, 1e-9)

    def _items_line(self) -> str:
        rate = self._rate(self.count)
        per = "fps" if self.unit == "frames" else f"{self.unit}/s"
        if self.total:
            return (f"{self.label} [{meter(self.count / self.total)}] {self.count}/{self.total} "
                    f"{rate:5.1f} {per}")
        return f"{self.label} {self.count} {self.unit} {rate:5.1f} {per}"

    def _bytes_line(self) -> str:
        done, total = self._bytes
        mb, rate = done / 1e6, self._rate(done / 1e6)
        if total:
            return (f"{self.label} [{meter(min(done, total) / total)}] {mb:.1f}/{total / 1e6:.1f}"
                    f" MB {rate:.1f} MB/s")
        return f"{self.label} {mb:.1f} MB {rate:.1f} MB/s"

    # --- drawing ------------------------------------------------------------------------

    def _write(self, text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    def _draw(self, force: bool) -> None:
        if not (self.enabled and self.live):
            return
        now = time.monotonic()
        if self._width and not force and now - self._last < 0.1:
            return
        self._last = now
        line = self._line()
        self._write("\r" + line.ljust(self._width))
        self._width = max(len(line), self._width, 1)  # what the screen now holds

    def clear(self) -> None:
        """Erases the drawn line (before printing a message below it, or when a
        step is done); the next update draws it again."""
        if self._width:
            self._write("\r" + " " * self._width + "\r")
            self._width = 0

    def close(self) -> None:
        """Ends the bar: its final line stays (elsewhere than on a terminal, the only
        line written). Nothing when disabled or never fed; a second call does nothing."""
        if self.enabled and self._line is not None:
            line = self._line()
            self._write(("\r" + line.ljust(self._width) if self._width else line) + "\n")
        self._line, self._width = None, 0
