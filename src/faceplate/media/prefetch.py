"""Run an iterator in a background thread (decode while the caller analyses the previous frame)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
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
