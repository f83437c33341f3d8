"""Deep-wrinkle removal that re-synthesises skin texture instead of blurring (pure ops, aligned space).

Valleys (forehead and glabella lines, crow's feet, nasolabial and marionette folds, neck lines) are found
as the largest Hessian eigenvalue of luma at several scales (0.025-0.065 iod). Inside them the low and
mid bands are filled from the surrounding clean skin (a normalised blur that ignores the valleys), never
above the darker of the two sides across the valley (``dip_floor``): a line is darker than the skin on
both sides and is filled; the dark foot of a light's edge (the nose's side shadow, a side light's falloff
over a cheekbone) is dark on one side only, so it is shape and light and stays. The pore-scale band is
put back from nearby clean skin: the fine band of copies of the image shifted by 0.09 iod (above, below,
beside), each weighted by how clean its source is, matched to the clean skin's pore energy. ``flatten_mid``
lowers the crinkle band between the pores and 0.04 iod on all skin.
Everything is a deterministic function of the frame (no random noise): temporally stable.

Images are float32 encoded RGB (H, W, 3) in [0, 1]; masks float32 (H, W) in [0, 1]; lengths in eye
distances ``iod`` (px).
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.ops.filters import blur, gauss, hessian_eigen, luma, normalized_blur, spread
from faceplate.ops.retouch import soft_step

F32 = NDArray[np.float32]
# valley widths found (iod units) and the scale-normalised depths (Sobel units, ~4x luma) from which a line
# counts and counts fully: about the 90th and 99th percentile of skin on real faces of 30-70
SCALES = ((0.025, 0.025, 0.06), (0.04, 0.035, 0.08), (0.065, 0.05, 0.11))
PORE = 0.8  # px at the working scale: the pore band kept / re-synthesised
SHIFTS = ((0.0, 0.09), (0.0, -0.09), (0.09, 0.0), (-0.09, 0.0))  # iod units: above, below, beside
OFF_SKIN = 1e4  # a level that never limits (finite: it is resampled)
EVEN = (0.8, 0.9)  # darker / brighter side's broad luma: a side light (at or below) to an even light (at or above)
EVEN_TOL = 1e-6  # ``evenly_lit``: how far below 1 an even light may read
SIDE = 0.12  # iod units: how far across a valley its two sides are read (past the widest valley's shoulder)


def valley_depth(y: F32, sigma: float) -> F32:
    """Scale-normalised largest Hessian eigenvalue (H, W) of luma ``y`` at ``sigma`` px: > 0 in dark valleys."""
    lam = hessian_eigen(gauss(y, sigma))
    return np.asarray(lam * sigma * sigma, np.float32)


def valley_map(y: F32, skin: F32, iod: float, scales: tuple[tuple[float, float, float], ...] = SCALES) -> F32:
    """Deep lines and folds (H, W) in [0, 1] on ``skin``: the strongest valley over ``scales`` ((width in iod,
    depth from, depth full), ...), widened to cover each valley's shoulders."""
    out = np.zeros(y.shape, np.float32)
    for s, lo, hi in scales:
        v = soft_step(valley_depth(y, s * iod), lo, hi)
        out = np.maximum(out, gauss(v, 0.5 * s * iod))
    return np.asarray(np.clip(out * 1.5, 0, 1) * skin, np.float32)


def pore_band(y: F32) -> F32:
    """The finest band (H, W) of luma: pores and fine skin grain at the working scale."""
    return np.asarray(y - gauss(y, PORE), np.float32)


def shifted(a: F32, dx: float, dy: float) -> F32:
    """``a`` (H, W) moved by whole pixels so pixel p shows a(p + (dx, dy)) (wrapping round the crop's edge,
    where there is no skin)."""
    return np.roll(a, (-round(dy), -round(dx)), axis=(0, 1))


def add_shifted(acc: F32, a: F32, dx: float, dy: float) -> F32:
    """``acc += shifted(a, dx, dy)`` for ``acc``, ``a`` (H, W), in place, without the shifted copy."""
    h, w = a.shape
    sy, sx = round(dy) % h, round(dx) % w
    for ys, yd in ((slice(sy, h), slice(0, h - sy)), (slice(0, sy), slice(h - sy, h))):
        for xs, xd in ((slice(sx, w), slice(0, w - sx)), (slice(0, sx), slice(w - sx, w))):
            acc[yd, xd] += a[ys, xs]
    return acc


