"""Un-align and composite: each face's change (result − plate crop) × matte goes back onto the plate.

Only the change is resampled, so plate detail outside the effect's reach is bit-identical, and integer
plates are changed by whole code values. Pure functions on arrays (no I/O).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.align import to_aligned
from faceplate.analysis.hands import hand_mask
from faceplate.effects.base import AlignedFace, Effect
from faceplate.geometry import F64, invert, transform
from faceplate.media.yuv import Yuv420, add_rgb_change
from faceplate.ops.filters import blur_radius, fill_nonfinite, gauss, spread
from faceplate.ops.regions import dilate, on_support
from faceplate.ops.retouch import soft_step
from faceplate.render.tracks import ColourPath, TrackContext, aligned_face
from faceplate.store import FaceRow

F32 = NDArray[np.float32]
EIGHT_BIT_FLOOR = 1 / 1024  # matte values that cannot move an 8-bit code value (|change| <= 1: < 0.25 code)
_UNWARP = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
HAND_SOFT = 0.012  # share of the crop over which a hand's hold-out fades out (after as much again held fully)
EDGE = 0.3  # eye distances over which every matte fades out before the aligned crop's edge (no seams)


@dataclass(frozen=True)
class Change:
    """One face's effect, ready to composite: ``change`` (R, R, 3) float32 plate code values in [-1, 1]
    scale, ``alpha`` (R, R) float32 0..1, ``m`` the plate → aligned (2, 3) matrix. ``held`` (R, R) float32:
    the part of the effect's edge-faded matte the occluders (hands, glasses) removed (None: none held out);
    ``track``: the face's track."""

    change: F32
    alpha: F32
    m: F64
    held: F32 | None = None
    track: int | None = None


def footprint(
    alpha: F32, m: F64, shape: tuple[int, int], even: bool = False, floor: float = 0.0
) -> tuple[int, int, int, int, F64] | None:
    """Plate rectangle (x0, y0, x1, y1) under the aligned matte ``alpha`` (R, R) where it exceeds ``floor``,
    clipped to ``shape`` (H, W), with even corners if asked (4:2:0 chroma), and the matrix mapping the
    rectangle's pixels into aligned space. None when nothing of the matte lands on the plate."""
    bx, by, bw, bh = cv2.boundingRect(np.asarray(alpha > floor, np.uint8))
    if bw == 0:
        return None
    h, w = shape
    xa, ya, xb, yb = bx - 1, by - 1, bx + bw, by + bh  # one aligned pixel round the matte's extent
    box = np.array([[xa, ya], [xb, ya], [xa, yb], [xb, yb]], np.float64)
    corners = transform(invert(m), box)
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 1, [w, h])
    if even:
        x0, y0, x1, y1 = x0 - x0 % 2, y0 - y0 % 2, min(x1 + x1 % 2, w), min(y1 + y1 % 2, h)
    if x1 <= x0 or y1 <= y0:
        return None
    mr = m.copy()
    mr[:, 2] = m[:, 2] + m[:, :2] @ np.array([x0, y0], np.float64)
    return int(x0), int(y0), int(x1), int(y1), mr


def paste(comp: NDArray[Any], matte: F32 | None, change: F32, alpha: F32, m: F64) -> None:
    """Add the aligned ``change`` (R, R, 3) x ``alpha`` (R, R) onto ``comp`` in place; max ``alpha`` into ``matte``
    (if given).

    ``comp`` keeps its dtype (uint8, uint16 or float32 code values). Only the plate rectangle under the
    matte is touched; integer plates are changed by whole code values, so pixels the change does not
    reach stay bit-identical. Non-finite float pixels the change reaches are replaced by their finite
    neighbours first (they stay as they are where nothing changes).
    """
    floor = EIGHT_BIT_FLOOR if comp.dtype == np.uint8 else 0.0  # a haze no 8-bit pixel shows: not pasted
    fp = footprint(alpha, m, (comp.shape[0], comp.shape[1]), floor=floor)
    if fp is None:
        return
    x0, y0, x1, y1, mr = fp
    size = (x1 - x0, y1 - y0)
    peak = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(comp.dtype, 1.0)
    roi = comp[y0:y1, x0:x1]
    if comp.dtype == np.uint8:  # v + round(255 d) in 1/16 code steps, saturated: exact where d == 0
        d16 = np.asarray(np.rint(change * spread(alpha * (16 * peak), 3)), np.int16)
        d = cv2.warpAffine(d16, mr, size, flags=_UNWARP)
        roi[:] = cv2.add(roi, cv2.multiply(d, 1.0 / 16, dtype=cv2.CV_16S), dtype=cv2.CV_8U)  # type: ignore[call-overload]
    else:
        d = cv2.warpAffine(change * spread(alpha * peak, 3), mr, size, flags=_UNWARP)
        if comp.dtype == np.uint16:
            roi[:] = np.clip(roi.astype(np.int32) + np.rint(d).astype(np.int32), 0, 65535).astype(np.uint16)
        else:
            _heal_touched(roi, np.asarray(d, np.float32))
            roi += d
    _max_into(matte, alpha, mr, (x0, y0, x1, y1))


