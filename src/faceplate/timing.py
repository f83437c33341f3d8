"""Per-stage accounting for benchmarks and ``--verbose`` summaries: wall seconds and the CPU seconds of the
thread that ran the stage."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


class Stopwatch:
    """Accumulates seconds per named stage: ``with sw("detect"): ...`` (from any thread, under a lock).

    ``seconds``: wall seconds per stage; ``cpu``: CPU seconds of the calling thread in it (work a stage hands
    to native threads, e.g. MediaPipe's graph threads or the encoder's, is not in it).
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t, c = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            dt, dc = time.perf_counter() - t, time.thread_time() - c
            with self._lock:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + dt
                self.cpu[stage] = self.cpu.get(stage, 0.0) + dc

    def iterate(self, stage: str, items: Iterable[T]) -> Iterator[T]:
        """Yield from ``items``, charging the time spent waiting for each item to ``stage``."""
        it = iter(items)
        while True:
            with self(stage):
                try:
                    item = next(it)
                except StopIteration:
                    return
            yield item

    def snapshot(self) -> tuple[dict[str, float], dict[str, float]]:
        """Copies of (``seconds``, ``cpu``), taken under the lock (safe while other threads still time)."""
        with self._lock:
            return dict(self.seconds), dict(self.cpu)
