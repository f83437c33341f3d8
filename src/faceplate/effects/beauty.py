"""Beauty fix: skin retouch (frequency separation, blemishes, wrinkles, under-eye, tone) on skin only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import numpy as np

from faceplate.analysis.faces import interocular
from faceplate.effects.base import EFFECTS, AlignedFace, Effect, EffectResult
from faceplate.errors import FaceNotFoundError
from faceplate.landmarks import MOUTH_L, MOUTH_R, NOSE_BOTTOM
from faceplate.ops.filters import fill_holes, gauss
from faceplate.ops.regions import (
    feather,
    fill_enclosed,
    inset_outline,
    outer_edges,
    sample_patches,
    skin_region,
    under_eye,
)
from faceplate.ops.retouch import RetouchSettings, retouch
from faceplate.ops.skin import SkinModel


def _hw(img: np.ndarray) -> tuple[int, int]:
    return int(img.shape[0]), int(img.shape[1])


WORK_IOD = 56.0  # retouch at a scale where the eyes are at most this far apart (px)


OUTLINE_INSET = 0.05  # the matte stays this far (iod) inside the face outline: the silhouette's shading is shape
STUBBLE = 0.82  # below the nose, skin darker than this share of the face's mean luma is stubble, not shade


def beard_floor(lm: np.ndarray, shape: tuple[int, int], dark: float) -> np.ndarray:
    """Per-pixel dark floor (H, W) for the skin model: ``dark`` above the nose, rising to STUBBLE from the
    nose tip to the mouth (a shaved beard's shadow is darker skin of skin's own hue; shading is not there)."""
    ys = np.arange(shape[0], dtype=np.float32)[:, None]
    nose, mouth = float(lm[NOSE_BOTTOM, 1]), float(lm[[MOUTH_L, MOUTH_R], 1].mean())
    t = np.clip((ys - nose) / max(mouth - nose, 1.0), 0.0, 1.0)
    return np.broadcast_to(dark + (STUBBLE - dark) * t, shape).astype(np.float32)


@dataclass(frozen=True)
class SkinMatte:
    """How the skin matte is built: feather width and skin-colour refinement, in iod units."""

    feather: float = 0.035
    use_colour: bool = True


@EFFECTS.register("beauty")
@dataclass(frozen=True)
class BeautyEffect(Effect):
    """Retouch the skin of a face; eyes, brows, lips, nostrils, hair, beards and glasses stay untouched."""

    name: ClassVar[str] = "beauty"
    streams: ClassVar[bool] = True
    settings: RetouchSettings = field(default_factory=RetouchSettings)
    matte: SkinMatte = field(default_factory=SkinMatte)

    def prepare(self, samples: list[AlignedFace], identity: np.ndarray | None = None) -> SkinModel | None:
        """Fit the track's skin-colour model on its cheeks and forehead across the sample frames."""
        if not self.matte.use_colour:
            return None
        pixels = []
        for f in samples:
            core = sample_patches(f.landmarks, _hw(f.image)) * skin_region(f.landmarks, _hw(f.image))
            pixels.append(f.image[core > 0.5])
        px = np.concatenate(pixels) if pixels else np.empty((0, 3), np.float32)
        if len(px) < 50:
            raise FaceNotFoundError("the chosen face shows too little skin to retouch (no cheeks or forehead visible)")
        return SkinModel.fit(px)

    def skin_matte(self, face: AlignedFace, model: SkinModel | None) -> np.ndarray:
        """Soft skin matte (R, R) in [0, 1] for ``face``, its occluders (``face.held_out``) held out."""
        matte = self.colour_matte(face, model)
        return matte if face.held_out is None else matte * (1.0 - face.held_out)

    def colour_matte(self, face: AlignedFace, model: SkinModel | None) -> np.ndarray:
        """Soft skin matte (R, R) in [0, 1] from the mesh and the skin colour alone.

        Off-colour patches enclosed by skin (spots, ruddy or shaded cheeks) are skin; hair and beards reach
        in from the outline or the lips and stay out, with the matte's edge on their own edge (a hard edge
        along hair is no seam, a feather onto it would retouch it). Glasses: the occluder matte.
        """
        shape = _hw(face.image)
        hard = skin_region(face.landmarks, shape) * inset_outline(face.landmarks, shape, OUTLINE_INSET * face.iod)
        if model is None:
            return feather(hard, self.matte.feather * face.iod)
        r = max(1, round(0.06 * face.iod))
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        like = model.likelihood(face.image, beard_floor(face.landmarks, shape, model.dark))
        closed = np.asarray(cv2.morphologyEx(like, cv2.MORPH_CLOSE, disk), np.float32)
        filled = fill_enclosed(closed, hard, outer_edges(face.landmarks, shape))
        return feather(hard * gauss(filled, 0.01 * face.iod), self.matte.feather * face.iod) * filled

    def resolution(self, plate_iod: float) -> int:
        """Work where the eyes are at most WORK_IOD px apart: only the change is resampled to the plate."""
        return super().resolution(min(plate_iod, WORK_IOD))

    def matte_for(self, context: SkinModel | None, crop: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Skin matte of an aligned crop (H, W, 3) with landmarks (478, 3) (for measuring a render)."""
        return self.skin_matte(AlignedFace(0, 0, crop, landmarks, interocular(landmarks)), context)

    def apply(self, face: AlignedFace, context: Any) -> EffectResult:
        shape = _hw(face.image)
        matte = self.skin_matte(face, context)
        under = feather(under_eye(face.landmarks, shape), 0.04 * face.iod)
        cheeks = sample_patches(face.landmarks, shape)
        cheeks[: int(face.landmarks[168, 1])] = 0  # cheek patches only: drop the forehead one
        # what is not skin (background, hair, eyes, glasses) is filled from the skin around it first, so no
        # filter pulls its colour into the skin beside it (no halo at the outline, the lashes or a frame)
        img = fill_holes(face.image, 1.0 - np.clip(matte * 4.0, 0.0, 1.0), 0.05 * face.iod)
        change = retouch(img, matte, under, cheeks, face.iod, self.settings) - img
        return EffectResult(face.image + change, matte)
