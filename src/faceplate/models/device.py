"""Where models run: CUDA when present, else the CPU; bf16 where it is fast. Importing this module (every
torch user in faceplate does) sizes torch's thread pools to this process's cores (faceplate.cpu)."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Any

import torch

from faceplate.cpu import configure_threads

configure_threads()  # torch is loaded now: size its intra- and inter-op pools


def device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.cache
def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(dev: torch.device, asked: bool | None = None) -> bool:
    """bf16 autocast when asked, or by default where it is fast: CUDA, or a CPU with native bf16 maths.

    Measured: on an AMD EPYC with AVX2 only, bf16 convolutions ran 10x *slower* than fp32; on a Xeon with
    AMX-BF16 they run several times faster (bench/RESULTS.md).
    """
    if asked is not None:
        return asked
    return dev.type == "cuda" or _cpu_has_bf16()


def autocast(dev: torch.device, bf16: bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on ``dev`` when ``bf16``, else nothing."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(dev.type, dtype=torch.bfloat16)
