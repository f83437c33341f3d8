"""``extract``: plate → decode → detect + landmarks → track → shot store (streamed, resumable)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from faceplate.analysis.cuts import CutDetector
from faceplate.analysis.faces import DETECTORS, Landmarker, interocular
from faceplate.analysis.hands import HandLandmarker
from faceplate.analysis.identity import MIN_EMBED_IOD, Embedder
from faceplate.analysis.tracking import Observation, Track, Tracker, TrackerSettings
from faceplate.config import ExtractConfig
from faceplate.cpu import single_thread_blas, split_cores
from faceplate.errors import FaceNotFoundError, FaceplateError
from faceplate.finalize import FinalizeSettings, finalize
from faceplate.media.frames import FrameRange
from faceplate.media.plate import Plate, open_plate
from faceplate.media.prefetch import prefetch
from faceplate.store import F32, ShotStore
from faceplate.timing import Stopwatch

ProgressFn = Callable[[int, int], None]
PIN_MAX_PIXELS = 3_200_000  # auto core pinning up to ~1440p (measured: helps at 1080p, hurts at 4K)


class Interrupted(FaceplateError):
    """Ctrl-C during a stage; everything finished before it is kept."""

    exit_code = 130


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
    embeddings: list[tuple[int, int, F32]] = field(default_factory=list)
    hands: list[tuple[int, int, F32]] = field(default_factory=list)

    def add(self, frame: int, shot: int, score: float, obs: list[Observation], hands_checked: bool) -> None:
        self.frames.append((frame, shot, score, len(obs), int(hands_checked)))
        for o in obs:
            self.faces.append((o.track, o.frame, o.source, o.score, o.landmarks))
            first = self.tracks.get(o.track, (o.track, shot, frame, frame))[2]
            self.tracks[o.track] = (o.track, shot, first, frame)

    def flush(self, store: ShotStore) -> None:
        if self.frames:
            store.write_batch(self.frames, self.faces, self.tracks.values(), self.embeddings, self.hands)
        self.frames, self.faces, self.tracks, self.embeddings, self.hands = [], [], {}, [], []


class _Cadence:
    """When to look for hands: every frame while hands are in view, else every ``every`` frames."""

    def __init__(self, every: int) -> None:
        self.every, self.since, self.present = every, 10**9, False

    def tick(self, cut: bool) -> None:
        self.since = 10**9 if cut else self.since + 1

    def now(self) -> bool:
        return self.present or self.since >= self.every

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

    Raises FaceNotFoundError (after storing every frame) when the range holds no face at all.
    """
    t0 = time.perf_counter()
    sw = Stopwatch()
    with open_plate(cfg.plate, colorspace=cfg.colorspace, first_frame=cfg.first_frame) as plate:
        asked = cfg.frame_range()
        rng = plate.info.frames if asked is None else asked.clip(plate.info.frames)
        store = ShotStore.create(cfg.shot, plate.info)
        try:
            runs = missing_runs(rng, store.stored_frames())
            todo = sum(len(r) for r in runs)
            analysed = 0
            if runs:
                big = plate.info.width * plate.info.height > PIN_MAX_PIXELS
                pin = cfg.pin_cores if cfg.pin_cores is not None else not big
                with split_cores(pin) as io_cpus, single_thread_blas():
                    analysed = _analyse(cfg, plate, store, runs, todo, progress, sw, io_cpus)
            fin = FinalizeSettings(
                float(plate.info.fps), cfg.link_gap_s, min_cutoff=cfg.smooth_min_cutoff, beta=cfg.smooth_beta
            )
            # nothing new and same settings: leave the store alone (render-farm chunks all call extract)
            if analysed or store.meta("finalized", "0") != "1" or store.meta("finalize_settings", "") != repr(fin):
                with sw("finalize"):
                    finalize(store, fin)
            faces = store.conn.execute(
                "SELECT COUNT(*) FROM faces WHERE frame BETWEEN ? AND ? AND source != 'interp'", (rng.first, rng.last)
            ).fetchone()[0]
            summary = ExtractSummary(
                cfg.shot,
                rng,
                analysed,
                len(rng) - todo,
                int(faces),
                len(store.tracks()),
                len(store.shots()),
                time.perf_counter() - t0,
                sw.seconds,
            )
        finally:
            store.close()
    if summary.faces == 0:
        raise FaceNotFoundError(f"no face found in frames {rng} of {cfg.plate} ({len(rng)} frames stored)")
    return summary


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
    with sw("model load"):
        detect = DETECTORS.get(cfg.detector)(cfg.tiles, cfg.min_score)
        landmarker = Landmarker()
        embedder = Embedder()
        hand_landmarker = HandLandmarker() if cfg.hands else None
    embeds = _Embeds(store, cfg.embed_every, cfg.embed_max)
    settings = TrackerSettings(detect_every=cfg.detect_every, max_miss=cfg.max_miss)
    done = 0
    batch = _Batch()
    last_frame = None
    try:
        for run in runs:
            max_track, max_shot = store.max_ids()
            tracker = Tracker(detect, landmarker, settings, next_id=max_track + 1)
            cuts = CutDetector()
            hands_due = _Cadence(cfg.detect_every)
            prev = store.frame_row(run.first - 1)
            shot = max_shot + 1
            start = run.first
            if prev is not None:  # continue the shot and its tracks from the stored previous frame
                shot = prev[0]
                tracker.resume([Track(f.track, f.landmarks, f.frame) for f in store.faces_in_frame(run.first - 1)])
                start = run.first - 1  # decoded only to prime the cut detector
            # decode, convert and thumbnail on the other core
            decoded = plate.frames(FrameRange(start, run.last), display=True)
            frames = prefetch(((f, rgb, CutDetector.thumb(rgb)) for f, rgb in decoded), cpus=io_cpus)
            for frame, rgb, thumb in sw.iterate("decode (wait)", frames):
                score, is_cut = cuts.update(thumb)
                if frame < run.first:
                    continue
                if is_cut:
                    tracker.cut()
                    shot += 1
                with sw("detect + landmarks"):
                    obs = tracker.step(frame, rgb)
                checked = False
                hands_due.tick(is_cut)
                if obs and hand_landmarker is not None and hands_due.now():  # only where there are faces
                    with sw("hands"):
                        found = hand_landmarker(rgb)
                    batch.hands += [(frame, i, h) for i, h in enumerate(found)]
                    hands_due.seen(bool(found))
                    checked = True
                for o in obs:
                    if embeds.wanted(o.track, frame) and interocular(o.landmarks) >= MIN_EMBED_IOD:
                        with sw("identity"):
                            batch.embeddings.append((o.track, frame, embedder(rgb, o.landmarks)))
                        embeds.taken(o.track, frame)
                batch.add(frame, shot, score, obs, checked)
                last_frame = frame
                done += 1
                if len(batch.frames) >= cfg.commit_every:
                    with sw("store"):
                        batch.flush(store)
                if progress is not None:
                    progress(done, todo)
        batch.flush(store)
    except KeyboardInterrupt:
        batch.flush(store)
        raise Interrupted(
            f"interrupted after frame {last_frame}; {done} frame(s) of this run are stored; "
            "run the same command to resume"
        ) from None
    finally:
        landmarker.close()
        if hand_landmarker is not None:
            hand_landmarker.close()
    return done
