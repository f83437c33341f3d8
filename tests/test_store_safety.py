"""The shot store never loses the user's data: bound to its plate by content, locked against a second writer,
clear about corruption, and a resumed extract gives the tracks of an uninterrupted one."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error, media, run_cli
from faceplate import store as store_mod
from faceplate.config import ExtractConfig
from faceplate.errors import ConfigError, Interrupted, StoreError
from faceplate.extract import Models, RunAnalyser, extract
from faceplate.media import open_plate
from faceplate.media.frames import FrameRange
from faceplate.store import LOCK_NAME, STORE_NAME, ShotStore, plate_fingerprint

HAMILTON = "fr_short_hamilton_clip.mp4"
CORRUPT = "is corrupt: .*; delete the shot folder and run `faceplate extract` again"


def _stop_at(frame: int, first: int = 0) -> Callable[[int, int], None]:
    """A progress callback that presses Ctrl-C once frame ``frame`` (of a run starting at ``first``) is analysed."""

    def progress(done: int, _todo: int) -> None:
        if first + done - 1 == frame:
            raise KeyboardInterrupt

    return progress


def _faces(
    shot: Path,
) -> tuple[list[tuple[int, int, int, int, int | None]], dict[tuple[int, int], tuple[str, np.ndarray]]]:
    """(tracks as (id, shot, first, last, identity), (track, frame) → (source, landmarks) of every measured face)."""
    with ShotStore.open(shot) as store:
        tracks = [(t.id, t.shot, t.first_frame, t.last_frame, t.identity) for t in store.tracks()]
        q = "SELECT track, frame, source, landmarks FROM faces WHERE source != 'interp'"
        faces = {(t, f): (s, np.frombuffer(b, "<f4")) for t, f, s, b in store.conn.execute(q)}
    return tracks, faces


@pytest.mark.slow
def test_resumed_extract_gives_the_tracks_of_an_uninterrupted_one(tmp_path: Path) -> None:
    """Hamilton: 4 camera shots, 1-3 faces at once, tracks lost and revived, short tracks at the stops. Extract
    0-30 and 0-52 (each finalized), then frames 0-229 stopped by Ctrl-C at frame 150, then the rest: the
    same tracks, ids, detector cadence and landmarks as one uninterrupted run."""
    plate, all4 = str(media(HAMILTON)), "0-229"  # the clip's first 230 frames: all four camera shots (cut ~210)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    extract(ExtractConfig(plate=plate, shot=whole, frames=all4, hands=False))
    extract(ExtractConfig(plate=plate, shot=parts, frames="0-30", hands=False))
    extract(ExtractConfig(plate=plate, shot=parts, frames="0-52", hands=False))
    with pytest.raises(Interrupted, match="interrupted after frame 150"):
        extract(ExtractConfig(plate=plate, shot=parts, frames=all4, hands=False), _stop_at(150, 53))
    with ShotStore.open(parts) as store:
        assert store.stored_frames() == set(range(151))
    rest = extract(ExtractConfig(plate=plate, shot=parts, frames=all4, hands=False))
    assert (rest.analysed, rest.skipped) == (79, 151)
    (want_tracks, want), (got_tracks, got) = _faces(whole), _faces(parts)
    assert got_tracks == want_tracks
    assert sorted(got) == sorted(want)
    for key, (source, lm) in want.items():
        assert got[key][0] == source, key  # the detector ran on the same frames
        np.testing.assert_allclose(got[key][1], lm, atol=1e-3, err_msg=str(key))


# ------------------------------------------------------------------------------------------ plate binding
D18 = "lp_driving_d18.mp4"


def _copy_store(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(src / STORE_NAME)) as a, closing(sqlite3.connect(dst / STORE_NAME)) as b:
        a.backup(b)
    return dst


def _mirrored(src: Path, dst: Path) -> Path:
    """``src`` mirrored left to right: another picture of the same size and length."""
    import av

    with open_plate(src) as p, av.open(str(dst), "w") as out:
        s = out.add_stream("libx264", rate=int(p.info.fps), options={"preset": "ultrafast", "crf": "18"})
        s.width, s.height, s.pix_fmt = p.info.width, p.info.height, "yuv420p"
        for _, rgb in p.frames(native=True):
            out.mux(s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:, ::-1]), format="rgb24")))
        out.mux(s.encode())
    return dst


def test_store_is_bound_to_its_plates_content(tmp_path: Path, d18_shot: Path) -> None:
    plate, other = media(D18), _mirrored(media(D18), tmp_path / "mirrored.mp4")
    with open_plate(plate) as a, open_plate(other) as b:
        assert (a.info.width, a.info.height, a.info.frame_count) == (b.info.width, b.info.height, b.info.frame_count)
    shot = _copy_store(d18_shot, tmp_path / "shot")
    with pytest.raises(StoreError, match=r"belongs to another plate \(.*other frames\); use a new --shot folder"):
        extract(ExtractConfig(plate=str(other), shot=shot))
    moved = shutil.copy(plate, tmp_path / "moved.mp4")  # the same picture elsewhere: still this shot's plate
    assert extract(ExtractConfig(plate=str(moved), shot=shot)).analysed == 0
    # two stills of one size
    with ShotStore.create(tmp_path / "still", open_plate(media("lp_driving_d19.jpg"))):
        pass
    with pytest.raises(StoreError, match="belongs to another plate"):
        ShotStore.create(tmp_path / "still", open_plate(media("lp_driving_d9.jpg")))


def test_a_store_made_before_fingerprints_gets_one(tmp_path: Path, d18_shot: Path) -> None:
    shot = _copy_store(d18_shot, tmp_path / "shot")
    with closing(sqlite3.connect(shot / STORE_NAME, isolation_level=None)) as c:
        c.execute("DELETE FROM meta WHERE key = 'plate_fingerprint'")
        c.execute("DROP TABLE run_end_tracks")
        c.execute("DROP TABLE run_ends")
    with open_plate(media(D18)) as plate:
        with ShotStore.open(shot) as store:  # a reader leaves it as it is
            store.check_plate(plate)
            assert store.meta("plate_fingerprint", "") == ""
        with ShotStore.create(shot, plate) as store:
            assert store.meta("plate_fingerprint") == plate_fingerprint(plate)
            assert store.run_end(0) is None  # the resume tables are there (empty)
    with pytest.raises(StoreError, match="other frames"):
        ShotStore.create(shot, open_plate(_mirrored(media(D18), tmp_path / "mirrored.mp4")))


def test_fingerprint_is_cheap_and_exact(tmp_path: Path) -> None:
    """sha256 of the stored first, middle and last frames: the same for a copy, another for one changed frame."""
    seq = tmp_path / "seq"
    seq.mkdir()
    for i in range(5):
        shutil.copy(media("lp_driving_d19.jpg"), seq / f"p.{i:04d}.jpg")
    with open_plate(seq / "p.####.jpg") as a:
        fp = plate_fingerprint(a)
    shutil.copy(media("lp_driving_d9.jpg"), seq / "p.0004.jpg")  # the last frame replaced, same size
    with open_plate(seq / "p.####.jpg") as b:
        assert plate_fingerprint(b) != fp and fp.startswith("sha256:")
    with open_plate(media("fra_orig.mp4")) as hd:  # 1080x1080, 622 frames
        assert plate_fingerprint(hd) == plate_fingerprint(hd)
        t0 = time.perf_counter()
        plate_fingerprint(hd)
        assert time.perf_counter() - t0 < 0.5  # measured ~10 ms: no frame is decoded


# ------------------------------------------------------------------------------------------ writer lock
_HOLD = """
import contextlib, sys
from faceplate.media import open_plate
from faceplate.store import ShotStore
with open_plate(sys.argv[1]) as plate, contextlib.ExitStack() as stack:
    for shot in sys.argv[2:]:
        store = stack.enter_context(ShotStore.create(shot, plate))
    stack.enter_context(store.transaction())  # mid-write on the last one
    print("holding", flush=True)
    sys.stdin.readline()
