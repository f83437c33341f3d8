"""What ``faceplate qc`` reads: the render (comp + matte, frames numbered like the plate), its record, the
plate and the shot store. Every bad input is one ConfigError line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import OpenImageIO as oiio
from numpy.typing import NDArray

from faceplate.config import default_shot
from faceplate.errors import ConfigError, PlateError
from faceplate.media.frames import FrameRange, is_pattern, sequence_files
from faceplate.media.plate import Plate, open_as_stored, open_plate
from faceplate.render.outputs import record_path, sibling

Image = NDArray[Any]  # as stored: uint8 / uint16 codes, half or float32
FLOAT_CODECS = ("half", "float", "double")


def read_pixels(path: str) -> NDArray[Any] | None:
    """An image file as stored, (H, W, C) in R, G, B(, A) order (C = 1 for a grey matte): uint8 / uint16 codes,
    half or float32; None when it cannot be read. Faster than a one-file plate: no float conversion, no alpha
    or NaN bookkeeping."""
    inp = open_as_stored(path)
    if inp is None:
        oiio.geterror()  # (cleared: the caller says what is missing)
        return None
    try:
        spec = inp.spec()
        kind = str(spec.format)
        fmt = {"half": oiio.HALF, "uint8": oiio.UINT8, "uint16": oiio.UINT16}.get(kind, oiio.FLOAT)
        px = inp.read_image(0, 0, 0, spec.nchannels, fmt)
    finally:
        inp.close()
    if px is None or getattr(px, "size", 0) == 0:
        return None
    px = np.asarray(px).reshape(spec.height, spec.width, spec.nchannels)
    names = list(spec.channelnames)
    order = [names.index(c) for c in "RGBA" if c in names]
    if len(order) >= 3 and order != list(range(len(order))):
        px = np.ascontiguousarray(px[..., order])
    return px if px.dtype in (np.uint8, np.uint16, np.float16) else np.asarray(px, np.float32)


def read_record(render: str) -> dict[str, Any] | None:
    """The hidden record faceplate wrote beside a render, None when there is none."""
    try:
        data = json.loads(record_path(render).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def shot_of(render: str, shot: Path | None, record: dict[str, Any] | None) -> Path:
    """The shot folder: ``shot`` if given, else the one a render with ``record`` used by default."""
    if shot is not None:
        if not (shot / "shot.sqlite").is_file():
            raise ConfigError(f"--shot {shot} is not a shot folder (no shot.sqlite); run `faceplate extract`")
        return shot
    if record is None:
        raise ConfigError(f"{render} has no faceplate record beside it; say which shot it renders with --shot SHOT")
    guess = default_shot(str(record.get("plate", "")), render)
    if not (guess / "shot.sqlite").is_file():
        raise ConfigError(f"the shot of {render} is not at {guess}; give it with --shot SHOT")
    return guess


@contextmanager
def one_thread_per_file() -> Iterator[None]:
    """OpenEXR decodes each file on its reading thread (files are read side by side on usable_cores() threads;
    its own pool on top cost ~10% more CPU at 1080p); the setting before is put back."""
    before = oiio.get_int_attribute("exr_threads")
    oiio.attribute("exr_threads", 1)
    try:
        yield
    finally:
        oiio.attribute("exr_threads", before)


class RenderFrames:
    """Frames of a rendered output (video, or a sequence whose file numbers are plate frames) as float32
    (H, W, C) arrays, C = 4 when the files carry alpha; a frame missing from a sequence reads None."""

    def __init__(self, path: str, colorspace: str, first_frame: int, role: str = "render") -> None:
        self.path, self.colorspace = path, colorspace
        self.files: dict[int, str] | None = None
        if is_pattern(Path(path).name) and not os.path.exists(path):
            self.files = sequence_files(path)
            if not self.files:
                raise ConfigError(f"{role} {path} has no frames on disk")
            self.frames = FrameRange(min(self.files), max(self.files))
            probe = self._open(self.files[self.frames.first])
        else:
            if not os.path.isfile(path):
                raise ConfigError(f"{role} {path} does not exist")
            probe = self._open(path, first_frame)
            self.frames = probe.info.frames
        self.has_alpha, self.is_float = probe.info.has_alpha, probe.info.codec in FLOAT_CODECS
        self.size = (probe.info.height, probe.info.width)
        probe.close()
        if self.files is not None and read_pixels(self.files[self.frames.first]) is None:
            raise ConfigError(f"{role} {path}: {self.files[self.frames.first]} cannot be read")

    def _open(self, path: str, first_frame: int = 0) -> Plate:
        try:
            return open_plate(path, colorspace=self.colorspace, first_frame=first_frame)
        except PlateError as err:
            raise ConfigError(f"{self.path} cannot be read: {err}") from None

    def _file(self, frame: int) -> Image | None:
        assert self.files is not None
        if frame not in self.files:
            return None
        img = read_pixels(self.files[frame])
        return None if img is None or img.shape[:2] != self.size else img

    def iterate(self, frames: FrameRange, workers: int) -> Iterator[tuple[int, Image | None]]:
        """(frame, image or None) for each of ``frames`` in order (sequence files read on ``workers`` threads)."""
        if self.files is None:
            yield from self._stream(frames)
            return
        with one_thread_per_file(), ThreadPoolExecutor(max(1, workers), thread_name_prefix="faceplate-qc-read") as pool:
            ahead = [pool.submit(self._file, f) for f in range(frames.first, min(frames.last, frames.first + 4) + 1)]
            nxt = frames.first + len(ahead)
            for f in range(frames.first, frames.last + 1):
                img = ahead.pop(0).result()
                if nxt <= frames.last:
                    ahead.append(pool.submit(self._file, nxt))
                    nxt += 1
                yield f, img

    def _stream(self, frames: FrameRange) -> Iterator[tuple[int, Image | None]]:
        with self._open(self.path, self.frames.first) as p:
            want = frames.first
            for n, img in p.frames(frames, alpha=True):
                yield from ((f, None) for f in range(want, n))
                yield n, img
                want = n + 1
            yield from ((f, None) for f in range(want, frames.last + 1))

    def read(self, frame: int) -> Image | None:
        """One frame (None when missing or out of range)."""
        return next(img for _, img in self.iterate(FrameRange(frame, frame), 1))


def matte_source(render: RenderFrames, matte: str | None) -> RenderFrames | None:
    """Where the matte is: ``matte`` if given, else None when the comp carries it in alpha, else the
    render's ``_matte`` sibling; ConfigError when there is none."""
    if matte is None and render.has_alpha:
        return None
    path = matte or sibling(render.path, "matte")
    try:
        return RenderFrames(path, render.colorspace, render.frames.first, "matte")
    except ConfigError:
        if matte is not None:
            raise
        raise ConfigError(f"{render.path} has no matte (no alpha, no {path}); give it with --matte PATH") from None
