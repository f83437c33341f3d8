"""Procedural "digital facelift" de-aging: smooth landmark-driven lifts plus strong retouch, no training.

``--years N`` maps to the controls as follows (k = clip(N / 20, 0, 1.5); lengths in eye distances):

=================  ====================================================================
jowls / jawline    lower face outline lifted 0.05·k and pulled in 0.02·k (most at the jowls)
brows              brows lifted 0.03·k
eye bags           under-eye lift (retouch) at full strength, plus a 0.01·k lift of the lower lid area
wrinkles, spots    retouch strength 0.5 + 0.025·N (max 1), fine texture kept 0.4; nasolabial folds'
                   shadow filled by min(k, 1) (luma lifted to the surrounding cheek's level)
tone               skin chroma evened, saturation +8%·k
hair (opt-in)      grey/white hair darkened to a warm brown: luma ×(1 − 0.55·min(k, 1)) where the hair is grey
=================  ====================================================================

``--hair`` works in a larger ``head`` crop; the hair matte is the person (MediaPipe selfie segmentation of
the crop) outside the face oval and above the mouth, weighted by how grey each pixel is (bright, low
chroma), so the wall behind the actor, the skin and dark hair are left alone.

Everything is computed in aligned space from the smoothed landmarks, so the lift follows the face; the
warp is a Gaussian radial-basis field anchored at the eyes, nose, mouth and crop border (no folds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import numpy as np

from faceplate.analysis.segmentation import PersonSegmenter
from faceplate.effects.base import EFFECTS, AlignedFace, Effect, EffectResult
from faceplate.effects.beauty import WORK_IOD, BeautyEffect, SkinMatte
from faceplate.errors import ConfigError
from faceplate.landmarks import LIFT_ANCHORS
from faceplate.ops.augment import face_mask
from faceplate.ops.filters import blur, gauss, normalized_blur
from faceplate.ops.regions import dilate, eye_distance, mesh_regions
from faceplate.ops.retouch import RetouchSettings
from faceplate.ops.skin import SkinModel, colour_matrix, ycbcr
from faceplate.ops.warp import apply_field, rbf_field
from faceplate.rec709 import RGB_FROM_YCBCR

ANCHORS = list(LIFT_ANCHORS)  # eyes, nose, mouth: never moved


@dataclass(frozen=True)
class DeageSettings:
    years: float = 15.0
    jowls: bool = True
    brows: bool = True
    eyebags: bool = True
    wrinkles: bool = True
    spots: bool = True
    tone: bool = True
    hair: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.years <= 40:
            raise ConfigError(f"--years {self.years} must be within 0..40")

    @property
    def k(self) -> float:
        return float(np.clip(self.years / 20.0, 0.0, 1.5))

    def retouch(self) -> RetouchSettings:
        strength = float(min(1.0, 0.5 + 0.025 * self.years))
        return RetouchSettings(strength, smooth=self.wrinkles, texture=0.4, blemish=self.spots, wrinkles=self.wrinkles,
                               undereye=self.eyebags, tone=self.tone)  # fmt: skip


def lift_field(lm: np.ndarray, shape: tuple[int, int], s: DeageSettings) -> np.ndarray:
    """Displacement field (H, W, 2) of the facelift for aligned landmarks ``lm`` (upright face)."""
    iod, k = eye_distance(lm), s.k
    pts, moves = [], []
    oval = np.asarray(lm[mesh_regions()["oval"], :2], np.float64)
    mouth_y = float(lm[[61, 291], 1].mean())
    chin_x = float(lm[152, 0])
    if s.jowls:
        for p in oval[oval[:, 1] > mouth_y - 0.1 * iod]:
            side = float(np.clip((p[0] - chin_x) / (0.9 * iod), -1, 1))  # 0 at the chin, ±1 at the jowls
            pts.append(p)
            moves.append([-np.sign(side) * 0.02 * k * iod * abs(side), -0.05 * k * iod * (0.3 + 0.7 * abs(side))])
    if s.brows:
        for name in ("brow_r", "brow_l"):
            for p in np.asarray(lm[mesh_regions()[name], :2]):
                pts.append(p)
                moves.append([0.0, -0.03 * k * iod])
    if s.eyebags:
        for name in ("eye_r", "eye_l"):
            eye = np.asarray(lm[mesh_regions()[name], :2])
            for p in eye[eye[:, 1] > eye[:, 1].mean()] + [0, 0.25 * iod]:
                pts.append(p)
                moves.append([0.0, -0.01 * k * iod])
    if not pts:
        return np.zeros((*shape, 2), np.float32)
    h, w = shape
    border = [[x, y] for x in np.linspace(0, w - 1, 6) for y in (0, h - 1)] + [
        [x, y] for y in np.linspace(0, h - 1, 6)[1:-1] for x in (0, w - 1)
    ]
    anchors = np.vstack([lm[ANCHORS, :2], border])
    all_pts = np.vstack([pts, anchors])
    all_moves = np.vstack([moves, np.zeros((len(anchors), 2))])
    return rbf_field(all_pts, all_moves, shape, sigma=0.35 * iod)


FOLDS = [[203, 206, 216, 212], [423, 426, 436, 432]]  # mesh points along each fold, nose wing → past the mouth


def fold_band(lm: np.ndarray, shape: tuple[int, int], iod: float) -> np.ndarray:
    """Soft band (H, W) float32 over both nasolabial folds, from the nose wing to beside the mouth corner."""
    band = np.zeros(shape, np.float32)
    for fold in FOLDS:
        pts = np.round(np.asarray(lm[fold, :2], np.float64)).astype(np.int32)
        cv2.polylines(band, [pts], False, (1.0,), max(1, round(0.1 * iod)), cv2.LINE_AA)
    band = gauss(band, 0.05 * iod)
    return np.asarray(np.clip(band / max(float(band.max()), 1e-6) * 1.5, 0, 1), np.float32)


def soften_folds(img: np.ndarray, band: np.ndarray, iod: float, amount: float) -> np.ndarray:
    """Fill the fold's shadow: where the band's luma sits below the wider cheek's, lift it by ``amount``."""
    y = ycbcr(np.asarray(img, np.float32))[..., 0]
    shadow = np.clip(blur(y, 0.25 * iod) - gauss(y, 0.03 * iod), 0, None)
    return np.clip(img + (amount * band * shadow)[..., None], 0, 1).astype(np.float32)


