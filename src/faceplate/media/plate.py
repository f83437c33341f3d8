"""Open plates: video files (PyAV) and image sequences / stills (OpenImageIO).

Frames come out as ``(frame_number, image)``. ``image`` is float32 RGB, shape (H, W, 3), in the plate's
own colour space (``PlateInfo.colorspace``; [0, 1] for encoded spaces, scene-linear may exceed 1), or,
with ``display=True``, uint8 RGB (H, W, 3) in ANALYSIS_SPACE for the face detectors. A plate's own alpha
(``PlateInfo.has_alpha``) comes only when asked for: ``frames(alpha=True)`` gives RGBA, and
:meth:`Plate.read_alpha` one frame's alpha. NaN / Inf pixels of float plates are passed on untouched and
counted in :attr:`Plate.nonfinite` (the ``display`` copy for the detectors has them zeroed / clipped).
"""

from __future__ import annotations

import copy
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import numpy as np
import OpenImageIO as oiio
from av.video.reformatter import VideoReformatter
from numpy.typing import NDArray

from faceplate.errors import ConfigError, PlateError
from faceplate.media import colour
from faceplate.media.frames import FrameRange, is_pattern, pattern_regex, sequence_files
from faceplate.media.yuv import Yuv420

Image = NDArray[Any]

VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".m4v", ".mxf", ".avi", ".webm", ".mts", ".m2ts"}
IMAGE_EXTS = {".exr", ".dpx", ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".cin", ".tga", ".bmp", ".webp"}


@dataclass(frozen=True)
class PlateInfo:
    """What a plate is: geometry, timing, encoding. Frame numbers are plate frame numbers."""

    path: str
    kind: str  # "video" | "sequence" | "image"
    width: int
    height: int
    fps: Fraction
    first_frame: int
    frame_count: int
    colorspace: str
    bit_depth: int
    codec: str
    has_audio: bool
    has_alpha: bool

    @property
    def last_frame(self) -> int:
        return self.first_frame + self.frame_count - 1

    @property
    def frames(self) -> FrameRange:
        return FrameRange(self.first_frame, self.last_frame)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fps"] = f"{self.fps.numerator}/{self.fps.denominator}"
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlateInfo:
        d = dict(d)
        d["fps"] = Fraction(d["fps"])
        return cls(**d)


class Plate(ABC):
    """A plate opened for reading. Use as a context manager; stream with :meth:`frames`.

    ``nonfinite`` maps each decoded frame of a float plate that held NaN or ±Inf pixels to their count.
    """

    info: PlateInfo

    def __init__(self, colorspace: str | None = None) -> None:
        self._cs_override = colorspace
        self._to_display: Any = None
        self.nonfinite: dict[int, int] = {}
        self._held: tuple[int, Any] | None = None  # (frame, its alpha source) of the last decoded frame

    @abstractmethod
    def _iter(self, frames: FrameRange, mode: str) -> Iterator[tuple[int, Image]]: ...

    def frames(
        self, frames: FrameRange | None = None, *, display: bool = False, native: bool = False, alpha: bool = False
    ) -> Iterator[tuple[int, Image]]:
        """Stream frames in order (all, or ``frames`` clipped to the plate). Holds one frame at a time.

        ``native=True`` skips the float conversion: uint8 / uint16 RGB for 8-bit / deeper video (values
        as decoded), float32 for image sequences. ``alpha=True``: plates with alpha give RGBA (H, W, 4), the
        alpha as stored, in the frame's dtype (not with ``display``). See the module docstring for the rest.
        """
        rng = self.info.frames if frames is None else frames.clip(self.info.frames)
        it = self._iter(rng, "display" if display else "native" if native else "float")
        return self._with_alpha(it) if alpha and self.info.has_alpha and not display else it

    def _with_alpha(self, it: Iterator[tuple[int, Image]]) -> Iterator[tuple[int, Image]]:
        for n, img in it:
            assert self._held is not None and self._held[0] == n
            yield n, np.dstack([img, colour.as_dtype(self._alpha_of(self._held[1]), img.dtype)])

    def frames_yuv(self, frames: FrameRange | None = None) -> Iterator[tuple[int, Yuv420 | Image]]:
        """Like ``frames(native=True)``; video plates give 8-bit 4:2:0 frames as :class:`Yuv420` (see there)."""
        return self.frames(frames, native=True)

    def read(self, frame: int, *, display: bool = False, native: bool = False) -> Image:
        """One frame by plate frame number."""
        if frame not in self.info.frames:
            raise PlateError(f"frame {frame} is outside {self.info.path} (frames {self.info.frames})")
        for _, img in self.frames(FrameRange(frame, frame), display=display, native=native):
            return img
        raise PlateError(f"frame {frame} of {self.info.path} could not be decoded")

    def keyframes(self) -> list[int]:
        """Frames that decode on their own (cheap to seek to): every frame of a sequence."""
        return list(range(self.info.first_frame, self.info.last_frame + 1))

    def read_alpha(self, frame: int) -> NDArray[np.float32] | None:
        """The plate's own alpha of ``frame``, (H, W) float32 [0, 1] as stored (never premultiplied); None
        when the plate has no alpha. Cheap for the frame decoded last; other frames are decoded on their
        own (safe while another thread streams :meth:`frames`, but slow: prefer ``frames(alpha=True)``)."""
        if not self.info.has_alpha:
            return None
        held = self._held
        if held is not None and held[0] == frame:
            return self._alpha_of(held[1])
        if frame not in self.info.frames:
            raise PlateError(f"frame {frame} is outside {self.info.path} (frames {self.info.frames})")
        return self._read_alpha(frame)

    def _alpha_of(self, held: Any) -> NDArray[np.float32]:
        """Alpha from what decoding kept (sequences keep the alpha array itself)."""
        return np.asarray(held, dtype=np.float32)

    @abstractmethod
    def _read_alpha(self, frame: int) -> NDArray[np.float32]: ...

    def _display8(self, rgb: NDArray[np.float32]) -> NDArray[np.uint8]:
        """float RGB in the plate's space → uint8 sRGB for analysis."""
        if not colour.is_display_like(self.info.colorspace):
            if self._to_display is None:
                self._to_display = colour.converter(self.info.colorspace, colour.ANALYSIS_SPACE)
            rgb = np.ascontiguousarray(rgb, dtype=np.float32).copy()
            self._to_display(rgb)
        return colour.to_uint8(rgb)

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self) -> Plate:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


