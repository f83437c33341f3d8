"""Per-frame face analysis: detection (registry) and 478-point landmarks at plate resolution."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.analysis.mp_graphs import FullRangeDetector, MeshLandmarker
from faceplate.geometry import Roi, box_of, invert, iou, roi_from_points, transform
from faceplate.landmarks import EYE_INNER_L, EYE_INNER_R, EYE_OUTER_L, EYE_OUTER_R, MESH_POINTS
from faceplate.registry import Registry

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]

# MediaPipe mesh indices used throughout (subject's right = image left on a frontal face).
NOSE_TIP, NOSE_BOTTOM, CHIN = 1, 2, 152
MOUTH_R, MOUTH_L = 61, 291
N_LANDMARKS = 478
LANDMARK_INPUT = 192  # the mesh model's input size; crops are cut at this size from the plate
ROI_SCALE = 1.5  # as MediaPipe's own face-mesh pipeline
DETECT_SIZE = 384  # detector input long side: 2x the model's 192 px, so its own resize does not alias


@dataclass(frozen=True)
class Detection:
    """A detected face in plate pixels: box (x0, y0, x1, y1), 6 keypoints (6, 2), score in [0, 1]."""

    box: NDArray[np.float64]
    keypoints: NDArray[np.float64]
    score: float

    def roi(self) -> Roi:
        """Landmark ROI: the box enlarged 1.5x, squared, rotated by the eye keypoints."""
        (x0, y0, x1, y1), kp = self.box, self.keypoints
        v = kp[1] - kp[0]
        size = max(x1 - x0, y1 - y0) * ROI_SCALE
        return Roi(float(x0 + x1) / 2, float(y0 + y1) / 2, float(size), float(np.arctan2(v[1], v[0])))


Detector = Callable[[U8], list[Detection]]
DETECTORS: Registry[Callable[[int, float], Detector]] = Registry("detector")


def _tiles(h: int, w: int, grid: int) -> list[tuple[int, int, int, int]]:
    """Whole frame plus, for ``grid`` > 1, a grid x grid set of overlapping tiles (x, y, tw, th)."""
    out = [(0, 0, w, h)]
    if grid > 1:
        tw, th = int(w * 2 / (grid + 1)), int(h * 2 / (grid + 1))
        for gy in range(grid):
            for gx in range(grid):
                out.append((gx * (w - tw) // (grid - 1), gy * (h - th) // (grid - 1), tw, th))
    return out


def shrink(rgb: U8, size: int) -> U8:
    """Downscale uint8 (H, W, C) so its long side is at most ``size``, anti-aliased but cheap.

    A nearest-neighbour step to <= 2x the target, then an area average (the area filter alone reads every
    pixel of a 4K frame, ~4x slower).
    """
    h, w = rgb.shape[:2]
    f = size / max(h, w)
    if f >= 1.0:
        return rgb
    if f < 0.5:
        rgb = np.asarray(
            cv2.resize(rgb, (round(w * 2 * f), round(h * 2 * f)), interpolation=cv2.INTER_NEAREST), np.uint8
        )
    return np.asarray(cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA))


def _nms(dets: list[Detection], thr: float = 0.4) -> list[Detection]:
    keep: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.score):
        if all(iou(d.box, k.box) < thr for k in keep):
            keep.append(d)
    return keep


@DETECTORS.register("mediapipe")
def mediapipe_detector(tiles: int = 1, min_score: float = 0.5) -> Detector:
    """MediaPipe full-range BlazeFace on the frame (downscaled to DETECT_SIZE) and optional tiles."""
    net = FullRangeDetector()

    def detect(rgb: U8) -> list[Detection]:
        h, w = rgb.shape[:2]
        found: list[Detection] = []
        for x, y, tw, th in _tiles(h, w, tiles):
            tile = shrink(rgb[y : y + th, x : x + tw], DETECT_SIZE)
            for score, box, kps in net(tile):
                if score < min_score:
                    continue
                scale = np.array([tw, th], np.float64)
                b = box.astype(np.float64).reshape(2, 2) * scale + (x, y) - 0.5
                k = kps.astype(np.float64) * scale + (x, y) - 0.5
                found.append(Detection(b.reshape(4), k, score))
        return _nms(found)

    return detect


class Landmarker:
    """478 landmarks in plate pixels from a ROI, via a 192 px upright crop cut from the full-res frame."""

    def __init__(self) -> None:
        self._net = MeshLandmarker()

    def __call__(self, rgb: U8, roi: Roi) -> F32 | None:
        """Landmarks (478, 3) float32 in plate pixels (z in pixels, relative), or None when no face."""
        m = roi.matrix(LANDMARK_INPUT)
        size = (LANDMARK_INPUT, LANDMARK_INPUT)
        crop = np.asarray(cv2.warpAffine(rgb, m, size, flags=cv2.INTER_LINEAR), dtype=np.uint8)
        lm = self._net(crop)
        if lm is None:
            return None
        lm[:, :2] = lm[:, :2] * LANDMARK_INPUT - 0.5
        lm[:, 2] *= LANDMARK_INPUT
        return transform(invert(m), lm).astype(np.float32)

    def close(self) -> None:
        self._net.close()


def roi_from_landmarks(lm: F32) -> Roi:
    """Next-frame ROI from this frame's landmarks (MediaPipe's tracking rule)."""
    return roi_from_points(lm[:MESH_POINTS], EYE_OUTER_R, EYE_OUTER_L, ROI_SCALE)


def landmark_box(lm: F32) -> NDArray[np.float64]:
    return box_of(lm[:MESH_POINTS])


def interocular(lm: NDArray[np.floating]) -> float:
    """Distance between the two eye centres (mean of each eye's corners), in the landmarks' units."""
    r = (lm[EYE_OUTER_R, :2] + lm[EYE_INNER_R, :2]) / 2
    left = (lm[EYE_OUTER_L, :2] + lm[EYE_INNER_L, :2]) / 2
    return float(np.linalg.norm(left - r))
