"""Face-locked coordinates of an aligned crop (pure op on landmarks)."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.align import template_in_crop

F32 = NDArray[np.float32]


def face_coords(lm: NDArray[np.floating], res: int, ftype: str, grid: int = 32, sigma: float = 0.06) -> F32:
    """Face-locked coordinates (2, res, res) in [-1, 1] (x, y; grid_sample's convention) of an aligned crop.

    ``lm`` (478, >=2) are the face's landmarks in crop pixels. Each pixel gets the place on the template
    face that it shows: the landmarks' offsets from the template, spread over the crop by a normalised
    Gaussian (``sigma`` of ``res``) that fades to no offset away from the face. Through a smile or a frown
    the under-eye keeps its coordinates, where plain crop coordinates slide over the face.
    """
    lm = np.asarray(lm, np.float32)[:, :2]
    offsets = template_in_crop(res, ftype).astype(np.float32) - lm
    g = (np.arange(grid, dtype=np.float32) + 0.5) / grid * res - 0.5
    cells = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    d2 = (cells**2).sum(1)[:, None] - 2 * cells @ lm.T + (lm**2).sum(1)[None]
    w = np.exp(d2 * np.float32(-0.5 / (sigma * res) ** 2))
    field = (w @ offsets / (w.sum(1, keepdims=True) + 1.0)).reshape(grid, grid, 2)
    field = cv2.resize(field, (res, res), interpolation=cv2.INTER_LINEAR)
    px = np.stack(np.meshgrid(np.arange(res), np.arange(res)), -1).astype(np.float32)
    return np.ascontiguousarray(((px + field + 0.5) / res * 2 - 1).transpose(2, 0, 1), np.float32)
