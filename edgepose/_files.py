"""Small file utilities shared by the registry, model cards and the export stage.

- :func:`sha256_file`, :func:`sha256_stream`: the sha256 of a file, read in
  1 MiB chunks.
- :func:`atomic_write`: write a file completely or not at all: into a
  temporary file ``.partial-NAME.XXXXXXXX`` beside the target
  (:func:`create_temp`), flushed and fsynced, then renamed over the target
  with :func:`os.replace`; on any error the temporary file is removed.
  :func:`fsync_file` does the fsync for files a library writes itself.
- :func:`file_lock`: an exclusive lock that holds against other threads and
  other processes (for read-modify-write of shared metadata files).

Permissions: the temporary file is created with ``os.open(..., 0o666)``, so
the kernel applies the process's umask exactly as it does for
``open(path, "w")``: a renamed file gets the mode any new file of the user
gets (0644 under the usual umask 022), not the 0600 of
:func:`tempfile.mkstemp`. This reads no umask: ``os.umask`` can only be read
by setting it, which is process-wide and races with other threads.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
try:
    import msvcrt
except ImportError:  # POSIX
    msvcrt = None  # type: ignore[assignment]

__all__ = ["TEMP_PREFIX", "sha256_file", "sha256_stream", "create_temp", "fsync_file",
           "atomic_write", "file_lock"]

#: The name prefix of temporary files; a file left by a crash starts with it.
TEMP_PREFIX = ".partial-"
_CHUNK = 1 << 20


def sha256_stream(f: BinaryIO) -> str:
    """The sha256 of what is left to read in the binary file object ``f``, hex."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: f.read(_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of the file at ``path``, as 64 lowercase hex digits."""
    with open(path, "rb") as f:
        return sha256_stream(f)


def create_temp(folder: str | os.PathLike, name: str, *,
                suffix: str = "") -> tuple[BinaryIO, Path]:
    """A new, empty temporary file ``.partial-NAME.XXXXXXXXSUFFIX`` in
    ``folder``, opened for binary writing, with the mode of an ordinary new
    file (the umask applies). The caller renames or removes it.

    Raises:
        FileExistsError: no free name after 100 tries.
        OSError: the folder cannot be written.
    """
    folder = Path(folder)
    for _ in range(100):
        path = folder / f"{TEMP_PREFIX}{name}.{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)
        except FileExistsError:
            continue
        return os.fdopen(fd, "wb"), path
    raise FileExistsError(f"Could not create a temporary file for {name} in {folder}.")


def fsync_file(path: str | os.PathLike) -> None:
    """Flushes a file that another library wrote to the disk (before a rename)."""
    # Windows flushes only through a handle that may write.
    fd = os.open(path, (os.O_RDWR | os.O_BINARY) if os.name == "nt" else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike,
                 data: bytes | bytearray | memoryview | Callable[[BinaryIO], object]) -> Path:
    """Writes ``path`` completely or not at all.

    Args:
        path: the file to write (replaced if it exists); its folder must exist.
        data: the bytes to write, or a function ``write(f)`` that writes
            them into the open binary file ``f`` (it may raise to abandon the
            write: ``path`` is then left as it was).

    Returns:
        ``path`` as a Path.

    The bytes go into a temporary file beside ``path`` (see
    :func:`create_temp`), which is fsynced and then renamed over ``path``.
    On any error the temporary file is removed and the error propagates.
    """
    path = Path(path)
    f, tmp = create_temp(path.parent, path.name)
    try:
        with f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


class _Held:
    """A lock file's state in this process: which thread holds it, how deep."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.depth = 0
        self.fd = -1


# Process-wide by necessity: flock belongs to an open file description, so the
# threads of one process must share one descriptor per lock file. Keyed by the
# lock file's absolute path; entries are never removed (one per lock file used).
_HELD: dict[str, _Held] = {}
_HELD_GUARD = threading.Lock()


def _lock_fd(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)
    elif msvcrt is not None:
        while True:  # LK_LOCK gives up after 10 s; keep waiting as flock does
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                return
            except OSError:
                continue


def _unlock_fd(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    elif msvcrt is not None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


@contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Holds an exclusive lock on the lock file ``path`` (created if missing).

    The lock excludes other threads of this process (a threading lock per
    lock file) and other processes (``fcntl.flock`` on POSIX,
    ``msvcrt.locking`` on Windows; where neither exists, only threads are
    excluded). Both are needed: flock belongs to an open file description,
    so two threads opening the file separately would not exclude each other
    reliably. A thread that holds the lock may take it again (nesting); the
    file is unlocked when the outermost ``with`` ends. The lock file stays.

    Raises:
        OSError: the lock file cannot be created or opened.
    """
    key = os.path.abspath(path)
    with _HELD_GUARD:
        held = _HELD.setdefault(key, _Held())
    with held.lock:
        if held.depth == 0:
            fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                _lock_fd(fd)
            except BaseException:
                os.close(fd)
                raise
            held.fd = fd
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0:
                fd, held.fd = held.fd, -1
                try:
                    _unlock_fd(fd)
                finally:
                    os.close(fd)
