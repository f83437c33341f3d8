"""The shot store: one versioned SQLite file (WAL) per shot with frames, faces, tracks and embeddings.

Extraction commits whole frames in batches, so a killed run leaves a consistent prefix and resumes from
the first frame not yet stored. Arrays are stored as raw little-endian float32 blobs (never pickle).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceplate import __version__
from faceplate.errors import StoreError
from faceplate.media.plate import PlateInfo

SCHEMA_VERSION = 1
STORE_NAME = "shot.sqlite"
F32 = NDArray[np.float32]

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE frames (
    frame INTEGER PRIMARY KEY,
    shot INTEGER NOT NULL,          -- camera shot (cut-to-cut) index
    cut_score REAL NOT NULL,        -- change vs previous frame, 0..255
    n_faces INTEGER NOT NULL,
    hands_checked INTEGER NOT NULL  -- 1 when the hand detector ran on this frame
);
CREATE TABLE tracks (
    id INTEGER PRIMARY KEY,
    shot INTEGER NOT NULL,
    first_frame INTEGER NOT NULL,
    last_frame INTEGER NOT NULL,
    identity INTEGER,               -- person across tracks and shots (set by finalize)
    n_faces INTEGER NOT NULL DEFAULT 0,
    jitter_raw REAL,                -- landmark jitter, % of inter-ocular distance per frame
    jitter_smooth REAL
);
CREATE TABLE faces (
    track INTEGER NOT NULL REFERENCES tracks(id),
    frame INTEGER NOT NULL,
    source TEXT NOT NULL,           -- detect | track | interp (gap filled by finalize)
    score REAL,                     -- detector score on detection frames
    x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
    landmarks BLOB NOT NULL,        -- float32 (478, 3) plate pixels as measured
    smoothed BLOB,                  -- float32 (478, 3) after temporal smoothing (finalize)
    PRIMARY KEY (track, frame)
) WITHOUT ROWID;
CREATE INDEX faces_by_frame ON faces(frame);
CREATE TABLE embeddings (
    id INTEGER PRIMARY KEY,
    track INTEGER NOT NULL REFERENCES tracks(id),
    frame INTEGER NOT NULL,
    vector BLOB NOT NULL            -- float32 (128,) dlib descriptor
);
CREATE TABLE identities (id INTEGER PRIMARY KEY, vector BLOB NOT NULL, n_tracks INTEGER NOT NULL);
CREATE TABLE hands (
    frame INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    landmarks BLOB NOT NULL,        -- float32 (21, 3) plate pixels: occluders for every effect
    PRIMARY KEY (frame, idx)
) WITHOUT ROWID;
"""


def to_blob(a: NDArray[Any]) -> bytes:
    return np.ascontiguousarray(a, dtype="<f4").tobytes()


def from_blob(b: bytes, shape: tuple[int, ...]) -> F32:
    return np.frombuffer(b, dtype="<f4").reshape(shape).astype(np.float32)


@dataclass(frozen=True)
class FaceRow:
    """One face in one frame as stored."""

    track: int
    frame: int
    source: str
    score: float | None
    landmarks: F32
    smoothed: F32 | None = None

    @property
    def best(self) -> F32:
        """Smoothed landmarks when available, else the measured ones."""
        return self.smoothed if self.smoothed is not None else self.landmarks


@dataclass(frozen=True)
class TrackRow:
    id: int
    shot: int
    first_frame: int
    last_frame: int
    identity: int | None
    n_faces: int
    jitter_raw: float | None
    jitter_smooth: float | None


