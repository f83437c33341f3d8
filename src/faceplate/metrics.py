"""Quality measures of a render against its plate, shared by tests and bench scripts.

:func:`measure` looks at the chosen face in aligned space (the same smoothed landmarks the render used), so
it follows the face through the shot. The compositor's checks (:func:`seam_score`, :func:`occluder_change`,
:func:`skin_coverage`, :func:`background_change`) are pure functions of arrays in any one space (plate or
aligned): float32 RGB (H, W, 3) in [0, 1] and masks (H, W) in [0, 1] of the same size.

A measure given nothing to measure (an empty matte, skin core or region) raises :class:`MeasureError`
naming what was empty and why: it never reports a figure computed over no pixels.
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
from faceplate.render.composite import EDGE
from faceplate.store import FaceRow

F32 = NDArray[np.float32]


class MeasureError(ValueError):
    """A measure was given an empty region (matte, skin core, mask): nothing to measure, so no figure."""


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


def _core_reach(iod: float) -> int:
    return max(1, round(3 * MID * 0.5 * iod))


def skin_core(matte: F32, iod: float) -> F32:
    """Where the band-pass measure sees only skin: the full-strength matte shrunk by the filter's reach.

    Near the face outline or the nose edge the mid band is dominated by the silhouette against the
    background, which no retouch should flatten; measuring there would reward blurring the outline. The
    band where every render fades out before the aligned crop's edge (render.composite.EDGE) is left out
    too: no effect works there by design (a forehead running past the crop gets no seam), so it is not a
    failure to retouch. ``matte`` must be in the render's own crop (same face type and landmarks).
    """
    r = _core_reach(iod)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    core = np.asarray(cv2.erode((matte >= 0.99).astype(np.float32), disk), np.float32)
    k = int(np.ceil(EDGE * iod)) + r
    core[:k], core[-k:], core[:, :k], core[:, -k:] = 0, 0, 0, 0
    return core


def _checked_core(matte: F32, iod: float, frame: int) -> F32:
    """:func:`skin_core`, or MeasureError saying why it is empty on ``frame``."""
    if not (matte > 0).any():
        raise MeasureError(f"empty matte at frame {frame}: the matte is 0 everywhere in the aligned crop")
    core = skin_core(matte, iod)
    if core.any():
        return core
    if not (matte >= 0.99).any():
        raise MeasureError(f"empty skin core at frame {frame}: the matte never reaches 0.99 there")
    raise MeasureError(f"empty skin core at frame {frame}: the matte's full-strength area is thinner than the "
                       f"band filter's reach ({_core_reach(iod)} px)")  # fmt: skip


def measure(plate: Plate, comp: Plate, faces: list[FaceRow], matte_of: MatteFn, res: int = 384) -> FaceMeasures:
    """Measure one track over ``faces`` (consecutive frames) given a callable ``matte_of(crop, lm) -> (R, R)``.

    ``plate`` and ``comp`` are opened plates in the same (display-like) encoding. Raises MeasureError when a
    frame has an empty matte, skin core or eyes-and-lips region, or no mid-band texture in its skin core.
    """
    if not faces:
        raise MeasureError("no faces to measure")
    drops, eyes, flick, motion = [], [], [], []
    prev: tuple[F32, F32] | None = None
    for f in faces:
        p, c, lm = _crops(plate.read(f.frame), comp.read(f.frame), f, res)
        matte = matte_of(p, lm)
        iod = interocular(lm)
        core = _checked_core(matte, iod, f.frame)
        before = band_energy(p, core, iod)
        if before <= 1e-12:
            raise MeasureError(f"no mid-band texture in the skin core at frame {f.frame}: the plate is flat there")
        drops.append(1.0 - band_energy(c, core, iod) / before)
        keep = np.zeros(matte.shape, np.float32)
        for name in ("eye_r", "eye_l", "lips"):
            keep = np.maximum(keep, region_mask(lm, (res, res), name))
        sel = keep > 0.5
        if not sel.any():
            raise MeasureError(f"empty eyes-and-lips region at frame {f.frame}")
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


# --- what a compositor checks: seams, occluders, skin coverage, background --------------------------------

# A seam: a hard step in the change this big (code values) that the plate does not have. On the dev stills the
# seams one can see (a straight crop edge across changed forehead skin, a warped collar cut by the matte) read
# 8-13/255 and more; clean renders 0-3/255 (3: a hard matte edge in hair, where only texture changed).
SEAM_MAX = 4 / 255
SEAM_REACH = 2  # px: a plate edge this close explains a step in the change (the change follows a real edge)
SEAM_RUN = 15  # px: steps are averaged along straight runs this long, so grain and pores average out
SEAM_HARD = 0.25  # the matte's own hard-step size (0..1) for its edge to cut a seam: ramps under ~5-7 px
SEAM_RES = 512  # px: a face larger than this (matte box) is measured shrunk by 2, 4... (steps read the same)
_STEP_GAIN = 1.061  # Sobel (x 8) of the band-passed unit step at its peak: a unit step reads 1


@dataclass(frozen=True)
class SeamScore:
    """The hardest step in the change (comp - plate) that the plate does not have, where the matte cuts it."""

    step: float  # code values ([0, 1]): the hard part of that step (see _hard_steps), less the plate's own there
    x: int  # where (pixels of the arrays given)
    y: int
    edge_grad: float  # mean hard step of the change (as ``step``, before the plate's edges are taken off) in
    #                   the matte's edge band (within 2 px of its 0.5 contour, or where it is soft)
    inside_grad: float  # the same inside the matte, off its edge band

    @property
    def step_255(self) -> float:
        return self.step * 255

    @property
    def seamed(self) -> bool:
        return self.step > SEAM_MAX


def _line(n: int, angle: float) -> F32:
    """A straight line kernel (n, n) through the centre at ``angle``, weights summing to 1."""
    k = np.zeros((n, n), np.float32)
    h, d = (n - 1) / 2, np.array([np.cos(angle), np.sin(angle)]) * (n - 1) / 2
    (x0, y0), (x1, y1) = np.round(h - d).astype(int), np.round(h + d).astype(int)
    cv2.line(k, (int(x0), int(y0)), (int(x1), int(y1)), (1.0,))
    return k / k.sum()


def _hard_steps(img: F32, n: int) -> list[F32]:
    """Per edge direction (8, 22.5 degrees apart): the size of a hard step across it (code values), averaged
    along a straight run of ``n`` px (grain and pores average out, straight edges stay), max over channels.

    The derivative of a band-pass (Gaussian 1 px less Gaussian 2 px) sees the part of a step sharper than
    a few px: a true step of size A reads A, a 4 px linear ramp 0.5 A (smoothstep 0.7 A), a 10 px ramp 0.1 A,
    a plain gradient of 1/px 0.02.
    ``img`` (H, W, C) → 8 x (H, W).
    """
    x = np.ascontiguousarray(img, np.float32)
    band = cv2.GaussianBlur(x, (0, 0), 1.0) - cv2.GaussianBlur(x, (0, 0), 2.0)
    gx = cv2.Sobel(band, cv2.CV_32F, 1, 0, ksize=3) / _STEP_GAIN
    gy = cv2.Sobel(band, cv2.CV_32F, 0, 1, ksize=3) / _STEP_GAIN
    out = []
    for a in np.arange(8) * np.pi / 8:
        along = np.abs(cv2.filter2D(np.ascontiguousarray(gy * np.cos(a) - gx * np.sin(a)), -1, _line(n, a)))
        out.append(np.asarray(along.max(axis=2) if along.ndim == 3 else along, np.float32))
    return out


def _shrink(a: F32, k: int) -> F32:
    if k == 1:
        return a
    h, w = a.shape[:2]
    return np.asarray(cv2.resize(a, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA), np.float32)


def _disk(r: int) -> NDArray[np.uint8]:
    return np.asarray(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)), np.uint8)


def _bbox(mask: NDArray[np.bool_], pad: int) -> tuple[slice, slice]:
    """The box around ``mask``'s pixels, ``pad`` px wider (clipped at the top/left; numpy clips the rest)."""
    ys, xs = np.nonzero(mask)
    return slice(max(ys.min() - pad, 0), ys.max() + pad + 1), slice(max(xs.min() - pad, 0), xs.max() + pad + 1)


