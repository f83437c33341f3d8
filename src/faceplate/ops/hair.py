"""Hair matte and grey-hair recolour on aligned ``head`` crops (pure float32 ops; lengths in eye distances).

``hair_alpha`` builds a trimap (sure hair / sure not-hair / unknown) from the person mask, the face mesh and a
per-shot skin-colour model, then solves the unknown band pixel by pixel with a local colour line: each pixel
is a mix ``a·F + (1 − a)·B`` of the nearby hair colour ``F`` and the nearby not-hair colour ``B`` (backdrop or
skin), both normalised blurs of the sure pixels. A guided filter with the image as guide cleans the result, so a
wisp over the backdrop gets the alpha of its own luminance and the backdrop between strands stays near 0.

``recolour_hair`` darkens the grey part of that hair to a younger colour: the low-pass luma is scaled to the
target level, the high-pass (strands, highlights) is kept at ``KEEP`` of its amplitude, and the chroma moves
towards the target hue as a change, so half-transparent wisps keep the backdrop seen through them. In
salt-and-pepper hair (grey strands among dark ones, which the low-pass cannot see) each grey strand is first
pulled towards the dark strands beside it (``darken_salt``), keeping ``SALT_KEPT`` of its brightness.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.ops.filters import gauss, guided, luma, normalized_blur
from faceplate.ops.regions import mesh_regions, polygon_mask, raised_oval, sample_patches
from faceplate.ops.skin import SkinModel, channel_sum, colour_matrix, ycbcr
from faceplate.rec709 import RGB_FROM_YCBCR

F32 = NDArray[np.float32]

BROWN = (0.27, -0.17, 0.21)  # natural mid brown: luma, Cb/luma, Cr/luma
KEEP = 0.85  # share of the strands' high-pass luma kept by the recolour
SALT_KEPT = 0.3  # share of a grey strand's brightness above the dark strands beside it kept (salt-and-pepper)
SALT_SHARE = (0.3, 0.45)  # share of grey strands in the sure hair: none → all of the salt darkened
PEPPER_DARK = (0.4, 0.3)  # luma of the dark strands: above the first, no salt-and-pepper (blonde, white)
WISP_REACH = 0.35  # how far outside the person mask wisps are looked for (eye distances)
FOREHEAD_LIFT = 0.15  # the forehead's outline raised this share of the face height (hair starts above it)
EDGE_BAND = 0.04  # half width of the unknown band between sure hair and sure not-hair (eye distances)


def grow_by(mask: F32, r: float) -> F32:
    """Pixels within ``r`` px of ``mask`` > 0.5 (R, R) in {0, 1} (a distance transform: any radius, one pass)."""
    dist = cv2.distanceTransform(np.asarray(mask <= 0.5, np.uint8), cv2.DIST_L2, 3)
    return np.asarray(dist <= r, np.float32)


def shrink_by(mask: F32, r: float) -> F32:
    """Pixels farther than ``r`` px from ``mask`` <= 0.5 (R, R) in {0, 1}."""
    return np.asarray(cv2.distanceTransform(np.asarray(mask > 0.5, np.uint8), cv2.DIST_L2, 3) > r, np.float32)


def above_mouth(lm: NDArray[np.floating], r: int, iod: float) -> F32:
    """(R, 1) ramp: 1 above the mouth corners, 0 from 0.2 eye distances below them."""
    ys = np.arange(r, dtype=np.float32)[:, None]
    return np.asarray(np.clip((float(lm[[61, 291], 1].mean()) - ys) / (0.2 * iod), 0, 1), np.float32)


def skin_likelihood(img: F32, lm: NDArray[np.floating]) -> F32:
    """(R, R) skin likelihood from a colour model fitted to the cheeks and mid forehead of this crop."""
    shape = (img.shape[0], img.shape[1])
    patches = sample_patches(lm, shape) * polygon_mask(shape, np.asarray(lm[mesh_regions()["oval"], :2]), hull=False)
    pixels = img[patches > 0.5]
    if len(pixels) < 50:
        return np.zeros(shape, np.float32)
    return SkinModel.fit(pixels, luma_slack=4.0).likelihood(img)


def ears(lm: NDArray[np.floating], shape: tuple[int, int], iod: float) -> F32:
    """Both ears (H, W) in {0, 1}: ellipses just outside the mesh's side points (234, 454). An ear's shaded
    bowl is neither skin-coloured nor backdrop, so without this it would pass as sure hair."""
    m = np.zeros(shape, np.uint8)
    mid_x = float(lm[[234, 454], 0].mean())
    for i in (234, 454):
        out = np.sign(float(lm[i, 0]) - mid_x)
        c = (round(float(lm[i, 0]) + out * 0.2 * iod), round(float(lm[i, 1])))
        cv2.ellipse(m, c, (max(1, round(0.3 * iod)), max(1, round(0.55 * iod))), 0, 0, 360, (1,), -1)
    return m.astype(np.float32)


def hair_trimap(img: F32, lm: NDArray[np.floating], person: F32, iod: float) -> tuple[F32, F32]:
    """Sure hair and sure not-hair (R, R) in {0, 1}; the rest is unknown.

    Hair: on the person, off the raised face oval and the ears, above the mouth, neither skin- nor backdrop-
    coloured. Not hair: the mesh oval (skin, eyes, brows), skin-coloured pixels, below the mouth, and the
    backdrop beyond ``WISP_REACH`` of the person. The forehead up to the likely hairline is left unknown.
    """
    r = img.shape[0]
    oval = polygon_mask((r, r), np.asarray(lm[mesh_regions()["oval"], :2]), hull=False)
    forehead = polygon_mask((r, r), raised_oval(lm, FOREHEAD_LIFT), hull=False)
    skin = skin_likelihood(img, lm)
    up = np.broadcast_to(above_mouth(lm, r, iod), (r, r))
    backdrop = normalized_blur(img, np.asarray(person < 0.15, np.float32), 0.2 * iod)
    unlike_backdrop = channel_sum((img - backdrop) ** 2) > 0.12**2
    hair = shrink_by(person - 0.35, 0.03 * iod) * (1 - grow_by(oval, 0.06 * iod)) * (skin < 0.1)
    sure = hair * (up > 0.99) * (forehead < 0.5) * (1 - ears(lm, (r, r), iod)) * unlike_backdrop
    fg = shrink_by(np.asarray(sure, np.float32), EDGE_BAND * iod)
    inner = shrink_by(oval, 0.08 * iod)  # the oval's rim runs through sideburns and temples: leave it unknown
    bg = np.maximum(np.maximum(inner, (skin > 0.5) * (1 - hair)), 1 - grow_by(person, WISP_REACH * iod))
    bg = np.maximum(bg, up < 0.01) * (1 - grow_by(fg, 2 * EDGE_BAND * iod))
    return np.asarray(fg, np.float32), np.asarray(bg, np.float32)


def work_scale(iod: float) -> int:
    """Integer shrink factor to a ~24 px/iod working copy (the trimap and all smooth colour fields live there)."""
    return max(1, int(iod // 24))


def shrink(a: F32, f: int) -> F32:
    """``a`` (H, W[, C]) area-averaged by ``f`` (edges padded to a multiple of ``f``): working pixel q covers
    full-size pixels [q·f, (q + 1)·f)."""
    a = np.asarray(a, np.float32)
    if f == 1:
        return a
    h, w = a.shape[:2]
    ph, pw = -h % f, -w % f
    if ph or pw:
        a = np.asarray(cv2.copyMakeBorder(a, 0, ph, 0, pw, cv2.BORDER_REPLICATE), np.float32)
    return np.asarray(cv2.resize(a, ((w + pw) // f, (h + ph) // f), interpolation=cv2.INTER_AREA), np.float32)


def enlarge(a: F32, f: int, shape: tuple[int, ...]) -> F32:
    """``a`` (h, w[, C]) of a working copy bilinearly enlarged by ``f`` and cut to ``shape`` (H, W, ...)."""
    h, w = shape[:2]
    if f == 1:
        return np.asarray(a[:h, :w], np.float32)
    big = cv2.resize(a, (a.shape[1] * f, a.shape[0] * f), interpolation=cv2.INTER_LINEAR)
    return np.asarray(big[:h, :w], np.float32)


def box_of(mask: F32, f: int, shape: tuple[int, ...], pad: int) -> tuple[slice, slice]:
    """Full-size slices (rows, cols) around ``mask`` > 0 of a working copy shrunk by ``f``, padded by ``pad``."""
    ys, xs = np.nonzero(mask > 0)
    if len(ys) == 0:
        return slice(0, 0), slice(0, 0)
    y0, y1 = max(0, (ys.min() - pad) * f), min(shape[0], (ys.max() + 1 + pad) * f)
    x0, x1 = max(0, (xs.min() - pad) * f), min(shape[1], (xs.max() + 1 + pad) * f)
    return slice(y0, y1), slice(x0, x1)


def window(a: F32, rows: slice, cols: slice, f: int) -> F32:
    """The part (contiguous) of working-copy field ``a`` under the full-size box (``rows``, ``cols``)."""
    r0, r1 = (rows.start or 0) // f, -(-(rows.stop or 0) // f)
    c0, c1 = (cols.start or 0) // f, -(-(cols.stop or 0) // f)
    return np.ascontiguousarray(a[r0:r1, c0:c1])


def colour_line_alpha(img: F32, b: F32, d: F32, dd: F32) -> tuple[F32, F32]:
    """Alpha (H, W) of each pixel of ``img`` as a mix ``b + a·d`` of the local not-hair colour ``b`` and hair
    colour ``b + d`` (``dd`` = |d|², all smooth fields), and the pixel's chroma distance (H, W) off that line
    (luma is left out there: a lit strand is brighter than the mean hair, a shaded one darker).

    Colours are Y'CbCr, channel-first planes (3, H, W): contiguous planes are ~3x faster than (H, W, 3) slices.
    """
    e = img - b
    dot = e[0] * d[0] + e[1] * d[1] + e[2] * d[2]
    t = np.clip(dot / dd, -0.5, 1.5)  # a little beyond either end is still on the line (a brighter rim)
    resid = np.sqrt((e[1] - t * d[1]) ** 2 + (e[2] - t * d[2]) ** 2)
    return np.asarray(np.clip(t, 0, 1), np.float32), np.asarray(resid, np.float32)


def colour_fields(small: F32, fg: F32, bg: F32, sigma: float) -> tuple[F32, F32, F32, F32]:
    """On the working copy: local not-hair colour ``b`` and step to the hair colour ``d`` (r, r, 3), |d|², and
    a trust (r, r) in [0, 1]: 0 where hair and not-hair look alike or the not-hair around is as varied (a
    textured backdrop) as the step to the hair. The hair colour is smoothed wider (2.5 ``sigma``): it varies
    little over a head and must reach thin hair far from any sure hair (behind the ears)."""
    f_col, b_col = normalized_blur(small, fg, 2.5 * sigma), normalized_blur(small, bg, sigma)
    b_sq = normalized_blur(np.ascontiguousarray(small * small), bg, sigma)
    spread = np.sqrt(np.maximum(channel_sum(b_sq - b_col * b_col), 0))
    d = f_col - b_col
    dd = np.maximum(channel_sum(d * d), 1e-4)
    step = np.sqrt(dd)
    trust = np.clip((step - 0.03) / 0.06, 0, 1) * np.clip(2 - 3 * spread / step, 0, 1)
    return b_col, d, dd, np.asarray(trust, np.float32)


def hair_alpha(img: F32, lm: NDArray[np.floating], person: F32, iod: float) -> F32:
    """Soft hair alpha (R, R) float32 in [0, 1] of a ``head`` crop.

    ``img`` (R, R, 3) encoded RGB in [0, 1]; ``lm`` aligned landmarks (478, >=2); ``person`` (R, R) soft person
    mask (PersonSegmenter); ``iod`` eye distance in px. The trimap and the local colours are worked out on a
    ~24 px/iod copy, each pixel's alpha at full size (in the box round the hair only). Skin and the backdrop
    stay at 0; wisps at the rim get the alpha of their own colour against the backdrop beside them.
    """
    img = np.asarray(img, np.float32)
    f = work_scale(iod)
    small, person_s, lm_s, iod_s = shrink(img, f), shrink(person, f), np.asarray(lm, np.float32) / f, iod / f
    fg, bg = hair_trimap(small, lm_s, person_s, iod_s)
    sigma = 0.12 * iod_s
    near = gauss(grow_by(fg, 0.4 * iod_s), 0.1 * iod_s)  # hair only near sure hair
    forehead = polygon_mask((fg.shape[0], fg.shape[1]), raised_oval(lm_s, FOREHEAD_LIFT), hull=False)
    skin_zone = np.maximum(forehead, ears(lm_s, (fg.shape[0], fg.shape[1]), iod_s))
    prior = np.clip((person_s - 0.5) / 0.4, 0, 1) * (1 - skin_zone)  # trust the person mask, but not on skin
    backdrop = np.maximum(bg, np.asarray(person_s < 0.05, np.float32))  # its colour also from under the wisps
    b, d, dd, trust = colour_fields(ycbcr(small), fg, backdrop, sigma)
    unknown = (1 - fg) * (1 - bg) * near
    out = np.zeros(img.shape[:2], np.float32)
    rows, cols = box_of(fg + unknown, f, img.shape, 2)
    crop = np.ascontiguousarray(img[rows, cols])
    if crop.size == 0:
        return out
    # est = fg + unknown·(t·a + (1 − t)·prior) with t = trust·(on the line): three smooth planes
    base, u = fg + unknown * prior, unknown * trust
    planes = [*np.moveaxis(b, 2, 0), *np.moveaxis(d, 2, 0), dd, base, u, u * prior, 1 - gauss(bg, 0.5)]
    p = [enlarge(window(q, rows, cols, f), f, crop.shape) for q in planes]
    a, resid = colour_line_alpha(np.stack(cv2.split(ycbcr(crop))), np.stack(p[:3]), np.stack(p[3:6]), p[6])
    on_line = np.clip(1.5 - resid / 0.03, 0, 1)
    est = p[7] + on_line * (p[8] * a - p[9])
    refined = guided(luma(crop), np.asarray(est, np.float32), max(1, round(0.015 * iod)), 1e-3)
    refined = np.clip(refined * p[10], 0, 1)
    out[rows, cols] = np.where(refined < 1 / 255, 0, refined)  # no faint haze far out
    return out


def grey_weight(img: F32) -> F32:
    """How grey/white each pixel looks (R, R) in [0, 1]: light and low in chroma (warm light allowed)."""
    c = ycbcr(np.asarray(img, np.float32))
    sat = np.hypot(c[..., 1], c[..., 2]) / np.maximum(c[..., 0], 0.05)
    return np.asarray(np.clip((0.2 - sat) / 0.1, 0, 1) * np.clip((c[..., 0] - 0.58) / 0.2, 0, 1), np.float32)


def own_hair_colour(img: F32, alpha: F32) -> tuple[float, float, float] | None:
    """The person's own pigmented hair colour (luma, Cb/luma, Cr/luma) from the dark or saturated, non-grey
    sure hair (``alpha`` > 0.8) of ``img`` (R, R, 3); None when too little of the hair is pigmented."""
    c = ycbcr(np.asarray(img, np.float32))
    sat = np.hypot(c[..., 1], c[..., 2]) / np.maximum(c[..., 0], 0.05)
    hair = alpha > 0.8
    own = hair & (grey_weight(img) < 0.05) & ((sat > 0.25) | (c[..., 0] < 0.3))
    if own.sum() < max(50, 0.2 * hair.sum()):
        return None
    px = c[own]
    y = np.maximum(px[:, 0], 0.02)
    return float(np.percentile(y, 40)), float(np.median(px[:, 1] / y)), float(np.median(px[:, 2] / y))


def salt_and_pepper(img: F32, alpha: F32, iod: float) -> tuple[F32, F32]:
    """(salt, pepper), both (H, W), in hair ``alpha`` (H, W) of ``img`` (H, W, 3): ``pepper`` the luma of the
    dark strands nearby (a local minimum over ~0.04 eye distances, blurred over the hair), ``salt`` how much
    each pixel is a grey strand standing out above them (low chroma, ≥ 0.05 brighter)."""
    return salt_and_pepper_ycc(ycbcr(np.asarray(img, np.float32)), alpha, iod)


def salt_and_pepper_ycc(c: F32, alpha: F32, iod: float) -> tuple[F32, F32]:
    """:func:`salt_and_pepper` of an image already in YCbCr (H, W, 3)."""
    y = np.ascontiguousarray(c[..., 0])
    sat = np.hypot(c[..., 1], c[..., 2]) / np.maximum(y, 0.05)
    hair = np.asarray(alpha > 0.3, np.float32)
    r = max(1, round(0.04 * iod))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    low = cv2.erode(np.where(hair > 0, y, 1.0).astype(np.float32), disk)
    pepper = normalized_blur(np.asarray(np.minimum(low, y), np.float32), hair, 0.05 * iod)
    salt = np.clip((y - pepper - 0.05) / 0.15, 0, 1) * np.clip((0.2 - sat) / 0.1, 0, 1)
    return np.asarray(salt, np.float32), np.asarray(pepper, np.float32)


def salt_gate(salt: F32, pepper: F32, alpha: F32) -> float:
    """How salt-and-pepper the hair is as a whole, in [0, 1]: many grey strands (``SALT_SHARE``) among dark
    ones (``PEPPER_DARK``) in the sure hair (``alpha`` > 0.7). A white head, blonde or dark hair with a few
    highlights: 0."""
    sure = alpha > 0.7
    if sure.sum() < 50:
        return 0.0
    share = float(salt[sure].mean())
    dark = float(np.median(pepper[sure]))
    lo, hi = SALT_SHARE
    p_lo, p_hi = PEPPER_DARK
    return float(np.clip((share - lo) / (hi - lo), 0, 1) * np.clip((p_lo - dark) / (p_lo - p_hi), 0, 1))


def darken_salt(img: F32, alpha: F32, amount: float, iod: float) -> F32:
    """Salt-and-pepper hair of ``img`` (H, W, 3) with its grey strands pulled towards the dark strands beside
    them by ``amount`` in [0, 1] where ``alpha`` (H, W) > 0 (``SALT_KEPT`` of their brightness kept, chroma
    scaled with the luma: a dark strand, not a tinted one), in the hair's body (``alpha`` > 0.3: faint wisps
    over the backdrop are the white-hair recolour's). Unchanged where the hair is not salt-and-pepper."""
    img = np.asarray(img, np.float32)
    c = ycbcr(img)
    salt, pepper = salt_and_pepper_ycc(c, alpha, iod)
    gate = salt_gate(salt, pepper, alpha) * amount
    if gate <= 0:
        return img.copy()
    y = c[..., 0]
    body = np.clip((np.asarray(alpha, np.float32) - 0.3) / 0.4, 0, 1)  # the hair's body, not faint wisps
    k = alpha * body * salt * gate
    y_new = y - k * (1.0 - SALT_KEPT) * np.maximum(y - pepper, 0.0)
    less = y_new / np.maximum(y, 1e-3) - 1.0
    delta = np.asarray(cv2.merge([y_new - y, c[..., 1] * less, c[..., 2] * less]), np.float32)
    out = np.clip(img + colour_matrix(delta, RGB_FROM_YCBCR), 0, 1)
    return np.asarray(np.where((k > 0)[..., None], out, img), np.float32)  # exactly the plate off the salt


