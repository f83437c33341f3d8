"""Plates in and out on the real media: exact counts, ranges, round trips, audio, bad files."""

from __future__ import annotations

import shutil
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import media
from faceplate.errors import ConfigError, PlateError, WriterError
from faceplate.media import WriterSpec, open_plate, open_writer, parse_frame_range
from faceplate.media.colour import LINEAR_709, converter, to_uint8
from faceplate.media.frames import FrameRange, pattern_path

VIDEOS = [
    "lp_driving_d0.mp4",
    "lp_driving_d12.mp4",
    "lp_driving_d18.mp4",
    "lp_driving_d20.mp4",
    "lp_source_s32.mp4",
    "fr_short_hamilton_clip.mp4",
]


@pytest.mark.parametrize("name", VIDEOS)
def test_video_info_matches_manifest(name: str, manifest: dict[str, dict]) -> None:
    m = manifest[name]
    with open_plate(media(name)) as plate:
        info = plate.info
        assert (info.width, info.height) == (m["width"], m["height"])
        assert info.frame_count == m["frames"]
        assert info.fps == Fraction(m["fps_exact"])
        assert info.has_audio == (m["audio"] is not None)
        assert info.first_frame == 0 and info.kind == "video"


def test_every_frame_decodes_as_float_rgb(manifest: dict[str, dict]) -> None:
    name = "fr_short_hamilton_clip.mp4"
    with open_plate(media(name)) as plate:
        numbers = []
        for n, img in plate.frames():
            numbers.append(n)
            assert img.dtype == np.float32 and img.shape == (360, 640, 3)
            assert img.min() >= 0.0 and img.max() <= 1.0
    assert numbers == list(range(manifest[name]["frames"]))


def test_frame_ranges_and_random_access() -> None:
    with open_plate(media("fr_short_hamilton_clip.mp4"), first_frame=1001) as plate:
        assert plate.info.frames == FrameRange(1001, 1275)
        got = list(plate.frames(parse_frame_range("1100-1104")))
        assert [n for n, _ in got] == [1100, 1101, 1102, 1103, 1104]
        np.testing.assert_array_equal(plate.read(1102), got[2][1])
        assert not np.array_equal(got[0][1], got[4][1])  # real, different frames
        with pytest.raises(PlateError, match="outside"):
            plate.read(5)
    with pytest.raises(ConfigError, match="FIRST-LAST"):
        parse_frame_range("10..20")
    with pytest.raises(ConfigError, match="empty"):
        parse_frame_range("20-10")


@pytest.mark.slow
def test_jumps_into_a_long_gop_decode_the_same_pixels() -> None:
    """d0: one keyframe, 57 of 78 frames B: a jump catches up skipping frames nothing refers to."""
    with open_plate(media("lp_driving_d0.mp4")) as plate:
        straight = dict(plate.frames(native=True))
        for n in (77, 40, 41, 3, 60, 0):  # B and P frames, backwards and forwards
            np.testing.assert_array_equal(plate.read(n, native=True), straight[n])
        again = dict(plate.frames(FrameRange(50, 55), native=True))  # a range after a jump: every frame
        assert sorted(again) == list(range(50, 56))
        assert all(np.array_equal(again[n], straight[n]) for n in range(50, 56))


def _frames(n: int = 3) -> list[np.ndarray]:
    with open_plate(media("lp_driving_d18.mp4")) as plate:
        return [img for _, img in plate.frames(FrameRange(0, n - 1))]


def test_exr_half_round_trip_exact_with_matte_alpha(tmp_path: Path) -> None:
    # linear-light values above 1 (speculars) and their half-float quantisation must survive exactly
    frames = [(f * 4.0).astype(np.float16).astype(np.float32) for f in _frames()]
    matte = frames[0][..., 1] / frames[0][..., 1].max()
    pattern = str(tmp_path / "comp.####.exr")
    with open_writer(WriterSpec(pattern, 480, 480, alpha=True, colorspace=LINEAR_709)) as w:
        for i, f in enumerate(frames, start=1001):
            w.write(i, f, matte.astype(np.float16).astype(np.float32))
    with open_plate(pattern) as plate:
        assert plate.info.frames == FrameRange(1001, 1003) and plate.info.has_alpha
        assert plate.info.colorspace == LINEAR_709
        for (_n, img), ref in zip(plate.frames(), frames, strict=True):
            np.testing.assert_array_equal(img, ref)
    import OpenImageIO as oiio

    back = oiio.ImageBuf(str(pattern_path(pattern, 1001))).get_pixels(oiio.FLOAT)
    np.testing.assert_array_equal(back[..., 3], matte.astype(np.float16).astype(np.float32))