def clean_texture(fine: F32, clean: F32, iod: float) -> F32:
    """Pore texture (H, W) from nearby clean skin: shifted copies of ``fine`` weighted by ``clean`` (H, W) at
    their source (sharpened, so one copy dominates), scaled to the clean skin's pore energy."""
    acc = np.zeros(fine.shape, np.float32)
    wsum = np.full(fine.shape, 1e-4, np.float32)
    w = clean * clean
    w *= w
    wf = w * fine  # a shift is a permutation: shifting the products gives the products of the shifts
    for dx, dy in SHIFTS:
        add_shifted(acc, wf, dx * iod, dy * iod)
        add_shifted(wsum, w, dx * iod, dy * iod)
    tex = acc / wsum
    n = max(float(clean.sum()), 1e-6)
    want, have = float((fine * fine * clean).sum()) / n, float((tex * tex * clean).sum()) / n
    return np.asarray(tex * np.clip(np.sqrt(want / max(have, 1e-10)), 0.5, 2.5), np.float32)


def enclosed(skin: F32, gap: float) -> NDArray[np.bool_]:
    """The face (H, W): ``skin`` > 0.5 and the holes in it (eyes, brows, lips, nostrils; gaps to the outline
    under ``gap`` px closed), not what reaches the crop's border round it (background, hair at the outline)."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * round(gap / 2) + 1,) * 2)
    closed = cv2.morphologyEx((skin > 0.5).astype(np.uint8), cv2.MORPH_CLOSE, k)
    m = cv2.copyMakeBorder(closed, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=(0,))
    cv2.floodFill(m, None, (0, 0), (2,))
    return np.asarray(m[1:-1, 1:-1] != 2)


def dip_floor(level: F32, reach: float, skin: F32, face: NDArray[np.bool_] | None = None) -> F32:
    """How far a dip in ``level`` (H, W) may be filled: across some direction (4, 45 degrees apart) the darker
    of the two levels ``reach`` px to either side, the highest such over the directions. A side outside the
    face (``enclosed`` by ``skin`` (H, W), gaps under ``reach`` closed) does not count: the other decides
    (``OFF_SKIN`` where neither is in it). A dip (a line, a hollow) is darker than both sides across it and
    reads below its floor; a shadow's border (the dark side of a light's edge, a side light's falloff) is
    level with its dark side in every direction: shape and light, not filled. The face's own features count:
    a line beside a brow is not lifted past the brow's level. ``face``: ``enclosed(skin, reach)``, if the
    caller has it."""
    h, w = level.shape
    r, d = max(1, round(reach)), max(1, round(0.7071 * reach))  # whole px: a shift is a slice
    off = np.where(enclosed(skin, reach) if face is None else face, level, np.float32(OFF_SKIN))
    pad = cv2.copyMakeBorder(off, r, r, r, r, cv2.BORDER_REFLECT)
    side = lambda dx, dy: pad[r + dy : r + dy + h, r + dx : r + dx + w]  # noqa: E731  (p + (dx, dy))
    out = np.minimum(side(r, 0), side(-r, 0))
    for dx, dy in ((0, r), (d, d), (d, -d)):
        np.maximum(out, np.minimum(side(dx, dy), side(-dx, -dy)), out=out)
    return np.asarray(out, np.float32)


def evenly_lit(light: F32 | None) -> bool:
    """Whether ``light`` (H, W, ``light_evenness``) is 1 everywhere (to float rounding: its blur of ones reads
    1 - 6e-8): the light-aware fills then fill whole, and the shading bounds they would read are not needed."""
    return light is not None and float(light.min()) >= 1.0 - EVEN_TOL


def light_evenness(y: F32, skin: F32, midline: float, iod: float, ratio: tuple[float, float] = EVEN) -> F32:
    """How evenly the face is lit (H, W) in [0, 1]: the darker over the brighter of the skin's broad luma
    (0.25 iod) at a pixel and at its mirror across the face's vertical ``midline`` (x px; an upright aligned
    face), no higher than the face's median of it over the pixels 0.25 iod or more off the midline (near it a
    pixel meets itself), mapped from ``ratio`` (0) to (1). Both sides of a face have the same skin: a ratio
    near 1 says the light is even and a dip is an age crease; a small one that a side light shades one side.
    Where the mirror is off ``skin`` (H, W), the face's value. Smooth (0.15 iod): a broad weight."""
    w = y.shape[1]
    broad = normalized_blur(y, skin + 1e-3, 0.25 * iod)
    xs = np.clip(np.round(2.0 * midline - np.arange(w)), 0, w - 1).astype(np.intp)
    mirror, both = broad[:, xs], np.minimum(skin, skin[:, xs])
    r = np.minimum(broad, mirror) / np.maximum(np.maximum(broad, mirror), 1e-3)
    far = (both > 0.5) & (np.abs(np.arange(w) - midline) >= 0.25 * iod)[None, :]
    face = np.float32(np.median(r[far]) if far.sum() > 10 else 1.0)
    e = both * soft_step(np.minimum(r, face), *ratio) + (1.0 - both) * soft_step(np.full(1, face), *ratio)[0]
    return np.asarray(np.clip(blur(e, 0.15 * iod), 0, 1), np.float32)