def recolour_hair(
    img: F32,
    alpha: F32,
    amount: float,
    target: tuple[float, float, float] | None = None,
    iod: float | None = None,
) -> F32:
    """Grey hair in ``img`` (R, R, 3) recoloured where ``alpha`` (R, R) > 0, by ``amount`` in [0, 1].

    ``target`` is (luma, Cb/luma, Cr/luma); None: the person's own darker hair colour if enough of it shows,
    else ``BROWN``. ``iod`` defaults to that of a ``head`` crop (R / 4.8). The low-pass luma of the grey hair is
    scaled to the target level, its high-pass (strands, highlights) kept at ``KEEP``; chroma moves to the target
    hue as a change, so a half-transparent wisp keeps the backdrop seen through it.
    """
    img = np.asarray(img, np.float32)
    iod = img.shape[0] / 4.8 if iod is None else iod
    if amount > 0:
        img = darken_salt(img, alpha, amount, iod)
    f = work_scale(iod)
    small, w = shrink(img, f), shrink(np.asarray(alpha, np.float32), f)
    grey_px = grey_weight(small)
    whole = float((grey_px * w).sum() / max(float(w.sum()), 1e-6))  # how grey the head is as a whole
    local = np.clip(normalized_blur(grey_px, w, 0.1 * iod / f) * 2.0, 0, 1)
    grey = np.maximum(local, np.clip((whole - 0.1) / 0.3, 0, 1))
    wg = w * grey
    if amount <= 0 or wg.sum() * f * f < 1:
        return img.copy()
    ty, tcb, tcr = target or own_hair_colour(small, w) or BROWN
    c_s = ycbcr(small)
    level = float((c_s[..., 0] * wg).sum() / wg.sum())
    scale = min(ty / max(level, 1e-3), 1.0)
    low = normalized_blur(c_s, np.asarray(wg * w, np.float32), 0.08 * iod / f)  # the grey hair's local colour
    out = img.copy()
    rows, cols = box_of(wg, f, img.shape, 1)
    crop = np.ascontiguousarray(img[rows, cols])
    y = luma(crop)
    low_y, low_cb, low_cr = (enlarge(window(q, rows, cols, f), f, y.shape) for q in np.moveaxis(low, 2, 0))
    k = alpha[rows, cols] * enlarge(window(grey, rows, cols, f), f, y.shape) * amount
    y_new = scale * low_y + KEEP * (y - low_y)
    delta = np.asarray(cv2.merge([k * (y_new - y), k * (tcb * y_new - low_cb), k * (tcr * y_new - low_cr)]), np.float32)
    out[rows, cols] = np.clip(crop + colour_matrix(delta, RGB_FROM_YCBCR), 0, 1)  # exactly 0 where k is
    return out