def seam_score(plate: F32, comp: F32, matte: F32, skin: F32 | None = None, reach_px: int = SEAM_REACH) -> SeamScore:
    """Hard edges in the change that the plate does not have, where the matte cuts the edit: a seam.

    ``plate``, ``comp``: float32 RGB (H, W, 3) in [0, 1], plate or aligned space; ``matte`` (H, W) in [0, 1];
    ``skin`` (H, W) optional: look only where skin > 0.5.
    Per edge direction, the hard step of the change (its part sharper than a few px, averaged along a
    straight run of SEAM_RUN px so grain, pores and blemish fixes average out) less the plate's own hard step
    in that direction within ``reach_px`` (a change that follows a real edge is no seam), counted where the
    matte's own edge in that direction is hard (> SEAM_HARD; warps inside the matte move edges, not seams).
    A straight seam where the matte jumps 0 -> 1 in 4 px with 8-13/255 of change scores 5.5-9/255 on a clean
    plate (about 1/255 less under 2/255 of grain); the same change feathered over 0.1 eye distance (>= 10 px)
    scores 0; smoothing grain or pores under a hard matte edge scores ~0 (it moves no local mean).
    Raises MeasureError when the matte (or the skin) is empty.
    """
    if not (matte > 0.5).any():
        raise MeasureError("empty matte: it never reaches 0.5, there is no edit to look for a seam in")
    if skin is not None and not (skin > 0.5).any():
        raise MeasureError("empty skin mask: no pixel over 0.5")
    sl = _bbox(matte > 0, SEAM_RUN + 12)
    k = 1  # work at most SEAM_RES px across the face: a hard step reads the same at any scale
    while max(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start) > SEAM_RES * k:
        k *= 2
    p, c, m = (_shrink(a[sl], k) for a in (plate, comp, matte))
    change, matte_steps, plate_steps = (_hard_steps(a, SEAM_RUN) for a in (c - p, m, p))
    steps = [(d - cv2.dilate(q, _disk(reach_px))) * (e > SEAM_HARD)
             for d, e, q in zip(change, matte_steps, plate_steps, strict=True)]  # fmt: skip
    step = np.max(steps, axis=0)
    step = np.maximum(step, 0) * (_shrink(skin[sl], k) > 0.5 if skin is not None else 1)
    y, x = np.unravel_index(int(np.argmax(step)), step.shape)
    gc = np.max(change, axis=0)  # the change's own hard steps, before the plate's are taken off
    solid = (m > 0.5).astype(np.uint8)
    band = (cv2.dilate(solid, _disk(2)) > cv2.erode(solid, _disk(2))) | ((m > 0.02) & (m < 0.98))
    inside = (m > 0.5) & ~band
    if not inside.any():
        raise MeasureError("the matte is all edge: no pixel inside it is more than 2 px from its edge")
    return SeamScore(float(step[y, x]), int(x) * k + sl[1].start, int(y) * k + sl[0].start,
                     float(gc[band].mean()), float(gc[inside].mean()))  # fmt: skip