# --------------------------------------------------------------------------------------------- video


def _ffmpeg_reason(err: BaseException) -> str:
    msg = getattr(err, "strerror", None) or str(err)
    return str(msg).split(":")[-1].strip() or type(err).__name__


class VideoPlate(Plate):
    """Video file via PyAV. Frame i is the i-th presentation timestamp (exact count, VFR-safe)."""

    def __init__(self, path: str, first_frame: int = 0, colorspace: str | None = None) -> None:
        super().__init__(colorspace)
        self.path = path
        try:
            with av.open(path) as c:
                if not c.streams.video:
                    raise PlateError(f"{path} has no video stream")
                s = c.streams.video[0]
                declared = int(s.frames or 0)
                packets = [(p.pts if p.pts is not None else p.dts, p.is_keyframe) for p in c.demux(s) if p.size > 0]
                stamps = [t for t, _ in packets]
                fps = Fraction(s.average_rate or s.guessed_rate or 24)
                cc = s.codec_context
                fmt = av.VideoFormat(cc.pix_fmt) if cc.pix_fmt else None
                width, height, codec = cc.width, cc.height, cc.name
                has_audio = bool(c.streams.audio)
        except PlateError:
            raise
        except (av.FFmpegError, OSError, ValueError) as err:
            raise PlateError(f"cannot read video {path}: {_ffmpeg_reason(err)} (corrupt or not a video?)") from None
        pts = sorted(int(p) for p in stamps if p is not None)
        if not pts or len(pts) != len(stamps):
            raise PlateError(f"{path} has no decodable video frames")
        if declared and len(pts) < declared:
            raise PlateError(
                f"{path} is truncated: its header lists {declared} frames but only {len(pts)} are in the file"
            )
        self._pts: list[int] = pts
        keys = {int(t) for t, k in packets if k and t is not None}
        self._keys = [i for i, t in enumerate(pts) if t in keys]
        self._index = {p: i for i, p in enumerate(self._pts)}
        bits = fmt.components[0].bits if fmt is not None else 8
        has_alpha = bool(fmt is not None and any(c.is_alpha for c in fmt.components))
        cs = self._cs_override or colour.VIDEO_709
        self.info = PlateInfo(
            path, "video", width, height, fps, first_frame, len(pts), cs, bits, codec, has_audio, has_alpha
        )
        self._container: Any = None

    def _open(self) -> Any:
        if self._container is None:
            try:
                self._container = av.open(self.path)
            except (av.FFmpegError, OSError) as err:
                raise PlateError(f"cannot reopen {self.path}: {_ffmpeg_reason(err)}") from None
            self._container.streams.video[0].thread_type = "AUTO"
        return self._container

    def frames_yuv(self, frames: FrameRange | None = None) -> Iterator[tuple[int, Yuv420 | Image]]:
        """Like ``frames(native=True)``, but 8-bit 4:2:0 Rec.709 limited-range frames (nearly every H.264/HEVC
        plate) come as :class:`Yuv420` (planes as decoded + their RGB), for compositing without leaving Y'CbCr."""
        rng = self.info.frames if frames is None else frames.clip(self.info.frames)
        return self._iter(rng, "yuv")

    def _convert(self, frame: Any, mode: str, sws: VideoReformatter) -> Image | Yuv420:
        """One decoded frame as ``mode`` asks, converted by ``sws`` (one scaler context for a whole run)."""
        cs = frame.colorspace
        if cs in (0, 2, None):  # unspecified: the ffmpeg convention, HD → 709, SD → 601
            cs = "itu709" if frame.height >= 720 else "itu601"
        rng = frame.color_range if frame.color_range in (1, 2) else 1  # unspecified → limited (mpeg)
        if frame.format.name in ("yuvj420p", "yuvj422p", "yuvj444p"):
            rng = 2
        deep = self.info.bit_depth > 8 and mode != "display"
        fmt = "rgb48le" if deep else "rgb24"
        rgb: Image = sws.reformat(
            frame, format=fmt, src_colorspace=cs, src_color_range=rng, dst_color_range=2, threads=1
        ).to_ndarray()
        if mode == "yuv":
            keep = frame.format.name == "yuv420p" and cs in ("itu709", 1) and rng == 1
            keep = keep and frame.width % 2 == 0 and frame.height % 2 == 0
            return Yuv420(frame.to_ndarray(), rgb) if keep else rgb
        if mode == "native" or (mode == "display" and colour.is_display_like(self.info.colorspace)):
            return rgb
        flt = colour.to_float(rgb)
        return self._display8(flt) if mode == "display" else flt

    def keyframes(self) -> list[int]:
        return [i + self.info.first_frame for i in self._keys]

    def _iter(self, frames: FrameRange, mode: str) -> Iterator[tuple[int, Any]]:
        c = self._open()
        s = c.streams.video[0]
        first_i, last_i = frames.first - self.info.first_frame, frames.last - self.info.first_frame
        sws = VideoReformatter()  # this run's own (a frame's reformat() builds a new scaler every frame)
        cc = s.codec_context
        start = self._pts[first_i]
        # Catching up from the keyframe before the first frame wanted: frames no other frame refers to are
        # skipped (the same pixels after, ~30-40% less decoding in H.264 with B-frames), until its packet.
        catch_up = max((k for k in self._keys if k <= first_i), default=0) < first_i
        try:
            cc.skip_frame = "NONREF" if catch_up else "DEFAULT"
            c.seek(start, stream=s, backward=True, any_frame=False)
            for packet in c.demux(s):
                if catch_up and packet.pts is not None and packet.pts >= start:
                    cc.skip_frame, catch_up = "DEFAULT", False
                for frame in packet.decode():
                    i = self._index.get(frame.pts if frame.pts is not None else -1)
                    if i is None or i < first_i:
                        continue
                    if i > last_i:
                        return
                    if self.info.has_alpha:
                        self._held = (i + self.info.first_frame, frame)
                    yield i + self.info.first_frame, self._convert(frame, mode, sws)
                    if i == last_i:
                        return
        except av.FFmpegError as err:
            raise PlateError(f"{self.path}: decoding failed near frame {frames.first}: {_ffmpeg_reason(err)}") from None

    def _alpha_of(self, held: Any) -> NDArray[np.float32]:
        rgba = held.reformat(format="rgba64le", threads=1).to_ndarray()
        return rgba[..., 3].astype(np.float32) / np.float32(65535)

    def _read_alpha(self, frame: int) -> NDArray[np.float32]:
        """Decode ``frame`` with a container of its own, leaving the plate's stream where it is."""
        other = copy.copy(self)
        other._container, other._held, other.nonfinite = None, None, {}
        try:
            other.read(frame, native=True)
            held = other._held
        finally:
            other.close()
        if held is None:
            raise PlateError(f"frame {frame} of {self.path} could not be decoded")
        return self._alpha_of(held[1])

    def close(self) -> None:
        self._held = None
        if self._container is not None:
            self._container.close()
            self._container = None

    def audio_at(self, frame: int) -> tuple[str, float] | None:
        """(path, source time of plate frame ``frame`` in seconds) for copying audio, None without audio."""
        return (self.path, self.frame_time(frame)) if self.info.has_audio else None

    def frame_time(self, frame: int) -> float:
        """Presentation time in seconds of plate frame ``frame``."""
        c = self._open()
        return float(self._pts[frame - self.info.first_frame] * c.streams.video[0].time_base)


