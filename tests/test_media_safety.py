"""Never lose the user's data: atomic writes, full disks, leftovers of killed runs, locked video outputs,
checked codec options, single-file stills, the plate's own alpha, odd plate names and NaN pixels."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from conftest import REPO, media
from faceplate.errors import WriterError
from faceplate.fileio import FileLock, atomic_write, atomic_write_text, partial_path, pid_alive
from faceplate.media import WriterSpec, open_plate, open_writer
from faceplate.media.colour import LINEAR_709, count_nonfinite, finite_mask
from faceplate.media.frames import FrameRange
from faceplate.media.writers import STALE_SECONDS

DISK_FULL = "disk full writing {}: free space and run the same command to resume"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    return proc.pid


def _ramp(h: int = 48, w: int = 64, c: int = 3) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.dstack([(x + y * k) % 97 / 96 for k in range(1, c + 1)]).astype(np.float32)


def _touch_old(path: Path, age: float = STALE_SECONDS + 60) -> Path:
    path.write_bytes(b"half a frame")
    t = time.time() - age
    os.utime(path, (t, t))
    return path


def _no_space(*_: object, **__: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ------------------------------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_whole_files_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "meta.json"
    atomic_write_text(target, "old", fsync=True)
    assert partial_path(target).name == f".meta.partial-{os.getpid()}.json"

    def interrupted(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, interrupted)
    with pytest.raises(WriterError, match=DISK_FULL.format(target)):
        atomic_write(target, lambda tmp: (tmp.write_text("half"), _no_space()))
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["meta.json"]  # no partial left behind


def test_full_disk_in_writers_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seq = tmp_path / "seq"
    w = open_writer(WriterSpec(str(seq / "comp.####.exr"), 64, 48))
    video = tmp_path / "comp.mp4"
    v = open_writer(WriterSpec(str(video), 64, 48, frame_count=1))
    v.write(0, _ramp())
    monkeypatch.setattr(os, "replace", _no_space)  # the disk fills up as a file is put in place
    with pytest.raises(WriterError, match=DISK_FULL.format(seq / "comp.0001.exr")):
        w.write(1, _ramp())
    assert list(seq.iterdir()) == []
    with pytest.raises(WriterError, match=DISK_FULL.format(video)):
        v.close()  # closing the segment
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / ".comp.mp4.parts").iterdir()] == ["render.json"]
    assert not (tmp_path / ".comp.mp4.lock").exists()  # released: the next run can go on


# ------------------------------------------------------------------------------ leftovers, locking


def test_stale_sequence_partials_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = _dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        gone = [_touch_old(tmp_path / f".out.0007.partial-{dead}.png")]
        kept = [
            _touch_old(tmp_path / f".out.0008.partial-{live.pid}.png"),  # a live process is writing it
            _touch_old(tmp_path / f".out.0009.partial-{os.getpid()}.png"),  # this process's own
            _touch_old(tmp_path / f".other.0007.partial-{dead}.png"),  # another output's
            _touch_old(tmp_path / f".out.0010.partial-{dead}.png", age=1),  # fresh: maybe another machine's
        ]
        open_writer(WriterSpec(str(tmp_path / "out.####.png"), 64, 48))
        still = _touch_old(tmp_path / f".still.partial-{dead}.png")
        open_writer(WriterSpec(str(tmp_path / "still.png"), 64, 48, frame_count=1))
    finally:
        live.kill()
        live.wait()
    assert not any(p.exists() for p in [*gone, still])
    assert all(p.exists() for p in kept)


_CHILD = """
import sys, time
import numpy as np
from faceplate.media import WriterSpec, open_writer
w = open_writer(WriterSpec(sys.argv[1], 64, 48, frame_count=100))
for n in range(10):  # into the open segment, whose file exists once the encoder gave packets
    w.write(n, np.full((48, 64, 3), n, np.uint8))