def hair_matte(img: np.ndarray, lm: np.ndarray, person: np.ndarray, iod: float) -> np.ndarray:
    """Where grey hair is, (R, R) float32 in [0, 1]: on the person, off the face, above the mouth, grey.

    ``img`` (R, R, 3) encoded RGB in [0, 1]; ``lm`` aligned landmarks; ``person`` (R, R) soft person mask.
    The person mask is widened to reach flyaway hairs; in that band (and wherever the mask is unsure) a
    pixel that looks like the background right beside it (a grey wall) is left alone.
    """
    r = img.shape[0]
    off_face = 1.0 - dilate(face_mask(lm, r), 0.03 * iod)
    ys = np.arange(r, dtype=np.float32)[:, None]
    above = np.clip((float(lm[[61, 291], 1].mean()) - ys) / (0.2 * iod), 0, 1)
    sure = np.clip((person - 0.5) / 0.3, 0, 1)
    on_person = dilate(sure, 0.06 * iod)  # reach the flyaways at its edge
    c = ycbcr(np.asarray(img, np.float32))
    sat = np.hypot(c[..., 1], c[..., 2]) / np.maximum(c[..., 0], 0.05)  # warm light tints white hair too
    grey = np.clip((0.22 - sat) / 0.12, 0, 1) * np.clip((c[..., 0] - 0.3) / 0.25, 0, 1)
    backdrop = normalized_blur(c, (person < 0.15).astype(np.float32), 0.15 * iod)  # background colour nearby
    like_backdrop = np.clip((0.12 - np.linalg.norm(c - backdrop, axis=2)) / 0.06, 0, 1)
    keep = 1.0 - like_backdrop * (1.0 - sure)
    return np.asarray(gauss(off_face * above * on_person * grey * keep, 0.015 * iod), np.float32)


def darken_hair(img: np.ndarray, w: np.ndarray, amount: float) -> np.ndarray:
    """Grey hair to warm brown where ``w`` (R, R) > 0: luma scaled down, chroma set to a brown hue."""
    c = ycbcr(np.asarray(img, np.float32))
    wk = (w * amount)[..., None]
    y = c[..., :1] * (1.0 - 0.55 * wk)
    brown = np.concatenate([y, -0.19 * y, 0.21 * y], axis=2)
    mixed = np.concatenate([y, c[..., 1:]], axis=2) * (1 - wk) + brown * wk
    mixed[..., :1] = y
    return np.clip(colour_matrix(mixed, RGB_FROM_YCBCR), 0, 1).astype(np.float32)


