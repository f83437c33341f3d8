"""Writers for comps, mattes and deltas: image sequences (OIIO) and video files (PyAV), one registry.

Every writer takes RGB (H, W, 3) or a grey matte (H, W) as uint8, uint16 or float32 code values (so 8-bit
video can go from decoder to encoder without a float round trip), plus an optional matte as alpha. Files appear
atomically (written under a temporary name, then renamed), so a killed render never leaves a half frame,
and sequence writers report frames that already exist so renders resume frame by frame.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
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
    first_frame: int = 0  # plate frame number of the output's first frame (video: resume and audio)


class FrameWriter(ABC):
    """Writes numbered frames. ``exists`` lets a render skip frames already on disk."""

    extensions: ClassVar[tuple[str, ...]] = ()
    has_alpha: ClassVar[bool] = False  # the matte can ride along as an alpha channel
    resumable: ClassVar[bool] = False  # ``exists`` reports frames already written: a render can skip them
    farmable: ClassVar[bool] = False  # one file per frame: chunks of a render can run on many machines
    takes_yuv: ClassVar[bool] = False  # ``write`` also takes a media.yuv.Yuv420 frame (8-bit video in → out)

    def __init__(self, spec: WriterSpec) -> None:
        self.spec = spec

    def exists(self, frame: int) -> bool:
        return False

    @property
    def wants_alpha(self) -> bool:
        """Does ``write`` use its ``alpha`` argument? (False: the render need not build a matte for it.)"""
        return self.spec.alpha

    @abstractmethod
    def write(self, frame: int, rgb: NDArray[Any] | Yuv420, alpha: NDArray[Any] | None = None) -> None:
        """Write frame ``frame``: RGB (H, W, 3) or a grey matte (H, W); uint8, uint16 or float32 [0, 1]
        (scene-linear floats may exceed 1 in float formats), or an 8-bit :class:`Yuv420` video frame (video
        writers take its planes as they are; others its RGB). ``alpha`` (H, W) rides along where supported."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Finish the output (flush, rename into place)."""

    def abort(self) -> None:  # noqa: B027 - optional hook
        """Drop unfinished output; files already complete stay."""

    def discard(self) -> None:
        """Drop everything this writer wrote (the render turned out to have nothing to show)."""
        self.abort()

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
    farmable = True

    def __init__(self, spec: WriterSpec) -> None:
        super().__init__(spec)
        try:
            self.path_of(0)
        except ConfigError as err:
            raise WriterError(str(err)) from None
        _check_dir(Path(spec.path))
        self._written: list[Path] = []

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
        self._written.append(path)

    def discard(self) -> None:
        self.abort()
        for p in self._written:
            with contextlib.suppress(OSError):
                p.unlink()

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
    tuning: dict[str, str] = field(default_factory=dict)  # on top of our preset; dropped when the user picks one


SEGMENT_SECONDS = 2.0  # a stopped video render loses at most the frames not yet in a closed segment (none on Ctrl-C)


@dataclass
class _Segment:
    container: Any
    stream: Any
    first: int
    last: int
    tmp: Path


