"""The one render path every effect runs on.

plate → (extract: detect, landmarks, track, smooth) → per frame, per chosen face: align → effect (result +
matte, aligned space) → un-align the *change* and the matte → composite onto the untouched plate → write
comp (+ matte, + delta). Only the change is resampled, so plate detail outside the effect's reach is
bit-identical. Image-sequence renders are idempotent per frame: frames already on disk are skipped, so
a stopped render resumes and a farm can split the shot by frame range (``plan_chunks``).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from faceplate.align import align_image, align_matrix, to_aligned
from faceplate.analysis.faces import interocular
from faceplate.analysis.hands import hand_mask
from faceplate.analysis.smoothing import lookahead
from faceplate.config import ExtractConfig, RenderConfig
from faceplate.cpu import single_thread_blas
from faceplate.effects.base import AlignedFace, Effect
from faceplate.errors import ConfigError, FaceNotFoundError
from faceplate.export import select_tracks
from faceplate.extract import Interrupted, ProgressFn, extract, missing_runs
from faceplate.geometry import F64, invert, transform
from faceplate.media import colour
from faceplate.media.frames import FrameRange
from faceplate.media.plate import Plate, VideoPlate, open_plate
from faceplate.media.prefetch import Background, prefetch
from faceplate.media.writers import WRITERS, FrameWriter, WriterSpec, open_writer, writer_name
from faceplate.media.yuv import Yuv420, add_rgb_change, to_rgb
from faceplate.ops.filters import gauss
from faceplate.store import FaceRow, ShotStore
from faceplate.stream import can_stream, stream_render
from faceplate.timing import Stopwatch

F32 = NDArray[np.float32]
SAMPLES_PER_TRACK = 6
SWEEP = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class RenderSummary:
    out: str
    frames: FrameRange
    written: int
    skipped: int
    faces: int
    tracks: list[int]
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Track:
    id: int
    res: int
    context: Any


def default_shot(plate: str, out: str) -> Path:
    """Shot folder used when none is given: beside the output, named after the plate."""
    stem = re.sub(r"[#%@]+d?|\.+$", "", Path(plate).stem).strip("._-") or "plate"
    return Path(out).parent / f"{stem}.faceplate"


def sibling(out: str, suffix: str, fmt: str | None = None) -> str:
    """``comp.####.exr`` → ``comp_matte.####.exr``; ``comp.mov`` → ``comp_matte.mov``."""
    p = Path(out)
    name = p.name
    m = re.search(r"[.](#+|@+|%0?\d*d)[.]", name)
    if m:
        return str(p.with_name(f"{name[: m.start()]}_{suffix}{name[m.start() :]}"))
    if fmt == "exr":
        return str(p.with_name(f"{p.stem}_{suffix}.####.exr"))
    return str(p.with_name(f"{p.stem}_{suffix}{p.suffix}"))


class _Colour:
    """Plate space ↔ the encoded space effects work in (identity for video and sRGB plates)."""

    def __init__(self, plate_space: str) -> None:
        self.identity = colour.is_display_like(plate_space)
        if not self.identity:
            self._to = colour.converter(plate_space, colour.ANALYSIS_SPACE)
            self._back = colour.converter(colour.ANALYSIS_SPACE, plate_space)

    def encode(self, rgb: F32) -> F32:
        if self.identity:
            return rgb
        out = np.ascontiguousarray(rgb, np.float32).copy()
        self._to(out)
        return out

    def decode(self, rgb: F32) -> F32:
        if self.identity:
            return rgb
        out = np.ascontiguousarray(rgb, np.float32).copy()
        self._back(out)
        return out


