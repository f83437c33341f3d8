"""Per-shot skin-colour model: a Gaussian in (luma, Cb/luma, Cr/luma) fitted to core skin patches.

Hair, beards, glasses frames, lips, teeth and background differ from skin in luma or in chroma relative
to luma, so their Mahalanobis distance is large and their skin likelihood falls to 0; skin turned away
from the light keeps its chroma-to-luma ratios and stays skin.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.ops.filters import blur_radius, gauss, luma
from faceplate.rec709 import YCBCR

F32 = NDArray[np.float32]
SUM3 = np.ones((1, 3), np.float32)


def ycbcr(rgb: F32) -> F32:
    """Encoded RGB (..., 3) in [0, 1] → Rec.709 Y'CbCr (..., 3), chroma centred on 0."""
    return colour_matrix(rgb, YCBCR)


def colour_matrix(rgb: F32, m: NDArray[np.float32]) -> F32:
    """Per-pixel 3x3 matrix ``m`` applied to (..., 3) (OpenCV's transform: ~5x numpy's matmul here)."""
    flat = np.ascontiguousarray(rgb, np.float32).reshape(-1, 1, 3)
    return np.asarray(cv2.transform(flat, m), np.float32).reshape(rgb.shape)


def channel_sum(a: F32) -> F32:
    """(..., 3) → (...): the sum of the three channels (OpenCV's transform: ~5x numpy's sum over them)."""
    flat = np.ascontiguousarray(a, np.float32).reshape(-1, 1, 3)
    return np.asarray(cv2.transform(flat, SUM3), np.float32).reshape(a.shape[:-1])


def offset(f: F32, mean: NDArray[np.float64]) -> F32:
    """``f`` (..., 3) less ``mean`` (3,) (as float32) per channel (OpenCV's subtract: the same differences,
    without numpy's slow broadcast over a last axis of 3)."""
    m = mean.astype(np.float32)
    if f.size == 0:
        return np.asarray(f - m, np.float32)
    flat = np.ascontiguousarray(f, np.float32).reshape(-1, 1, 3)
    scalar = (float(m[0]), float(m[1]), float(m[2]), 0.0)
    return np.asarray(cv2.subtract(flat, scalar), np.float32).reshape(f.shape)  # type: ignore[call-overload]


def skin_features(rgb: F32) -> F32:
    """(..., 3) luma and chroma over luma: shading scales encoded RGB, so Cb/Y' and Cr/Y' stay put on a
    face turned from the light while hair, lips and backgrounds move away."""
    c = ycbcr(np.asarray(rgb, np.float32))
    inv = 1.0 / np.maximum(c[..., 0], 0.06)
    c[..., 1] *= inv
    c[..., 2] *= inv
    return c