@dataclass
class DeageContext:
    skin: SkinModel | None
    segmenter: PersonSegmenter | None


@EFFECTS.register("deage")
@dataclass(frozen=True)
class DeageEffect(Effect):
    """Procedural de-age: facelift warps + strong retouch + tone; background and eyes untouched."""

    name: ClassVar[str] = "deage"
    streams: ClassVar[bool] = True
    settings: DeageSettings = field(default_factory=DeageSettings)
    matte: SkinMatte = field(default_factory=SkinMatte)

    @property
    def face_type(self) -> str:  # type: ignore[override]
        return "head" if self.settings.hair else "whole_face"

    def resolution(self, plate_iod: float) -> int:
        return super().resolution(min(plate_iod, 72.0))

    def _beauty(self) -> BeautyEffect:
        return BeautyEffect(self.settings.retouch(), self.matte)

    def prepare(self, samples: list[AlignedFace], identity: np.ndarray | None = None) -> DeageContext:
        seg = PersonSegmenter() if self.settings.hair else None
        return DeageContext(self._beauty().prepare(samples, identity), seg)

    def _retouch(self, face: AlignedFace, skin: SkinModel | None) -> EffectResult:
        """Beauty's retouch at beauty's own working scale (eyes WORK_IOD px apart), its change and matte
        scaled back up: the lift needs the finer crop, the retouch does not (~2x cheaper)."""
        k = WORK_IOD / face.iod
        if k > 0.9:
            return self._beauty().apply(face, skin)
        h, w = face.image.shape[:2]
        size = (round(w * k), round(h * k))
        small = np.asarray(cv2.resize(face.image, size, interpolation=cv2.INTER_AREA), np.float32)
        lm = face.landmarks * np.array([size[0] / w, size[1] / h, k], np.float32)
        r = self._beauty().apply(AlignedFace(face.frame, face.track, small, lm, face.iod * k), skin)
        up = lambda a: np.asarray(cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR), np.float32)  # noqa: E731
        return EffectResult(face.image + up(r.image - small), np.clip(up(r.matte), 0, 1))

    def apply(self, face: AlignedFace, context: Any) -> EffectResult:
        shape = (face.image.shape[0], face.image.shape[1])
        fld = lift_field(face.landmarks, shape, self.settings)
        warped = apply_field(face.image, fld)
        lm = face.landmarks.copy()
        xi = np.clip(np.round(lm[:, 0]).astype(int), 0, shape[1] - 1)
        yi = np.clip(np.round(lm[:, 1]).astype(int), 0, shape[0] - 1)
        lm[:, :2] += fld[yi, xi]
        ctx: DeageContext = context
        retouched = self._retouch(AlignedFace(face.frame, face.track, warped, lm, face.iod), ctx.skin)
        skin = retouched.matte[..., None]
        out = warped + skin * (retouched.image - warped)  # retouch on skin only; the warp everywhere it moves
        if self.settings.wrinkles:
            band = fold_band(lm, shape, face.iod) * skin[..., 0]
            out = soften_folds(out, band, face.iod, min(self.settings.k, 1.0))
        if self.settings.tone:
            c = ycbcr(out)
            c[..., 1:] *= 1.0 + 0.08 * self.settings.k * skin
            out = np.clip(colour_matrix(c, RGB_FROM_YCBCR), 0, 1)
        moved_area = np.clip(np.linalg.norm(fld, axis=2) / (0.004 * face.iod), 0, 1).astype(np.float32)
        matte = np.maximum(retouched.matte, gauss(moved_area, 0.05 * face.iod))
        if ctx.segmenter is not None:
            person = ctx.segmenter(np.round(np.clip(face.image, 0, 1) * 255).astype(np.uint8))
            hair = hair_matte(face.image, face.landmarks, person, face.iod) * (1.0 - skin[..., 0])
            out = darken_hair(out, hair, min(self.settings.k, 1.0))
            matte = np.maximum(matte, hair)
        return EffectResult(np.asarray(out, np.float32), np.clip(matte, 0, 1).astype(np.float32))
