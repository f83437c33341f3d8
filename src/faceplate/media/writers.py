"""Writers for comps, mattes and deltas: image sequences (OIIO) and video files (PyAV), one registry.

Every writer takes RGB (H, W, 3) or a grey matte (H, W) as uint8, uint16 or float32 code values (so 8-bit
video can go from decoder to encoder without a float round trip), plus an optional matte as alpha. Files appear
atomically (written under a temporary name, then renamed), so a killed render never leaves a half frame,
and sequence writers report frames that already exist so renders resume frame by frame. Leftover partial
files of killed runs are removed when a writer opens; a video output is locked while it is written; a full
disk is reported as such (see faceplate.fileio).
"""

from __future__ import annotations

import contextlib
import functools
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
from av.video.reformatter import Colorspace, VideoReformatter
from numpy.typing import NDArray

from faceplate.errors import ConfigError, WriterError
from faceplate.fileio import (
    FileLock,
    atomic_write,
    atomic_write_text,
    partial_path,
    partial_regex,
    remove_stale_partials,
    write_error,
)
from faceplate.media import colour
from faceplate.media.frames import is_pattern, pattern_path, pattern_regex
from faceplate.media.yuv import Yuv420, to_rgb
from faceplate.registry import Registry


@dataclass(frozen=True)
class WriterSpec:
    """Where and how to write. ``path`` is a video file or a sequence pattern (``comp.####.exr``); a
    single-frame output (``frame_count == 1``) may also be one plain image file (``still.png``)."""

    path: str
    width: int
    height: int
    fps: Fraction = Fraction(24)
    format: str | None = None  # registry name; None → from the extension
    colorspace: str = colour.VIDEO_709
    alpha: bool = False  # write the matte as alpha where the format allows it (an RGBA frame keeps its own)
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

    @property
    def deep(self) -> bool:
        """Does the output keep more than 8 bits a channel? (Then an 8-bit plate's change need not be rounded
        to whole 8-bit code values.)"""
        return False

    @abstractmethod
    def write(self, frame: int, rgb: NDArray[Any] | Yuv420, alpha: NDArray[Any] | None = None) -> None:
        """Write frame ``frame``: RGB (H, W, 3), RGBA (H, W, 4) or a grey matte (H, W); uint8, uint16 or
        float32 [0, 1] (scene-linear floats may exceed 1 in float formats), or an 8-bit :class:`Yuv420` video
        frame (video writers take its planes as they are; others its RGB). ``alpha`` (H, W), the matte, rides
        along where supported and ``spec.alpha`` is set; an RGBA frame keeps its own alpha (the plate's)
        instead, written where the format has alpha and dropped elsewhere."""

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


