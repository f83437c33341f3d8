"""Where a pair of glasses lies on a face, from the 478-point mesh alone (pure ops).

The hold-out for a track that wears glasses the frame finder cannot see (clear, rimless or small frames)
when the user says so (``--glasses on``), or when :mod:`faceplate.ops.glasses` finds them by bridge and rims
on the measured landmarks but not on the track's samples (there it holds out the lens pair fitted to the
rims, :func:`faceplate.ops.glasses.clear_frames`, inside this region): two
lenses around the eye sockets, the bridge and nose pads across the nose, and the arms out to the temples. Shapes
are set in the face's eye frame, in eye distances (``iod``) from the midpoint of the eye centres (x out
from the nose, y down the face), wide enough for common frames: the lenses of the hand-labelled frames of
lp_driving_d12 and wan_animate_video (tests/data/labels) need -0.38 to 0.52 about the eye line; the shapes
keep 0.05 iod more, and MARGIN. The price: the skin under and around the lenses (18-35% of the labelled
faces' visible skin) is left as it is.

Landmarks are (478, >=2) in the mask's pixel space (a third column, the mesh depth in the same units,
keeps the lenses' height when the head turns); masks are float32 (H, W) in [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.landmarks import EYE_INNER_L, EYE_INNER_R, EYE_OUTER_L, EYE_OUTER_R
from faceplate.ops.regions import dilate, eye_distance, polygon_mask
from faceplate.ops.retouch import soft_step

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

LENS_CENTRE = (0.56, 0.07)  # a lens's centre (iod): out from the nose, down from the eye line
LENS_HALF = (0.64, 0.50)  # its half width and half height (iod): -0.43 to 0.57 about the eye line
LENS_POWER = 3.0  # superellipse exponent: a rounded rectangle, between round and square frames
BRIDGE = (0.25, -0.30, 0.34)  # bridge and nose pads: half width, top, bottom (iod)
ARMS = (-0.26, 0.04, 1.45)  # arms: top, bottom, reach from the face's midline (iod)
MARGIN = 0.03  # the hold-out grows by this (iod) before its edge softens
FADE = 0.12  # then falls to 0 over this (iod): its edge lies on skin, where a step in the retouch is a seam
FADE_PX = 8.0  # and over at least this many px (small faces)


def eye_frame(lm: NDArray[np.floating]) -> tuple[F64, F64, F64]:
    """(origin, x axis, y axis), each (2,) image px: the midpoint of the eye centres (mid eye corners: they
    stay put with the skull, and the glasses with them, when the lids move or the eyes look up), one eye
    distance towards the face's left eye (image right), and one eye distance down the face (forehead to
    chin), both measured on the mesh in 3D when it has depth (a turned head narrows x but keeps y's length)."""
    p = np.asarray(lm, np.float64)
    p = p if p.shape[1] >= 3 else np.hstack([p[:, :2], np.zeros((len(p), 1))])
    eyes = [(p[a, :3] + p[b, :3]) / 2 for a, b in ((EYE_OUTER_R, EYE_INNER_R), (EYE_OUTER_L, EYE_INNER_L))]
    origin, across = (eyes[0] + eyes[1]) / 2, eyes[1] - eyes[0]
    iod3 = float(np.linalg.norm(across))
    ux = across / max(iod3, 1e-6)
    down = p[152, :3] - p[10, :3]  # forehead top → chin
    uy = down - ux * float(down @ ux)
    uy /= max(float(np.linalg.norm(uy)), 1e-6)
    return origin[:2], iod3 * ux[:2], iod3 * uy[:2]


def lens_outline(side: float, n: int = 48) -> F64:
    """One lens outline (n, 2) in eye-frame units; ``side`` -1 for the face's right eye (image left), +1 left."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    e = 2.0 / LENS_POWER
    x = LENS_CENTRE[0] + LENS_HALF[0] * np.sign(c) * np.abs(c) ** e
    y = LENS_CENTRE[1] + LENS_HALF[1] * np.sign(s) * np.abs(s) ** e
    return np.stack([side * x, y], 1)


def eyewear_parts() -> list[F64]:
    """The outlines (each (N, 2), eye-frame units) of both lenses, the bridge and both arms."""
    w, top, bottom = BRIDGE
    a_top, a_bottom, reach = ARMS
    inner = LENS_CENTRE[0] + 0.5 * LENS_HALF[0]
    bridge = np.array([[-w, top], [w, top], [w, bottom], [-w, bottom]])
    arms = [np.array([[side * inner, a_top], [side * reach, a_top], [side * reach, a_bottom],
                      [side * inner, a_bottom]]) for side in (-1.0, 1.0)]  # fmt: skip
    return [lens_outline(-1.0), lens_outline(1.0), bridge, *arms]


def eyewear_region(lm: NDArray[np.floating], shape: tuple[int, int]) -> F32:
    """Hard eyewear region (H, W) in {0, 1} (anti-aliased edge) of the face with landmarks ``lm``."""
    origin, ax, ay = eye_frame(lm)
    out = np.zeros(shape, np.float32)
    for part in eyewear_parts():
        pts = origin + part[:, :1] * ax + part[:, 1:] * ay
        out = np.maximum(out, polygon_mask(shape, pts, hull=False))
    return out


def eyewear_matte(lm: NDArray[np.floating], shape: tuple[int, int], iod: float | None = None) -> F32:
    """Soft eyewear hold-out (H, W) in [0, 1]: 1 on the region and MARGIN around it, falling smoothly to 0
    over FADE (at least FADE_PX) outside: unlike a found frame's edge, this one crosses skin, where the
    retouch must fade in."""
    iod = iod or eye_distance(lm)
    return faded(dilate((eyewear_region(lm, shape) > 0.5).astype(np.float32), MARGIN * iod), iod)


def faded(hard: F32, iod: float, fade: float = FADE, fade_px: float = FADE_PX) -> F32:
    """A hold-out (H, W) in [0, 1]: 1 where ``hard`` (H, W) > 0.5, falling smoothly to 0 over ``fade`` eye
    distances (``iod`` px; at least ``fade_px``) outside it, so the change on the skin beside it fades in."""
    if not (hard > 0.5).any():
        return np.zeros(hard.shape, np.float32)
    d = cv2.distanceTransform((hard < 0.5).astype(np.uint8), cv2.DIST_L2, 5)  # px to the hold-out
    return soft_step(1.0 - d / max(fade * iod, fade_px), 0.0, 1.0)
