"""Beauty fix: skin retouch (frequency separation, blemishes, wrinkles, under-eye, tone) on skin only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import numpy as np

from faceplate.analysis.faces import interocular
from faceplate.effects.base import EFFECTS, AlignedFace, Effect, EffectResult
from faceplate.errors import FaceNotFoundError
from faceplate.landmarks import EYE_OUTER_L, EYE_OUTER_R, MOUTH_L, MOUTH_R, NOSE_BOTTOM, UPPER_LIP
from faceplate.ops.filters import blur_radius, fill_holes, gauss, luma
from faceplate.ops.regions import (
    dark_features,
    dilate,
    dilated_regions,
    distance_from,
    edge_distance,
    eye_distance,
    feather,
    feature_edges,
    feature_mask,
    fill_enclosed,
    inset_outline,
    on_support,
    outer_edges,
    region_mask,
    sample_patches,
    skin_region,
    under_eye,
)
from faceplate.ops.retouch import RetouchSettings, keep_fine, retouch, soft_step
from faceplate.ops.skin import SkinModel, hair_strands


def _hw(img: np.ndarray) -> tuple[int, int]:
    return int(img.shape[0]), int(img.shape[1])


WORK_IOD = 56.0  # retouch at a scale where the eyes are at most this far apart (px)
LIPS_RAMP = 0.85  # px: where lips_zone's ramp ends past its reach (fitted to the disk dilation it replaced)
RETOUCH_PAD = 0.25  # iod round the matte the retouch works on (the blemish blur's reach; the tone's is wider)


def matte_box(matte: np.ndarray, pad: int) -> tuple[slice, slice]:
    """Rows and columns (slices) of ``matte`` (H, W)'s nonzero pixels grown by ``pad`` px, within it (empty
    slices for an empty matte)."""
    x, y, w, h = cv2.boundingRect(np.asarray(matte > 0, np.uint8))
    if w == 0:
        return slice(0, 0), slice(0, 0)
    (hh, ww) = _hw(matte)
    return slice(max(0, y - pad), min(hh, y + h + pad)), slice(max(0, x - pad), min(ww, x + w + pad))


def lips_zone(lm: np.ndarray, shape: tuple[int, int], reach: float) -> np.ndarray:
    """(H, W) in [0, 1]: 1 within ``reach`` eye distances of the lips (moustache and chin), softened. The
    reach is read off the distance to the lips (a 1 px ramp ending LIPS_RAMP px past it: on average
    what dilating the anti-aliased lips by a disk that wide gave, at ~half its cost)."""
    iod = eye_distance(lm)
    k, s = round(reach * iod), 0.05 * iod

    def zone(lips: np.ndarray) -> np.ndarray:
        # the 5x5 mask's distance (the precise one's depends on the buffer's alignment: IPP's code path)
        d = cv2.distanceTransform((lips < 0.5).astype(np.uint8), cv2.DIST_L2, 5)
        return gauss(np.clip(k + LIPS_RAMP - d, 0.0, 1.0).astype(np.float32), s)

    return on_support(zone, region_mask(lm, shape, "lips"), k + 1 + blur_radius(s))


def beard_floor(lm: np.ndarray, shape: tuple[int, int], dark: float, stubble: float, reach: float = 0.0,
                lips: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Per-pixel dark floor (H, W) for the skin model: ``dark`` above the nose, rising to ``stubble`` from
    the nose tip to the mouth (a shaved beard's shadow is darker skin of skin's own hue); with ``reach`` > 0
    (eye distances) only that far round the lips (moustache and chin; ``lips``: :func:`lips_zone` of it,
    when the caller has it), not on the cheeks and jaw."""
    ys = np.arange(shape[0], dtype=np.float32)[:, None]
    nose, mouth = float(lm[NOSE_BOTTOM, 1]), float(lm[[MOUTH_L, MOUTH_R], 1].mean())
    t = np.broadcast_to(np.clip((ys - nose) / max(mouth - nose, 1.0), 0.0, 1.0), shape)
    if reach > 0:
        t = t * (lips_zone(lm, shape, reach) if lips is None else lips)
    return np.asarray(dark + (max(stubble, dark) - dark) * t, np.float32)


