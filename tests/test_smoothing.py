"""Landmark smoothing on synthetic tracks (cheap, no media): a fast head does not lag, a still head does not
jitter, the streamed smoother is the two-pass one."""

from __future__ import annotations

import numpy as np
import pytest

from faceplate.analysis.smoothing import (
    PoseSplit,
    StreamSmoother,
    interpolate_gaps,
    jitter,
    lookahead,
    reference_shape,
    smooth_track,
)

FPS, IOD, N = 25.0, 100.0, 478  # a 100 px eye distance


def _rot_y(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    r = np.zeros((len(a), 3, 3))
    r[:, 0, 0], r[:, 0, 2], r[:, 1, 1], r[:, 2, 0], r[:, 2, 2] = c, s, 1, -s, c
    return r


def _track(t_len: int, shake: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(true, measured) landmarks (T, N, 3) in px: a face-sized point cloud, still or shaking its head fast
    (yaw +-35 deg and +-1.2 iod sideways at 1.5 Hz: up to ~12 iod/s), measured with per-point noise and a
    whole-face jitter of ~0.005 iod each (MediaPipe-like)."""
    rng = np.random.default_rng(seed)
    shape = rng.normal(size=(N, 3)) * np.array([0.6, 0.8, 0.4]) * IOD
    t = np.arange(t_len) / FPS
    phase = 2 * np.pi * 1.5 * t if shake else np.zeros(t_len)
    true = shape @ _rot_y(np.radians(35) * np.sin(phase)).transpose(0, 2, 1)
    true += np.stack([1.2 * IOD * np.sin(phase) + 250, np.full(t_len, 250.0), np.zeros(t_len)], -1)[:, None]
    noise = rng.normal(size=true.shape) * 0.005 * IOD + rng.normal(size=(t_len, 1, 3)) * 0.005 * IOD
    return true, true + noise


def _error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per frame mean landmark distance (x, y) in iod."""
    return np.linalg.norm(a[..., :2] - b[..., :2], axis=-1).mean(axis=1) / IOD


def test_pose_split_round_trips_and_takes_out_rigid_motion() -> None:
    true, _ = _track(30, shake=True)
    x = true / IOD
    split = PoseSplit(reference_shape(x[:25]))
    v = split.split(x)
    assert np.abs(split.join(v) - x).max() < 1e-9
    assert np.abs(v[:, 7:]).max() < 1e-9  # a rigid head leaves no residual
    assert np.ptp(v[:, 4:7], axis=0).max() > 0.3  # ... its turn is all in the pose


def test_fast_head_does_not_lag() -> None:
    true, meas = _track(125, shake=True)
    scale = np.full(len(meas), IOD)
    new = _error(smooth_track(meas, scale, FPS), true)
    old = _error(smooth_track(meas, scale, FPS, pose_split=False), true)
    assert np.median(new) < 0.02 and new.max() < 0.05  # on the face, within the measurement noise
    assert np.median(old) > 2 * np.median(new) and old.max() > 0.08  # the per-point filter trails the head


def test_still_head_does_not_jitter() -> None:
    true, meas = _track(125, shake=False, seed=1)
    scale = np.full(len(meas), IOD)
    new = smooth_track(meas, scale, FPS)
    assert jitter(new, scale) < 0.25 * jitter(meas, scale)
    assert jitter(new, scale) <= jitter(smooth_track(meas, scale, FPS, pose_split=False), scale)
    assert np.median(_error(new, true)) < 0.5 * np.median(_error(meas, true))  # closer to the truth than raw


@pytest.mark.parametrize("shake", [True, False])
def test_stream_matches_two_pass(shake: bool) -> None:
    """Fed as render.stream feeds it (one second ahead, forgetting behind, a 3-frame tracker gap), the
    streamed smoother gives the two-pass result within 0.01 px."""
    _, meas = _track(80, shake=shake, seed=2)
    frames = np.array([f for f in range(len(meas)) if not 30 <= f < 33])
    full, filled = interpolate_gaps(frames, meas[frames])
    ref = smooth_track(filled, np.full(len(full), IOD), FPS)
    w = lookahead(FPS)
    sm = StreamSmoother(FPS, w, lambda lm: IOD)
    fed = iter(frames)
    upto = -1
    out = []
    for f in range(len(meas)):
        while upto < f + w and (g := next(fed, None)) is not None:
            sm.add(int(g), meas[g])
            upto = int(g)
        if f == 0:  # render.stream reads the first second's faces first (their look-ahead is short)
            early = [sm.value(e) for e in range(w)]
            assert np.abs(np.stack(early) - ref[:w]).max() < 0.02 * IOD  # near: their look-ahead is short
        out.append(sm.value(f, final=upto == frames[-1] and f + w > upto))
        sm.forget_before(f)
    assert np.abs(np.stack(out) - ref).max() < 0.01


def test_short_tracks() -> None:
    _, meas = _track(5, shake=True, seed=3)
    scale = np.full(5, IOD)
    assert np.array_equal(smooth_track(meas[:2], scale[:2], FPS), meas[:2].astype(np.float32))
    ref = smooth_track(meas, scale, FPS)
    assert np.isfinite(ref).all()
    sm = StreamSmoother(FPS, lookahead(FPS), lambda lm: IOD)
    for f in range(5):
        sm.add(f, meas[f])
    assert np.abs(np.stack([sm.value(f, final=True) for f in range(5)]) - ref).max() < 1e-3
