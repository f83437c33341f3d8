"""Writers for comps, mattes and deltas: image sequences (OIIO) and video files (PyAV), one registry.

Every writer takes RGB (H, W, 3) or a grey matte (H, W) as uint8, uint16 or float32 code values (so 8-bit
video can go from decoder to encoder without a float round trip), plus an optional matte as alpha. Files appear
atomically (written under a temporary name, then renamed), so a killed render never leaves a half frame,
and sequence writers report frames that already exist so renders resume frame by frame.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import av
import numpy as np
import OpenImageIO as oiio
from numpy.typing import NDArray

from faceplate.errors import ConfigError, WriterError
from faceplate.media import colour
from faceplate.media.frames import pattern_path
from faceplate.media.yuv import Yuv420, to_rgb
from faceplate.registry import Registry


@dataclass(frozen=True)
class WriterSpec:
    """Where and how to write. ``path`` is a video file or a sequence pattern (``comp.####.exr``)."""

    path: str
    width: int
    height: int
    fps: Fraction = Fraction(24)
    format: str | None = None  # registry name; None → from the extension
    colorspace: str = colour.VIDEO_709
    alpha: bool = False  # write the matte as alpha where the format allows it
    audio: tuple[str, float] | None = None  # (source file, source time of the first written frame)
    frame_count: int | None = None  # frames to be written (bounds the copied audio)
    options: dict[str, str] = field(default_factory=dict)  # codec options, e.g. {"crf": "10"}


class FrameWriter(ABC):
    """Writes numbered frames. ``exists`` lets a render skip frames already on disk."""

    extensions: ClassVar[tuple[str, ...]] = ()
    has_alpha: ClassVar[bool] = False  # the matte can ride along as an alpha channel
    resumable: ClassVar[bool] = False  # frames are separate files: a render can skip those on disk
    takes_yuv: ClassVar[bool] = False  # ``write`` also takes a media.yuv.Yuv420 frame (8-bit video in → out)

    def __init__(self, spec: WriterSpec) -> None:
        self.spec = spec

    def exists(self, frame: int) -> bool:
        return False

    @abstractmethod
    def write(self, frame: int, rgb: NDArray[Any] | Yuv420, alpha: NDArray[Any] | None = None) -> None:
        """Write frame ``frame``: RGB (H, W, 3) or a grey matte (H, W); uint8, uint16 or float32 [0, 1]
        (scene-linear floats may exceed 1 in float formats), or an 8-bit :class:`Yuv420` video frame (video
        writers take its planes as they are; others its RGB). ``alpha`` (H, W) rides along where supported."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Finish the output (flush, rename into place)."""

    def abort(self) -> None:  # noqa: B027 - optional hook
        """Drop unfinished output; files already complete stay."""

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, *rest: object) -> None:
        if et is None:
            self.close()
        else:
            self.abort()


WRITERS: Registry[type[FrameWriter]] = Registry("writer")


def _partial(path: Path) -> Path:
    """Temporary sibling name that keeps the extension (OIIO and FFmpeg pick the format from it)."""
    return path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")