def philtrum(img: np.ndarray, lm: np.ndarray, iod: float) -> np.ndarray:
    """The pixels (N, 3) of ``img`` (H, W, 3) within 0.05 eye distances (a square) of the midpoint from the
    nose to the upper lip (N = 0 where that lies off the crop)."""
    x, y = np.round((lm[NOSE_BOTTOM, :2] + lm[UPPER_LIP, :2]) / 2).astype(int)
    r, (h, w) = max(1, round(0.05 * iod)), _hw(img)
    return img[max(0, y - r) : min(h, y + r + 1), max(0, x - r) : min(w, x + r + 1)].reshape(-1, 3)


def shaved_shadow(px: np.ndarray, model: SkinModel, redder: tuple[float, float], lit: tuple[float, float]) -> float:
    """Share in [0, 1] of the stubble floor (:func:`beard_floor`) that applies to a face by its philtrum's
    pixels ``px`` (N, 3) (:func:`philtrum`): 0 where they are as red as the skin or redder (their Cr/Y' median
    ``redder[1]`` of ``model``'s standard deviations above its mean or more; 1 at ``redder[0]`` or less) and
    lit (their luma median ``lit[1]`` of the skin's mean or more; 1 at ``lit[0]`` or less). A shaved beard's
    shadow is less red than the cheeks (wan 0018/0024: -1.2 sd, Hamilton 0130 -0.5), a moustache dark (Hamilton
    0190: +1.1 sd but 0.52 of the skin's luma); the shade round a clean-shaven mouth is redder and lit (Biden
    +1.2 sd at 0.63, s32 +1.9-2.0 at 0.8). No pixels: 1 (the floor as set)."""
    if len(px) == 0:
        return 1.0
    z = float(np.median(model.deviation(px.reshape(-1, 1, 3))[..., 2]))
    y = float(np.median(luma(px.reshape(-1, 1, 3)))) / max(float(model.mean[0]), 1e-6)
    less_red = (redder[1] - z) / (redder[1] - redder[0])
    dark = (lit[1] - y) / (lit[1] - lit[0])
    return float(np.clip(max(less_red, dark), 0.0, 1.0))


def strands_above_eyes(img: np.ndarray, lm: np.ndarray, iod: float) -> np.ndarray:
    """Hair strands (H, W) in [0, 1] of ``img`` (H, W, 3) on the forehead and temples, from 0.15 iod above the
    eyes up (a fringe or a hairline; below, crow's feet and laugh lines are as strong and as aligned as hair)."""
    eyes = float(lm[[EYE_OUTER_R, EYE_OUTER_L], 1].min()) - 0.15 * iod
    return hair_strands(img, sample_patches(lm, _hw(img), forehead=False), iod, rows=int(np.ceil(eyes)))


def margin_share(lm: np.ndarray, shape: tuple[int, int], iod: float, low: float, lips: np.ndarray | None) -> np.ndarray:
    """(H, W) share of the colour margin that applies: 1 above the eyes (where hair reaches in) and on
    ``lips`` (H, W) (:func:`lips_zone`: a moustache, a goatee), falling smoothly over 0.3 eye distances
    below the eye line to ``low`` elsewhere (the jaw and cheeks' edge: background, the neck's shade)."""
    ys = np.arange(shape[0], dtype=np.float32)[:, None]
    t = np.clip((ys - float(lm[[EYE_OUTER_R, EYE_OUTER_L], 1].mean())) / (0.3 * iod), 0.0, 1.0)
    t = np.broadcast_to(t * t * (3 - 2 * t), shape)
    if lips is not None:
        t = t * (1.0 - lips)
    return np.asarray(1.0 - (1.0 - low) * t, np.float32)


