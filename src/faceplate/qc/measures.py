"""Pure per-frame QC measures on arrays (no I/O): crops, plate flow, warp errors, matte edge motion,
landmark jitter, change outside the matte, and the rule that turns frame-to-frame values into flagged frames.

Values that cannot be measured (an empty matte, no face) are ``None``: the caller flags them as failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, TypeVar

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.landmarks import MESH_POINTS

F32 = NDArray[np.float32]
T = TypeVar("T", bound=np.generic)
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (plate px, x1/y1 exclusive)
EMPTY = 1e-3  # matte weight below which a region counts as empty


def clip_box(box: NDArray[np.floating] | Sequence[float], width: int, height: int) -> Box:
    """(x0, y0, x1, y1) float box → integer box inside a ``width`` x ``height`` frame."""
    x0, y0, x1, y1 = (int(np.floor(box[0])), int(np.floor(box[1])), int(np.ceil(box[2])), int(np.ceil(box[3])))
    return max(0, x0), max(0, y0), min(width, max(x1, x0 + 1)), min(height, max(y1, y0 + 1))


def crop(img: NDArray[T], box: Box) -> NDArray[T]:
    """``img`` (H, W, ...) cut to ``box``."""
    x0, y0, x1, y1 = box
    return img[y0:y1, x0:x1]


def shrink(img: NDArray[np.generic], scale: float) -> F32:
    """``img`` (h, w[, C]) as float (:func:`unit_float`) resized by ``scale`` (<= 1): every k-th pixel to within
    2x of the size (k = the whole part of 1 / (2 scale)), then an area filter."""
    if scale >= 1.0:
        return np.ascontiguousarray(unit_float(img))
    h, w = img.shape[:2]
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    k = max(1, int(0.5 / scale))
    small = np.ascontiguousarray(unit_float(img[::k, ::k]))
    return np.asarray(cv2.resize(small, size, interpolation=cv2.INTER_AREA), np.float32)


def unit_crop(img: NDArray[np.generic], box: Box) -> F32:
    """``img`` cut to ``box`` as float (:func:`unit_float`)."""
    return unit_float(crop(img, box))


def unit_float(img: NDArray[np.generic]) -> F32:
    """uint8 / uint16 codes → float32 in [0, 1] (codes / 255 or / 65535); float input (half too) as float32."""
    if img.dtype == np.float16:  # OpenCV widens halves ~4x faster than numpy
        bits = np.ascontiguousarray(img).view(np.int16)
        return np.asarray(cv2.convertFp16(bits.reshape(bits.shape[0], -1)), np.float32).reshape(img.shape)
    if img.dtype != np.uint8 and img.dtype != np.uint16:
        return np.asarray(img, np.float32)
    out = img.astype(np.float32)
    out *= np.float32(1.0 / (255.0 if img.dtype == np.uint8 else 65535.0))
    return out


def gray8(rgb: F32) -> NDArray[np.uint8]:
    """(h, w, 3) float RGB (display-like values in [0, 1]) → (h, w) uint8 luma-ish for the flow."""
    g = cv2.cvtColor(np.clip(rgb, 0.0, 1.0), cv2.COLOR_RGB2GRAY)
    return np.asarray(g * 255.0 + 0.5, np.uint8)


def plate_flow(gray: NDArray[np.uint8], gray_prev: NDArray[np.uint8]) -> F32:
    """DIS optical flow (h, w, 2) from frame ``gray`` back to ``gray_prev``: ``prev(x + flow(x)) ≈ now(x)``.
    Both frames are stretched by the same levels first (their joint 1st-99th percentiles), so a dark,
    low-contrast face still gives the flow some texture."""
    lo, hi = np.percentile(np.concatenate([gray.ravel(), gray_prev.ravel()]), (1, 99))
    if hi - lo >= 4:
        scale = 255.0 / (hi - lo)
        gray, gray_prev = (np.asarray(cv2.convertScaleAbs(g, alpha=scale, beta=-lo * scale), np.uint8)
                           for g in (gray, gray_prev))  # fmt: skip
    dis = cv2.DISOpticalFlow.create(cv2.DISOpticalFlow_PRESET_FAST)
    h, w = gray.shape
    return np.asarray(dis.calc(gray, gray_prev, np.zeros((h, w, 2), np.float32)), np.float32)


def warp(img: F32, flow: F32) -> F32:
    """Previous frame's ``img`` (h, w[, C]) moved onto the current frame by ``flow`` (h, w, 2)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out = cv2.remap(img, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, np.float32)


