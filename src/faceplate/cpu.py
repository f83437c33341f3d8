"""CPU placement for the streaming stages (Linux; a no-op elsewhere or on one core).

MediaPipe's graphs start helper threads that busy-wait; on a 2-core machine they steal the decoder's core.
Pinning the analysis thread (and the graph threads it starts) to one core and the decoder to the others
made extract ~20% faster here (bench/RESULTS.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits


@contextmanager
def split_cores(enabled: bool = True) -> Iterator[set[int] | None]:
    """Pin the calling thread to its first allowed core for the block; yields the other cores (or None)."""
    get = getattr(os, "sched_getaffinity", None)
    cpus = sorted(get(0)) if enabled and get is not None else []
    if len(cpus) < 2:
        yield None
        return
    os.sched_setaffinity(0, {cpus[0]})
    try:
        yield set(cpus[1:])
    finally:
        os.sched_setaffinity(0, set(cpus))


def pin_current_thread(cpus: set[int] | None) -> None:
    """Restrict the calling thread to ``cpus`` (None: leave it)."""
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)


@contextmanager
def single_thread_blas() -> Iterator[None]:
    """One BLAS thread for the block (restored after it).

    The streaming stages run their own threads (decoder, analysis, effect, encoder). numpy's OpenBLAS workers
    spin on sched_yield after every call and took ~30 CPU-ms a frame from them: renders were ~12% faster
    without (bench/RESULTS.md).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        yield
