"""Quality measures of a render against its plate, shared by tests and bench scripts.

All measures look at the chosen face in aligned space (the same smoothed landmarks the render used), so
they follow the face through the shot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.align import align_image, align_matrix, to_aligned
from faceplate.analysis.faces import interocular
from faceplate.landmarks import EYE_OUTER_R, LOWER_LID_L, LOWER_LID_R, MOUTH_R
from faceplate.media.plate import Plate
from faceplate.ops.regions import region_mask
from faceplate.ops.retouch import MID, band_energy
from faceplate.store import FaceRow

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class FaceMeasures:
    """Per-track figures (means over the frames measured)."""

    band_drop: float  # 1 - mid-band energy after / before, in the skin core (see skin_core)
    eyes_lips_change: float  # mean |comp - plate| in eyes and lips, in [0, 1] code values
    delta_flicker: float  # mean |delta_t - delta_t-1| inside the matte (aligned), code values
    plate_motion: float  # mean |plate_t - plate_t-1| inside the matte (aligned): the plate's own change
    frames: int


def _crops(plate_img: F32, comp_img: F32, face: FaceRow, res: int) -> tuple[F32, F32, NDArray[np.float32]]:
    m = align_matrix(face.best, res, "whole_face")
    return align_image(plate_img, m, res), align_image(comp_img, m, res), to_aligned(m, face.best).astype(np.float32)


MatteFn = Callable[[F32, F32], F32]


def skin_core(matte: F32, iod: float) -> F32:
    """Where the band-pass measure sees only skin: the full-strength matte shrunk by the filter's reach.

    Near the face outline or the nose edge the mid band is dominated by the silhouette against the
    background, which no retouch should flatten; measuring there would reward blurring the outline.
    """
    r = max(1, round(3 * MID * 0.5 * iod))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return np.asarray(cv2.erode((matte >= 0.99).astype(np.float32), disk), np.float32)


def measure(plate: Plate, comp: Plate, faces: list[FaceRow], matte_of: MatteFn, res: int = 384) -> FaceMeasures:
    """Measure one track over ``faces`` (consecutive frames) given a callable ``matte_of(crop, lm) -> (R, R)``.

    ``plate`` and ``comp`` are opened plates in the same (display-like) encoding.
    """
    drops, eyes, flick, motion = [], [], [], []
    prev: tuple[F32, F32] | None = None
    for f in faces:
        p, c, lm = _crops(plate.read(f.frame), comp.read(f.frame), f, res)
        matte = matte_of(p, lm)
        iod = interocular(lm)
        core = skin_core(matte, iod)
        before = band_energy(p, core, iod)
        drops.append(1.0 - band_energy(c, core, iod) / max(before, 1e-12))
        keep = np.zeros(matte.shape, np.float32)
        for name in ("eye_r", "eye_l", "lips"):
            keep = np.maximum(keep, region_mask(lm, (res, res), name))
        sel = keep > 0.5
        eyes.append(float(np.abs(c - p)[sel].mean()))
        delta = c - p
        if prev is not None:
            w = matte[..., None]
            flick.append(float((np.abs(delta - prev[0]) * w).sum() / (w.sum() * 3)))
            motion.append(float((np.abs(p - prev[1]) * w).sum() / (w.sum() * 3)))
        prev = (delta, p)
    return FaceMeasures(float(np.mean(drops)), float(np.mean(eyes)), float(np.mean(flick)) if flick else 0.0,
                        float(np.mean(motion)) if motion else 0.0, len(faces))  # fmt: skip


def demo_paint(rgb: F32, lm: NDArray[np.floating]) -> F32:
    """A stand-in for an artist's paint on one frame (float RGB (H, W, 3), landmarks (478, 3) in its pixels):
    the skin under both eyes painted smooth (a wrinkle paint-out: its change depends on that frame's
    texture and light), the right cheek's flush taken down, a warm tint on the forehead.

    Deliberately *not* faceplate's own retouch, so measuring keyframe propagation with it is fair.
    """
    h, w = rgb.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    iod = interocular(lm)

    def blob(c: NDArray[np.floating], rx: float, ry: float) -> F32:
        return np.exp(-(((xs - c[0]) / rx) ** 2 + ((ys - c[1]) / ry) ** 2)).astype(np.float32)[..., None]

    out = rgb.copy()
    soft = cv2.GaussianBlur(out, (0, 0), 0.06 * iod)
    for eye in (LOWER_LID_L, LOWER_LID_R):
        b = blob(lm[eye, :2] + np.array([0.0, 0.25 * iod]), 0.3 * iod, 0.15 * iod)
        out = out * (1 - b) + soft * b
    cheek = (lm[EYE_OUTER_R, :2] + lm[MOUTH_R, :2]) / 2
    flush = np.array([-0.06, 0.01, 0.02], np.float32) - 0.1 * (out - out.mean(2, keepdims=True))
    out = out + blob(cheek, 0.35 * iod, 0.3 * iod) * flush
    brow = (lm[105, :2] + lm[334, :2]) / 2 - np.array([0.0, 0.35 * iod])
    out = out + blob(brow, 0.6 * iod, 0.2 * iod) * np.array([0.04, 0.015, -0.02], np.float32)
    return np.clip(out, 0, 1).astype(np.float32)


def psnr(a: F32, b: F32, mask: F32) -> float:
    """PSNR in dB between ``a`` and ``b`` (values in [0, 1]) over pixels where ``mask`` > 0.5."""
    sel = mask > 0.5
    mse = float(((a - b) ** 2)[sel].mean())
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)