def _heal_touched(roi: F32, d: F32) -> None:
    """Replace non-finite pixels of ``roi`` (h, w, 3) that the change ``d`` reaches by finite neighbours."""
    bad = ~np.isfinite(roi).all(axis=2)
    if not bad.any():
        return
    touched = bad & (d != 0).any(axis=2)
    if touched.any():
        roi[touched] = fill_nonfinite(roi)[touched]


def _max_into(matte: F32 | None, alpha: F32, mr: F64, box: tuple[int, int, int, int]) -> None:
    """``matte[box] = max(matte[box], alpha un-aligned by mr)`` (nothing without a matte)."""
    if matte is None:
        return
    x0, y0, x1, y1 = box
    a = cv2.warpAffine(np.ascontiguousarray(alpha), mr, (x1 - x0, y1 - y0), flags=_UNWARP)
    np.maximum(matte[y0:y1, x0:x1], a, out=matte[y0:y1, x0:x1])


def paste_yuv(comp: Yuv420, matte: F32 | None, change: F32, alpha: F32, m: F64) -> None:
    """``paste`` for an 8-bit 4:2:0 frame: the change goes into its Y'CbCr planes (see media.yuv)."""
    fp = footprint(alpha, m, comp.size, even=True, floor=EIGHT_BIT_FLOOR)
    if fp is None:
        return
    x0, y0, x1, y1, mr = fp
    size = (x1 - x0, y1 - y0)
    d = cv2.warpAffine(change * spread(alpha * 255.0, 3), mr, size, flags=_UNWARP)  # (merge: ~10x a broadcast here)
    add_rgb_change(comp, d, x0, y0)
    _max_into(matte, alpha, mr, (x0, y0, x1, y1))


def occlude(matte: F32, hands: list[NDArray[np.floating]]) -> F32:
    """``matte`` (R, R) cut by hands (points in the same aligned space), with a soft edge outside the hand."""
    if not hands:
        return matte
    res = matte.shape[0]
    mask = hand_mask(hands, (res, matte.shape[1]))
    if not mask.any():
        return matte
    sigma = HAND_SOFT * res
    grown = lambda m: gauss(dilate(m, sigma), sigma)  # noqa: E731  (local: worked round the hand only)
    soft = np.maximum(mask, on_support(grown, mask, round(sigma) + blur_radius(sigma)))  # held out ~1 sigma, then fades
    return np.asarray(matte * (1.0 - np.clip(soft * 1.5, 0.0, 1.0)), np.float32)


Earlier = list[tuple[NDArray[Any], list[FaceRow]]]  # (decoded RGB, faces) of the frames before, oldest first


def _history(
    earlier: Earlier, track: int, tr: TrackContext, effect: Effect, col: ColourPath
) -> tuple[AlignedFace, ...]:
    """The track's aligned faces in the ``effect.history`` frames just before (as far as the track goes back)."""
    out: list[AlignedFace] = []
    for rgb, faces in reversed(earlier[-effect.history :] if effect.history else []):
        row = next((f for f in faces if f.track == track), None)
        if row is None:
            break  # the track starts (or has a gap) here
        out.insert(0, aligned_face(rgb, row, tr.res, effect.face_type, col)[0])
    return tuple(out)


