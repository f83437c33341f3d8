"""``--deliver patches``: the effect's aligned faces for external compositing (faceswap-style patches).

In the folder ``<comp stem>_patches/``, per face per frame: ``t{track}/{frame:06d}.png`` (16-bit RGBA: the
effect's aligned result in the plate's colour space, straight alpha = the face's final alpha after hold-outs
and edge fade) and ``t{track}/{frame:06d}.json`` (the transforms to and from the plate, plate, colour space,
effect record). One file per frame and face, each written atomically, so chunks of a farm render can share
the folder; ``.frames/{frame:06d}.json`` (the tracks written) marks a frame done, so a rerun skips it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import OpenImageIO as oiio
from numpy.typing import NDArray

from faceplate.align import plate_crop
from faceplate.deliver.layers import Deliverable, DeliverInfo, FrameParts
from faceplate.fileio import atomic_write, atomic_write_text, partial_regex, remove_stale_partials, write_error
from faceplate.geometry import invert
from faceplate.media import colour
from faceplate.media.writers import STALE_SECONDS, FrameWriter, WriterSpec, write_image
from faceplate.media.yuv import Yuv420

if TYPE_CHECKING:
    from faceplate.render.composite import Change

F32 = NDArray[np.float32]
DONE = ".frames"  # per-frame markers (a frame with no face has one too)


def patch_rgba(decoded: NDArray[Any], change: Change) -> F32:
    """(R, R, 4) float32 straight RGBA patch of one face: the effect's aligned result in plate code values
    (the aligned plate crop, as the render made it from ``decoded`` (H, W, 3), plus the change; clipped to
    [0, 1]) and its final alpha."""
    rgb = np.clip(plate_crop(decoded, change.m, change.alpha.shape[0]) + change.change, 0.0, 1.0)
    return np.asarray(np.dstack([rgb, change.alpha]), np.float32)


def patch_record(info: DeliverInfo, frame: int, change: Change, size: tuple[int, int]) -> dict[str, Any]:
    """The JSON beside a patch: frame, track, R, both (2, 3) matrices, plate, its size (W, H), colour space,
    effect and record."""
    return {
        "frame": frame,
        "track": change.track,
        "res": int(change.alpha.shape[0]),
        "aligned_to_plate": invert(change.m).tolist(),
        "plate_to_aligned": np.asarray(change.m).tolist(),
        "plate": info.plate,
        "plate_size": [size[0], size[1]],
        "colorspace": info.colorspace,
        "effect": info.effect,
        "record": info.record,
    }


class PatchWriter(FrameWriter, Deliverable):
    """The patches folder (``spec.path``) of a render."""

    resumable = True
    farmable = True

    def __init__(self, spec: WriterSpec, info: DeliverInfo) -> None:
        super().__init__(spec)
        self.info = info
        self.folder = Path(spec.path)
        try:
            (self.folder / DONE).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_error(self.folder, err) from None
        self._written: list[Path] = []
        for sub in [self.folder / DONE, *self.folder.glob("t*")]:
            for ext in (".png", ".json"):
                if sub.is_dir():
                    remove_stale_partials(sub, partial_regex(r"-?\d+", ext), STALE_SECONDS)

    def path_of(self, track: int, frame: int, ext: str) -> Path:
        """``t{track}/{frame:06d}.{ext}`` in the folder."""
        return self.folder / f"t{track}" / f"{frame:06d}.{ext}"

    def exists(self, frame: int) -> bool:
        return (self.folder / DONE / f"{frame:06d}.json").is_file()

    def write(self, frame: int, rgb: NDArray[Any] | Yuv420, alpha: NDArray[Any] | None = None) -> None:
        raise TypeError("PatchWriter takes whole rendered frames: call deliver()")

    def deliver(self, parts: FrameParts) -> None:
        h, w = parts.matte.shape
        for c in parts.changes:
            track = -1 if c.track is None else c.track
            png, meta = self.path_of(track, parts.frame, "png"), self.path_of(track, parts.frame, "json")
            png.parent.mkdir(exist_ok=True)
            px = colour.to_uint16(patch_rgba(parts.decoded, c))
            atomic_write(png, functools.partial(_write_png, path=png, px=px))
            atomic_write_text(meta, json.dumps(patch_record(self.info, parts.frame, c, (w, h)), indent=1))
            self._written += [png, meta]
        done = self.folder / DONE / f"{parts.frame:06d}.json"
        atomic_write_text(done, json.dumps({"frame": parts.frame, "tracks": [c.track for c in parts.changes]}))
        self._written.append(done)

    def abort(self) -> None:
        rx = re.compile(rf"^\..*\.partial-{os.getpid()}\.")
        for sub in [self.folder / DONE, *self.folder.glob("t*")]:
            for p in sub.iterdir() if sub.is_dir() else []:
                if rx.match(p.name):
                    with contextlib.suppress(OSError):
                        p.unlink()

    def discard(self) -> None:
        self.abort()
        for p in self._written:
            with contextlib.suppress(OSError):
                p.unlink()


def _write_png(tmp: Path, path: Path, px: NDArray[np.uint16]) -> None:
    """A 16-bit RGBA PNG (straight alpha) of ``px`` (R, R, 4) at ``tmp``; errors name ``path``."""
    h, w, c = px.shape
    spec = oiio.ImageSpec(w, h, c, oiio.UINT16)
    spec.channelnames = ("R", "G", "B", "A")
    spec.alpha_channel = 3
    spec.attribute("oiio:UnassociatedAlpha", 1)
    spec.attribute("compression", "zip:3")
    write_image(tmp, path, np.ascontiguousarray(px), spec)