class ShotStore:
    """Open with :meth:`create` (new or matching plate) or :meth:`open` (existing). Not thread-safe."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn

    # ------------------------------------------------------------------ open / create
    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as err:
            raise StoreError(f"cannot open shot store {path}: {err}") from None
        return conn

    @classmethod
    def open(cls, shot_dir: str | Path) -> ShotStore:
        path = Path(shot_dir) / STORE_NAME
        if not path.is_file():
            raise StoreError(f"{shot_dir} is not a shot folder (no {STORE_NAME}); run `faceplate extract` first")
        store = cls(path, cls._connect(path))
        try:
            version = int(store.meta("schema_version", "0"))
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{path} is not a faceplate store or is corrupt: {err}") from None
        if version != SCHEMA_VERSION:
            raise StoreError(f"{path} has store version {version}; this faceplate reads version {SCHEMA_VERSION}")
        return store

    @classmethod
    def create(cls, shot_dir: str | Path, plate: PlateInfo) -> ShotStore:
        """Open the shot's store, creating it for ``plate``; refuse a store made for another plate."""
        folder = Path(shot_dir)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create shot folder {folder}: {err.strerror}") from None
        path = folder / STORE_NAME
        if path.exists():
            store = cls.open(folder)
            stored = PlateInfo.from_dict(json.loads(store.meta("plate")))
            if (stored.width, stored.height, stored.frame_count, stored.first_frame) != (
                plate.width,
                plate.height,
                plate.frame_count,
                plate.first_frame,
            ):
                raise StoreError(f"{folder} belongs to another plate ({stored.path}); use a new --shot folder")
            return store
        try:
            tmp = folder / f".{STORE_NAME}.new"
            tmp.unlink(missing_ok=True)
            conn = cls._connect(tmp)
            conn.execute("BEGIN")
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            meta = {
                "schema_version": str(SCHEMA_VERSION),
                "faceplate_version": __version__,
                "plate": json.dumps(plate.to_dict()),
                "finalized": "0",
            }
            conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
            tmp.replace(path)
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"cannot create shot store in {folder}: {err}") from None
        return cls.open(folder)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    def __enter__(self) -> ShotStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing write; a crash or Ctrl-C inside leaves the store as it was."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise StoreError(f"shot store {self.path} is busy or read-only: {err}") from None
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as err:
                raise StoreError(f"cannot write shot store {self.path}: {err}") from None

    # ------------------------------------------------------------------ meta
    def meta(self, key: str, default: str | None = None) -> str:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            if default is None:
                raise StoreError(f"{self.path} lacks '{key}'; the store is incomplete")
            return default
        return str(row[0])

    def set_meta(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def plate(self) -> PlateInfo:
        return PlateInfo.from_dict(json.loads(self.meta("plate")))

    # ------------------------------------------------------------------ frames
    def stored_frames(self) -> set[int]:
        return {r[0] for r in self.conn.execute("SELECT frame FROM frames")}

    def frame_row(self, frame: int) -> tuple[int, float, int] | None:
        row = self.conn.execute("SELECT shot, cut_score, n_faces FROM frames WHERE frame = ?", (frame,)).fetchone()
        return None if row is None else (int(row[0]), float(row[1]), int(row[2]))

    def max_ids(self) -> tuple[int, int]:
        """(largest track id, largest shot index) so far, -1 when none."""
        t = self.conn.execute("SELECT COALESCE(MAX(id), -1) FROM tracks").fetchone()[0]
        s = self.conn.execute("SELECT COALESCE(MAX(shot), -1) FROM frames").fetchone()[0]
        return int(t), int(s)

    def shots(self) -> list[tuple[int, int, int]]:
        """(shot, first frame, last frame) for every shot stored."""
        q = "SELECT shot, MIN(frame), MAX(frame) FROM frames GROUP BY shot ORDER BY shot"
        return [(int(a), int(b), int(c)) for a, b, c in self.conn.execute(q)]

    # ------------------------------------------------------------------ faces and tracks
    def faces_in_frame(self, frame: int) -> list[FaceRow]:
        q = "SELECT track, frame, source, score, landmarks, smoothed FROM faces WHERE frame = ? ORDER BY track"
        return [_face(r) for r in self.conn.execute(q, (frame,))]

    def track_faces(self, track: int) -> list[FaceRow]:
        q = "SELECT track, frame, source, score, landmarks, smoothed FROM faces WHERE track = ? ORDER BY frame"
        return [_face(r) for r in self.conn.execute(q, (track,))]

    def tracks(self) -> list[TrackRow]:
        q = "SELECT id, shot, first_frame, last_frame, identity, n_faces, jitter_raw, jitter_smooth FROM tracks"
        q += " ORDER BY id"
        return [TrackRow(*r) for r in self.conn.execute(q)]

    def track(self, track: int) -> TrackRow:
        for t in self.tracks():
            if t.id == track:
                return t
        ids = ", ".join(str(t.id) for t in self.tracks()) or "none"
        raise StoreError(f"no track {track} in {self.path.parent} (tracks: {ids})")

    def hands_in_frame(self, frame: int) -> list[F32]:
        """Hands found in ``frame``: each (21, 3) float32 in plate pixels."""
        q = "SELECT landmarks FROM hands WHERE frame = ? ORDER BY idx"
        return [from_blob(b, (21, 3)) for (b,) in self.conn.execute(q, (frame,))]

    def hands_near(self, frame: int) -> list[F32]:
        """Hands to keep out of effects at ``frame``: those found there, or, when the hand detector skipped
        the frame, those of the nearest checked frames before and after it (a hand moving in between is
        covered by both)."""
        row = self.conn.execute("SELECT hands_checked FROM frames WHERE frame = ?", (frame,)).fetchone()
        if row is None or row[0]:
            return self.hands_in_frame(frame)
        q = "SELECT {}(frame) FROM frames WHERE hands_checked = 1 AND frame {} ? "
        q += "AND shot = (SELECT shot FROM frames WHERE frame = ?)"
        before = self.conn.execute(q.format("MAX", "<"), (frame, frame)).fetchone()[0]
        after = self.conn.execute(q.format("MIN", ">"), (frame, frame)).fetchone()[0]
        return [h for f in (before, after) if f is not None for h in self.hands_in_frame(int(f))]

    def embeddings(self, track: int | None = None) -> list[tuple[int, int, F32]]:
        """(track, frame, descriptor (128,)) rows, for one track or all."""
        q, args = "SELECT track, frame, vector FROM embeddings", tuple[int, ...]()
        if track is not None:
            q, args = q + " WHERE track = ?", (track,)
        return [(int(t), int(f), from_blob(v, (128,))) for t, f, v in self.conn.execute(q + " ORDER BY id", args)]

    def write_batch(
        self,
        frames: Iterable[tuple[int, int, float, int, int]],
        faces: Iterable[tuple[int, int, str, float | None, F32]],
        tracks: Iterable[tuple[int, int, int, int]],
        embeddings: Iterable[tuple[int, int, F32]],
        hands: Iterable[tuple[int, int, F32]] = (),
    ) -> None:
        """Commit finished frames with their faces, track extents and embeddings in one transaction."""
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO tracks (id, shot, first_frame, last_frame) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET first_frame = MIN(first_frame, excluded.first_frame), "
                "last_frame = MAX(last_frame, excluded.last_frame)",
                list(tracks),
            )
            c.executemany(
                "INSERT INTO faces (track, frame, source, score, x0, y0, x1, y1, landmarks) VALUES (?,?,?,?,?,?,?,?,?)",
                [(t, f, s, sc, *face_box(lm), to_blob(lm)) for t, f, s, sc, lm in faces],
            )
            c.executemany(
                "INSERT INTO embeddings (track, frame, vector) VALUES (?, ?, ?)",
                [(t, f, to_blob(v)) for t, f, v in embeddings],
            )
            c.executemany("INSERT INTO hands VALUES (?, ?, ?)", [(f, i, to_blob(h)) for f, i, h in hands])
            c.executemany("INSERT INTO frames VALUES (?, ?, ?, ?, ?)", list(frames))
            self.set_meta(c, "finalized", "0")


def face_box(lm: F32) -> tuple[float, float, float, float]:
    """Box (x0, y0, x1, y1) of the 468 mesh points of landmarks (478, 3)."""
    lo, hi = lm[:468, :2].min(0), lm[:468, :2].max(0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def _face(r: tuple[Any, ...]) -> FaceRow:
    track, frame, source, score, lm, sm = r
    return FaceRow(
        int(track),
        int(frame),
        str(source),
        score,
        from_blob(lm, (-1, 3)),
        None if sm is None else from_blob(sm, (-1, 3)),
    )
