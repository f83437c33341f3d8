"""Background threads for streaming stages: decode ahead (``prefetch``) and write behind (``Background``)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from faceplate.cpu import pin_current_thread

T = TypeVar("T")
_END = object()


def prefetch(it: Iterator[T], depth: int = 4, cpus: set[int] | None = None) -> Iterator[T]:
    """Yield the items of ``it`` computed ``depth`` ahead in a daemon thread; errors are re-raised here.

    Memory stays bounded by ``depth`` items. Closing the returned generator stops the thread. ``cpus``
    pins the worker thread (see faceplate.cpu).
    """
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            pin_current_thread(cpus)
            for item in it:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as err:  # handed to the consumer
            q.put(err)

    th = threading.Thread(target=work, name="faceplate-prefetch", daemon=True)
    th.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        th.join(timeout=5)


class Background:
    """Run ``fn(*args)`` calls in order on one worker thread, at most ``depth`` queued (e.g. encoding the
    previous frame while the next is processed). Errors surface on the next ``submit`` or on ``join``."""

    def __init__(self, fn: Callable[..., None], depth: int = 2, cpus: set[int] | None = None) -> None:
        self._fn = fn
        self._q: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, args=(cpus,), name="faceplate-writer", daemon=True)
        self._thread.start()

    def _work(self, cpus: set[int] | None) -> None:
        pin_current_thread(cpus)
        while True:
            item = self._q.get()
            if item is _END:
                return
            if self._error is None:
                try:
                    self._fn(*item)  # type: ignore[misc]
                except BaseException as err:  # handed to the submitting thread
                    self._error = err

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def submit(self, *args: object) -> None:
        self._raise()
        self._q.put(args)

    def join(self) -> None:
        """Wait for every submitted call; re-raise the first error."""
        self._q.put(_END)
        self._thread.join()
        self._raise()