@pytest.mark.parametrize(("fmt", "ext"), [("png16", "png"), ("tiff16", "tif")])
def test_16bit_round_trip_exact(tmp_path: Path, fmt: str, ext: str) -> None:
    # 16-bit code values (a dithered ramp plus real pixels) come back exactly
    codes = [np.round(f * 65535).astype(np.uint16) for f in _frames(2)]
    codes[1][:256, :256, 0] = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    pattern = str(tmp_path / f"plate.%04d.{ext}")
    with open_writer(WriterSpec(pattern, 480, 480, format=fmt)) as w:
        for i, c in enumerate(codes):
            w.write(i, c.astype(np.float32) / 65535)
    with open_plate(pattern) as plate:
        assert plate.info.bit_depth == 16
        for (_, img), ref in zip(plate.frames(), codes, strict=True):
            np.testing.assert_array_equal(np.round(img * 65535).astype(np.uint16), ref)


def test_sequence_writer_resume_and_atomic(tmp_path: Path) -> None:
    pattern = str(tmp_path / "out.####.png")
    w = open_writer(WriterSpec(pattern, 480, 480, format="png16"))
    f = _frames(1)[0]
    w.write(7, f)
    assert w.exists(7) and not w.exists(8)
    assert [p.name for p in tmp_path.iterdir()] == ["out.0007.png"]  # no partial files left


@pytest.mark.parametrize(
    ("fmt", "ext", "codec", "bits"),
    [
        ("h264", "mp4", "h264", 8),
        pytest.param("hevc", "mkv", "hevc", 10, marks=pytest.mark.slow),
        pytest.param("prores4444", "mov", "prores", 10, marks=pytest.mark.slow),
        ("dnxhr", "mov", "dnxhd", 10),
    ],
)
def test_video_writers_keep_count_fps_and_audio(tmp_path: Path, fmt: str, ext: str, codec: str, bits: int) -> None:
    src = media("fr_short_hamilton_clip.mp4")
    out = tmp_path / f"comp.{ext}"
    with open_plate(src) as plate:
        rng = FrameRange(30, 89)
        spec = WriterSpec(
            str(out),
            640,
            360,
            plate.info.fps,
            fmt,
            alpha=True,
            audio=(str(src), plate.frame_time(30)),
            frame_count=len(rng),
            first_frame=rng.first,
        )
        ref = {}
        with open_writer(spec) as w:
            for n, img in plate.frames(rng):
                matte = np.zeros(img.shape[:2], np.float32)
                matte[100:250, 200:400] = 1.0
                w.write(n, img, matte)
                ref[n - 30] = img
    with open_plate(out) as back:
        assert back.info.frame_count == 60
        assert back.info.codec == codec and back.info.bit_depth >= bits
        assert back.info.fps == Fraction(2997, 100)
        assert back.info.has_audio
        err = np.abs(back.read(10) - ref[10]).mean()
        assert err < 0.01, err
    with av.open(str(out)) as c:
        a = c.streams.audio[0]
        dur = sum(float(p.duration * a.time_base) for p in c.demux(a) if p.duration)
    assert abs(dur - 60 / float(Fraction(2997, 100))) < 0.1, dur
    if fmt == "prores4444":
        with av.open(str(out)) as c:
            frame = next(c.decode(video=0))
            rgba = frame.to_ndarray(format="rgba64le")
        assert rgba[175, 300, 3] > 60000 and rgba[20, 20, 3] < 1000  # the matte is in alpha


@pytest.mark.parametrize(("options", "expect"), [({}, ("cabac=1", "subme=1")), ({"preset": "medium"}, ("subme=7",))])
def test_h264_default_tuning_and_user_preset(tmp_path: Path, options: dict[str, str], expect: tuple[str, ...]) -> None:
    """The default H.264 is ultrafast with CABAC and subme 1 on; a preset the user picks is used as x264 defines it."""
    out = tmp_path / "comp.mp4"
    with (
        open_plate(media("lp_driving_d18.mp4")) as plate,
        open_writer(WriterSpec(str(out), plate.info.width, plate.info.height, plate.info.fps, options=options)) as w,
    ):
        for n, img in plate.frames(FrameRange(0, 3), native=True):
            w.write(n, img)
    settings = out.read_bytes().split(b"options: ")[1].split(b"\x00")[0].decode().split()  # x264's own SEI
    assert all(e in settings for e in expect), settings


def test_colour_linear_exr_is_shown_as_srgb(tmp_path: Path) -> None:
    srgb = _frames(1)[0]
    lin = srgb.copy()
    converter("sRGB Encoded Rec.709 (sRGB)", LINEAR_709)(lin)
    assert lin.mean() < srgb.mean()  # linear is darker in code values
    pattern = str(tmp_path / "lin.####.exr")
    with open_writer(WriterSpec(pattern, 480, 480, format="exr32", colorspace=LINEAR_709)) as w:
        w.write(1, lin)
    with open_plate(pattern) as plate:
        shown = plate.read(1, display=True)
    assert np.abs(shown.astype(int) - to_uint8(srgb).astype(int)).max() <= 1


