"""Procedural "digital facelift" de-aging: smooth landmark-driven lifts plus strong retouch, no training.

``--years N`` maps to the controls as follows (k = clip(N / 20, 0, 1.5), k1 = min(k, 1); lengths in eye
distances). Every strength is non-decreasing in N. The shape (lift and volume) is full at 20 years: a
face has only so much sag to lift, and more lift reshapes it rather than de-ages it (at 1.5x the lift the
identity drifted to 0.38 and Aniston moved further from her younger self); years past 20 go to the skin's
tone, hollows and spots:

=================  ====================================================================
jowls / jawline    lower face outline lifted 0.05·k1·j and pulled in 0.02·k1·j (most at the jowls); j: the
                   track's jowl share, 1 with folds below the mouth corners, 0.3 without (``jowl_share``)
brows              brows lifted 0.03·k1
eye bags           under-eye lift (retouch) of min(1, 0.7·max(k, 1)²) of the shade (0.7 to 20 years, 1 from
                   ~24), plus a 0.01·k1 lift of the lower lid area
volume (warp)      cheek apples up 0.01·k1 and out 0.005·k1; upper lip edge up 0.005·k1, lower lip edge
                   down 0.007·k1 (fuller lips); the skin under the brows lifted 0.01·k1 off the upper lids
retouch            strength 0.5 + 0.025·N (max 1), fine texture kept 0.4 (ops/retouch)
deep lines         forehead, glabella, crow's feet, folds, neck (valleys 0.025-0.065 wide): filled by
                   min(1, 0.4 + 0.03·N); crinkle band (pores to 0.04) flattened by min(0.9, 0.04·N);
                   nasolabial folds' shadow (nose wing to beside the mouth corner) filled by min(k, 1.3); pores
                   put back from the plate (re-synthesised from nearby clean skin inside the lines): the pore
                   band is kept whole; the lift leaves the grain of open skin in place (only its shape moves):
                   the plate's pores stay sharp.
                   Under an even light (``wrinkles.light_evenness``: both sides of the face alike) lines,
                   folds, hollows, spots and tone are filled whole; under a side light only as dips darker
                   than both sides (``dip_floor``), the folds' broad shading kept
hollows            tear troughs, temples, cheek hollows, jowls: shadow lifted by min(0.75, 0.025·N)
spots              age spots (flat dark blobs 0.03-0.1) filled by min(1, 0.035·N)
tone               skin chroma evened; luma +2%·k, broad luma evened by 0.1·k (no saturation gain: +8%·k read
                   3-5 years older on d12 and younger on no tuning face)
hair (opt-in)      grey/white hair recoloured by min(k, 1) towards a brown (or the person's own darker hair
                   colour), each strand's luminance variation and highlights kept (ops/hair)
=================  ====================================================================

Fair fringe hair over the forehead (``fringe``: fine oriented strands, ``ops.skin.hair_strands``) is
neither warped nor retouched, nor are locks hanging from the hair down over the forehead as skin-coloured as it
(``locks``: darker than the skin beside them, reached from the hair down a near-vertical path: ``ops.hair.
hanging_locks``) or a dark occluder touching the lips (``dark_on_lips``: a mic); a brow's tail under hair is not
lifted as brow, and above the upper lids the lift's hold stops at the hair's edge (``skin_above``,
``inside_upper``: temple hair and locks stay put). The lift is held at the eyes, nose, mouth line and crop border
and falls to zero within 0.15 eye distances outside the face oval (no displaced background, ears or collars).
The retouch and fills fade in over ``LID_FADE`` inside the matte's hole round each eye (cut there, the under-eye
lift read as a step at the lower lid). Deep lines, hollows, spots and tone work at half the crop size (broad
bands only), and so does the light's evenness (a smooth weight); the pores are never blurred.

``--hair`` works in a larger ``head`` crop; the hair alpha (ops/hair) is a soft, strand-following matte:
sure hair on the person (MediaPipe selfie segmentation of the crop), off the face and not skin-coloured,
sure background and skin around it, and each pixel between solved as a mix of the local hair and
background colours, so wisps get partial alpha and a grey wall behind the actor stays untouched.

Everything is computed in aligned space from the smoothed landmarks, so the lift follows the face; the
warp is a sum of Gaussian radial-basis fields (small moves: no folds).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any, ClassVar

import cv2
import numpy as np

from faceplate.analysis.segmentation import PersonSegmenter
from faceplate.effects.base import EFFECTS, AlignedFace, Effect, EffectResult
from faceplate.effects.beauty import WORK_IOD, BeautyEffect, SkinMatte, strands_above_eyes
from faceplate.errors import ConfigError
from faceplate.landmarks import LIFT_ANCHORS
from faceplate.ops.filters import blur, blur_radius, gauss, luma, spread
from faceplate.ops.hair import hair_alpha, hanging_locks, recolour_hair
from faceplate.ops.regions import (
    dilate,
    dilated_regions,
    disk,
    distance_from,
    eye_distance,
    feather,
    mesh_regions,
    on_support,
    polygon_mask,
    regions_mask,
    skin_region,
    support,
)
from faceplate.ops.retouch import RetouchSettings, keep_fine, soft_step
from faceplate.ops.skin import SkinModel, ycbcr
from faceplate.ops.volume import (
    age_spots,
    cheek_moves,
    even_tone,
    face_area,
    fill_hollows,
    hollows,
    jowl_depth,
    remove_spots,
)
from faceplate.ops.volume import moves as volume_moves
from faceplate.ops.warp import rbf_field
from faceplate.ops.wrinkles import (
    evenly_lit,
    flatten_mid,
    light_evenness,
    line_texture,
    remove_wrinkles,
    restore_pores,
)

ANCHORS = list(LIFT_ANCHORS)  # eyes, nose, mouth: never moved
PORES_KEPT = 1.0  # share of the plate's pore band put back on skin (re-synthesised inside deep lines)
FALLOFF = 0.15  # iod beyond the face oval where the lift has fallen to zero
JOWL = (0.008, 0.02)  # jowl_depth: no jowl (at or below; faces of 20-40) to a full one (at or above; 45-70)
JOWL_FLOOR = 0.3  # the jowl lift's share on a face without jowls (the lower outline still firmed a little)
HOLD_SOFT = 0.04  # iod: the blur of the lift's hold off the skin
EYE_TOP_R, EYE_TOP_L = 159, 386  # upper-lid tops
BROW_REACH = 0.25  # iod above a brow pixel where forehead skin is looked for (past the brow's own height, ~0.12)
SEEN = (0.5 / 255, 2.0 / 255)  # change (its local mean) under which the warp is not seen, over which it is
SEEN_INSIDE = 0.05  # iod past the face oval where the moved matte is whole, seen or not (no edges in the face)
LID_FADE = (0.05, 6.0)  # iod, and at least px, inside the matte's edge round the eyes where the retouch fades in
LIP_DARK = 0.55  # share of the lips' median luma below which a pixel on them is an occluder (a mic), not lip
LOCK_MARGIN = 0.03  # iod round a hanging lock held with it (the plate's blur of its edge)
LOCK_FADE = (0.03, 3.0)  # iod, and at least px: the blur of a lock's hold out on the skin
FRINGE_FADE = 0.03  # iod: the soft edge of the fringe's hold-out (a harder one reads as a seam on the skin)
CLIPPED = 0.9  # every channel at or above this: a blown (near-white) highlight, no skin level or pores to read
#               (Hamilton 0130's stage light: 0.95 left its brow seam at 6.7/255; fair skin with only red clipped is
#               not a highlight: a max-channel test held the lines off 40% of fnp@65's crop)
CLIP_REACH = (0.06, 0.04)  # iod round a blown highlight where no line, spot or pore is read or put, then its soft
#                            edge: past a valley's shoulder (to 0.065) and the pore copies' shift (0.09)


YOUNGEST = 20.0  # apparent years: below this the facelift and retouch no longer make a believable face
ADULT = 18.0


def age_warning(age: float | None, years: float) -> str | None:
    """A warning line when de-aging an actor of ``age`` by ``years`` leaves the procedural effect's range
    (a face younger than YOUNGEST, or a child's face), else None; None without an age (it is not guessed)."""
    if age is None:
        return None
    if not 0 < age < 130:
        raise ConfigError(f"--age {age:g} is not an age; give the actor's age as shot, in years")
    if age < ADULT:
        return (f"the actor is {age:g}: de-aging a child's face is out of this effect's range (it lifts and smooths "
                "an adult face; a child's proportions differ); check every frame, or use --reference")  # fmt: skip
    if age - years < YOUNGEST:
        return (f"{age:g} - {years:g} years aims at {age - years:g}, below ~{YOUNGEST:g} apparent years: the "
                "procedural de-age cannot make a face that young; use fewer --years or --reference")  # fmt: skip
    return None


@dataclass(frozen=True, kw_only=True)
class DeageSettings:
    years: float = 15.0
    jowls: bool = True
    brows: bool = True
    eyebags: bool = True
    wrinkles: bool = True
    spots: bool = True
    tone: bool = True
    volume: bool = True
    hair: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.years <= 40:
            raise ConfigError(f"--years {self.years} must be within 0..40")

    @property
    def k(self) -> float:
        return min(max(self.years / 20.0, 0.0), 1.5)

    @property
    def shape(self) -> float:
        """Strength of the lift and the volume moves (full at 20 years)."""
        return min(self.k, 1.0)

    @property
    def spot_amount(self) -> float:
        """Share of the age spots filled."""
        return float(min(1.0, 0.035 * self.years))

    @property
    def line_amount(self) -> float:
        """Share of the deep lines filled."""
        return float(min(1.0, 0.4 + 0.03 * self.years))

    @property
    def mid_amount(self) -> float:
        """Share of the skin's crinkle band (pores to 0.04 iod) flattened."""
        return float(min(0.9, 0.04 * self.years))

    @property
    def hollow_amount(self) -> float:
        """Share of the hollows' shadow lifted."""
        return float(min(0.75, 0.025 * self.years))

    def retouch(self) -> RetouchSettings:
        strength = float(min(1.0, 0.5 + 0.025 * self.years))
        return RetouchSettings(strength, smooth=self.wrinkles, texture=0.4, blemish=self.spots, wrinkles=self.wrinkles,
                               undereye=self.eyebags, tone=self.tone, lift=self.eye_lift)  # fmt: skip

    @property
    def eye_lift(self) -> float:
        """Share of the under-eye's shade lifted (the retouch's 0.7 at 20 years, growing to 1 past it)."""
        return float(min(1.0, 0.7 * max(self.k, 1.0) ** 2))

    @property
    def fold_amount(self) -> float:
        """Share of the nasolabial folds' shadow filled (whole at 20 years, a little past whole beyond: the
        shadow is read against a blur that holds the fold itself, so it is an underestimate)."""
        return float(min(self.k, 1.3))


def face_falloff(lm: np.ndarray, shape: tuple[int, int], iod: float, reach: float = FALLOFF) -> np.ndarray:
    """(H, W) float32: 1 inside the face oval, falling smoothly to exactly 0 at ``reach`` iod beyond it."""
    inside = polygon_mask(shape, np.asarray(lm[mesh_regions()["oval"], :2], np.float64), hull=False) > 0.5
    d = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 5)
    return soft_step(1.0 - d / (reach * iod), 0.0, 1.0)


