"""Example-based skin transfer in aligned space (pure ops): a younger still's skin statistics onto the plate.

A reference face is warped onto the plate face piecewise-affinely over a triangulation of the mesh
landmarks. Luma is split into bands (lengths in eye distances ``iod``, as in :mod:`faceplate.ops.retouch`):
fine < FINE (pores: kept as shot), mid FINE..MID/2 (wrinkles: its energy per region scaled down towards the
reference's, never up), low (tone: chroma offsets and luma ratios relative to a broad blur, so the
reference's lighting and white balance do not come along).

Images are float32 encoded RGB (H, W, 3) in [0, 1]; weights float32 (H, W) in [0, 1]; points (N, 2) px.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.ops.filters import blur, gauss, normalized_blur
from faceplate.ops.retouch import FINE, MID
from faceplate.ops.skin import colour_matrix, ycbcr
from faceplate.rec709 import RGB_FROM_YCBCR

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]
LOW, BROAD, REGION = 0.5 * MID, 0.4, 0.12  # low-band blur, broad (lighting) blur, energy region size (iod units)
STATS = 4  # channels of skin_stats: Cb offset, Cr offset, luma ratio, mid-band energy


def mesh_triangles(points: NDArray[np.floating]) -> I64:
    """Delaunay triangles (T, 3) of ``points`` (N, 2) (e.g. the canonical face's mesh points)."""
    from scipy.spatial import Delaunay

    return np.asarray(Delaunay(np.asarray(points, np.float64)).simplices, np.int64)


def _area2(p: NDArray[np.float64]) -> NDArray[np.float64]:
    """Twice the signed area of triangles (T, 3, 2)."""
    a, b = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    return np.asarray(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])


def piecewise_affine_map(dst: NDArray[np.floating], src: NDArray[np.floating], tris: I64,
                         shape: tuple[int, int]) -> tuple[F32, F32]:  # fmt: skip
    """Where each pixel of a (H, W) image with points ``dst`` (N, 2) comes from in the image with ``src`` (N, 2).

    Returns (map (H, W, 2) source px, valid (H, W) in {0, 1}). Pixels outside the triangles, and triangles
    that fold (their orientation differs between ``dst`` and ``src``, e.g. a turned face), are not valid.
    """
    d, s = np.asarray(dst, np.float64)[tris, :2], np.asarray(src, np.float64)[tris, :2]
    a_d, a_s = _area2(d), _area2(s)
    ok = (np.sign(a_d) == np.sign(a_s)) & (np.abs(a_d) > 1e-3) & (np.abs(a_s) > 1e-3)
    index = np.full(shape, -1, np.int32)
    for t in np.flatnonzero(ok):
        cv2.fillConvexPoly(index, np.round(d[t] * 16).astype(np.int32), (int(t),), cv2.LINE_8, 4)
    mats = np.zeros((len(tris), 2, 3), np.float64)
    for t in np.flatnonzero(ok):
        mats[t] = cv2.getAffineTransform(d[t].astype(np.float32), s[t].astype(np.float32))
    ys, xs = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    m = mats[np.maximum(index, 0)].astype(np.float32)
    mx = m[..., 0, 0] * xs + m[..., 0, 1] * ys + m[..., 0, 2]
    my = m[..., 1, 0] * xs + m[..., 1, 1] * ys + m[..., 1, 2]
    valid = (index >= 0).astype(np.float32)
    return np.stack([np.where(valid > 0, mx, -1), np.where(valid > 0, my, -1)], -1).astype(np.float32), valid


def remap(img: F32, where: F32) -> F32:
    """``img`` (h, w[, C]) sampled at ``where`` (H, W, 2) px, bilinear; outside reads 0."""
    zero = (0.0, 0.0, 0.0, 0.0)
    x, y = where[..., 0], where[..., 1]
    out = cv2.remap(img, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=zero)
    return np.asarray(out, np.float32)


def luma_bands(y: F32, iod: float) -> tuple[F32, F32, F32]:
    """(fine, mid, low) bands (H, W) of luma ``y`` (H, W); they sum to ``y``."""
    g = gauss(y, FINE * iod)
    low = blur(y, LOW * iod)
    return y - g, g - low, low


