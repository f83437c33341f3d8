"""Temporal smoothing of landmark tracks and jitter measures (pure numpy)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


# --- head pose + residual split ---------------------------------------------------------------------
# A face's landmarks move mostly as a rigid head (3D rotation, translation, scale: its pose) plus a small
# residual (expression and per-point detection noise). One Euro on each coordinate (the smoother before)
# has to choose: a low cutoff trails a fast head turn (d12: 0.1 iod median, 0.28 max), a high beta lets
# the noise through on every clip. Here the pose is fitted to all 478 points each frame (:class:`PoseSplit`)
# and filtered on its own: as before while the head is slow, and opened up (cutoff raised by
# ``fast_beta`` Hz per iod/s) once it moves faster than ``fast_speed`` (talking heads here stay below),
# measured over a few frames either side, so a head shake, whose velocity keeps reversing, still reads as
# fast. The residual, with the head's motion taken out, is filtered per coordinate at a low cutoff raised
# by its own speed. Each is a first-order low-pass run forwards and backwards with the same per-frame
# factors (from the measured speeds, not from the filter's state: so the streamed version, which starts
# its backward pass a second ahead, converges on the two-pass one). Positions are in face-scale (iod)
# units; the pose parameters are the displacement they cause at the face's rms radius, so cutoffs, betas
# and speeds mean the same for pose and residual. bench/bench_smoothing.py measures lag and jitter.
FAST_SPEED = 2.0  # iod/s: head speed above which the pose filter opens up (talking heads stay below ~2)
FAST_BETA = 30.0  # Hz of pose cutoff per iod/s above FAST_SPEED
RESIDUAL_MIN_CUTOFF = 1.5  # Hz: expression and noise, once the head's motion is taken out
RESIDUAL_BETA = 0.5  # Hz per iod/s of a residual coordinate's own speed
SPEED_SPAN_S = (0.04, 0.12)  # s: half-widths of the position average and of the rms window of the speeds
N_POSE = 7  # centroid (3), log scale (1), rotation: quaternion vector part (3)


def _quat_vec(r: NDArray[np.float64]) -> NDArray[np.float64]:
    """Vector part (T, 3) of the unit quaternions (w >= 0) of rotations ``r`` (T, 3, 3): the row of the
    symmetric matrix 4 q q^T with the largest diagonal, normalised (Shepperd's method)."""
    tr = r[:, 0, 0] + r[:, 1, 1] + r[:, 2, 2]
    k = np.empty((len(r), 4, 4))
    k[:, 0, 0] = 1 + tr
    k[:, 1, 1] = 1 + 2 * r[:, 0, 0] - tr
    k[:, 2, 2] = 1 + 2 * r[:, 1, 1] - tr
    k[:, 3, 3] = 1 + 2 * r[:, 2, 2] - tr
    k[:, 0, 1] = k[:, 1, 0] = r[:, 2, 1] - r[:, 1, 2]  # 4 w x
    k[:, 0, 2] = k[:, 2, 0] = r[:, 0, 2] - r[:, 2, 0]  # 4 w y
    k[:, 0, 3] = k[:, 3, 0] = r[:, 1, 0] - r[:, 0, 1]  # 4 w z
    k[:, 1, 2] = k[:, 2, 1] = r[:, 0, 1] + r[:, 1, 0]  # 4 x y
    k[:, 1, 3] = k[:, 3, 1] = r[:, 0, 2] + r[:, 2, 0]  # 4 x z
    k[:, 2, 3] = k[:, 3, 2] = r[:, 1, 2] + r[:, 2, 1]  # 4 y z
    row = k[np.arange(len(r)), np.argmax(np.diagonal(k, axis1=1, axis2=2), axis=1)]
    row /= np.linalg.norm(row, axis=1, keepdims=True) * np.where(row[:, :1] < 0, -1.0, 1.0)
    return row[:, 1:]


def _rotation(v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rotations (T, 3, 3) of the unit quaternions (w >= 0) with vector parts ``v`` (T, 3)."""
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    w = np.sqrt(np.maximum(0.0, 1 - (x * x + y * y + z * z)))
    r = np.empty((len(v), 3, 3))
    r[:, 0, 0], r[:, 1, 1], r[:, 2, 2] = 1 - 2 * (y * y + z * z), 1 - 2 * (x * x + z * z), 1 - 2 * (x * x + y * y)
    r[:, 0, 1], r[:, 1, 0] = 2 * (x * y - z * w), 2 * (x * y + z * w)
    r[:, 0, 2], r[:, 2, 0] = 2 * (x * z + y * w), 2 * (x * z - y * w)
    r[:, 1, 2], r[:, 2, 1] = 2 * (y * z - x * w), 2 * (y * z + x * w)
    return r


def _fit(
    x: NDArray[np.float64], ref: NDArray[np.float64], ref_sq: float | None = None
) -> tuple[NDArray[np.float64], ...]:
    """Least-squares similarity of centred ``ref`` (N, 3) to each of ``x`` (T, N, 3) (Umeyama 1991):
    ``x ≈ c R ref + mu``; returns mu (T, 3), c (T,), R (T, 3, 3), residual (T, N, 3) in ``ref``'s frame."""
    mu = x.mean(axis=1)
    xc = x - mu[:, None]
    u, d, vt = np.linalg.svd(xc.transpose(0, 2, 1) @ ref)
    sign = np.ones_like(d)
    sign[:, 2] = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    r = (u * sign[:, None, :]) @ vt
    c = (d * sign).sum(axis=1) / (float(np.sum(ref * ref)) if ref_sq is None else ref_sq)
    resid = xc @ r / c[:, None, None] - ref
    return mu, c, r, resid


def reference_shape(x: NDArray[np.floating]) -> NDArray[np.float64]:
    """The mean shape (N, 3) of faces ``x`` (K, N, 3), centred: each aligned (similarity) to the first."""
    x = np.asarray(x, np.float64)
    ref = x[0] - x[0].mean(axis=0)
    for _ in range(2):
        _, _, _, resid = _fit(x, ref)
        ref = ref + resid.mean(axis=0)
        ref -= ref.mean(axis=0)
    return ref


class PoseSplit:
    """Landmarks (N, 3) in face-scale units ↔ one vector: rigid parameters (7) then the residual (N * 3)."""

    def __init__(self, ref: NDArray[np.floating]) -> None:
        self.ref = np.asarray(ref, np.float64)
        self.ref_sq = float(np.sum(self.ref * self.ref))
        self.radius = float(np.sqrt(np.mean(np.sum(self.ref**2, axis=-1))))  # rms distance from the centroid

    def split(self, x: NDArray[np.floating]) -> NDArray[np.float64]:
        """(T, N, 3) → (T, 7 + N * 3)."""
        x = np.asarray(x, np.float64)
        mu, c, r, resid = _fit(x, self.ref, self.ref_sq)
        rho = self.radius
        rigid = np.concatenate([mu, rho * np.log(c)[:, None], 2 * rho * _quat_vec(r)], axis=1)
        return np.concatenate([rigid, resid.reshape(len(x), -1)], axis=1)

    def join(self, v: NDArray[np.float64]) -> NDArray[np.float64]:
        """(T, 7 + N * 3) → landmarks (T, N, 3)."""
        rho = self.radius
        mu, c = v[:, :3], np.exp(v[:, 3] / rho)
        r = _rotation(v[:, 4:N_POSE] / (2 * rho))
        shape = self.ref + v[:, N_POSE:].reshape(len(v), *self.ref.shape)
        return c[:, None, None] * (shape @ r.transpose(0, 2, 1)) + mu[:, None]


def speed_reach(rate: float) -> int:
    """Frames either side of ``t`` that the speeds (:func:`speeds`) at ``t`` depend on."""
    m, k = (max(1, round(h * rate)) for h in SPEED_SPAN_S)
    return m + k + 1


def _centred_mean(x: NDArray[np.float64], h: int) -> NDArray[np.float64]:
    """Mean over frames ``t - h`` .. ``t + h`` along axis 0 (shrunk at the ends)."""
    c = np.concatenate([np.zeros((1, *x.shape[1:])), np.cumsum(x, axis=0)])
    t = np.arange(len(x))
    lo, hi = np.maximum(t - h, 0), np.minimum(t + h + 1, len(x))
    return np.asarray((c[hi] - c[lo]) / (hi - lo)[:, None], np.float64)


def speeds(x: NDArray[np.float64], rate: float, joint: bool) -> NDArray[np.float64]:
    """Local speeds of ``x`` (T, D) per second: the speed of its centred moving average (half-width
    ``SPEED_SPAN_S[0]``), rms over a centred window (half-width ``SPEED_SPAN_S[1]``), both shrunk at the
    ends; of the whole vector (T, 1) when ``joint``, else per element (T, D). Frame ``t``'s value depends
    on frames ``t - speed_reach`` .. ``t + speed_reach`` only (the one before ``t``'s window too)."""
    m, k = (max(1, round(h * rate)) for h in SPEED_SPAN_S)
    if len(x) < 2:
        return np.zeros((len(x), 1 if joint else x.shape[1]))
    d = np.diff(_centred_mean(x, m), axis=0) * rate
    sq = np.sum(d * d, axis=1, keepdims=True) if joint else d * d
    return np.sqrt(_centred_mean(np.concatenate([sq[:1], sq]), k))


@dataclass(frozen=True)
class Smoothing:
    """Settings of :func:`smooth_track` / :class:`StreamSmoother` (cutoffs in Hz, speeds in iod/s).

    Head pose: cutoff ``min_cutoff + beta v + fast_beta max(0, v - fast_speed)`` for head speed ``v``.
    Residual (per coordinate, its own speed ``u``): ``residual_min_cutoff + residual_beta u``.
    """

    min_cutoff: float = 2.0
    beta: float = 0.5
    residual_min_cutoff: float = RESIDUAL_MIN_CUTOFF
    residual_beta: float = RESIDUAL_BETA
    fast_speed: float = FAST_SPEED
    fast_beta: float = FAST_BETA

    def alphas(self, v: NDArray[np.float64], rate: float) -> NDArray[np.float64]:
        """Per-sample, per-element low-pass factors (T, 7 + D) for split faces ``v`` (T, 7 + D); row ``t``
        depends on rows ``t - speed_reach .. t + speed_reach`` only."""
        return self.from_speeds(speeds(v[:, :N_POSE], rate, joint=True), speeds(v[:, N_POSE:], rate, joint=False), rate)

    def from_speeds(self, head: NDArray[np.float64], res: NDArray[np.float64], rate: float) -> NDArray[np.float64]:
        """Low-pass factors (T, 7 + D) from the head speed (T, 1) and the residual's speeds (T, D)."""
        pose = self.min_cutoff + self.beta * head + self.fast_beta * np.maximum(0.0, head - self.fast_speed)
        res = self.residual_min_cutoff + self.residual_beta * res
        return np.concatenate([_alpha(np.broadcast_to(pose, (len(res), N_POSE)), rate), _alpha(res, rate)], axis=1)


def _lowpass(x: NDArray[np.float64], a: NDArray[np.float64]) -> NDArray[np.float64]:
    """First-order low-pass along axis 0 with per-sample factors ``a`` (as ``x``): the first sample passes."""
    out = np.empty_like(x)
    out[0] = p = x[0]
    for t in range(1, len(x)):
        out[t] = p = p + a[t] * (x[t] - p)
    return out


def smooth_track(
    lm: NDArray[np.floating],
    scale: NDArray[np.floating],
    rate: float,
    min_cutoff: float = 2.0,
    beta: float = 0.5,
    settings: Smoothing | None = None,
    pose_split: bool = True,
) -> F32:
    """Zero-lag smoothing of landmarks (T, N, 3): a low-pass run forwards and backwards, averaged.

    Positions are divided by the face ``scale`` first (median inter-ocular distance over the track's first
    second, ``scale`` (T,) per frame), so the settings act the same on a 4K close-up and an SD wide shot.
    The head pose (fitted to the track's first-second mean shape, :class:`PoseSplit`) and the residual
    are filtered with speed-dependent cutoffs (:class:`Smoothing`; ``settings`` overrides ``min_cutoff`` and
    ``beta``). ``pose_split=False``: One Euro (``min_cutoff``, ``beta``) on every coordinate instead (the
    smoother before the pose split: it lags a fast head).
    """
    lm = np.asarray(lm, np.float64)
    if len(lm) < 3:
        return lm.astype(np.float32)
    n0 = lookahead(rate)
    s = float(np.median(np.asarray(scale)[:n0]))
    x = lm / s
    if not pose_split:
        ahead = one_euro(x, rate, min_cutoff, beta)
        behind = one_euro(x[::-1], rate, min_cutoff, beta)[::-1]
        return ((ahead + behind) / 2 * s).astype(np.float32)
    cfg = settings or Smoothing(min_cutoff, beta)
    split = PoseSplit(reference_shape(x[:n0]))
    v = split.split(x)
    a = cfg.alphas(v, rate)
    fwd, bwd = _lowpass(v, a), _lowpass(v[::-1], a[::-1])[::-1]
    return ((split.join(fwd) + split.join(bwd)) / 2 * s).astype(np.float32)


def jitter(lm: NDArray[np.floating], scale: NDArray[np.floating]) -> float:
    """Mean landmark acceleration |x[t+1] - 2x[t] + x[t-1]| in % of the face scale (T, N, >=2 input).

    Real motion is smooth and contributes little; frame-to-frame detection noise dominates this number
    (not on a plate whose head jumps from frame to frame, as lp_driving_d12's repeated frames do).
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

    The forward pass is exact. The backward pass starts ``window - speed_reach`` frames ahead (or at the
    last face so far; the speeds there need ``speed_reach`` frames after it) instead of at the track's
    end: its start-up error fades as (1 - alpha)^frames, ~1e-3 of it or less for one second of frames at
    1.5 Hz (< 0.01 px). Gaps are filled linearly as :func:`interpolate_gaps` does. The face scale and the
    pose reference shape come from the track's first second, as in :func:`smooth_track` (so ``window``
    must be at least :func:`lookahead` frames). Each frame is split, averaged and its speeds summed once
    (running sums, as :func:`speeds` computes them), so a frame costs one split and the backward pass.
    """

    def __init__(
        self,
        rate: float,
        window: int,
        scale_of: Callable[[NDArray[np.floating]], float],
        min_cutoff: float = 2.0,
        beta: float = 0.5,
        settings: Smoothing | None = None,
    ) -> None:
        self.rate, self.window = rate, window
        self.settings = settings or Smoothing(min_cutoff, beta)
        self.reach = speed_reach(rate)
        self.m, self.k = (max(1, round(h * rate)) for h in SPEED_SPAN_S)
        self.scale_of = scale_of  # landmarks → face scale (inter-ocular distance)
        self.filled: dict[int, NDArray[np.float64]] = {}  # frame → raw landmarks (gaps filled)
        self.split_of: dict[int, NDArray[np.float64]] = {}  # frame → split face (pose + residual)
        self.sums: dict[int, NDArray[np.float64]] = {}  # frame → sum of split faces first..frame
        self.avg: dict[int, NDArray[np.float64]] = {}  # frame → centred average (as speeds' first step)
        self.sq_sums: dict[int, NDArray[np.float64]] = {}  # frame → sum of squared speeds first..frame
        self.alpha_of: dict[int, NDArray[np.float64]] = {}  # frame → low-pass factors, once final
        self.fwd: dict[int, NDArray[np.float64]] = {}  # frame → forward-filtered split face
        self.scales: list[float] = []
        self.scale = 0.0
        self.first = self.last = -1
        self.ended = False
        self._split: PoseSplit | None = None

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

    def _inputs(self, lo: int, hi: int) -> NDArray[np.float64]:
        """Split faces (hi - lo + 1, 7 + N * 3) of frames ``lo..hi`` (new ones split in one batch)."""
        if self._split is None:  # scale and reference shape from the first second's faces (all in by now)
            self.scale = float(np.median(self.scales))
            first = range(self.first, min(self.first + lookahead(self.rate), self.last + 1))
            self._split = PoseSplit(reference_shape(np.stack([self.filled[f] for f in first]) / self.scale))
        todo = [f for f in range(lo, hi + 1) if f not in self.split_of]
        if todo:
            v = self._split.split(np.stack([self.filled[f] for f in todo]) / self.scale)
            self.split_of.update(zip(todo, v, strict=True))
        return np.stack([self.split_of[f] for f in range(lo, hi + 1)])

    def _update(self) -> None:
        """Running sums, averages and factors of every frame whose neighbourhood is in (all, once ended)."""
        first, end = self.first, self.last
        done = max(self.sums, default=first - 1)
        if done < end:
            v = self._inputs(done + 1, end)
            for i, f in enumerate(range(done + 1, end + 1)):
                self.sums[f] = v[i] + self.sums[f - 1] if f > first else v[i].copy()
        m, k, rate = self.m, self.k, self.rate
        zero = np.zeros_like(self.sums[end])
        f = max(self.avg, default=first - 1) + 1
        while f + m <= end or (self.ended and f <= end):
            lo, hi = max(f - m, first), min(f + m, end)
            self.avg[f] = (self.sums[hi] - self.sums.get(lo - 1, zero)) / (hi - lo + 1)
            f += 1
        f = max(self.sq_sums, default=first - 1) + 1
        while f in self.avg and (f > first or f + 1 in self.avg):
            g = f if f > first else f + 1  # speeds: the first frame's speed is the second's
            d = (self.avg[g] - self.avg[g - 1]) * rate
            sq = d * d
            sq[:N_POSE] = np.sum(sq[:N_POSE])  # the head's speed: of its whole pose
            self.sq_sums[f] = sq + self.sq_sums[f - 1] if f > first else sq
            f += 1
        top = max(self.sq_sums, default=first - 1)
        f = max(self.alpha_of, default=first - 1) + 1
        todo = []
        while f + k <= top or (self.ended and top == end and f <= end):
            lo, hi = max(f - k, first), min(f + k, end)
            todo.append(np.sqrt((self.sq_sums[hi] - self.sq_sums.get(lo - 1, zero)) / (hi - lo + 1)))
            f += 1
        if todo:
            sp = np.stack(todo)
            a = self.settings.from_speeds(sp[:, :1], sp[:, N_POSE:], rate)
            f0 = max(self.alpha_of, default=first - 1) + 1
            self.alpha_of.update(zip(range(f0, f0 + len(a)), a, strict=True))

    def _alphas(self, lo: int, hi: int) -> NDArray[np.float64]:
        """Low-pass factors of frames ``lo..hi`` as :func:`smooth_track` has them: exact once the frames
        ``speed_reach`` after are in (or the track has ended); from the faces so far before that."""
        if hi in self.alpha_of:
            return np.stack([self.alpha_of[f] for f in range(lo, hi + 1)])
        a = max(self.first, lo - self.reach)
        alpha = self.settings.alphas(self._inputs(a, self.last), self.rate)
        return np.stack([self.alpha_of.get(f, alpha[f - a]) for f in range(lo, hi + 1)])

    def _forward(self, upto: int) -> NDArray[np.float64]:
        """The forward pass at ``upto``: kept for the frames whose factors are final, computed from the
        faces so far (and not kept) past them."""
        f = max(self.fwd, default=self.first - 1) + 1
        while f <= upto and f in self.alpha_of:
            v = self.split_of[f]
            self.fwd[f] = v if f == self.first else self.fwd[f - 1] + self.alpha_of[f] * (v - self.fwd[f - 1])
            f += 1
        if upto < f:
            return self.fwd[upto]
        vs, alpha = self._inputs(f, upto), self._alphas(f, upto)
        p = self.fwd[f - 1] if f > self.first else vs[0]
        for i in range(1 if f == self.first else 0, len(vs)):
            p = p + alpha[i] * (vs[i] - p)
        return p

    def value(self, frame: int, final: bool = False) -> F32:
        """Smoothed landmarks (N, 3) at ``frame`` (first..last; needs the faces up to ``frame + window``
        unless ``final``: the track has ended)."""
        if self.last - self.first < 2 and final:  # smooth_track leaves tracks of < 3 frames as they are
            return self.filled[frame].astype(np.float32)
        self.ended = self.ended or final
        self._inputs(frame, frame)
        self._update()
        ahead = self._forward(frame)
        end = self.last if final else max(frame, min(frame + self.window - self.reach, self.last))
        self._inputs(frame, end)
        if end in self.alpha_of:  # the usual case: every factor is known
            v, a = self.split_of, self.alpha_of
            p = v[end]
            for f in range(end - 1, frame - 1, -1):
                p = p + a[f] * (v[f] - p)
        else:
            vs, alpha = self._inputs(frame, end), self._alphas(frame, end)
            p = vs[-1]
            for i in range(len(vs) - 2, -1, -1):
                p = p + alpha[i] * (vs[i] - p)
        assert self._split is not None
        both = self._split.join(np.stack([ahead, p]))
        return ((both[0] + both[1]) / 2 * self.scale).astype(np.float32)

    def forget_before(self, frame: int) -> None:
        """Drop what frames before ``frame`` no longer need (keeps memory flat in track length)."""
        keep = frame - 2 - 2 * self.reach  # the speeds and running sums look back too
        for d in (self.filled, self.split_of, self.sums, self.avg, self.sq_sums, self.alpha_of, self.fwd):
            for f in [f for f in d if f < keep]:
                del d[f]
