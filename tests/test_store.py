"""The shot store: resumable, consistent after a kill, versioned, bound to its plate."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import media, run_cli
from faceplate.config import ExtractConfig
from faceplate.errors import StoreError
from faceplate.extract import extract, missing_runs
from faceplate.media import open_plate
from faceplate.media.frames import FrameRange
from faceplate.store import STORE_NAME, ShotStore


def _consistent(shot: Path) -> set[int]:
    """Assert the store is internally consistent; return its frames."""
    with ShotStore.open(shot) as store:
        frames = store.stored_frames()
        c = store.conn
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        orphan = c.execute("SELECT COUNT(*) FROM faces WHERE frame NOT IN (SELECT frame FROM frames)").fetchone()[0]
        assert orphan == 0
        no_track = c.execute("SELECT COUNT(*) FROM faces WHERE track NOT IN (SELECT id FROM tracks)").fetchone()[0]
        assert no_track == 0
        for frame, n in c.execute("SELECT frame, n_faces FROM frames"):
            got = c.execute("SELECT COUNT(*) FROM faces WHERE frame = ? AND source != 'interp'", (frame,)).fetchone()
            assert got[0] == n, frame
    return frames


def test_missing_runs() -> None:
    assert missing_runs(FrameRange(0, 9), {2, 3, 7}) == [FrameRange(0, 1), FrameRange(4, 6), FrameRange(8, 9)]
    assert missing_runs(FrameRange(0, 3), {0, 1, 2, 3}) == []


@pytest.mark.slow
def test_resume_extends_and_matches_a_single_run(tmp_path: Path, d18_shot: Path) -> None:
    plate = str(media("lp_driving_d18.mp4"))
    first = extract(ExtractConfig(plate=plate, shot=tmp_path, frames="0-99"))
    assert (first.analysed, first.skipped) == (100, 0)
    second = extract(ExtractConfig(plate=plate, shot=tmp_path))
    assert (second.analysed, second.skipped) == (116, 100)
    again = extract(ExtractConfig(plate=plate, shot=tmp_path))
    assert again.analysed == 0 and again.skipped == 216
    assert _consistent(tmp_path) == set(range(216))
    with ShotStore.open(tmp_path) as a, ShotStore.open(d18_shot) as b:
        (ta,), (tb,) = a.tracks(), b.tracks()
        assert (ta.first_frame, ta.last_frame) == (tb.first_frame, tb.last_frame) == (0, 215)
        fa, fb = a.track_faces(ta.id), b.track_faces(tb.id)
        la, lb = np.stack([f.landmarks for f in fa]), np.stack([f.landmarks for f in fb])
        assert np.abs(la - lb).max() < 1e-3  # the resumed track continued exactly: same landmarks
        assert [f.source for f in fa] == [f.source for f in fb]  # ... and the same detector cadence


_KILL_SCRIPT = """
import sys
from faceplate.config import ExtractConfig
from faceplate.extract import extract
extract(ExtractConfig(plate=sys.argv[1], shot=sys.argv[2], commit_every=8, detect_every=1))
"""


def _run_until(shot: Path, frames: int, sig: int, argv: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (shot / STORE_NAME).exists():
            try:
                with sqlite3.connect(shot / STORE_NAME, timeout=5) as c:
                    if c.execute("SELECT COUNT(*) FROM frames").fetchone()[0] >= frames:
                        break
            except sqlite3.Error:
                pass
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    return proc


@pytest.mark.slow
def test_killed_extract_leaves_a_consistent_store_and_resumes(tmp_path: Path) -> None:
    plate = str(media("lp_driving_d12.mp4"))
    proc = _run_until(tmp_path, 24, signal.SIGKILL, [sys.executable, "-c", _KILL_SCRIPT, plate, str(tmp_path)])
    assert proc.returncode == -signal.SIGKILL
    frames = _consistent(tmp_path)
    assert 24 <= len(frames) < 183 and frames == set(range(len(frames)))  # a clean prefix
    done = run_cli("extract", plate, "--shot", tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{len(frames)} already stored" in done.stdout
    assert _consistent(tmp_path) == set(range(183))


@pytest.mark.slow
def test_ctrl_c_saves_and_says_how_to_resume(tmp_path: Path) -> None:
    plate = str(media("lp_driving_d12.mp4"))
    argv = [sys.executable, "-m", "faceplate", "extract", plate, "--shot", str(tmp_path), "--detect-every", "1"]
    proc = _run_until(tmp_path, 48, signal.SIGINT, argv)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "run the same command to resume" in err
    frames = _consistent(tmp_path)
    assert len(frames) >= 48 and frames == set(range(len(frames)))


def test_store_refuses_other_plates_and_versions(tmp_path: Path, d18_shot: Path) -> None:
    with pytest.raises(StoreError, match="belongs to another plate"):
        ShotStore.create(d18_shot, open_plate(media("lp_driving_d20.mp4")).info)
    with pytest.raises(StoreError, match="not a shot folder"):
        ShotStore.open(tmp_path)
    copy = tmp_path / "shot"
    copy.mkdir()
    with sqlite3.connect(d18_shot / STORE_NAME) as src, sqlite3.connect(copy / STORE_NAME) as dst:
        src.backup(dst)
        dst.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="store version 99"):
        ShotStore.open(copy)
    (copy / STORE_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        ShotStore.open(copy)


def test_store_holds_real_arrays_without_pickle(d18_shot: Path) -> None:
    with ShotStore.open(d18_shot) as store:
        face = store.faces_in_frame(100)[0]
        assert face.landmarks.shape == (478, 3) and face.smoothed is not None
        (emb,) = {len(v) for _, _, v in store.embeddings()}
        assert emb == 128
        assert store.meta("schema_version") == "1"
        mode = store.conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
