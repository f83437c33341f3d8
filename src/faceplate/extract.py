"""``extract``: plate → decode → detect + landmarks → track → shot store (streamed, resumable)."""

from __future__ import annotations

import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceplate.analysis.cuts import CutDetector
from faceplate.analysis.faces import DETECTORS, Landmarker, interocular
from faceplate.analysis.hands import HandLandmarker
from faceplate.analysis.identity import MIN_EMBED_IOD, Embedder
from faceplate.analysis.smoothing import Smoothing
from faceplate.analysis.tracking import Observation, Track, Tracker, TrackerSettings, TrackerState
from faceplate.config import ExtractConfig
from faceplate.cpu import single_thread_blas, split_cores
from faceplate.errors import ConfigError, FaceNotFoundError, Interrupted
from faceplate.finalize import FinalizeSettings, finalize
from faceplate.media.frames import FrameRange
from faceplate.media.plate import Plate, PlateInfo, open_plate
from faceplate.media.prefetch import prefetch
from faceplate.store import F32, STORE_NAME, RunEnd, ShotStore, store_error
from faceplate.timing import Stopwatch

ProgressFn = Callable[[int, int], None]
PIN_MAX_PIXELS = 3_200_000  # auto core pinning up to ~1440p (measured: helps at 1080p, hurts at 4K)
CUT_WINDOW = 12  # scores the cut detector compares with; a resume decodes this many stored frames to prime it


@dataclass(frozen=True)
class ExtractSummary:
    shot: Path
    frames: FrameRange
    analysed: int  # frames analysed by this run
    skipped: int  # frames already in the store (resume)
    faces: int  # faces stored in the range
    tracks: int
    shots: int
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)  # wall seconds per stage

    @property
    def fps(self) -> float:
        return self.analysed / self.seconds if self.seconds > 0 else 0.0


def missing_runs(rng: FrameRange, done: set[int]) -> list[FrameRange]:
    """Consecutive runs of frames in ``rng`` not yet stored."""
    runs: list[FrameRange] = []
    start = None
    for f in range(rng.first, rng.last + 2):
        todo = f <= rng.last and f not in done
        if todo and start is None:
            start = f
        elif not todo and start is not None:
            runs.append(FrameRange(start, f - 1))
            start = None
    return runs


@dataclass
class _Batch:
    frames: list[tuple[int, int, float, int, int]] = field(default_factory=list)
    faces: list[tuple[int, int, str, float | None, F32]] = field(default_factory=list)
    tracks: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)
    embeddings: list[tuple[int, int, Callable[[], F32]]] = field(default_factory=list)  # descriptors on the way
    hands: list[tuple[int, int, F32]] = field(default_factory=list)
    end: RunEnd | None = None  # the analysis state after the last frame added

    def add(self, frame: int, shot: int, score: float, obs: list[Observation], hands_checked: bool) -> None:
        self.frames.append((frame, shot, score, len(obs), int(hands_checked)))
        for o in obs:
            self.faces.append((o.track, o.frame, o.source, o.score, o.landmarks))
            first = self.tracks.get(o.track, (o.track, shot, frame, frame))[2]
            self.tracks[o.track] = (o.track, shot, first, frame)

    def flush(self, store: ShotStore) -> None:
        """Write the batch in one transaction and empty it. It is emptied first: a Ctrl-C anywhere in here
        leaves its frames stored once (committed) or not at all (a resume analyses them again), never twice."""
        frames, faces, tracks, embeddings, hands = self.frames, self.faces, self.tracks, self.embeddings, self.hands
        self.frames, self.faces, self.tracks, self.embeddings, self.hands = [], [], {}, [], []
        if frames:
            vectors = [(t, f, vec()) for t, f, vec in embeddings]
            store.write_batch(frames, faces, tracks.values(), vectors, hands, self.end)


HANDS_IN_VIEW_EVERY = 2  # while hands are in view, look every other frame; the frames between get both
# neighbours' hands and their midpoints (analysis.hands.in_between): on fr_short_hamilton_clip 80-210 that
# misses 0.45% of the hand pixels inside the face crops that looking every frame finds (c1 model)


class _Cadence:
    """When to look for hands: every ``in_view`` frames while hands are in view, else every ``every``."""

    def __init__(self, every: int, in_view: int = HANDS_IN_VIEW_EVERY) -> None:
        self.every, self.in_view, self.since, self.present = every, min(in_view, every), 10**9, False

    def tick(self, cut: bool) -> None:
        self.since = 10**9 if cut else self.since + 1

    def now(self) -> bool:
        return self.since >= (self.in_view if self.present else self.every)

    def seen(self, present: bool) -> None:
        self.present, self.since = present, 0