def grown_oval(lm: np.ndarray, iod: float, by: float) -> np.ndarray:
    """Face-oval points (N, 2) pushed out from the face centre by ``by`` iod."""
    oval = np.asarray(lm[mesh_regions()["oval"], :2], np.float64)
    out = oval - oval.mean(0)
    return oval + by * iod * out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)


def jowl_share(depth: float | None) -> float:
    """Share of the jowl lift for a track whose folds below the mouth corners are ``depth`` deep
    (``volume.jowl_depth``; None: unmeasured, the whole lift): a young jaw has no jowl to lift, and lifting
    it anyway narrows the jaw away from the actor's own younger face."""
    return 1.0 if depth is None else float(JOWL_FLOOR + (1.0 - JOWL_FLOOR) * soft_step(np.full(1, depth), *JOWL)[0])


def broad_moves(lm: np.ndarray, iod: float, s: DeageSettings, jowls: float = 1.0
                ) -> tuple[list[np.ndarray], list[np.ndarray]]:  # fmt: skip
    """Control points and moves (px) of the broad lift: jowls (x ``jowls``, ``jowl_share``), brows, lower
    lids, cheeks."""
    k = s.shape
    pts: list[np.ndarray] = []
    mvs: list[np.ndarray] = []
    oval = np.asarray(lm[mesh_regions()["oval"], :2], np.float64)
    mouth_y = float(lm[[61, 291], 1].mean())
    chin_x = float(lm[152, 0])
    if s.jowls:
        low = oval[oval[:, 1] > mouth_y - 0.1 * iod]
        side = np.clip((low[:, 0] - chin_x) / (0.9 * iod), -1, 1)  # 0 at the chin, ±1 at the jowls
        up = -0.05 * k * jowls * iod * (0.3 + 0.7 * np.abs(side))
        pts += list(low)
        mvs += list(np.stack([-np.sign(side) * 0.02 * k * jowls * iod * np.abs(side), up], axis=1))
    if s.brows:
        for name in ("brow_r", "brow_l"):
            brow = np.asarray(lm[mesh_regions()[name], :2])
            pts += list(brow)
            mvs += [np.array([0.0, -0.03 * k * iod])] * len(brow)
    if s.eyebags:
        for name in ("eye_r", "eye_l"):
            eye = np.asarray(lm[mesh_regions()[name], :2])
            lids = eye[eye[:, 1] > eye[:, 1].mean()] + [0, 0.25 * iod]
            pts += list(lids)
            mvs += [np.array([0.0, -0.01 * k * iod])] * len(lids)
    if s.volume:
        cp, cm = cheek_moves(lm, iod, k)
        pts += list(cp)
        mvs += list(cm)
    return pts, mvs