def aligned_face(img: NDArray[Any], face: FaceRow, res: int, ftype: str, col: _Colour) -> tuple[AlignedFace, F32, F64]:
    """(face for the effect, the plate-space float crop, plate→crop matrix) of one face of a plate frame.

    ``img`` is a frame as decoded (uint8, uint16 or float32 RGB in plate space).
    """
    lm = face.best
    m = align_matrix(lm, res, ftype)
    crop = colour.to_float(align_image(img, m, res, cv2.INTER_LINEAR))
    alm = to_aligned(m, lm).astype(np.float32)
    return AlignedFace(face.frame, face.track, col.encode(crop), alm, interocular(alm)), crop, m


EIGHT_BIT_FLOOR = 1 / 1024  # matte values that cannot move an 8-bit code value (|change| <= 1: < 0.25 code)


def _footprint(
    alpha: F32, m: F64, shape: tuple[int, int], even: bool = False, floor: float = 0.0
) -> tuple[int, int, int, int, F64] | None:
    """Plate rectangle (x0, y0, x1, y1) under the aligned matte ``alpha`` (R, R) where it exceeds ``floor``,
    clipped to ``shape`` (H, W), with even corners if asked (4:2:0 chroma), and the matrix mapping the
    rectangle's pixels into aligned space. None when nothing of the matte lands on the plate."""
    bx, by, bw, bh = cv2.boundingRect(np.asarray(alpha > floor, np.uint8))
    if bw == 0:
        return None
    h, w = shape
    xa, ya, xb, yb = bx - 1, by - 1, bx + bw, by + bh  # one aligned pixel round the matte's extent
    box = np.array([[xa, ya], [xb, ya], [xa, yb], [xb, yb]], np.float64)
    corners = transform(invert(m), box)
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 1, [w, h])
    if even:
        x0, y0, x1, y1 = x0 - x0 % 2, y0 - y0 % 2, min(x1 + x1 % 2, w), min(y1 + y1 % 2, h)
    if x1 <= x0 or y1 <= y0:
        return None
    mr = m.copy()
    mr[:, 2] = m[:, 2] + m[:, :2] @ np.array([x0, y0], np.float64)
    return int(x0), int(y0), int(x1), int(y1), mr


_UNWARP = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP


def paste(comp: NDArray[Any], matte: F32 | None, change: F32, alpha: F32, m: F64) -> None:
    """Add the aligned ``change`` (R, R, 3) x ``alpha`` (R, R) onto ``comp`` in place; max ``alpha`` into ``matte``
    (if given).

    ``comp`` keeps its dtype (uint8, uint16 or float32 code values). Only the plate rectangle under the
    matte is touched; integer plates are changed by whole code values, so pixels the change does not
    reach stay bit-identical.
    """
    floor = EIGHT_BIT_FLOOR if comp.dtype == np.uint8 else 0.0  # a haze no 8-bit pixel shows: not pasted
    fp = _footprint(alpha, m, (comp.shape[0], comp.shape[1]), floor=floor)
    if fp is None:
        return
    x0, y0, x1, y1, mr = fp
    size = (x1 - x0, y1 - y0)
    peak = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(comp.dtype, 1.0)
    roi = comp[y0:y1, x0:x1]
    if comp.dtype == np.uint8:  # v + round(255 d) in 1/16 code steps, saturated: exact where d == 0
        d16 = np.asarray(np.rint(change * (alpha * (16 * peak))[..., None]), np.int16)
        d = cv2.warpAffine(d16, mr, size, flags=_UNWARP)
        roi[:] = cv2.add(roi, cv2.multiply(d, 1.0 / 16, dtype=cv2.CV_16S), dtype=cv2.CV_8U)  # type: ignore[call-overload]
    else:
        d = cv2.warpAffine(np.ascontiguousarray(change * (alpha * peak)[..., None]), mr, size, flags=_UNWARP)
        if comp.dtype == np.uint16:
            roi[:] = np.clip(roi.astype(np.int32) + np.rint(d).astype(np.int32), 0, 65535).astype(np.uint16)
        else:
            roi += d
    _max_into(matte, alpha, mr, (x0, y0, x1, y1))


