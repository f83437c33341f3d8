"""Pure layers of a deliverable frame: a face's STMap, the premultiplied face element, and the occlusion.

STMap convention (Nuke's STMap node): plate pixel (column c, row r from the top, OpenCV pixel centres at
integers) lands at aligned crop position (xa, ya) = M_plate→aligned @ (c, r, 1); stored
u = (xa + 0.5) / R, v = 1 − (ya + 0.5) / R (origin bottom-left, pixel centres at +0.5). Plate pixels outside
the crop get u = v = 0. No I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.geometry import invert, transform

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
_UNWARP = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP  # as render.composite un-aligns the matte


def crop_box(m: F64, res: int, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Plate rectangle (x0, y0, x1, y1) covering the R×R crop of plate→aligned ``m``, clipped to ``shape``
    (H, W); None when the crop misses the plate."""
    edge = res - 0.5
    corners = transform(invert(m), np.array([[-0.5, -0.5], [edge, -0.5], [-0.5, edge], [edge, edge]], np.float64))
    h, w = shape
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 2, [w, h])
    if x1 <= x0 or y1 <= y0:
        return None
    return int(x0), int(y0), int(x1), int(y1)


def stmap(m: F64, res: int, shape: tuple[int, int]) -> F32:
    """(H, W, 2) float32 Nuke STMap (u, v) of a face: plate pixel → its position in the R×R aligned crop
    (module docstring); 0 outside the crop."""
    out = np.zeros((*shape, 2), np.float32)
    box = crop_box(m, res, shape)
    if box is None:
        return out
    x0, y0, x1, y1 = box
    cols, rows = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    xa = m[0, 0] * cols + m[0, 1] * rows + m[0, 2]
    ya = m[1, 0] * cols + m[1, 1] * rows + m[1, 2]
    u, v = (xa + 0.5) / res, 1.0 - (ya + 0.5) / res
    inside = (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
    out[y0:y1, x0:x1, 0] = np.where(inside, u, 0.0)
    out[y0:y1, x0:x1, 1] = np.where(inside, v, 0.0)
    return out


def sample_stmap(aligned: F32, uv: F32) -> F32:
    """``aligned`` (R, R[, C]) sampled at each pixel of the STMap ``uv`` (H, W, 2) as Nuke's STMap does
    (bilinear at OpenCV coords (u·R − 0.5, (1 − v)·R − 0.5)); 0 where u = v = 0 or outside the crop."""
    res = aligned.shape[0]
    x = uv[..., 0].astype(np.float64) * res - 0.5
    y = (1.0 - uv[..., 1].astype(np.float64)) * res - 0.5
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    img = aligned if aligned.ndim == 3 else aligned[..., None]
    pad = np.pad(np.asarray(img, np.float64), ((1, 1), (1, 1), (0, 0)))  # zeros outside, as the crop's edge
    at = lambda dy, dx: pad[np.clip(y0 + dy + 1, 0, res + 1), np.clip(x0 + dx + 1, 0, res + 1)]  # noqa: E731
    wx, wy = fx[..., None], fy[..., None]
    out = (at(0, 0) * (1 - wx) + at(0, 1) * wx) * (1 - wy) + (at(1, 0) * (1 - wx) + at(1, 1) * wx) * wy
    out[(uv[..., 0] == 0) & (uv[..., 1] == 0)] = 0.0
    return np.asarray(out if aligned.ndim == 3 else out[..., 0], np.float32)


def face_element(comp: F32, plate: F32, matte: F32) -> F32:
    """(H, W, 4) premultiplied face element of float code values: RGB = comp − (1 − matte)·plate, A = matte,
    so ``face over plate == comp``. ``comp``, ``plate`` (H, W, 3), ``matte`` (H, W)."""
    a = matte[..., None]
    return np.asarray(np.dstack([comp - (1.0 - a) * plate, matte]), np.float32)


def to_plate(aligned: F32, m: F64, shape: tuple[int, int]) -> F32:
    """(H, W) float32: the aligned layer ``aligned`` (R, R) un-aligned onto the plate (bilinear, as the render
    un-aligns its matte)."""
    out = np.zeros(shape, np.float32)
    box = crop_box(m, aligned.shape[0], shape)
    if box is None:
        return out
    x0, y0, x1, y1 = box
    mr = m.copy()
    mr[:, 2] = m[:, 2] + m[:, :2] @ np.array([x0, y0], np.float64)
    out[y0:y1, x0:x1] = cv2.warpAffine(np.ascontiguousarray(aligned, np.float32), mr, (x1 - x0, y1 - y0),
                                       flags=_UNWARP)  # fmt: skip
    return out


def occlusion(held: Sequence[tuple[F32 | None, F64]], shape: tuple[int, int]) -> F32:
    """(H, W) float32 occlusion layer: the max over faces of each aligned hold-out (R, R) (the part of the
    effect's matte the occluders removed; None: nothing held out) un-aligned by its plate→aligned matrix."""
    out = np.zeros(shape, np.float32)
    for layer, m in held:
        if layer is not None:
            np.maximum(out, to_plate(layer, m, shape), out=out)
    return out