def fill_lines(img: F32, lines: F32, iod: float, skin: F32 | None = None, light: F32 | None = None) -> F32:
    """``img`` (H, W, 3) with the low and mid bands inside ``lines`` (H, W) in [0, 1] replaced by those of the
    skin around them (a normalised blur that ignores the lines), lifted no higher than ``dip_floor`` over
    ``skin`` (default: everywhere) and never darkened; where ``light`` (H, W, ``light_evenness``) is 1 the
    lines are filled whole (an even light casts no shading edge to keep), in proportion between. The pore
    band is left to ``restore_pores``."""
    base = gauss(img, PORE)
    fill = normalized_blur(base, np.clip(1.0 - 1.5 * lines, 0, 1) + 1e-3, 0.05 * iod)
    share = 1.0 if evenly_lit(light) else fill_share(img, base, fill, iod, skin, light)
    return np.asarray(np.clip(img + spread(lines * share, img.shape[2]) * (fill - base), 0, 1), np.float32)


def fill_share(img: F32, base: F32, fill: F32, iod: float, skin: F32 | None, light: F32 | None) -> F32:
    """``fill_lines``'s share (H, W) of the rise from ``base`` to ``fill`` (H, W, 3) that may be taken: up to
    ``dip_floor``, all of it where ``light`` is 1."""
    yb = luma(base)
    rise = luma(fill) - yb
    on = np.ones(yb.shape, np.float32) if skin is None else skin
    room = np.clip(dip_floor(gauss(luma(img), 0.02 * iod), SIDE * iod, on) - yb, 0.0, None)
    share = np.where(rise > 1e-4, np.minimum(room / np.maximum(rise, 1e-4), 1.0), 0.0)
    if light is not None:
        share = light + (1.0 - light) * share
    return np.asarray(share, np.float32)


def flatten_mid(img: F32, skin: F32, iod: float, amount: float, sigma: float = 0.04) -> F32:
    """``img`` (H, W, 3) with the skin's band between the pores and ``sigma`` iod (crinkles, fine lines, uneven
    grain) lowered by ``amount``: a normalised blur over ``skin`` (H, W), so edges of non-skin do not bleed in."""
    base = gauss(img, PORE)
    fill = normalized_blur(base, skin + 1e-3, sigma * iod)
    return np.asarray(np.clip(img + spread(amount * skin, img.shape[2]) * (fill - base), 0, 1), np.float32)


def line_texture(plate: F32, lines: F32, skin: F32, iod: float) -> F32:
    """Pore texture (H, W): ``plate``'s own pore band on clean skin, re-synthesised from nearby clean skin
    inside ``lines`` (H, W) in [0, 1] (``valley_map`` x amount)."""
    fine = pore_band(luma(plate))
    new = clean_texture(fine, np.clip(skin - lines, 0, 1), iod)
    a, b = 1.0 - lines, lines  # power-preserving cross-fade: two unrelated grains mixed 50/50 would lose half
    mix = a * fine
    mix += b * new
    a *= a
    a += b * b
    a += 1e-6
    mix /= np.sqrt(a, out=a)
    return np.asarray(mix, np.float32)


def remove_wrinkles(img: F32, skin: F32, iod: float, amount: float, plate: F32 | None = None,
                    light: F32 | None = None) -> tuple[F32, F32]:  # fmt: skip
    """(image (H, W, 3), lines (H, W)): deep lines on ``skin`` filled by ``amount`` in [0, 1] (``fill_lines``).

    Lines are found on ``plate`` (default ``img``: e.g. the frame before a retouch smoothed it) and filled in
    ``img``; the pore band is left as it is: put the grain back with ``line_texture`` + ``restore_pores``.
    """
    v = valley_map(luma(img if plate is None else plate), skin, iod)
    w = np.asarray(np.clip(v * amount, 0, 1), np.float32)
    return fill_lines(img, w, iod, skin, light), w


def restore_pores(img: F32, texture: F32, skin: F32, keep: float) -> F32:
    """``img`` (H, W, 3) with its pore band on ``skin`` set to ``keep`` x ``texture`` (H, W) (luma, all channels).

    The band-pass is not idempotent (a Gaussian high-pass of a high-pass loses some of it), so the luma
    correction is solved by two fixed-point steps: the band then matches to a few percent.
    """
    y = luma(img)
    want = keep * texture
    d = (want - pore_band(y)) * skin  # the first step, from d = 0
    d += (want - pore_band(y + d)) * skin
    out = img + spread(d, img.shape[2])
    return np.asarray(np.clip(out, 0, 1, out=out), np.float32)