def lift_field(lm: np.ndarray, shape: tuple[int, int], s: DeageSettings, jowls: float = 1.0) -> np.ndarray:
    """Displacement field (H, W, 2) of the facelift for aligned landmarks ``lm`` (upright face).

    A broad field (σ 0.35 iod: jowls, brows, lids, cheeks) plus a local one (σ 0.12 iod: lips, upper-lid
    hooding), held at the eyes, nose, mouth line, outside the face (the oval grown by 0.3 iod) and the crop
    border, then multiplied by ``face_falloff``: nothing beyond 0.15 iod outside the face oval moves.
    ``jowls``: the share of the jowl lift (``jowl_share``).
    """
    iod = eye_distance(lm)
    pts, mvs = broad_moves(lm, iod, s, jowls)
    if not pts:
        return np.zeros((*shape, 2), np.float32)
    h, w = shape
    border = [[x, y] for x in np.linspace(0, w - 1, 6) for y in (0, h - 1)] + [
        [x, y] for y in np.linspace(0, h - 1, 6)[1:-1] for x in (0, w - 1)
    ]
    anchors = np.vstack([lm[ANCHORS, :2], grown_oval(lm, iod, 0.3)[::2], border])
    half = half_rbf(np.vstack([pts, anchors]), np.vstack([mvs, np.zeros((len(anchors), 2))]), shape, 0.35 * iod)
    if s.volume:
        lp, lmv, la = volume_moves(lm, iod, s.shape)
        half += half_rbf(np.vstack([lp, la]), np.vstack([lmv, np.zeros((len(la), 2))]), shape, 0.12 * iod)
    half *= 2.0  # (exact: x2 commutes with the resize's sums)
    fld = np.asarray(cv2.resize(half, (w, h), interpolation=cv2.INTER_LINEAR), np.float32)  # both fields at once
    fld *= spread(face_falloff(lm, shape, iod), 2)
    return fld


