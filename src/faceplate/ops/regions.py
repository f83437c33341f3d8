"""Face regions from the 478-point mesh, rasterised as soft masks in any (aligned) image space."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib import resources

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.landmarks import (
    ALAR_L,
    ALAR_R,
    EYE_INNER_L,
    EYE_INNER_R,
    EYE_OUTER_L,
    EYE_OUTER_R,
    MOUTH_L,
    MOUTH_R,
    NOSE_BOTTOM,
)
from faceplate.ops.filters import blur_radius, gauss

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]

# Kept out of skin retouch, grown by a margin in eye-distance units (a closing eye must not shrink its guard).
KEEP_EYES = (("eye_r", "eye_l"), 0.1)
KEEP_BROWS = (("brow_r", "brow_l"), 0.03)
KEEP_LIPS = (("lips",), 0.03)


def _points(edges: frozenset[tuple[int, int]]) -> I64:
    return np.array(sorted({i for e in edges for i in e}), np.int64)


def _loop(edges: frozenset[tuple[int, int]]) -> I64:
    nxt = dict(edges)
    start = min(nxt)
    out, cur = [start], nxt[start]
    while cur != start:
        out.append(cur)
        cur = nxt[cur]
    return np.array(out, np.int64)


def regions_from_mediapipe() -> dict[str, I64]:
    """The region index sets computed from MediaPipe's own connection tables (imports all of mediapipe,
    ~1 s; ``mesh_regions`` reads the same sets from faceplate/data/mesh_regions.json, checked by a test)."""
    from mediapipe.python.solutions import face_mesh_connections as c

    return {
        "oval": _loop(c.FACEMESH_FACE_OVAL),
        "eye_r": _points(c.FACEMESH_RIGHT_EYE),
        "eye_l": _points(c.FACEMESH_LEFT_EYE),
        "brow_r": _points(c.FACEMESH_RIGHT_EYEBROW),
        "brow_l": _points(c.FACEMESH_LEFT_EYEBROW),
        "lips": _points(c.FACEMESH_LIPS),
    }


@cache
def mesh_regions() -> dict[str, I64]:
    """Index sets of the mesh regions: face oval (a closed loop), eyes, brows, lips (sorted point sets)."""
    with resources.files("faceplate.data").joinpath("mesh_regions.json").open() as f:
        data = json.load(f)
    return {k: np.array(v, np.int64) for k, v in data.items() if k != "source"}


def _pt(c: NDArray[np.floating]) -> tuple[int, int]:
    return int(np.floor(c[0] + 0.5)), int(np.floor(c[1] + 0.5))


def fill_polygon(canvas: NDArray[np.uint8], pts: NDArray[np.floating], hull: bool = True) -> None:
    """Draw the polygon (or its convex hull) through points (N, 2) onto ``canvas`` (H, W) at 255, anti-aliased."""
    p = np.round(pts[:, :2] * 16).astype(np.int32)  # 4 bits of sub-pixel precision
    poly = cv2.convexHull(p) if hull else p.reshape(-1, 1, 2)
    cv2.fillPoly(canvas, [poly], (255,), lineType=cv2.LINE_AA, shift=4)


def polygon_mask(shape: tuple[int, int], pts: NDArray[np.floating], hull: bool = True) -> F32:
    """Float mask (H, W) of the polygon (or its convex hull) through points (N, 2), anti-aliased edges."""
    m = np.zeros(shape, np.uint8)
    fill_polygon(m, pts, hull)
    return m.astype(np.float32) / 255.0


def grow(pts: NDArray[np.floating], factor: float) -> NDArray[np.float64]:
    """Scale points (N, 2) about their centroid (``factor`` > 1 enlarges the region)."""
    p = np.asarray(pts[:, :2], np.float64)
    c = p.mean(0)
    return c + (p - c) * factor


def region_mask(lm: NDArray[np.floating], shape: tuple[int, int], name: str, factor: float = 1.0) -> F32:
    """Mask (H, W) of a named region of landmarks ``lm`` (478, >=2, in the mask's pixel space)."""
    idx = mesh_regions()[name]
    return polygon_mask(shape, grow(lm[idx], factor), hull=name != "oval")


def regions_mask(lm: NDArray[np.floating], shape: tuple[int, int], names: tuple[str, ...], factor: float = 1.0) -> F32:
    """``region_mask``'s maximum (H, W) over the regions ``names`` that lie apart (no pixel in two, as the eyes,
    the brows and the lips do), drawn on one canvas: the same mask at the cost of one."""
    m = np.zeros(shape, np.uint8)
    for name in names:
        fill_polygon(m, grow(lm[mesh_regions()[name]], factor), hull=name != "oval")
    return m.astype(np.float32) / 255.0


def dilated_regions(lm: NDArray[np.floating], shape: tuple[int, int], names: tuple[str, ...], r: float) -> F32:
    """``dilate(regions_mask(lm, shape, names), r)`` (H, W): the same mask, its canvas dilated as bytes round
    its own pixels (no float mask to read back)."""
    m = np.zeros(shape, np.uint8)
    for name in names:
        fill_polygon(m, grow(lm[mesh_regions()[name]], 1.0), hull=name != "oval")
    k = round(r)
    if k < 1:
        return m.astype(np.float32) / 255.0
    x, y, w, h = cv2.boundingRect(m)
    out = np.zeros(shape, np.float32)
    if w > 0:
        roi = slice(max(0, y - k), min(shape[0], y + h + k)), slice(max(0, x - k), min(shape[1], x + w + k))
        out[roi] = cv2.dilate(np.ascontiguousarray(m[roi]), disk(k)).astype(np.float32) / 255.0
    return out


def raised_oval(lm: NDArray[np.floating], forehead_lift: float = 0.18) -> NDArray[np.float64]:
    """The mesh's face outline (N, 2) with its upper rim raised towards the hairline by ``forehead_lift``
    of the face height (the mesh stops mid-forehead), more at the top than near the eyes."""
    oval = np.asarray(lm[mesh_regions()["oval"], :2], np.float64).copy()
    top, chin = oval[:, 1].min(), oval[:, 1].max()
    eye_y = float((lm[33, 1] + lm[263, 1]) / 2)
    above = oval[:, 1] < eye_y
    oval[above, 1] -= forehead_lift * (chin - top) * (eye_y - oval[above, 1]) / max(eye_y - top, 1e-6)
    return oval


def skin_region(
    lm: NDArray[np.floating],
    shape: tuple[int, int],
    forehead_lift: float = 0.18,
    margins: tuple[float, float, float] | None = None,
    nostril: float = 0.65,
) -> F32:
    """Hard skin area (H, W) in {0, 1}: face oval raised towards the hairline, minus eyes, brows, lips, nostrils.

    The mesh stops mid-forehead; its upper rim is lifted by ``forehead_lift`` of the face height (the
    per-shot skin-colour model then removes hair). Exclusions are enlarged so a feather never reaches them:
    ``margins`` (eyes, brows, lips) in eye distances, default KEEP_EYES/KEEP_BROWS/KEEP_LIPS's; ``nostril``
    is the nostril disc's radius in nose-tip-to-wing distances.
    """
    m = polygon_mask(shape, raised_oval(lm, forehead_lift), hull=False)
    return np.clip(m - feature_mask(lm, shape, margins, nostril), 0.0, 1.0)


def feature_mask(
    lm: NDArray[np.floating],
    shape: tuple[int, int],
    margins: tuple[float, float, float] | None = None,
    nostril: float = 0.65,
) -> F32:
    """Eyes, brows and lips grown by ``margins`` (eye distances; default KEEP_*'s; a negative margin leaves
    that feature out of the mask) and the nostril discs (radius ``nostril`` nose-tip-to-wing distances) as a
    mask (H, W) in [0, 1] (anti-aliased)."""
    keep = (KEEP_EYES, KEEP_BROWS, KEEP_LIPS)
    grown = [(names, margin if margins is None else margins[i]) for i, (names, margin) in enumerate(keep)]
    keep_out = np.zeros(shape, np.float32)
    iod = eye_distance(lm)
    for names, margin in grown:
        if margin < 0:
            continue
        keep_out = np.maximum(keep_out, dilated_regions(lm, shape, names, margin * iod))
    for alar in (ALAR_R, ALAR_L):
        c = (lm[NOSE_BOTTOM, :2] + lm[alar, :2]) / 2
        r = nostril * float(np.linalg.norm(lm[NOSE_BOTTOM, :2] - lm[alar, :2]))
        cv2.circle(keep_out, _pt(c), int(r + 0.5), (1.0,), -1, lineType=cv2.LINE_AA)
    return keep_out


def distance_from(off: NDArray[np.bool_]) -> F32:
    """Distance (H, W) in px from each pixel to the nearest ``off`` pixel (H, W) bool (the crop's edge
    does not count: a mask that runs off the crop is not bounded there)."""
    on = np.ascontiguousarray(~off, np.uint8)
    if on.all():
        return np.full(off.shape, float(sum(off.shape)), np.float32)  # farther than any pixel
    return np.asarray(cv2.distanceTransform(on, cv2.DIST_L2, 5), np.float32)


def edge_distance(region: F32) -> F32:
    """Distance (H, W) in px from each pixel of ``region`` (H, W, > 0.5 inside) to its nearest pixel outside
    (0 outside): how far skin lies from the features and the outline that bound it."""
    inside = (region > 0.5).astype(np.uint8)
    inside[0, :], inside[-1, :], inside[:, 0], inside[:, -1] = 0, 0, 0, 0
    return np.asarray(cv2.distanceTransform(inside, cv2.DIST_L2, 5), np.float32)


def fill_enclosed(mask: F32, region: F32, edges: F32) -> F32:
    """``mask`` (H, W) in [0, 1] with its holes inside ``region`` (H, W) filled, except holes that reach
    ``edges`` (H, W): off-colour patches enclosed by skin are skin; hair at the hairline, a beard at the
    jaw or a moustache at the lips reach the edges and stay out."""
    holes = ((region > 0.5) & (mask < 0.5)).astype(np.uint8)
    n, lab = cv2.connectedComponents(holes, connectivity=4)
    open_ = np.zeros(n, bool)
    open_[np.unique(lab[(edges > 0.5) & (holes > 0)])] = True
    open_[0] = True
    return np.asarray(np.where(open_[lab], mask, 1.0), np.float32)


def outer_edges(lm: NDArray[np.floating], shape: tuple[int, int], forehead_lift: float = 0.18,
                area: F32 | None = None) -> F32:  # fmt: skip
    """Where hair and beards enter the skin (H, W) {0, 1}: the rim of the raised face outline (or of
    ``area`` (H, W), the outline as the caller grew or shrank it) and the lips."""
    if area is None:
        area = polygon_mask(shape, raised_oval(lm, forehead_lift), hull=False)
    oval = (area > 0.5).astype(np.uint8)
    rim = oval - cv2.erode(oval, np.ones((5, 5), np.uint8))
    lips = dilated_regions(lm, shape, ("lips",), (KEEP_LIPS[1] + 0.02) * eye_distance(lm))
    return np.maximum(rim.astype(np.float32), lips)


def feature_edges(lm: NDArray[np.floating], shape: tuple[int, int], nostril: float = 0.3) -> F32:
    """Where dark features enter the skin (H, W) {0, 1}: eyes, brows' cores (their mesh hull shrunk to 60%)
    and nostril discs (radius ``nostril`` nose-tip-to-wing distances). An off-colour patch that reaches one
    (a lash line, brow hair, a nostril's shadow) is that feature, not a spot enclosed by skin."""
    out = np.zeros(shape, np.float32)
    for name, factor in (("eye_r", 1.0), ("eye_l", 1.0), ("brow_r", 0.6), ("brow_l", 0.6)):
        out = np.maximum(out, region_mask(lm, shape, name, factor))
    out = np.maximum(out, feature_mask(lm, shape, (-1.0, -1.0, -1.0), nostril))  # nostril discs alone
    return (out > 0.5).astype(np.float32)


def dark_features(lum: F32, lm: NDArray[np.floating], shape: tuple[int, int], brow: float = 0.1,
                  nostril: float = 0.3) -> F32:  # fmt: skip
    """Brow hair and nostril openings (H, W) {0, 1}: pixels of luma ``lum`` (H, W) in the brows' mesh hulls
    (grown by 0.06 eye distances: the mesh's brow sits off the hair) darker by ``brow`` than the luma around
    them (0.15 eye distances), or in the nostril discs darker by ``nostril`` (the shade under a nose is
    not its opening), and the discs' cores (radius 0.3) always. The mesh gives where, the picture gives the
    feature's own edge."""
    iod = eye_distance(lm)
    brows = dilated_regions(lm, shape, ("brow_r", "brow_l"), 0.06 * iod)  # dilating the max: the max of each
    nostrils = feature_mask(lm, shape, (-1.0, -1.0, -1.0), 0.65)
    s = 0.15 * iod  # each blurred round its own rectangle: the same values there, less area than round both
    dark = (lum < (1.0 - brow) * blurred_over(lum, brows, s)) & (brows > 0.5)
    dark |= (lum < (1.0 - nostril) * blurred_over(lum, nostrils, s)) & (nostrils > 0.5)
    return (dark | (feature_mask(lm, shape, (-1.0, -1.0, -1.0), 0.3) > 0.5)).astype(np.float32)


def blurred_over(img: F32, where: F32, sigma: float) -> F32:
    """``gauss(img, sigma)`` (H, W) where ``where`` (H, W) >= 0 is nonzero (0 elsewhere), blurred over the
    rectangle round it only (its kernel's reach beyond: the same values there)."""
    reach = blur_radius(sigma)
    roi = support(where, reach)
    if roi is None:
        return gauss(img, sigma)
    out = np.zeros(img.shape, np.float32)
    if roi[0].stop > roi[0].start:
        out[roi] = gauss(np.ascontiguousarray(img[roi]), sigma)
    return out


def inset_outline(lm: NDArray[np.floating], shape: tuple[int, int], r: float, forehead_lift: float = 0.18) -> F32:
    """The raised face outline's area (H, W) shrunk by ``r`` px (grown where ``r`` < 0)."""
    oval = polygon_mask(shape, raised_oval(lm, forehead_lift), hull=False)
    k = round(r)
    if k <= -1:
        return dilate(oval, -r)
    if k < 1:
        return oval
    return np.asarray(cv2.erode(oval, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))), np.float32)


