"""Skin retouch in aligned space (pure ops): frequency separation, blemishes, wrinkles, under-eye, tone.

All scales are fractions of the inter-ocular distance ``iod`` (px) so a close-up and a wide shot get the
same treatment. Bands (for a face with iod = 100 px): fine < ~1.2 px (pores, kept), mid ~1.2-12 px
(blemishes, wrinkles, uneven texture: smoothed), low > 12 px (tone and shape: kept, evened gently).
Images are float32 encoded RGB (H, W, 3) in [0, 1]; masks float32 (H, W) in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.errors import ConfigError
from faceplate.ops.filters import blur, gauss, guided, hessian_eigen, luma, normalized_blur, spread
from faceplate.ops.regions import blurred_over
from faceplate.ops.skin import colour_matrix, ycbcr
from faceplate.rec709 import RGB_FROM_YCBCR

F32 = NDArray[np.float32]
FINE, MID = 0.012, 0.12  # band edges in iod units (for measuring)
FINE_WORK = 0.8  # px at the working scale: the finest band, kept by ``texture``
SMOOTH_R, SMOOTH_EPS = 0.06, 0.01  # guided-filter radius (iod units) and edge threshold (luma variance)


@dataclass(frozen=True)
class RetouchSettings:
    """What to fix and how much. ``strength`` scales everything; ``texture`` is the share of pores kept."""

    strength: float = 0.7
    smooth: bool = True
    texture: float = 0.5
    blemish: bool = True
    wrinkles: bool = True
    undereye: bool = True
    tone: bool = True
    lift: float = 0.7  # share of the under-eye's shade (below the cheeks' level) lifted at full strength

    def __post_init__(self) -> None:
        for name in ("strength", "texture", "lift"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"--{name} {getattr(self, name)} is outside 0..1")


def band_energy(img: F32, mask: F32, iod: float) -> float:
    """Mean squared mid-band (blemish/wrinkle scale) luma inside ``mask``: the quantity retouch lowers."""
    y = luma(img)
    band = gauss(y, FINE * iod) - blur(y, MID * iod * 0.5)
    w = mask.sum()
    return float((band * band * mask).sum() / max(w, 1e-6))


def soft_step(x: F32, lo: float, hi: float) -> F32:
    """0 below ``lo``, 1 above ``hi``, smooth in between (keeps decisions continuous: no flicker)."""
    t = np.asarray((x - lo) / (hi - lo), np.float32)
    t = np.minimum(np.maximum(t, 0.0, out=t), 1.0, out=t)  # np.clip's result at ~half its cost
    sq = t * t
    t *= -2.0  # t * t * (3 - 2t), in place: the same numbers, fewer full-size temporaries
    t += 3.0
    sq *= t
    return sq


def keep_fine(change: F32, near: F32, sigma: float) -> F32:
    """``change`` (H, W, C) with its part broader than ``sigma`` px taken out where ``near`` (H, W) is 1
    (in proportion between): texture fixes stay, shading and tone shifts there do not."""
    if not near.any() or sigma <= 0:
        return change
    broad = blurred_over(change, near, sigma)  # where ``near`` is 0 the blur is not needed
    broad *= spread(near, change.shape[2])  # (in place: fewer full-size temporaries; the same products)
    return np.asarray(np.subtract(change, broad, out=broad), np.float32)


def blemish_map(img: F32, skin: F32, iod: float) -> F32:
    """Small dark or red spots on skin (H, W) in [0, 1]."""
    y = luma(img)
    dog = blur(y, 0.08 * iod) - gauss(y, 0.02 * iod)  # > 0 where darker than the surroundings
    cr = ycbcr(img)[..., 2]
    red = gauss(cr, 0.02 * iod) - blur(cr, 0.08 * iod)
    spots = np.maximum(soft_step(dog, 0.008, 0.025), soft_step(red, 0.006, 0.02))
    return gauss(spots * skin, 0.01 * iod)


def wrinkle_map(img: F32, skin: F32, iod: float) -> F32:
    """Thin dark valleys (H, W) in [0, 1]: the largest Hessian eigenvalue of luma at wrinkle scale."""
    s = 0.02 * iod
    valley = hessian_eigen(gauss(luma(img), s)) * s * s  # scale-normalised: a valley's depth in luma units
    return gauss(soft_step(valley, 0.003, 0.010) * skin, 0.5 * s)


def tone_deviation(chroma: F32, skin: F32, iod: float) -> F32:
    """Blotchy colour (H, W, 2): skin chroma at blotch scale minus the face's broad chroma, both from skin only.

    A low-frequency field, so it is computed at a quarter of the size and scaled back up.
    """
    h, w = skin.shape
    small = (max(4, w // 4), max(4, h // 4))
    c = np.asarray(cv2.resize(chroma, small, interpolation=cv2.INTER_AREA), np.float32)
    m = np.asarray(cv2.resize(skin, small, interpolation=cv2.INTER_AREA), np.float32)
    k = small[0] / w
    dev = normalized_blur(c, m, 0.08 * iod * k) - normalized_blur(c, m, 0.4 * iod * k)
    return np.asarray(cv2.resize(dev, (w, h), interpolation=cv2.INTER_LINEAR), np.float32)


def _from_ycbcr(y: F32) -> F32:
    return colour_matrix(y, RGB_FROM_YCBCR)


def retouch(img: F32, skin: F32, under_eye: F32, cheeks: F32, iod: float, s: RetouchSettings) -> F32:
    """Retouched face image (H, W, 3) at a working scale where the eyes are ~40-80 px apart.

    The render path adds only the change to the plate, so pores finer than this scale stay as shot;
    ``texture`` keeps that share of the finest band visible at this scale. ``skin`` is where tone and
    under-eye statistics come from; the caller composites with its own matte.
    """
    low = gauss(img, FINE_WORK)
    fine = img - low
    out = img
    ch = img.shape[2]
    if s.blemish:
        spots = blemish_map(img, skin, iod)
        healed = normalized_blur(low, 1.0 - spots, 0.05 * iod) + s.texture * fine
        out = out + spread(spots, ch) * (healed - out)
    if s.wrinkles:
        lines = wrinkle_map(out, skin, iod)
        out = out + spread(lines, ch) * (blur(out, 0.05 * iod) + s.texture * fine - out)
    if s.smooth:
        out = guided(luma(low), gauss(out, FINE_WORK), max(1, round(SMOOTH_R * iod)), SMOOTH_EPS) + s.texture * fine
    if s.undereye and cheeks.sum() > 0 and under_eye.sum() > 0:
        ly = normalized_blur(luma(out), skin, 0.06 * iod)  # luma is linear: blurring it alone is the same
        target = float((ly * cheeks).sum() / cheeks.sum())
        lift = np.clip(target - ly, 0.0, 0.25) * s.lift * under_eye
        out = out * spread(1.0 + lift / np.maximum(ly, 0.05), ch)
    if s.tone:
        c = ycbcr(out)
        c[..., 1:] -= 0.6 * tone_deviation(np.ascontiguousarray(c[..., 1:]), skin, iod) * spread(skin, 2)
        out = _from_ycbcr(c)
    return np.asarray(img + s.strength * (out - img), np.float32)
