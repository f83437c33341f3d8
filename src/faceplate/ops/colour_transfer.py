"""Colour transfer between faces (one registry): make ``src`` look lit and graded like ``ref``.

Images are float32 RGB (H, W, 3) in [0, 1]; ``mask`` (H, W) in [0, 1] says which pixels count for the
statistics (the face). Results are clipped to [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.registry import Registry

F32 = NDArray[np.float32]
Transfer = Callable[[F32, F32, F32], F32]
COLOUR_TRANSFER: Registry[Transfer] = Registry("colour transfer mode")


def _pixels(img: F32, mask: F32) -> NDArray[np.float64]:
    sel = mask > 0.5
    px = img[sel] if sel.sum() >= 16 else img.reshape(-1, 3)
    return np.asarray(px, np.float64)


@COLOUR_TRANSFER.register("none")
def none(src: F32, ref: F32, mask: F32) -> F32:
    return src


@COLOUR_TRANSFER.register("rct")
def rct(src: F32, ref: F32, mask: F32) -> F32:
    """Reinhard: match per-channel mean and spread in Lab."""
    s = np.asarray(cv2.cvtColor(np.clip(src, 0, 1).astype(np.float32), cv2.COLOR_RGB2LAB), np.float32)
    r = np.asarray(cv2.cvtColor(np.clip(ref, 0, 1).astype(np.float32), cv2.COLOR_RGB2LAB), np.float32)
    ps, pr = _pixels(s, mask), _pixels(r, mask)
    ms, ss, mr, sr = ps.mean(0), ps.std(0) + 1e-6, pr.mean(0), pr.std(0) + 1e-6
    out = ((s - ms) * (sr / ss) + mr).astype(np.float32)
    return np.clip(np.asarray(cv2.cvtColor(out, cv2.COLOR_LAB2RGB), np.float32), 0, 1)


def _sqrtm(c: NDArray[np.float64]) -> NDArray[np.float64]:
    w, v = np.linalg.eigh(c)
    return np.asarray((v * np.sqrt(np.maximum(w, 1e-10))) @ v.T, np.float64)


def _linear(src: F32, t: NDArray[np.float64], ms: NDArray[np.float64], mr: NDArray[np.float64]) -> F32:
    out = (src.reshape(-1, 3) - ms) @ t.T + mr
    return np.clip(out.reshape(src.shape), 0, 1).astype(np.float32)


@COLOUR_TRANSFER.register("lct")
def lct(src: F32, ref: F32, mask: F32) -> F32:
    """Linear colour transfer: match mean and covariance in RGB (principal-axes mapping)."""
    ps, pr = _pixels(src, mask), _pixels(ref, mask)
    cs, cr = np.cov(ps.T) + np.eye(3) * 1e-5, np.cov(pr.T) + np.eye(3) * 1e-5
    t = _sqrtm(cr) @ np.linalg.inv(_sqrtm(cs))
    return _linear(src, t, ps.mean(0), pr.mean(0))


@COLOUR_TRANSFER.register("mkl")
def mkl(src: F32, ref: F32, mask: F32) -> F32:
    """Monge-Kantorovitch linear transfer (Pitié & Kokaram 2007): the optimal-transport linear map."""
    ps, pr = _pixels(src, mask), _pixels(ref, mask)
    a, b = np.cov(ps.T) + np.eye(3) * 1e-5, np.cov(pr.T) + np.eye(3) * 1e-5
    ra = _sqrtm(a)
    ra_inv = np.linalg.inv(ra)
    t = ra_inv @ _sqrtm(ra @ b @ ra) @ ra_inv
    return _linear(src, t, ps.mean(0), pr.mean(0))


def _match_1d(x: NDArray[np.float64], xs: NDArray[np.float64], ys: NDArray[np.float64]) -> NDArray[np.float64]:
    """Map values ``x`` so the distribution of ``xs`` becomes that of ``ys`` (quantile matching)."""
    q = np.linspace(0, 1, 64)
    return np.asarray(np.interp(x, np.quantile(xs, q), np.quantile(ys, q)), np.float64)


def _rotations(n: int) -> list[NDArray[np.float64]]:
    rng = np.random.default_rng(7)  # fixed: the same grade every frame (no flicker)
    out = [np.eye(3)]
    while len(out) < n:
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        out.append(q)
    return out


def _sliced(src: F32, ref: F32, mask: F32, steps: int, relax: float) -> F32:
    ps, pr = _pixels(src, mask), _pixels(ref, mask)
    flat = np.asarray(src.reshape(-1, 3), np.float64)
    for rot in _rotations(steps):
        a, b, allp = ps @ rot, pr @ rot, flat @ rot
        step = np.zeros_like(allp)
        step_s = np.zeros_like(a)
        for k in range(3):
            step[:, k] = _match_1d(allp[:, k], a[:, k], b[:, k]) - allp[:, k]
            step_s[:, k] = _match_1d(a[:, k], a[:, k], b[:, k]) - a[:, k]
        flat = flat + relax * step @ rot.T
        ps = ps + relax * step_s @ rot.T
    return np.clip(flat.reshape(src.shape), 0, 1).astype(np.float32)


@COLOUR_TRANSFER.register("idt")
def idt(src: F32, ref: F32, mask: F32) -> F32:
    """Iterative distribution transfer (Pitié 2005): 1-D matching along a fixed set of rotated axes."""
    return _sliced(src, ref, mask, steps=10, relax=1.0)


@COLOUR_TRANSFER.register("sot")
def sot(src: F32, ref: F32, mask: F32) -> F32:
    """Sliced optimal transport: more, gentler steps along random axes."""
    return _sliced(src, ref, mask, steps=20, relax=0.5)
