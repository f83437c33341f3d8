"""After extraction: link tracks of the same person across short gaps, group tracks into identities,
fill gaps and smooth landmarks over time, measure jitter. Deterministic and re-runnable (one transaction).

Tracks still open at the end of a partly extracted range (``ShotStore.open_tracks``) are neither dropped
nor linked yet: a resumed extract continues them, and the next finalize decides as an uninterrupted run's.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

import numpy as np

from faceplate.analysis.faces import interocular
from faceplate.analysis.identity import cluster_identities, distance
from faceplate.analysis.smoothing import Smoothing, interpolate_gaps, jitter, smooth_track
from faceplate.store import F32, ShotStore, face_box, to_blob


@dataclass(frozen=True)
class FinalizeSettings:
    fps: float
    link_gap_s: float = 2.0  # same-shot tracks separated by at most this gap may be one track
    link_distance: float = 0.5  # ... when their identities are this close (dlib distance)
    identity_distance: float = 0.55  # tracks closer than this are one person (never two in one frame)
    min_faces: int = 3  # shorter tracks are detector false positives (unless their shot is that short)
    smoothing: Smoothing = field(default_factory=Smoothing)  # landmark smoothing over time


def finalize(store: ShotStore, s: FinalizeSettings) -> None:
    with store.transaction() as c:
        c.execute("DELETE FROM faces WHERE source = 'interp'")
        c.execute("UPDATE faces SET smoothed = NULL")
        keep = store.open_tracks()
        _drop_blips(c, store, s, keep)
        _link(c, store, s, keep)
        _identities(c, store, s)
        for t in store.tracks():
            _smooth(c, store, t.id, s)
        c.execute(
            "UPDATE frames SET n_faces = (SELECT COUNT(*) FROM faces WHERE faces.frame = frames.frame "
            "AND faces.source != 'interp')"
        )
        store.set_meta(c, "finalized", "1")
        store.set_meta(c, "finalize_settings", repr(s))


def _mean_embeddings(store: ShotStore) -> dict[int, F32]:
    return {t: m for t, (m, _) in _embedding_means(store).items()}


def _embedding_means(store: ShotStore) -> dict[int, tuple[F32, int]]:
    """track → (mean embedding, number of samples)."""
    by: dict[int, list[F32]] = {}
    for t, _, v in store.embeddings():
        by.setdefault(t, []).append(v)
    return {t: (np.mean(vs, axis=0).astype(np.float32), len(vs)) for t, vs in by.items()}


def _drop_blips(c: sqlite3.Connection, store: ShotStore, s: FinalizeSettings, keep: set[int]) -> None:
    """Delete tracks seen in fewer than ``min_faces`` frames when their shot is longer than that."""
    shot_len = {shot: last - first + 1 for shot, first, last in store.shots()}
    for t in store.tracks():
        n = c.execute("SELECT COUNT(*) FROM faces WHERE track = ?", (t.id,)).fetchone()[0]
        if n < s.min_faces and shot_len.get(t.shot, 0) > n and t.id not in keep:
            for table, col in (("faces", "track"), ("embeddings", "track"), ("tracks", "id")):
                c.execute(f"DELETE FROM {table} WHERE {col} = ?", (t.id,))


def _near(store: ShotStore, a: int, b: int, frames_apart: int, fps: float) -> bool:
    """Could track ``b``'s first face be track ``a``'s last face moved on? (within a face width per second)"""
    fa, fb = store.track_faces(a)[-1].landmarks, store.track_faces(b)[0].landmarks
    ba, bb = np.array(face_box(fa)), np.array(face_box(fb))
    size = max(ba[2] - ba[0], bb[2] - bb[0])
    shift = np.linalg.norm((ba[:2] + ba[2:]) / 2 - (bb[:2] + bb[2:]) / 2)
    return bool(shift <= size * (0.5 + frames_apart / fps))


def _link(c: sqlite3.Connection, store: ShotStore, s: FinalizeSettings, keep: set[int]) -> None:
    """Merge a track into an earlier one of the same shot that it follows closely in time, place and looks
    (tracks in ``keep`` are left alone)."""
    gap = max(1, round(s.link_gap_s * s.fps))
    means = _embedding_means(store)
    emb, count = {t: m for t, (m, _) in means.items()}, {t: n for t, (_, n) in means.items()}
    tracks = sorted(store.tracks(), key=lambda t: t.first_frame)
    ends: dict[int, tuple[int, int]] = {t.id: (t.shot, t.last_frame) for t in tracks if t.id not in keep}
    for b in tracks:
        if b.id not in ends or b.id not in emb:
            continue
        best, best_d = None, s.link_distance
        for a_id, (shot, last) in ends.items():
            if a_id == b.id or shot != b.shot or not (0 < b.first_frame - last <= gap) or a_id not in emb:
                continue
            if not _near(store, a_id, b.id, b.first_frame - last, s.fps):
                continue
            d = distance(emb[a_id], emb[b.id])
            if d < best_d:
                best, best_d = a_id, d
        if best is None:
            continue
        c.execute("UPDATE faces SET track = ? WHERE track = ?", (best, b.id))
        c.execute("UPDATE embeddings SET track = ? WHERE track = ?", (best, b.id))
        c.execute("UPDATE tracks SET last_frame = ? WHERE id = ?", (b.last_frame, best))
        c.execute("DELETE FROM tracks WHERE id = ?", (b.id,))
        ends[best] = (b.shot, b.last_frame)
        del ends[b.id]
        # the mean of both tracks' samples, as a later finalize computes it from the store
        n_a, n_b = count[best], count.pop(b.id)
        emb[best] = ((emb[best] * n_a + emb.pop(b.id) * n_b) / (n_a + n_b)).astype(np.float32)
        count[best] = n_a + n_b


def _identities(c: sqlite3.Connection, store: ShotStore, s: FinalizeSettings) -> None:
    emb = _mean_embeddings(store)
    spans = [(t.id, t.first_frame, t.last_frame) for t in store.tracks()]
    labels = cluster_identities(spans, emb, s.identity_distance)
    c.execute("DELETE FROM identities")
    c.execute("UPDATE tracks SET identity = NULL")
    for ident in sorted(set(labels.values())):
        members = [t for t, i in labels.items() if i == ident]
        vecs = [emb[t] for t in members if t in emb]
        mean = np.mean(vecs, axis=0) if vecs else np.zeros(128, np.float32)
        c.execute("INSERT INTO identities VALUES (?, ?, ?)", (ident, to_blob(mean), len(members)))
        c.executemany("UPDATE tracks SET identity = ? WHERE id = ?", [(ident, t) for t in members])


def _smooth(c: sqlite3.Connection, store: ShotStore, track: int, s: FinalizeSettings) -> None:
    faces = store.track_faces(track)
    frames = np.array([f.frame for f in faces])
    lm = np.stack([f.landmarks for f in faces])
    full, filled = interpolate_gaps(frames, lm)
    scale = np.array([interocular(x) for x in filled])
    smooth = smooth_track(filled, scale, s.fps, settings=s.smoothing)
    measured = set(frames.tolist())
    interp = [
        (track, int(f), "interp", None, *face_box(x), to_blob(x))
        for f, x in zip(full, filled, strict=True)
        if int(f) not in measured
    ]
    c.executemany(
        "INSERT INTO faces (track, frame, source, score, x0, y0, x1, y1, landmarks) VALUES (?,?,?,?,?,?,?,?,?)", interp
    )
    c.executemany(
        "UPDATE faces SET smoothed = ? WHERE track = ? AND frame = ?",
        [(to_blob(x), track, int(f)) for f, x in zip(full, smooth, strict=True)],
    )
    c.execute(
        "UPDATE tracks SET n_faces = ?, first_frame = ?, last_frame = ?, jitter_raw = ?, jitter_smooth = ? "
        "WHERE id = ?",
        (len(faces), int(full[0]), int(full[-1]), jitter(filled, scale), jitter(smooth, scale), track),
    )
