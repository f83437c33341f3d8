"""Alignment to faceplate's canonical face (pure image ops, no I/O).

A similarity transform maps the stable landmarks (eyes, brows, nose, mouth corners; not the jaw, which
moves with speech) onto the canonical template, so an aligned crop keeps the face upright at a fixed
place and scale. Face types choose how much around the face the square crop holds:

* ``face``: brows to chin, cheek to cheek (DeepFaceLab's "full face").
* ``whole_face``: the whole face including forehead and jaw line, the usual choice for swaps/retouch.
* ``head``: the whole head with hair and some neck.

The template has the eye centres at (-0.5, 0) and (0.5, 0) (unit = inter-ocular distance, y down).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.errors import ConfigError
from faceplate.geometry import F64, invert, transform, umeyama
from faceplate.landmarks import ALIGN_POINTS
from faceplate.media import colour
from faceplate.ops.filters import fill_nonfinite

FaceType = Literal["face", "whole_face", "head"]


@dataclass(frozen=True)
class FaceTypeSpec:
    """Crop square in template units: centre (x, y) and side length."""

    cx: float
    cy: float
    size: float


FACE_TYPES: dict[str, FaceTypeSpec] = {
    "face": FaceTypeSpec(0.0, 0.72, 2.6),
    "whole_face": FaceTypeSpec(0.0, 0.45, 3.4),
    "head": FaceTypeSpec(0.0, 0.3, 4.8),
}


def face_type(name: str) -> FaceTypeSpec:
    try:
        return FACE_TYPES[name]
    except KeyError:
        raise ConfigError(f"unknown face type {name!r}; valid: {', '.join(FACE_TYPES)}") from None


@cache
def template() -> NDArray[np.float32]:
    """Canonical 2-D face (478, 2) float32 in template units (built by tools/make_template.py)."""
    with resources.files("faceplate.data").joinpath("mean_face.npy").open("rb") as f:
        t: NDArray[np.float32] = np.load(f, allow_pickle=False)
    return t


def template_in_crop(res: int, ftype: str) -> NDArray[np.float64]:
    """Template points (478, 2) in the pixels of a ``res`` x ``res`` crop of face type ``ftype``."""
    spec = face_type(ftype)
    t = template().astype(np.float64)
    return (t - [spec.cx, spec.cy]) / spec.size * res + res / 2.0 - 0.5


def align_matrix(landmarks: NDArray[np.floating], res: int, ftype: str = "whole_face") -> F64:
    """2x3 map from plate pixels to the aligned ``res`` crop, fitted on ALIGN_POINTS of (478, >=2) landmarks."""
    return umeyama(np.asarray(landmarks)[ALIGN_POINTS, :2], template_in_crop(res, ftype)[ALIGN_POINTS])


def align_image(img: NDArray[Any], m: F64, res: int, interpolation: int = cv2.INTER_CUBIC) -> NDArray[Any]:
    """Aligned crop (res, res, C) of plate image (H, W, C); areas outside the plate are black.

    When the crop is smaller than the face on the plate, the plate is pre-filtered (area-averaged via a
    pyramid) so the crop does not alias.
    """
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    src, mm = img, m.copy()
    if scale < 0.5:  # only the plate area under the crop goes through the pyramid
        corners = transform(invert(m), np.array([[0.0, 0.0], [res, 0.0], [0.0, res], [res, res]]))
        pad = 8 / scale
        h, w = img.shape[:2]
        x0, y0 = np.clip(np.floor(corners.min(0) - pad).astype(int), 0, [w, h])
        x1, y1 = np.clip(np.ceil(corners.max(0) + pad).astype(int), 0, [w, h])
        if x1 - x0 < 2 or y1 - y0 < 2:
            return np.zeros((res, res, *img.shape[2:]), img.dtype)
        src = img[y0:y1, x0:x1]
        mm[:, 2] = m[:, 2] + m[:, :2] @ np.array([x0, y0], np.float64)
    while scale < 0.5 and min(src.shape[:2]) > 64:
        src = cv2.pyrDown(src)  # pixel q of the result sits at 2q on its input
        mm[:, :2] *= 2.0
        scale *= 2.0
    out: NDArray[Any] = cv2.warpAffine(src, mm, (res, res), flags=interpolation, borderMode=cv2.BORDER_CONSTANT)
    return out


def plate_crop(img: NDArray[Any], m: F64, res: int) -> NDArray[np.float32]:
    """The (res, res, 3) float32 crop of a plate frame as decoded (uint8, uint16 or float32 RGB (H, W, 3)) by
    the plate→crop matrix ``m``, bilinear, its non-finite pixels filled from their neighbours."""
    crop = colour.to_float(align_image(img, m, res, cv2.INTER_LINEAR))
    return fill_nonfinite(crop) if not np.isfinite(crop).all() else crop


def unalign_image(
    crop: NDArray[Any], m: F64, size: tuple[int, int], interpolation: int = cv2.INTER_CUBIC
) -> NDArray[Any]:
    """Put an aligned crop back on the plate: (h, w) = ``size``; pixels the crop does not cover are 0."""
    h, w = size
    return cv2.warpAffine(crop, m, (w, h), flags=interpolation | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)


def to_aligned(m: F64, pts: NDArray[np.floating]) -> NDArray[np.floating]:
    """Plate points → aligned-crop points."""
    return transform(m, pts)


def to_plate(m: F64, pts: NDArray[np.floating]) -> NDArray[np.floating]:
    """Aligned-crop points → plate points."""
    return transform(invert(m), pts)