class VideoWriter(FrameWriter):
    """One video file via PyAV (FFmpeg), Rec.709-tagged, with the source's audio copied across.

    Resumable: frames are encoded into closed ~2 s segments in a hidden ``.NAME.parts`` folder beside the
    output (a stop, Ctrl-C included, keeps every frame handed over), and ``exists`` reports them, so a render
    run again encodes only what is missing. When every frame of the output (``spec.first_frame`` and
    ``spec.frame_count`` frames on) is there, ``close`` joins the segments without re-encoding, adds the
    audio and renames the file into place. Segments of a render with another size, rate, codec, options or
    range are discarded.
    """

    codec: ClassVar[_Codec]
    takes_yuv = True
    resumable = True

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
        self._parts = self._path.with_name(f".{self._path.name}.parts")
        tuning = {} if "preset" in spec.options else self.codec.tuning
        self._options = {**self.codec.options, **tuning, **spec.options}
        self._per_segment = max(1, round(float(spec.fps) * SEGMENT_SECONDS))
        self._seg: _Segment | None = None
        self._done = self._existing_segments()

    # segments ---------------------------------------------------------------------------------
    def _manifest(self) -> str:
        s = self.spec
        return json.dumps({"width": s.width, "height": s.height, "fps": str(s.fps), "codec": self.codec.name,
                           "pix_fmt": self.codec.pix_fmt, "options": self._options, "first": s.first_frame,
                           "count": s.frame_count, "alpha": s.alpha}, sort_keys=True)  # fmt: skip

    def _existing_segments(self) -> dict[int, int]:
        """{first: last} of the closed segments of an earlier run of this same render."""
        man = self._parts / "render.json"
        if not self._parts.is_dir():
            return {}
        if not man.is_file() or man.read_text() != self._manifest():
            shutil.rmtree(self._parts, ignore_errors=True)
            return {}
        done = {}
        for f in self._parts.glob(f"seg.*{self._path.suffix}"):
            m = re.fullmatch(r"seg\.(-?\d+)_(-?\d+)", f.stem)
            if m:
                done[int(m[1])] = int(m[2])
        return done

    def exists(self, frame: int) -> bool:
        return any(a <= frame <= b for a, b in self._done.items())

    def _open_segment(self, frame: int) -> _Segment:
        try:
            self._parts.mkdir(exist_ok=True)
            (self._parts / "render.json").write_text(self._manifest())
            tmp = self._parts / f".seg.{frame}.partial-{os.getpid()}{self._path.suffix}"
            out = av.open(str(tmp), "w")
            st: Any = out.add_stream(self.codec.name, rate=self.spec.fps, options=self._options)
        except (av.FFmpegError, OSError, ValueError) as err:
            raise WriterError(f"cannot write {self._path}: {err}") from None
        st.width, st.height, st.pix_fmt = self.spec.width, self.spec.height, self.codec.pix_fmt
        cc = st.codec_context
        cc.color_range, cc.colorspace, cc.color_primaries, cc.color_trc = 1, 1, 1, 1  # limited, BT.709
        return _Segment(out, st, frame, frame - 1, tmp)

    def _close_segment(self) -> None:
        seg, self._seg = self._seg, None
        if seg is None:
            return
        try:
            for pkt in seg.stream.encode(None):
                seg.container.mux(pkt)
            seg.container.close()
        except (av.FFmpegError, OSError) as err:
            with contextlib.suppress(OSError):
                seg.tmp.unlink()
            raise WriterError(f"cannot write {self._path}: {err}") from None
        if seg.last >= seg.first:
            os.replace(seg.tmp, self._parts / f"seg.{seg.first}_{seg.last}{self._path.suffix}")
            self._done[seg.first] = seg.last
        else:
            seg.tmp.unlink()

    @property
    def wants_alpha(self) -> bool:
        return self.spec.alpha and self.codec.alpha

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
        """Encode plate frame ``frame``: RGB / grey code values, or a :class:`Yuv420` frame (taken as is)."""
        h, w = rgb.size if isinstance(rgb, Yuv420) else rgb.shape[:2]
        if (h, w) != (self.spec.height, self.spec.width):
            raise WriterError(f"frame {frame} is {w}x{h}, the output is {self.spec.width}x{self.spec.height}")
        seg = self._seg
        if seg is not None and (frame != seg.last + 1 or seg.last - seg.first + 1 >= self._per_segment):
            self._close_segment()
        if self._seg is None:
            self._seg = self._open_segment(frame)
        seg = self._seg
        vf = self._frame(rgb, alpha)
        vf.pts = frame - seg.first
        vf.time_base = 1 / Fraction(self.spec.fps)
        try:
            for pkt in seg.stream.encode(vf):
                seg.container.mux(pkt)
        except (av.FFmpegError, OSError) as err:
            raise WriterError(f"cannot write {self._path}: {err}") from None
        seg.last = frame

    def close(self) -> None:
        """Close the last segment; when every frame is there, join the segments into the output."""
        self._close_segment()
        first = self.spec.first_frame
        count = self.spec.frame_count
        if count is None:  # no declared length: what was written, from its first frame
            first = min(self._done, default=first)
            count = max(self._done.values(), default=first - 1) - first + 1
        if count <= 0 or not all(self.exists(f) for f in range(first, first + count)):
            return  # partial (a stopped render): the segments wait for the next run
        try:
            self._join(first, count)
        except (av.FFmpegError, OSError) as err:
            raise WriterError(f"cannot finish {self._path}: {err}") from None
        shutil.rmtree(self._parts, ignore_errors=True)

    def abort(self) -> None:
        """Keep what was encoded: the open segment is closed with the frames it has."""
        with contextlib.suppress(Exception):
            self._close_segment()

    def discard(self) -> None:
        self.abort()
        shutil.rmtree(self._parts, ignore_errors=True)

    def _join(self, first: int, count: int) -> None:
        """Output = the segments covering ``first``.. in order (packets copied, not re-encoded) + audio."""
        tmp = _partial(self._path)
        order = sorted(a for a in self._done if a <= first + count - 1 and self._done[a] >= first)
        out = av.open(str(tmp), "w")
        audio = None
        try:
            vout = None
            for a in order:
                with av.open(str(self._parts / f"seg.{a}_{self._done[a]}{self._path.suffix}")) as seg:
                    vin: Any = seg.streams.video[0]
                    if vout is None:
                        vout = out.add_stream_from_template(vin)
                        if self.spec.audio is not None:
                            audio = _AudioCopy(out, *self.spec.audio, float(count / self.spec.fps))
                    shift = round(float((a - first) / self.spec.fps) / float(vin.time_base))
                    for pkt in seg.demux(vin):
                        if pkt.dts is None and pkt.pts is None:  # the demuxer's end-of-stream packet
                            continue
                        pkt.pts = None if pkt.pts is None else pkt.pts + shift
                        pkt.dts = None if pkt.dts is None else pkt.dts + shift
                        pkt.stream = vout
                        out.mux(pkt)
                if audio is not None:
                    audio.copy_until(float((self._done[a] + 1 - first) / self.spec.fps) + 0.5)
            if audio is not None:
                audio.copy_until(float("inf"))
            out.close()
        except BaseException:
            with contextlib.suppress(Exception):
                out.close()
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        finally:
            if audio is not None:
                audio.close()
        os.replace(tmp, self._path)