def _max_into(matte: F32 | None, alpha: F32, mr: F64, box: tuple[int, int, int, int]) -> None:
    """``matte[box] = max(matte[box], alpha un-aligned by mr)`` (nothing without a matte)."""
    if matte is None:
        return
    x0, y0, x1, y1 = box
    a = cv2.warpAffine(np.ascontiguousarray(alpha), mr, (x1 - x0, y1 - y0), flags=_UNWARP)
    np.maximum(matte[y0:y1, x0:x1], a, out=matte[y0:y1, x0:x1])


def paste_yuv(comp: Yuv420, matte: F32 | None, change: F32, alpha: F32, m: F64) -> None:
    """``paste`` for an 8-bit 4:2:0 frame: the change goes into its Y'CbCr planes (see media.yuv)."""
    fp = _footprint(alpha, m, comp.size, even=True, floor=EIGHT_BIT_FLOOR)
    if fp is None:
        return
    x0, y0, x1, y1, mr = fp
    size = (x1 - x0, y1 - y0)
    d = cv2.warpAffine(np.ascontiguousarray(change * (alpha * 255.0)[..., None]), mr, size, flags=_UNWARP)
    add_rgb_change(comp, d, x0, y0)
    _max_into(matte, alpha, mr, (x0, y0, x1, y1))


def _writers(cfg: RenderConfig, plate: Plate, rng: FrameRange) -> dict[str, FrameWriter]:
    info = plate.info
    audio = plate.audio_at(rng.first) if isinstance(plate, VideoPlate) else None
    name = writer_name(cfg.out, cfg.format)
    base = WriterSpec(cfg.out, info.width, info.height, info.fps, colorspace=info.colorspace, first_frame=rng.first)
    comp = replace(base, format=name, alpha=True, audio=audio, frame_count=len(rng), options=cfg.codec_options)
    out = {"comp": open_writer(comp)}
    matte = cfg.matte if cfg.matte is not None else default_matte(cfg.out, name)
    if matte and matte != "none":
        fast = {"preset": "ultrafast"} if writer_name(matte) in ("h264", "hevc") else {}  # mattes are easy to code
        out["matte"] = open_writer(
            replace(base, path=matte, format=name if writer_name(matte) == name else None, options=fast)
        )
    if cfg.delta:
        if writer_name(cfg.delta) not in ("exr", "exr32"):
            raise ConfigError(f"--delta {cfg.delta}: the delta (comp - plate) has negative values; write it as EXR")
        out["delta"] = open_writer(replace(base, path=cfg.delta))
    return out


def default_matte(out: str, writer: str) -> str | None:
    """Matte path when none is asked for: in the comp's alpha if it has one (EXR, ProRes 4444), a sibling
    sequence for PNG/TIFF comps, and none for review video (H.264, HEVC, DNxHR: pass ``--matte``)."""
    cls = WRITERS.get(writer)
    if cls.has_alpha or not cls.farmable:
        return None
    return sibling(out, "matte")


def _todo(writers: dict[str, FrameWriter], rng: FrameRange) -> list[FrameRange]:
    if not all(w.resumable for w in writers.values()):
        return [rng]
    done = {f for f in range(rng.first, rng.last + 1) if all(w.exists(f) for w in writers.values())}
    return missing_runs(rng, done)


def sample_picks(early: list[FaceRow]) -> list[FaceRow]:
    """Up to SAMPLES_PER_TRACK faces spread evenly over ``early`` (a track's measured faces of its first second)."""
    return [early[i] for i in np.linspace(0, len(early) - 1, min(SAMPLES_PER_TRACK, len(early))).astype(int)]


def track_context(
    effect: Effect,
    col: _Colour,
    track: int,
    early: list[FaceRow],
    images: dict[int, NDArray[Any]],
    identity: F32 | None = None,
) -> _Track:
    """A track's working resolution and effect context from its measured faces in its first second.

    ``early`` in frame order; ``images`` the decoded plate frames of at least ``sample_picks(early)``. Both
    render paths pass the same faces, so a streamed first render and a re-render of the analysed shot agree.
    """
    res = effect.resolution(float(np.median([interocular(f.best) for f in early])))
    samples = [aligned_face(images[f.frame], f, res, effect.face_type, col)[0] for f in sample_picks(early)]
    return _Track(track, res, effect.prepare(samples, identity))


