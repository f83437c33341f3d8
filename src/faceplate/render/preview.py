"""Before/after and strength-sweep PNGs of one frame, around the chosen faces (labelled)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.config import RenderConfig
from faceplate.effects.base import Effect
from faceplate.errors import ConfigError, FaceNotFoundError
from faceplate.export import select_tracks
from faceplate.extract import extract
from faceplate.media import colour
from faceplate.media.plate import open_plate
from faceplate.render.composite import render_frame
from faceplate.render.tracks import ColourPath, prepare_tracks
from faceplate.store import F32, FaceRow, ShotStore

SWEEP = (0.0, 0.25, 0.5, 0.75, 1.0)
TILE_HEIGHT = 512
LABEL_BAR = 28


def preview(cfg: RenderConfig, effect_at: Callable[[float], Effect], frame: int | None = None) -> list[Path]:
    """Before/after PNG and a strength sweep (0, 0.25, 0.5, 0.75, 1) of one frame, around the chosen faces.

    ``effect_at(s)`` builds the effect at strength ``s``. ``frame`` (default: the middle of the first chosen
    track) must lie in ``cfg.frames``. Written beside ``cfg.out`` as ``<name>_preview.png`` and
    ``<name>_sweep.png``, each tile labelled; returns their paths.
    """
    from faceplate.review import write_png

    ext = cfg.extract
    with open_plate(ext.plate, colorspace=ext.colorspace, first_frame=ext.first_frame) as plate:
        rng = cfg.frames_in(plate.info.frames)
    if frame is not None and frame not in rng:
        raise ConfigError(f"--preview-frame {frame} is outside the frames {rng}; pick a frame within them")
    extract(ext)
    with ShotStore.open(ext.shot) as store, open_plate(ext.plate, colorspace=ext.colorspace,
                                                       first_frame=ext.first_frame) as plate:  # fmt: skip
        ids = select_tracks(store, cfg.track, cfg.face, allow_all=True)
        if frame is None:
            first = store.track(ids[0])
            frame = (max(first.first_frame, rng.first) + min(first.last_frame, rng.last)) // 2
        faces = [f for f in store.faces_in_frame(frame) if f.track in ids]
        if not faces:
            raise FaceNotFoundError(f"the chosen face is not in frame {frame}")
        col = ColourPath(plate.info.colorspace)
        img = colour.to_float(plate.read(frame, native=True))
        on_screen = sorted({f.track for f in faces})
        hands = store.hands_near(frame)

        def comp_at(strength: float) -> F32:
            effect = effect_at(strength)
            tracks = prepare_tracks(store, plate, effect, on_screen, col, cfg.hold_glasses)
            comp = render_frame(img, faces, tracks, effect, col, hands=hands)[0]
            assert isinstance(comp, np.ndarray)  # float RGB in, float RGB out
            return comp

        shots = [comp_at(s) for s in SWEEP]
        default = comp_at(cfg.strength)
    view = tile_view(img, faces, col)
    stem = Path(re.sub(r"[.](#+|@+|%0?\d*d)", "", cfg.out))
    before_after = stem.with_name(f"{stem.stem}_preview.png")
    sweep = stem.with_name(f"{stem.stem}_sweep.png")
    write_png(before_after, np.hstack([label(view(img), f"before (frame {frame})"),
                                       label(view(default), f"after (strength {cfg.strength:g})")]))  # fmt: skip
    write_png(sweep, np.hstack([label(view(c), f"strength {s:g}") for s, c in zip(SWEEP, shots, strict=True)]))
    return [before_after, sweep]


def tile_view(img: F32, faces: list[FaceRow], col: ColourPath) -> Callable[[F32], NDArray[np.uint8]]:
    """A function cropping a frame round ``faces`` (25% margin) to a TILE_HEIGHT-high 8-bit view."""
    box = np.array([[f.best[:, 0].min(), f.best[:, 1].min(), f.best[:, 0].max(), f.best[:, 1].max()] for f in faces])
    (x0, y0), (x1, y1) = box[:, :2].min(0), box[:, 2:].max(0)
    pad = 0.25 * max(x1 - x0, y1 - y0)
    h, w = img.shape[:2]
    xa, ya, xb, yb = max(0, int(x0 - pad)), max(0, int(y0 - pad)), min(w, int(x1 + pad)), min(h, int(y1 + pad))

    def view(rgb: F32) -> NDArray[np.uint8]:
        tile = col.encode(np.ascontiguousarray(rgb[ya:yb, xa:xb]))
        scale = TILE_HEIGHT / tile.shape[0]
        size = (round(tile.shape[1] * scale), TILE_HEIGHT)
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        return colour.to_uint8(np.asarray(cv2.resize(tile, size, interpolation=interp), np.float32))

    return view


def label(tile: NDArray[np.uint8], text: str) -> NDArray[np.uint8]:
    """``tile`` (H, W, 3) with a dark bar carrying ``text`` above it (H + LABEL_BAR, W, 3)."""
    from faceplate.review import caption

    bar = np.full((LABEL_BAR, tile.shape[1], 3), 24, np.uint8)
    caption(bar, 6, LABEL_BAR - 9, text, 0.55)
    return np.vstack([bar, tile])
