"""``render``: the one render path every effect runs on.

plate → (extract: detect, landmarks, track, smooth) → per frame, per chosen face: align → effect (result +
matte, aligned space) → un-align the *change* and the matte → composite onto the untouched plate → write
comp (+ matte, + delta). Renders are idempotent per frame: frames already on disk (made by the same
settings) are skipped, so a stopped render resumes and a farm can split the shot by frame range.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceplate.config import Override, RenderConfig, override_at
from faceplate.cpu import single_thread_blas, usable_cores
from faceplate.deliver import Deliverable, FrameParts
from faceplate.effects.base import Effect
from faceplate.errors import ConfigError, FaceNotFoundError, Interrupted
from faceplate.export import select_tracks
from faceplate.extract import ProgressFn, extract
from faceplate.media import colour
from faceplate.media.frames import FrameRange
from faceplate.media.plate import Plate, open_plate
from faceplate.media.prefetch import Background, prefetch
from faceplate.media.writers import FrameWriter
from faceplate.media.yuv import Yuv420, to_rgb
from faceplate.render.composite import Change, Earlier, composite, face_changes
from faceplate.render.outputs import (
    check_outputs,
    claim_outputs,
    comp_alpha,
    frames_done,
    frames_to_do,
    open_deliverables,
    open_outputs,
    release_outputs,
    stays_yuv,
)
from faceplate.render.stream import can_stream, stream_render
from faceplate.render.tracks import ColourPath, Samples, TrackContext, prepare_tracks, track_context, track_samples
from faceplate.store import F32, FaceRow, ShotStore
from faceplate.timing import Stopwatch

KEEP_CONTEXTS = 8  # FrameRenderer: the track contexts of this many effects (settings) are kept
EFFECT_WORKERS = 2  # frames whose effect runs at once (the effect is the largest stage), fewer on one core


def effect_workers() -> int:
    """Effect threads for this process: EFFECT_WORKERS, at most the cores it may use."""
    return max(1, min(EFFECT_WORKERS, usable_cores()))


@dataclass(frozen=True)
class RenderSummary:
    """What a render did: frames written and skipped (already on disk), faces changed, tracks, timings."""

    out: str
    frames: FrameRange
    written: int
    skipped: int
    faces: int
    tracks: list[int]
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)  # wall seconds per stage
    nonfinite: int = 0  # NaN/Inf plate pixels seen (left as they are where no face was changed)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per stage, of the thread running it

    @property
    def fps(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def render(cfg: RenderConfig, effect: Effect, progress: ProgressFn | None = None) -> RenderSummary:
    """Run ``effect`` over the chosen faces of the plate and write comp (+ matte, + delta)."""
    t0 = time.perf_counter()
    sw = Stopwatch()
    ext = cfg.extract
    with open_plate(ext.plate, colorspace=ext.colorspace, first_frame=ext.first_frame) as plate:
        rng = cfg.frames_in(plate.info.frames)
        check_outputs(cfg, plate, rng)
        col = ColourPath(plate.info.colorspace)
        with ShotStore.create(ext.shot, plate) as store:
            effect = with_preset(store, effect, cfg.preset)
            overrides = stored_overrides(store, effect.name)
            if col.identity and not overrides and not cfg.deliver and can_stream(cfg, plate, effect, store, rng):
                claim_outputs(cfg, effect, rng)
                return _render_streamed(cfg, effect, plate, store, rng, col, sw, t0, progress)
    with sw("extract"):
        extract(ext)
    with (
        ShotStore.open(ext.shot) as store,
        open_plate(ext.plate, colorspace=ext.colorspace, first_frame=ext.first_frame) as plate,
        single_thread_blas(),
    ):
        rng = cfg.frames_in(plate.info.frames)
        ids = _tracks_in(store, cfg, rng)
        col = ColourPath(plate.info.colorspace)
        with sw("prepare"):
            contexts = _contexts(store, plate, cfg, ids, col, override_parts(effect, overrides, [rng]))
        claim_outputs(cfg, effect, rng, [o.model_dump(exclude={"id"}) for o in overrides])
        writers = open_outputs(cfg, plate, rng) | open_deliverables(cfg, plate, rng, effect, ids)
        runs = frames_to_do(writers, rng)
        parts = [_Part(p.effect, p.runs, contexts[_key(p.effect)]) for p in override_parts(effect, overrides, runs)]
        counts = _run_frames(cfg, parts, plate, store, col, writers, sw, progress)
    _warn_nonfinite(counts.nonfinite)
    wall, cpu = sw.snapshot()
    return RenderSummary(cfg.out, rng, counts.frames, len(rng) - sum(len(r) for r in runs), counts.faces, ids,
                         time.perf_counter() - t0, wall, counts.nonfinite, cpu)  # fmt: skip


class FrameRenderer:
    """Single frames of a shot through the render path (the review app's tune): the same faces, hands,
    track contexts and composite as :func:`render`, so a frame equals that frame of a render with the same
    effect (an RGB comp: image sequences; a video comp is composited in its Y'CbCr planes). The plate and
    track contexts are kept (by its record) until :meth:`close`; the plate stays open (the store is opened per
    call, so any thread may call, one at a time)."""

    def __init__(self, cfg: RenderConfig) -> None:
        ext = cfg.extract
        self.cfg = cfg
        self.plate = open_plate(ext.plate, colorspace=ext.colorspace, first_frame=ext.first_frame)
        try:
            with ShotStore.open(ext.shot) as store:
                store.check_plate(self.plate.info)
                self.ids = _tracks_in(store, cfg, cfg.frames_in(self.plate.info.frames))
        except BaseException:
            self.plate.close()
            raise
        self.col = ColourPath(self.plate.info.colorspace)
        self._contexts: dict[str, dict[int, TrackContext]] = {}
        self._reads: dict[int, Samples] = {}
        self._frames: dict[int, NDArray[Any]] = {}

    def _samples(self, store: ShotStore, track: int) -> Samples:
        """:func:`track_samples` of a track, read once."""
        if track not in self._reads:
            self._reads[track] = track_samples(store, self.plate, track)
        return self._reads[track]

    def tracks(self, store: ShotStore, effect: Effect) -> dict[int, TrackContext]:
        """The tracks' contexts for ``effect``, as :func:`prepare_tracks` makes them (kept for the last
        KEEP_CONTEXTS effects)."""
        key = _key(effect)
        if key not in self._contexts:
            with single_thread_blas():
                made = {t: track_context(effect, self.col, t, *self._samples(store, t), self.cfg.hold_glasses)
                        for t in self.ids}  # fmt: skip
            self._contexts = {**dict(list(self._contexts.items())[-KEEP_CONTEXTS + 1 :]), key: made}
        return self._contexts[key]

    def render(self, effect: Effect, frame: int, deep: bool = False) -> tuple[NDArray[Any], F32]:
        """(comp (H, W, 3), matte (H, W) float32) of plate frame ``frame``: the comp in the plate's dtype, or,
        ``deep``, an 8-bit plate's comp in 16-bit code values, as a render to a deep output (PNG16, TIFF16)
        composites it (the change is not rounded to 8-bit codes)."""
        with ShotStore.open(self.cfg.shot) as store:
            return self._render(store, effect, frame, deep)

    def _render(self, store: ShotStore, effect: Effect, frame: int, deep: bool) -> tuple[NDArray[Any], F32]:
        tracks = self.tracks(store, effect)
        first = max(frame - effect.history, self.plate.info.first_frame)
        decoded = [(f, self._decoded(f)) for f in range(first, frame + 1)]
        faces_of = lambda f: [r for r in store.faces_in_frame(f) if r.track in tracks]  # noqa: E731
        earlier = [(img, faces_of(f)) for f, img in decoded[:-1]]
        faces = faces_of(frame)
        hands = store.hands_near(frame) if faces and self.cfg.extract.hands else []
        rgb = decoded[-1][1]
        with single_thread_blas():
            changes = face_changes(rgb, faces, tracks, effect, self.col, hands, earlier)
        if deep and rgb.dtype == np.uint8:  # the effect saw the decoded frame; the change goes on as _timed_write
            rgb = rgb.astype(np.uint16) * np.uint16(257)  # puts it on a deep comp
        comp, matte = composite(rgb, changes, True)
        assert isinstance(comp, np.ndarray) and matte is not None
        return comp, matte

    def _decoded(self, frame: int) -> NDArray[Any]:
        """Plate frame ``frame`` as decoded (a copy: the composite works in place; the last few kept)."""
        if frame not in self._frames:
            self._frames = {**dict(list(self._frames.items())[-3:]), frame: self.plate.read(frame, native=True)}
        return np.array(self._frames[frame])

    def close(self) -> None:
        self.plate.close()


def _tracks_in(store: ShotStore, cfg: RenderConfig, rng: FrameRange) -> list[int]:
    ids = select_tracks(store, cfg.track, cfg.face, allow_all=True)
    ids = [t for t in ids if (tr := store.track(t)).last_frame >= rng.first and tr.first_frame <= rng.last]
    if not ids:
        raise FaceNotFoundError(f"the chosen face is not in frames {rng}")
    return ids


@dataclass
class _Counts:
    frames: int = 0
    faces: int = 0
    nonfinite: int = 0


def _with_earlier(plate: Plate, run: FrameRange, n: int, yuv: bool) -> Iterator[tuple[int, Any]]:
    """Decoded frames of ``run``, preceded by up to ``n`` frames before it (for effects with history)."""
    first = max(run.first - n, plate.info.first_frame)
    rng = FrameRange(first, run.last)
    return plate.frames_yuv(rng) if yuv else plate.frames(rng, native=True)


@dataclass(frozen=True)
class _Part:
    """Frames of a render that one effect (the render's, or it with an override's settings) renders."""

    effect: Effect
    runs: list[FrameRange]
    tracks: dict[int, TrackContext] = field(default_factory=dict)


def with_settings(obj: Any, patch: dict[str, Any]) -> Any:
    """``obj`` (an effect, or its settings dataclass) with the nested settings ``patch`` applied:
    ``with_settings(beauty, {"settings": {"strength": 0.3}})``. ConfigError (one line) on an unknown name."""
    if not patch:
        return obj
    changes = {}
    names = {f.name for f in dataclasses.fields(obj)}
    for k, v in patch.items():
        if k not in names:
            raise ConfigError(f"{type(obj).__name__} has no setting {k!r} (it has: {', '.join(sorted(names))})")
        cur = getattr(obj, k)
        nested = dataclasses.is_dataclass(cur) and isinstance(v, dict)
        changes[k] = with_settings(cur, v) if nested else (tuple(v) if isinstance(cur, tuple) else v)
    return dataclasses.replace(obj, **changes)


def with_preset(store: ShotStore, effect: Effect, name: str | None) -> Effect:
    """``effect`` with the shot's preset ``name`` of it applied (None: as it is); ConfigError naming the
    presets the shot has when it has none of that name."""
    if name is None:
        return effect
    found = {n: v for _, n, v in store.presets(effect.name)}
    if name not in found:
        have = ", ".join(sorted(found)) or "none"
        raise ConfigError(f"--preset {name}: the shot has no {effect.name} preset of that name (it has: {have})")
    return with_settings(effect, found[name])


def stored_overrides(store: ShotStore, effect: str) -> list[Override]:
    """``effect``'s per-range overrides stored in the shot."""
    return [Override(id=i, first=a, last=b, settings=v) for i, a, b, v in store.overrides(effect)]


def override_parts(effect: Effect, overrides: list[Override], runs: list[FrameRange]) -> list[_Part]:
    """``runs`` split where the deciding override changes (:func:`override_at`), each with its effect. Without
    overrides: one part, the render's effect on all of ``runs``."""
    if not overrides:
        return [_Part(effect, runs)]
    parts: list[tuple[Override | None, FrameRange]] = []
    for run in runs:
        for f in range(run.first, run.last + 1):
            o = override_at(overrides, f)
            if parts and parts[-1][0] is o and parts[-1][1].last == f - 1:
                parts[-1] = (o, FrameRange(parts[-1][1].first, f))
            else:
                parts.append((o, FrameRange(f, f)))
    return [_Part(effect if o is None else with_settings(effect, o.settings), [r]) for o, r in parts]


def _key(effect: Effect) -> str:
    return json.dumps(effect.record(), sort_keys=True)


def _contexts(
    store: ShotStore, plate: Plate, cfg: RenderConfig, ids: list[int], col: ColourPath, parts: list[_Part]
) -> dict[str, dict[int, TrackContext]]:
    """The tracks' contexts of each distinct effect of ``parts`` (by its record)."""
    made: dict[str, dict[int, TrackContext]] = {}
    for p in parts:
        if _key(p.effect) not in made:
            made[_key(p.effect)] = prepare_tracks(store, plate, p.effect, ids, col, cfg.hold_glasses)
    return made


def _run_frames(
    cfg: RenderConfig,
    parts: list[_Part],
    plate: Plate,
    store: ShotStore,
    col: ColourPath,
    writers: dict[str, FrameWriter],
    sw: Stopwatch,
    progress: ProgressFn | None,
) -> _Counts:
    """Effect on this thread (on EFFECT_WORKERS threads, frames side by side, for an effect that ``streams``
    and has no history), composite + encode in frame order on a writer thread, for every frame of the parts'
    runs, each part by its effect."""
    c = _Counts()
    todo = sum(len(r) for p in parts for r in p.runs)
    history = max(p.effect.history for p in parts)
    in_place = "delta" not in writers and not history  # history frames must stay as decoded
    side_by_side = all(type(p.effect).streams for p in parts) and not history  # pure per frame, no earlier frames
    pool = ThreadPoolExecutor(effect_workers(), "faceplate-effect") if side_by_side else None
    behind = Background(lambda f, img, job: _timed_write(sw, writers, plate, in_place, f, img, _done(job)),
                        depth=effect_workers() + 1 if pool else 2)  # fmt: skip
    yuv = stays_yuv(writers, col.identity)

    def effect_step(
        part: _Part, rgb: NDArray[Any], faces: list[FaceRow], hands: list[F32], before: Earlier
    ) -> list[Change]:
        with sw("effect"):
            return face_changes(rgb, faces, part.tracks, part.effect, col, hands, before)

    try:
        for part, run in ((p, r) for p in parts for r in p.runs):
            effect, tracks = part.effect, part.tracks
            earlier: deque[tuple[NDArray[Any], list[FaceRow]]] = deque(maxlen=max(effect.history, 1))
            for frame, img in sw.iterate("decode (wait)", prefetch(_with_earlier(plate, run, effect.history, yuv))):
                rgb = img.rgb if isinstance(img, Yuv420) else img
                faces = [f for f in store.faces_in_frame(frame) if f.track in tracks]
                if frame < run.first:  # history only
                    earlier.append((rgb, faces))
                    continue
                c.nonfinite += _nonfinite(rgb)
                hands = store.hands_near(frame) if faces and cfg.extract.hands else []
                args = (part, rgb, faces, hands, list(earlier))
                job = pool.submit(effect_step, *args) if pool else effect_step(*args)
                if effect.history:
                    earlier.append((rgb, faces))
                with sw("write (wait)"):
                    behind.submit(frame, img, job)
                c.frames += 1
                c.faces += len(faces)
                if progress:
                    progress(c.frames, todo)
        behind.join()
    except KeyboardInterrupt:
        _stop(behind, writers, pool)
        raise Interrupted(_kept(c.frames)) from None
    except BaseException:
        _stop(behind, writers, pool)
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    with sw("write (wait)"):
        for w in writers.values():
            w.close()
    return c


def _done(job: Future[list[Change]] | list[Change]) -> list[Change]:
    """The changes of a frame, waiting for its effect if that runs on a worker thread."""
    return job.result() if isinstance(job, Future) else job


def _nonfinite(rgb: NDArray[Any]) -> int:
    """Pixels of a decoded float frame with a NaN or Inf channel (0 for integer frames)."""
    if rgb.dtype.kind != "f":
        return 0
    return int((~np.isfinite(rgb)).any(axis=2).sum())


def _kept(frames: int) -> str:
    return f"interrupted after {frames} frame(s), which are kept; run the same command to resume"


def _warn_nonfinite(n: int) -> None:
    if n:
        warnings.warn(
            f"the plate has {n} NaN/Inf pixel value(s): left as they are outside the changed faces, "
            "filled from their neighbours where a face was changed",
            stacklevel=3,
        )


def _render_streamed(
    cfg: RenderConfig,
    effect: Effect,
    plate: Plate,
    store: ShotStore,
    rng: FrameRange,
    col: ColourPath,
    sw: Stopwatch,
    t0: float,
    progress: ProgressFn | None,
) -> RenderSummary:
    """``render`` of a fresh shot in one pass (render.stream): analysis on this thread, the effect on
    EFFECT_WORKERS worker threads (frames side by side), compositing and encoding in frame order on the writer
    thread."""
    writers = open_outputs(cfg, plate, rng)
    done = frames_done(writers, rng)
    yuv = stays_yuv(writers, col.identity)
    in_place = "delta" not in writers
    # effects on EFFECT_WORKERS threads, composited and written in frame order on the writer thread
    pool = ThreadPoolExecutor(effect_workers(), thread_name_prefix="faceplate-effect")
    behind = Background(lambda f, img, job: _timed_write(sw, writers, plate, in_place, f, img, _done(job)),
                        depth=effect_workers() + 1)  # fmt: skip

    def effect_step(img: Any, faces: list[FaceRow], tracks: dict[int, Any], hands: list[F32]) -> list[Change]:
        ready = {t: c.result() if isinstance(c, Future) else c for t, c in tracks.items()}  # contexts being prepared
        with sw("effect (background)"):
            return face_changes(img.rgb if isinstance(img, Yuv420) else img, faces, ready, effect, col, hands)

    counts = [0, 0]  # frames written, faces rendered

    def render_one(frame: int, img: Any, faces: list[FaceRow], tracks: dict[int, Any], hands: list[F32]) -> None:
        if frame in done:
            return
        with sw("effect (wait)"):
            behind.submit(frame, img, pool.submit(effect_step, img, faces, tracks, hands))
        counts[0] += 1
        counts[1] += len(faces)

    def prepare_now(track: int, early: list[FaceRow], images: dict[int, Any]) -> TrackContext:
        with sw("prepare"):
            return track_context(effect, col, track, early, images, glasses=cfg.hold_glasses)

    def prepare(track: int, early: list[FaceRow], images: dict[int, Any]) -> Future[TrackContext]:
        # on an effect thread (idle until the first frame is ready), while this thread analyses on;
        # the track's first effects wait for it
        return pool.submit(prepare_now, track, early, images)

    try:
        ids = stream_render(cfg, plate, store, rng, yuv, prepare, render_one, sw, progress)
        behind.join()
    except FaceNotFoundError:  # the plate was copied frame by frame for nothing: leave no output
        _stop(behind, writers, pool)
        for w in writers.values():
            w.discard()
        release_outputs(cfg)
        raise
    except BaseException:
        _stop(behind, writers, pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    with sw("write (wait)"):
        for w in writers.values():
            w.close()
    wall, cpu = sw.snapshot()
    return RenderSummary(cfg.out, rng, counts[0], len(done), counts[1], ids, time.perf_counter() - t0, wall, cpu=cpu)


def _stop(behind: Background, writers: dict[str, FrameWriter], pool: ThreadPoolExecutor | None = None) -> None:
    """Finish what was queued (whole frames only; effects not started yet are dropped), then drop unfinished
    outputs."""
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)  # a cancelled job stops the writer at that frame
    with contextlib.suppress(BaseException):  # the original error wins
        behind.join()
    for w in writers.values():
        w.abort()


def _timed_write(
    sw: Stopwatch,
    writers: dict[str, FrameWriter],
    plate: Plate,
    in_place: bool,
    frame: int,
    img: Any,
    changes: list[Change],
) -> None:
    """Composite and write one frame (on the writer thread, beside the next frame's effect), then hand it to
    the deliverables."""
    delivering = [w for w in writers.values() if isinstance(w, Deliverable)]
    with_matte = "matte" in writers or "delta" in writers or writers["comp"].wants_alpha or bool(delivering)
    with sw("composite (background)"):
        base = img
        before = (to_rgb(img) if isinstance(img, Yuv420) else img) if delivering else None  # the plate, as coded
        in_place = in_place and not delivering
        if writers["comp"].deep and isinstance(img, np.ndarray) and img.dtype == np.uint8:
            base, in_place = img.astype(np.uint16) * np.uint16(257), True  # same codes, finer steps for the change
        comp, matte = composite(base, changes, in_place, with_matte)
    with sw("write (encode, background)"):
        _write(writers, plate, frame, img, comp, matte)
    if before is not None:
        assert matte is not None
        with sw("deliver (background)"):
            rgb = to_rgb(comp) if isinstance(comp, Yuv420) else comp
            decoded = img.rgb if isinstance(img, Yuv420) else img
            alpha = colour.to_float(colour.as_dtype(matte, rgb.dtype))  # as the comp's alpha holds it
            parts = FrameParts(frame, decoded, colour.to_float(before), colour.to_float(rgb), matte, changes, alpha)
            for w in delivering:
                w.deliver(parts)


def _write(
    writers: dict[str, FrameWriter],
    plate: Plate,
    frame: int,
    img: NDArray[Any],
    comp: NDArray[Any] | Yuv420,
    matte: F32 | None,
) -> None:
    writers["comp"].write(frame, comp, comp_alpha(writers["comp"], plate, frame, matte))
    if "matte" in writers:
        assert matte is not None  # see _timed_write
        writers["matte"].write(frame, matte)
    if "delta" in writers:
        rgb = to_rgb(comp) if isinstance(comp, Yuv420) else comp
        writers["delta"].write(frame, colour.to_float(rgb) - colour.to_float(img), matte)