def _prepare_tracks(store: ShotStore, plate: Plate, effect: Effect, ids: list[int], col: _Colour) -> dict[int, _Track]:
    """Working resolution and effect context per track, from sample frames of its first second."""
    tracks = {}
    window = lookahead(float(plate.info.fps))
    for t in ids:
        faces = [f for f in store.track_faces(t) if f.source != "interp"]
        early = [f for f in faces if f.frame < faces[0].frame + window]
        picks = {f.frame for f in sample_picks(early)}
        decoded = plate.frames(FrameRange(early[0].frame, early[-1].frame), native=True)
        imgs = {f: img for f, img in decoded if f in picks}
        vectors = [v for _, _, v in store.embeddings(t)]
        identity = np.mean(vectors, axis=0).astype(np.float32) if vectors else None
        tracks[t] = track_context(effect, col, t, early, imgs, identity)
    return tracks


@dataclass(frozen=True)
class Change:
    """One face's effect, ready to composite: ``change`` (R, R, 3) float32 plate code values in [-1, 1]
    scale, ``alpha`` (R, R) float32 0..1, ``m`` the plate → aligned (2, 3) matrix."""

    change: F32
    alpha: F32
    m: F64


def face_changes(
    rgb: NDArray[Any],
    faces: list[FaceRow],
    tracks: dict[int, _Track],
    effect: Effect,
    col: _Colour,
    hands: list[F32] | None = None,
) -> list[Change]:
    """Run the effect on each face of the decoded plate frame ``rgb`` (H, W, 3) (any dtype, plate space).

    ``hands`` ((21, 3) plate px each) are occluders: every effect's matte is cut where they are.
    """
    out = []
    for f in faces:
        tr = tracks[f.track]
        face, crop, m = aligned_face(rgb, f, tr.res, effect.face_type, col)
        result = effect.apply(face, tr.context)
        alpha = occlude(result.matte, [to_aligned(m, h) for h in hands or []])
        out.append(Change(col.decode(result.image) - crop, alpha, m))
    return out


def composite(
    img: NDArray[Any] | Yuv420, changes: list[Change], in_place: bool = False, with_matte: bool = True
) -> tuple[NDArray[Any] | Yuv420, F32 | None]:
    """(comp, matte (H, W) float32 or None without ``with_matte``) of the decoded plate frame ``img`` with
    ``changes`` added.

    ``img`` is RGB (H, W, 3) (comp in its dtype) or a :class:`Yuv420` frame (the comp is that frame, changed
    in its planes). ``in_place`` composites into ``img`` itself (when the plate frame is not needed afterwards).
    """
    rgb = img.rgb if isinstance(img, Yuv420) else img
    comp = img if in_place or isinstance(img, Yuv420) else img.copy()
    matte = np.zeros(rgb.shape[:2], np.float32) if with_matte else None
    for c in changes:
        if isinstance(comp, Yuv420):
            paste_yuv(comp, matte, c.change, c.alpha, c.m)
        else:
            paste(comp, matte, c.change, c.alpha, c.m)
    return comp, matte


def render_frame(
    img: NDArray[Any] | Yuv420,
    faces: list[FaceRow],
    tracks: dict[int, _Track],
    effect: Effect,
    col: _Colour,
    in_place: bool = False,
    hands: list[F32] | None = None,
) -> tuple[NDArray[Any] | Yuv420, F32]:
    """``composite(img, face_changes(...))``: (comp, matte (H, W) float32) of one decoded plate frame."""
    rgb = img.rgb if isinstance(img, Yuv420) else img
    comp, matte = composite(img, face_changes(rgb, faces, tracks, effect, col, hands), in_place)
    assert matte is not None
    return comp, matte