def occluder_change(plate: F32, comp: F32, mask: F32) -> tuple[float, float]:
    """Mean and max |comp - plate| over all channels where ``mask`` (H, W) > 0.5: what an edit did to an
    occluder (hand, microphone, glasses) in front of the face. Code values in [0, 1] (x 255 for 8-bit codes).
    Raises MeasureError when the mask is empty.
    """
    sel = mask > 0.5
    if not sel.any():
        raise MeasureError("empty occluder mask: no pixel over 0.5")
    d = np.abs(comp - plate)[sel]
    return float(d.mean()), float(d.max())


@dataclass(frozen=True)
class Coverage:
    """How well a matte covers labelled skin (labels' edges ignored: see skin_coverage)."""

    inside: float  # share of labelled-skin pixels where the matte >= 0.5
    outside: float  # share of the matte's mass (sum of matte) outside the labelled skin


def skin_coverage(matte: F32, skin: F32, tolerance_px: int = 2) -> Coverage:
    """Matte (H, W) against a skin label (H, W, > 0.5 = skin); pixels within ``tolerance_px`` of the label's
    edge count on neither side (a hand label is that uncertain). Raises MeasureError when the label, or the
    matte, is empty off that band.
    """
    lab = (skin > 0.5).astype(np.uint8)
    if tolerance_px > 0:
        k = _disk(tolerance_px)
        core, away = cv2.erode(lab, k) > 0, cv2.dilate(lab, k) == 0
    else:
        core, away = lab > 0, lab == 0
    if not core.any():
        raise MeasureError(f"empty skin label: no skin pixel more than {tolerance_px} px from the label's edge")
    mass = float(matte[core].sum() + matte[away].sum())
    if mass <= 0:
        raise MeasureError("empty matte: it is 0 everywhere off the skin label's edge")
    return Coverage(float((matte[core] >= 0.5).mean()), float(matte[away].sum()) / mass)


def background_change(plate: F32, comp: F32, person: F32, margin_px: int = 16) -> float:
    """Max |comp - plate| (code values, all channels) where the person mask (H, W) dilated by ``margin_px``
    is 0: the background must never move. ``person`` from :class:`faceplate.analysis.segmentation.PersonSegmenter`
    (> 0.5 = person). Raises MeasureError when the person and margin cover the whole frame.
    """
    near = cv2.dilate((person > 0.5).astype(np.uint8), _disk(margin_px)) > 0
    if near.all():
        raise MeasureError(f"no background: the person mask dilated by {margin_px} px covers the whole frame")
    return float(np.abs(comp - plate)[~near].max())
