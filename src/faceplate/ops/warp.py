"""Smooth landmark-driven warps in aligned space (pure ops): Gaussian radial-basis displacement fields.

Control points carry displacements (px); anchor points carry zero. The field interpolates them with a
Gaussian kernel (width ``sigma`` px), so it is smooth, and stays small next to every anchor: a warp made
of small displacements (|d| << sigma) cannot fold over itself (no tearing).
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]


def rbf_field(points: NDArray[np.floating], moves: NDArray[np.floating], shape: tuple[int, int], sigma: float) -> F32:
    """Displacement field (H, W, 2) in px that moves ``points`` (N, 2) by ``moves`` (N, 2).

    Solved on the control points (regularised) and evaluated exactly at every pixel. The Gaussian kernel
    is separable, exp(-(dx² + dy²) / 2σ²) = exp(-dx² / 2σ²) · exp(-dy² / 2σ²), so each component of the
    field is one (H, N) x (N, W) matrix product.
    """
    p = np.asarray(points, np.float64)
    dx, dy = p[:, :1] - p[:, 0], p[:, 1:] - p[:, 1]  # (N, N) each: cheaper than one (N, N, 2) difference
    k = np.exp(-(dx * dx + dy * dy) / (2 * sigma**2)) + 1e-3 * np.eye(len(p))
    w = np.linalg.solve(k, np.asarray(moves, np.float64)).astype(np.float32)
    h, wd = shape
    pf = p.astype(np.float32)
    s2 = np.float32(2 * sigma**2)
    ex = np.exp(-((np.arange(wd, dtype=np.float32)[None, :] - pf[:, :1]) ** 2) / s2)  # (N, W)
    ey = np.exp(-((np.arange(h, dtype=np.float32)[:, None] - pf[None, :, 1]) ** 2) / s2)  # (H, N)
    return np.asarray(cv2.merge([ey @ (w[:, :1] * ex), ey @ (w[:, 1:] * ex)]), np.float32)  # (merge: no strided stack)


def apply_field(img: F32, field: F32) -> F32:
    """Warp ``img`` (H, W, C) forward by ``field``: content at p moves to p + field(p) (first-order inverse)."""
    h, w = field.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return np.asarray(cv2.remap(img, xs - field[..., 0], ys - field[..., 1], cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT), np.float32)  # fmt: skip


def min_jacobian(field: F32) -> float:
    """Smallest determinant of the warp's Jacobian (1 = no change; ≤ 0 would mean a fold)."""
    dx = np.gradient(field[..., 0])
    dy = np.gradient(field[..., 1])
    det = (1 + dx[1]) * (1 + dy[0]) - dx[0] * dy[1]
    return float(det.min())