def _check_dir(path: Path) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriterError(f"cannot create output folder {folder}: {err.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise WriterError(f"output folder {folder} is not writable")


# ---------------------------------------------------------------------------------------- sequences


class SequenceWriter(FrameWriter):
    """Numbered image files via OpenImageIO. Subclasses set the pixel type and channels."""

    pixel: ClassVar[Any] = oiio.HALF
    compression: ClassVar[str] = "none"
    resumable = True

    def __init__(self, spec: WriterSpec) -> None:
        super().__init__(spec)
        try:
            self.path_of(0)
        except ConfigError as err:
            raise WriterError(str(err)) from None
        _check_dir(Path(spec.path))

    def path_of(self, frame: int) -> Path:
        return pattern_path(self.spec.path, frame)

    def exists(self, frame: int) -> bool:
        return self.path_of(frame).is_file()

    dtype: ClassVar[Any] = np.float32  # what we hand OIIO (it converts to ``pixel`` exactly)

    def _pixels(self, rgb: NDArray[Any], alpha: NDArray[Any] | None) -> NDArray[Any]:
        px = rgb if alpha is None or not self.spec.alpha else np.dstack([rgb, colour.as_dtype(alpha, rgb.dtype)])
        return np.ascontiguousarray(colour.as_dtype(px, self.dtype))

    def write(self, frame: int, rgb: NDArray[Any] | Yuv420, alpha: NDArray[Any] | None = None) -> None:
        if isinstance(rgb, Yuv420):
            rgb = to_rgb(rgb)
        path = self.path_of(frame)
        tmp = _partial(path)
        px = self._pixels(rgb if rgb.ndim == 3 else rgb[..., None], alpha)
        px = px.reshape(rgb.shape[0], rgb.shape[1], -1)  # OpenCV drops a single channel axis
        h, w, c = px.shape
        spec = oiio.ImageSpec(w, h, c, self.pixel)
        spec.channelnames = ("Y",) if c == 1 else ("R", "G", "B", "A")[:c]
        if c == 4:
            spec.alpha_channel = 3
        spec.attribute("compression", self.compression)
        spec.attribute("oiio:UnassociatedAlpha", 1)  # the matte is a separate channel: never premultiply
        spec.attribute("oiio:ColorSpace", self.spec.colorspace)
        out = oiio.ImageOutput.create(str(tmp))
        if out is None:
            raise WriterError(f"cannot write {path}: {oiio.geterror()}")
        try:
            ok = out.open(str(tmp), spec) and out.write_image(px)
            err = out.geterror()
        finally:
            out.close()
        if not ok:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise WriterError(f"cannot write {path}: {err or 'disk full or not writable?'}")
        os.replace(tmp, path)

    def abort(self) -> None:
        for p in Path(self.spec.path).parent.glob(f".*.partial-{os.getpid()}*"):
            with contextlib.suppress(OSError):
                p.unlink()


@WRITERS.register("exr")
class ExrWriter(SequenceWriter):
    """OpenEXR half float, PIZ-compressed (lossless); the matte goes to alpha."""

    extensions = (".exr",)
    pixel = oiio.HALF
    compression = "piz"
    has_alpha = True


@WRITERS.register("exr32")
class Exr32Writer(SequenceWriter):
    """OpenEXR full float, ZIP-compressed (lossless)."""

    extensions = (".exr",)
    pixel = oiio.FLOAT
    compression = "zip"
    has_alpha = True


class _Int16Writer(SequenceWriter):
    pixel = oiio.UINT16

    dtype = np.uint16


@WRITERS.register("png16")
class Png16Writer(_Int16Writer):
    """16-bit PNG (RGB or RGBA)."""

    extensions = (".png",)
    compression = "zip:3"


@WRITERS.register("tiff16")
class Tiff16Writer(_Int16Writer):
    """16-bit TIFF, deflate-compressed."""

    extensions = (".tif", ".tiff")
    compression = "zip"


@WRITERS.register("png8")
class Png8Writer(SequenceWriter):
    """8-bit PNG, for previews and contact sheets."""

    extensions = (".png",)
    pixel = oiio.UINT8
    compression = "zip:3"

    dtype = np.uint8


# -------------------------------------------------------------------------------------------- video


@dataclass(frozen=True)
class _Codec:
    name: str
    pix_fmt: str
    options: dict[str, str]
    bits: int = 8
    alpha: bool = False


class VideoWriter(FrameWriter):
    """One video file via PyAV (FFmpeg), Rec.709-tagged, with the source's audio copied across."""

    codec: ClassVar[_Codec]
    takes_yuv = True

    def __init__(self, spec: WriterSpec) -> None:
        super().__init__(spec)
        self._path = Path(spec.path)
        if self._path.suffix.lower() not in self.extensions:
            raise WriterError(f"{self._path.name}: this codec needs a {' or '.join(self.extensions)} file")
        if "420" in self.codec.pix_fmt and (spec.width % 2 or spec.height % 2):
            raise WriterError(
                f"{spec.width}x{spec.height} is odd-sized; 4:2:0 video needs even sizes (use exr or prores4444)"
            )
        _check_dir(self._path)
        self._tmp = _partial(self._path)
        try:
            self._out: Any = av.open(str(self._tmp), "w")
            self._stream: Any = self._out.add_stream(
                self.codec.name, rate=spec.fps, options={**self.codec.options, **spec.options}
            )
        except (av.FFmpegError, OSError, ValueError) as err:
            raise WriterError(f"cannot write {self._path}: {err}") from None
        st: Any = self._stream
        st.width, st.height, st.pix_fmt = spec.width, spec.height, self.codec.pix_fmt
        cc = st.codec_context
        cc.color_range, cc.colorspace, cc.color_primaries, cc.color_trc = 1, 1, 1, 1  # limited, BT.709
        self._n = 0
        self._audio: Iterator[Any] | None = None
        self._audio_in: Any = None
        self._pending: Any = None
        if spec.audio is not None:
            self._open_audio(*spec.audio)

    # audio passthrough ------------------------------------------------------------------------
    def _open_audio(self, src: str, start: float) -> None:
        try:
            self._audio_in = av.open(src)
        except (av.FFmpegError, OSError) as err:
            raise WriterError(f"cannot read audio from {src}: {err}") from None
        if not self._audio_in.streams.audio:
            self._audio_in.close()
            self._audio_in = None
            return
        a_in = self._audio_in.streams.audio[0]
        self._a_out = self._out.add_stream_from_template(a_in)
        self._a_tb = a_in.time_base
        self._a_start = start
        n = self.spec.frame_count
        self._a_end = start + float(n / self.spec.fps) if n else float("inf")
        self._audio = (p for p in self._audio_in.demux(a_in) if p.pts is not None)

    def _mux_audio(self, until: float) -> None:
        """Copy source audio packets whose time (relative to the first frame) is before ``until`` s."""
        if self._audio is None:
            return
        offset = round(self._a_start / self._a_tb)
        while True:
            pkt = self._pending or next(self._audio, None)
            self._pending = None
            if pkt is None:
                self._audio = None
                return
            t = float(pkt.pts * self._a_tb)
            if t >= self._a_end:
                continue
            if t - self._a_start >= until:
                self._pending = pkt
                return
            if t < self._a_start:
                continue
            pkt.pts -= offset
            if pkt.dts is not None:
                pkt.dts -= offset
            pkt.stream = self._a_out
            self._out.mux(pkt)

    # video ------------------------------------------------------------------------------------
    def _frame(self, rgb: NDArray[Any] | Yuv420, alpha: NDArray[Any] | None) -> Any:
        if isinstance(rgb, Yuv420):  # 8-bit 4:2:0 Rec.709 limited, as decoded: straight to the encoder
            frame = av.VideoFrame.from_ndarray(rgb.data, format="yuv420p")
            return frame if self.codec.pix_fmt == "yuv420p" else frame.reformat(format=self.codec.pix_fmt)
        deep = self.codec.bits > 8
        if rgb.ndim == 2:  # a matte: grey
            px, fmt = colour.as_dtype(rgb, np.uint16 if deep else np.uint8), "gray16le" if deep else "gray"
        elif self.codec.alpha:
            a = np.ones(rgb.shape[:2], np.uint16) if alpha is None else colour.as_dtype(alpha, np.uint16)
            px, fmt = np.dstack([colour.as_dtype(rgb, np.uint16), a]), "rgba64le"
        else:
            px, fmt = colour.as_dtype(rgb, np.uint16 if deep else np.uint8), "rgb48le" if deep else "rgb24"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(px), format=fmt)
        return frame.reformat(
            format=self.codec.pix_fmt,
            src_colorspace="itu709",
            dst_colorspace="itu709",
            src_color_range=2,
            dst_color_range=1,
        )

    def write(self, frame: int, rgb: NDArray[Any] | Yuv420, alpha: NDArray[Any] | None = None) -> None:
        """Encode the next frame: RGB / grey code values, or a :class:`Yuv420` frame (taken as is)."""
        h, w = rgb.size if isinstance(rgb, Yuv420) else rgb.shape[:2]
        if (h, w) != (self.spec.height, self.spec.width):
            raise WriterError(f"frame {frame} is {w}x{h}, the output is {self.spec.width}x{self.spec.height}")
        vf = self._frame(rgb, alpha)
        vf.pts = self._n
        vf.time_base = 1 / Fraction(self.spec.fps)
        try:
            for pkt in self._stream.encode(vf):
                self._out.mux(pkt)
            self._n += 1
            self._mux_audio(float(self._n / self.spec.fps) + 0.5)
        except (av.FFmpegError, OSError) as err:
            raise WriterError(f"cannot write {self._path}: {err}") from None

    def close(self) -> None:
        try:
            for pkt in self._stream.encode(None):
                self._out.mux(pkt)
            self._mux_audio(float("inf"))
            self._out.close()
        except (av.FFmpegError, OSError) as err:
            self.abort()
            raise WriterError(f"cannot finish {self._path}: {err}") from None
        finally:
            if self._audio_in is not None:
                self._audio_in.close()
        os.replace(self._tmp, self._path)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._out.close()
        if self._audio_in is not None:
            self._audio_in.close()
        with contextlib.suppress(OSError):
            self._tmp.unlink()


