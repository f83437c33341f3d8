"""Progress events for the page: worker threads publish, each open ``/events`` stream (server-sent events)
receives. The last event of each topic is kept, so a page opened late sees where a job stands. Later
stages (render queue, training monitor) publish on their own topics through the same bus."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

KEEPALIVE_S = 15.0


class EventBus:
    """Thread-safe publish; async subscribe (one asyncio queue per open stream)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[str | None]]] = []
        self._last: dict[str, str] = {}
        self.closed = False

    def publish(self, topic: str, data: dict[str, Any]) -> None:
        """Send ``data`` as event ``topic`` to every open stream (from any thread)."""
        msg = f"event: {topic}\ndata: {json.dumps(data)}\n\n"
        with self._lock:
            self._last[topic] = msg
            subs = list(self._subs)
        for loop, q in subs:
            loop.call_soon_threadsafe(q.put_nowait, msg)

    def close(self) -> None:
        """End every open stream (server shutdown)."""
        with self._lock:
            self.closed = True
            subs, self._subs = self._subs, []
        for loop, q in subs:
            loop.call_soon_threadsafe(q.put_nowait, None)

    async def stream(self) -> AsyncIterator[str]:
        """The SSE text of this bus's events: the kept ones first, then new ones as they come."""
        q: asyncio.Queue[str | None] = asyncio.Queue()
        with self._lock:
            if self.closed:
                return
            self._subs.append((asyncio.get_running_loop(), q))
            kept = list(self._last.values())
        try:
            yield "retry: 2000\n\n"
            for old in kept:
                yield old
            while True:
                try:
                    msg = await asyncio.wait_for(q.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if msg is None:
                    return
                yield msg
        finally:
            with self._lock:
                self._subs = [s for s in self._subs if s[1] is not q]


class Foreground:
    """What the page waits for (a tuned frame, a proxy being made): background work (the cache fill) waits
    while any of it runs, so it only takes the cores in the gaps."""

    def __init__(self) -> None:
        self._busy = 0
        self._cond = threading.Condition()

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Mark the block as foreground work."""
        with self._cond:
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no foreground work runs (at most ``timeout`` s); whether it is idle."""
        with self._cond:
            return self._cond.wait_for(lambda: self._busy == 0, timeout)
