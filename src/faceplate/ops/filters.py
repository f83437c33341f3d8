"""Edge-aware and normalised filters on float32 images (H, W) or (H, W, C)."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.rec709 import LUMA

F32 = NDArray[np.float32]
PYRAMID_FROM = 6.0  # px: blurs wider than this run on a pyramid level


def spread(mask: F32, channels: int) -> F32:
    """(H, W) → (H, W, C): ``mask`` in every channel, to weigh an image (H, W, C) by (OpenCV's merge: a
    product with it ~2x faster than numpy's broadcast of ``mask[..., None]``)."""
    if channels == 1:
        return np.asarray(mask[..., None], np.float32)
    return np.asarray(cv2.merge([np.asarray(mask, np.float32)] * channels), np.float32)


def box(img: F32, r: int) -> F32:
    """Mean over a (2r+1)^2 window, edges reflected."""
    return np.asarray(cv2.blur(img, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT), np.float32)


def blur_radius(sigma: float) -> int:
    """Reach (px) of :func:`gauss` at ``sigma``: its kernel's half width."""
    return int(np.ceil(3 * sigma)) if sigma > 0 else 0


def gauss(img: F32, sigma: float) -> F32:
    """Gaussian blur with standard deviation ``sigma`` px (kernel to 3 sigma: :func:`blur_radius`)."""
    if sigma <= 0:
        return img
    k = 2 * blur_radius(sigma) + 1
    return np.asarray(cv2.GaussianBlur(img, (k, k), sigma, borderType=cv2.BORDER_REFLECT), np.float32)


def hessian_eigen(img: F32, largest: bool = True) -> F32:
    """The largest (or smallest) eigenvalue (H, W) of the Hessian of ``img`` (H, W) (3x3 Sobel derivatives),
    worked in place on the derivatives: ``0.5 (xx + yy) ± sqrt(0.25 (xx - yy)^2 + xy^2)``."""
    yy = np.asarray(cv2.Sobel(img, cv2.CV_32F, 0, 2, ksize=3), np.float32)
    xx = np.asarray(cv2.Sobel(img, cv2.CV_32F, 2, 0, ksize=3), np.float32)
    xy = np.asarray(cv2.Sobel(img, cv2.CV_32F, 1, 1, ksize=3), np.float32)
    root = xx - yy
    np.square(root, out=root)
    root *= 0.25
    np.multiply(xy, xy, out=xy)
    root += xy
    np.sqrt(root, out=root)
    xx += yy
    xx *= 0.5
    if largest:
        xx += root
    else:
        xx -= root
    return np.asarray(xx, np.float32)


def guided(guide: F32, src: F32, r: int, eps: float) -> F32:
    """He et al.'s guided filter with a grey ``guide`` (H, W): edge-preserving smoothing of ``src``.

    ``src`` is (H, W) or (H, W, C). ``r`` is the window radius in px, ``eps`` the regulariser in variance
    units of the guide (values in [0, 1]): flat areas (variance << eps) are averaged, edges kept.
    """
    mean_i = box(guide, r)
    denom = box(guide * guide, r) - mean_i * mean_i + eps
    channels = [src] if src.ndim == 2 else [np.asarray(p, np.float32) for p in cv2.split(np.asarray(src, np.float32))]
    out = []
    for p in channels:
        mean_p = box(p, r)
        a = (box(guide * p, r) - mean_i * mean_p) / denom
        b = mean_p - a * mean_i
        out.append(box(a, r) * guide + box(b, r))
    return out[0] if src.ndim == 2 else np.asarray(cv2.merge(out), np.float32)


def blur(img: F32, sigma: float) -> F32:
    """Gaussian blur; large sigmas run on a pyramid level (5-20x faster, centred as :func:`gauss`).

    ``img`` is padded to a multiple of the level's factor ``f``, so the level's pixel ``i`` sits on pixel
    ``f i`` (``cv2.pyrDown``); a resize back reads pixel centres, ``(f - 1) / 2f`` level px off that, which
    the level's blur takes back (:func:`shifted_gauss`; without it the blur moved (f - 1) / 2 px down-right)."""
    if sigma <= PYRAMID_FROM:
        return gauss(img, sigma)
    h, w = img.shape[:2]
    f = 1
    while sigma / f > PYRAMID_FROM and min(-(-h // f), -(-w // f)) > 16:
        f *= 2
    hp, wp = -(-h // f) * f, -(-w // f) * f
    small = (
        img
        if (hp, wp) == (h, w)
        else np.asarray(cv2.copyMakeBorder(img, 0, hp - h, 0, wp - w, cv2.BORDER_REFLECT), np.float32)
    )
    for _ in range(f.bit_length() - 1):
        small = np.asarray(cv2.pyrDown(small), np.float32)
    level = np.sqrt(max((sigma / f) ** 2 - 0.5, 0.25))  # pyrDown + the resampling: ~0.7 level px
    out = shifted_gauss(small, level, (f - 1) / (2 * f))
    return np.asarray(cv2.resize(out, (wp, hp), interpolation=cv2.INTER_LINEAR)[:h, :w], np.float32)


def shifted_gauss(img: F32, sigma: float, d: float) -> F32:
    """Gaussian blur of ``img`` (H, W[, C]) centred ``d`` (0 <= d < 1) px down-right of each pixel:
    ``out(u) ≈ gauss(img, sigma)(u + d)``. A symmetric blur, then a 2-tap linear shift whose own variance
    ``d (1 - d)`` the blur leaves out (the cheapest exact-mean form: OpenCV's Gaussian is ~2x faster than a
    general kernel)."""
    base = gauss(img, float(np.sqrt(max(sigma * sigma - d * (1.0 - d), 0.25))))
    k = np.array([0.0, 1.0 - d, d], np.float32)  # out(u) = (1 - d) in(u) + d in(u + 1)
    return np.asarray(cv2.sepFilter2D(base, cv2.CV_32F, k, k, borderType=cv2.BORDER_REFLECT), np.float32)


def normalized_blur(img: F32, weight: F32, sigma: float) -> F32:
    """Blur ``img`` using only pixels where ``weight`` (H, W) is high: fills holes from their surroundings."""
    w = np.maximum(blur(weight, sigma), 1e-6)
    if img.ndim == 3:
        c = img.shape[2]
        return blur(img * spread(weight, c), sigma) / spread(w, c)
    return blur(img * weight, sigma) / w


def fill_holes(img: F32, holes: F32, sigma: float) -> F32:
    """``img`` (H, W, C) with the pixels where ``holes`` (H, W) is high replaced by a normalised blur of
    the rest (so filters near an occluder do not pull its colour in)."""
    if not holes.any():
        return img
    keep = 1.0 - holes
    w = spread(keep, img.shape[2])
    return np.asarray(img * w + normalized_blur(img, keep, sigma) * (1.0 - w), np.float32)


def luma(rgb: F32) -> F32:
    """Rec.709 luma of encoded RGB (H, W, 3) → (H, W)."""
    flat = np.ascontiguousarray(rgb, np.float32).reshape(-1, 1, 3)  # OpenCV, not BLAS: no spinning BLAS threads
    return np.asarray(cv2.transform(flat, LUMA), np.float32).reshape(rgb.shape[:-1])


def fill_nonfinite(img: F32, sigma: float = 2.0) -> F32:
    """``img`` (H, W, C) with NaN/Inf pixels replaced by a blur of their finite neighbours (a copy).

    A pixel with any non-finite channel counts as missing in all channels; holes wider than a few
    ``sigma`` get the mean of the finite pixels.
    """
    ok = np.isfinite(img).all(axis=2)
    if ok.all():
        return img
    clean = np.where(ok[..., None], img, 0.0).astype(np.float32)
    w = ok.astype(np.float32)
    near = gauss(w, sigma)
    filled = gauss(clean, sigma) / np.maximum(near, 1e-6)[..., None]
    mean = clean[ok].mean(axis=0) if ok.any() else np.zeros(img.shape[2], np.float32)
    filled = np.where((near > 1e-3)[..., None], filled, mean)
    return np.asarray(np.where(ok[..., None], img, filled), np.float32)
