"""Analyse and render a fresh shot in one pass: every frame is decoded once.

``render`` on a shot that is not analysed yet used to run two passes over the plate (``extract``, then the
render), decoding each frame twice. Here each decoded frame is analysed at once, written to the shot store
exactly as ``extract`` writes it, and kept in a buffer of one second of frames; a frame is rendered once the
second after it is analysed. Its landmarks are smoothed as ``finalize`` smooths them, with the backward pass
started a second ahead (:class:`~faceplate.analysis.smoothing.StreamSmoother`: < 0.01 px from the two-pass
result on the bench clip). The store is finalized at the end, so a re-render of the shot reads it.

Used when the result does not depend on the whole shot: every face (no ``--track``/``--face``), an
effect that needs no identity (``Effect.streams``), an 8-bit video plate in a display-like colour space
(what is analysed is what is rendered), a shot store with none of these frames yet, and a second of frames that fits
in ``BUFFER_BYTES``. Otherwise ``render`` runs the two passes.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceplate.analysis.faces import interocular
from faceplate.analysis.hands import in_between
from faceplate.analysis.identity import Embedder, EmbedderProcess
from faceplate.analysis.smoothing import Smoothing, StreamSmoother, lookahead
from faceplate.config import ExtractConfig, RenderConfig
from faceplate.cpu import single_thread_blas
from faceplate.effects.base import Effect
from faceplate.errors import FaceNotFoundError, Interrupted
from faceplate.extract import Analysed, Models, ProgressFn, RunAnalyser, thumbnails
from faceplate.finalize import FinalizeSettings, finalize
from faceplate.media.frames import FrameRange
from faceplate.media.plate import Plate, VideoPlate
from faceplate.media.prefetch import prefetch
from faceplate.media.yuv import Yuv420
from faceplate.store import F32, FaceRow, ShotStore
from faceplate.timing import Stopwatch

BUFFER_BYTES = 768 << 20  # decoded frames held for the look-ahead (1080p: ~280 MB; 4K does not fit: two passes)


def can_stream(cfg: RenderConfig, plate: Plate, effect: Effect, store: ShotStore, rng: FrameRange) -> bool:
    """Can this render analyse and render in one pass (see the module docstring)?"""
    info = plate.info
    frame_bytes = info.width * info.height * 4.5  # RGB + 4:2:0 planes, 8-bit
    return (
        cfg.track is None
        and cfg.face is None
        and type(effect).streams
        and not effect.history
        and isinstance(plate, VideoPlate)  # 8-bit video decodes to uint8 RGB: analysed as rendered
        and info.bit_depth <= 8
        and not store.stored_frames()  # a fresh shot (a partly analysed one continues its tracks: two passes)
        and lookahead(float(info.fps)) * frame_bytes <= BUFFER_BYTES
    )


@dataclass
class _Line:
    """One track as the stream goes: its smoother, faces seen, and the effect context once prepared."""

    smoother: StreamSmoother
    shot: int
    frames: list[int] = field(default_factory=list)
    context: Any = None
    res: int = 0


@dataclass
class _Slot:
    """A decoded frame waiting for its look-ahead: the image and what analysis found there."""

    frame: int
    img: Any  # Yuv420 or uint8 RGB (H, W, 3)
    found: Analysed


class _Shot:
    """What the analysis has found so far, for rendering frames a window behind it."""

    def __init__(self, fps: float, window: int, fin: FinalizeSettings) -> None:
        self.fps, self.window, self.fin = fps, window, fin
        self.lines: dict[int, _Line] = {}
        self.slots: deque[_Slot] = deque()
        self.shot_len: dict[int, int] = {}
        self.upto = -1  # last analysed frame
        self.ended = False
        self.checked_before: tuple[int, list[F32]] | None = None  # (shot, hands) of the last checked frame out

    def add(self, frame: int, img: Any, found: Analysed) -> None:
        self.slots.append(_Slot(frame, img, found))
        self.shot_len[found.shot] = self.shot_len.get(found.shot, 0) + 1
        for o in found.faces:
            line = self.lines.get(o.track)
            if line is None:
                sm = StreamSmoother(self.fps, self.window, interocular, settings=self.fin.smoothing)
                line = self.lines[o.track] = _Line(sm, found.shot)
            line.smoother.add(frame, o.landmarks)
            line.frames.append(frame)
        self.upto = frame

    def ready(self) -> bool:
        """Is the oldest buffered frame's look-ahead analysed?"""
        return bool(self.slots) and (self.ended or self.slots[0].frame + self.window <= self.upto)

    def final(self, line: _Line) -> bool:
        """Has ``line`` ended (nothing more can join it)?"""
        return self.ended or line.smoother.last + self.window <= self.upto

    def faces_at(self, frame: int) -> list[tuple[int, _Line]]:
        """Tracks on screen at ``frame`` (measured there or in a gap between two faces), blips left out."""
        out = []
        for t, line in self.lines.items():
            sm = line.smoother
            if not sm.first <= frame <= sm.last:
                continue
            n = len(line.frames)
            if n < self.fin.min_faces and self.final(line) and self.shot_len.get(line.shot, 0) > n:
                continue  # as finalize: a short track in a longer shot is a false positive
            out.append((t, line))
        return sorted(out, key=lambda x: x[0])

    def hands_near(self, i: int) -> list[F32]:
        """As ShotStore.hands_near for buffered slot ``i``: its hands if checked, else those of the nearest
        checked slots before and after it in the same shot with their midpoints (analysis.hands.in_between)."""
        s = self.slots[i].found
        if s.hands_checked:
            return list(s.hands)
        sides: list[list[F32]] = [[], []]
        if self.checked_before is not None and self.checked_before[0] == s.shot:  # older than every slot
            sides[0] = self.checked_before[1]
        for side, rng in enumerate((range(i - 1, -1, -1), range(i + 1, len(self.slots)))):
            for j in rng:
                o = self.slots[j].found
                if o.shot != s.shot:
                    break
                if o.hands_checked:
                    sides[side] = list(o.hands)
                    break
        return in_between(*sides)

    def reads_newest(self, i: int) -> bool:
        """Would :meth:`hands_near` for slot ``i`` read the newest buffered slot's hands?"""
        s = self.slots[i].found
        if s.hands_checked:
            return i == len(self.slots) - 1
        for j in range(i + 1, len(self.slots)):
            o = self.slots[j].found
            if o.shot != s.shot:
                return False
            if o.hands_checked:
                return j == len(self.slots) - 1
        return False

    def pop(self) -> None:
        """Done with the oldest buffered frame."""
        slot = self.slots.popleft()
        if slot.found.hands_checked:
            self.checked_before = (slot.found.shot, list(slot.found.hands))
        self._forget(slot.frame)

    def _forget(self, frame: int) -> None:
        for t in [t for t, line in self.lines.items() if line.smoother.last < frame - 1 and self.final(line)]:
            del self.lines[t]
        for line in self.lines.values():
            line.smoother.forget_before(frame)


