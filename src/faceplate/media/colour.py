"""Colour management with OpenColorIO (pure array ops; the config is an explicit object)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import PyOpenColorIO as ocio
from numpy.typing import NDArray

from faceplate.errors import ConfigError

#: Where faces are analysed: 8-bit sRGB-encoded Rec.709, what the detectors were trained on.
ANALYSIS_SPACE = "sRGB Encoded Rec.709 (sRGB)"
LINEAR_709 = "Linear Rec.709 (sRGB)"
VIDEO_709 = "Gamma 2.4 Encoded Rec.709"

#: Short names artists type on the command line → colour spaces of OCIO's built-in CG config.
ALIASES = {
    "linear": LINEAR_709,
    "lin_rec709": LINEAR_709,
    "srgb": ANALYSIS_SPACE,
    "rec709": VIDEO_709,
    "acescg": "ACEScg",
    "aces": "ACES2065-1",
    "acescct": "ACEScct",
    "raw": "Raw",
}

#: Encoded (display-like) spaces that detectors can look at directly, without a conversion.
_DISPLAY_LIKE = {
    ANALYSIS_SPACE,
    VIDEO_709,
    "Gamma 2.2 Encoded Rec.709",
    "Gamma 1.8 Encoded Rec.709",
    "Raw",
}


def load_config(path: str | None = None) -> ocio.Config:
    """OCIO config from ``path``, else ``$OCIO``, else OCIO's built-in CG config (works offline)."""
    path = path or os.environ.get("OCIO")
    try:
        if path:
            return ocio.Config.CreateFromFile(path)
        return ocio.Config.CreateFromBuiltinConfig("cg-config-latest")
    except ocio.Exception as err:
        raise ConfigError(f"cannot load OCIO config {path or 'cg-config-latest'}: {err}") from None


def resolve(name: str, config: ocio.Config | None = None) -> str:
    """Canonical colour-space name for ``name`` (alias or any name in the config)."""
    full = ALIASES.get(name.lower(), name)
    cfg = config or load_config()
    if cfg.getColorSpace(full) is None:
        valid = ", ".join(sorted(ALIASES))
        raise ConfigError(f"unknown colour space {name!r}; use one of {valid} or a name from the OCIO config")
    return str(cfg.getColorSpace(full).getName())


def converter(src: str, dst: str, config: ocio.Config | None = None) -> Callable[[NDArray[np.float32]], None]:
    """In-place converter for float32 RGB arrays of shape (..., 3) from ``src`` to ``dst``."""
    if src == dst:
        return lambda rgb: None
    cfg = config or load_config()
    cpu = cfg.getProcessor(src, dst).getDefaultCPUProcessor()

    def apply(rgb: NDArray[np.float32]) -> None:
        if not (rgb.flags.c_contiguous and rgb.dtype == np.float32):
            raise ValueError("OCIO conversion needs a C-contiguous float32 array")
        cpu.applyRGB(rgb)

    return apply


def is_display_like(colorspace: str) -> bool:
    """True when values in ``colorspace`` can be shown (and analysed) without a conversion."""
    return colorspace in _DISPLAY_LIKE


def to_float(px: NDArray[Any]) -> NDArray[np.float32]:
    """uint8 / uint16 code values → float32 in [0, 1]; float input is returned as float32."""
    if px.dtype == np.uint8:
        return np.multiply(px, np.float32(1.0 / 255.0), dtype=np.float32)
    if px.dtype == np.uint16:
        return np.multiply(px, np.float32(1.0 / 65535.0), dtype=np.float32)
    return np.asarray(px, np.float32)


def quantize(rgb: NDArray[np.floating], dtype: Any) -> NDArray[Any]:
    """float [0, 1] → ``dtype`` code values (uint8, uint16: rounded, clipped; float32: unchanged)."""
    if dtype == np.uint8:
        return to_uint8(rgb)
    if dtype == np.uint16:
        return to_uint16(rgb)
    return np.asarray(rgb, np.float32)


def as_dtype(px: NDArray[Any], dtype: Any) -> NDArray[Any]:
    """Pixels in another representation of the same values: uint8 ↔ uint16 (x257, exact) ↔ float [0, 1]."""
    if px.dtype == dtype:
        return px
    if px.dtype == np.uint8 and dtype == np.uint16:
        return px.astype(np.uint16) * np.uint16(257)
    return quantize(to_float(px), dtype)


def _scale_to(rgb: NDArray[np.floating], peak: float, depth: int) -> NDArray[Any]:
    """Round-to-nearest, saturating float → integer conversion in one pass (OpenCV)."""
    a = np.ascontiguousarray(rgb, np.float32)
    if a.ndim == 3 and a.shape[2] > 4:
        return np.clip(a * peak + 0.5, 0, peak).astype(np.uint8 if depth == cv2.CV_8U else np.uint16)
    return np.asarray(cv2.multiply(a, (peak, peak, peak, peak), dtype=depth))  # type: ignore[call-overload]


def to_uint8(rgb: NDArray[np.floating]) -> NDArray[np.uint8]:
    """Quantise float values in [0, 1] to uint8 (round to nearest, clipped). Shape kept."""
    return _scale_to(rgb, 255.0, cv2.CV_8U)


def to_uint16(rgb: NDArray[np.floating]) -> NDArray[np.uint16]:
    """Quantise float values in [0, 1] to uint16 (round to nearest, clipped). Shape kept."""
    return _scale_to(rgb, 65535.0, cv2.CV_16U)


def finite_mask(img: NDArray[Any]) -> NDArray[np.bool_]:
    """True where a pixel is finite (every channel of an (H, W, C) image; each value of an (H, W) one)."""
    ok = np.isfinite(img)
    return ok.all(axis=-1) if img.ndim == 3 else ok


def count_nonfinite(img: NDArray[Any]) -> int:
    """Number of pixels holding NaN or ±Inf in any channel (0 for integer images)."""
    if img.dtype.kind != "f":
        return 0
    return int(img.shape[0] * img.shape[1] - np.count_nonzero(finite_mask(img)))
