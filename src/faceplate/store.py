"""The shot store: one versioned SQLite file (WAL) per shot with frames, faces, tracks and embeddings.

Extraction commits whole frames in batches, so a killed run leaves a consistent prefix and resumes from
the first frame not yet stored, exactly where it stopped (the tracker's state is stored with each batch).
Arrays are stored as raw little-endian float32 blobs (never pickle).

A store is bound to its plate by size, length and content (:func:`plate_fingerprint`). One process at a
time writes to it (:meth:`ShotStore.create` holds ``shot.lock`` until closed); readers
(:meth:`ShotStore.open`) never wait for a writer.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

from faceplate import __version__
from faceplate.errors import StoreError
from faceplate.fileio import FileLock
from faceplate.media.plate import Plate, PlateInfo, SequencePlate, VideoPlate

SCHEMA_VERSION = 1
STORE_NAME = "shot.sqlite"
LOCK_NAME = "shot.lock"
LOCK_WAIT_S = 3.0  # a writer that only checks the store holds the lock for milliseconds: wait that long for it
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

# added to stores of any age when opened for writing (older faceplates ignore them)
_SCHEMA_ADDED = """
CREATE TABLE IF NOT EXISTS run_ends (
    frame INTEGER PRIMARY KEY,      -- last frame of a stored run whose next frame is not stored yet
    counters TEXT NOT NULL          -- JSON: the analysis counters after it (detector and hand cadence, next id)
);
CREATE TABLE IF NOT EXISTS run_end_tracks (
    frame INTEGER NOT NULL,
    idx INTEGER NOT NULL,           -- order in the tracker's lists
    lost INTEGER NOT NULL,          -- 0: live, 1: lost (may be revived within max_miss frames)
    track INTEGER NOT NULL,
    last_frame INTEGER NOT NULL,
    landmarks BLOB NOT NULL,        -- float32 (478, 3) where the track was last seen
    PRIMARY KEY (frame, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS presets (
    effect TEXT NOT NULL,
    name TEXT NOT NULL,
    settings TEXT NOT NULL,         -- JSON: the effect's settings patch (see render.run.with_settings)
    PRIMARY KEY (effect, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS overrides (
    id INTEGER PRIMARY KEY,
    effect TEXT NOT NULL,
    first_frame INTEGER NOT NULL,
    last_frame INTEGER,             -- NULL: to the end of the shot ("from this frame on")
    settings TEXT NOT NULL          -- JSON: the settings patch renders use on these frames
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    spec TEXT NOT NULL,             -- JSON: what to render (effect, settings, model, frames, out)
    state TEXT NOT NULL,            -- queued | running | done | cancelled | interrupted | failed
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    fps REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT ''
);
"""
_ADDED_TABLES = ("run_ends", "run_end_tracks", "presets", "overrides", "jobs")
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26


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
class RunEnd:
    """The analysis state after ``frame``, the last stored frame of a run: what a resume continues from."""

    frame: int
    counters: dict[str, int]
    tracks: list[tuple[bool, int, int, F32]]  # (lost, track id, last frame seen, landmarks (478, 3))


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


# ---------------------------------------------------------------------------------------- plate binding
def plate_fingerprint(plate: Plate) -> str:
    """``sha256:<hex>`` of the plate's first, middle and last frames as stored: their compressed packets
    (video) or their files' bytes (sequences; 16 slices of 64 KiB of a bigger file). Exact, the same on
    every machine, and cheap (~10 ms for a 1080p clip): nothing is decoded."""
    info = plate.info
    frames = sorted({info.first_frame, info.first_frame + info.frame_count // 2, info.last_frame})
    h = hashlib.sha256()
    if isinstance(plate, VideoPlate):
        for data in _video_packets(plate, frames):
            h.update(len(data).to_bytes(8, "little") + data)
    elif isinstance(plate, SequencePlate):
        for f in frames:
            h.update(_file_sample(plate.path_of(f)))
    else:  # any other kind of plate: its decoded frames
        for f in frames:
            h.update(np.ascontiguousarray(plate.read(f, native=True)).tobytes())
    return f"sha256:{h.hexdigest()}"


def _video_packets(plate: VideoPlate, frames: list[int]) -> Iterator[bytes]:
    """The compressed packet of each of ``frames`` (empty when the demuxer cannot find it)."""
    with av.open(plate.path) as c:
        s = c.streams.video[0]
        base = s.time_base or 1
        for f in frames:
            pts = round(plate.frame_time(f) / base)
            c.seek(pts, stream=s, backward=True, any_frame=False)
            yield next((bytes(k) for k in itertools.islice(c.demux(s), 2000) if k.pts == pts), b"")


def _file_sample(path: str) -> bytes:
    """A file's size and bytes: all of a small file, 16 evenly spread 64 KiB slices of a bigger one."""
    size, chunk = os.path.getsize(path), 1 << 16
    with open(path, "rb") as f:
        if size <= 16 * chunk:
            return size.to_bytes(8, "little") + f.read()
        parts = [size.to_bytes(8, "little")]
        for i in range(16):
            f.seek((size - chunk) * i // 15)
            parts.append(f.read(chunk))
    return b"".join(parts)


# ---------------------------------------------------------------------------------------- writer lock
_LOCKS: dict[str, tuple[int, FileLock, int]] = {}  # resolved shot folder → (pid, its lock, stores sharing it)
_LOCKS_GUARD = threading.Lock()


def _acquire(folder: Path) -> str:
    """Hold ``folder``'s writer lock (shared by this process's stores of it); returns the key to release."""
    key = str(folder.resolve())
    with _LOCKS_GUARD:
        held = _LOCKS.get(key)
        if held is not None and held[0] == os.getpid():
            _LOCKS[key] = (held[0], held[1], held[2] + 1)
        else:  # none, or inherited through fork: the lock belongs to the parent
            _LOCKS[key] = (os.getpid(), _lock(folder), 1)
    return key


def _release(key: str) -> None:
    with _LOCKS_GUARD:
        pid, lock, users = _LOCKS.pop(key)
        if users > 1:
            _LOCKS[key] = (pid, lock, users - 1)
            return
    lock.release()  # (the OS drops it too when the process dies)


def _lock(folder: Path) -> FileLock:
    """``folder``'s writer lock, taken; StoreError naming the holder when it stays held LOCK_WAIT_S."""
    lock = FileLock(folder / LOCK_NAME)
    try:
        if lock.acquire(wait=LOCK_WAIT_S):
            return lock
    except OSError as err:
        raise StoreError(f"cannot lock shot folder {folder}: {err.strerror}") from None
    raise StoreError(
        f"shot folder {folder} is in use by another faceplate process (pid {lock.holder() or 'unknown'}); "
        "wait for it or use another --shot"
    )


# ---------------------------------------------------------------------------------------- corruption
def store_error(path: Path, err: sqlite3.Error, doing: str = "use") -> StoreError:
    """The one-line StoreError for an SQLite error on the store file ``path``: what to do when it is corrupt."""
    if getattr(err, "sqlite_errorcode", 0) & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return corrupt(path, str(err))
    return StoreError(f"cannot {doing} shot store {path}: {err}")


def corrupt(path: Path, why: str) -> StoreError:
    return StoreError(f"{path} is corrupt: {why}; delete the shot folder and run `faceplate extract` again")


class ShotStore:
    """Open with :meth:`create` (write: new or matching plate, locked) or :meth:`open` (read). Not thread-safe."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        self._lock: str | None = None  # writer lock key while this store holds the folder's lock

    # ------------------------------------------------------------------ open / create
    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as err:
            raise store_error(path, err, "open") from None
        return conn

    @classmethod
    def open(cls, shot_dir: str | Path) -> ShotStore:
        """Open the shot's store to read it: never waits for a writer (WAL), takes no lock."""
        path = Path(shot_dir) / STORE_NAME
        if not path.is_file():
            raise StoreError(f"{shot_dir} is not a shot folder (no {STORE_NAME}); run `faceplate extract` first")
        if path.stat().st_size == 0:
            raise corrupt(path, "the file is empty")
        store = cls(path, cls._connect(path))
        try:  # SQLite itself finds a truncated file or damaged pages corrupt (more show up when read)
            if not store._has_table("meta"):
                raise corrupt(path, "no faceplate tables in it")
            version = int(store.meta("schema_version", "0"))
        except sqlite3.Error as err:
            store.close()
            raise store_error(path, err, "read") from None
        except StoreError:
            store.close()
            raise
        if version != SCHEMA_VERSION:
            store.close()
            raise StoreError(f"{path} has store version {version}; this faceplate reads version {SCHEMA_VERSION}")
        return store

    @classmethod
    def create(cls, shot_dir: str | Path, plate: Plate | PlateInfo) -> ShotStore:
        """Open the shot's store to write it, creating it for ``plate``; this process holds the shot folder's
        lock until :meth:`close`.

        Pass the open :class:`Plate`: its :func:`plate_fingerprint` is checked against the store's (and recorded
        in a store made before fingerprints); a :class:`PlateInfo` only checks size and length. StoreError when
        the store is another plate's, is corrupt, or another process writes to it.
        """
        folder = Path(shot_dir)
        fp = plate_fingerprint(plate) if isinstance(plate, Plate) else None  # before locking: keep the lock short
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create shot folder {folder}: {err.strerror}") from None
        key = _acquire(folder)
        try:
            if not (folder / STORE_NAME).exists():
                cls._new(folder, plate.info if isinstance(plate, Plate) else plate, fp)
            store = cls.open(folder)
        except BaseException:
            _release(key)
            raise
        store._lock = key
        try:
            store.check_plate(plate, fp)
            store._add_tables()
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def _new(cls, folder: Path, plate: PlateInfo, fingerprint: str | None) -> None:
        """Write an empty store for ``plate`` (complete or not at all)."""
        try:
            tmp = folder / f".{STORE_NAME}.new"
            tmp.unlink(missing_ok=True)
            conn = cls._connect(tmp)
            conn.execute("BEGIN")
            for stmt in (_SCHEMA + _SCHEMA_ADDED).split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            meta = {
                "schema_version": str(SCHEMA_VERSION),
                "faceplate_version": __version__,
                "plate": json.dumps(plate.to_dict()),
                "finalized": "0",
            }
            if fingerprint is not None:
                meta["plate_fingerprint"] = fingerprint
            conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
            tmp.replace(folder / STORE_NAME)
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"cannot create shot store in {folder}: {err}") from None

    def check_plate(self, plate: Plate | PlateInfo, fingerprint: str | None = None) -> None:
        """StoreError unless ``plate`` is the store's plate: same size and length and, for a :class:`Plate`,
        the same :func:`plate_fingerprint` (``fingerprint``, when already computed). A writer records it in a
        store made before fingerprints."""
        info = plate.info if isinstance(plate, Plate) else plate
        stored = self.plate
        other = f"{self.path.parent} belongs to another plate ({stored.path}"
        if (stored.width, stored.height, stored.frame_count, stored.first_frame) != (
            info.width,
            info.height,
            info.frame_count,
            info.first_frame,
        ):
            raise StoreError(f"{other}); use a new --shot folder")
        if not isinstance(plate, Plate):
            return
        fp = fingerprint or plate_fingerprint(plate)
        known = self.meta("plate_fingerprint", "")
        if not known and self.writable:
            with self.transaction() as c:
                self.set_meta(c, "plate_fingerprint", fp)
        elif known and known != fp:
            raise StoreError(f"{other}: same size and length, other frames); use a new --shot folder")

    def _has_table(self, name: str) -> bool:
        q = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return self.conn.execute(q, (name,)).fetchone() is not None

    def _add_tables(self) -> None:
        if not all(self._has_table(t) for t in _ADDED_TABLES):
            with self.transaction() as c:
                for stmt in _SCHEMA_ADDED.split(";"):
                    if stmt.strip():
                        c.execute(stmt)

    @property
    def writable(self) -> bool:
        """Opened with :meth:`create`: this store may write (it holds the folder's lock)."""
        return self._lock is not None

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()
        if self._lock is not None:
            _release(self._lock)
            self._lock = None

    def __enter__(self) -> ShotStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing write; a crash or Ctrl-C inside leaves the store as it was. Only for a store opened
        with :meth:`create` (the writer: holds the folder's lock)."""
        if not self.writable:
            raise StoreError(f"{self.path} is open to read (ShotStore.open); write through ShotStore.create")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise store_error(self.path, err, "write") from None
        try:
            yield self.conn
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # a corrupt file may fail this too: the first error wins
                self.conn.execute("ROLLBACK")
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as err:
                raise store_error(self.path, err, "write") from None

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
        the frame, those of the nearest checked frames before and after it with their midpoints
        (analysis.hands.in_between, as a streamed render has them)."""
        from faceplate.analysis.hands import in_between

        row = self.conn.execute("SELECT hands_checked FROM frames WHERE frame = ?", (frame,)).fetchone()
        if row is None or row[0]:
            return self.hands_in_frame(frame)
        q = "SELECT {}(frame) FROM frames WHERE hands_checked = 1 AND frame {} ? "
        q += "AND shot = (SELECT shot FROM frames WHERE frame = ?)"
        before = self.conn.execute(q.format("MAX", "<"), (frame, frame)).fetchone()[0]
        after = self.conn.execute(q.format("MIN", ">"), (frame, frame)).fetchone()[0]
        return in_between(*[self.hands_in_frame(int(f)) if f is not None else [] for f in (before, after)])

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
        run_end: RunEnd | None = None,
    ) -> None:
        """Commit finished frames with their faces, track extents and embeddings in one transaction, and the
        analysis state after the last of them (``run_end``, kept while the frame after it is not stored)."""
        frames = list(frames)
        with self.transaction() as c:
            if frames:
                self._write_run_end(c, min(f[0] for f in frames), max(f[0] for f in frames), run_end)
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
            c.executemany("INSERT INTO frames VALUES (?, ?, ?, ?, ?)", frames)
            self.set_meta(c, "finalized", "0")

    # ------------------------------------------------------------------ resume state
    def _write_run_end(self, c: sqlite3.Connection, first: int, last: int, end: RunEnd | None) -> None:
        """Frames ``first..last`` are being stored: drop the run ends they continue, add ``end`` (after ``last``)."""
        for table in ("run_ends", "run_end_tracks"):
            c.execute(f"DELETE FROM {table} WHERE frame BETWEEN ? AND ?", (first - 1, last - 1))
        if end is None or end.frame != last:
            return
        c.execute("INSERT OR REPLACE INTO run_ends VALUES (?, ?)", (end.frame, json.dumps(end.counters)))
        c.execute("DELETE FROM run_end_tracks WHERE frame = ?", (end.frame,))
        rows = [(end.frame, i, int(lost), t, f, to_blob(lm)) for i, (lost, t, f, lm) in enumerate(end.tracks)]
        c.executemany("INSERT INTO run_end_tracks VALUES (?, ?, ?, ?, ?, ?)", rows)

    def run_end(self, frame: int) -> RunEnd | None:
        """The analysis state stored after ``frame`` (the end of a run), None when there is none."""
        if not self._has_table("run_ends"):
            return None
        row = self.conn.execute("SELECT counters FROM run_ends WHERE frame = ?", (frame,)).fetchone()
        if row is None:
            return None
        q = "SELECT lost, track, last_frame, landmarks FROM run_end_tracks WHERE frame = ? ORDER BY idx"
        tracks = [(bool(a), int(t), int(f), from_blob(b, (-1, 3))) for a, t, f, b in self.conn.execute(q, (frame,))]
        return RunEnd(frame, {k: int(v) for k, v in json.loads(row[0]).items()}, tracks)

    def derived_run_end(self, frame: int, max_miss: int) -> RunEnd:
        """An approximate :meth:`run_end` for ``frame`` from the faces stored (stores made before run ends):
        the faces measured there are live, tracks last measured in the ``max_miss`` frames before are lost."""
        shot = self.conn.execute("SELECT shot FROM frames WHERE frame = ?", (frame,)).fetchone()[0]
        q = "SELECT track, MAX(frame) FROM faces JOIN frames USING (frame) WHERE shot = ? AND source != 'interp' "
        q += "AND frame BETWEEN ? AND ? GROUP BY track ORDER BY track"
        tracks = []
        for track, last in self.conn.execute(q, (shot, frame - max_miss, frame)).fetchall():
            lm = self.conn.execute("SELECT landmarks FROM faces WHERE track = ? AND frame = ?", (track, last))
            tracks.append((last != frame, int(track), int(last), from_blob(lm.fetchone()[0], (-1, 3))))
        q = "SELECT MAX(frame) FROM faces JOIN frames USING (frame) WHERE shot = ? AND source = 'detect' AND frame <= ?"
        detected = self.conn.execute(q, (shot, frame)).fetchone()[0]
        since = 10**9 if detected is None else frame - int(detected)
        return RunEnd(frame, {"since_detect": since, "next_id": self.max_ids()[0] + 1}, tracks)

    def stored_run_start(self, frame: int, most: int) -> int:
        """First frame of the consecutive stored frames that end at ``frame``, at most ``most`` frames before it."""
        q = "SELECT frame FROM frames WHERE frame BETWEEN ? AND ? ORDER BY frame DESC"
        start = frame
        for (f,) in self.conn.execute(q, (frame - most, frame)):
            if f < start - 1:
                break
            start = f
        return start

    def open_tracks(self) -> set[int]:
        """Tracks a resumed extract may continue: live or lost at the end of a stored run before the plate's end
        (finalize leaves them whole)."""
        if not self._has_table("run_ends"):
            return set()
        q = "SELECT DISTINCT track FROM run_end_tracks WHERE frame < ?"
        return {int(t) for (t,) in self.conn.execute(q, (self.plate.last_frame,))}

    # ------------------------------------------------------------------ review: presets, overrides, jobs
    def presets(self, effect: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        """(effect, name, settings patch) of the stored presets, by effect and name."""
        if not self._has_table("presets"):
            return []
        q = "SELECT effect, name, settings FROM presets WHERE ? IS NULL OR effect = ? ORDER BY effect, name"
        return [(str(e), str(n), json.loads(v)) for e, n, v in self.conn.execute(q, (effect, effect))]

    def save_preset(self, effect: str, name: str, settings: dict[str, Any]) -> None:
        """Store (or replace) the named preset of ``effect``."""
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO presets VALUES (?, ?, ?)", (effect, name, json.dumps(settings)))

    def delete_preset(self, effect: str, name: str) -> bool:
        """Remove the named preset of ``effect``; whether there was one."""
        with self.transaction() as c:
            return c.execute("DELETE FROM presets WHERE effect = ? AND name = ?", (effect, name)).rowcount > 0

    def overrides(self, effect: str) -> list[tuple[int, int, int | None, dict[str, Any]]]:
        """(id, first frame, last frame or None: to the end, settings patch) of ``effect``'s per-range overrides."""
        if not self._has_table("overrides"):
            return []
        q = "SELECT id, first_frame, last_frame, settings FROM overrides WHERE effect = ? ORDER BY id"
        return [
            (int(i), int(a), None if b is None else int(b), json.loads(v))
            for i, a, b, v in self.conn.execute(q, (effect,))
        ]

    def add_override(self, effect: str, first: int, last: int | None, settings: dict[str, Any]) -> int:
        """Store an override of ``effect`` on frames ``first..last`` (None: to the end); returns its id."""
        with self.transaction() as c:
            q = "INSERT INTO overrides (effect, first_frame, last_frame, settings) VALUES (?, ?, ?, ?)"
            return int(c.execute(q, (effect, first, last, json.dumps(settings))).lastrowid or 0)

    def delete_override(self, oid: int) -> None:
        with self.transaction() as c:
            c.execute("DELETE FROM overrides WHERE id = ?", (oid,))

    def jobs(self) -> list[dict[str, Any]]:
        """The render jobs, oldest first: id, spec, state, done, total, fps, message."""
        if not self._has_table("jobs"):
            return []
        q = "SELECT id, spec, state, done, total, fps, message FROM jobs ORDER BY id"
        keys = ("id", "spec", "state", "done", "total", "fps", "message")
        return [{**dict(zip(keys, r, strict=True)), "spec": json.loads(r[1])} for r in self.conn.execute(q)]

    def add_job(self, spec: dict[str, Any]) -> int:
        """Queue a render job; returns its id."""
        with self.transaction() as c:
            return int(
                c.execute("INSERT INTO jobs (spec, state) VALUES (?, 'queued')", (json.dumps(spec),)).lastrowid or 0
            )

    def update_job(self, jid: int, **values: Any) -> None:
        """Set some of a job's spec (JSON text), state, done, total, fps, message."""
        cols = [k for k in values if k in ("spec", "state", "done", "total", "fps", "message")]
        sets = ", ".join(f"{k} = ?" for k in cols)  # column names from the fixed list above
        with self.transaction() as c:
            c.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [values[k] for k in cols] + [jid])


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