def _check_dir(path: Path) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriterError(f"cannot create output folder {folder}: {err.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise WriterError(f"output folder {folder} is not writable")


# ---------------------------------------------------------------------------------------- sequences


STALE_SECONDS = 120.0  # a partial frame of a process not running here, unchanged this long, is a leftover
_CHANNELS = {1: ("Y",), 2: ("Y", "A"), 3: ("R", "G", "B"), 4: ("R", "G", "B", "A")}


def write_image(tmp: Path, path: Path, px: NDArray[Any], spec: Any) -> None:
    """Write ``px`` (H, W, C) with the OIIO ImageSpec ``spec`` to ``tmp``; errors name ``path``, the file it
    becomes (the caller renames ``tmp`` into place)."""
    out = oiio.ImageOutput.create(str(tmp))
    if out is None:
        raise write_error(path, oiio.geterror() or "no image writer for this extension")
    ok = False
    try:
        ok = bool(out.open(str(tmp), spec) and out.write_image(px))
        err = out.geterror()
    finally:
        ok = bool(out.close()) and ok
    if not ok:
        raise write_error(path, err or out.geterror() or "disk full or not writable?")


class SequenceWriter(FrameWriter):
    """Numbered image files via OpenImageIO (or one file for a single-frame output). Subclasses set the
    pixel type and channels."""

    pixel: ClassVar[Any] = oiio.HALF
    compression: ClassVar[str] = "none"
    resumable = True
    farmable = True

    def __init__(self, spec: WriterSpec) -> None:
        super().__init__(spec)
        path = Path(spec.path)
        self._single = spec.frame_count == 1 and not is_pattern(path.name)
        if not self._single and not is_pattern(path.name):
            raise WriterError(
                f"{spec.path} is not a sequence pattern: write {path.stem}.####{path.suffix} "
                "(a plain file name is only for a single-frame output)"
            )
        _check_dir(path)
        self._written: list[Path] = []
        rx = self._partials()
        if rx is not None:
            remove_stale_partials(path.parent, rx, STALE_SECONDS)

    def path_of(self, frame: int) -> Path:
        """File of plate frame ``frame`` (a single-frame output: its one file, whatever the number)."""
        return Path(self.spec.path) if self._single else pattern_path(self.spec.path, frame)

    def _partials(self) -> re.Pattern[str] | None:
        """Partial names of this output's files, of any process (None: the frame number is in the extension)."""
        p = Path(self.spec.path)
        if self._single:
            return partial_regex(re.escape(p.stem), p.suffix)
        try:
            _, rx = pattern_regex(p.stem)
        except ConfigError:
            return None
        return partial_regex(rx.pattern[1:-1], p.suffix)

    def exists(self, frame: int) -> bool:
        return self.path_of(frame).is_file()

    dtype: ClassVar[Any] = np.float32  # what we hand OIIO (it converts to ``pixel`` exactly)

    @property
    def deep(self) -> bool:
        return np.dtype(self.dtype) != np.uint8

    def _pixels(self, rgb: NDArray[Any], alpha: NDArray[Any] | None) -> NDArray[Any]:
        """(H, W, C) pixels: the frame's own channels, plus the matte as alpha when asked and it has none."""
        own_alpha = rgb.shape[2] in (2, 4)
        if alpha is None or not self.spec.alpha or own_alpha:
            px = rgb
        else:
            px = np.dstack([rgb, colour.as_dtype(alpha, rgb.dtype)])
        return np.ascontiguousarray(colour.as_dtype(px, self.dtype))

    def write(self, frame: int, rgb: NDArray[Any] | Yuv420, alpha: NDArray[Any] | None = None) -> None:
        if isinstance(rgb, Yuv420):
            rgb = to_rgb(rgb)
        path = self.path_of(frame)
        px = self._pixels(rgb if rgb.ndim == 3 else rgb[..., None], alpha)
        px = px.reshape(rgb.shape[0], rgb.shape[1], -1)  # OpenCV drops a single channel axis
        atomic_write(path, lambda tmp: self._write_file(tmp, path, px))
        self._written.append(path)

    def _write_file(self, tmp: Path, path: Path, px: NDArray[Any]) -> None:
        """Write ``px`` (H, W, C) to ``tmp`` with OIIO; errors name ``path``, the file it becomes."""
        h, w, c = px.shape
        spec = oiio.ImageSpec(w, h, c, self.pixel)
        spec.channelnames = _CHANNELS[c]
        if c in (2, 4):
            spec.alpha_channel = c - 1
        spec.attribute("compression", self.compression)
        spec.attribute("oiio:UnassociatedAlpha", 1)  # the matte is a separate channel: never premultiply
        spec.attribute("oiio:ColorSpace", self.spec.colorspace)
        write_image(tmp, path, px, spec)

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
SHOWN_OPTIONS = 30  # valid codec option names listed when an unknown one is refused
_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                 "placebo")  # fmt: skip
_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {  # checked here: x264/x265 print their own error otherwise
    ("libx264", "preset"): _X26X_PRESETS,
    ("libx265", "preset"): _X26X_PRESETS,
    ("libx264", "tune"): ("film", "animation", "grain", "stillimage", "psnr", "ssim", "fastdecode", "zerolatency"),
    ("libx265", "tune"): ("psnr", "ssim", "grain", "zerolatency", "fastdecode", "animation"),
}


@functools.cache
def codec_option_names(codec: str) -> tuple[str, ...]:
    """Encoding options FFmpeg encoder ``codec`` takes: its private ones (sorted), then the generic video ones."""
    so = av.codec.CodecContext.create(codec, "w").supported_options
    flags = av.codec.context.OptionFlags
    video = flags.ENCODING_PARAM | flags.VIDEO_PARAM
    own = sorted(o.name for o in so.private if o.flags & flags.ENCODING_PARAM)
    generic = sorted(o.name for o in so.generic if o.flags & video == video and o.name not in own)
    return tuple(own + generic)


def _probe_codec(codec: str, pix_fmt: str, spec: WriterSpec, options: dict[str, str]) -> str | None:
    """Open encoder ``codec`` with ``options`` for ``spec``'s size and rate; FFmpeg's complaint, None if fine.

    Option values FFmpeg cannot parse fail the open; a bad key inside x264-params / x265-params only logs a
    warning (and is ignored), so warnings about options count as failures too."""
    cc: Any = av.codec.CodecContext.create(codec, "w")
    cc.width, cc.height, cc.pix_fmt = spec.width, spec.height, pix_fmt
    cc.time_base, cc.framerate = 1 / Fraction(spec.fps), Fraction(spec.fps)
    cc.options = dict(options)
    level, skip = av.logging.get_level(), av.logging.get_skip_repeated()
    av.logging.set_level(av.logging.WARNING)
    av.logging.set_skip_repeated(False)
    try:
        with av.logging.Capture() as logs:
            try:
                cc.open()
                failed = False
            except av.FFmpegError:
                failed = True
    finally:
        av.logging.set_level(level)
        av.logging.set_skip_repeated(skip)
    msgs = [m.strip() for lvl, _, m in logs if lvl <= av.logging.WARNING and (failed or "option" in m.lower())]
    return (msgs[-1] if msgs else "FFmpeg refused it") if failed or msgs else None