def occlude(matte: F32, hands: list[NDArray[np.floating]]) -> F32:
    """``matte`` (R, R) cut by hands (points in the same aligned space), with a soft edge outside the hand."""
    if not hands:
        return matte
    res = matte.shape[0]
    mask = hand_mask(hands, (res, matte.shape[1]))
    if not mask.any():
        return matte
    soft = np.maximum(mask, gauss(mask, 0.012 * res))
    return np.asarray(matte * (1.0 - np.clip(soft * 1.5, 0.0, 1.0)), np.float32)


def render(cfg: RenderConfig, effect: Effect, progress: ProgressFn | None = None) -> RenderSummary:
    """Run ``effect`` over the chosen faces of the plate and write comp (+ matte, + delta)."""
    t0 = time.perf_counter()
    sw = Stopwatch()
    shot = cfg.shot or default_shot(cfg.plate, cfg.out)
    with open_plate(cfg.plate, colorspace=cfg.colorspace, first_frame=cfg.first_frame) as plate:
        rng = cfg.frames_in(plate.info.frames)
        col = _Colour(plate.info.colorspace)
        with ShotStore.create(shot, plate.info) as store:
            if col.identity and can_stream(cfg, plate, effect, store, rng):
                return _render_streamed(cfg, effect, plate, store, rng, col, sw, t0, progress)
    with sw("extract"):
        extract(ExtractConfig(plate=cfg.plate, shot=shot, frames=cfg.frames, colorspace=cfg.colorspace,
                              first_frame=cfg.first_frame))  # fmt: skip
    with (
        ShotStore.open(shot) as store,
        open_plate(cfg.plate, colorspace=cfg.colorspace, first_frame=cfg.first_frame) as plate,
        single_thread_blas(),
    ):
        rng = cfg.frames_in(plate.info.frames)
        ids = select_tracks(store, cfg.track, cfg.face, allow_all=True)
        ids = [t for t in ids if (tr := store.track(t)).last_frame >= rng.first and tr.first_frame <= rng.last]
        if not ids:
            raise FaceNotFoundError(f"the chosen face is not in frames {rng}")
        col = _Colour(plate.info.colorspace)
        with sw("prepare"):
            tracks = _prepare_tracks(store, plate, effect, ids, col)
        writers = _writers(cfg, plate, rng)
        runs = _todo(writers, rng)
        todo = sum(len(r) for r in runs)
        written = faces_done = 0
        behind = Background(lambda *a: _timed_write(sw, writers, *a), depth=2)
        yuv = col.identity and "delta" not in writers and writers["comp"].takes_yuv  # 8-bit video: stay in Y'CbCr
        try:
            for run in runs:
                decoded = plate.frames_yuv(run) if yuv else plate.frames(run, native=True)
                for frame, img in sw.iterate("decode (wait)", prefetch(decoded)):
                    faces = [f for f in store.faces_in_frame(frame) if f.track in tracks]
                    hands = store.hands_near(frame) if faces and cfg.hands else []
                    with sw("effect"):
                        changes = face_changes(img.rgb if isinstance(img, Yuv420) else img, faces, tracks,
                                               effect, col, hands)  # fmt: skip
                    with sw("write (wait)"):
                        behind.submit(frame, img, changes)
                    written += 1
                    faces_done += len(faces)
                    if progress:
                        progress(written, todo)
            behind.join()
        except KeyboardInterrupt:
            _stop(behind, writers)
            raise Interrupted(f"interrupted after {written} frame(s); run the same command to resume") from None
        except BaseException:
            _stop(behind, writers)
            raise
        with sw("write (wait)"):
            for w in writers.values():
                w.close()
    return RenderSummary(cfg.out, rng, written, len(rng) - todo, faces_done, ids, time.perf_counter() - t0, sw.seconds)