@dataclass(frozen=True)
class SkinModel:
    """Mean (3,) and inverse covariance (3, 3) of skin features (``skin_features``); ``near``/``far`` in
    Mahalanobis units; pixels darker than ``dark`` times the mean luma are not skin (hair, mics, deep shade)."""

    mean: NDArray[np.float64]
    inv_cov: NDArray[np.float64]
    near: float = 2.5
    far: float = 4.5
    dark: float = 0.45

    @classmethod
    def fit(cls, pixels: F32, luma_slack: float = 2.5) -> SkinModel:
        """Fit to skin pixels (N, 3) encoded RGB. Luma variance is widened by ``luma_slack`` (shading)."""
        if len(pixels) < 50:
            raise ValueError("too few skin pixels to fit a colour model")
        y = skin_features(np.asarray(pixels, np.float32).reshape(-1, 1, 3)).reshape(-1, 3).astype(np.float64)
        lo, hi = np.percentile(y, [2, 98], axis=0)
        y = y[np.all((y >= lo) & (y <= hi), axis=1)]  # drop specular and shadow outliers
        cov = np.cov(y.T) + np.diag([1e-4, 1e-4, 1e-4])
        scale = np.diag([luma_slack, 1.3, 1.3])
        cov = scale @ cov @ scale
        return cls(y.mean(0), np.linalg.inv(cov))

    def deviation(self, rgb: F32) -> F32:
        """(..., 3) per-feature offsets of encoded RGB (..., 3) from the mean, in the model's own standard
        deviations (luma widened by the fit's slack, chroma over luma by 1.3)."""
        sd = np.sqrt(np.diag(np.linalg.inv(self.inv_cov))).astype(np.float32)
        return np.asarray((skin_features(rgb) - self.mean.astype(np.float32)) / sd, np.float32)

    def likelihood(self, rgb: F32, dark: F32 | float | None = None) -> F32:
        """Skin likelihood (H, W) in [0, 1] for encoded RGB (H, W, 3): 1 inside ``near``, 0 beyond ``far``
        and below ``dark`` (default ``self.dark``; a map (H, W) sets it per pixel) times the mean luma."""
        f = skin_features(rgb)
        d = offset(f, self.mean)
        q = colour_matrix(d, self.inv_cov.astype(np.float32))
        q *= d
        m = channel_sum(q)  # the same sums as numpy's, worked in place (fewer full-size temporaries)
        np.sqrt(np.maximum(m, 0.0, out=m), out=m)
        np.subtract(self.far, m, out=m)
        m /= self.far - self.near
        lit = np.asarray(f[..., 0] / float(self.mean[0]), np.float32)  # (an array even for one pixel)
        lit -= self.dark if dark is None else dark
        lit /= 0.1
        m = np.clip(m, 0.0, 1.0, out=m)
        m *= np.clip(lit, 0.0, 1.0, out=lit)
        return np.asarray(m, np.float32)


def hair_strands(rgb: F32, reference: F32, iod: float, ratio: tuple[float, float] = (2.5, 4.5),
                 coherence: tuple[float, float] = (0.8, 0.92), rows: int | None = None) -> F32:  # fmt: skip
    """Hair strands (H, W) in [0, 1] of encoded RGB (H, W, 3): fine luma texture (finer than 0.03 eye
    distances, its energy over 0.06) ``ratio`` times stronger than in ``reference`` (H, W, > 0.5: the cheeks)
    and oriented (structure-tensor coherence in ``coherence``). Fair or white hair that reads as skin by its
    colour still has strands; skin's pores are neither as strong nor aligned. With ``rows``, only the rows
    above it (0 below; the same values above, at less cost)."""
    h = rgb.shape[0]
    ref = reference > 0.5
    out = np.zeros(rgb.shape[:2], np.float32)
    if not ref.any():
        return out
    s = 0.06 * iod
    n = h if rows is None else max(0, min(h, rows))
    if n == 0:
        return out
    m = max(n, int(np.flatnonzero(ref.any(axis=1))[-1]) + 1)  # the rows ``tex`` is read on
    below = (min(h, m + blur_radius(0.03 * iod) + blur_radius(s)), min(h, n + 2 + int(np.ceil(3 * s))))
    y = luma(rgb[: max(below)])  # the rows read (luma is per pixel: the same values)
    part = y[: below[0]]  # rows below m reach it by blurs only
    hp = part - gauss(part, 0.03 * iod)
    tex = np.sqrt(gauss(hp * hp, s))[:m]
    base = max(float(np.median(tex[ref[:m]])), 1e-4)
    top = y[: below[1]]  # rows below n reach rows above by Sobel + blur only
    gx = cv2.Sobel(top, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(top, cv2.CV_32F, 0, 1)
    jxx, jyy, jxy = (gauss(a, s)[:n] for a in (gx * gx, gy * gy, gx * gy))
    coh = np.sqrt((jxx - jyy) ** 2 + 4 * jxy * jxy) / (jxx + jyy + 1e-8)
    strong = np.clip((tex[:n] / base - ratio[0]) / (ratio[1] - ratio[0]), 0.0, 1.0)
    aligned = np.clip((coh - coherence[0]) / (coherence[1] - coherence[0]), 0.0, 1.0)
    out[:n] = strong * aligned
    return out
