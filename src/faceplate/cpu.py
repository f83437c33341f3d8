"""CPU placement for the streaming stages (Linux; a no-op elsewhere or on one core).

MediaPipe's graphs start helper threads that busy-wait; on a 2-core machine they steal the decoder's core.
Pinning the analysis thread (and the graph threads it starts) to one core and the decoder to the others
made extract ~20% faster here (bench/RESULTS.md).

Thread pools: :func:`configure_threads` (run when ``faceplate`` is imported, and again when faceplate first
imports torch) sizes torch's, OpenMP's, BLAS's, OpenCV's and MediaPipe's pools to :func:`usable_cores` and
makes idle OpenMP workers sleep instead of spin. ``FACEPLATE_THREADS=N`` sets the count; ``FACEPLATE_THREADS=off``
leaves every library at its own defaults.
"""

from __future__ import annotations

import contextlib
import os
import sys
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


THREADS_ENV = "FACEPLATE_THREADS"

# Read once by native libraries when they load (so they must be set before torch / numpy / cv2 are imported);
# only set where the user has not set them. OMP_WAIT_POLICY=PASSIVE: torch's libgomp (which also runs MKL
# and oneDNN) otherwise spins ~300k iterations after every parallel region; with another process on the
# same cores the spinners take the cores from the threads with work (tests/test_keyframes.py took 12x as
# long beside a second test run; see bench/RESULTS.md).
_WAIT_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
_COUNT_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENCV_FOR_THREADS_NUM")

_interop_set = False


def threads_configured() -> bool:
    """False when ``FACEPLATE_THREADS=off``: faceplate then leaves every thread pool as the libraries set it."""
    return os.environ.get(THREADS_ENV, "").strip().lower() != "off"


def usable_cores() -> int:
    """How many threads a pool should have: the cores this process may run on.

    ``FACEPLATE_THREADS=N`` (a positive integer) wins; otherwise the size of the CPU affinity mask
    (``os.sched_getaffinity``: ``taskset``, cgroup cpusets, a scheduler's pinning), or ``os.cpu_count()``
    where there is no affinity call. Other values of the variable (``off``, typos) are ignored here.
    Always at least 1.
    """
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    get = getattr(os, "sched_getaffinity", None)
    if get is not None:
        try:
            return max(1, len(get(0)))
        except OSError:
            pass
    return max(1, os.cpu_count() or 1)


def configure_threads(n: int | None = None) -> int | None:
    """Size every thread pool faceplate uses to ``n`` threads (default: :func:`usable_cores`); returns ``n``.

    Sets, where the user has not: ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``,
    ``OPENCV_FOR_THREADS_NUM`` and ``OMP_WAIT_POLICY=PASSIVE`` for libraries not loaded yet (and for child
    processes); and for those already loaded: torch's intra-op threads (``torch.set_num_threads``) and its
    inter-op threads (once per process, before any inter-op work: later calls leave it), OpenBLAS / OpenMP
    through threadpoolctl, and ``cv2.setNumThreads``. MediaPipe graphs read :func:`usable_cores` when built
    (faceplate.analysis.mp_graphs); dlib has no pool. Safe to call again: it re-applies the count.
    With ``FACEPLATE_THREADS=off`` (and no ``n``) it changes nothing and returns None.
    """
    if n is None:
        if not threads_configured():
            return None
        n = usable_cores()
    if n < 1:
        raise ValueError(f"thread count must be at least 1, got {n}")
    for key in _COUNT_ENV:
        os.environ.setdefault(key, str(n))
    for key, value in _WAIT_ENV.items():
        os.environ.setdefault(key, value)
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):  # a fully imported torch
        torch.set_num_threads(n)
        _set_interop(torch, n)
    if any(name in sys.modules for name in ("numpy", "torch", "cv2")):  # threadpoolctl looks at loaded libs
        threadpool_limits(limits=n)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and hasattr(cv2, "setNumThreads"):
        cv2.setNumThreads(n)
    return n


def _set_interop(torch: object, n: int) -> None:
    global _interop_set
    if _interop_set:
        return
    _interop_set = True
    with contextlib.suppress(RuntimeError):  # inter-op work already ran (or it was set): torch allows it once
        torch.set_num_interop_threads(n)  # type: ignore[attr-defined]


def lower_thread_priority(nice: int = 19) -> bool:
    """Run the calling thread (and the threads it starts later: decoder pools) at ``nice``; True when set.

    Linux only (nice is per thread there; elsewhere the call would reach the whole process): background work
    such as filling a proxy cache then yields the cores to what a user waits for.
    """
    if not sys.platform.startswith("linux"):
        return False
    import threading

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError:
        return False
    return True