@cache
def disk(k: int) -> NDArray[np.uint8]:
    """Elliptical structuring element (2k+1, 2k+1) (cached; read-only)."""
    kernel = np.asarray(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)), np.uint8)
    kernel.flags.writeable = False
    return kernel


def as_bytes(mask: F32) -> NDArray[np.uint8] | None:
    """``mask`` (H, W) as uint8 levels when it is exactly levels / 255 (a rasterised mask), else None."""
    if mask.dtype != np.float32 or mask.ndim != 2:
        return None
    u8 = np.asarray(cv2.convertScaleAbs(mask, alpha=255.0), np.uint8)
    return u8 if np.array_equal(u8.astype(np.float32) / 255.0, mask) else None


def support(mask: F32, reach: int) -> tuple[slice, slice] | None:
    """Rows and columns (slices) of ``mask`` (H, W) >= 0 holding its nonzero pixels grown by ``reach`` px; None
    when that is most of the mask (or it is not a non-negative float32 (H, W) mask)."""
    if mask.ndim != 2 or mask.dtype != np.float32 or float(mask.min()) < 0:
        return None
    x, y, w, h = cv2.boundingRect(np.asarray(mask != 0, np.uint8))
    if w == 0:
        return slice(0, 0), slice(0, 0)
    rows = slice(max(0, y - reach), min(mask.shape[0], y + h + reach))
    cols = slice(max(0, x - reach), min(mask.shape[1], x + w + reach))
    if (rows.stop - rows.start) * (cols.stop - cols.start) > 0.6 * mask.size:
        return None
    return rows, cols


