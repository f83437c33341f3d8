"""Glasses in front of the face (pure ops): the occluder matte every retouch and de-age holds out.

Glasses frames are thin structures far darker than their surroundings (a morphological black-hat of
luma), long and not compact, lying around both eyes; a pair (rims above, below and past both corners of
each eye) takes the lenses inside too. Without a pair nothing near the eyes is held out: eye bags,
crow's feet and folds are the face's own, to retouch (clear and small frames, too faint for this, are
told by their bridge and rims: :mod:`faceplate.ops.glasses`). Other occluders are found elsewhere: hands
by the hand pass (render path), hair, beards and mics by the skin-colour model (not skin-coloured: not in
the skin matte).

Images are float32 encoded RGB (H, W, 3) in [0, 1]; masks float32 (H, W) in [0, 1]; scales in eye
distances (``iod``, px).
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.ops.eyewear import eye_frame, faded
from faceplate.ops.filters import gauss, luma
from faceplate.ops.regions import (
    dilate,
    eye_distance,
    mesh_regions,
    polygon_mask,
    raised_oval,
    region_mask,
)

F32 = NDArray[np.float32]

DARK_LINE = 0.09  # black-hat depth (luma) of a glasses frame (deeper than most wrinkles)
SPOT_FILL = 0.45  # a structure this compact (area / bounding box) is a spot, not a frame
THIN_LENGTH = 0.3  # a structure this long (iod) and not compact may be a rim
GLASSES = 0.6  # glasses rims lie within this of an eye centre (iod)
LENS = 0.8  # a found pair's lens is the hull of its rims within this of the eye centre (iod; the lower
#             outer corner of a wide lens lies past GLASSES)
NOSE = 0.1  # and of the rims on its eye's side, this far (iod) or more from the nose's midline, or above the eye
UPPER = 0.2  # line plus this (iod; the bridge and the nose pads): a hull over both sides' rims held out the nose
#              between the lenses (wan 0018/0054: 57% of its labelled skin 0.25-0.5 below the eyes, 32-37%
#              without; at UPPER 0.1 de-age's lift moved the nose pads by 1.3/255)
DETECT_IOD = 56.0  # px: the eye distance glasses are looked for at (the structure sizes below are tuned there)
MARGIN = 0.015  # occluders grow by this (iod), then fade out over FADE: no retouch bleeds onto them
FADE, FADE_PX = 0.08, 6.0  # a track's glasses hold-out then falls to 0 over this (iod; at least px): no seam


def dark_lines(y: F32, iod: float) -> F32:
    """Depth (H, W) of dark structures thinner than ~0.12 iod (morphological black-hat of luma ``y``)."""
    r = max(1, round(0.06 * iod))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return np.asarray(cv2.morphologyEx(y, cv2.MORPH_BLACKHAT, disk), np.float32)


def structures(depth: F32, iod: float) -> NDArray[np.uint8]:
    """Thin dark structures (H, W) {0, 1}: deeper than DARK_LINE, grown along what is half as deep
    (hysteresis: a frame's fainter stretches join it), small gaps closed."""
    weak = (depth > 0.5 * DARK_LINE).astype(np.uint8)
    r = max(1, round(0.02 * iod))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    weak = np.asarray(cv2.morphologyEx(weak, cv2.MORPH_CLOSE, disk), np.uint8)
    n, lab = cv2.connectedComponents(weak, connectivity=8)
    strong = np.zeros(n, bool)
    strong[np.unique(lab[depth > DARK_LINE])] = True
    strong[0] = False
    return strong[lab].astype(np.uint8)


def framing(pts: NDArray[np.int64], eye: NDArray[np.floating], iod: float) -> bool:
    """Whether structure pixels ``pts`` (N, 2) as (row, col) surround an ``eye`` centre (x, y) like a
    glasses rim: above, below, and past both its corners."""
    if not len(pts):
        return False
    (y0, x0), (y1, x1) = pts.min(0), pts.max(0)
    ex, ey = eye
    return bool(y0 < ey - 0.15 * iod and y1 > ey + 0.15 * iod and x0 < ex - 0.25 * iod and x1 > ex + 0.25 * iod)


def classify(depth: F32, face: F32, eyes: NDArray[np.floating], iod: float) -> F32:
    """Glasses pixels (H, W) {0, 1} from the dark-structure ``depth`` (H, W) inside the ``face`` region
    (the face outline less the eyes, brows and lips), ``eyes`` (2, 2) the eye centres (x, y).

    Long thin structures within GLASSES of an eye centre are rims; when they frame both eyes, the rims and
    the convex hulls of what of them lies within LENS of each eye, on its side of the nose (NOSE) or above the
    eye line (UPPER) (the lenses) are returned, else nothing.
    """
    inside = (face > 0.5).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(structures(depth, iod) * inside, connectivity=8)
    out = np.zeros(depth.shape, np.uint8)
    near_eye = [np.zeros(depth.shape, bool) for _ in eyes]
    lens = [np.zeros(depth.shape, bool) for _ in eyes]
    ys, xs = np.mgrid[0 : depth.shape[0], 0 : depth.shape[1]]
    dist = [np.hypot(xs - ex, ys - ey) for ex, ey in eyes]
    zones = [d < GLASSES * iod for d in dist]
    mid, across = eyes.mean(0), (eyes[1] - eyes[0]) / max(float(np.linalg.norm(eyes[1] - eyes[0])), 1e-6)
    out_x = (xs - mid[0]) * across[0] + (ys - mid[1]) * across[1]  # px from the nose's midline, towards eye 1
    sides = [out_x < -NOSE * iod, out_x > NOSE * iod]  # a lens lies on its eye's side of the nose
    upper = (ys - mid[1]) * across[0] - (xs - mid[0]) * across[1] < UPPER * iod  # px down the face, from the eyes
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if max(w, h) < THIN_LENGTH * iod or area / float(w * h) >= SPOT_FILL:
            continue
        part = np.zeros(depth.shape, bool)
        part[y : y + h, x : x + w] = lab[y : y + h, x : x + w] == i
        at_eye = [bool((part & z).any()) for z in zones]
        if any(at_eye):
            out[part] = 1
        for k, hit in enumerate(at_eye):
            if hit:
                near_eye[k] |= part & zones[k]
                lens[k] |= part & (dist[k] < LENS * iod) & (sides[k] | upper)
    framed = [framing(np.argwhere(m), e, iod) for m, e in zip(near_eye, eyes, strict=True)]
    if not all(framed):  # no pair of glasses: what lies near the eyes is the face's own (bags, crow's feet)
        return np.zeros(depth.shape, np.float32)
    for m in lens:
        cv2.fillPoly(out, [cv2.convexHull(np.argwhere(m)[:, ::-1].astype(np.int32))], (1,))
    return out.astype(np.float32)


def touching(parts: NDArray[np.uint8], seed: F32) -> F32:
    """The connected components of ``parts`` (H, W) {0, 1} that overlap ``seed`` (H, W), as (H, W) {0, 1}."""
    n, lab = cv2.connectedComponents(parts.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[np.unique(lab[(seed > 0.5) & (parts > 0)])] = True
    keep[0] = False
    return keep[lab].astype(np.float32)


def mirrored(mask: F32, origin: NDArray[np.floating], ax: NDArray[np.floating], ay: NDArray[np.floating]) -> F32:
    """``mask`` (H, W) reflected across the face's midline: the eye frame (``origin``, x axis ``ax``, y axis
    ``ay``, as :func:`faceplate.ops.eyewear.eye_frame`) with x negated."""
    a = np.stack([ax, ay], 1).astype(np.float64)
    lin = a @ np.diag([-1.0, 1.0]) @ np.linalg.inv(a)
    m = np.hstack([lin, (origin - lin @ origin)[:, None]])
    h, w = mask.shape
    return np.asarray(cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST), np.float32)


def features(lm: NDArray[np.floating], shape: tuple[int, int], iod: float, brows: bool = True) -> F32:
    """Eyes, lips and (``brows``) brows (H, W), grown a little: their own dark edges are not occluders."""
    m = np.zeros(shape, np.float32)
    for name in ("eye_r", "eye_l", "lips", *(("brow_r", "brow_l") if brows else ())):
        m = np.maximum(m, region_mask(lm, shape, name))
    return dilate(m, 0.04 * iod)


def occluder_matte(img: F32, lm: NDArray[np.floating], iod: float | None = None) -> F32:
    """Soft occluder matte (R, R) float32 in [0, 1] of an aligned face (``img`` (R, R, 3), ``lm`` (478, >=2)):
    1 on the glasses and MARGIN around them, falling to 0 just outside (:func:`soft_matte`). The glasses: dark
    frames (thin dark structures framing both eyes); clear and thin ones: :func:`faceplate.ops.glasses.glasses_matte`.

    Found where the eyes are at most DETECT_IOD px apart (larger crops are shrunk first and the matte
    scaled back up), so the same face gives the same answer at any crop size.
    """
    iod = iod or eye_distance(lm)
    h, w = img.shape[:2]
    k = min(1.0, DETECT_IOD / iod)
    size = (max(1, round(w * k)), max(1, round(h * k)))
    small = img if k == 1.0 else np.asarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA), np.float32)
    xy = np.asarray(lm[:, :2], np.float64) * np.array([size[0] / w, size[1] / h])
    siod, shape = iod * size[0] / w, (size[1], size[0])
    oval = polygon_mask(shape, raised_oval(xy), hull=False)
    face = oval * (1.0 - features(xy, shape, siod))
    eyes = np.array([xy[mesh_regions()[e]].mean(0) for e in ("eye_r", "eye_l")])
    depth = dark_lines(luma(small), siod)
    occ = classify(depth, face, eyes, siod)
    if occ.any():  # a frame's top bar often lies on the brows, which the search left out: add what touches
        browed = oval * (1.0 - features(xy, shape, siod, brows=False))
        occ = np.maximum(occ, touching(structures(depth, siod) * (browed > 0.5), dilate(occ, 0.02 * siod)))
        occ = np.maximum(occ, mirrored(occ, *eye_frame(xy)))  # a frame is symmetric: a rim found on one side
        #                                                       (a tortoiseshell's pale lower rim) is on both
    occ = dilate(occ, MARGIN * siod)
    if k < 1.0:
        occ = np.asarray(cv2.resize(occ, (w, h), interpolation=cv2.INTER_LINEAR), np.float32)
    return soft_matte(occ, iod)


def soft_matte(occ: F32, iod: float) -> F32:
    """``occ`` (H, W) in [0, 1] with a soft outer edge (a face's eyes ``iod`` px apart): 1 where it is, falling
    to 0 just outside."""
    return np.clip(np.maximum(occ, gauss(occ, 0.01 * iod) * 1.5), 0.0, 1.0).astype(np.float32)


def track_occluders(masks: list[F32], iod: float) -> F32 | None:
    """One steady occluder matte (R, R) for a track from its sample faces' mattes (each (R, R), aligned
    alike, eyes ``iod`` px apart), or None when most samples show none: glasses are rigid on the face, so
    in aligned space they stay put, and one matte for the whole track cannot flicker where a frame's
    detection drops out. It is 1 on the glasses and their margin, then fades out over the skin beside them
    (:func:`faceplate.ops.eyewear.faded`): a hard cut there is a seam in the retouch and the lift."""
    found = [m for m in masks if m.max() > 0.5]
    if not found or len(found) * 2 < len(masks):
        return None
    return faded((np.mean(found, axis=0) > 0.35).astype(np.float32), iod, FADE, FADE_PX)  # where most detections agree