class _Embeds:
    """Which faces to embed: each track's first face, then every ``every`` frames, at most ``most``."""

    def __init__(self, store: ShotStore, every: int, most: int) -> None:
        self.every, self.most = every, most
        self.count: dict[int, int] = {}
        self.last: dict[int, int] = {}
        for t, f, _ in store.embeddings():
            self.count[t] = self.count.get(t, 0) + 1
            self.last[t] = max(self.last.get(t, f), f)

    def wanted(self, track: int, frame: int) -> bool:
        if self.count.get(track, 0) >= self.most:
            return False
        return track not in self.last or frame - self.last[track] >= self.every

    def taken(self, track: int, frame: int) -> None:
        self.count[track] = self.count.get(track, 0) + 1
        self.last[track] = frame


def extract(cfg: ExtractConfig, progress: ProgressFn | None = None) -> ExtractSummary:
    """Analyse ``cfg.plate`` into the store in ``cfg.shot``; frames already stored are skipped.

    ``cfg.frames`` wholly outside the plate: ConfigError; partly outside: a ``UserWarning`` (``warnings.warn``)
    and the frames the plate has. A shot already holding every frame, finalized alike, is only read (no writer
    lock: render-farm chunks all call extract). Raises FaceNotFoundError (after storing every frame) when the
    range holds no face at all.
    """
    t0 = time.perf_counter()
    sw = Stopwatch()
    with open_plate(cfg.plate, colorspace=cfg.colorspace, first_frame=cfg.first_frame) as plate:
        rng = frames_to_extract(cfg.frame_range(), plate.info)
        smooth = Smoothing(cfg.smooth_min_cutoff, cfg.smooth_beta)
        fin = FinalizeSettings(float(plate.info.fps), cfg.link_gap_s, smoothing=smooth)
        store = _finished_store(cfg.shot, plate, rng, fin) or ShotStore.create(cfg.shot, plate)
        try:
            analysed, skipped = _update(cfg, plate, store, rng, fin, progress, sw)
            faces = store.conn.execute(
                "SELECT COUNT(*) FROM faces WHERE frame BETWEEN ? AND ? AND source != 'interp'", (rng.first, rng.last)
            ).fetchone()[0]
            summary = ExtractSummary(cfg.shot, rng, analysed, skipped, int(faces), len(store.tracks()),
                                     len(store.shots()), time.perf_counter() - t0, sw.seconds)  # fmt: skip
        except sqlite3.DatabaseError as err:
            raise store_error(store.path, err) from None
        finally:
            store.close()
    if summary.faces == 0:
        raise FaceNotFoundError(f"no face found in frames {rng} of {cfg.plate} ({len(rng)} frames stored)")
    return summary


def frames_to_extract(asked: FrameRange | None, plate: PlateInfo) -> FrameRange:
    """``asked`` (all frames when None) within the plate's frames: ConfigError when it lies wholly outside
    them, a UserWarning when partly."""
    have = plate.frames
    if asked is None:
        return have
    if asked.last < have.first or asked.first > have.last:
        raise ConfigError(f"frames {asked} are outside the plate {plate.path}, which has frames {have}")
    rng = asked.clip(have)
    if rng != asked:
        warnings.warn(f"frames {asked} reach past the plate {plate.path} (frames {have}): extracting {rng}",
                      stacklevel=3)  # fmt: skip
    return rng


def _finalized(store: ShotStore, fin: FinalizeSettings) -> bool:
    return store.meta("finalized", "0") == "1" and store.meta("finalize_settings", "") == repr(fin)


def _finished_store(shot: Path, plate: Plate, rng: FrameRange, fin: FinalizeSettings) -> ShotStore | None:
    """The shot's store opened to read when it holds every frame of ``rng`` finalized with ``fin``, else None."""
    if not (Path(shot) / STORE_NAME).is_file():
        return None
    store = ShotStore.open(shot)
    try:
        if not missing_runs(rng, store.stored_frames()) and _finalized(store, fin):
            store.check_plate(plate)
            return store
    except sqlite3.DatabaseError as err:
        store.close()
        raise store_error(store.path, err) from None
    except BaseException:
        store.close()
        raise
    store.close()
    return None