def match_blur(native_iod: float, work_iod: float) -> float:
    """Gaussian sigma (work px) that an image upsampled from ``native_iod`` to ``work_iod`` px lacks (0 if not)."""
    k = work_iod / max(native_iod, 1e-6)
    return float(0.4 * np.sqrt(k * k - 1.0)) if k > 1.0 else 0.0


def skin_stats(img: F32, weight: F32, iod: float, sigma: float = 0.0) -> F32:
    """Lighting-independent skin statistics (H, W, STATS) of ``img`` where ``weight`` > 0.

    Channels: low-band Cb and Cr minus the broad blur's, low-band luma over the broad blur's, and the
    local mid-band energy (mean square per REGION). The energy is measured after a blur of ``sigma`` px,
    so an image and a softer (upsampled) reference are compared at the same resolution.
    """
    c = ycbcr(img)
    w = np.ascontiguousarray(weight, np.float32)
    low = normalized_blur(c, w, LOW * iod)
    broad = normalized_blur(c, w, BROAD * iod)
    _, mid, _ = luma_bands(gauss(np.ascontiguousarray(c[..., 0]), sigma), iod)
    energy = normalized_blur(mid * mid, w, REGION * iod)
    ratio = low[..., 0] / np.maximum(broad[..., 0], 0.02)
    return np.dstack([low[..., 1:] - broad[..., 1:], ratio, energy]).astype(np.float32)


@dataclass(frozen=True)
class TransferSettings:
    """Shares of the reference's statistics taken (0..1): tone (chroma), shading (low-band luma: lifted where
    the reference is relatively brighter, never darkened, at most 15%), texture (mid-band energy)."""

    tone: float = 0.8
    shading: float = 0.0  # off by default: low-band shading follows the lighting as much as age
    texture: float = 1.0
    min_gain: float = 0.35  # the mid band is never scaled below this share

    def scaled(self, k: float) -> TransferSettings:
        """The same settings with every share times ``k`` (an overall strength)."""
        return TransferSettings(self.tone * k, self.shading * k, self.texture * k, self.min_gain)


def transfer(img: F32, weight: F32, ref: F32, ref_weight: F32, iod: float, sigma: float,
             s: TransferSettings) -> F32:  # fmt: skip
    """``img`` (H, W, 3) with its skin moved towards the reference statistics ``ref`` (H, W, STATS).

    ``weight`` (H, W): the plate's skin; ``ref_weight`` (H, W): where ``ref`` is valid (warped reference
    skin); ``sigma``: the blur the reference's energy was measured after (see :func:`skin_stats`). The
    fine band is untouched; the mid band is only ever scaled down, shadows only ever lifted.
    """
    w = np.ascontiguousarray(weight * ref_weight, np.float32)
    mine = skin_stats(img, weight, iod, sigma)
    c = ycbcr(img)
    c[..., 1:] += (s.tone * w)[..., None] * (ref[..., :2] - mine[..., :2])
    lift = np.clip(ref[..., 2] / np.maximum(mine[..., 2], 1e-3), 1.0, 1.15)  # fill shadows only (hollows, folds)
    c[..., 0] *= lift ** (s.shading * w)
    gain = np.clip(np.sqrt(ref[..., 3] / np.maximum(mine[..., 3], 1e-9)), s.min_gain, 1.0)
    _, mid, _ = luma_bands(np.ascontiguousarray(c[..., 0]), iod)
    c[..., 0] -= s.texture * w * (1.0 - gain) * mid
    return np.clip(colour_matrix(c, RGB_FROM_YCBCR), 0, 1).astype(np.float32)


def average_stats(stats: list[F32], weights: list[F32]) -> tuple[F32, F32]:
    """Weighted mean (H, W, C) of several references' statistics, and their coverage (H, W) (the max weight)."""
    num = np.zeros_like(stats[0])
    den = np.zeros(stats[0].shape[:2], np.float32)
    for st, w in zip(stats, weights, strict=True):
        num += st * w[..., None]
        den += w
    return (num / np.maximum(den, 1e-6)[..., None]).astype(np.float32), np.max(weights, axis=0).astype(np.float32)