@WRITERS.register("h264")
class H264Writer(VideoWriter):
    """H.264 4:2:0 8-bit (libx264, CRF 16, superfast): reviews and dailies."""

    extensions = (".mp4", ".mov", ".mkv")
    codec = _Codec("libx264", "yuv420p", {"crf": "16", "preset": "superfast"})


@WRITERS.register("hevc")
class HevcWriter(VideoWriter):
    """HEVC 4:2:0 10-bit (libx265, CRF 14)."""

    extensions = (".mp4", ".mov", ".mkv")
    codec = _Codec("libx265", "yuv420p10le", {"crf": "14", "preset": "fast", "x265-params": "log-level=error"}, 10)


@WRITERS.register("prores4444")
class ProRes4444Writer(VideoWriter):
    """Apple ProRes 4444 10-bit with the matte as a 16-bit alpha channel (prores_ks)."""

    extensions = (".mov",)
    has_alpha = True
    codec = _Codec("prores_ks", "yuva444p10le", {"profile": "4", "vendor": "apl0", "alpha_bits": "16"}, 10, True)
    takes_yuv = False  # the matte rides along as alpha


@WRITERS.register("prores422hq")
class ProRes422Writer(VideoWriter):
    """Apple ProRes 422 HQ 10-bit (prores_ks)."""

    extensions = (".mov",)
    codec = _Codec("prores_ks", "yuv422p10le", {"profile": "3", "vendor": "apl0"}, 10)


