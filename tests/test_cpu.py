"""Thread pools sized from the cores the process may use (faceplate.cpu), checked in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from faceplate.cpu import THREADS_ENV, configure_threads, lower_thread_priority, usable_cores

# What a fresh process ends up with after importing faceplate, torch (through faceplate.models.swap),
# numpy, cv2 and building one MediaPipe graph.
PROBE = """
import json, os, sys
if len(sys.argv) > 1:
    os.sched_setaffinity(0, {int(sys.argv[1])})
import faceplate.models.swap
import cv2, numpy, torch
from threadpoolctl import threadpool_info
from faceplate.analysis.mp_graphs import FullRangeDetector
before = len(os.listdir("/proc/self/task"))
graph = FullRangeDetector()
print(json.dumps({
    "torch": torch.get_num_threads(), "interop": torch.get_num_interop_threads(), "cv2": cv2.getNumThreads(),
    "pools": sorted({i["num_threads"] for i in threadpool_info() if i.get("threading_layer") != "disabled"}),
    "graph_threads": len(os.listdir("/proc/self/task")) - before,
    "wait": os.environ.get("OMP_WAIT_POLICY"),
}))
"""
OURS = (THREADS_ENV, "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENCV_FOR_THREADS_NUM",
        "OMP_WAIT_POLICY")  # fmt: skip


def _probe(*args: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in OURS}  # this process set some when it imported us
    r = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120,
                       env={**clean, **env}, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_pools_follow_the_affinity_mask() -> None:
    """Pinned to one core (as taskset or a farm scheduler would), every pool has one thread: torch intra- and
    inter-op (torch's inter-op default counts the machine's cores), BLAS/OpenMP, OpenCV, MediaPipe's executor."""
    got = _probe(str(min(os.sched_getaffinity(0))))
    assert got == {"torch": 1, "interop": 1, "cv2": 1, "pools": [1], "graph_threads": 1, "wait": "PASSIVE"}


@pytest.mark.slow
def test_env_override_sets_every_pool_and_keeps_the_users_wait_policy() -> None:
    n = usable_cores() + 1  # more than the cores: only the variable can give this
    got = _probe(**{THREADS_ENV: str(n), "OMP_WAIT_POLICY": "ACTIVE"})
    assert got == {"torch": n, "interop": n, "cv2": n, "pools": [n], "graph_threads": n, "wait": "ACTIVE"}


@pytest.mark.slow
def test_off_leaves_the_libraries_alone() -> None:
    got = _probe(**{THREADS_ENV: "off"})
    assert got["wait"] is None  # nothing set in the environment
    assert got["interop"] == (os.cpu_count() or 1)  # torch's own default


def test_usable_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 3, 5}, raising=False)
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert usable_cores() == 3
    for bad in ("0", "-2", "two", "off", ""):
        monkeypatch.setenv(THREADS_ENV, bad)
        assert usable_cores() == 3, bad
    monkeypatch.setenv(THREADS_ENV, " 7 ")
    assert usable_cores() == 7
    monkeypatch.setenv(THREADS_ENV, "off")
    assert configure_threads() is None
    with pytest.raises(ValueError, match="at least 1"):
        configure_threads(0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_lower_thread_priority_reaches_the_thread_and_its_children_only() -> None:
    import threading

    seen: dict[str, int] = {}

    def child() -> None:
        seen["child"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def background() -> None:
        seen["set"] = int(lower_thread_priority())
        seen["self"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        t = threading.Thread(target=child)
        t.start()
        t.join()

    main = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    t = threading.Thread(target=background)
    t.start()
    t.join()
    assert seen["set"] == 1 and seen["self"] == 19 and seen["child"] == 19
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main
