"""``--deliver layers``: one multi-channel EXR per plate frame for the compositor (OpenImageIO).

Channels, in the order written (Nuke-safe names; EXR keeps its channel list sorted by name, so readers
list ``R G B A`` first, then the layers alphabetically): ``R G B A`` (the comp, A = the render's matte),
``face.R/G/B/A`` (the premultiplied face element), ``matte.A``, ``delta.R/G/B`` (comp − plate),
``stmap.u/v`` (one track) or ``stmap_t{track}.u/v`` per track, ``occlusion.A``. Colour channels half, data
channels float32, ZIP. Every frame carries the ``faceplate/*`` metadata (plate, shot, frame, effect record,
tracks, each face's aligned→plate matrix, the STMap convention, the plate's colour space),
``oiio:ColorSpace``, fps and timecode. Frames are written atomically and skipped on a rerun (a
:class:`SequenceWriter`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np
import OpenImageIO as oiio
from numpy.typing import NDArray

from faceplate import __version__
from faceplate.cpu import usable_cores
from faceplate.deliver.stmap import face_element, occlusion, stmap
from faceplate.fileio import atomic_write
from faceplate.geometry import invert
from faceplate.media.frames import timecode
from faceplate.media.writers import SequenceWriter, WriterSpec, write_image
from faceplate.media.yuv import Yuv420

if TYPE_CHECKING:
    from faceplate.render.composite import Change

F32 = NDArray[np.float32]
COLOUR, DATA = oiio.HALF, oiio.FLOAT
COMPRESSION = "zip"
STMAP_CONVENTION = {"convention": "nuke", "origin": "bottom-left", "pixel_centre": 0.5}


@dataclass(frozen=True)
class DeliverInfo:
    """What every deliverable frame records: the plate and shot (absolute paths), the plate's colour space
    and fps, the effect's name and record (settings + model fingerprint) and the tracks rendered."""

    plate: str
    shot: str
    colorspace: str
    fps: Fraction
    effect: str
    record: dict[str, Any]
    tracks: list[int]


@dataclass(frozen=True)
class FrameParts:
    """One rendered frame for the deliverables: ``decoded`` the plate frame as decoded (the effect's input,
    (H, W, 3) any dtype), ``plate`` and ``comp`` (H, W, 3) float32 code values, ``matte`` (H, W) float32, and
    the frame's face changes (aligned, with their plate→aligned matrices). ``alpha`` (H, W): the matte as the
    comp's alpha holds it (at the comp's code precision; None: ``matte``)."""

    frame: int
    decoded: NDArray[Any]
    plate: F32
    comp: F32
    matte: F32
    changes: Sequence[Change] = field(default_factory=list)
    alpha: F32 | None = None


class Deliverable(ABC):
    """An output that takes whole rendered frames (plate, comp, matte, changes) instead of one image."""

    @abstractmethod
    def deliver(self, parts: FrameParts) -> None:
        """Write frame ``parts.frame``."""


def stmap_layers(tracks: Sequence[int]) -> list[tuple[int, str]]:
    """(track, layer name) of each STMap layer: ``stmap`` for a one-track render, else ``stmap_t{track}``."""
    return [(t, "stmap" if len(tracks) == 1 else f"stmap_t{t}") for t in tracks]


def channels(tracks: Sequence[int]) -> list[tuple[str, Any]]:
    """(name, OIIO pixel type) of every channel of a layers frame, in order."""
    colour = ["R", "G", "B", "A", "face.R", "face.G", "face.B", "face.A"]
    out = [(n, COLOUR) for n in colour] + [("matte.A", DATA)] + [(f"delta.{c}", COLOUR) for c in "RGB"]
    out += [(f"{name}.{c}", DATA) for _, name in stmap_layers(tracks) for c in "uv"]
    return [*out, ("occlusion.A", DATA)]


def layer_pixels(parts: FrameParts, tracks: Sequence[int]) -> F32:
    """(H, W, C) float32 pixels of a layers frame, channels as :func:`channels`."""
    comp, plate, matte = parts.comp, parts.plate, parts.matte
    shape = (matte.shape[0], matte.shape[1])
    by_track = {c.track: c for c in parts.changes}
    maps = []
    for t, _ in stmap_layers(tracks):
        c = by_track.get(t)
        maps.append(np.zeros((*shape, 2), np.float32) if c is None else stmap(c.m, c.alpha.shape[0], shape))
    held = occlusion([(c.held, c.m) for c in parts.changes], shape)
    alpha = matte if parts.alpha is None else parts.alpha
    stack = [comp, alpha[..., None], face_element(comp, plate, matte), matte[..., None], comp - plate, *maps,
             held[..., None]]  # fmt: skip
    return np.ascontiguousarray(np.concatenate(stack, axis=2), np.float32)