def _update(
    cfg: ExtractConfig,
    plate: Plate,
    store: ShotStore,
    rng: FrameRange,
    fin: FinalizeSettings,
    progress: ProgressFn | None,
    sw: Stopwatch,
) -> tuple[int, int]:
    """Analyse the frames of ``rng`` not stored yet, finalize when needed: (frames analysed, already stored)."""
    runs = missing_runs(rng, store.stored_frames())
    todo = sum(len(r) for r in runs)
    analysed = 0
    if runs:
        big = plate.info.width * plate.info.height > PIN_MAX_PIXELS
        pin = cfg.pin_cores if cfg.pin_cores is not None else not big
        with split_cores(pin) as io_cpus, single_thread_blas():
            analysed = _analyse(cfg, plate, store, runs, todo, progress, sw, io_cpus)
    # nothing new and same settings (or only reading): leave the store alone
    if store.writable and (analysed or not _finalized(store, fin)):
        with sw("finalize"):
            finalize(store, fin)
    return analysed, len(rng) - todo


@dataclass
class Models:
    """The analysis models of one worker (load once, ``close`` when done)."""

    detect: Any
    landmarker: Landmarker
    embedder: Embedder
    hands: HandLandmarker | None

    @classmethod
    def load(cls, cfg: ExtractConfig, embedder: Embedder | None = None) -> Models:
        """The models ``cfg`` asks for; ``embedder``: one already made (else dlib in this process)."""
        return cls(DETECTORS.get(cfg.detector)(cfg.tiles, cfg.min_score), Landmarker(), embedder or Embedder(),
                   HandLandmarker() if cfg.hands else None)  # fmt: skip

    def close(self) -> None:
        self.embedder.close()
        self.landmarker.close()
        if self.hands is not None:
            self.hands.close()


@dataclass(frozen=True)
class Analysed:
    """What one frame's analysis found (also written to the store)."""

    frame: int
    shot: int
    faces: list[Observation]
    hands_checked: bool
    hands: list[F32]