@WRITERS.register("dnxhr")
class DnxhrWriter(VideoWriter):
    """Avid DNxHR HQX 4:2:2 10-bit."""

    extensions = (".mov", ".mxf")
    codec = _Codec("dnxhd", "yuv422p10le", {"profile": "dnxhr_hqx"}, 10)


_BY_EXT = {
    ".exr": "exr",
    ".png": "png16",
    ".tif": "tiff16",
    ".tiff": "tiff16",
    ".mp4": "h264",
    ".mkv": "h264",
    ".mov": "prores4444",
}


def writer_name(path: str, fmt: str | None = None) -> str:
    """Registry name for ``path``: ``fmt`` when given, else by extension (.mov → prores4444)."""
    if fmt:
        WRITERS.get(fmt)
        return fmt
    ext = Path(path).suffix.lower()
    if ext not in _BY_EXT:
        raise WriterError(
            f"cannot tell the output format of {path}; use one of {', '.join(sorted(_BY_EXT))} or name a format"
        )
    return _BY_EXT[ext]


def open_writer(spec: WriterSpec) -> FrameWriter:
    """Writer for ``spec`` (format from ``spec.format`` or the extension)."""
    cls = WRITERS.get(writer_name(spec.path, spec.format))
    if issubclass(cls, SequenceWriter) and Path(spec.path).suffix.lower() not in cls.extensions:
        raise WriterError(f"{spec.path}: format needs a {' or '.join(cls.extensions)} file")
    return cls(spec)
