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
        d = f - self.mean.astype(np.float32)
        q = colour_matrix(d, self.inv_cov.astype(np.float32)) * d
        m = np.sqrt(np.maximum(channel_sum(q), 0.0))
        like = np.clip((self.far - m) / (self.far - self.near), 0.0, 1.0)
        floor = self.dark if dark is None else dark
        lit = np.clip((f[..., 0] / float(self.mean[0]) - floor) / 0.1, 0.0, 1.0)
        return np.asarray(like * lit, np.float32)


def hair_strands(rgb: F32, reference: F32, iod: float, ratio: tuple[float, float] = (2.5, 4.5),
                 coherence: tuple[float, float] = (0.8, 0.92), rows: int | None = None) -> F32:  # fmt: skip
    """Hair strands (H, W) in [0, 1] of encoded RGB (H, W, 3): fine luma texture (finer than 0.03 eye
    distances, its energy over 0.06) ``ratio`` times stronger than in ``reference`` (H, W, > 0.5: the cheeks)
    and oriented (structure-tensor coherence in ``coherence``). Fair or white hair that reads as skin by its
    colour still has strands; skin's pores are neither as strong nor aligned. With ``rows``, only the rows
    above it (0 below; the same values above, at less cost)."""
    y = luma(rgb)
    ref = reference > 0.5
    out = np.zeros(y.shape, np.float32)
    if not ref.any():
        return out
    s = 0.06 * iod
    n = y.shape[0] if rows is None else max(0, min(y.shape[0], rows))
    if n == 0:
        return out
    m = max(n, int(np.flatnonzero(ref.any(axis=1))[-1]) + 1)  # the rows ``tex`` is read on
    part = y[: min(y.shape[0], m + blur_radius(0.03 * iod) + blur_radius(s))]  # rows below m reach it by blurs only
    hp = part - gauss(part, 0.03 * iod)
    tex = np.sqrt(gauss(hp * hp, s))[:m]
    base = max(float(np.median(tex[ref[:m]])), 1e-4)
    top = y[: min(y.shape[0], n + 2 + int(np.ceil(3 * s)))]  # rows below n reach rows above by Sobel + blur only
    gx = cv2.Sobel(top, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(top, cv2.CV_32F, 0, 1)
    jxx, jyy, jxy = (gauss(a, s)[:n] for a in (gx * gx, gy * gy, gx * gy))
    coh = np.sqrt((jxx - jyy) ** 2 + 4 * jxy * jxy) / (jxx + jyy + 1e-8)
    strong = np.clip((tex[:n] / base - ratio[0]) / (ratio[1] - ratio[0]), 0.0, 1.0)
    aligned = np.clip((coh - coherence[0]) / (coherence[1] - coherence[0]), 0.0, 1.0)
    out[:n] = strong * aligned
    return out