def _render_streamed(
    cfg: RenderConfig,
    effect: Effect,
    plate: Plate,
    store: ShotStore,
    rng: FrameRange,
    col: _Colour,
    sw: Stopwatch,
    t0: float,
    progress: ProgressFn | None,
) -> RenderSummary:
    """``render`` of a fresh shot in one pass (faceplate.stream): analysis on this thread, the effect on a
    worker thread, compositing and encoding on the writer thread."""
    writers = _writers(cfg, plate, rng)
    resumable = all(w.resumable for w in writers.values())
    done = {f for f in range(rng.first, rng.last + 1) if resumable and all(w.exists(f) for w in writers.values())}
    yuv = col.identity and "delta" not in writers and writers["comp"].takes_yuv  # 8-bit video: stay in Y'CbCr
    behind = Background(lambda *a: _timed_write(sw, writers, *a), depth=2)

    def effect_step(frame: int, img: Any, faces: list[FaceRow], tracks: dict[int, _Track], hands: list[F32]) -> None:
        with sw("effect (background)"):
            changes = face_changes(img.rgb if isinstance(img, Yuv420) else img, faces, tracks, effect, col, hands)
        behind.submit(frame, img, changes)

    worker = Background(effect_step, depth=2)
    counts = [0, 0]  # frames written, faces rendered

    def render_one(frame: int, img: Any, faces: list[FaceRow], tracks: dict[int, Any], hands: list[F32]) -> None:
        if frame in done:
            return
        with sw("effect (wait)"):
            worker.submit(frame, img, faces, tracks, hands)
        counts[0] += 1
        counts[1] += len(faces)

    def prepare(track: int, early: list[FaceRow], images: dict[int, Any]) -> _Track:
        with sw("prepare"):
            return track_context(effect, col, track, early, images)

    try:
        ids = stream_render(cfg, plate, store, rng, yuv, prepare, render_one, sw, progress)
        worker.join()
        behind.join()
    except FaceNotFoundError:  # the plate was copied frame by frame for nothing: leave no output
        with contextlib.suppress(BaseException):
            worker.join()
        _stop(behind, writers)
        for w in writers.values():
            w.discard()
        raise
    except BaseException:
        with contextlib.suppress(BaseException):  # the original error wins
            worker.join()
        _stop(behind, writers)
        raise
    with sw("write (wait)"):
        for w in writers.values():
            w.close()
    return RenderSummary(cfg.out, rng, counts[0], len(done), counts[1], ids, time.perf_counter() - t0, sw.seconds)


def _stop(behind: Background, writers: dict[str, FrameWriter]) -> None:
    """Finish what was queued (whole frames only), then drop unfinished outputs."""
    with contextlib.suppress(BaseException):  # the original error wins
        behind.join()
    for w in writers.values():
        w.abort()


def _timed_write(sw: Stopwatch, writers: dict[str, FrameWriter], frame: int, img: Any, changes: list[Change]) -> None:
    """Composite and write one frame (on the writer thread, beside the next frame's effect)."""
    with_matte = "matte" in writers or "delta" in writers or writers["comp"].wants_alpha
    with sw("composite (background)"):
        comp, matte = composite(img, changes, "delta" not in writers, with_matte)
    with sw("write (encode, background)"):
        _write(writers, frame, img, comp, matte)


def _write(
    writers: dict[str, FrameWriter], frame: int, img: NDArray[Any], comp: NDArray[Any] | Yuv420, matte: F32 | None
) -> None:
    writers["comp"].write(frame, comp, matte)
    if "matte" in writers:
        assert matte is not None  # see _timed_write
        writers["matte"].write(frame, matte)
    if "delta" in writers:
        rgb = to_rgb(comp) if isinstance(comp, Yuv420) else comp
        writers["delta"].write(frame, colour.to_float(rgb) - colour.to_float(img), matte)


