"""Temporal smoothing of landmark tracks and jitter measures (pure numpy)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]


def _alpha(cutoff: NDArray[np.float64] | float, rate: float) -> NDArray[np.float64]:
    tau = 1.0 / (2 * np.pi * np.asarray(cutoff, np.float64))
    return np.asarray(1.0 / (1.0 + tau * rate), np.float64)


def one_euro(x: NDArray[np.floating], rate: float, min_cutoff: float, beta: float, d_cutoff: float = 1.0) -> F32:
    """Causal One Euro filter (Casiez et al. 2012) along axis 0 of ``x`` (T, ...), sampled at ``rate`` Hz.

    Low ``min_cutoff`` (Hz) removes more jitter at rest; ``beta`` raises the cutoff with speed (in units
    of ``x`` per second) so fast motion does not lag.
    """
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    out[0] = prev = x[0]
    dprev = np.zeros_like(x[0])
    ad = _alpha(d_cutoff, rate)
    for t in range(1, len(x)):
        dx = (x[t] - prev) * rate
        dprev = dprev + ad * (dx - dprev)
        a = _alpha(min_cutoff + beta * np.abs(dprev), rate)
        prev = prev + a * (x[t] - prev)
        out[t] = prev
    return out.astype(np.float32)


def smooth_track(
    lm: NDArray[np.floating], scale: NDArray[np.floating], rate: float, min_cutoff: float = 2.0, beta: float = 0.5
) -> F32:
    """Zero-lag smoothing of landmarks (T, N, 3): One Euro run forwards and backwards, averaged.

    Positions are divided by the per-frame face ``scale`` (T,) (inter-ocular distance) first, so the
    settings act the same on a 4K close-up and an SD wide shot.
    """
    lm = np.asarray(lm, np.float64)
    if len(lm) < 3:
        return lm.astype(np.float32)
    s = float(np.median(scale))
    fwd = one_euro(lm / s, rate, min_cutoff, beta)
    bwd = one_euro((lm / s)[::-1], rate, min_cutoff, beta)[::-1]
    return ((fwd + bwd) / 2 * s).astype(np.float32)


def jitter(lm: NDArray[np.floating], scale: NDArray[np.floating]) -> float:
    """Mean landmark acceleration |x[t+1] - 2x[t] + x[t-1]| in % of the face scale (T, N, >=2 input).

    Real motion is smooth and contributes little; frame-to-frame detection noise dominates this number.
    """
    if len(lm) < 3:
        return 0.0
    p = np.asarray(lm[..., :2], np.float64)
    acc = np.linalg.norm(p[2:] - 2 * p[1:-1] + p[:-2], axis=-1).mean(axis=-1)
    return float(100.0 * np.mean(acc / np.asarray(scale, np.float64)[1:-1]))


def interpolate_gaps(frames: NDArray[np.integer], lm: NDArray[np.floating]) -> tuple[NDArray[np.int64], F32]:
    """Fill missing frames of a track by linear interpolation; returns all frames first..last."""
    frames = np.asarray(frames, np.int64)
    full = np.arange(frames[0], frames[-1] + 1)
    if len(full) == len(frames):
        return full, np.asarray(lm, np.float32)
    flat = np.asarray(lm, np.float64).reshape(len(frames), -1)
    out = np.empty((len(full), flat.shape[1]))
    for j in range(flat.shape[1]):
        out[:, j] = np.interp(full, frames, flat[:, j])
    return full, out.reshape((len(full), *lm.shape[1:])).astype(np.float32)