def hair_distance(off: np.ndarray, img: np.ndarray, lm: np.ndarray, iod: float, skin_luma: float,
                  extra: tuple[float, float], dark: float,
                  held_out: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Distance (H, W) in px to the nearest dark hair of ``off`` (H, W) bool (what the colour calls not skin in
    the skin area), less ``extra[0]`` eye distances where that hair lies above the pixel (the hairline, a
    fringe's tip) and ``extra[1]`` where it lies beside it (a lock's sides), from 0.3 eye distances above the
    eyes up (fading in over the 0.3 below that); the plain distance elsewhere. Hair is dark here: darker than
    ``dark`` times ``skin_luma`` (the skin model's mean luma: skin in shade and blown highlights are lighter),
    off the brows and ``held_out`` (H, W) (a glasses frame is no hairline).

    The colour sees the hairline where the luma has fallen half way into the hair; the plate's blur and the
    fine hairs reaching down over the skin there still belong to the hair (bench_occluders' labels end the
    skin ~0.1-0.15 eye distances lower on Hamilton 0190 and d12 0120). Which way the hair lies is the
    distance's gradient, smoothed (no step where the nearest hair changes from above to beside): the temples,
    where hair lies beside the skin and the labelled skin runs up to it, keep the plain margin. Worked on the
    rows that widen only (and their blur's reach): below them, and to hair below them, the plain distance.
    """
    h, w = _hw(img)
    top = float(lm[[EYE_OUTER_R, EYE_OUTER_L], 1].min()) - 0.3 * iod
    n = min(h, max(0, int(np.ceil(top)) + blur_radius(0.05 * iod) + 1))  # below: no wider margin, nor its blur
    out = np.full((h, w), float(h + w), np.float32)  # farther than any pixel: the plain distance applies
    if n == 0:
        return out
    brows = dilated_regions(lm, (n, w), ("brow_r", "brow_l"), 0.06 * iod)
    hair = off[:n] & (luma(img[:n]) < dark * skin_luma) & (brows < 0.5)
    if held_out is not None:
        hair &= held_out[:n] < 0.5
    if not hair.any():
        return out
    d = distance_from(hair)  # the rows below n are left out: hair there (a beard) leaves the plain margin
    gx, gy = cv2.Sobel(d, cv2.CV_32F, 1, 0), cv2.Sobel(d, cv2.CV_32F, 0, 1)  # points away from the nearest hair
    above = soft_step(gy / np.maximum(np.hypot(gx, gy), 1e-3), 0.7, 0.9)  # 1: the nearest hair straight above
    t = np.clip((top - np.arange(n, dtype=np.float32)[:, None]) / (0.3 * iod), 0.0, 1.0)
    less = gauss(np.asarray(t * (extra[1] + (extra[0] - extra[1]) * above), np.float32), 0.05 * iod) * iod
    out[:n] = np.maximum(d - less, 0.0)
    return out


@dataclass(frozen=True)
class SkinMatte:
    """How the skin matte is built; lengths in eye distances (iod).

    The matte covers the skin up to the features' own edges: ``margins`` (eyes, brows, lips) round the
    mesh's features (a negative one: that feature's edge comes from the picture, see regions.dark_features;
    the brows and, with ``nostril`` 0, the nostrils), ``feather`` the soft edge, ``outline_inset`` the inset
    from the face outline raised by ``forehead_lift``, ``close`` the colour mask's closing radius (spots
    thinner than this near an edge are skin). Within ``edge_band`` of the matte's edge only the change finer
    than ``edge_sigma`` is applied: texture is retouched up to the lash line and the lip edge, the shading
    that gives them (and the outline) their shape is kept. ``stubble``: below the nose and within
    ``stubble_reach`` of the lips (0: the whole lower face), skin darker than this share of the mean luma is
    stubble (at or below the model's own floor: no such rule). ``strands``: hair strands on the forehead and
    temples (ops.skin.hair_strands) are not skin even where their colour is. ``hair_margin`` (above, beside):
    above the eyes the colour margin off dark hair (darker than ``hair_dark`` of the skin's mean luma) is
    that much wider (eye distances) where the hair lies above the skin (a hairline, a fringe's tip) and
    beside it (:func:`hair_distance`); None: the plain margin. ``shaved`` (redder, lit): the stubble floor
    applies only as far as the philtrum is less red or darker than the skin (:func:`shaved_shadow`; None: it
    always applies). ``feather_inset`` and ``colour_inset``: the feather's inset (eye distances) from the
    mesh's edges (outline, features) and from the colour's (None for both: 2 feathers off either).
    ``dark_margin``: the brows' and nostrils' dark pixels grow by this. ``held_once``: the matte returned
    leaves the track's occluders (``face.held_out``) to the composite, which holds them out itself (the
    filters still see them held out); False: held out here as well (the composite's alpha has them twice).

    The colour likelihood is a decision, not a weight: ``decide`` (lo, hi) maps it to 0-1 (a shaded cheek
    at half the likelihood is skin), and the matte rises from 0 to 1 between ``colour_margin`` (eye
    distances) from what the colour calls not skin (hair, a beard, a frame reaching in from the outline or
    the lips); below the eyes, away from the lips, only ``low_margin`` of it (:func:`margin_share`: there
    the colour's edge is mostly the face's own outline against the background or the neck).
    """

    feather: float = 0.015
    feather_inset: float | None = None
    colour_inset: float | None = None
    use_colour: bool = True
    margins: tuple[float, float, float] | None = (0.03, -1.0, 0.01)
    outline_inset: float = 0.0
    nostril: float = 0.0
    edge_band: float = 0.25
    edge_sigma: float = 0.015
    close: float = 0.03
    feature_colour: bool = True
    dark_margin: float = 0.01
    forehead_lift: float = 0.25
    stubble: float = 0.72
    stubble_reach: float = 0.3
    strands: bool = True
    decide: tuple[float, float] = (0.25, 0.5)
    colour_margin: tuple[float, float] = (0.03, 0.1)
    low_margin: float = 1.0
    hair_margin: tuple[float, float] | None = (0.18, 0.03)
    hair_dark: float = 0.35
    shaved: tuple[float, float] | None = None
    shaved_lit: tuple[float, float] = (0.55, 0.6)
    held_once: bool = False


def beauty_matte() -> SkinMatte:
    """Beauty's skin matte: below the eyes, away from the lips, half the colour margin (``low_margin``;
    labelled skin covered +0.2-1.8 points on the tuning frames of bench_occluders, none more off it); the
    stubble floor only on a face whose philtrum says shaved beard (``shaved``: Biden +5.4 points, s32 +1.2-1.5,
    the rest as they were); a 1 px (at WORK_IOD) feather inset at the mesh's edges, the colour's kept at 2 px,
    the outline inset 1 px and the brows' mesh hull held out as well as their dark hair; the eyes' margin
    halved, the lips' none; the track's glasses held out once (``held_once``: +1.3-1.4 on d12 and wan).
    Together: 70.8% to 74.1% of the tuning frames' labelled skin covered, none more than 2% off it."""
    return SkinMatte(feather=0.012, feather_inset=0.016, colour_inset=0.032, margins=(0.015, 0.0, 0.0),
                     outline_inset=0.018, low_margin=0.5, shaved=(-0.5, 0.5), held_once=True)  # fmt: skip


@EFFECTS.register("beauty")
@dataclass(frozen=True)
class BeautyEffect(Effect):
    """Retouch the skin of a face; eyes, brows, lips, nostrils, hair, beards and glasses stay untouched."""

    name: ClassVar[str] = "beauty"
    streams: ClassVar[bool] = True
    settings: RetouchSettings = field(default_factory=RetouchSettings)
    matte: SkinMatte = field(default_factory=beauty_matte)
    crop: str = "whole_face"  # "head": its crop also reaches a tall forehead and the chin that whole_face's
    #                           edge fade cuts (labelled skin cover +3-8%), at ~2x the effect's cost

    @property
    def face_type(self) -> str:  # type: ignore[override]
        return self.crop

    def prepare(self, samples: list[AlignedFace], identity: np.ndarray | None = None) -> SkinModel | None:
        """Fit the track's skin-colour model on its cheeks across the sample frames, then on the cheeks and
        the forehead pixels that the cheeks' model calls skin (a fringe over the forehead is not sampled)."""
        if not self.matte.use_colour:
            return None
        cheeks, forehead = [], []
        for f in samples:
            shape = _hw(f.image)
            region = skin_region(f.landmarks, shape)
            both = sample_patches(f.landmarks, shape) * region
            only = sample_patches(f.landmarks, shape, forehead=False) * region
            cheeks.append(f.image[only > 0.5])
            forehead.append(f.image[(both > 0.5) & (only <= 0.5)])
        px = np.concatenate(cheeks) if cheeks else np.empty((0, 3), np.float32)
        if len(px) < 50:
            raise FaceNotFoundError("the chosen face shows too little skin to retouch (no cheeks visible)")
        model = SkinModel.fit(px)
        top = np.concatenate(forehead) if forehead else np.empty((0, 3), np.float32)
        if len(top):
            top = top[model.likelihood(top.reshape(-1, 1, 3)).ravel() > 0.5]
        return SkinModel.fit(np.concatenate([px, top])) if len(top) else model

    def skin_matte(self, face: AlignedFace, model: SkinModel | None) -> np.ndarray:
        """Soft skin matte (R, R) in [0, 1] for ``face``, its occluders (``face.held_out``) held out."""
        matte = self.colour_matte(face, model)
        return matte if face.held_out is None else matte * (1.0 - face.held_out)

    def colour_matte(self, face: AlignedFace, model: SkinModel | None) -> np.ndarray:
        """Soft skin matte (R, R) in [0, 1] from the mesh and the skin colour alone.

        Off-colour patches enclosed by skin (spots, ruddy or shaded cheeks) are skin; hair and beards reach
        in from the outline or the lips and stay out, the matte rising from 0 at their own edge (a hard edge
        along hair is no seam, a feather onto it would retouch it), farther off dark hair at the hairline
        (``hair_margin``: :func:`hair_distance`). Glasses: the occluder matte.
        """
        m, shape = self.matte, _hw(face.image)
        area = self.outline_area(face.landmarks, shape, face.iod)
        hard = self.hard_region(face, area)
        if model is None:
            return feather(hard, m.feather * face.iod)
        r = max(1, round(m.close * face.iod))
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        lips = lips_zone(face.landmarks, shape, m.stubble_reach) if m.stubble_reach > 0 else None
        like = model.likelihood(face.image, self.dark_floor(face, model, lips))
        if m.strands:
            like = like * (1.0 - self.strands_above_eyes(face))
        closed = np.asarray(cv2.morphologyEx(like, cv2.MORPH_CLOSE, disk), np.float32)
        edges = outer_edges(face.landmarks, shape, area=area)
        if m.feature_colour:
            edges = np.maximum(edges, feature_edges(face.landmarks, shape))
        filled = fill_enclosed(soft_step(closed, *m.decide), hard, edges)
        soft = self.feathered(hard, gauss(filled, 0.01 * face.iod), face.iod) * filled
        lo, hi = m.colour_margin
        if hi <= 0:
            return soft
        off = (filled < 0.5) & (hard > 0.5)
        away = distance_from(off)  # px to the nearest hair, beard or frame pixel
        if m.hair_margin is not None:
            hair = hair_distance(off, face.image, face.landmarks, face.iod, float(model.mean[0]), m.hair_margin,
                                 m.hair_dark, face.held_out)  # fmt: skip
            away = np.minimum(away, hair)
        if m.low_margin < 1.0:
            away = away / margin_share(face.landmarks, shape, face.iod, m.low_margin, lips)
        return np.asarray(soft * soft_step(away, lo * face.iod, hi * face.iod), np.float32)

    def dark_floor(self, face: AlignedFace, model: SkinModel, lips: np.ndarray | None) -> np.ndarray:
        """The skin model's dark floor (H, W) on ``face`` (:func:`beard_floor`; ``lips``: its :func:`lips_zone`),
        the stubble's share of it as its philtrum says (``shaved``, :func:`shaved_shadow`)."""
        m, stubble = self.matte, self.matte.stubble
        if m.shaved is not None:
            share = shaved_shadow(philtrum(face.image, face.landmarks, face.iod), model, m.shaved, m.shaved_lit)
            stubble = model.dark + (max(stubble, model.dark) - model.dark) * share
        return beard_floor(face.landmarks, _hw(face.image), model.dark, stubble, m.stubble_reach, lips)

    def feathered(self, hard: np.ndarray, colour: np.ndarray, iod: float) -> np.ndarray:
        """(H, W) soft edges of the skin area ``hard`` (H, W) less what the colour calls not skin (``colour``
        (H, W) in [0, 1]): eroded by ``feather_inset`` (the mesh's edges) and ``colour_inset`` (the colour's),
        then blurred by ``feather``; both insets None: 2 feathers off either (one erosion of the two)."""
        m, s = self.matte, self.matte.feather * iod
        if m.feather_inset is None and m.colour_inset is None:
            return feather(hard * colour, s)
        inset = lambda t: None if t is None else t * iod  # noqa: E731
        return feather(hard, s, inset(m.feather_inset)) * feather(colour, s, inset(m.colour_inset))

    def strands_above_eyes(self, face: AlignedFace) -> np.ndarray:
        """:func:`strands_above_eyes` of ``face``."""
        return strands_above_eyes(face.image, face.landmarks, face.iod)

    def outline_area(self, lm: np.ndarray, shape: tuple[int, int], iod: float) -> np.ndarray:
        """The face outline raised towards the hairline, inset (H, W) in [0, 1]."""
        return inset_outline(lm, shape, self.matte.outline_inset * iod, self.matte.forehead_lift)

    def hard_region(self, face: AlignedFace, area: np.ndarray | None = None) -> np.ndarray:
        """The skin area (H, W) in [0, 1] before colour: the outline's area (``area`` (H, W), when the caller
        has its :meth:`outline_area`) less the features (the mesh's eyes and lips with their margins; with
        ``feature_colour`` brow hair and nostrils by their darkness)."""
        m, shape, lm = self.matte, _hw(face.image), face.landmarks
        area = self.outline_area(lm, shape, face.iod) if area is None else area
        hard = np.clip(area - feature_mask(lm, shape, m.margins, m.nostril), 0.0, 1.0)
        if m.feature_colour:
            hard = hard * (1.0 - dilate(dark_features(luma(face.image), lm, shape), m.dark_margin * face.iod))
        return hard

    def near_edges(self, matte: np.ndarray, iod: float) -> np.ndarray:
        """(H, W) in [0, 1]: 1 at the edge of ``matte`` (H, W) (features, outline, hair, shadows, occluders),
        falling to 0 at ``edge_band`` iod inside it."""
        band = self.matte.edge_band * iod
        if band <= 0:
            return np.zeros(matte.shape, np.float32)
        return 1.0 - soft_step(edge_distance(matte), 0.0, band)

    def resolution(self, plate_iod: float) -> int:
        """Work where the eyes are at most WORK_IOD px apart: only the change is resampled to the plate."""
        return super().resolution(min(plate_iod, WORK_IOD))

    def matte_for(self, context: SkinModel | None, crop: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Skin matte of an aligned crop (H, W, 3) with landmarks (478, 3) (for measuring a render)."""
        return self.skin_matte(AlignedFace(0, 0, crop, landmarks, interocular(landmarks)), context)

    def apply(self, face: AlignedFace, context: Any) -> EffectResult:
        colour = self.colour_matte(face, context)
        matte = colour if face.held_out is None else colour * (1.0 - face.held_out)
        box = matte_box(matte, round(RETOUCH_PAD * face.iod))
        out = face.image.copy()
        if box[0].stop > box[0].start:
            out[box] += self.change(face, matte, box)
        return EffectResult(out, colour if self.matte.held_once else matte)

    def change(self, face: AlignedFace, matte: np.ndarray, box: tuple[slice, slice]) -> np.ndarray:
        """The retouch's change (h, w, 3) on the rectangle ``box`` of ``face`` (:func:`matte_box`: round the skin
        ``matte`` (R, R), with the filters' reach; outside it the matte is 0 and so is the change)."""
        shape, lm, iod = _hw(face.image), face.landmarks, face.iod
        under = feather(under_eye(lm, shape), 0.04 * iod)
        cheeks = sample_patches(lm, shape)
        cheeks[: int(lm[168, 1])] = 0  # cheek patches only: drop the forehead one
        img, skin = np.ascontiguousarray(face.image[box]), np.ascontiguousarray(matte[box])
        # what is not skin (background, hair, eyes, glasses) is filled from the skin around it first, so no
        # filter pulls its colour into the skin beside it (no halo at the outline, the lashes or a frame)
        img = fill_holes(img, 1.0 - np.clip(skin * 4.0, 0.0, 1.0), 0.05 * iod)
        under, cheeks = np.ascontiguousarray(under[box]), np.ascontiguousarray(cheeks[box])
        done = retouch(img, skin, under, cheeks, iod, self.settings)
        return keep_fine(done - img, self.near_edges(skin, iod), self.matte.edge_sigma * iod)