"""


@pytest.mark.slow
def test_a_second_writer_is_refused_readers_are_not(
    tmp_path: Path, d18_shot: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plate = str(media(D18))
    fresh, done = tmp_path / "fresh", _copy_store(d18_shot, tmp_path / "done")
    with open_plate(plate) as p, ShotStore.create(fresh, p), ShotStore.create(fresh, p):
        pass  # one process may hold a shot twice; closing releases it
    argv = [sys.executable, "-c", _HOLD, plate, str(fresh), str(done)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
        monkeypatch.setattr(store_mod, "LOCK_WAIT_S", 0.2)
        busy = rf"shot folder {fresh} is in use by another faceplate process \(pid {proc.pid}\); wait for it or use"
        with pytest.raises(StoreError, match=busy + " another --shot"):
            ShotStore.create(fresh, open_plate(plate))
        assert (fresh / LOCK_NAME).read_text().strip() == str(proc.pid)
        cli = run_cli("extract", plate, "--shot", fresh, "--frames", "0-9")
        assert_one_line_error(cli, f"is in use by another faceplate process (pid {proc.pid})", "--shot")
        with ShotStore.open(done) as store:  # readers go on while a writer is mid-transaction
            assert store.stored_frames() == set(range(216))
            with pytest.raises(StoreError, match="is open to read"), store.transaction():
                pass
        assert extract(ExtractConfig(plate=plate, shot=done)).analysed == 0  # a finished shot is only read
        proc.kill()  # a killed writer leaves its lock file behind: it does not block
        proc.wait(timeout=30)
        with ShotStore.create(fresh, open_plate(plate)) as store:
            assert store.stored_frames() == set()
    finally:
        proc.kill()
        proc.wait(timeout=30)


# ------------------------------------------------------------------------------------------ corruption
def test_a_corrupt_store_says_what_to_do(tmp_path: Path, d18_shot: Path) -> None:
    rng = np.random.default_rng(1)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / STORE_NAME).write_bytes(rng.integers(0, 256, 50_000, np.uint8).tobytes())
    with pytest.raises(StoreError, match=CORRUPT):
        ShotStore.open(garbage)
    with pytest.raises(StoreError, match=CORRUPT):
        ShotStore.create(garbage, open_plate(media(D18)))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / STORE_NAME).touch()
    with pytest.raises(StoreError, match="is corrupt: the file is empty; delete the shot folder"):
        ShotStore.open(tmp_path / "empty")
    truncated = _copy_store(d18_shot, tmp_path / "truncated")
    size = (truncated / STORE_NAME).stat().st_size
    with (truncated / STORE_NAME).open("r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(StoreError, match=CORRUPT):
        ShotStore.open(truncated)
    damaged = _copy_store(d18_shot, tmp_path / "damaged")  # the header is fine, every other page is not
    data = bytearray((damaged / STORE_NAME).read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for at in range(page, len(data), page):
        data[at : at + 16] = rng.integers(0, 256, 16, np.uint8).tobytes()
    (damaged / STORE_NAME).write_bytes(bytes(data))
    with pytest.raises(StoreError, match=CORRUPT):
        extract(ExtractConfig(plate=str(media(D18)), shot=damaged))
    cli = run_cli("extract", media(D18), "--shot", garbage)
    assert_one_line_error(cli, "is corrupt", "delete the shot folder and run `faceplate extract` again")


# ------------------------------------------------------------------------------------------ extract edges
@pytest.mark.parametrize("where", ["model load", "first frame"])
def test_ctrl_c_before_the_first_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    def ctrl_c(*_: object) -> None:
        raise KeyboardInterrupt

    owner, name = (Models, "load") if where == "model load" else (RunAnalyser, "step")
    monkeypatch.setattr(owner, name, ctrl_c)
    with pytest.raises(Interrupted, match=r"^interrupted before the first frame was analysed; nothing new stored$"):
        extract(ExtractConfig(plate=str(media(D18)), shot=tmp_path, frames="0-9"))
    with ShotStore.open(tmp_path) as store:
        assert store.stored_frames() == set()


def test_frames_outside_the_plate(tmp_path: Path) -> None:
    plate = str(media(D18))  # 216 frames
    with pytest.raises(ConfigError, match=r"frames 300-400 are outside the plate .*, which has frames 0-215"):
        extract(ExtractConfig(plate=plate, shot=tmp_path / "a", frames="300-400"))
    assert not (tmp_path / "a").exists()  # refused before anything is written
    with pytest.warns(
        UserWarning, match=r"frames 200-5000 reach past the plate .* \(frames 0-215\): extracting 200-215"
    ):
        s = extract(ExtractConfig(plate=plate, shot=tmp_path / "b", frames="200-5000", hands=False))
    assert s.frames == FrameRange(200, 215) and s.analysed == 16
