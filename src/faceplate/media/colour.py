"""Colour management with OpenColorIO (pure array ops; the config is an explicit object)."""

from __future__ import annotations

import os
from collections.abc import Callable

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


def to_uint8(rgb: NDArray[np.float32]) -> NDArray[np.uint8]:
    """Quantise float RGB in [0, 1] to uint8 (round half up, clipped). Shape kept."""
    out: NDArray[np.uint8] = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def to_uint16(rgb: NDArray[np.float32]) -> NDArray[np.uint16]:
    """Quantise float RGB in [0, 1] to uint16 (round half up, clipped). Shape kept."""
    out: NDArray[np.uint16] = np.clip(rgb * 65535.0 + 0.5, 0, 65535).astype(np.uint16)
    return out
