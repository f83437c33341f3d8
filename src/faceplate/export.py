"""``align``: aligned crops of one person's faces plus metadata, for training and effects."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceplate.align import align_image, align_matrix, to_aligned
from faceplate.config import AlignConfig
from faceplate.errors import ConfigError, FaceNotFoundError, WriterError
from faceplate.fileio import atomic_write, atomic_write_text
from faceplate.media.frames import FrameRange, parse_frame_range
from faceplate.review import match_reference, open_shot_plate, reference_face, write_png
from faceplate.store import FaceRow, ShotStore

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class AlignSummary:
    out: Path
    tracks: list[int]
    written: int
    skipped: int


def select_tracks(store: ShotStore, track: int | None, face: Path | None, allow_all: bool = False) -> list[int]:
    """``--track N`` or ``--face ref.jpg`` (all tracks of that person); with ``allow_all``, neither = all."""
    if track is not None and face is not None:
        raise ConfigError("choose the face with --track N or --face ref.jpg, not both")
    if track is None and face is None:
        if not allow_all:
            raise ConfigError("choose the face with exactly one of --track N or --face ref.jpg")
        tracks = [t.id for t in store.tracks()]
        if not tracks:
            raise FaceNotFoundError(f"no face in the shot {store.path.parent}")
        return tracks
    if track is not None:
        store.track(track)
        return [track]
    assert face is not None
    return match_reference(store, reference_face(face))[0]


def export_aligned(cfg: AlignConfig, progress: ProgressFn | None = None) -> AlignSummary:
    """Write ``<out>/<frame>_t<track>.png`` crops and ``<out>/align.json`` (+ ``landmarks.npy``).

    ``align.json`` lists per crop: file, frame, track, source, and the 2x3 plate→crop matrix; landmarks.npy
    holds the aligned landmarks (N, 478, 3) float32 in crop pixels, in the same order. Existing crops are
    kept (resume); the metadata is rewritten atomically.
    """
    with ShotStore.open(cfg.shot) as store:
        tracks = select_tracks(store, cfg.track, cfg.face)
        rng = parse_frame_range(cfg.frames) if cfg.frames else None
        faces: list[FaceRow] = []
        for t in tracks:
            faces += [f for f in store.track_faces(t) if rng is None or f.frame in rng]
        faces = sorted(faces, key=lambda f: (f.frame, f.track))[:: cfg.every]
        if not faces:
            raise FaceNotFoundError(f"track(s) {tracks} have no faces in frames {cfg.frames}")
        try:
            cfg.out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise WriterError(f"cannot create {cfg.out}: {err.strerror}") from None
        if not os.access(cfg.out, os.W_OK):
            raise WriterError(f"output folder {cfg.out} is not writable")
        entries, aligned, written = [], [], 0
        by_frame: dict[int, list[FaceRow]] = {}
        for f in faces:
            by_frame.setdefault(f.frame, []).append(f)
        span = FrameRange(faces[0].frame, faces[-1].frame)
        with open_shot_plate(store) as plate:
            for frame, rgb in plate.frames(span, display=True):
                for f in by_frame.get(frame, []):
                    lm = f.best if cfg.smoothed else f.landmarks
                    m = align_matrix(lm, cfg.res, cfg.face_type)
                    name = f"{frame:06d}_t{f.track}.png"
                    if not (cfg.out / name).exists():
                        write_png(cfg.out / name, align_image(rgb, m, cfg.res))
                        written += 1
                    entries.append(
                        {"file": name, "frame": frame, "track": f.track, "source": f.source, "matrix": m.tolist()}
                    )
                    aligned.append(to_aligned(m, lm))
                    if progress:
                        progress(len(entries), len(faces))
    meta = {
        "shot": str(cfg.shot),
        "res": cfg.res,
        "face_type": cfg.face_type,
        "smoothed": cfg.smoothed,
        "tracks": tracks,
        "faces": entries,
    }
    atomic_write(cfg.out / "landmarks.npy", lambda p: np.save(p, np.stack(aligned).astype(np.float32)))
    atomic_write_text(cfg.out / "align.json", json.dumps(meta, indent=1))
    return AlignSummary(cfg.out, tracks, written, len(entries) - written)