def flicker(plate: F32, plate_prev: F32, comp: F32, comp_prev: F32, weight: F32, flow: F32) -> float | None:
    """Warp error of the comp minus the plate's own, weighted by ``weight`` (h, w), in 8-bit code values.

    Every image is (h, w, 3) float32 at the same (working) size; ``flow`` from :func:`plate_flow`. None when
    the weight is empty."""
    total = float(weight.sum())
    if total < EMPTY * weight.size * 1e-2:
        return None
    e_comp = np.abs(comp - warp(comp_prev, flow)).mean(axis=2)
    e_plate = np.abs(plate - warp(plate_prev, flow)).mean(axis=2)
    return 255.0 * float(((e_comp - e_plate) * weight).sum()) / total


def gradient_sum(m: F32) -> float:
    """Sum of |∇m| (central differences) over (h, w) ``m``: an edge's length times its height."""
    gy, gx = np.gradient(m)
    return float(np.hypot(gx, gy).sum())


def matte_edge_motion(matte: F32, matte_prev: F32, flow: F32) -> float | None:
    """How far the matte's edges moved against the plate's ``flow`` (working px): Σ|m − warp(m_prev)| over
    the mean Σ|∇m| of both frames (a matte shifted by d px across its edges reads d). None when neither frame
    has an edge."""
    moved = warp(matte_prev, flow)
    edge = 0.5 * (gradient_sum(matte) + gradient_sum(moved))
    if edge < 1.0:
        return None
    return float(np.abs(matte - moved).sum()) / edge


def matte_slide(matte: F32, matte_prev: F32, flow: F32) -> float | None:
    """How far the whole matte slid against the plate's ``flow`` (working px): the shift phase correlation
    finds between ``matte`` and the previous matte moved by the flow (a matte shifted by d px reads ~0.85-1 d; a mouth
    opening or a hold-out changing shape reads little). None when neither frame has an edge."""
    moved = warp(matte_prev, flow)
    if 0.5 * (gradient_sum(matte) + gradient_sum(moved)) < 1.0:
        return None
    window = cv2.createHanningWindow((matte.shape[1], matte.shape[0]), cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(np.ascontiguousarray(moved), np.ascontiguousarray(matte), window)
    return float(np.hypot(dx, dy))


def landmark_jitter(out: F32, out_prev: F32, plate: F32, plate_prev: F32, iod: float) -> float:
    """Mean extra motion of the output's mesh points against the plate's from the previous frame, % of
    ``iod``. Landmarks (478, >=2) in plate px, the output's and the plate's measured the same way."""
    d = (out[:MESH_POINTS, :2] - out_prev[:MESH_POINTS, :2]) - (plate[:MESH_POINTS, :2] - plate_prev[:MESH_POINTS, :2])
    return 100.0 * float(np.linalg.norm(d, axis=1).mean()) / max(iod, 1e-6)


def channel_max_absdiff(a: F32, b: F32) -> F32:
    """max over channels of |a − b| for (h, w, 3) float32 crops → (h, w)."""
    return np.asarray(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).max(axis=2), np.float32)


def outside_matte(plate: F32, comp: F32, matte: F32, tolerance: float) -> int:
    """Pixels where the (H, W) ``matte`` is 0 but ``comp`` differs from ``plate`` (both float (H, W, C), C = 3,
    or 4 with the 4th ignored: same C) by more than ``tolerance`` 8-bit code values, summed over R, G, B."""
    d = cv2.absdiff(np.ascontiguousarray(plate, np.float32), np.ascontiguousarray(comp, np.float32))
    total = cv2.transform(d, _rgb_weights(d.shape[2]))
    moved = cv2.compare(total, np.full_like(total, tolerance / 255.0), cv2.CMP_GT)
    return int(cv2.countNonZero(cv2.bitwise_and(moved, _off(matte))))


def _rgb_weights(channels: int) -> NDArray[np.float32]:
    return np.array([[1.0, 1.0, 1.0, 0.0][:channels]], np.float32)


def _off(matte: NDArray[Any]) -> NDArray[np.uint8]:
    """(H, W) uint8 mask (255) of a matte's pixels <= 0 (half floats compared by their bits: x <= 0 exactly
    where the signed 16-bit pattern is <= 0)."""
    a = matte.view(np.int16) if matte.dtype == np.float16 else matte
    return np.asarray(cv2.compare(np.ascontiguousarray(a), np.zeros(a.shape, a.dtype), cv2.CMP_LE), np.uint8)


@cache
def _lut(kind: str) -> NDArray[Any]:
    """8-bit codes → the same values as 16-bit codes (x 257) or as half-float bit patterns."""
    codes = np.arange(256)
    if kind == "uint16":
        return (codes * 257).astype(np.uint16).reshape(1, 256)
    return (codes / 255.0).astype(np.float16).view(np.int16).reshape(1, 256)