def on_support(op: Callable[[F32], F32], mask: F32, reach: int) -> F32:
    """``op(mask)`` for a local op on a mask (H, W) >= 0 that leaves zero where no nonzero pixel lies within
    ``reach`` px (dilate, erode, a blur of radius <= reach): worked on that rectangle only, the same result."""
    roi = support(mask, reach)
    if roi is None:
        return np.asarray(op(mask), np.float32)
    out = np.zeros(mask.shape, np.float32)
    if roi[0].stop > roi[0].start:
        out[roi] = op(np.ascontiguousarray(mask[roi]))
    return out


def grown(mask: F32, k: int) -> F32:
    """``mask`` (H, W) dilated by the disk of radius ``k`` px; a rasterised mask (levels / 255) as bytes
    (the same result, ~3x faster for wide disks)."""
    u8 = as_bytes(mask) if k >= 3 else None
    if u8 is not None:
        return np.asarray(cv2.dilate(u8, disk(k)).astype(np.float32) / 255.0, np.float32)
    return np.asarray(cv2.dilate(mask, disk(k)), np.float32)


def dilate(mask: F32, r: float) -> F32:
    """Grow a mask by ``r`` px (elliptical structuring element), worked round its nonzero pixels only."""
    k = round(r)
    if k < 1:
        return mask
    return on_support(lambda m: grown(m, k), mask, k)


