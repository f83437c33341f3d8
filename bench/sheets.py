"""Before/after contact sheets for benches: plate | result | x8 absolute difference | matte, each panel labelled.

    from sheets import crop_box, sheet, stack, write_png
    row = sheet(plate_rgb, result_rgb, matte, "fr_obama.jpg --years 20")  # -> uint8 RGB (H, W, 3)
    write_png("bench/_work/sheets/obama.png", stack([row, ...]))

Inputs are same-sized crops: ``plate_rgb`` and ``result_rgb`` uint8 RGB (H, W, 3) (or float in [0, 1]),
``matte`` (H, W) float in [0, 1] or uint8 / uint16. Every panel is scaled to ``size`` px on its longer side.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

U8 = NDArray[np.uint8]
BAR = 26  # label bar height, px
GAIN = 8  # difference panel gain


def _u8(img: NDArray) -> U8:
    a = np.asarray(img)
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return (a.astype(np.float32) / 257.0).round().astype(np.uint8)
    return (np.clip(a.astype(np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)


def _rgb(img: NDArray) -> U8:
    a = _u8(img)
    return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a[..., :3]


def _label(panel: U8, text: str) -> U8:
    bar = np.full((BAR, panel.shape[1], 3), 24, np.uint8)
    scale = 0.5
    while scale > 0.3 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > panel.shape[1] - 8:
        scale -= 0.05
    cv2.putText(bar, text, (4, BAR - 8), cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), 1, cv2.LINE_AA)
    return np.concatenate([bar, panel], axis=0)


def _fit(img: U8, size: int) -> U8:
    h, w = img.shape[:2]
    k = size / max(h, w)
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(img, (max(1, round(w * k)), max(1, round(h * k))), interpolation=interp), np.uint8)


def sheet(plate_rgb: NDArray, result_rgb: NDArray, matte: NDArray, label: str, size: int = 400) -> U8:
    """One labelled row: plate | result | x8 |result - plate| | matte (uint8 RGB). ``label`` heads the row."""
    p, r, m = _rgb(plate_rgb), _rgb(result_rgb), _rgb(matte)
    if not (p.shape == r.shape and p.shape[:2] == m.shape[:2]):
        raise ValueError(f"sheet panels differ in size: {p.shape}, {r.shape}, {m.shape}")
    diff = np.clip(np.abs(r.astype(np.int16) - p.astype(np.int16)) * GAIN, 0, 255).astype(np.uint8)
    names = ("plate", "result", f"x{GAIN} |result - plate|", "matte")
    panels = [_label(_fit(a, size), n) for a, n in zip((p, r, diff, m), names, strict=True)]
    gap = np.full((panels[0].shape[0], 4, 3), 255, np.uint8)
    row = np.concatenate([x for pn in panels for x in (pn, gap)][:-1], axis=1)
    return _label(row, label)


def stack(rows: Sequence[U8]) -> U8:
    """Rows (from :func:`sheet`) one under another, padded to the widest, with a white gap between."""
    w = max(r.shape[1] for r in rows)
    out = []
    for r in rows:
        pad = np.full((r.shape[0], w - r.shape[1], 3), 255, np.uint8)
        out += [np.concatenate([r, pad], axis=1), np.full((6, w, 3), 255, np.uint8)]
    return np.concatenate(out[:-1], axis=0)


def crop_box(box: Sequence[float], shape: Sequence[int], scale: float = 2.0) -> tuple[int, int, int, int]:
    """A square ``scale`` times the longer side of ``box`` (x0, y0, x1, y1) around its centre, clipped to an
    image of ``shape`` (H, W, ...): (x0, y0, x1, y1) integer pixels."""
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, scale * max(x1 - x0, y1 - y0) / 2
    h, w = int(shape[0]), int(shape[1])
    return (
        max(0, int(cx - half)),
        max(0, int(cy - half)),
        min(w, int(np.ceil(cx + half))),
        min(h, int(np.ceil(cy + half))),
    )


def write_png(path: str | Path, rgb: U8) -> Path:
    """Write a uint8 RGB image as PNG (folders created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(p), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {p}")
    return p