RenderFn = Callable[[int, Any, list[FaceRow], dict[int, Any], list[F32]], None]


def stream_render(
    cfg: RenderConfig,
    plate: Plate,
    store: ShotStore,
    rng: FrameRange,
    yuv: bool,
    prepare: Callable[[int, list[FaceRow], dict[int, Any]], Any],
    render_one: RenderFn,
    sw: Stopwatch,
    progress: ProgressFn | None = None,
) -> list[int]:
    """Analyse ``rng`` into ``store`` and render it as it goes; returns the ids of the tracks rendered.

    ``prepare(track, faces, images)`` builds a track's effect context from its faces in its first second
    and their decoded images (see render.tracks.track_context); ``render_one(frame, img, faces, contexts, hands)``
    renders one frame (or queues it).
    """
    fps = float(plate.info.fps)
    window = lookahead(fps)
    ecfg = cfg.extract
    fin = FinalizeSettings(fps, ecfg.link_gap_s, smoothing=Smoothing(ecfg.smooth_min_cutoff, ecfg.smooth_beta))
    shot = _Shot(fps, window, fin)
    written = 0  # frames handed to render_one
    seen: set[int] = set()
    with sw("model load"):
        models = load_models(ecfg)
    an = RunAnalyser(ecfg, store, models, rng, sw)
    decoded = plate.frames_yuv(rng) if yuv else plate.frames(rng, native=True)
    rgb_of: Callable[[Any], NDArray[np.uint8]] = lambda x: x.rgb if isinstance(x, Yuv420) else x  # noqa: E731

    def emit() -> None:
        nonlocal written
        slot = shot.slots[0]
        on = shot.faces_at(slot.frame)
        rows = []
        for t, line in on:
            if line.context is None:
                line.context = prepare(t, *_early(shot, t, line))
            lm = line.smoother.value(slot.frame, shot.final(line))
            rows.append(FaceRow(t, slot.frame, "stream", None, lm, lm))
            seen.add(t)
        if rows and cfg.extract.hands and shot.reads_newest(0):
            an.settle()  # the newest frame's hand pass may still be running: wait for its hands
        hands = shot.hands_near(0) if rows and cfg.extract.hands else []
        render_one(slot.frame, slot.img, rows, {t: line.context for t, line in on}, hands)
        shot.pop()
        written += 1
        if progress:
            progress(written, len(rng))

    try:
        with single_thread_blas():
            for frame, img, thumb in sw.iterate("decode (wait)", prefetch(thumbnails(decoded, rgb_of))):
                found = an.step(frame, rgb_of(img), thumb)
                assert found is not None  # a fresh run: no priming frame
                shot.add(frame, img, found)
                while shot.ready():
                    emit()
            shot.ended = True
            while shot.slots:
                emit()
            an.flush()
    except KeyboardInterrupt:
        an.flush()
        raise Interrupted(
            f"interrupted after {written} frame(s), which are kept; run the same command to resume"
        ) from None
    except BaseException:
        with contextlib.suppress(Exception):  # keep what was analysed; the original error wins
            an.flush()
        raise
    finally:
        models.close()
    with sw("finalize"):
        finalize(store, fin)
    if not seen:
        raise FaceNotFoundError(f"no face found in frames {rng} of {cfg.plate} ({len(rng)} frames stored)")
    return sorted(seen)


def load_models(cfg: ExtractConfig) -> Models:
    """``Models.load(cfg)``, but the identity embedder runs in its helper process (EmbedderProcess: the same
    descriptors; dlib no longer holds the GIL against the effect threads, and loads there meanwhile)."""
    try:
        embedder: Embedder = EmbedderProcess()
    except OSError:  # no helper process can start here: dlib in this process, as in the two-pass path
        embedder = Embedder()
    try:
        return Models.load(cfg, embedder)
    except BaseException:
        embedder.close()
        raise


def _early(shot: _Shot, track: int, line: _Line) -> tuple[list[FaceRow], dict[int, Any]]:
    """``track``'s measured faces in its first second (all buffered when it starts) and their images."""
    faces, images = [], {}
    measured = set(line.frames)
    for slot in shot.slots:
        if slot.frame in measured and slot.frame < line.smoother.first + shot.window:
            lm = line.smoother.value(slot.frame, shot.final(line))
            raw = np.asarray(line.smoother.filled[slot.frame], np.float32)  # as measured: glasses are read on it
            faces.append(FaceRow(track, slot.frame, "stream", None, raw, lm))
            images[slot.frame] = slot.img.rgb if isinstance(slot.img, Yuv420) else slot.img
    return faces, images
