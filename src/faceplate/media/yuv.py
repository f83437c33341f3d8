"""8-bit 4:2:0 video frames kept as decoded (I420 planes), and changes added to them in place (pure ops).

For 8-bit video in and out, the comp never has to leave Y'CbCr: the effect works on an RGB crop, its
change is turned into a Y'CbCr change with the (linear) Rec.709 matrix and added to the planes, and the
planes go straight to the encoder. That skips a full-frame RGB → Y'CbCr conversion per frame, and pixels
outside the change are exactly the decoded ones (the RGB path rounds them through RGB and back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.rec709 import YCBCR_LIMITED

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]

YCBCR709_LIMITED = YCBCR_LIMITED  # full-range R'G'B' code-value change → limited-range Y'CbCr change


@dataclass(frozen=True)
class Yuv420:
    """One decoded 8-bit 4:2:0 frame: ``data`` (H·3/2, W) uint8, FFmpeg's I420 layout (Y, then U, then V),
    Rec.709 matrix, limited range. ``rgb`` is the same frame as full-range RGB (H, W, 3) uint8 for the
    effects to read; changes go to ``data`` only."""

    data: U8
    rgb: U8

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the picture."""
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])

    def planes(self) -> tuple[U8, U8, U8]:
        """Views (H, W), (H/2, W/2), (H/2, W/2) of Y, U (Cb), V (Cr)."""
        h, w = self.size
        q = h * w // 4
        flat = self.data.reshape(-1)
        y = flat[: h * w].reshape(h, w)
        u = flat[h * w : h * w + q].reshape(h // 2, w // 2)
        v = flat[h * w + q : h * w + 2 * q].reshape(h // 2, w // 2)
        return y, u, v


def add_rgb_change(frame: Yuv420, change: NDArray[Any], x0: int, y0: int) -> None:
    """Add ``change`` (h, w, 3) float32 full-range RGB code values (0-255 scale) at column ``x0``, row ``y0``.

    ``x0``, ``y0``, ``w`` and ``h`` must be even (whole chroma samples). Luma gets the change per pixel,
    chroma its 2x2 mean; values are rounded and saturated. Where the change is 0 the planes are untouched.
    """
    h, w = change.shape[:2]
    if x0 % 2 or y0 % 2 or h % 2 or w % 2:
        raise ValueError(f"a 4:2:0 change needs an even origin and size, got ({x0}, {y0}) {w}x{h}")
    change = np.ascontiguousarray(change, np.float32)
    py, pu, pv = frame.planes()
    _add(py[y0 : y0 + h, x0 : x0 + w], cv2.transform(change, YCBCR709_LIMITED[:1]))
    half = cv2.resize(change, (w // 2, h // 2), interpolation=cv2.INTER_AREA)  # 2x2 means (the matrix is linear)
    cb, cr = cv2.split(cv2.transform(half, YCBCR709_LIMITED[1:]))
    cy, cx = y0 // 2, x0 // 2
    _add(pu[cy : cy + h // 2, cx : cx + w // 2], cb)
    _add(pv[cy : cy + h // 2, cx : cx + w // 2], cr)


def _add(plane: U8, delta: NDArray[Any]) -> None:
    """``plane += round(delta)`` (float32 delta), saturated to 0-255, in place (``plane`` is a view into the frame)."""
    plane[:] = cv2.add(plane, delta, dtype=cv2.CV_8U)


def to_rgb(frame: Yuv420) -> U8:
    """Full-range RGB (H, W, 3) uint8 of the planes (for tests and previews; the decoder's own RGB is used
    when rendering)."""
    h, w = frame.size
    y, u, v = (p.astype(np.float32) for p in frame.planes())
    up = (cv2.resize(np.dstack([u, v]), (w, h), interpolation=cv2.INTER_LINEAR) - 128.0).reshape(-1, 2)
    ycc = np.concatenate([(y.reshape(-1, 1) - 16.0), up], axis=1).reshape(h, w, 3)
    rgb = cv2.transform(np.ascontiguousarray(ycc, np.float32), np.linalg.inv(YCBCR709_LIMITED).astype(np.float32))
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