def half_rbf(pts: np.ndarray, moves: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """``rbf_field`` for a crop of ``shape`` (H, W) solved and evaluated at half size ((H+1)//2, (W+1)//2, 2),
    in half-size px: scaled up (cv2.resize, x2) it is the field within ~1e-2 px (a smooth field)."""
    h, w = shape
    q = (np.asarray(pts, np.float64) - 0.5) / 2  # half-size pixel u sits at full-size 2u + 0.5 (cv2.resize)
    return rbf_field(q, np.asarray(moves) / 2, ((h + 1) // 2, (w + 1) // 2), sigma / 2)


FOLDS = [[203, 206, 216, 212], [423, 426, 436, 432]]  # mesh points along each fold, nose wing → past the mouth


def fold_band(lm: np.ndarray, shape: tuple[int, int], iod: float) -> np.ndarray:
    """Soft band (H, W) float32 over both nasolabial folds, from the nose wing to beside the mouth corner."""
    band = np.zeros(shape, np.float32)
    for fold in FOLDS:
        pts = np.round(np.asarray(lm[fold, :2], np.float64)).astype(np.int32)
        cv2.polylines(band, [pts], False, (1.0,), max(1, round(0.1 * iod)), cv2.LINE_AA)
    sigma = 0.05 * iod
    band = on_support(lambda m: gauss(m, sigma), band, blur_radius(sigma))  # the folds' rectangle only
    return np.asarray(np.clip(band / max(float(band.max()), 1e-6) * 1.5, 0, 1), np.float32)


def soften_folds(img: np.ndarray, band: np.ndarray, iod: float, amount: float) -> np.ndarray:
    """Fill the fold's shadow: where the band's luma sits below the wider cheek's, lift it by ``amount``."""
    y = ycbcr(np.asarray(img, np.float32))[..., 0]
    shadow = np.clip(blur(y, 0.25 * iod) - gauss(y, 0.03 * iod), 0, None)
    return np.asarray(np.clip(img + spread(amount * band * shadow, img.shape[2]), 0, 1), np.float32)


MIDLINE = [168, 6, 197, 195, 5, 4, 1, 2]  # nose bridge to base: the face's vertical midline (x)
NOSE = [168, 122, 351, 129, 358, 98, 327, 2, 64, 294]  # bridge, sides, wings, base
MOUTH_OPENING = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95]  # inner lip


def nose_mask(lm: np.ndarray, shape: tuple[int, int], iod: float) -> np.ndarray:
    """Soft nose (H, W): its side valleys are shape, not wrinkles."""
    hull = polygon_mask(shape, np.asarray(lm[NOSE, :2], np.float64))
    return np.asarray(np.clip(gauss(dilate(hull, 0.03 * iod), 0.03 * iod), 0, 1), np.float32)


@cache
def pixel_grid(h: int, w: int) -> np.ndarray:
    """Pixel (x, y) coordinates (H, W, 2) float32 (cached per crop size; read-only)."""
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    grid = np.dstack([xs, ys])
    grid.flags.writeable = False
    return grid


def warp_keep_grain(img: np.ndarray, fld: np.ndarray, stay: np.ndarray | None = None) -> np.ndarray:
    """``apply_field`` without its interpolation blur: the band under ~1 px is moved by nearest pixel, and
    where ``stay`` (H, W) in [0, 1] is 1 (open skin) not moved at all: only the change travels back to the
    plate, so unmoved grain leaves the plate's own pores at plate resolution (resampled twice they soften)."""
    xy = pixel_grid(*fld.shape[:2]) - fld  # one (H, W, 2) map: the same sampling as separate x and y maps
    low = gauss(img, 1.0)
    fine = img - low
    near = cv2.remap(fine, xy, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)  # type: ignore[call-overload]
    grain = np.asarray(near, np.float32)
    if stay is not None:
        np.subtract(fine, grain, out=fine)  # (in place: fewer full-size temporaries)
        fine *= spread(stay, img.shape[2])
        grain += fine
    moved = cv2.remap(low, xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)  # type: ignore[call-overload]
    grain += moved
    return grain


def open_skin(lm: np.ndarray, like: np.ndarray, iod: float) -> np.ndarray:
    """Where the lift may leave the grain in place (H, W): skin-coloured (``like`` (H, W)) inside the face
    outline, away from the eyes, brows, lips, nostrils and the outline itself (there the grain is structure:
    edges that must move with the shape). Drawn at half size (a soft weight)."""
    h, w = like.shape[:2]
    half = (max(8, h // 2), max(8, w // 2))
    lm_s = np.asarray(lm * np.array([half[1] / w, half[0] / h, half[1] / w]), np.float32)
    small = feather(skin_region(lm_s, half), 0.01 * iod)
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) * like, np.float32)


def half_size(shape: tuple[int, int]) -> tuple[int, int]:
    """(w, h) (OpenCV's order) of the half-size copy of a crop (H, W) that the broad work runs on."""
    return max(8, shape[1] // 2), max(8, shape[0] // 2)


def shrink(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``a`` (H, W[, C]) resized to ``size`` (w, h) by area averaging, float32."""
    return np.asarray(cv2.resize(a, size, interpolation=cv2.INTER_AREA), np.float32)


def grow(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``a`` (h, w[, C]) resized back up to ``shape`` (H, W) bilinearly, float32."""
    return np.asarray(cv2.resize(a, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR), np.float32)


def skin_likelihood(img: np.ndarray, model: SkinModel | None, small: np.ndarray | None = None) -> np.ndarray:
    """Skin-colour likelihood (H, W) of ``img`` (H, W, 3), read at half size (1 everywhere without a model);
    ``small``: ``img`` at half size (``shrink`` to ``half_size``), if the caller has it."""
    shape = (img.shape[0], img.shape[1])
    if model is None:
        return np.ones(shape, np.float32)
    small = shrink(img, half_size(shape)) if small is None else small
    return grow(model.likelihood(small), shape)


def blend_where(out: np.ndarray, weight: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``out + weight * (target - out)`` for images (H, W, C) and a weight (H, W) >= 0, in place in ``out``, worked
    on the rectangle round the weight's nonzero pixels (elsewhere ``out`` is kept as it is)."""
    roi = support(weight, 0)
    if roi is None:
        return out + spread(weight, out.shape[2]) * (target - out)
    if roi[0].stop > roi[0].start:
        out[roi] += spread(np.ascontiguousarray(weight[roi]), out.shape[2]) * (target[roi] - out[roi])
    return out


def brow_points() -> np.ndarray:
    """Mesh indices of both brows."""
    return np.r_[mesh_regions()["brow_r"], mesh_regions()["brow_l"]]


def lift_weight(face: AlignedFace, like: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """Where the lift applies (R, R) to an image with skin likelihood ``like`` (the face's crop, or it warped,
    with landmarks ``lm``): skin and the face's own brows (where forehead skin lies above them: ``skin_above``)
    and lips, less the mouth's opening and the track's glasses (``face.held_out``), unsoftened. Hair, glasses, a
    mic, a collar or the background are not skin-coloured and stay rigid; so does the mesh brow's tail where it
    runs under hair (it was held as brow: temple hair beside it moved by up to 18.8/255 on s32 0008)."""
    shape = (like.shape[0], like.shape[1])
    brows = dilated_regions(lm, shape, ("brow_r", "brow_l"), 0.02 * face.iod)
    n = min(shape[0], max(0, int(np.ceil(float(lm[brow_points(), 1].max()) + 0.02 * face.iod)) + 2))  # below: no brow
    above = np.zeros(shape, np.float32)
    above[:n] = skin_above(like[:n], face.iod)  # (the window looks up only: rows below n are not read)
    brows = brows * above
    skin = np.maximum(like, brows)
    skin = np.maximum(skin, dilated_regions(lm, shape, ("lips",), 0.02 * face.iod))
    skin = skin * (1.0 - polygon_mask(shape, lm[MOUTH_OPENING], hull=False))  # teeth and tongue stay rigid
    if face.held_out is not None:
        skin = skin * (1.0 - dilate(face.held_out, 0.02 * face.iod))
    return skin


def seen(warped: np.ndarray, plate: np.ndarray, lm: np.ndarray, iod: float) -> np.ndarray:
    """Where the moved matte is needed (h, w) in [0, 1], from half-size copies (h, w, 3) of the warped crop and the
    plate (``lm``, ``iod`` at that size): in the face (its oval and ``SEEN_INSIDE`` iod round it, seen or not: no
    matte edges on the skin), and off it where the move changed the picture by ``SEEN[1]`` or more (its blur over
    0.02 iod; 0 under ``SEEN[0]``), a smooth weight (blurred 0.03 iod). Flat neck skin the lift's falloff slides
    along does not change: the matte need not cover it."""
    c = cv2.split(cv2.absdiff(warped, plate))
    d = gauss(np.asarray(cv2.max(cv2.max(c[0], c[1]), c[2]), np.float32), 0.02 * iod)  # (numpy's max: ~15x slower)
    shown = gauss(soft_step(d, *SEEN), 0.03 * iod)
    return np.maximum(shown, face_falloff(lm, (shown.shape[0], shown.shape[1]), iod, SEEN_INSIDE))


def lid_box(lm: np.ndarray, shape: tuple[int, int], iod: float) -> tuple[slice, slice]:
    """The rectangle (rows, cols) of a crop (H, W) round both eyes' mesh points, 0.3 iod out: where
    :func:`lid_fade` is under 1."""
    pts = lm[np.r_[mesh_regions()["eye_r"], mesh_regions()["eye_l"]], :2]
    (x0, y0), (x1, y1) = pts.min(0) - 0.3 * iod, pts.max(0) + 0.3 * iod
    rows = slice(max(0, int(y0)), min(shape[0], int(np.ceil(y1)) + 1))
    return rows, slice(max(0, int(x0)), min(shape[1], int(np.ceil(x1)) + 1))


def lid_fade(matte: np.ndarray, lm: np.ndarray, iod: float) -> np.ndarray:
    """(H, W) weight of the retouch and fills round the eyes: 0 at the edge of ``matte`` (H, W)'s hole round each
    eye, rising smoothly to 1 ``LID_FADE`` inside the matte (1 outside :func:`lid_box`). The under-eye lift and the
    tear-trough fill are strongest at the lower lid: cut by the matte's edge there they read as a step (a seam);
    faded in on the skin they do not."""
    shape = (matte.shape[0], matte.shape[1])
    out = np.ones(shape, np.float32)
    box = lid_box(lm, shape, iod)
    inside = distance_from(np.ascontiguousarray(matte[box]) < 0.5)
    out[box] = soft_step(inside, 0.0, max(LID_FADE[0] * iod, LID_FADE[1]))
    return out


def dark_on_lips(img: np.ndarray, lm: np.ndarray, iod: float) -> np.ndarray:
    """What lies over the mesh's lips of ``img`` (H, W, 3) (0.02 iod round them) far darker than the lips
    (H, W) in {0, 1}: luma under ``LIP_DARK`` of the lips' median (a mic or a finger touching the lip, not the lip:
    the lip's fuller-lips move would drag it). Worked in the lips' rectangle."""
    shape = (img.shape[0], img.shape[1])
    pts = lm[mesh_regions()["lips"], :2]
    x0, y0 = (max(0, int(v - 0.05 * iod)) for v in pts.min(0))
    x1, y1 = (int(np.ceil(v + 0.05 * iod)) + 1 for v in pts.max(0))
    out = np.zeros(shape, np.float32)
    part = np.ascontiguousarray(img[y0:y1, x0:x1])
    if part.size == 0:
        return out
    box_lm: np.ndarray = lm - np.array([x0, y0, 0], np.float32)
    box = (part.shape[0], part.shape[1])
    lips = regions_mask(box_lm, box, ("lips",)) * (1.0 - polygon_mask(box, box_lm[MOUTH_OPENING], hull=False))
    if not (lips > 0.5).any():
        return out
    y = luma(part)
    level = float(np.median(y[lips > 0.5]))
    out[y0:y1, x0:x1] = (y < LIP_DARK * level) * (dilate(lips, 0.02 * iod) > 0)
    return out


def skin_above(like: np.ndarray, iod: float, reach: float = BROW_REACH) -> np.ndarray:
    """(H, W): the most skin-like ``like`` (H, W) of the pixel and the ``reach`` iod right above it. A brow has
    forehead skin above it; the tail of a mesh brow that lies under hair (a fringe or temple hair over the brow,
    blonde strands beside it) has hair above it: that part is not lifted as brow."""
    r = max(1, round(reach * iod))
    kernel = np.ones((r + 1, 1), np.uint8)
    return np.asarray(cv2.dilate(like, kernel, anchor=(0, r), borderType=cv2.BORDER_REPLICATE), np.float32)


def inside_upper(weight: np.ndarray, lm: np.ndarray, iod: float) -> np.ndarray:
    """``weight`` (H, W) eroded by 3 ``HOLD_SOFT`` iod from hair, from the upper lids up (fading in over 0.05 iod):
    blurred by ``HOLD_SOFT`` the lift's hold then falls to 0 at the hair's edge, not 0.04-0.08 iod into it (temple
    hair, a fringe or a lock at the brows' ends). Hair here is what is off ``weight`` with nothing on it
    ``BROW_REACH`` above (``skin_above``): brows, brow hairs beyond the mesh brow, the eyes and moles have skin above
    them and keep their lift round them (eroded from every edge, Biden's judged drop fell 35 → 30 years). Below the
    lids the weight is as it was: the jaw's edge must move with the jaw."""
    top = float(lm[[EYE_TOP_R, EYE_TOP_L], 1].min()) - 0.05 * iod
    n = min(weight.shape[0], max(0, int(np.ceil(top))))
    r = round(3 * HOLD_SOFT * iod)
    if n == 0 or r < 1:
        return weight
    rows = soft_step(top - np.arange(n, dtype=np.float32), 0.0, 0.05 * iod)[:, None]
    part = weight[: min(weight.shape[0], n + r)]
    hair = 1.0 - skin_above(part, iod)  # off the skin with no skin BROW_REACH above: not a brow, an eye or a mole
    hair8 = cv2.convertScaleAbs(hair, alpha=255.0)  # (a max commutes with rounding: bytes, ~3x faster)
    near = cv2.dilate(hair8, disk(r), borderType=cv2.BORDER_REPLICATE)[:n].astype(np.float32) / np.float32(255.0)
    eroded = np.minimum(part[:n], 1.0 - near)
    out = weight.copy()
    out[:n] += rows * (eroded - weight[:n])
    return out


def fringe(img: np.ndarray, lm: np.ndarray, iod: float) -> np.ndarray:
    """Hair strands (H, W) in [0, 1] over the forehead and temples of ``img`` (H, W, 3) from 0.15 iod above
    the eyes up (beauty's test: ``ops.skin.hair_strands``), off the brows (the lift moves those), with a
    ``FRINGE_FADE`` soft edge: fringe hair as fair as skin. De-age neither warps nor retouches it."""
    shape = (img.shape[0], img.shape[1])
    hair = strands_above_eyes(img, lm, iod)
    brows = regions_mask(lm, shape, ("brow_r", "brow_l"))
    hair = np.clip(2.0 * hair, 0, 1) * (1.0 - dilate(brows, 0.04 * iod))
    fade = FRINGE_FADE * iod
    soft = on_support(lambda m: gauss(m, fade), dilate(hair, 0.01 * iod), blur_radius(fade))
    return np.asarray(np.clip(soft * 1.5, 0, 1), np.float32)


def above_brows(skin: np.ndarray, lm: np.ndarray, iod: float) -> np.ndarray:
    """What is not skin above the brows (H, W) in [0, 1]: off ``skin`` (beauty's matte: the hairline, a fringe
    or a lock over the forehead by its colour), rising from 0 at the matte's edge to 1 ~0.05 iod into it (the
    change fades out on the hair, not on the skin: no seam; holes in the matte narrower than that stay skin),
    from 0.05 iod above the brows' top up, the brows and 0.06 iod round them left out (they lift). De-age
    leaves it as shot: the lift does not drag hair with the skin."""
    shape = (skin.shape[0], skin.shape[1])
    brows = regions_mask(lm, shape, ("brow_r", "brow_l"))
    top = float(lm[brow_points(), 1].min()) - 0.05 * iod
    rows = soft_step(top - np.arange(shape[0], dtype=np.float32), 0.0, 0.05 * iod)[:, None]
    near = np.clip(on_support(lambda m: gauss(m, 0.02 * iod), dilate(brows, 0.06 * iod), blur_radius(0.02 * iod)), 0, 1)
    n = min(shape[0], max(0, int(np.ceil(top)) + 1))  # rows below ``top`` are 0
    out = np.zeros(shape, np.float32)
    if n == 0:
        return out
    reach = blur_radius(0.03 * iod)  # the blur reads that far below the last row kept
    off = np.clip(2.0 * gauss(1.0 - skin[: min(shape[0], n + reach)], 0.03 * iod)[:n] - 1.0, 0, 1)
    out[:n] = rows[:n] * (1.0 - near[:n]) * off
    return out


def locks(img: np.ndarray, like: np.ndarray, lm: np.ndarray, iod: float) -> np.ndarray:
    """Locks of hair hanging over the forehead of ``img`` (H, W, 3) down to the brows' top (H, W) in [0, 1]
    (``hair.hanging_locks`` of the skin likelihood ``like`` (H, W): a lock's tip as skin-coloured as the
    forehead): 1 on them and ``LOCK_MARGIN`` iod round them, then a soft edge out on the skin of ``LOCK_FADE`` (a
    harder one, ~1 px on a small face, read as a seam). Worked on the rows down to the brows (and that edge)."""
    out = np.zeros(like.shape, np.float32)
    top = min(like.shape[0], max(0, int(np.ceil(float(lm[brow_points(), 1].min()))) + 1))
    hair = hanging_locks(luma(np.ascontiguousarray(img[:top])), like[:top], iod, top)
    if not hair.any():
        return out
    fade = max(LOCK_FADE[0] * iod, LOCK_FADE[1])
    grow_by = LOCK_MARGIN * iod + fade  # the blur's half-way point a fade out: 0.84 (x 1.2: 1) on the margin
    n = min(like.shape[0], top + int(np.ceil(grow_by)) + blur_radius(fade))
    part = np.zeros((n, like.shape[1]), np.float32)
    part[:top] = hair
    soft = on_support(lambda m: gauss(m, fade), dilate(part, grow_by), blur_radius(fade))
    out[:n] = np.clip(1.2 * soft, 0, 1)
    return out


def held_apart(face: AlignedFace, like: np.ndarray) -> tuple[AlignedFace, np.ndarray, np.ndarray]:
    """What de-age leaves as shot in ``face`` with skin likelihood ``like`` (H, W): (the face with a dark occluder
    on its lips (``dark_on_lips``) added to ``held_out``, as the track's glasses are; the hair over the forehead
    (H, W) in [0, 1]: ``fringe`` strands and hanging ``locks``; ``like`` off that hair)."""
    lm, iod = face.landmarks, face.iod
    strands = np.maximum(fringe(face.image, lm, iod), locks(face.image, like, lm, iod))
    dark = dark_on_lips(face.image, lm, iod)
    if dark.any():
        face = replace(face, held_out=dark if face.held_out is None else np.maximum(face.held_out, dark))
    return face, strands, np.asarray(like * (1.0 - strands), np.float32)


def near_clipped(img: np.ndarray, iod: float) -> np.ndarray:
    """Blown highlights of ``img`` (H, W, 3) and ``CLIP_REACH`` iod round them (H, W) in [0, 1], then falling
    smoothly to 0. A clipped plateau has neither a skin level nor pores: the dark skin beside it reads as a valley
    (a deep line to fill) or a dark spot, and the plateau's edge as pore grain (copied into the lines), so the
    restore brightened skin beside a stage light by up to 85/255 (Hamilton 0130: a seam of 11.9/255 where the
    matte ends at the brow)."""
    shape = (img.shape[0], img.shape[1])
    c = cv2.split(img)
    blown = (cv2.min(cv2.min(c[0], c[1]), c[2]) >= CLIPPED).astype(np.float32)  # (numpy's min over axis 2: ~20x slower)
    if not blown.any():
        return np.zeros(shape, np.float32)
    hard, fade = max(2.0, CLIP_REACH[0] * iod), CLIP_REACH[1] * iod
    near = dilate(blown, hard + fade)  # 1 to ``hard`` px off the highlight, 0 from ~``hard + 2 fade`` (smooth)
    return np.asarray(np.clip(2.0 * on_support(lambda m: gauss(m, fade), near, blur_radius(fade)), 0, 1), np.float32)


def deage_matte() -> SkinMatte:
    """Beauty's skin matte with a wider rise off hair and beards (0.03-0.15 iod): the lift and the fills change
    more than a retouch, and over beauty's 0.1 that change stepped at a fair temple (a seam)."""
    return SkinMatte(colour_margin=(0.03, 0.15))


@dataclass
class DeageContext:
    skin: SkinModel | None
    segmenter: PersonSegmenter | None
    jowls: float = 1.0  # share of the jowl lift for the track (jowl_share)


@EFFECTS.register("deage")
@dataclass(frozen=True)
class DeageEffect(Effect):
    """Procedural de-age: facelift warps + strong retouch + tone; background and eyes untouched."""

    name: ClassVar[str] = "deage"
    streams: ClassVar[bool] = True
    settings: DeageSettings = field(default_factory=DeageSettings)
    matte: SkinMatte = field(default_factory=deage_matte)

    @property
    def face_type(self) -> str:  # type: ignore[override]
        return "head" if self.settings.hair else "whole_face"

    def resolution(self, plate_iod: float) -> int:
        return super().resolution(min(plate_iod, 72.0))

    def retouch_effect(self) -> BeautyEffect:
        """The beauty retouch this de-age runs on the skin (its settings at these years, this skin matte)."""
        return BeautyEffect(self.settings.retouch(), self.matte)

    def prepare(self, samples: list[AlignedFace], identity: np.ndarray | None = None) -> DeageContext:
        seg = PersonSegmenter() if self.settings.hair else None
        skin = self.retouch_effect().prepare(samples, identity)
        return DeageContext(skin, seg, jowl_share(self.track_jowls(samples, skin)))

    def track_jowls(self, samples: list[AlignedFace], skin: SkinModel | None) -> float | None:
        """The track's ``volume.jowl_depth``: the median over its sample frames (one value a track: the lift
        does not change strength as the mouth moves), None if no sample shows the skin below the mouth."""
        retouch = self.retouch_effect()
        got = [jowl_depth(luma(f.image), retouch.skin_matte(f, skin), f.landmarks, f.iod) for f in samples]
        depths = [d for d in got if d is not None]
        return float(np.median(depths)) if depths else None

    def _retouch(self, face: AlignedFace, skin: SkinModel | None) -> EffectResult:
        """Beauty's retouch at beauty's own working scale (eyes WORK_IOD px apart), its change and matte
        scaled back up: the lift needs the finer crop, the retouch does not (~2x cheaper)."""
        k = WORK_IOD / face.iod
        if k > 0.9:
            return self.retouch_effect().apply(face, skin)
        h, w = face.image.shape[:2]
        size = (round(w * k), round(h * k))
        small = shrink(face.image, size)
        lm = face.landmarks * np.array([size[0] / w, size[1] / h, k], np.float32)
        r = self.retouch_effect().apply(AlignedFace(face.frame, face.track, small, lm, face.iod * k), skin)
        change = grow(r.image - small, (h, w))
        change += face.image
        return EffectResult(change, np.clip(grow(r.matte, (h, w)), 0, 1))

    def _restore(self, out: np.ndarray, plate: np.ndarray, plate_s: np.ndarray, lm: np.ndarray, skin: np.ndarray,
                 skin_s: np.ndarray, iod: float, light_s: np.ndarray) -> np.ndarray:  # fmt: skip
        """Deep lines, hollows, spots and tone on ``skin`` of the retouched ``out``, worked at half size (broad
        bands only; ``plate_s``, ``skin_s``: ``shrink`` of ``plate`` and ``skin``; filled whole where ``light_s``
        (half size, ``light_evenness``) is even, only as dips where a side light shades the face); then the pore
        band put back from ``plate`` (re-synthesised in the lines); none of lines, spots or pores read off a
        blown highlight's edge (:func:`near_clipped`)."""
        shape = (skin.shape[0], skin.shape[1])
        small = shrink(out, half_size(shape))
        k = small.shape[1] / shape[1]
        lm_s = lm * np.array([k, small.shape[0] / shape[0], k], np.float32)
        kept_s = 1.0 - near_clipped(plate_s, iod * k)  # (found at half size: ~4x cheaper, a soft weight)
        changed, lines = self._broad(small, plate_s, lm_s, skin_s, iod * k, light_s, kept_s)
        on = skin * grow(kept_s, shape)
        up = grow(changed - small, shape)
        up += out  # (in place: fewer full-size temporaries; the same sums)
        out = np.clip(up, 0, 1, out=up)
        return restore_pores(out, line_texture(plate, grow(lines, shape), on, iod), on, PORES_KEPT)

    def _broad(self, img: np.ndarray, plate: np.ndarray, lm: np.ndarray, skin: np.ndarray, iod: float,
               light: np.ndarray, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """The broad restore at one scale: (image, lines filled (H, W)); lines and spots only where ``kept``."""
        s = self.settings
        shape = (skin.shape[0], skin.shape[1])
        lines = np.zeros(skin.shape, np.float32)
        if s.wrinkles:
            nose = nose_mask(lm, shape, iod)
            img, lines = remove_wrinkles(img, skin * kept * (1.0 - nose), iod, s.line_amount, plate, light)
            img = soften_folds(img, fold_band(lm, shape, iod) * skin * light, iod, s.fold_amount)
            img = flatten_mid(img, skin * (1.0 - 0.7 * nose), iod, s.mid_amount)
        face = face_area(skin, iod) if (s.volume or s.tone) and not evenly_lit(light) else None  # shared by both
        if s.volume:
            img = fill_hollows(img, skin, hollows(lm, shape, iod), iod, s.hollow_amount, light, face)
        if s.spots:
            img = remove_spots(img, age_spots(plate, skin, iod, light) * kept, iod, s.spot_amount, kept)
        if s.tone:
            img = even_tone(img, skin, iod, 0.02 * s.k, 0.1 * s.k, light, face)
        return img, lines

    def apply(self, face: AlignedFace, context: Any) -> EffectResult:
        shape = (face.image.shape[0], face.image.shape[1])
        ctx: DeageContext = context
        # the field is held to zero off the skin (smoothly: no folds), and what still moved off it is cut
        plate_s = shrink(face.image, half_size(shape))
        face, strands, like = held_apart(face, skin_likelihood(face.image, ctx.skin, plate_s))
        before = lift_weight(face, like, face.landmarks)
        hold = np.clip(gauss(inside_upper(before, face.landmarks, face.iod), HOLD_SOFT * face.iod), 0.0, 1.0)
        fld = lift_field(face.landmarks, shape, self.settings, ctx.jowls)
        fld *= spread(hold, 2)
        warped = warp_keep_grain(face.image, fld, open_skin(face.landmarks, like, face.iod))
        lm = face.landmarks.copy()
        xi = np.clip(np.round(lm[:, 0]).astype(int), 0, shape[1] - 1)
        yi = np.clip(np.round(lm[:, 1]).astype(int), 0, shape[0] - 1)
        lm[:, :2] += fld[yi, xi]
        retouched = self._retouch(AlignedFace(face.frame, face.track, warped, lm, face.iod), ctx.skin)
        skin = retouched.matte
        half = half_size(shape)
        warped_s, skin_s = shrink(warped, half), shrink(skin, half)
        k = half[0] / shape[1]
        light_s = light_evenness(luma(warped_s), skin_s, float(lm[MIDLINE, 0].mean()) * k, face.iod * k)  # smooth
        out = retouched.image - warped  # retouch on skin; the warp wherever it moves
        out *= spread(skin, 3)
        out += warped
        out = self._restore(out, warped, warped_s, lm, skin, skin_s, face.iod, light_s)
        # under a side light the folds keep their broad shading, whichever op filled it (texture still fixed)
        if not evenly_lit(light_s):
            light = grow(light_s, shape)
            out = keep_fine(out - warped, (1.0 - light) * fold_band(lm, shape, face.iod), 0.02 * face.iod)
            out += warped
        box = lid_box(lm, shape, face.iod)  # the retouch fades in at the eyes' matte edge
        fade = spread(np.ascontiguousarray(lid_fade(skin, lm, face.iod)[box]), 3)
        out[box] = warped[box] + fade * (out[box] - warped[box])
        moved = np.hypot(fld[..., 0], fld[..., 1])  # |fld| (cv2.magnitude's result varies by 1 ulp between calls)
        moved_area = np.clip(moved / (0.004 * face.iod), 0, 1)
        after = lift_weight(face, skin_likelihood(warped, ctx.skin, warped_s), lm)
        on_skin = np.clip(gauss(np.maximum(before, after), 0.015 * face.iod), 0.0, 1.0)
        rigid = np.maximum(strands, above_brows(skin, lm, face.iod))  # hair over the forehead stays as shot
        lm_s = lm * np.array([k, warped_s.shape[0] / shape[0], k], np.float32)
        shown = grow(seen(warped_s, plate_s, lm_s, k * face.iod), shape)  # where the move shows
        moved_area = gauss(moved_area, 0.05 * face.iod) * on_skin * shown
        matte = np.maximum(retouched.matte, moved_area) * (1.0 - rigid)
        out = blend_where(out, rigid, face.image)  # (--hair recolours it below)
        if ctx.segmenter is not None:
            person = ctx.segmenter(np.round(np.clip(face.image, 0, 1) * 255).astype(np.uint8))
            hair = hair_alpha(face.image, face.landmarks, person, face.iod) * (1.0 - skin)
            out = recolour_hair(out, hair, min(self.settings.k, 1.0), iod=face.iod)
            matte = np.maximum(matte, (hair > 0).astype(np.float32))  # the recolour is alpha-weighted already
        return EffectResult(np.asarray(out, np.float32), np.asarray(np.clip(matte, 0, 1), np.float32))