print("ready", flush=True)
time.sleep(120)
"""


def test_video_output_is_locked_and_a_killed_writer_leaves_nothing_stale(tmp_path: Path) -> None:
    out = tmp_path / "comp.mp4"
    spec = WriterSpec(str(out), 64, 48, frame_count=100)
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(out)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        msg = f"{out} is being written by another faceplate process (pid {child.pid}); wait for it or choose another -o"
        with pytest.raises(WriterError) as err:
            open_writer(spec)
        assert str(err.value) == msg
    finally:
        child.kill()  # SIGKILL: no cleanup of its own; the OS drops its lock
        child.wait()
    stale = tmp_path / ".comp.mp4.parts" / f".seg.0.partial-{child.pid}.mp4"
    assert stale.exists(), sorted(p.name for p in tmp_path.rglob("*"))
    w = open_writer(spec)
    assert not stale.exists() and FileLock(tmp_path / ".comp.mp4.lock").holder() == os.getpid()
    w.discard()
    assert list(tmp_path.iterdir()) == []
    w = open_writer(spec)  # released: open again at once
    w.abort()


# ------------------------------------------------------------------------------------ codec options


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"crf": "18", "bogus": "1"},
            r"unknown codec option 'bogus' for h264 \(libx264\); valid: crf, preset, x264-params, ",
        ),
        ({"crf": "abc"}, r"codec option crf=abc is invalid for h264 \(libx264\): .*crf"),
        ({"preset": "nonsense"}, r"codec option preset=nonsense is invalid for h264 \(libx264\); valid: ultrafast, "),
        ({"x264-params": "cabac=1:nosuch=3"}, r"codec option x264-params=cabac=1:nosuch=3 is invalid .*nosuch"),
    ],
)
def test_bad_codec_options_are_refused(tmp_path: Path, options: dict[str, str], message: str) -> None:
    with pytest.raises(WriterError, match=message) as err:
        open_writer(WriterSpec(str(tmp_path / "comp.mp4"), 64, 48, options=options))
    assert "\n" not in str(err.value) and len(str(err.value)) < 600
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_valid_codec_options_are_used(tmp_path: Path) -> None:
    out = tmp_path / "comp.mp4"
    with open_writer(WriterSpec(str(out), 64, 48, Fraction(24), options={"crf": "30", "g": "5", "tune": "film"})) as w:
        for n in range(6):
            w.write(n, _ramp())
    settings = out.read_bytes().split(b"options: ")[1].split(b"\x00")[0].decode().split()  # x264's own SEI
    assert "crf=30.0" in settings and "keyint=5" in settings, settings
    with open_plate(out) as back:
        assert back.info.frame_count == 6


# -------------------------------------------------------------------------- stills and own alpha


@pytest.mark.parametrize("name", ["still.png", "still.exr", "still.tif"])
def test_single_frame_output_is_one_file_and_resumes(tmp_path: Path, name: str) -> None:
    spec = WriterSpec(str(tmp_path / name), 64, 48, frame_count=1, first_frame=1001)
    w = open_writer(spec)
    assert not w.exists(1001)
    w.write(1001, _ramp())
    w.close()
    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert open_writer(spec).exists(1001)  # a rerun skips it
    with open_plate(tmp_path / name) as plate:
        assert plate.info.kind == "image" and plate.info.frame_count == 1
        np.testing.assert_allclose(plate.read(0), _ramp(), atol=1e-3)
    with pytest.raises(WriterError, match=r"not a sequence pattern: write comp\.####\.png"):
        open_writer(WriterSpec(str(tmp_path / "comp.png"), 64, 48, frame_count=2))


@pytest.mark.parametrize(("fmt", "ext", "tol"), [("png16", "png", 1e-4), ("tiff16", "tif", 1e-4), ("exr", "exr", 1e-3)])
def test_rgba_frames_keep_their_own_alpha(tmp_path: Path, fmt: str, ext: str, tol: float) -> None:
    rgba = _ramp(c=4)
    matte = np.full((48, 64), 0.25, np.float32)
    pattern = str(tmp_path / f"own.####.{ext}")
    with open_writer(WriterSpec(pattern, 64, 48, format=fmt)) as w:
        w.write(1, rgba)  # the plate's alpha
        w.write(2, rgba, matte)  # alpha=False: a matte handed over is never added
        w.write(3, rgba[..., :3], matte)
    with open_writer(WriterSpec(pattern, 64, 48, format=fmt, alpha=True)) as w:
        w.write(4, rgba, matte)  # an RGBA frame's own alpha wins over the matte
    channels = {n: oiio.ImageInput.open(str(tmp_path / f"own.000{n}.{ext}")) for n in (1, 2, 3, 4)}
    assert {n: inp.spec().nchannels for n, inp in channels.items()} == {1: 4, 2: 4, 3: 3, 4: 4}
    for inp in channels.values():
        inp.close()
    with open_plate(pattern) as plate:
        assert plate.info.has_alpha
        for n, img in plate.frames(FrameRange(1, 2)):
            assert img.shape == (48, 64, 3)
            np.testing.assert_allclose(img, rgba[..., :3], atol=tol)
            a = plate.read_alpha(n)
            assert a is not None
            np.testing.assert_allclose(a, rgba[..., 3], atol=tol)
        for _, img in plate.frames(FrameRange(1, 2), alpha=True):  # RGBA, for writing the comp
            assert img.shape == (48, 64, 4) and img.dtype == np.float32
            np.testing.assert_allclose(img, rgba, atol=tol)
        a4 = plate.read_alpha(4)  # not the frame decoded last: read for it
        assert a4 is not None
        np.testing.assert_allclose(a4, rgba[..., 3], atol=tol)
        assert plate.read_alpha(3) is not None and np.all(plate.read_alpha(3) == 1.0)  # no alpha: opaque


def test_rgba_png_sequence_plate_gives_rgb_frames_and_alpha(tmp_path: Path) -> None:
    codes = (_ramp(c=4) * 255).round().astype(np.uint8)
    for n in (1, 2):
        spec = oiio.ImageSpec(64, 48, 4, oiio.UINT8)
        spec.attribute("oiio:UnassociatedAlpha", 1)  # as stored: straight alpha
        out = oiio.ImageOutput.create(str(tmp_path / f"rgba.{n}.png"))
        assert out.open(str(tmp_path / f"rgba.{n}.png"), spec) and out.write_image(codes)
        out.close()
    with open_plate(tmp_path / "rgba.#.png") as plate:
        assert plate.info.has_alpha
        alpha = plate.read_alpha(2)
        assert alpha is not None
        np.testing.assert_array_equal(np.round(alpha * 255), codes[..., 3])
        np.testing.assert_array_equal(np.round(plate.read(1) * 255), codes[..., :3])
    with open_plate(media("lp_driving_d19.jpg")) as plate:
        assert not plate.info.has_alpha and plate.read_alpha(0) is None


def test_video_plate_alpha(tmp_path: Path) -> None:
    out = tmp_path / "comp.mov"
    matte = np.zeros((48, 64), np.float32)
    matte[10:30, 20:50] = 1.0
    with open_writer(WriterSpec(str(out), 64, 48, format="prores4444", alpha=True, frame_count=3)) as w:
        for n in range(3):
            w.write(n, _ramp(), matte)
    with open_plate(out) as plate:
        assert plate.info.has_alpha
        stream = plate.frames(native=True, alpha=True)
        n, rgba = next(stream)
        assert n == 0 and rgba.shape == (48, 64, 4) and rgba.dtype == np.uint16
        assert np.abs(rgba[..., 3] / 65535 - matte).max() < 0.01
        a = plate.read_alpha(2)  # decoded on its own: the stream goes on where it was
        assert a is not None and a.dtype == np.float32
        assert np.abs(a - matte).max() < 0.01
        assert [n for n, _ in stream] == [1, 2]
        a = plate.read_alpha(2)  # the frame decoded last: kept
        assert a is not None and np.abs(a - matte).max() < 0.01
    with open_writer(WriterSpec(str(out), 64, 48, format="prores4444", frame_count=1)) as w:
        w.write(0, _ramp(), matte)  # alpha=False: the matte stays out
    with open_plate(out) as plate:
        a = plate.read_alpha(0)
        assert a is not None and a.min() > 0.99


# ----------------------------------------------------------------------------------- plate names


def test_plates_named_like_patterns_open_as_files(tmp_path: Path, manifest: dict[str, dict]) -> None:
    src = media("lp_driving_d18.mp4")
    for name in ("take#1.mp4", "100%.mp4", "take_%04d.mp4"):
        shutil.copy(src, tmp_path / name)
        with open_plate(tmp_path / name) as plate:
            assert plate.info.kind == "video" and plate.info.frame_count == manifest[src.name]["frames"]
    shutil.copy(media("lp_driving_d19.jpg"), tmp_path / "still#2.jpg")
    with open_plate(tmp_path / "still#2.jpg") as plate:
        assert plate.info.kind == "image" and plate.info.frame_count == 1
    folder = tmp_path / "take#3"
    with open_writer(WriterSpec(str(folder / "p.####.png"), 64, 48)) as w:
        w.write(7, _ramp())
        w.write(8, _ramp())
    with open_plate(folder) as plate:
        assert plate.info.kind == "sequence" and plate.info.frames == FrameRange(7, 8)


# ------------------------------------------------------------------------------------ NaN and Inf


def test_nonfinite_helpers() -> None:
    img = _ramp()
    img[1, 2, 0] = np.nan
    img[3, 4] = np.inf
    img[5, 6, 2] = -np.inf
    assert count_nonfinite(img) == 3 and count_nonfinite(_ramp()) == 0
    assert count_nonfinite(np.zeros((4, 4, 3), np.uint8)) == 0
    mask = finite_mask(img)
    assert mask.shape == (48, 64) and mask.sum() == 48 * 64 - 3 and not mask[3, 4]


@pytest.mark.parametrize("pixel", [oiio.HALF, oiio.FLOAT])
def test_float_plate_counts_nonfinite_pixels_and_keeps_them(tmp_path: Path, pixel: object) -> None:
    frames = {1001: _ramp(), 1002: _ramp()}
    frames[1002][2, 3, 0] = np.nan
    frames[1002][5, 5, 1] = np.inf
    for n, px in frames.items():
        out = oiio.ImageOutput.create(str(tmp_path / f"lin.{n}.exr"))
        assert out.open(str(tmp_path / f"lin.{n}.exr"), oiio.ImageSpec(64, 48, 3, pixel)) and out.write_image(px)
        out.close()
    with open_plate(tmp_path / "lin.####.exr") as plate:
        got = dict(plate.frames())
        assert plate.nonfinite == {1002: 2}
        assert np.isnan(got[1002][2, 3, 0]) and np.isposinf(got[1002][5, 5, 1])  # untouched
        assert plate.info.colorspace == LINEAR_709
        shown = plate.read(1002, display=True)  # the detectors' copy is sanitised
        assert shown.dtype == np.uint8 and shown[5, 5, 1] == 255 and shown[2, 3, 0] == 0
