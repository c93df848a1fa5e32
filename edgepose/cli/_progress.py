"""Progress bars on stderr: frames (:class:`Progress`) and downloads
(:class:`ByteProgress`)."""
from __future__ import annotations

import sys
import time

__all__ = ["Progress", "ByteProgress"]


class Progress:
    """A one-line progress bar on stderr, redrawn in place (when enabled)."""

    def __init__(self, total: int | None, label: str, enabled: bool) -> None:
        self.total, self.label, self.enabled = total, label, enabled
        self.count, self.start = 0, time.perf_counter()
        self._drawn = False

    def update(self) -> None:
        self.count += 1
        if not self.enabled:
            return
        rate = self.count / max(time.perf_counter() - self.start, 1e-9)
        if self.total:
            done = int(30 * self.count / self.total)
            bar = "#" * done + "." * (30 - done)
            text = f"\r{self.label} [{bar}] {self.count}/{self.total} {rate:5.1f} fps"
        else:
            text = f"\r{self.label} {self.count} frames {rate:5.1f} fps"
        sys.stderr.write(text)
        sys.stderr.flush()
        self._drawn = True

    def close(self) -> None:
        """Ends the bar's line (also before a message is printed below it)."""
        if self._drawn:
            sys.stderr.write("\n")
            self._drawn = False

    clear = close


class ByteProgress:
    """A download progress bar on stderr: redrawn in place on a terminal,
    a single final line otherwise."""

    def __init__(self, label: str, enabled: bool = True) -> None:
        self.label, self.enabled = label, enabled
        self.tty = sys.stderr.isatty()
        self.done, self.total, self.start = 0, None, time.perf_counter()
        self._drawn = False

    def __call__(self, done: int, total: int | None) -> None:
        self.done, self.total = done, total
        if self.enabled and self.tty:
            sys.stderr.write("\r" + self._line())
            sys.stderr.flush()
            self._drawn = True

    def _line(self) -> str:
        mb = self.done / 1e6
        rate = mb / max(time.perf_counter() - self.start, 1e-9)
        if self.total:
            done = int(30 * min(self.done, self.total) / self.total)
            bar = "#" * done + "." * (30 - done)
            return (f"{self.label} [{bar}] {mb:.1f}/{self.total / 1e6:.1f} MB "
                    f"{rate:.1f} MB/s")
        return f"{self.label} {mb:.1f} MB {rate:.1f} MB/s"

    def close(self) -> None:
        if not self.enabled or (not self._drawn and self.done == 0):
            return
        sys.stderr.write(("\r" if self.tty else "") + self._line() + "\n")
        sys.stderr.flush()

