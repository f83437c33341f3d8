"""Head pose (yaw, pitch, roll) from the 478 landmarks and faceplate's mean 3-D face."""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np
from numpy.typing import NDArray

from faceplate.align import ALIGN_POINTS
from faceplate.geometry import similarity_3d

#: Rigid points for pose: the alignment set plus cheeks, chin and forehead (they pin down yaw and pitch).
POSE_POINTS = np.concatenate([ALIGN_POINTS, [234, 454, 152, 10, 93, 323]])


@cache
def template_3d() -> NDArray[np.float32]:
    """Mean 3-D face (478, 3): x right, y down, z away from the camera, eye distance 1 (tools/make_template.py)."""
    with resources.files("faceplate.data").joinpath("mean_face3d.npy").open("rb") as f:
        t: NDArray[np.float32] = np.load(f, allow_pickle=False)
    return t


def head_pose(landmarks: NDArray[np.floating]) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a face's landmarks (478, 3; z in the same units as x).

    yaw > 0: the face turns towards image right; pitch > 0: it looks down; roll > 0: clockwise in the image.
    """
    _, r, _ = similarity_3d(template_3d()[POSE_POINTS], np.asarray(landmarks)[POSE_POINTS])
    yaw = np.degrees(np.arctan2(r[0, 2], r[2, 2]))
    pitch = np.degrees(np.arcsin(np.clip(-r[1, 2], -1.0, 1.0)))
    roll = np.degrees(np.arctan2(r[1, 0], r[1, 1]))
    return float(yaw), float(pitch), float(roll)