# --------------------------------------------------------------------------------------- sequences


def open_as_stored(path: str) -> oiio.ImageInput | None:
    """An OIIO ImageInput of ``path`` that reads the pixels as stored (alpha never un/premultiplied), or None
    where it cannot be opened (``oiio.geterror()`` says why)."""
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)
    return oiio.ImageInput.open(path, config)


def _open_image(path: str) -> oiio.ImageInput:
    inp = open_as_stored(path)
    if inp is None:
        raise PlateError(f"cannot read image {path}: {oiio.geterror() or 'unknown format'}")
    return inp


def _read_spec(path: str) -> oiio.ImageSpec:
    inp = _open_image(path)
    try:
        return inp.spec()
    finally:
        inp.close()


def _read_image(path: str) -> tuple[NDArray[np.float32], oiio.ImageSpec]:
    """Read an image file as float32 (H, W, C) with OIIO; PlateError on any failure."""
    inp = _open_image(path)
    try:
        spec = inp.spec()
        bits = spec.get_int_attribute("oiio:BitsPerSample", 0)
        packed = str(spec.format) == "uint16" and bits in (10, 12)  # DPX/Cineon: code values k/(2^bits-1)
        px = inp.read_image(0, 0, 0, spec.nchannels, oiio.UINT16 if packed else oiio.FLOAT)
        if px is None or getattr(px, "size", 0) == 0:
            raise PlateError(f"cannot read image {path}: {inp.geterror() or 'truncated or corrupt'}")
        if packed:
            px = (np.asarray(px) >> (16 - bits)).astype(np.float32) / np.float32(2**bits - 1)
        return np.asarray(px, dtype=np.float32).reshape(spec.height, spec.width, spec.nchannels), spec
    finally:
        inp.close()


