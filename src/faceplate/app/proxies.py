"""Display proxies of frames: float frames → display-referred 8-bit RGB through an OCIO view → JPEG/PNG,
cached in the shot folder under a key of everything that makes the proxy (source file and its stamp, frame,
layer, view, encoding), so a re-rendered output never serves a stale proxy.

Pure array functions first; :class:`ProxyCache` does the (atomic) file I/O.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import OpenImageIO as oiio
import PyOpenColorIO as ocio
from numpy.typing import NDArray

from faceplate.errors import ConfigError, WriterError
from faceplate.fileio import atomic_write_bytes
from faceplate.media import colour
from faceplate.media.plate import open_as_stored

PROXY_VERSION = 1  # bump when the proxy maths change: old cache files are then never read
#: Delta proxies show |comp - plate| times this (a change of 1/64 saturates; the page's gain scales further).
DELTA_GAIN = 64.0
Processor = Callable[[NDArray[np.float32]], None]


@dataclass(frozen=True)
class View:
    """An OCIO display + view for a source colour space; ``raw`` shows the values as encoded."""

    colorspace: str
    display: str
    view: str

    @property
    def raw(self) -> bool:
        return self.view == "Raw"

    def label(self) -> str:
        return f"{self.display} / {self.view}"


def resolve_view(colorspace: str, display: str | None, view: str, config: ocio.Config | None = None) -> View:
    """The view of a plate in ``colorspace``: ``display`` (None: the config's default) and ``view``
    ("auto": Raw for display-like spaces such as Rec.709 video, else Un-tone-mapped). ConfigError on names
    the config lacks."""
    cfg = config or colour.load_config()
    disp = display or str(cfg.getDefaultDisplay())
    if disp not in list(cfg.getDisplays()):
        raise ConfigError(f"unknown OCIO display {disp!r}; use one of: {', '.join(cfg.getDisplays())}")
    views = list(cfg.getViews(disp))
    if view == "auto":
        view = "Raw" if colour.is_display_like(colorspace) else "Un-tone-mapped"
        view = view if view in views else str(cfg.getDefaultView(disp))
    if view not in views:
        raise ConfigError(f"unknown view {view!r} of display {disp!r}; use one of: {', '.join(views)}")
    return View(colorspace, disp, view)


#: OCIO ops that act on each channel on its own (a matrix only when diagonal): a view made of these alone
#: maps every half-float value the same way in any pixel, so a table of all 65536 halves gives it exactly.
_PER_CHANNEL_OPS = (
    ocio.ExponentTransform,
    ocio.ExponentWithLinearTransform,
    ocio.LogTransform,
    ocio.LogAffineTransform,
    ocio.LogCameraTransform,
    ocio.RangeTransform,
    ocio.Lut1DTransform,
)


def _per_channel(proc: ocio.Processor) -> bool:
    """Does ``proc`` (as its default CPU processor runs it: OPTIMIZATION_DEFAULT) never mix channels?"""
    for t in proc.getOptimizedProcessor(ocio.OPTIMIZATION_DEFAULT).createGroupTransform():
        if isinstance(t, ocio.MatrixTransform):
            m = np.asarray(t.getMatrix(), np.float64).reshape(4, 4)[:3, :3]
            if np.count_nonzero(m - np.diag(np.diag(m))):
                return False
        elif not isinstance(t, _PER_CHANNEL_OPS):
            return False
    return True


class ViewProcessor:
    """In-place processor of float32 (..., 3) C-contiguous RGB from a view's colour space to its display;
    ``half_table`` (per-channel views only, else None): the uint8 proxy code of every half-float value, a
    (65536, 3) table indexed by the half's bits, made by the same processor (and NaN/Inf → 0) as
    :func:`display8`'s float path, so a half frame's proxy from it is identical."""

    def __init__(self, cpu: ocio.CPUProcessor | None, per_channel: bool) -> None:
        self._cpu = cpu
        self.half_table: NDArray[np.uint8] | None = None
        if per_channel:
            halves = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)
            x = np.repeat(np.nan_to_num(halves, nan=0.0, posinf=0.0, neginf=0.0)[:, None], 3, axis=1)
            x = np.ascontiguousarray(x)
            self(x)
            self.half_table = colour.to_uint8(x)
        self._same = self.half_table is not None and bool((self.half_table == self.half_table[:, :1]).all())

    def __call__(self, rgb: NDArray[np.float32]) -> None:
        if self._cpu is not None:
            self._cpu.applyRGB(rgb)

    def halves8(self, bits: NDArray[np.uint16]) -> NDArray[np.uint8] | None:
        """Half-float RGB (H, W, 3), as its bits, → uint8 display RGB through the table; None without one."""
        t = self.half_table
        if t is None:
            return None
        if self._same:
            return np.take(t[:, 0], bits)
        out = np.empty(bits.shape, np.uint8)
        for c in range(3):
            out[..., c] = t[:, c][bits[..., c]]
        return out


def view_processor(v: View, config: ocio.Config | None = None) -> ViewProcessor:
    """In-place processor of float32 (..., 3) C-contiguous RGB from ``v.colorspace`` to the display."""
    if v.raw:
        return ViewProcessor(None, True)
    cfg = config or colour.load_config()
    t = ocio.DisplayViewTransform(src=v.colorspace, display=v.display, view=v.view)
    proc = cfg.getProcessor(t)
    return ViewProcessor(proc.getDefaultCPUProcessor(), _per_channel(proc))


def display8(rgb: NDArray[Any], proc: Processor) -> NDArray[np.uint8]:
    """Float RGB (H, W, 3) in the source's colour space → uint8 display RGB (H, W, 3); NaN/Inf → 0.

    A whole half-float frame from :meth:`faceplate.app.sources.Reader.rgb` (it carries its half bits, see
    :func:`half_bits`) through a per-channel view takes the view's table instead: the same codes, ~6x faster.
    """
    bits = half_bits(rgb)
    if bits is not None and isinstance(proc, ViewProcessor):
        fast = proc.halves8(bits)
        if fast is not None:
            return fast
    x = np.ascontiguousarray(np.nan_to_num(np.asarray(rgb, np.float32), nan=0.0, posinf=0.0, neginf=0.0))
    proc(x)  # nan_to_num copied: the caller's frame is left alone
    return colour.to_uint8(x)


class HalfFrame(np.ndarray):
    """A read-only float32 frame (H, W, 3) read from half floats, with those halves' bits (``bits``, uint16):
    what :func:`display8` looks a view's table up with. Slices and copies are plain arrays (no bits)."""

    bits: NDArray[np.uint16]


def half_frame(bits: NDArray[np.uint16]) -> NDArray[np.float32]:
    """Half-float RGB (H, W, 3) as its bits → the exact float32 values, carrying the bits (read-only)."""
    flat = np.ascontiguousarray(bits).view(np.int16).reshape(bits.shape[0], -1)
    f = np.asarray(cv2.convertFp16(flat)).reshape(bits.shape).view(HalfFrame)  # F16C: ~12x numpy's astype
    f.bits = bits
    f.flags.writeable = False  # the bits must stay the values' own
    bits.flags.writeable = False
    return f


def half_bits(rgb: Any) -> NDArray[np.uint16] | None:
    """The half bits a :func:`half_frame` carries (None for any other array, slices of one included)."""
    if type(rgb) is not HalfFrame or rgb.flags.writeable:
        return None
    bits = getattr(rgb, "bits", None)
    return bits if bits is not None and bits.shape == rgb.shape else None


def read_rgb(path: str, pick: Callable[[Any], Any]) -> NDArray[Any] | None:
    """R, G, B (H, W, 3) of an image file as stored (:func:`open_as_stored`), in the OIIO type ``pick`` (the
    file's spec → a type, or None: not this path) says; None where it cannot be opened, ``pick`` declines or
    the read comes back short."""
    inp = open_as_stored(path)
    if inp is None:
        oiio.geterror()  # (cleared: the caller takes its general path)
        return None
    try:
        spec = inp.spec()
        kind = pick(spec)
        px = None if kind is None else inp.read_image(0, 0, 0, 3, kind)
    finally:
        inp.close()
    if px is None or getattr(px, "size", 0) != spec.width * spec.height * 3:
        return None
    return np.asarray(px).reshape(spec.height, spec.width, 3)


def _half_rgb(spec: Any) -> Any:
    names, formats = list(spec.channelnames), spec.channelformats[:3] or [spec.format]
    return oiio.HALF if names[:3] == ["R", "G", "B"] and all(str(f) == "half" for f in formats) else None


def read_halves(path: str) -> NDArray[np.uint16] | None:
    """A half-float image file's R, G, B (its first three channels, so named) as half bits (H, W, 3), read
    as stored: a third of the cost of the plate's float read of every channel. None for any other file."""
    if Path(path).suffix.lower() != ".exr":
        return None
    px = read_rgb(path, _half_rgb)
    return None if px is None else px.view(np.uint16)


#: Image files whose 8- or 16-bit codes a Raw view shows as they are: read without the float pass.
INT_IMAGES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


def codes8(codes: NDArray[Any]) -> NDArray[np.uint8]:
    """uint8 or uint16 codes → uint8 codes rounded to nearest: what :func:`display8` makes of them through a Raw
    view (``v / 65535 * 255 = v / 257`` never falls on a half, so integer rounding agrees exactly)."""
    if codes.dtype == np.uint8:
        return codes
    return ((codes.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _int_rgb(spec: Any) -> Any:
    fmt, bits = str(spec.format), spec.get_int_attribute("oiio:BitsPerSample", 0)
    if fmt not in ("uint8", "uint16") or bits in (10, 12) or list(spec.channelnames)[:3] != ["R", "G", "B"]:
        return None
    return oiio.UINT8 if fmt == "uint8" else oiio.UINT16


def read_codes8(path: str) -> NDArray[np.uint8] | None:
    """An 8- or 16-bit RGB(A) image file's colour as uint8 codes (H, W, 3), read as stored: the Raw view's
    proxy at about half the cost of a float read. None for any other file (float, packed 10/12-bit,
    fewer than three colour channels, unreadable): the caller takes the general path."""
    if Path(path).suffix.lower() not in INT_IMAGES:
        return None
    px = read_rgb(path, _int_rgb)
    return None if px is None else codes8(px)


def matte8(alpha: NDArray[Any]) -> NDArray[np.uint8]:
    """A matte (H, W) or (H, W, C) float in [0, 1] → grey uint8 RGB (H, W, 3) (first channel of a colour one)."""
    a = np.asarray(alpha, np.float32)
    a = a[..., 0] if a.ndim == 3 else a
    return np.repeat(colour.to_uint8(np.nan_to_num(a))[..., None], 3, axis=2)


def delta8(delta: NDArray[Any]) -> NDArray[np.uint8]:
    """A delta (comp - plate) (H, W, 3) float → uint8 RGB (H, W, 3) of ``|delta| * DELTA_GAIN``."""
    d = np.abs(np.nan_to_num(np.asarray(delta, np.float32)[..., :3]))
    return colour.to_uint8(d * np.float32(DELTA_GAIN))


def encode(rgb8: NDArray[np.uint8], fmt: str = "jpeg", quality: int = 92) -> bytes:
    """uint8 RGB (H, W, 3) → JPEG (4:4:4, no chroma blur of fine comp edges) or PNG bytes."""
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb8), cv2.COLOR_RGB2BGR)
    if fmt == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    else:
        params = [
            cv2.IMWRITE_JPEG_QUALITY,
            quality,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
        ]
        ok, buf = cv2.imencode(".jpg", bgr, params)
    if not ok:
        raise WriterError(f"cannot encode a {fmt} proxy")
    return bytes(buf.tobytes())


def file_stamp(path: str) -> list[int]:
    """[size, mtime in ns] of a file: changes whenever the file is rewritten."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def proxy_key(source: str, stamp: list[int], frame: int, layer: str, view: View, fmt: str, quality: int) -> str:
    """Hex key of one proxy: everything that decides its pixels."""
    what = {
        "v": PROXY_VERSION,
        "src": source,
        "stamp": stamp,
        "frame": frame,
        "layer": layer,
        "view": [view.colorspace, view.display, view.view],
        "fmt": fmt,
        "q": quality if fmt == "jpeg" else 0,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:32]


class ProxyCache:
    """Encoded proxies in a folder (``SHOT/review_cache``), one file per key, written atomically.

    ``limit`` (bytes, 0: none) bounds the folder: when a put takes it past the limit, the least recently used
    proxies (a read refreshes a file's time) are removed until it holds 80% of it.
    """

    def __init__(self, folder: Path, fmt: str = "jpeg", limit: int = 0) -> None:
        self.folder = folder
        self.ext = ".png" if fmt == "png" else ".jpg"
        self.limit = limit
        self._lock = threading.Lock()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise WriterError(f"cannot create the proxy cache {folder}: {err.strerror}") from None
        self.size = sum(size for _, _, size in self._files())
        self.trim()

    def path(self, key: str) -> Path:
        return self.folder / f"{key}{self.ext}"

    def get(self, key: str) -> bytes | None:
        path = self.path(key)
        try:
            data = path.read_bytes()
            os.utime(path)  # most recently used
        except OSError:
            return None
        return data

    def put(self, key: str, data: bytes) -> None:
        atomic_write_bytes(self.path(key), data)
        with self._lock:
            self.size += len(data)
        self.trim()

    def get_or_make(self, key: str, make: Callable[[], bytes]) -> bytes:
        """The cached proxy of ``key``, made (and stored) by ``make()`` when missing."""
        data = self.get(key)
        if data is None:
            data = make()
            self.put(key, data)
        return data

    def _files(self) -> list[tuple[int, Path, int]]:
        """(mtime ns, path, size) of every proxy in the folder."""
        out = []
        with os.scandir(self.folder) as it:
            for e in it:
                if e.name.endswith(self.ext) and e.is_file():
                    with contextlib.suppress(OSError):
                        st = e.stat()
                        out.append((st.st_mtime_ns, Path(e.path), st.st_size))
        return out

    def trim(self) -> int:
        """Remove the least recently used proxies while the folder is past its limit (down to 80%); how many."""
        if not self.limit or self.size <= self.limit:
            return 0
        with self._lock:
            files = sorted(self._files(), key=lambda f: f[0])
            total, removed = sum(f[2] for f in files), 0
            for _, path, size in files:
                if total <= 0.8 * self.limit:
                    break
                with contextlib.suppress(OSError):
                    path.unlink()
                    total -= size
                    removed += 1
            self.size = total
        return removed
