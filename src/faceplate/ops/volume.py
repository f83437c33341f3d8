"""Volume restore in aligned space (pure ops): hollows filled by shading, tone evened, age spots, tiny moves.

Shading: the luma of hollow shadows (tear troughs, temples, cheek hollows, jowls and marionette lines) is
lifted towards the surrounding skin's broad level, only where it is darker, and never above the skin
around it on the same side (``dip_floor``). Tone: a little brighter and the broad luma evened, the same
way. An age hollow is a local dip, darker than the skin on both sides across it; a shadow of the light
(the nose's side and cast shadows, a side light's falloff across the face) is level with the dark side
of its edge: shape and light, kept. Age spots: flat dark blobs at 0.03-0.1 iod filled from the skin around them.
Shape: small warp moves (lip fullness, upper-lid hooding lifted) for ``lift_field``; the eyes, the inner
lip line and the mouth corners stay put.

Images are float32 encoded RGB (H, W, 3) in [0, 1]; masks float32 (H, W) in [0, 1]; landmarks are aligned
(upright face) in crop px; lengths in eye distances ``iod`` (px).
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.landmarks import EYE_OUTER_L, EYE_OUTER_R, MOUTH_L, MOUTH_R
from faceplate.ops.filters import blur, gauss, hessian_eigen, luma, normalized_blur, spread
from faceplate.ops.regions import mesh_regions, under_eye
from faceplate.ops.retouch import soft_step
from faceplate.ops.wrinkles import dip_floor, enclosed, evenly_lit, valley_depth

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
B8 = NDArray[np.bool_]
UPPER_LIP_OUTER = [0, 37, 267, 39, 269, 40, 270]  # top edge of the upper lip, centre outwards
LOWER_LIP_OUTER = [17, 84, 314, 181, 405, 91, 321]  # bottom edge of the lower lip
LIP_INNER = [13, 14, 82, 312, 87, 317, 78, 308]  # the mouth line: held still
CHEEKS = [50, 280, 101, 330, 205, 425]  # cheek apples
REACH = 0.3  # iod: how far to either side a hollow's surrounding skin is read (the hollows' broad scale)


def _blob(shape: tuple[int, int], c: F64, r: float) -> F32:
    m = np.zeros(shape, np.float32)
    cv2.circle(m, (round(float(c[0])), round(float(c[1]))), max(1, round(r)), (1.0,), -1, cv2.LINE_AA)
    return m


def hollows(lm: NDArray[np.floating], shape: tuple[int, int], iod: float) -> F32:
    """Where faces hollow with age (H, W) in [0, 1]: tear troughs, temples, cheek hollows, jowls, marionettes."""
    p = np.asarray(lm[:, :2], np.float64)
    m = under_eye(lm, shape)
    for eye, mouth, out in ((EYE_OUTER_R, MOUTH_R, -1.0), (EYE_OUTER_L, MOUTH_L, 1.0)):
        m = np.maximum(m, _blob(shape, p[eye] + [out * 0.3 * iod, -0.3 * iod], 0.2 * iod))  # temple
        m = np.maximum(m, _blob(shape, (p[eye] + p[mouth]) / 2 + [out * 0.25 * iod, 0.1 * iod], 0.22 * iod))
        m = np.maximum(m, _blob(shape, p[mouth] + [out * 0.12 * iod, 0.3 * iod], 0.2 * iod))  # jowl, marionette
    return np.asarray(np.clip(gauss(m, 0.08 * iod), 0, 1), np.float32)


def jowl_depth(y: F32, skin: F32, lm: NDArray[np.floating], iod: float) -> float | None:
    """How deep the folds below the mouth corners are (marionette lines, the jowl's edge): the mean valley
    depth (``wrinkles.valley_depth`` at 0.04 iod, scale-normalised luma) of ``y`` (H, W) on ``skin`` (> 0.5)
    in a 0.18 iod disc 0.3 iod below and 0.1 iod outside each corner; None where either disc shows no skin.
    Faces of 45-70 read 0.02-0.045 (a smile deepens them), of 20-40 0.004-0.008: a young jaw has no jowl."""
    shape = (y.shape[0], y.shape[1])
    depth = np.maximum(valley_depth(y, 0.04 * iod), 0.0)
    p = np.asarray(lm[:, :2], np.float64)
    out = []
    for mouth, side in ((MOUTH_R, -1.0), (MOUTH_L, 1.0)):
        disc = (_blob(shape, p[mouth] + [side * 0.1 * iod, 0.3 * iod], 0.18 * iod) > 0.5) & (skin > 0.5)
        if disc.sum() < 0.01 * iod * iod:
            return None
        out.append(float(depth[disc].mean()))
    return float(np.mean(out))


def lift_luma(img: F32, lift: F32) -> F32:
    """``img`` (H, W, 3) with its luma raised by ``lift`` (H, W), chroma ratio kept (no greying)."""
    y = luma(img)
    return np.asarray(np.clip(img * spread(1.0 + lift / np.maximum(y, 0.05), img.shape[2]), 0, 1), np.float32)


def face_area(skin: F32, iod: float) -> B8:
    """The face (H, W) that ``dip_bounds`` reads its floors in: ``wrinkles.enclosed`` by ``skin`` at ``REACH``."""
    return enclosed(skin, REACH * iod)


def dip_bounds(y: F32, skin: F32, iod: float, level: F32 | None = None, light: F32 | None = None,
               face: B8 | None = None) -> tuple[F32, F32]:  # fmt: skip
    """(lower, upper) (H, W): the broad level of ``y`` on ``skin`` (0.3 iod) limited to what a local dip or
    bump may be evened to: never above ``dip_floor`` (the darker side, across some direction, ``REACH`` iod
    away) nor below its mirror for bumps. Inside a light's shadow or its lit side both bounds sit at the
    pixel's own level: nothing to even. ``level``: that blur of ``y`` at 0.06 iod, if the caller has it.
    Where ``light`` (H, W, ``wrinkles.light_evenness``) is 1 the bounds are the broad level itself (an even
    light casts no shading edge to keep), in proportion between. ``face``: ``face_area(skin, iod)``, if the
    caller has it."""
    broad = normalized_blur(y, skin + 1e-3, 0.3 * iod)
    if evenly_lit(light):
        return broad, broad  # an even light everywhere: no floors to read
    level = normalized_blur(y, skin + 1e-3, 0.06 * iod) if level is None else level
    face = face_area(skin, iod) if face is None else face  # one face for both floors
    lo = np.minimum(broad, dip_floor(level, REACH * iod, skin, face))
    hi = np.maximum(broad, -dip_floor(-level, REACH * iod, skin, face))
    if light is None:
        return lo, hi
    return lo + light * (broad - lo), hi + light * (broad - hi)


def fill_hollows(img: F32, skin: F32, where: F32, iod: float, amount: float, light: F32 | None = None,
                 face: B8 | None = None) -> F32:  # fmt: skip
    """Shadows on ``skin`` inside ``where`` (H, W) lifted by ``amount`` towards the skin's broad level
    (0.3 iod around), only where darker than it and than the skin on both sides (``dip_bounds``): a light's
    shadow stays (in proportion to 1 - ``light``); the change is broad (> 0.03 iod), pores untouched.
    ``face``: ``face_area(skin, iod)``, if the caller has it."""
    y = luma(img)
    local = normalized_blur(y, skin + 1e-3, 0.03 * iod)
    lift = amount * where * skin * np.clip(dip_bounds(y, skin, iod, light=light, face=face)[0] - local, 0.0, 0.25)
    return lift_luma(img, np.asarray(lift, np.float32))


def even_tone(img: F32, skin: F32, iod: float, bright: float, even: float, light: F32 | None = None,
              face: B8 | None = None) -> F32:  # fmt: skip
    """Skin a little brighter (luma x (1 + ``bright``)) and its broad luma (0.06-0.3 iod) evened by ``even``
    where it is a local dip or bump (``dip_bounds``, ``light``, ``face``): blotches go, the lighting's shading
    stays."""
    y = luma(img)
    local = normalized_blur(y, skin + 1e-3, 0.06 * iod)
    lo, hi = dip_bounds(y, skin, iod, local, light, face)
    dev = np.minimum(local - lo, 0.0) + np.maximum(local - hi, 0.0)
    lift = skin * (bright * y - even * dev)
    return lift_luma(img, np.asarray(lift, np.float32))


def age_spots(img: F32, skin: F32, iod: float, light: F32 | None = None) -> F32:
    """Flat dark blobs (H, W) in [0, 1] on skin at 0.03-0.1 iod: both Hessian eigenvalues positive (not lines),
    darker than the skin around them on every side (``dip_floor``: a patch of a light's shadow is not a spot;
    where ``light`` is 1, an even light, darker than the skin around is enough)."""
    y = luma(img)
    out = np.zeros(y.shape, np.float32)
    near = gauss(y, 0.03 * iod)  # the first scale's blur, also the spot's own level below
    for s in (0.03, 0.06):
        small = hessian_eigen(near if s == 0.03 else gauss(y, s * iod), largest=False)
        out = np.maximum(out, gauss(soft_step(small * (s * iod) ** 2, 0.002, 0.006), s * iod))
    ring = blur(y, 0.15 * iod)
    if evenly_lit(light):
        around = ring  # an even light: darker than the skin around is enough
    else:
        around = np.minimum(ring, dip_floor(near, 0.15 * iod, skin))  # in a shadow: no spot
        if light is not None:
            around = around + light * (ring - around)
    darker = soft_step(around - near, 0.005, 0.02)
    return np.asarray(np.clip(2.0 * out * darker, 0, 1) * skin, np.float32)


def remove_spots(img: F32, spots: F32, iod: float, amount: float, source: F32 | None = None) -> F32:
    """``img`` with ``spots`` (H, W) filled from the skin around them (broad bands only; pores are restored later).
    ``source`` (H, W) in [0, 1]: where that skin may be read (default everywhere; not a blown highlight)."""
    smooth = gauss(img, 0.01 * iod)
    fill = normalized_blur(smooth, (1.0 - spots) * (1.0 if source is None else source) + 1e-3, 0.08 * iod)
    w = spread(np.clip(spots * amount, 0, 1), img.shape[2])
    return np.asarray(img + w * (fill - smooth), np.float32)


def moves(lm: NDArray[np.floating], iod: float, k: float) -> tuple[F64, F64, F64]:
    """Local volume moves (points (N, 2), moves (N, 2), anchors (M, 2)) in px: lips fuller, the skin under
    the brows lifted off the upper lids; eyes, mouth line and corners held (for a ~0.12 iod RBF field)."""
    p = np.asarray(lm[:, :2], np.float64)
    pts = [p[UPPER_LIP_OUTER], p[LOWER_LIP_OUTER]]
    mv = [np.tile([0.0, -0.005 * k * iod], (len(UPPER_LIP_OUTER), 1)),
          np.tile([0.0, 0.007 * k * iod], (len(LOWER_LIP_OUTER), 1))]  # fmt: skip
    anchors = [p[LIP_INNER], p[[61, 291]]]
    for name in ("eye_r", "eye_l"):
        eye = p[mesh_regions()[name]]
        upper = eye[eye[:, 1] < eye[:, 1].mean()]
        pts.append(upper + [0.0, -0.1 * iod])
        mv.append(np.tile([0.0, -0.01 * k * iod], (len(upper), 1)))
        anchors.append(eye)
    return np.vstack(pts), np.vstack(mv), np.vstack(anchors)


def cheek_moves(lm: NDArray[np.floating], iod: float, k: float) -> tuple[F64, F64]:
    """Cheek fullness for the broad lift field: the cheek apples up and a little outwards (px)."""
    p = np.asarray(lm[CHEEKS, :2], np.float64)
    side = np.sign(p[:, 0] - float(lm[1, 0]))
    return p, np.stack([side * 0.005 * k * iod, np.full(len(p), -0.01 * k * iod)], axis=1)
