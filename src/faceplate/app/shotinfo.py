"""What the page shows about a shot: plate timing, tracks, and the marks on the scrub bar (frames with no
face, cuts, QC flags). Pure reads of the shot store; every function returns plain JSON-able data.

QC flags are computed by the functions in :data:`QC_FLAGS` (name → function of the store and the review
config), so a later stage adds its own flag by adding a function there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceplate.app.config import ReviewConfig
from faceplate.landmarks import EYE_INNER_L, EYE_INNER_R, EYE_OUTER_L, EYE_OUTER_R
from faceplate.store import ShotStore, face_box

JITTER_FLOOR = 1.0  # % of the eye distance: a spike must also be at least this large (a still face's noise is less)


def tracks(store: ShotStore) -> list[dict[str, Any]]:
    """Each track: id, camera shot, identity, frame range, faces, jitter (% eye distance, raw and smoothed)."""
    return [{"id": t.id, "shot": t.shot, "identity": t.identity, "first": t.first_frame, "last": t.last_frame,
             "faces": t.n_faces, "jitter_raw": t.jitter_raw, "jitter_smooth": t.jitter_smooth}
            for t in store.tracks()]  # fmt: skip


def track_boxes(store: ShotStore, track: int) -> list[list[float]]:
    """[frame, x0, y0, x1, y1] (plate px, smoothed landmarks when stored) of each face of ``track``."""
    store.track(track)  # StoreError naming the tracks when there is no such track
    return [[f.frame, *(round(v, 1) for v in face_box(f.best))] for f in store.track_faces(track)]


def _runs(frames: list[int]) -> list[list[int]]:
    """Sorted frame numbers → [first, last] runs of consecutive frames."""
    out: list[list[int]] = []
    for f in frames:
        if out and f == out[-1][1] + 1:
            out[-1][1] = f
        else:
            out.append([f, f])
    return out


def frame_marks(store: ShotStore) -> dict[str, list[list[int]]]:
    """Runs of frames with no face (``noface``) and not analysed yet (``unanalysed``), and the first frame
    of each camera shot after the first (``cuts``, as [frame, frame])."""
    info = store.plate
    rows = store.conn.execute("SELECT frame, shot, n_faces FROM frames ORDER BY frame").fetchall()
    stored = {int(f) for f, _, _ in rows}
    missing = [f for f in range(info.first_frame, info.last_frame + 1) if f not in stored]
    noface = [int(f) for f, _, n in rows if n == 0]
    cuts = [int(f) for (f, s, _), (_, prev, _) in zip(rows[1:], rows[:-1], strict=True) if s != prev]
    return {"noface": _runs(noface), "unanalysed": _runs(missing), "cuts": [[c, c] for c in cuts]}


def _iod(lm: NDArray[np.float64]) -> NDArray[np.float64]:
    """Eye distance of landmarks (T, 478, 3) → (T,)."""
    r = (lm[:, EYE_OUTER_R, :2] + lm[:, EYE_INNER_R, :2]) / 2
    left = (lm[:, EYE_OUTER_L, :2] + lm[:, EYE_INNER_L, :2]) / 2
    return np.asarray(np.linalg.norm(left - r, axis=-1), np.float64)


def jitter_spikes(store: ShotStore, cfg: ReviewConfig) -> list[dict[str, Any]]:
    """Frames whose measured landmarks accelerate ``cfg.jitter_spike`` times the track's median (and at least
    JITTER_FLOOR % of the eye distance): [{frame, track, value}]."""
    out = []
    for t in store.tracks():
        faces = [f for f in store.track_faces(t.id) if f.source != "interp"]
        if len(faces) < 3:
            continue
        frames = np.array([f.frame for f in faces])
        lm = np.stack([f.landmarks for f in faces]).astype(np.float64)
        acc = np.linalg.norm(lm[2:, :, :2] - 2 * lm[1:-1, :, :2] + lm[:-2, :, :2], axis=-1).mean(axis=-1)
        pct = 100.0 * acc / np.maximum(_iod(lm[1:-1]), 1e-6)
        even = (frames[2:] - frames[:-2]) == 2  # only frames with both neighbours measured
        med = float(np.median(pct[even])) if even.any() else 0.0
        hit = even & (pct > cfg.jitter_spike * med) & (pct >= JITTER_FLOOR)
        out += [
            {"frame": int(frames[i + 1]), "track": t.id, "value": round(float(pct[i]), 2)} for i in np.flatnonzero(hit)
        ]
    return out


def identity_drift(store: ShotStore, cfg: ReviewConfig) -> list[dict[str, Any]]:
    """Identity samples farther than ``cfg.drift`` (dlib distance) from their track's mean: [{frame, track, value}]."""
    by: dict[int, list[tuple[int, NDArray[np.float32]]]] = {}
    for track, frame, vec in store.embeddings():
        by.setdefault(track, []).append((frame, vec))
    out = []
    for track, samples in by.items():
        mean = np.mean([v for _, v in samples], axis=0)
        for frame, v in samples:
            d = float(np.linalg.norm(np.asarray(v, np.float64) - mean))
            if len(samples) > 1 and d > cfg.drift:
                out.append({"frame": frame, "track": track, "value": round(d, 3)})
    return out


def qc_report(store: ShotStore, cfg: ReviewConfig) -> list[dict[str, Any]]:
    """Flags of the newest ``faceplate qc`` report (SHOT/qc/*/qc.json, or a render's folder's qc/*/qc.json):
    [{frame, track, value, flag}]."""
    from faceplate.qc.files import latest_flags

    return latest_flags([cfg.shot / "qc", *(Path(r).parent / "qc" for r in cfg.renders)])


#: QC flags marked on the scrub bar: name → function(store, cfg) → [{frame, track, value}].
QC_FLAGS: dict[str, Callable[[ShotStore, ReviewConfig], list[dict[str, Any]]]] = {
    "jitter": jitter_spikes,
    "drift": identity_drift,
    "qc": qc_report,
}


def shot_summary(store: ShotStore, cfg: ReviewConfig) -> dict[str, Any]:
    """Everything the page needs about the shot, read once when the server starts."""
    info = store.plate
    return {
        "plate": {
            "path": info.path,
            "width": info.width,
            "height": info.height,
            "first": info.first_frame,
            "last": info.last_frame,
            "fps": float(info.fps),
            "fps_text": f"{info.fps}",
            "timebase": round(float(info.fps)),
            "colorspace": info.colorspace,
        },
        "tracks": tracks(store),
        "marks": frame_marks(store),
        "flags": {name: flag(store, cfg) for name, flag in QC_FLAGS.items()},
    }