LOCK_REACH = (0.35, 0.1)  # eye distances followed down from the hair: a lock's band, the hair's shaded edge
LOCK_DARK = 0.12  # share of the luma beside it (a lock) or of the skin around (the edge) it is darker by
LOCK_SIDE = 0.1  # eye distances each side of a pixel where the brighter skin beside a lock is looked for
DOWN = np.array([[1, 1, 1], [0, 1, 0], [0, 0, 0]], np.uint8)  # cv2.dilate: each pixel takes the three above it


def grow_down(seed: NDArray[np.uint8], path: NDArray[np.uint8], steps: int) -> NDArray[np.uint8]:
    """``seed`` (H, W) in {0, 1} grown down ``path`` (H, W) in {0, 1} at most ``steps`` px, each step to one of the
    three pixels below (at most 45° off vertical)."""
    got = seed & path
    for i in range(max(1, steps)):
        grown = np.bitwise_and(cv2.dilate(got, DOWN), path)
        if i % 4 == 3 and np.array_equal(grown, got):  # (checked every 4th step: the check costs a step)
            break
        got = grown
    return np.asarray(got, np.uint8)


def hanging_locks(y: F32, skin: F32, iod: float, rows: int, reach: tuple[float, float] = LOCK_REACH,
                  dark: float = LOCK_DARK) -> F32:  # fmt: skip
    """Locks of hair (H, W) in {0, 1} hanging down over skin-coloured skin, in the ``rows`` top rows of luma ``y``
    (H, W) (0 below), reached from the not-skin (``skin`` (H, W) <= 0.5) above, each step at most 45° off
    vertical: down a band ``dark`` darker than the luma ``LOCK_SIDE`` to both its sides for ``reach[0]`` eye
    distances (a lock: a shade's edge on the forehead is darker on one side only, a forehead line runs across),
    and down pixels ``dark`` darker than the skin around (blurred over 0.15 iod) for ``reach[1]`` (the hair's own
    shaded edge). Colour calls a lock's tip skin (forehead skin in shade is as brown); its hanging from the hair
    and its shade against the skin beside it tell."""
    out = np.zeros(y.shape, np.float32)
    n = max(0, min(rows, y.shape[0]))
    if n == 0:
        return out
    part = np.ascontiguousarray(y[:n])
    on = np.asarray(skin[:n] > 0.5, np.float32)
    hair = np.asarray(on < 0.5, np.uint8)
    w = max(1, round(LOCK_SIDE * iod))
    left, right = np.ones((1, w + 1), np.uint8), np.ones((1, w + 1), np.uint8)
    left[0, w], right[0, 0] = 0, 0  # the w px left of each pixel, the w px right of it
    sides = np.minimum(cv2.dilate(part, left, anchor=(w, 0)), cv2.dilate(part, right, anchor=(0, 0)))
    band = np.asarray(part < (1.0 - dark) * sides, np.uint8)
    level = normalized_blur(part, on, 0.15 * iod)
    shade = np.asarray(part < (1.0 - dark) * level, np.uint8)
    got = grow_down(hair, band | hair, round(reach[0] * iod)) | grow_down(hair, shade | hair, round(reach[1] * iod))
    out[:n] = got * (1 - hair)
    return out
