"""Training-sample augmentation for swap models (pure numpy/OpenCV, explicit random generator).

A sample is the aligned face at model resolution: ``target`` (what the decoder must produce) and
``input`` (the target seen through a random grid warp, as DeepFaceLab does: the autoencoder must learn the
face, not copy pixels), plus the face mask and the eyes/mouth priority mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.geometry import transform
from faceplate.ops.filters import gauss
from faceplate.ops.regions import dilate, eye_distance, polygon_mask, region_mask

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class Augment:
    rotate: float = 10.0  # degrees, ±
    scale: float = 0.05  # ±
    shift: float = 0.05  # ± share of the size
    flip: bool = True
    warp: float = 0.04  # grid-warp displacement, share of the size (0: off)
    jitter: float = 0.05  # brightness / contrast / saturation jitter, ±


@dataclass(frozen=True)
class Sample:
    input: F32  # (R, R, 3) warped
    target: F32  # (R, R, 3)
    mask: F32  # (R, R) face area
    priority: F32  # (R, R) eyes and mouth


def face_mask(lm: NDArray[np.floating], res: int) -> F32:
    """The face oval (landmarks in crop pixels), softened by ~1% of the size: the area a swap replaces."""
    from faceplate.ops.regions import mesh_regions

    hull = polygon_mask((res, res), np.asarray(lm)[mesh_regions()["oval"], :2], hull=False)
    return np.clip(gauss(hull, 0.01 * res), 0, 1)


def priority_mask(lm: NDArray[np.floating], res: int) -> F32:
    """Eyes and mouth, grown a little: where identity and expression live."""
    m = np.zeros((res, res), np.float32)
    for name in ("eye_r", "eye_l", "lips"):
        m = np.maximum(m, region_mask(lm, (res, res), name))
    return dilate(m, 0.06 * eye_distance(lm))


def _grid_warp(rng: np.random.Generator, img: F32, amount: float) -> F32:
    res = img.shape[0]
    cells = 5
    offsets = rng.normal(0.0, amount * res, size=(2, cells, cells)).astype(np.float32)
    offsets[:, [0, -1], :] = 0  # the border stays put
    offsets[:, :, [0, -1]] = 0
    dx, dy = (cv2.resize(o, (res, res), interpolation=cv2.INTER_CUBIC) for o in offsets)
    xs, ys = np.meshgrid(np.arange(res, dtype=np.float32), np.arange(res, dtype=np.float32))
    return np.asarray(cv2.remap(img, xs + dx, ys + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT), np.float32)


def sample(rng: np.random.Generator, img: NDArray[np.uint8], lm: NDArray[np.floating], res: int, a: Augment) -> Sample:
    """One augmented training sample from a faceset crop ``img`` (S, S, 3) with landmarks ``lm`` (in its pixels)."""
    s = img.shape[0]
    angle = rng.uniform(-a.rotate, a.rotate)
    scale = (res / s) * (1 + rng.uniform(-a.scale, a.scale))
    m = np.asarray(cv2.getRotationMatrix2D(((s - 1) / 2, (s - 1) / 2), angle, scale), np.float64)
    m[:, 2] += (res - s) / 2 + rng.uniform(-a.shift, a.shift, 2) * res
    if a.flip and rng.random() < 0.5:
        m = np.array([[-1.0, 0.0, res - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([m, [0, 0, 1]])
    target = cv2.warpAffine(img, m, (res, res), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT).astype(np.float32) / 255.0  # fmt: skip
    points = transform(m, np.asarray(lm)[:, :2])
    if a.jitter > 0:
        j = rng.uniform(-a.jitter, a.jitter, 3)  # brightness, contrast, saturation
        x = (target + j[0]) * (1 + j[1])
        grey = x.mean(axis=2, keepdims=True)
        target = np.clip(grey + (x - grey) * (1 + j[2]), 0, 1).astype(np.float32)
    warped = _grid_warp(rng, target, a.warp) if a.warp > 0 else target
    return Sample(warped, target, face_mask(points, res), priority_mask(points, res))