def face_records(changes: Sequence[Change]) -> list[dict[str, Any]]:
    """``faceplate/faces``: per face changed, its track, R and the aligned→plate (2, 3) matrix."""
    return [{"track": c.track, "res": int(c.alpha.shape[0]), "aligned_to_plate": invert(c.m).tolist()}
            for c in changes]  # fmt: skip


def timecode_bcd(text: str) -> int:
    """SMPTE 12M packed BCD time word of ``HH:MM:SS:FF`` (as OpenEXR's timeCode attribute stores it)."""
    hh, mm, ss, ff = (int(p) for p in text.lstrip("-").split(":"))
    bcd = lambda n: (n // 10) << 4 | n % 10  # noqa: E731
    return bcd(ff) | bcd(ss) << 8 | bcd(mm) << 16 | bcd(hh % 100) << 24


def header(info: DeliverInfo, parts: FrameParts) -> list[tuple[str, Any, Any]]:
    """(name, OIIO type, value) of every metadata attribute of a layers frame."""
    stmaps = {name: t for t, name in stmap_layers(info.tracks)}
    texts = {
        "faceplate/version": __version__,
        "faceplate/plate": info.plate,
        "faceplate/shot": info.shot,
        "faceplate/effect": info.effect,
        "faceplate/record": json.dumps(info.record, sort_keys=True),
        "faceplate/tracks": json.dumps(info.tracks),
        "faceplate/faces": json.dumps(face_records(parts.changes)),
        "faceplate/stmap": json.dumps({**STMAP_CONVENTION, "layers": stmaps}),
        "faceplate/colorspace": info.colorspace,  # OIIO's EXR writer drops oiio:ColorSpace (reads lin_rec709)
        "oiio:ColorSpace": info.colorspace,
    }
    fps = Fraction(info.fps)
    return [
        *((k, oiio.TypeString, v) for k, v in texts.items()),
        ("faceplate/frame", oiio.TypeInt, parts.frame),
        ("FramesPerSecond", oiio.TypeDesc("rational"), [fps.numerator, fps.denominator]),
        ("smpte:TimeCode", oiio.TypeDesc("timecode"), [timecode_bcd(timecode(parts.frame, fps)), 0]),
    ]


class LayersWriter(SequenceWriter, Deliverable):
    """The layered EXR sequence (``comp_layers.####.exr``), one file per plate frame, written on
    :func:`faceplate.cpu.usable_cores` threads (EXR's per-channel half/float conversion and ZIP take ~1.5 s a
    1080p frame: frames are written side by side)."""

    extensions = (".exr",)
    compression = COMPRESSION

    def __init__(self, spec: WriterSpec, info: DeliverInfo) -> None:
        super().__init__(spec)
        self.info = info
        self.channels = channels(info.tracks)
        self._threads = usable_cores()
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="faceplate-layers")
        self._pending: deque[Future[None]] = deque()

    def write(self, frame: int, rgb: NDArray[Any] | Yuv420, alpha: NDArray[Any] | None = None) -> None:
        raise TypeError("LayersWriter takes whole rendered frames: call deliver()")

    def deliver(self, parts: FrameParts) -> None:
        """Make frame ``parts.frame``'s pixels here; queue its file for a writer thread."""
        path = self.path_of(parts.frame)
        px = layer_pixels(parts, self.info.tracks)
        spec = self._spec(px.shape, header(self.info, parts))
        while len(self._pending) > self._threads:  # a bounded queue: each frame's pixels are ~120 MB at 1080p
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(atomic_write, path, lambda tmp: write_image(tmp, path, px, spec)))
        self._written.append(path)

    def _spec(self, shape: tuple[int, ...], attrs: list[tuple[str, Any, Any]]) -> Any:
        h, w, c = shape
        spec = oiio.ImageSpec(w, h, c, oiio.FLOAT)
        spec.channelnames = tuple(n for n, _ in self.channels)
        spec.channelformats = tuple(t for _, t in self.channels)
        spec.alpha_channel = 3
        spec.attribute("compression", COMPRESSION)
        spec.attribute("oiio:UnassociatedAlpha", 1)  # the matte rides in A: never premultiply
        for name, kind, value in attrs:
            spec.attribute(name, kind, value)
        return spec

    def close(self) -> None:
        """Wait for every frame queued (the first write error is raised)."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True)

    def abort(self) -> None:
        """Drop frames not started; those being written finish (whole files only), then partials go."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
        super().abort()