def face_changes(
    rgb: NDArray[Any],
    faces: list[FaceRow],
    tracks: dict[int, TrackContext],
    effect: Effect,
    col: ColourPath,
    hands: list[F32] | None = None,
    earlier: Earlier | None = None,
) -> list[Change]:
    """Run the effect on each face of the decoded plate frame ``rgb`` (H, W, 3) (any dtype, plate space).

    ``hands`` ((21, 3) plate px each) are occluders: every effect's matte is cut where they are.
    ``earlier``: the decoded frames before this one with their faces, for effects with ``history``.
    """
    out = []
    for f in faces:
        tr = tracks[f.track]
        face, crop, m = aligned_face(rgb, f, tr.res, effect.face_type, col)
        if effect.history and earlier:
            face = AlignedFace(face.frame, face.track, face.image, face.landmarks, face.iod,
                               _history(earlier, f.track, tr, effect, col))  # fmt: skip
        if tr.held_out is not None:
            face = replace(face, held_out=tr.held_out)
        result = effect.apply(face, tr.context)
        alpha = occlude(result.matte, [to_aligned(m, h) for h in hands or []])
        if tr.held_out is not None:
            alpha = alpha * (1.0 - tr.held_out)
        ramp = edge_ramp(alpha.shape, EDGE * face.iod)
        alpha = alpha * ramp
        held = held_back(result.matte, alpha, ramp) if hands or tr.held_out is not None else None
        out.append(Change(col.decode(result.image) - crop, alpha, m, held, f.track))
    return out


def held_back(matte: F32, alpha: F32, ramp: F32) -> F32:
    """(R, R) float32: what the occluders took from the effect's ``matte`` (R, R): ``matte × ramp`` (the edge
    fade) less the final ``alpha``, clipped to [0, 1]."""
    return np.asarray(np.clip(matte * ramp - alpha, 0.0, 1.0), np.float32)


def edge_ramp(shape: tuple[int, ...], width: float) -> F32:
    """(H, W) weight rising smoothly from 0 at the crop's edge to 1 at ``width`` px inside it: a matte that
    reaches the crop's edge (a tall forehead) fades out inside the crop instead of ending in a seam."""
    h, w = shape[0], shape[1]
    ramp = lambda n: soft_step(np.minimum(np.arange(n), np.arange(n)[::-1]).astype(np.float32), 0.0, width)  # noqa: E731
    return np.asarray(np.minimum(ramp(h)[:, None], ramp(w)[None, :]), np.float32)


def composite(
    img: NDArray[Any] | Yuv420, changes: list[Change], in_place: bool = False, with_matte: bool = True
) -> tuple[NDArray[Any] | Yuv420, F32 | None]:
    """(comp, matte (H, W) float32 or None without ``with_matte``) of the decoded plate frame ``img`` with
    ``changes`` added.

    ``img`` is RGB (H, W, 3) (comp in its dtype) or a :class:`Yuv420` frame (the comp is that frame, changed
    in its planes). ``in_place`` composites into ``img`` itself (when the plate frame is not needed afterwards).
    """
    rgb = img.rgb if isinstance(img, Yuv420) else img
    comp = img if in_place or isinstance(img, Yuv420) else img.copy()
    matte = np.zeros(rgb.shape[:2], np.float32) if with_matte else None
    for c in changes:
        if isinstance(comp, Yuv420):
            paste_yuv(comp, matte, c.change, c.alpha, c.m)
        else:
            paste(comp, matte, c.change, c.alpha, c.m)
    return comp, matte


def render_frame(
    img: NDArray[Any] | Yuv420,
    faces: list[FaceRow],
    tracks: dict[int, TrackContext],
    effect: Effect,
    col: ColourPath,
    in_place: bool = False,
    hands: list[F32] | None = None,
    earlier: Earlier | None = None,
) -> tuple[NDArray[Any] | Yuv420, F32]:
    """``composite(img, face_changes(...))``: (comp, matte (H, W) float32) of one decoded plate frame."""
    rgb = img.rgb if isinstance(img, Yuv420) else img
    comp, matte = composite(img, face_changes(rgb, faces, tracks, effect, col, hands, earlier), in_place)
    assert matte is not None
    return comp, matte