def _half_differs(plate_bits: NDArray[Any], comp: NDArray[Any]) -> NDArray[np.uint8]:
    """(H, W) uint8 mask (non-zero) of pixels whose R, G or B half-float bits differ between ``plate_bits``
    (int16) and the half ``comp`` (H, W, 3 or 4): channels compared by OpenCV, then each pixel's channel
    results read as one word with the alpha byte masked off."""
    h, w, c = comp.shape
    ne = cv2.compare(np.ascontiguousarray(plate_bits).reshape(h, w * c), comp.view(np.int16).reshape(h, w * c),
                     cv2.CMP_NE)  # fmt: skip
    if c != 4:
        return np.asarray(cv2.transform(ne.reshape(h, w, c), _rgb_weights(c)), np.uint8)
    words = np.ascontiguousarray(ne).view(np.int32)  # (H, W): the 4 channel bytes of a pixel
    rgb = cv2.bitwise_and(words, np.full(words.shape, 0x00FFFFFF, np.int32))  # R, G, B bytes (little endian)
    return np.asarray(cv2.compare(rgb, np.zeros(words.shape, np.int32), cv2.CMP_NE), np.uint8)


def outside_matte_codes(plate: NDArray[Any], comp: NDArray[Any], matte: NDArray[Any],
                        tolerance: float) -> int:  # fmt: skip
    """:func:`outside_matte` on frames as decoded: ``plate`` (H, W, 3) uint8 / uint16 / float32 codes, ``comp``
    (H, W, 3 or 4) uint8 / uint16 / half / float32, ``matte`` (H, W) in the comp's type. An 8-bit plate is
    compared in the comp's own codes (x 257 for 16-bit, half bit patterns: only differing pixels are converted),
    so no full frame goes to float; other pairs go through :func:`outside_matte`."""
    if comp.shape[2] == 4:
        plate = cv2.cvtColor(plate, cv2.COLOR_RGB2RGBA)
    if plate.dtype == np.uint8 and comp.dtype in (np.uint8, np.uint16):
        p = plate if comp.dtype == np.uint8 else cv2.LUT(plate, _lut("uint16"))
        peak = 255.0 if comp.dtype == np.uint8 else 65535.0
        total = cv2.transform(cv2.absdiff(p, comp), _rgb_weights(comp.shape[2]))  # saturates: fine for a threshold
        moved = cv2.compare(total, np.full(total.shape, tolerance / 255.0 * peak, np.float32).astype(total.dtype),
                            cv2.CMP_GT)  # fmt: skip
        return int(cv2.countNonZero(cv2.bitwise_and(moved, _off(matte))))
    if plate.dtype == np.uint8 and comp.dtype == np.float16 and comp.flags.c_contiguous:
        candidates = cv2.bitwise_and(_half_differs(cv2.LUT(plate, _lut("half")), comp), _off(matte))
        if not cv2.countNonZero(candidates):
            return 0
        ys, xs = np.nonzero(candidates)
        d = np.abs(unit_float(plate[ys, xs, :3]) - comp[ys, xs, :3].astype(np.float32)).sum(axis=1)
        return int(np.count_nonzero(~(d <= tolerance / 255.0)))  # NaN counts as changed
    return outside_matte(unit_float(plate), unit_float(comp), unit_float(matte), tolerance)


def nonfinite(img: NDArray[np.generic]) -> int:
    """Pixels of (H, W[, C]) ``img`` with a NaN or Inf value (0 for integer codes; half floats by their bit
    patterns, float32 after a finite sum: the common cases are cheap)."""
    if img.dtype.kind != "f":
        return 0
    if img.dtype == np.float16:  # Inf / NaN: all exponent bits set
        if int(np.bitwise_and(np.ascontiguousarray(img).view(np.uint16), np.uint16(0x7FFF)).max()) < 0x7C00:
            return 0
    elif np.isfinite(img.sum()):
        return 0
    bad = ~np.isfinite(img)
    return int(np.count_nonzero(bad.any(axis=2) if bad.ndim == 3 else bad))


def not_rendered(plate: F32, comp: F32, matte: F32, tolerance: float) -> str | None:
    """Why a face region (crops (h, w, 3), (h, w)) shows no render: ``"empty matte"``, ``"comp = plate"``,
    or None when it was rendered."""
    if matte.size == 0 or float(matte.max()) < EMPTY:
        return "empty matte"
    if float(channel_max_absdiff(plate, comp).max()) <= tolerance / 255.0:
        return "comp = plate"
    return None


def localise(steps: Sequence[float | None], threshold: float) -> list[bool]:
    """Flagged frames from frame-to-frame values (``steps[i]``: the change from frame i-1 into frame i;
    ``steps[0]`` and unmeasured ones None).

    A frame with a large step in *and* out of it is the bad one (a one-frame glitch: only it is flagged, not
    its neighbours); a large step not explained that way (a pop that stays) flags the frame it lands on.
    """
    n = len(steps)
    high = [s is not None and s > threshold for s in steps]
    bad = [high[i] and i + 1 < n and high[i + 1] for i in range(n)]
    for i in range(n):
        explained = bad[i] or (i > 0 and bad[i - 1])
        if high[i] and not explained:
            bad[i] = True
    return bad