class RunAnalyser:
    """Analysis of one run of consecutive frames into the store: cuts, tracking, hands, identity samples.

    Feed every decoded frame in order to :meth:`step` (frames before ``run.first`` only prime the cut
    detector); rows are written in batches; :meth:`flush` writes the rest (also on Ctrl-C).
    """

    def __init__(self, cfg: ExtractConfig, store: ShotStore, models: Models, run: FrameRange, sw: Stopwatch) -> None:
        self.cfg, self.store, self.models, self.run, self.sw = cfg, store, models, run, sw
        max_track, max_shot = store.max_ids()
        settings = TrackerSettings(detect_every=cfg.detect_every, max_miss=cfg.max_miss)
        self.tracker = Tracker(models.detect, models.landmarker, settings, next_id=max_track + 1)
        self.cuts = CutDetector(window=CUT_WINDOW)
        self.hands_due = _Cadence(cfg.detect_every)
        self.embeds = _Embeds(store, cfg.embed_every, cfg.embed_max)
        self.batch = _Batch()
        self.pending: tuple[int, list[F32]] | None = None  # (frame, its hands) of a hand pass still running
        self.shot = max_shot + 1
        self.first_decoded = run.first
        prev = store.frame_row(run.first - 1)
        if prev is not None:  # continue the shot, its tracks and cadences from the stored previous frame
            self.shot = prev[0]
            self._resume(run.first - 1)

    def _resume(self, frame: int) -> None:
        """Restore the state after stored ``frame`` (stored with it, else derived from its faces)."""
        end = self.store.run_end(frame) or self.store.derived_run_end(frame, self.cfg.max_miss)
        tracks = [(lost, Track(t, lm, f)) for lost, t, f, lm in end.tracks]
        live, lost = tuple(t for x, t in tracks if not x), tuple(t for x, t in tracks if x)
        c = end.counters
        self.tracker.restore(TrackerState(live, lost, c.get("since_detect", 10**9), c.get("next_id", 0)))
        self.hands_due.since = c.get("hands_since", 10**9)
        self.hands_due.present = bool(c.get("hands_present", 0))
        # the stored frames before the run are decoded only to prime the cut detector as it was
        self.first_decoded = self.store.stored_run_start(frame, CUT_WINDOW)

    def _run_end(self, frame: int) -> RunEnd:
        s = self.tracker.state()
        tracks = [(False, t.id, t.last_frame, t.landmarks) for t in s.live]
        tracks += [(True, t.id, t.last_frame, t.landmarks) for t in s.lost]
        counters = {"since_detect": s.since_detect, "next_id": s.next_id, "hands_since": self.hands_due.since,
                    "hands_present": int(self.hands_due.present)}  # fmt: skip
        return RunEnd(frame, counters, tracks)

    def step(self, frame: int, rgb: NDArray[np.uint8], thumb: NDArray[np.float32]) -> Analysed | None:
        """Analyse decoded frame ``frame`` (uint8 RGB (H, W, 3), its cut-detector thumbnail); None for a
        priming frame before the run."""
        score, is_cut = self.cuts.update(thumb)
        if frame < self.run.first:
            return None
        if is_cut:
            self.tracker.cut()
            self.shot += 1
        with self.sw("detect + landmarks"):
            obs = self.tracker.step(frame, rgb)  # the last frame's hand pass runs meanwhile on its graph's threads
        self.settle()
        checked, found = False, list[F32]()
        self.hands_due.tick(is_cut)
        due = self.hands_due.now() or (frame == self.run.last and self.hands_due.present)  # no open end
        if obs and self.models.hands is not None and due:  # only where there are faces
            with self.sw("hands"):
                self.models.hands.submit(rgb)
            self.pending = (frame, found)  # filled in by settle(), on the next frame
            checked = True
        for o in obs:
            if self.embeds.wanted(o.track, frame) and interocular(o.landmarks) >= MIN_EMBED_IOD:
                with self.sw("identity"):
                    self.batch.embeddings.append((o.track, frame, self.models.embedder.submit(rgb, o.landmarks)))
                self.embeds.taken(o.track, frame)
        self.batch.add(frame, self.shot, score, obs, checked)
        self.batch.end = self._run_end(frame)
        if len(self.batch.frames) >= self.cfg.commit_every:
            self.settle()
            with self.sw("store"):
                self.batch.flush(self.store)
        return Analysed(frame, self.shot, obs, checked, found)  # ``found`` is filled in once settled

    def settle(self) -> None:
        """Wait for the hand pass still running (if any): its hands go into the batch and into the ``hands``
        of the frame's Analysed, the hand cadence and the stored run end see them."""
        if self.pending is None:
            return
        (frame, found), self.pending = self.pending, None
        assert self.models.hands is not None
        with self.sw("hands"):
            found += self.models.hands.collect()
        self.batch.hands += [(frame, i, h) for i, h in enumerate(found)]
        self.hands_due.seen(bool(found))
        end = self.batch.end
        if end is not None and end.frame == frame:  # taken before the hands were known
            end.counters.update(hands_since=self.hands_due.since, hands_present=int(self.hands_due.present))

    def flush(self) -> None:
        self.settle()
        self.batch.flush(self.store)


def thumbnails(
    decoded: Iterator[tuple[int, Any]], rgb_of: Callable[[Any], NDArray[np.uint8]] = lambda x: x
) -> Iterator[tuple[int, Any, NDArray[np.float32]]]:
    """(frame, decoded item, cut-detector thumbnail of its RGB) for each decoded item (run on the decoder thread)."""
    for f, item in decoded:
        yield f, item, CutDetector.thumb(rgb_of(item))


def _analyse(
    cfg: ExtractConfig,
    plate: Plate,
    store: ShotStore,
    runs: list[FrameRange],
    todo: int,
    progress: ProgressFn | None,
    sw: Stopwatch,
    io_cpus: set[int] | None,
) -> int:
    models: Models | None = None
    done = 0
    last_frame = None
    an: RunAnalyser | None = None
    try:
        with sw("model load"):
            models = Models.load(cfg)
        for run in runs:
            an = RunAnalyser(cfg, store, models, run, sw)
            # decode, convert and thumbnail on the other core
            decoded = plate.frames(FrameRange(an.first_decoded, run.last), display=True)
            for frame, rgb, thumb in sw.iterate("decode (wait)", prefetch(thumbnails(decoded), cpus=io_cpus)):
                if an.step(frame, rgb, thumb) is None:
                    continue
                last_frame = frame
                done += 1
                if progress is not None:
                    progress(done, todo)
            an.flush()
    except KeyboardInterrupt:
        if an is not None:
            an.flush()
        if last_frame is None:
            raise Interrupted("interrupted before the first frame was analysed; nothing new stored") from None
        raise Interrupted(
            f"interrupted after frame {last_frame}; {done} frame(s) of this run are stored; "
            "run the same command to resume"
        ) from None
    finally:
        if models is not None:
            models.close()
    return done