def test_bad_plates_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(PlateError, match="does not exist"):
        open_plate(tmp_path / "missing.mov")
    garbage = tmp_path / "corrupt.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    with pytest.raises(PlateError, match="cannot read video"):
        open_plate(garbage)
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    with pytest.raises(PlateError, match="empty"):
        open_plate(empty)
    with pytest.raises(PlateError, match="no files match"):
        open_plate(tmp_path / "nothing.####.exr")
    (tmp_path / "seq").mkdir()
    with pytest.raises(PlateError, match="no numbered image sequence"):
        open_plate(tmp_path / "seq")


def test_truncated_videos(tmp_path: Path) -> None:
    # moov at the end (most camera files): the header itself is gone
    data = media("lp_driving_d18.mp4").read_bytes()
    cut = tmp_path / "cut_tail.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(PlateError):
        open_plate(cut)
    # moov at the start (web-optimised): the index promises frames the file no longer has
    data = media("lp_driving_d20.mp4").read_bytes()
    cut = tmp_path / "cut_frames.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(PlateError, match="truncated"):
        open_plate(cut)


def test_sequence_gaps_and_size_changes(tmp_path: Path) -> None:
    frames = _frames(2)
    for n in (1, 3):
        with open_writer(WriterSpec(str(tmp_path / "p.####.png"), 480, 480, format="png16")) as w:
            w.write(n, frames[0])
    with pytest.raises(PlateError, match="missing frame"):
        open_plate(tmp_path / "p.####.png")
    with open_writer(WriterSpec(str(tmp_path / "p.####.png"), 480, 480, format="png16")) as w:
        w.write(2, frames[1])
    with open_writer(WriterSpec(str(tmp_path / "p.####.png"), 240, 240, format="png16")) as w:
        w.write(4, frames[1][:240, :240])
    plate = open_plate(tmp_path / "p.####.png")
    with pytest.raises(PlateError, match="the sequence is 480x480"):
        list(plate.frames())


def test_unwritable_outputs(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(WriterError, match="cannot create output folder"):
        open_writer(WriterSpec(str(blocker / "comp.####.exr"), 64, 64))
    with pytest.raises(WriterError, match="cannot create output folder"):
        open_writer(WriterSpec(str(blocker / "comp.mov"), 64, 64))
    with pytest.raises(WriterError, match=r"needs a \.mov"):
        open_writer(WriterSpec(str(tmp_path / "comp.mp4"), 64, 64, format="prores4444"))
    with pytest.raises(ConfigError, match="unknown writer 'avi'; valid: dnxhr, exr"):
        open_writer(WriterSpec(str(tmp_path / "comp.avi"), 64, 64, format="avi"))


def test_folder_of_frames_opens_as_sequence(tmp_path: Path) -> None:
    frames = _frames(2)
    with open_writer(WriterSpec(str(tmp_path / "sh010_plate.####.tif"), 480, 480, format="tiff16")) as w:
        for n, f in enumerate(frames, start=1001):
            w.write(n, f)
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path, copy, ignore=shutil.ignore_patterns("copy"))
    with open_plate(copy) as plate:
        assert plate.info.frames == FrameRange(1001, 1002)
        assert plate.info.path.endswith("sh010_plate.####.tif")


def test_dpx_10bit_sequence_reads_exact_code_values(tmp_path: Path) -> None:
    import OpenImageIO as oiio

    codes = [np.round(f * 1023).astype(np.uint16) for f in _frames(2)]  # real pixels as 10-bit scan codes
    for n, c in enumerate(codes, start=1001):
        spec = oiio.ImageSpec(480, 480, 3, oiio.UINT16)
        spec.attribute("oiio:BitsPerSample", 10)  # how scanners' 10-bit DPX is written
        out = oiio.ImageOutput.create(str(tmp_path / f"scan.{n}.dpx"))
        assert out.open(str(tmp_path / f"scan.{n}.dpx"), spec) and out.write_image(c << 6)
        out.close()
    with open_plate(tmp_path / "scan.%d.dpx") as plate:
        assert plate.info.frames == FrameRange(1001, 1002) and plate.info.bit_depth == 10
        for (_, img), ref in zip(plate.frames(), codes, strict=True):
            np.testing.assert_array_equal(np.round(img * 1023).astype(np.uint16), ref)
            assert np.abs(img - ref / 1023).max() < 1e-6