def feather(mask: F32, sigma: float, inset: float | None = None) -> F32:
    """Soft edges (H, W) of ``mask`` (H, W) that stay inside it: erode by ``inset`` px (rounded up; default
    2 sigma), then blur by ``sigma``."""
    r = int(np.ceil(2 * sigma if inset is None else inset))

    def soft(m: F32) -> F32:
        if r > 0:
            m = np.asarray(cv2.erode(m, disk(r)), np.float32)
        return gauss(m, sigma)

    return np.clip(on_support(soft, mask, r + blur_radius(sigma)), 0.0, 1.0)


def eye_distance(lm: NDArray[np.floating]) -> float:
    """Distance between the eye centres (mid eye corners) of landmarks (478, >=2), in their pixels."""
    r = (lm[EYE_OUTER_R, :2] + lm[EYE_INNER_R, :2]) / 2
    left = (lm[EYE_OUTER_L, :2] + lm[EYE_INNER_L, :2]) / 2
    return float(np.linalg.norm(left - r))


def under_eye(lm: NDArray[np.floating], shape: tuple[int, int]) -> F32:
    """Band below each eye (H, W): the lower lid moved down by 0.45 eye-distances (upright aligned face)."""
    iod = eye_distance(lm)
    out = np.zeros(shape, np.float32)
    for name in ("eye_r", "eye_l"):
        eye = np.asarray(lm[mesh_regions()[name], :2], np.float64)
        centre_y = eye[:, 1].mean()
        lid = eye[eye[:, 1] >= centre_y]
        lid = lid[np.argsort(lid[:, 0])]
        top, bottom = lid + np.array([0.0, 0.06 * iod]), lid + np.array([0.0, 0.45 * iod])
        band = np.vstack([top, bottom[::-1]])
        out = np.maximum(out, polygon_mask(shape, band, hull=False))
    return out


def sample_patches(lm: NDArray[np.floating], shape: tuple[int, int], forehead: bool = True) -> F32:
    """Core skin patches (H, W) for colour sampling: both cheeks and (``forehead``) the mid forehead
    (upright face)."""
    iod = eye_distance(lm)
    m = np.zeros(shape, np.uint8)
    mid_eyes = (lm[EYE_OUTER_R, :2] + lm[EYE_OUTER_L, :2]) / 2
    centres = [
        (lm[EYE_OUTER_R, :2] + lm[MOUTH_R, :2]) / 2,
        (lm[EYE_OUTER_L, :2] + lm[MOUTH_L, :2]) / 2,
        mid_eyes + np.array([0.0, -0.75 * iod]),
    ]
    for c in centres if forehead else centres[:2]:
        cv2.circle(m, _pt(c), max(1, int(0.22 * iod)), (1,), -1)
    return m.astype(np.float32)
