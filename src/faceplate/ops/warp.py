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


def rbf_field(points: NDArray[np.floating], moves: NDArray[np.floating], shape: tuple[int, int], sigma: float,
              step: int = 4) -> F32:  # fmt: skip
    """Displacement field (H, W, 2) in px that moves ``points`` (N, 2) by ``moves`` (N, 2).

    Solved on the control points (regularised), evaluated on a coarse grid every ``step`` px and
    upsampled (the field is smooth on that scale).
    """
    p = np.asarray(points, np.float64)
    d2 = ((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)
    k = np.exp(-d2 / (2 * sigma**2)) + 1e-3 * np.eye(len(p))
    w = np.linalg.solve(k, np.asarray(moves, np.float64))
    h, wd = shape
    ys, xs = np.mgrid[0:h:step, 0:wd:step]
    grid = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    g2 = ((grid[:, None, :] - p[None, :, :]) ** 2).sum(-1)
    coarse = (np.exp(-g2 / (2 * sigma**2)) @ w).reshape(ys.shape[0], ys.shape[1], 2).astype(np.float32)
    return np.asarray(cv2.resize(coarse, (wd, h), interpolation=cv2.INTER_LINEAR), np.float32)


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