_PACKED = {"gray": 1, "gray16le": 2, "rgb24": 3, "rgb48le": 6, "rgba64le": 8}  # one plane: bytes a pixel


def video_frame(planes: list[NDArray[Any]], fmt: str) -> av.VideoFrame:
    """A new frame of ``fmt`` holding a copy of ``planes``: the one (H, W[, C]) array of a packed format
    (``_PACKED``; 16-bit samples little-endian, as on x86 and ARM) or the Y, U, V planes of ``yuv420p``.
    Each is copied once into the frame's padded plane (``VideoFrame.from_ndarray`` copies twice)."""
    h, w = planes[0].shape[:2]
    frame = av.VideoFrame(w, h, fmt)
    for src, plane in zip(planes, frame.planes, strict=True):
        row = plane.width * _PACKED.get(fmt, 1)
        view = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, abs(plane.line_size))
        view[:, :row] = np.ascontiguousarray(src).view(np.uint8).reshape(plane.height, row)
    return frame


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
        quiet = self.codec.options.get("x265-params", "")  # keep x265 quiet with the user's own x265-params
        if "log-level" in quiet and "log-level" not in self._options["x265-params"]:
            self._options["x265-params"] = ":".join(filter(None, (self._options["x265-params"], "log-level=error")))
        if spec.options:
            self._check_options()
        self._per_segment = max(1, round(float(spec.fps) * SEGMENT_SECONDS))
        self._seg: _Segment | None = None
        self._sws = VideoReformatter()  # one scaler context for every frame (a frame's own is rebuilt per frame)
        self._lock = self._take_lock()
        try:
            self._done = self._existing_segments()
            self._remove_stale()
        except BaseException:
            self._lock.release()
            raise

    # safety -----------------------------------------------------------------------------------
    @property
    def _label(self) -> str:
        name = next((n for n in WRITERS if WRITERS.get(n) is type(self)), self.codec.name)
        return f"{name} ({self.codec.name})"

    def _check_options(self) -> None:
        """Refuse unknown codec option names and values FFmpeg (or x264 / x265) cannot use, naming the option."""
        valid = codec_option_names(self.codec.name)
        for key, value in self.spec.options.items():
            if key not in valid:
                ours = [k for k in {**self.codec.options, **self.codec.tuning} if k in valid]
                names = ours + [n for n in valid if n not in ours]
                shown = ", ".join(names[:SHOWN_OPTIONS]) + (", …" if len(names) > SHOWN_OPTIONS else "")
                raise WriterError(f"unknown codec option {key!r} for {self._label}; valid: {shown}")
            choices = _CHOICES.get((self.codec.name, key))
            if choices and not all(v in choices for v in re.split(r"[,./]", value)):
                valid_values = ", ".join(choices)
                raise WriterError(f"codec option {key}={value} is invalid for {self._label}; valid: {valid_values}")
        if _probe_codec(self.codec.name, self.codec.pix_fmt, self.spec, self._options) is None:
            return
        for key, value in self.spec.options.items():
            alone = {**self.codec.options, key: self._options[key]}
            problem = _probe_codec(self.codec.name, self.codec.pix_fmt, self.spec, alone)
            if problem is not None:
                raise WriterError(f"codec option {key}={value} is invalid for {self._label}: {problem}")
        given = " ".join(f"{k}={v}" for k, v in self.spec.options.items())
        raise WriterError(f"codec options {given} do not work together for {self._label}; drop some of them")

    def _take_lock(self) -> FileLock:
        """Lock the output against other writers (the lock file sits beside the parts folder)."""
        lock = FileLock(self._path.with_name(f".{self._path.name}.lock"))
        try:
            free = lock.acquire()
        except OSError as err:
            raise write_error(lock.path, err) from None
        if not free:
            pid = lock.holder()
            raise WriterError(
                f"{self._path} is being written by another faceplate process (pid {pid or '?'}); "
                "wait for it or choose another -o"
            )
        return lock

    def _remove_stale(self) -> None:
        """Remove partial segments and joins of earlier runs that were killed."""
        suffix = self._path.suffix
        remove_stale_partials(self._parts, partial_regex(r"seg\.-?\d+", suffix))
        remove_stale_partials(self._path.parent, partial_regex(re.escape(self._path.stem), suffix))

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

    def _segment_path(self, first: int, last: int) -> Path:
        return self._parts / f"seg.{first}_{last}{self._path.suffix}"

    def _error(self, err: BaseException) -> WriterError:
        """One-line error for a failed encode or write, naming the user's codec options if any."""
        werr = write_error(self._path, err)
        if self.spec.options and not str(werr).startswith("disk full"):
            given = " ".join(f"{k}={v}" for k, v in self.spec.options.items())
            return WriterError(f"{werr} (codec options {given})")
        return werr

    def _open_segment(self, frame: int) -> _Segment:
        try:
            self._parts.mkdir(exist_ok=True)
            if not (self._parts / "render.json").is_file():
                atomic_write_text(self._parts / "render.json", self._manifest())
            tmp = partial_path(self._parts / f"seg.{frame}{self._path.suffix}")
            out = av.open(str(tmp), "w")
            st: Any = out.add_stream(self.codec.name, rate=self.spec.fps, options=self._options)
        except (av.FFmpegError, OSError, ValueError) as err:
            raise self._error(err) from None
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
            if seg.last >= seg.first:
                os.replace(seg.tmp, self._segment_path(seg.first, seg.last))
                self._done[seg.first] = seg.last
            else:
                seg.tmp.unlink()
        except (av.FFmpegError, OSError) as err:
            with contextlib.suppress(Exception):
                seg.container.close()
            with contextlib.suppress(OSError):
                seg.tmp.unlink()
            raise self._error(err) from None

    @property
    def wants_alpha(self) -> bool:
        return self.spec.alpha and self.codec.alpha

    @property
    def deep(self) -> bool:
        return self.codec.bits > 8

    # video ------------------------------------------------------------------------------------
    def _frame(self, rgb: NDArray[Any] | Yuv420, alpha: NDArray[Any] | None) -> Any:
        if isinstance(rgb, Yuv420):  # 8-bit 4:2:0 Rec.709 limited, as decoded: straight to the encoder
            frame = video_frame(list(rgb.planes()), "yuv420p")
            return frame if self.codec.pix_fmt == "yuv420p" else self._sws.reformat(frame, format=self.codec.pix_fmt)
        if rgb.ndim == 3 and rgb.shape[2] == 4:  # RGBA: its own alpha, not the matte (dropped without alpha)
            rgb, alpha = rgb[..., :3], rgb[..., 3]
        elif not self.spec.alpha:
            alpha = None  # the matte goes into alpha only when asked for
        deep = self.codec.bits > 8
        if rgb.ndim == 2:  # a matte: grey
            px, fmt = colour.as_dtype(rgb, np.uint16 if deep else np.uint8), "gray16le" if deep else "gray"
        elif self.codec.alpha:
            a = np.full(rgb.shape[:2], 65535, np.uint16) if alpha is None else colour.as_dtype(alpha, np.uint16)
            px, fmt = np.dstack([colour.as_dtype(rgb, np.uint16), a]), "rgba64le"
        else:
            px, fmt = colour.as_dtype(rgb, np.uint16 if deep else np.uint8), "rgb48le" if deep else "rgb24"
        frame = video_frame([px], fmt)
        return self._sws.reformat(
            frame,
            format=self.codec.pix_fmt,
            src_colorspace=Colorspace.ITU709,
            dst_colorspace=Colorspace.ITU709,
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
            raise self._error(err) from None
        seg.last = frame

    def close(self) -> None:
        """Close the last segment; when every frame is there, join the segments into the output. Unlocks."""
        try:
            self._finish()
        finally:
            self._lock.release()

    def _finish(self) -> None:
        self._close_segment()
        first = self.spec.first_frame
        count = self.spec.frame_count
        if count is None:  # no declared length: what was written, from its first frame
            first = min(self._done, default=first)
            count = max(self._done.values(), default=first - 1) - first + 1
        if count <= 0 or not all(self.exists(f) for f in range(first, first + count)):
            return  # partial (a stopped render): the segments wait for the next run
        try:
            atomic_write(self._path, lambda tmp: self._join(tmp, first, count))
        except av.FFmpegError as err:
            raise write_error(self._path, err) from None
        shutil.rmtree(self._parts, ignore_errors=True)

    def abort(self) -> None:
        """Keep what was encoded: the open segment is closed with the frames it has. Unlocks."""
        with contextlib.suppress(Exception):
            self._close_segment()
        self._lock.release()

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._close_segment()
        shutil.rmtree(self._parts, ignore_errors=True)
        self._lock.release()

    def _join(self, tmp: Path, first: int, count: int) -> None:
        """Write to ``tmp`` the segments covering ``first``.. in order (packets copied, not re-encoded) + audio."""
        order = sorted(a for a in self._done if a <= first + count - 1 and self._done[a] >= first)
        out = av.open(str(tmp), "w")
        audio = None
        try:
            vout = None
            for a in order:
                with av.open(str(self._segment_path(a, self._done[a]))) as seg:
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
            raise
        finally:
            if audio is not None:
                audio.close()


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