def test_video_render_stopped_and_resumed_keeps_its_frames(tmp_path: Path) -> None:
    """A video output is written in closed segments: a stop keeps them, the next run adds only the rest."""
    src = media("fr_short_hamilton_clip.mp4")
    out = tmp_path / "comp.mp4"
    with open_plate(src) as plate:
        rng = FrameRange(30, 149)
        frames = dict(plate.frames(rng, native=True))
        spec = WriterSpec(str(out), 640, 360, plate.info.fps, audio=(str(src), plate.frame_time(30)),
                          frame_count=len(rng), first_frame=rng.first)  # fmt: skip
    w = open_writer(spec)
    assert w.resumable and not w.exists(30)
    for n in range(30, 110):
        w.write(n, frames[n])
    w.abort()  # e.g. Ctrl-C: the open segment is closed with what it has
    assert not out.exists()
    w = open_writer(spec)
    assert all(w.exists(n) for n in range(30, 110)) and not w.exists(110)
    for n in range(110, 150):
        w.write(n, frames[n])
    w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comp.mp4"]  # segments joined and cleaned up
    with open_plate(out) as back:
        assert back.info.frame_count == 120 and back.info.has_audio
        got = dict(back.frames(FrameRange(0, 119), native=True))
    for k in (0, 59, 60, 79, 80, 119):  # segment edges: the right frame at each place, nothing doubled
        err = [np.abs(got[k].astype(float) - frames[30 + j]).mean() for j in (k - 1, k, k + 1) if 0 <= j < 120]
        assert err[1 if k else 0] == min(err) and min(err) < 2.5, (k, err)
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        packets = [(p.stream.type, p.pts, p.duration) for p in c.demux(v, a) if p.pts is not None]
        tb = float(a.time_base)
    pts = sorted(t for kind, t, _ in packets if kind == "video")
    dur = sum(d * tb for kind, _, d in packets if kind == "audio" and d)
    steps = np.diff(pts)
    assert len(pts) == 120 and steps.min() == steps.max()  # evenly spaced: no gap at the joins
    assert abs(dur - 120 / float(Fraction(2997, 100))) < 0.1, dur
    # an earlier render's segments with other settings are not mixed in
    w = open_writer(spec)
    w.write(30, frames[30])
    w.abort()
    assert not open_writer(replace(spec, options={"crf": "20"})).exists(30)
    assert open_writer(spec).exists(30) is False  # discarded for good


@pytest.mark.parametrize(
    ("fmt", "shape", "dtype"),
    [("rgb24", (9, 13, 3), np.uint8), ("gray", (9, 13), np.uint8), ("rgb48le", (9, 13, 3), np.uint16),
     ("gray16le", (9, 13), np.uint16), ("rgba64le", (9, 13, 4), np.uint16), ("rgb24", (6, 1080, 3), np.uint8)],
)  # fmt: skip
def test_video_frame_equals_from_ndarray(fmt: str, shape: tuple[int, ...], dtype: type) -> None:
    """The writers' one-copy frames hold what PyAV's from_ndarray makes, padded rows (odd widths) included."""
    from faceplate.media.writers import video_frame

    px = np.random.default_rng(0).integers(0, np.iinfo(dtype).max, shape, dtype)
    ours, theirs = video_frame([px], fmt), av.VideoFrame.from_ndarray(px, format=fmt)
    assert ours.format.name == theirs.format.name and (ours.width, ours.height) == (theirs.width, theirs.height)
    assert np.array_equal(ours.to_ndarray(), theirs.to_ndarray())
    assert np.array_equal(ours.to_ndarray(), px)


def test_video_frame_yuv420p_planes_equal_from_ndarray() -> None:
    """A Yuv420 frame's planes become the encoder's frame unchanged (widths whose planes are padded too)."""
    from faceplate.media.writers import video_frame
    from faceplate.media.yuv import Yuv420

    for h, w in ((8, 12), (10, 1000)):
        data = np.random.default_rng(1).integers(0, 256, (h * 3 // 2, w), np.uint8)
        frame = Yuv420(data, np.zeros((h, w, 3), np.uint8))
        ours = video_frame(list(frame.planes()), "yuv420p")
        assert np.array_equal(ours.to_ndarray(), av.VideoFrame.from_ndarray(data, format="yuv420p").to_ndarray())


def test_video_plate_frames_equal_one_frame_reformats() -> None:
    """Decoding with one scaler context for the run gives the frames each frame's own reformat gives."""
    path = media("lp_driving_d0.mp4")
    with open_plate(path) as plate, av.open(path) as c:
        ours = [img for _, img in plate.frames(FrameRange(0, 4), native=True)]
        theirs = [
            f.reformat(format="rgb24", src_colorspace="itu709" if f.height >= 720 else "itu601", src_color_range=1,
                       dst_color_range=2, threads=1).to_ndarray()
            for _, f in zip(range(5), c.decode(video=0), strict=False)
        ]  # fmt: skip
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))