def plan_chunks(cfg: RenderConfig, size: int) -> list[RenderConfig]:
    """Split a sequence render into frame-range chunks for a farm (each one idempotent and resumable).

    Run ``faceplate extract`` once first; then e.g. ``client.map(lambda c: render(c, effect), chunks)`` on Dask.
    """
    if not WRITERS.get(writer_name(cfg.out, cfg.format)).farmable:
        raise ConfigError("only image-sequence outputs can be split across machines; write e.g. comp.####.exr")
    with open_plate(cfg.plate, colorspace=cfg.colorspace, first_frame=cfg.first_frame) as plate:
        rng = cfg.frames_in(plate.info.frames)
    return [cfg.model_copy(update={"frames": str(c)}) for c in rng.chunks(size)]


def preview(cfg: RenderConfig, effect_at: Callable[[float], Effect], frame: int | None = None) -> list[Path]:
    """Before/after PNG and a strength sweep (0, 0.25, 0.5, 0.75, 1) of one frame, around the chosen faces.

    ``effect_at(s)`` builds the effect at strength ``s``. Written beside ``cfg.out`` as ``<name>_preview.png``
    and ``<name>_sweep.png``; returns their paths.
    """
    from faceplate.review import write_png

    shot = cfg.shot or default_shot(cfg.plate, cfg.out)
    extract(ExtractConfig(plate=cfg.plate, shot=shot, frames=cfg.frames, colorspace=cfg.colorspace,
                          first_frame=cfg.first_frame))  # fmt: skip
    with (
        ShotStore.open(shot) as store,
        open_plate(cfg.plate, colorspace=cfg.colorspace, first_frame=cfg.first_frame) as plate,
    ):
        ids = select_tracks(store, cfg.track, cfg.face, allow_all=True)
        if frame is None:
            first = store.track(ids[0])
            frame = (first.first_frame + first.last_frame) // 2
        faces = [f for f in store.faces_in_frame(frame) if f.track in ids]
        if not faces:
            raise FaceNotFoundError(f"the chosen face is not in frame {frame}")
        col = _Colour(plate.info.colorspace)
        img = colour.to_float(plate.read(frame, native=True))
        on_screen = sorted({f.track for f in faces})
        hands = store.hands_near(frame)

        def comp_at(strength: float) -> F32:
            effect = effect_at(strength)
            tracks = _prepare_tracks(store, plate, effect, on_screen, col)
            comp = render_frame(img, faces, tracks, effect, col, hands=hands)[0]
            assert not isinstance(comp, Yuv420)  # float RGB in, float RGB out
            return comp

        shots = [comp_at(s) for s in SWEEP]
        default = comp_at(cfg.strength)
    box = np.array([[f.best[:, 0].min(), f.best[:, 1].min(), f.best[:, 0].max(), f.best[:, 1].max()] for f in faces])
    (x0, y0), (x1, y1) = box[:, :2].min(0), box[:, 2:].max(0)
    pad = 0.25 * max(x1 - x0, y1 - y0)
    h, w = img.shape[:2]
    xa, ya, xb, yb = max(0, int(x0 - pad)), max(0, int(y0 - pad)), min(w, int(x1 + pad)), min(h, int(y1 + pad))

    def view(rgb: F32) -> NDArray[np.uint8]:
        tile = col.encode(np.ascontiguousarray(rgb[ya:yb, xa:xb]))
        scale = 512 / tile.shape[0]
        size = (round(tile.shape[1] * scale), 512)
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        return colour.to_uint8(np.asarray(cv2.resize(tile, size, interpolation=interp), np.float32))

    stem = Path(re.sub(r"[.](#+|@+|%0?\d*d)", "", cfg.out))
    before_after = stem.with_name(f"{stem.stem}_preview.png")
    sweep = stem.with_name(f"{stem.stem}_sweep.png")
    write_png(before_after, np.hstack([view(img), view(default)]))
    write_png(sweep, np.hstack([view(c) for c in shots]))
    return [before_after, sweep]