def _rgb(px: NDArray[np.float32], spec: oiio.ImageSpec) -> NDArray[np.float32]:
    names = list(spec.channelnames)
    if all(n in names for n in "RGB"):
        return np.ascontiguousarray(px[..., [names.index("R"), names.index("G"), names.index("B")]])
    if px.shape[2] >= 3:
        return np.ascontiguousarray(px[..., :3])
    return np.ascontiguousarray(np.repeat(px[..., :1], 3, axis=2))


def _alpha_index(spec: oiio.ImageSpec) -> int | None:
    """Channel index of the image's alpha, None without one."""
    names = list(spec.channelnames)
    if "A" in names:
        return names.index("A")
    return int(spec.alpha_channel) if 0 <= spec.alpha_channel < spec.nchannels else None


def _bits(spec: oiio.ImageSpec) -> int:
    """Bits per channel as stored (a 10-bit DPX reads as uint16 with oiio:BitsPerSample = 10)."""
    stored = spec.get_int_attribute("oiio:BitsPerSample", 0)
    return int(stored) if stored else int(spec.format.size()) * 8


def _default_colorspace(path: str, spec: oiio.ImageSpec) -> str:
    tagged = spec.get_string_attribute("oiio:ColorSpace", "")
    cfg = colour.load_config()
    if tagged and cfg.getColorSpace(tagged) is not None:
        return str(cfg.getColorSpace(tagged).getName())
    if tagged.lower() in ("linear", "scene_linear", "lin_rec709"):
        return colour.LINEAR_709
    return colour.LINEAR_709 if path.lower().endswith(".exr") else colour.ANALYSIS_SPACE


