"""Beauty fix: skin retouch (frequency separation, blemishes, wrinkles, under-eye, tone) on skin only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import numpy as np

from faceplate.analysis.faces import interocular
from faceplate.effects.base import EFFECTS, AlignedFace, Effect, EffectResult
from faceplate.errors import FaceNotFoundError
from faceplate.ops.filters import fill_holes, gauss
from faceplate.ops.occluders import occluder_matte
from faceplate.ops.regions import feather, sample_patches, skin_region, under_eye
from faceplate.ops.retouch import RetouchSettings, retouch
from faceplate.ops.skin import SkinModel


def _hw(img: np.ndarray) -> tuple[int, int]:
    return int(img.shape[0]), int(img.shape[1])


WORK_IOD = 56.0  # retouch at a scale where the eyes are at most this far apart (px)


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
        """Soft skin matte (R, R) in [0, 1] for ``face``, occluders (glasses, strands) held out."""
        return self.mattes(face, model)[0]

    def mattes(self, face: AlignedFace, model: SkinModel | None) -> tuple[np.ndarray, np.ndarray]:
        """(skin matte, occluder matte), each (R, R) in [0, 1]; the skin matte is zero on the occluders."""
        occ = occluder_matte(face.image, face.landmarks, face.iod)
        return self.colour_matte(face, model) * (1.0 - occ), occ

    def colour_matte(self, face: AlignedFace, model: SkinModel | None) -> np.ndarray:
        """Soft skin matte (R, R) in [0, 1] from the mesh and the skin colour alone."""
        shape = _hw(face.image)
        hard = skin_region(face.landmarks, shape)
        if model is not None:
            h, w = shape
            small = np.asarray(cv2.resize(face.image, (w // 2, h // 2), interpolation=cv2.INTER_AREA), np.float32)
            like = np.asarray(cv2.resize(model.likelihood(small), (w, h), interpolation=cv2.INTER_LINEAR), np.float32)
            # close holes up to blemish size (spots are off-colour but are skin); hair, beards, glasses stay out
            r = max(1, round(0.06 * face.iod))
            disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            closed = np.asarray(cv2.morphologyEx(like, cv2.MORPH_CLOSE, disk), np.float32)
            hard = hard * gauss(closed, 0.01 * face.iod)
        return feather(hard, self.matte.feather * face.iod)

    def resolution(self, plate_iod: float) -> int:
        """Work where the eyes are at most WORK_IOD px apart: only the change is resampled to the plate."""
        return super().resolution(min(plate_iod, WORK_IOD))

    def matte_for(self, context: SkinModel | None, crop: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Skin matte of an aligned crop (H, W, 3) with landmarks (478, 3) (for measuring a render)."""
        return self.skin_matte(AlignedFace(0, 0, crop, landmarks, interocular(landmarks)), context)

    def apply(self, face: AlignedFace, context: Any) -> EffectResult:
        shape = _hw(face.image)
        matte, occ = self.mattes(face, context)
        under = feather(under_eye(face.landmarks, shape), 0.04 * face.iod)
        cheeks = sample_patches(face.landmarks, shape)
        cheeks[: int(face.landmarks[168, 1])] = 0  # cheek patches only: drop the forehead one
        img = fill_holes(face.image, occ, 0.05 * face.iod)  # no dark frame bleeds into the skin's blurs
        return EffectResult(retouch(img, matte, under, cheeks, face.iod, self.settings), matte, occ)
