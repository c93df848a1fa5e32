"""Worker threads for iterables: read ahead (:func:`prefetch`) or keep only
the newest item (:func:`latest`).

Both run the iterable on a daemon thread, hand its exceptions to the
consumer at the position they happened, and stop the thread (and close the
iterable if it is a generator) when the consumer closes the returned
generator or leaves its loop.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from edgepose._validate import is_int

__all__ = ["prefetch", "latest", "close_iterator"]

T = TypeVar("T")
U = TypeVar("U")

_END = object()
_POLL_S = 0.05


def close_iterator(iterator: Any) -> None:
    """Closes a generator (or anything with ``close``); other iterables pass."""
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _delivered(item: Any) -> bool:
    """Whether ``item`` is one for the consumer: False at the end of the
    items; the worker's exception is raised here."""
    if isinstance(item, _Failure):
        raise item.exc
    return item is not _END


def _offer(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Puts ``item`` unless the consumer stopped; returns whether it did."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def prefetch(items: Iterable[T], fn: Callable[[T], U] | None = None, *, size: int = 4,
             name: str = "edgepose-prefetch") -> Iterator[U]:
    """Iterates ``items`` (mapping each through ``fn``) on a worker thread.

    The worker runs up to ``size`` items ahead of the consumer. An exception
    in the worker is raised in the consumer at the position it happened.
    Closing the returned generator (or leaving a ``for`` loop over it) stops
    the worker and closes ``items`` if it is a generator.

    Args:
        items: any iterable; only the worker thread iterates it.
        fn: optional function applied on the worker thread.
        size: the queue's capacity, >= 1.
        name: the worker thread's name.

    Returns:
        a generator of the (mapped) items, in order.

    Raises:
        ValueError: a ``size`` below 1.
    """
    if not is_int(size) or size < 1:
        raise ValueError(f"size must be an int >= 1, got {size!r}.")
    return _prefetch(items, fn, size, name)


def _prefetch(items: Iterable[Any], fn: Callable[[Any], Any] | None, size: int,
              name: str) -> Iterator[Any]:
    q: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def work() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not _offer(q, fn(item) if fn is not None else item, stop):
                    return
            _offer(q, _END, stop)
        except BaseException as exc:  # handed to the consumer
            _offer(q, _Failure(exc), stop)
        finally:
            close_iterator(iterator)

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if not _delivered(item):
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get(timeout=_POLL_S)
            except queue.Empty:
                pass
        thread.join()


def latest(items: Iterable[T], *, name: str = "edgepose-latest") -> Iterator[T]:
    """Iterates ``items`` on a worker thread that never waits for the
    consumer: each step yields the newest item produced since the previous
    one, and drops the items in between.

    For live sources (cameras, streams): the reader keeps draining the
    source, so the consumer always works on the most recent frame instead
    of one that waited in the driver's and the pipeline's buffers. The last
    item of a finite iterable is always delivered. An exception in the
    worker is raised in the consumer after the item before it. Closing the
    returned generator stops the worker and closes ``items`` if it is a
    generator.

    Args:
        items: any iterable; only the worker thread iterates it.
        name: the worker thread's name.

    Returns:
        a generator of items, in production order, with gaps.
    """
    return _latest(items, name)


def _latest(items: Iterable[Any], name: str) -> Iterator[Any]:
    cond = threading.Condition()
    slot: list[Any] = []            # at most the newest item
    ended: list[Any] = []           # _END or a _Failure, once the worker stops
    stop = threading.Event()

    def work() -> None:
        iterator = iter(items)
        outcome: Any = _END
        try:
            for item in iterator:
                with cond:
                    slot[:] = [item]
                    cond.notify()
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer
            outcome = _Failure(exc)
        finally:
            close_iterator(iterator)
            with cond:
                ended.append(outcome)
                cond.notify()

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    try:
        while True:
            with cond:
                while not slot and not ended:
                    cond.wait()
                item = slot.pop() if slot else ended[0]
            if not _delivered(item):
                return
            yield item
    finally:
        stop.set()
        thread.join()