class SequencePlate(Plate):
    """Numbered image files (``plate.####.exr``, ``%04d.png``) or one still image (frame 0)."""

    def __init__(self, files: dict[int, str], pattern: str, colorspace: str | None = None) -> None:
        super().__init__(colorspace)
        self._files = files
        numbers = sorted(files)
        missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
            raise PlateError(f"sequence {pattern} has {len(missing)} missing frame(s): {shown}")
        first = files[numbers[0]]
        spec = _read_spec(first)
        cs = self._cs_override or _default_colorspace(first, spec)
        still = not is_pattern(pattern) or os.path.isfile(pattern)  # a file named take#1.png is a still
        kind = "image" if len(files) == 1 and still else "sequence"
        self.info = PlateInfo(
            pattern,
            kind,
            spec.width,
            spec.height,
            Fraction(24),
            numbers[0],
            len(numbers),
            cs,
            _bits(spec),
            str(spec.format),
            False,
            _alpha_index(spec) is not None,
        )

    def path_of(self, frame: int) -> str:
        return self._files[frame]

    def _read_alpha(self, frame: int) -> NDArray[np.float32]:
        px, spec = _read_image(self._files[frame])
        a = _alpha_index(spec)
        return np.ones(px.shape[:2], np.float32) if a is None else np.ascontiguousarray(px[..., a])

    def _iter(self, frames: FrameRange, mode: str) -> Iterator[tuple[int, Image]]:
        for n in range(frames.first, frames.last + 1):
            px, spec = _read_image(self._files[n])
            if (spec.width, spec.height) != (self.info.width, self.info.height):
                size = f"{self.info.width}x{self.info.height}"
                raise PlateError(f"{self._files[n]} is {spec.width}x{spec.height}, the sequence is {size}")
            rgb = _rgb(px, spec)
            bad = colour.count_nonfinite(rgb) if str(spec.format) in ("half", "float", "double") else 0
            if bad:
                self.nonfinite[n] = bad
            if self.info.has_alpha:
                a = _alpha_index(spec)
                self._held = (n, np.ones(px.shape[:2], np.float32) if a is None else px[..., a].copy())
            if mode != "display":
                yield n, rgb
            else:  # the detectors' copy only: NaN → 0, ±Inf → the largest half float / 0
                yield n, self._display8(np.nan_to_num(rgb, nan=0.0, posinf=65504.0, neginf=0.0) if bad else rgb)


def _scan_sequence(pattern: str) -> dict[int, str]:
    try:
        folder, _ = pattern_regex(pattern)
    except ConfigError as err:
        raise PlateError(str(err)) from None
    if not folder.is_dir():
        raise PlateError(f"folder {folder} of sequence {pattern} does not exist")
    files = sequence_files(pattern)
    if not files:
        raise PlateError(f"no files match the sequence {pattern} (empty sequence)")
    return files


def _scan_folder(folder: Path) -> tuple[dict[int, str], str]:
    """A folder holding one numbered sequence → its files and a ``name.####.ext`` pattern."""
    groups: dict[tuple[str, str], dict[int, str]] = {}
    rx = re.compile(r"^(.*?)(\d+)(\.[A-Za-z0-9]+)$")
    for n in sorted(os.listdir(folder)):
        m = rx.match(n)
        if m and m.group(3).lower() in IMAGE_EXTS:
            groups.setdefault((m.group(1), m.group(3)), {})[int(m.group(2))] = str(folder / n)
    if not groups:
        raise PlateError(f"folder {folder} holds no numbered image sequence (empty sequence)")
    if len(groups) > 1:
        names = ", ".join(f"{h}#{t}" for h, t in groups)
        raise PlateError(f"folder {folder} holds several sequences ({names}); name one as a pattern")
    (head, tail), files = next(iter(groups.items()))
    pad = len(Path(next(iter(files.values()))).name) - len(head) - len(tail)
    return files, str(folder / f"{head}{'#' * pad}{tail}")


def open_plate(path: str | os.PathLike[str], *, colorspace: str | None = None, first_frame: int = 0) -> Plate:
    """Open a video, an image sequence (pattern or folder) or a still. A file or folder whose name looks
    like a pattern (``take#1.mp4``, ``take_%d.mov``) but exists is opened as what it is.

    ``colorspace`` overrides the guess (video → Rec.709 gamma 2.4, EXR → linear Rec.709, other images →
    sRGB); aliases like ``linear`` or ``acescg`` are accepted. ``first_frame`` numbers video frames.
    """
    p = str(path)
    cs = colour.resolve(colorspace) if colorspace else None
    if is_pattern(Path(p).name) and not os.path.exists(p):  # take#1.mp4 that exists is a file, not a pattern
        return SequencePlate(_scan_sequence(p), p, cs)
    if os.path.isdir(p):
        files, pattern = _scan_folder(Path(p))
        return SequencePlate(files, pattern, cs)
    if not os.path.exists(p):
        raise PlateError(f"plate {p} does not exist")
    if not os.access(p, os.R_OK):
        raise PlateError(f"plate {p} is not readable (permissions)")
    if os.path.getsize(p) == 0:
        raise PlateError(f"plate {p} is empty (0 bytes)")
    ext = Path(p).suffix.lower()
    if ext in IMAGE_EXTS:
        return SequencePlate({0: p}, p, cs)
    return VideoPlate(p, first_frame=first_frame, colorspace=cs)
