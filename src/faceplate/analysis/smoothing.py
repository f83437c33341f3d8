"""Temporal smoothing of landmark tracks and jitter measures (pure numpy)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
LOOKAHEAD_S = 1.0  # seconds of frames a streamed render looks ahead (and the faces the smoothing scale comes from)


def lookahead(fps: float) -> int:
    """Frames of look-ahead for smoothing at ``fps``: one second, at least 12 (more than a tracker gap)."""
    return max(12, int(np.ceil(fps * LOOKAHEAD_S)))


def _alpha(cutoff: NDArray[np.float64] | float, rate: float) -> NDArray[np.float64]:
    tau = 1.0 / (2 * np.pi * np.asarray(cutoff, np.float64))
    return np.asarray(1.0 / (1.0 + tau * rate), np.float64)


class OneEuro:
    """Causal One Euro filter (Casiez et al. 2012), one sample at a time, sampled at ``rate`` Hz.

    Low ``min_cutoff`` (Hz) removes more jitter at rest; ``beta`` raises the cutoff with speed (in units
    of ``x`` per second) so fast motion does not lag.
    """

    def __init__(self, x0: NDArray[np.floating], rate: float, min_cutoff: float, beta: float, d_cutoff: float = 1.0):
        self.prev = np.asarray(x0, np.float64)
        self.dprev = np.zeros_like(self.prev)
        self.rate, self.min_cutoff, self.beta = rate, min_cutoff, beta
        self.ad = _alpha(d_cutoff, rate)

    def __call__(self, x: NDArray[np.floating]) -> NDArray[np.float64]:
        """The filtered value after sample ``x`` (same shape as ``x0``)."""
        x = np.asarray(x, np.float64)
        dx = (x - self.prev) * self.rate
        self.dprev = self.dprev + self.ad * (dx - self.dprev)
        a = _alpha(self.min_cutoff + self.beta * np.abs(self.dprev), self.rate)
        self.prev = self.prev + a * (x - self.prev)
        return self.prev


def one_euro(x: NDArray[np.floating], rate: float, min_cutoff: float, beta: float, d_cutoff: float = 1.0) -> F32:
    """:class:`OneEuro` along axis 0 of ``x`` (T, ...): the first sample passes unchanged."""
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    out[0] = x[0]
    f = OneEuro(x[0], rate, min_cutoff, beta, d_cutoff)
    for t in range(1, len(x)):
        out[t] = f(x[t])
    return out.astype(np.float32)


def smooth_track(
    lm: NDArray[np.floating], scale: NDArray[np.floating], rate: float, min_cutoff: float = 2.0, beta: float = 0.5
) -> F32:
    """Zero-lag smoothing of landmarks (T, N, 3): One Euro run forwards and backwards, averaged.

    Positions are divided by the face ``scale`` first (median inter-ocular distance over the track's first
    second, ``scale`` (T,) per frame), so the settings act the same on a 4K close-up and an SD wide shot.
    """
    lm = np.asarray(lm, np.float64)
    if len(lm) < 3:
        return lm.astype(np.float32)
    s = float(np.median(np.asarray(scale)[: lookahead(rate)]))
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


class StreamSmoother:
    """:func:`smooth_track` for one track whose faces arrive in frame order, ``window`` frames of look-ahead.

    The forward pass is exact. The backward pass starts ``window`` frames ahead (or at the last face so
    far) instead of at the track's end: its start-up error fades as (1 - alpha)^window, about 1e-5 of the
    jitter for one second of frames at 2 Hz. Gaps are filled linearly as :func:`interpolate_gaps` does.
    """

    def __init__(
        self,
        rate: float,
        window: int,
        scale_of: Callable[[NDArray[np.floating]], float],
        min_cutoff: float = 2.0,
        beta: float = 0.5,
    ) -> None:
        self.rate, self.window, self.min_cutoff, self.beta = rate, window, min_cutoff, beta
        self.scale_of = scale_of  # landmarks → face scale (inter-ocular distance)
        self.filled: dict[int, NDArray[np.float64]] = {}  # frame → raw landmarks (gaps filled)
        self.fwd: dict[int, NDArray[np.float64]] = {}  # frame → forward-filtered, in scale units
        self.scales: list[float] = []
        self.scale = 0.0
        self.first = self.last = -1
        self._filter: OneEuro | None = None

    def add(self, frame: int, lm: NDArray[np.floating]) -> None:
        """A measured face (N, 3) at ``frame`` (after every earlier one)."""
        x = np.asarray(lm, np.float64)
        if self.last < 0:
            self.first = frame
        else:
            prev = self.filled[self.last]
            for f in range(self.last + 1, frame):
                self.filled[f] = prev + (x - prev) * ((f - self.last) / (frame - self.last))
        self.filled[frame] = x
        for f in range(self.last + 1 if self.last >= 0 else frame, frame + 1):
            if len(self.scales) < lookahead(self.rate):  # as smooth_track: the first second's faces
                self.scales.append(self.scale_of(self.filled[f]))
        self.last = frame

    def _forward(self, upto: int) -> None:
        if not self.scale:
            self.scale = float(np.median(self.scales))
        start = max(self.fwd, default=self.first - 1) + 1
        for f in range(start, upto + 1):
            x = self.filled[f] / self.scale
            if self._filter is None:
                self._filter = OneEuro(x, self.rate, self.min_cutoff, self.beta)
                self.fwd[f] = x
            else:
                self.fwd[f] = self._filter(x)

    def value(self, frame: int, final: bool = False) -> F32:
        """Smoothed landmarks (N, 3) at ``frame`` (first..last; needs the faces up to ``frame + window``
        unless ``final``: the track has ended)."""
        if self.last - self.first < 2 and final:  # smooth_track leaves tracks of < 3 frames as they are
            return self.filled[frame].astype(np.float32)
        self._forward(frame)
        end = min(frame + self.window, self.last)
        back = OneEuro(self.filled[end] / self.scale, self.rate, self.min_cutoff, self.beta)
        b = self.filled[end] / self.scale
        for f in range(end - 1, frame - 1, -1):
            b = back(self.filled[f] / self.scale)
        return ((self.fwd[frame] + b) / 2 * self.scale).astype(np.float32)

    def forget_before(self, frame: int) -> None:
        """Drop what frames before ``frame`` no longer need (keeps memory flat in track length)."""
        for d in (self.filled, self.fwd):
            for f in [f for f in d if f < frame - 1]:
                del d[f]
