"""What the viewer can show: the plate and each render (comp), with the matte and delta found beside a
render, each read frame by frame in plate frame numbers.

A render is a video (frame i is plate frame ``first + i``), an image sequence numbered like the plate, or a
still (shown at every frame). Its matte is the comp's alpha (EXR, ProRes 4444) or a ``NAME_matte`` sibling
(``render.outputs.sibling``); its delta a ``NAME_delta`` sibling or any output beside it whose record says
it is the delta of the same render.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceplate.app import proxies
from faceplate.errors import ConfigError, PlateError
from faceplate.media import colour
from faceplate.media.frames import FrameRange, is_pattern, sequence_files
from faceplate.media.plate import Plate, PlateInfo, SequencePlate, open_plate

LAYERS = ("rgb", "matte", "delta")
RECORD_SUFFIX = ".faceplate.json"  # as render.outputs writes it (not imported: that pulls in every effect)


class Reader:
    """One plate opened for reading frames in any order; consecutive frames continue one decode stream
    (cheap playback of video) instead of seeking. Thread-safe (one frame at a time)."""

    def __init__(self, path: str, colorspace: str | None, first_frame: int) -> None:
        self.path = path
        self.plate: Plate = open_plate(path, colorspace=colorspace, first_frame=first_frame)
        self.info: PlateInfo = self.plate.info
        self._lock = threading.Lock()
        self._it: Iterator[tuple[int, Any]] | None = None
        self._next = -1

    @property
    def is_sequence(self) -> bool:
        """Image files (a sequence or a still), each frame a file of its own."""
        return isinstance(self.plate, SequencePlate)

    def frame_file(self, frame: int) -> str:
        """The file holding ``frame`` (the video itself, or the sequence's file)."""
        if isinstance(self.plate, SequencePlate):
            return self.plate.path_of(frame)
        return self.path

    def rgb(self, frame: int) -> NDArray[np.float32]:
        """Frame ``frame`` as float32 RGB (H, W, 3) in the plate's colour space. A half-float EXR frame of a
        sequence comes read-only, carrying its half bits (:func:`proxies.half_frame`: a view's table makes
        its proxy without the float maths)."""
        if isinstance(self.plate, SequencePlate) and frame in self.info.frames:
            bits = proxies.read_halves(self.plate.path_of(frame))
            if bits is not None and bits.shape[:2] == (self.info.height, self.info.width):
                return proxies.half_frame(bits)
        img = self._decoded(frame)
        return colour.to_float(img) if self.is_video else np.asarray(img, np.float32)

    @property
    def is_video(self) -> bool:
        return not self.is_sequence

    def codes(self, frame: int) -> NDArray[Any] | None:
        """A video frame's RGB codes as decoded (H, W, 3) uint8 / uint16, what :meth:`rgb` scales to [0, 1]
        (a Raw view's proxy without the float pass); None for image files."""
        return self._decoded(frame) if self.is_video else None

    def _decoded(self, frame: int) -> Any:
        """Frame ``frame`` as the plate streams it (video: native codes; images: float), continuing the
        decode stream when it is the next frame."""
        with self._lock:
            if self._it is None or frame != self._next:
                rng = FrameRange(frame, self.info.last_frame)
                self._it = self.plate.frames(rng, native=self.is_video)
            n, img = next(self._it, (None, None))
            if n != frame or img is None:
                self._it = None
                raise PlateError(f"frame {frame} of {self.path} could not be decoded")
            self._next = frame + 1
            return img

    def alpha(self, frame: int) -> NDArray[np.float32] | None:
        with self._lock:
            return self.plate.read_alpha(frame)

    def close(self) -> None:
        with self._lock:
            self._it = None
            self.plate.close()


@dataclass
class Source:
    """The plate or one render, as the page names it (``id``), with its layers' readers."""

    id: str
    label: str
    path: str
    role: str  # "plate" | "render"
    rgb: Reader
    matte: Reader | None = None  # a separate matte file; None with ``matte_in_alpha``: the comp's alpha
    matte_in_alpha: bool = False
    delta: Reader | None = None
    extras: dict[str, str] = field(default_factory=dict)  # layer → path, for the page

    @property
    def still(self) -> bool:
        return self.rgb.info.kind == "image"

    def layers(self) -> list[str]:
        has = {"rgb": True, "matte": self.matte is not None or self.matte_in_alpha, "delta": self.delta is not None}
        return [layer for layer in LAYERS if has[layer]]

    def reader(self, layer: str) -> Reader:
        r = {"rgb": self.rgb, "matte": self.matte or (self.rgb if self.matte_in_alpha else None), "delta": self.delta}
        got = r.get(layer)
        if got is None:
            raise ConfigError(f"{self.label} has no {layer} layer")
        return got

    def source_frame(self, frame: int, layer: str = "rgb") -> int | None:
        """The frame of ``layer`` shown at plate frame ``frame`` (a still's only frame), None when it has none."""
        info = self.reader(layer).info
        if info.kind == "image":
            return info.first_frame
        return frame if frame in info.frames else None

    def describe(self) -> dict[str, Any]:
        info = self.rgb.info
        return {
            "id": self.id,
            "label": self.label,
            "path": self.path,
            "role": self.role,
            "kind": info.kind,
            "frames": [info.first_frame, info.last_frame],
            "layers": self.layers(),
            "extras": self.extras,
        }

    def close(self) -> None:
        for r in {id(r): r for r in (self.rgb, self.matte, self.delta) if r is not None}.values():
            r.close()


def _exists(path: str) -> bool:
    """A file, or a sequence pattern with at least one frame on disk."""
    if not is_pattern(Path(path).name) or Path(path).exists():
        return Path(path).exists()
    return bool(sequence_files(path))


def sibling(out: str, suffix: str) -> str:
    """``comp.####.exr`` → ``comp_matte.####.exr``; ``comp.mov`` → ``comp_matte.mov`` (as render.outputs names
    a render's matte and delta; not imported from there, which pulls in every effect)."""
    p = Path(out)
    m = re.search(r"[.](#+|@+|%0?\d*d)[.]", p.name)
    if m:
        return str(p.with_name(f"{p.name[: m.start()]}_{suffix}{p.name[m.start() :]}"))
    return str(p.with_name(f"{p.stem}_{suffix}{p.suffix}"))


def _record(path: str) -> dict[str, Any] | None:
    rec = Path(path).with_name(f".{Path(path).name}{RECORD_SUFFIX}")
    try:
        data = json.loads(rec.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _same_render(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("plate", "effect", "settings", "track", "face")
    return all(a.get(k) == b.get(k) for k in keys)


def find_extra(comp: str, role: str) -> str | None:
    """The ``role`` ("matte" | "delta") output of the render that wrote ``comp``: its ``_role`` sibling (any
    extension for a delta), else an output beside it whose record names that role of the same render."""
    named = [sibling(comp, role)]
    if role == "delta":
        named += [str(Path(comp).with_name(f"{Path(comp).stem.split('.')[0]}_delta.####.exr"))]
    for path in named:
        if _exists(path):
            return path
    mine = _record(comp)
    if mine is None:
        return None
    for rec in sorted(Path(comp).parent.glob(f".*{RECORD_SUFFIX}")):
        other = str(rec.with_name(rec.name[1 : -len(RECORD_SUFFIX)]))
        data = _record(other)
        if data is not None and data.get("role") == role and _same_render(data, mine) and _exists(other):
            return other
    return None


def open_source(sid: str, path: str, role: str, plate: PlateInfo) -> Source:
    """Open the plate (``role`` "plate") or a render of it; ConfigError (one line) when a render cannot be
    read or does not fit the plate."""
    cs, first = plate.colorspace, plate.first_frame
    if role == "plate":
        return Source(sid, "plate", path, role, Reader(path, cs, first))
    if not _exists(path):
        raise ConfigError(f"--render {path} does not exist")
    try:
        rgb = Reader(path, None, first)
    except PlateError as err:
        raise ConfigError(f"--render {path} cannot be read: {err}") from None
    _check_fits(path, rgb.info, plate)
    src = Source(sid, Path(path).name, path, role, rgb, matte_in_alpha=rgb.info.has_alpha)
    for layer in ("matte", "delta"):
        extra = None if layer == "matte" and src.matte_in_alpha else find_extra(path, layer)
        if extra is None:
            continue
        try:
            reader = Reader(extra, cs if layer == "delta" else "Raw", first)
        except PlateError:
            continue  # an unreadable sidecar leaves that layer out; the comp is still shown
        if (reader.info.width, reader.info.height) == (plate.width, plate.height):
            setattr(src, layer, reader)
            src.extras[layer] = extra
    return src


def _check_fits(path: str, info: PlateInfo, plate: PlateInfo) -> None:
    if (info.width, info.height) != (plate.width, plate.height):
        raise ConfigError(
            f"--render {path} is {info.width}x{info.height}; the shot's plate is {plate.width}x{plate.height}"
        )
    if info.kind != "image" and (info.last_frame < plate.first_frame or info.first_frame > plate.last_frame):
        raise ConfigError(f"--render {path} has frames {info.frames}, none of the plate's {plate.frames}")