class _AudioCopy:
    """Source audio packets from ``start`` s for ``length`` s, copied into ``out`` (times from 0)."""

    def __init__(self, out: Any, src: str, start: float, length: float) -> None:
        try:
            self._in: Any = av.open(src)
        except (av.FFmpegError, OSError) as err:
            raise WriterError(f"cannot read audio from {src}: {err}") from None
        self._packets: Iterator[Any] | None = None
        if self._in.streams.audio:
            a_in = self._in.streams.audio[0]
            self._out, self._a_out, self._tb = out, out.add_stream_from_template(a_in), float(a_in.time_base or 1)
            self._start, self._end = start, start + length
            self._packets = (p for p in self._in.demux(a_in) if p.pts is not None)
        self._pending: Any = None

    def copy_until(self, until: float) -> None:
        """Copy packets whose time (relative to the first frame) is before ``until`` s."""
        if self._packets is None:
            return
        offset = round(self._start / self._tb)
        while True:
            pkt = self._pending or next(self._packets, None)
            self._pending = None
            if pkt is None:
                self._packets = None
                return
            t = float(pkt.pts * self._tb)
            if t >= self._end or t < self._start:
                continue
            if t - self._start >= until:
                self._pending = pkt
                return
            pkt.pts -= offset
            if pkt.dts is not None:
                pkt.dts -= offset
            pkt.stream = self._a_out
            self._out.mux(pkt)

    def close(self) -> None:
        self._in.close()


@WRITERS.register("h264")
class H264Writer(VideoWriter):
    """H.264 4:2:0 8-bit (libx264, CRF 16): reviews and dailies.

    x264's ultrafast preset with CABAC and one step of sub-pixel refinement back on: at 1080p the files are the
    size of superfast's with ~30% less CPU a frame (bench/RESULTS.md). ``--codec-option preset=...`` picks a
    plain x264 preset instead."""

    extensions = (".mp4", ".mov", ".mkv")
    codec = _Codec(
        "libx264", "yuv420p", {"crf": "16", "preset": "ultrafast"}, tuning={"x264-params": "cabac=1:subme=1"}
    )


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
