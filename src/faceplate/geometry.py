"""Pure 2-D geometry on landmarks and affine maps (no I/O).

Convention everywhere: pixel coordinates with pixel *centres* on integers (OpenCV's), x right, y down.
A 2x3 float64 matrix ``M`` maps source points ``p`` to ``M[:, :2] @ p + M[:, 2]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]


@dataclass(frozen=True)
class Roi:
    """Square, rotated region: centre (px), side length (px), angle (radians, eye line vs +x)."""

    cx: float
    cy: float
    size: float
    angle: float

    def matrix(self, out_size: int) -> F64:
        """2x3 map from plate pixels to an ``out_size`` square crop of this ROI (face upright)."""
        s = out_size / self.size
        c, n = np.cos(-self.angle) * s, np.sin(-self.angle) * s
        m = np.array([[c, -n, 0.0], [n, c, 0.0]])
        half = out_size / 2.0 - 0.5
        m[:, 2] = np.array([half, half]) - m[:, :2] @ np.array([self.cx, self.cy])
        return m

    def box(self) -> F64:
        """Axis-aligned box (x0, y0, x1, y1) around the rotated square."""
        r = self.size / 2 * (abs(np.cos(self.angle)) + abs(np.sin(self.angle)))
        return np.array([self.cx - r, self.cy - r, self.cx + r, self.cy + r])


def invert(m: F64) -> F64:
    """Inverse of a 2x3 affine map."""
    a = np.linalg.inv(m[:, :2])
    return np.hstack([a, (-a @ m[:, 2])[:, None]])


def transform(m: F64, pts: NDArray[np.floating]) -> NDArray[np.floating]:
    """Apply 2x3 ``m`` to points (..., 2) or (..., 3) (z is scaled by the map's scale)."""
    xy = pts[..., :2] @ m[:, :2].T + m[:, 2]
    if pts.shape[-1] == 2:
        return xy.astype(pts.dtype)
    scale = np.sqrt(abs(np.linalg.det(m[:, :2])))
    return np.concatenate([xy, pts[..., 2:] * scale], axis=-1).astype(pts.dtype)


def umeyama(src: NDArray[np.floating], dst: NDArray[np.floating], weights: NDArray[np.floating] | None = None) -> F64:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` (N, 2) onto ``dst``."""
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    s, d = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = w @ s, w @ d
    sc, dc = s - ms, d - md
    cov = (dc * w[:, None]).T @ sc
    u, sig, vt = np.linalg.svd(cov)
    e = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ e @ vt
    var = (w * (sc**2).sum(1)).sum()
    scale = (sig * np.diag(e)).sum() / var
    m = np.zeros((2, 3))
    m[:, :2] = scale * r
    m[:, 2] = md - m[:, :2] @ ms
    return m


def roi_from_points(pts: NDArray[np.floating], left: int, right: int, scale: float) -> Roi:
    """Square ROI around landmarks, rotated so the line ``pts[left] → pts[right]`` is horizontal.

    The box is measured in the rotated frame (roll-invariant) and enlarged by ``scale``.
    """
    p = np.asarray(pts[:, :2], np.float64)
    v = p[right] - p[left]
    angle = float(np.arctan2(v[1], v[0]))
    c, s = np.cos(-angle), np.sin(-angle)
    rot = p @ np.array([[c, s], [-s, c]])
    lo, hi = rot.min(0), rot.max(0)
    mid = (lo + hi) / 2
    cx, cy = np.array([[c, s], [-s, c]]) @ mid
    return Roi(float(cx), float(cy), float((hi - lo).max() * scale), angle)


def box_of(pts: NDArray[np.floating]) -> F64:
    """Axis-aligned bounding box (x0, y0, x1, y1) of points (N, >=2)."""
    p = np.asarray(pts[:, :2], np.float64)
    return np.concatenate([p.min(0), p.max(0)])


def iou(a: NDArray[np.floating], b: NDArray[np.floating]) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def similarity_3d(src: NDArray[np.floating], dst: NDArray[np.floating]) -> tuple[float, F64, F64]:
    """Least-squares similarity in 3-D (Umeyama): ``dst ≈ s * R @ src + t``; returns (s, R (3, 3), t (3,))."""
    s, d = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = s.mean(0), d.mean(0)
    sc, dc = s - ms, d - md
    u, sig, vt = np.linalg.svd(dc.T @ sc / len(s))
    e = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ e @ vt
    scale = float((sig * np.diag(e)).sum() / (sc**2).sum(1).mean())
    return scale, r, md - scale * r @ ms
