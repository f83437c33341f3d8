"""Beauty fix on real faces through the shared render path: quality measures, isolation, resume, bad input."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import assert_one_line_error, cli_here, media, run_cli
from faceplate.align import align_image, align_matrix, to_aligned
from faceplate.analysis.faces import DETECTORS, Landmarker, interocular
from faceplate.analysis.identity import Embedder, distance
from faceplate.config import ExtractConfig, RenderConfig
from faceplate.effects.base import AlignedFace
from faceplate.effects.beauty import RETOUCH_PAD, BeautyEffect, matte_box
from faceplate.errors import FaceNotFoundError
from faceplate.extract import Interrupted, extract
from faceplate.media import WriterSpec, open_plate, open_writer
from faceplate.media.colour import LINEAR_709, converter
from faceplate.media.frames import FrameRange
from faceplate.media.yuv import Yuv420, to_rgb
from faceplate.metrics import measure, skin_coverage
from faceplate.ops.filters import fill_holes
from faceplate.ops.regions import feather, sample_patches, under_eye
from faceplate.ops.retouch import keep_fine, retouch
from faceplate.render import ColourPath, prepare_tracks, render, render_frame
from faceplate.render.composite import EDGE, edge_ramp
from faceplate.render.preview import LABEL_BAR
from faceplate.render.tracks import held_out
from faceplate.store import ShotStore
from labels import Label, load_labels
from test_occluders import labelled_face

D18 = "lp_driving_d18.mp4"


@pytest.fixture(scope="module")
def d18_beauty(tmp_path_factory: pytest.TempPathFactory, d18_shot: Path) -> tuple[Path, RenderConfig]:
    out = tmp_path_factory.mktemp("beauty")
    cfg = RenderConfig(plate=str(media(D18)), out=str(out / "comp.####.png"), shot=d18_shot, frames="0-47",
                       format="png16")  # fmt: skip
    summary = render(cfg, BeautyEffect())
    assert summary.written == 48 and summary.faces == 48
    return out, cfg


@pytest.fixture(scope="module")
def d18_few(tmp_path_factory: pytest.TempPathFactory, d18_shot: Path) -> Path:
    """Frames 23-30 of d18 with beauty (the quick checks; the 48-frame render is for the slow measures)."""
    out = tmp_path_factory.mktemp("beauty_few")
    cfg = RenderConfig(plate=str(media(D18)), out=str(out / "comp.####.png"), shot=d18_shot, frames="23-30",
                       format="png16")  # fmt: skip
    assert render(cfg, BeautyEffect()).written == 8
    return out


def _matte(out: Path, frame: int) -> np.ndarray:
    return open_plate(out / f"comp_matte.{frame:04d}.png").read(0)[..., 0]  # one file opens as a still


@pytest.mark.slow
def test_quality_measures_on_a_real_shot(d18_beauty: tuple[Path, RenderConfig], d18_shot: Path) -> None:
    _, cfg = d18_beauty
    effect = BeautyEffect()
    with ShotStore.open(d18_shot) as store, open_plate(media(D18)) as plate, open_plate(cfg.out) as comp:
        (track,) = store.tracks()
        faces = [f for f in store.track_faces(track.id) if f.frame <= 47]
        model = prepare_tracks(store, plate, effect, [track.id], ColourPath(plate.info.colorspace))[track.id].context
        m = measure(plate, comp, faces, partial(effect.matte_for, model))
    assert m.frames == 48
    assert m.band_drop >= 0.40, m  # blemish/wrinkle-scale energy in the skin matte
    assert m.eyes_lips_change < 1 / 255, m
    assert m.delta_flicker < 1.5 / 255, m  # the fix sticks to the face: no flicker
    assert m.delta_flicker < m.plate_motion, m


def test_outside_the_matte_is_bit_identical(d18_few: Path) -> None:
    out = d18_few
    with open_plate(media(D18)) as plate:
        for frame in (23, 26, 30):
            src = np.round(plate.read(frame) * 255).astype(np.uint16) * 257  # 8-bit plate in 16-bit code values
            comp = np.round(open_plate(out / f"comp.{frame:04d}.png").read(0) * 65535).astype(np.uint16)
            matte = _matte(out, frame)
            outside = matte == 0
            assert outside.mean() > 0.5
            np.testing.assert_array_equal(comp[outside], src[outside])
            inside = matte > 0.5
            assert np.abs(comp[inside].astype(int) - src[inside]).mean() > 100  # and the skin did change
            assert (comp[inside] % 257 != 0).mean() > 0.5  # in 16-bit steps, not rounded to the plate's 8-bit codes


def test_identity_kept(d18_few: Path) -> None:
    out = d18_few
    plate_rgb = open_plate(media(D18)).read(30, display=True)
    comp_rgb = open_plate(out / "comp.0030.png").read(0, display=True)
    (det,) = DETECTORS.get("mediapipe")(1, 0.5)(plate_rgb)
    lm = Landmarker()(plate_rgb, det.roi())
    emb = Embedder()
    assert distance(emb(plate_rgb, lm), emb(comp_rgb, lm)) <= 0.15


@pytest.mark.slow
def test_only_the_chosen_face_changes(tmp_path: Path) -> None:
    out = tmp_path / "comp.####.png"
    r = run_cli("beauty", media("fr_two_people.jpg"), "-o", out, "--face", media("fr_obama.jpg"), "--format", "png16")
    assert r.returncode == 0, r.stderr
    src = np.round(open_plate(media("fr_two_people.jpg")).read(0) * 255).astype(np.int64) * 257  # 16-bit codes
    comp = np.round(open_plate(tmp_path / "comp.0000.png").read(0) * 65535).astype(np.int64)
    changed = np.abs(comp - src).max(axis=2) > 0
    _, xs = np.nonzero(changed)
    assert len(xs) > 1000 and xs.max() < 1126 / 2  # Obama (left) retouched, Biden (right) untouched
    assert not changed[:, 563:].any()


def test_resume_skips_frames_already_written(tmp_path: Path, d18_shot: Path) -> None:
    cfg = RenderConfig(plate=str(media(D18)), out=str(tmp_path / "c.####.exr"), shot=d18_shot, frames="100-111")
    first = render(cfg, BeautyEffect())
    assert (first.written, first.skipped) == (12, 0)
    keep = (tmp_path / "c.0105.exr").read_bytes()
    for n in (103, 108):
        (tmp_path / f"c.{n:04d}.exr").unlink()
    again = render(cfg, BeautyEffect())
    assert (again.written, again.skipped) == (2, 10)
    assert (tmp_path / "c.0105.exr").read_bytes() == keep
    with open_plate(tmp_path / "c.####.exr") as seq:
        assert seq.info.frames == FrameRange(100, 111) and seq.info.has_alpha


@pytest.mark.slow
def test_video_render_resumes_after_ctrl_c(tmp_path: Path, d18_shot: Path) -> None:
    """Ctrl-C during an H.264 render keeps the frames encoded so far; the same command finishes the rest."""
    cfg = RenderConfig(plate=str(media(D18)), out=str(tmp_path / "c.mp4"), shot=d18_shot, frames="0-79",
                       matte=str(tmp_path / "m.mp4"))  # fmt: skip

    def stop_at(done: int, total: int) -> None:
        if done == 60:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="run the same command to resume"):
        render(cfg, BeautyEffect(), progress=stop_at)
    assert not (tmp_path / "c.mp4").exists()
    again = render(cfg, BeautyEffect())
    assert again.skipped >= 50 and again.written == 80 - again.skipped  # 25 fps: 2 s segments of 50 frames
    whole = render(cfg.model_copy(update={"out": str(tmp_path / "w.mp4"), "matte": str(tmp_path / "wm.mp4")}),
                   BeautyEffect())  # fmt: skip
    assert (whole.written, whole.skipped) == (80, 0)
    with open_plate(tmp_path / "c.mp4") as a, open_plate(tmp_path / "w.mp4") as b, open_plate(tmp_path / "m.mp4") as m:
        assert a.info.frame_count == b.info.frame_count == m.info.frame_count == 80
        for k in (0, 49, 50, 65, 79):  # the resumed file holds the same pictures as an uninterrupted render
            assert np.abs(a.read(k, native=True).astype(float) - b.read(k, native=True)).mean() < 1.0
    names = sorted(p.name for p in tmp_path.iterdir())  # no parts or partial files left; each output's record
    assert names == [".c.mp4.faceplate.json", ".m.mp4.faceplate.json", ".w.mp4.faceplate.json",
                     ".wm.mp4.faceplate.json", "c.mp4", "m.mp4", "w.mp4", "wm.mp4"]  # fmt: skip


@pytest.mark.slow
def test_fresh_shot_is_analysed_and_rendered_in_one_pass(tmp_path: Path) -> None:
    """A fresh video shot is analysed and rendered in one pass (each frame decoded once): the comp matches the
    two-pass render of the same shot, and the shot store matches what ``extract`` writes."""
    plate, frames = str(media(D18)), "0-29"
    out = partial(RenderConfig, plate=plate, frames=frames, format="png16", matte="none")
    one = render(out(out=str(tmp_path / "a.####.png"), shot=tmp_path / "A"), BeautyEffect())
    assert "extract" not in one.stages and one.stages["detect + landmarks"] > 0  # analysed while rendering
    extract(ExtractConfig(plate=plate, shot=tmp_path / "B", frames=frames))
    two = render(out(out=str(tmp_path / "b.####.png"), shot=tmp_path / "B"), BeautyEffect())
    assert "extract" in two.stages
    assert (one.written, one.faces, one.tracks) == (two.written, two.faces, two.tracks) == (30, 30, [0])
    with open_plate(tmp_path / "a.####.png") as a, open_plate(tmp_path / "b.####.png") as b, open_plate(plate) as p:
        for k in (0, 12, 29):  # ends of the shot too (short look-ahead there)
            x, y = a.read(k, native=True).astype(np.int32), b.read(k, native=True).astype(np.int32)
            assert np.abs(x - y).max() <= 2, k  # 16-bit code values: smoothing differs by < 0.01 px
            assert np.abs(x // 257 - p.read(k, native=True)).max() > 3  # the retouch did change the frame
    with ShotStore.open(tmp_path / "A") as sa, ShotStore.open(tmp_path / "B") as sb:
        assert sa.meta("finalized") == "1"
        fa, fb = sa.track_faces(0), sb.track_faces(0)
        assert len(fa) == len(fb) == 30
        assert all(np.array_equal(x.best, y.best) for x, y in zip(fa, fb, strict=True))


@pytest.mark.slow
def test_partly_analysed_shot_renders_in_two_passes(tmp_path: Path) -> None:
    """Tracks continue from frames already in the store, so only a fresh shot is rendered in one pass."""
    extract(ExtractConfig(plate=str(media(D18)), shot=tmp_path / "shot", frames="0-29"))
    cfg = RenderConfig(plate=str(media(D18)), out=str(tmp_path / "c.mp4"), shot=tmp_path / "shot", frames="30-59")
    r = render(cfg, BeautyEffect())
    assert "extract" in r.stages and r.written == 30 and r.tracks == [0]  # the track of frames 0-29 goes on


@pytest.mark.slow
def test_one_pass_render_resumes_after_ctrl_c(tmp_path: Path) -> None:
    """Ctrl-C in a one-pass render keeps the analysis and the encoded frames; the same command finishes it."""
    cfg = RenderConfig(plate=str(media(D18)), out=str(tmp_path / "c.mp4"), shot=tmp_path / "shot", frames="0-69")

    def stop_at(done: int, total: int) -> None:
        if done == 55:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="run the same command to resume"):
        render(cfg, BeautyEffect(), progress=stop_at)
    with ShotStore.open(tmp_path / "shot") as store:
        assert len(store.stored_frames()) >= 55
    again = render(cfg, BeautyEffect())
    assert "extract" in again.stages and again.skipped >= 50 and again.written == 70 - again.skipped
    with open_plate(tmp_path / "c.mp4") as c:
        assert c.info.frame_count == 70


def test_one_pass_render_without_a_face_leaves_no_output(tmp_path: Path) -> None:
    """A video with nobody in it (the grey wall beside the d18 actor): one clear error, no comp left behind."""
    wall = tmp_path / "wall.mp4"
    with open_plate(media(D18)) as plate, open_writer(WriterSpec(str(wall), 128, 128, plate.info.fps)) as w:
        for n, img in plate.frames(FrameRange(0, 19), native=True):
            w.write(n, np.ascontiguousarray(img[:128, :128]))
    cfg = RenderConfig(plate=str(wall), out=str(tmp_path / "c.mp4"), shot=tmp_path / "shot")
    with pytest.raises(FaceNotFoundError, match="no face found in frames 0-19"):
        render(cfg, BeautyEffect())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shot", "wall.mp4"]  # no comp, segments or records
    with ShotStore.open(tmp_path / "shot") as store:
        assert len(store.stored_frames()) == 20  # the analysis is kept


@pytest.mark.slow
def test_linear_exr_plate(tmp_path: Path) -> None:
    # a scene-linear EXR plate made from real frames: the retouch happens on an sRGB view, the comp stays linear
    to_lin = converter("sRGB Encoded Rec.709 (sRGB)", LINEAR_709)
    with open_plate(media("lp_driving_d19.jpg")) as still:
        lin = still.read(0).copy()
    to_lin(lin)
    lin = lin.astype(np.float16).astype(np.float32)
    with open_writer(WriterSpec(str(tmp_path / "plate.####.exr"), 720, 720, colorspace=LINEAR_709)) as w:
        for n in (1001, 1002):
            w.write(n, lin)
    out = tmp_path / "out" / "comp.####.exr"
    r = run_cli("beauty", tmp_path / "plate.####.exr", "-o", out, "--delta", tmp_path / "out" / "delta.####.exr")
    assert r.returncode == 0, r.stderr
    with open_plate(out) as comp, open_plate(tmp_path / "out" / "delta.####.exr") as delta:
        c, d = comp.read(1001), delta.read(1002)
    import OpenImageIO as oiio

    alpha = oiio.ImageBuf(str(tmp_path / "out" / "comp.1001.exr")).get_pixels(oiio.FLOAT)[..., 3]
    np.testing.assert_array_equal(c[alpha == 0], lin[alpha == 0])
    assert np.abs(c - lin)[alpha > 0.5].mean() > 1e-3 and np.abs(d).max() > 1e-3


@pytest.mark.slow
def test_preview_writes_before_after_and_sweep(tmp_path: Path, d18_shot: Path) -> None:
    shot = tmp_path / "shot"
    shutil.copytree(d18_shot, shot)
    r = run_cli("beauty", media(D18), "-o", tmp_path / "comp.mov", "--shot", shot, "--preview", "--preview-frame", 60)
    assert r.returncode == 0, r.stderr
    import cv2

    pair = cv2.imread(str(tmp_path / "comp_preview.png"))
    sweep = cv2.imread(str(tmp_path / "comp_sweep.png"))
    assert pair.shape[0] == 512 + LABEL_BAR and sweep.shape[1] == pair.shape[1] // 2 * 5
    tiles = [t[LABEL_BAR:] for t in np.split(sweep, 5, axis=1)]
    diffs = [np.abs(t.astype(int) - tiles[0]).mean() for t in tiles]
    assert diffs[0] == 0 and diffs[1] < diffs[2] < diffs[3] < diffs[4]  # strength grows left to right
    bars = [t[:LABEL_BAR] for t in np.split(sweep, 5, axis=1)] + [t[:LABEL_BAR] for t in np.split(pair, 2, axis=1)]
    assert all(b.max() > 200 and b.min() < 40 for b in bars)  # every tile carries a light label on a dark bar
    assert len({b.tobytes() for b in bars}) == len(bars)  # and the labels differ (strength values, before/after)
    outside = run_cli("beauty", media(D18), "-o", tmp_path / "comp.mov", "--shot", shot, "--preview",
                      "--frames", "0-30", "--preview-frame", 60)  # fmt: skip
    assert_one_line_error(outside, "--preview-frame 60 is outside the frames 0-30")
    assert not (tmp_path / "comp.mov").exists()


@pytest.mark.slow
def test_beauty_bad_input(tmp_path: Path, d18_shot: Path) -> None:
    rgb = open_plate(media("fr_biden.jpg")).read(0)
    wall = tmp_path / "wall.####.png"
    with open_writer(WriterSpec(str(wall), 320, 240, format="png16")) as w:
        w.write(1, np.ascontiguousarray(rgb[:240, :320]))
    assert_one_line_error(run_cli("beauty", wall, "-o", tmp_path / "a.####.exr"), "no face found")
    assert_one_line_error(run_cli("beauty", media(D18), "-o", tmp_path / "b.####.exr", "--shot", d18_shot,
                                  "--face", media("fr_biden.jpg")), "nobody in")  # fmt: skip
    assert_one_line_error(cli_here("beauty", media(D18), "-o", tmp_path / "c.mp4", "--strength", "1.5"), "strength")
    assert_one_line_error(cli_here("beauty", media(D18), "-o", tmp_path / "c.mp4", "--texture", "-1"), "texture")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(cli_here("beauty", media(D18), "-o", blocker / "c.####.exr", "--shot", d18_shot,
                                   "--frames", "0-3"), "cannot create output folder")  # fmt: skip
    assert_one_line_error(cli_here("beauty", media(D18), "-o", tmp_path / "d.mp4", "--shot", d18_shot,
                                   "--delta", tmp_path / "delta.mp4"), "EXR")  # fmt: skip


def _render_chunk(cfg: RenderConfig, effect: BeautyEffect) -> int:
    return render(cfg, effect).written


@pytest.mark.slow
def test_farm_chunks_match_a_single_render(tmp_path: Path, d18_shot: Path) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from faceplate.errors import ConfigError
    from faceplate.render import plan_chunks

    whole = RenderConfig(plate=str(media(D18)), out=str(tmp_path / "a" / "c.####.exr"), shot=d18_shot, frames="60-71")
    render(whole, BeautyEffect())
    farm = whole.model_copy(update={"out": str(tmp_path / "b" / "c.####.exr")})
    chunks = plan_chunks(farm, 5)
    assert [c.frames for c in chunks] == ["60-64", "65-69", "70-71"]
    spawn = multiprocessing.get_context("spawn")  # fresh processes, as on Dask workers: config + effect pickle
    with ProcessPoolExecutor(2, mp_context=spawn) as pool:
        assert sum(pool.map(_render_chunk, chunks, [BeautyEffect()] * len(chunks))) == 12
    with open_plate(tmp_path / "a" / "c.####.exr") as a, open_plate(tmp_path / "b" / "c.####.exr") as b:
        for (_, x), (_, y) in zip(a.frames(), b.frames(), strict=True):
            np.testing.assert_array_equal(x, y)  # chunked = whole, pixel for pixel
    with pytest.raises(ConfigError, match="image-sequence"):
        plan_chunks(whole.model_copy(update={"out": str(tmp_path / "c.mov")}), 5)


@pytest.mark.slow
def test_hand_over_the_face_is_left_alone(tmp_path: Path) -> None:
    import cv2

    from faceplate.analysis.hands import hand_mask

    plate = media("lp_driving_d30.jpg")  # her hand rests on her cheek
    r = run_cli("beauty", plate, "-o", tmp_path / "c.####.png", "--format", "png16")
    assert r.returncode == 0, r.stderr
    with ShotStore.open(tmp_path / "lp_driving_d30.faceplate") as store:
        hands = store.hands_in_frame(0)
        face = store.faces_in_frame(0)[0].landmarks
    assert len(hands) == 1
    hand = hands[0]
    assert face[:, 0].min() < hand[:, 0].max() and hand[:, 1].min() < face[:, 1].max()  # on the face
    src = np.round(open_plate(plate).read(0) * 255).astype(np.int64) * 257
    comp = np.round(open_plate(tmp_path / "c.0000.png").read(0) * 65535).astype(np.int64)
    changed = np.abs(comp - src).max(axis=2) > 0
    on_hand = cv2.erode(hand_mask(hands, changed.shape), np.ones((5, 5), np.uint8)) > 0
    assert on_hand.sum() > 2000 and not changed[on_hand].any()
    assert changed.sum() > 5000  # the rest of the face was retouched


def test_yuv_composite_matches_the_rgb_path(tmp_path: Path) -> None:
    """8-bit 4:2:0 video is composited in its Y'CbCr planes: same change as the RGB path, untouched elsewhere."""
    effect, frame = BeautyEffect(), 60
    plate_path = str(media("lp_source_s32.mp4"))  # 720p, untagged: Rec.709 by the FFmpeg convention
    extract(ExtractConfig(plate=plate_path, shot=tmp_path, frames=f"{frame - 2}-{frame + 2}"))
    with ShotStore.open(tmp_path) as store, open_plate(plate_path) as plate:
        faces = store.faces_in_frame(frame)
        col = ColourPath(plate.info.colorspace)
        tracks = prepare_tracks(store, plate, effect, [f.track for f in faces], col)
        ((_, yuv),) = list(plate.frames_yuv(FrameRange(frame, frame)))
    assert isinstance(yuv, Yuv420) and len(faces) == 1
    before = Yuv420(yuv.data.copy(), yuv.rgb)
    comp_rgb, matte_rgb = render_frame(yuv.rgb, faces, tracks, effect, col)
    comp_yuv, matte_yuv = render_frame(yuv, faces, tracks, effect, col)
    assert comp_yuv is yuv and isinstance(comp_rgb, np.ndarray)
    assert ((matte_rgb > 0.5) & (matte_yuv > 0.5)).sum() > 10000
    # compared where the retouch works at full strength: near the matte's edge only fine texture changes
    # (SkinMatte.edge_band), a change the size of the rounding
    full = ((matte_rgb > 0.99) & (matte_yuv > 0.99)).astype(np.uint8)
    skin = cv2.erode(full, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (25, 25))) > 0
    assert skin.sum() > 3000
    change_rgb = comp_rgb.astype(np.float32) - yuv.rgb
    change_yuv = to_rgb(yuv).astype(np.float32) - to_rgb(before)
    assert np.abs(change_rgb[skin]).mean() > 1.0  # the retouch did something worth comparing
    assert np.abs(change_yuv[skin] - change_rgb[skin]).mean() < 0.6  # same change, within rounding (0.41 seen)
    assert np.corrcoef(change_yuv[skin].ravel(), change_rgb[skin].ravel())[0, 1] > 0.9  # 0.95 seen
    # planes outside the change are exactly as decoded (the RGB path would round them through RGB)
    y, u, v = yuv.planes()
    y0, u0, v0 = before.planes()
    untouched = cv2.dilate((matte_yuv > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    assert untouched.mean() > 0.5
    np.testing.assert_array_equal(y[untouched], y0[untouched])
    half = untouched[::2, ::2] & untouched[1::2, 1::2] & untouched[::2, 1::2] & untouched[1::2, ::2]
    np.testing.assert_array_equal(u[half], u0[half])
    np.testing.assert_array_equal(v[half], v0[half])
    assert not np.array_equal(y, y0)
    # end to end: H.264 in → H.264 out through the planes, with the matte beside it
    cfg = RenderConfig(plate=plate_path, out=str(tmp_path / "comp.mp4"), shot=tmp_path,
                       frames=f"{frame - 2}-{frame + 2}", matte=str(tmp_path / "matte.mp4"))  # fmt: skip
    assert render(cfg, effect).written == 5
    with open_plate(plate_path) as plate, open_plate(cfg.out) as comp, open_plate(tmp_path / "matte.mp4") as mat:
        assert comp.info.frames == FrameRange(0, 4) and (comp.info.width, comp.info.height) == (1280, 720)
        a, b, m = plate.read(frame, native=True), comp.read(2, native=True), mat.read(2, native=True)[..., 0]
    diff = np.abs(b.astype(np.float32) - a).mean(-1)
    inside, outside = diff[m > 200].mean(), diff[m == 0].mean()
    assert inside > 1.5 * outside, (inside, outside)


# --- the skin matte against hand-labelled frames (issue #14) --------------------------------------------------


def labelled_matte(name: str) -> tuple[Label, np.ndarray]:
    """(label, beauty's skin matte (H, W) in plate pixels) of a labelled still frame: the face in the label's
    box, its skin model fitted on that frame alone, the matte un-aligned as the render does (crop-edge fade)."""
    (label,) = load_labels(name)
    with open_plate(media(label.media)) as p:
        rgb = p.read(label.frame, display=True)
    x0, y0, x1, y1 = label.face_box
    lms = [Landmarker()(rgb, d.roi()) for d in DETECTORS.get("mediapipe")(1, 0.5)(rgb)]
    (lm,) = [m for m in lms if m is not None and x0 < m[:, 0].mean() < x1 and y0 < m[:, 1].mean() < y1]
    effect = BeautyEffect()
    res = effect.resolution(interocular(lm))
    m = align_matrix(lm, res, effect.face_type)
    crop = align_image(rgb.astype(np.float32) / 255, m, res)
    alm = to_aligned(m, lm).astype(np.float32)
    face = AlignedFace(label.frame, 0, crop, alm, interocular(alm))
    matte = effect.skin_matte(face, effect.prepare([face])) * edge_ramp((res, res), EDGE * face.iod)
    h, w = rgb.shape[:2]
    return label, cv2.warpAffine(matte, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)


@pytest.mark.parametrize(("name", "inside"), [("fr_biden_0000", 0.70), ("lp_source_s32_0112", 0.78)])
def test_skin_matte_covers_the_labelled_skin_up_to_the_features(name: str, inside: float) -> None:
    """The matte reaches the lash lines, brows, lips and the outline, the colour likelihood taken as a
    decision (SkinMatte.decide: s32's shaded cheek) (measured here: Biden 73%, s32 81%; 63% and 76% with the
    stubble floor on every face and the 2 px feather inset, 64% and 70% with the likelihood as a weight, 41%
    and 45% with the old wide margins and the stubble floor over the whole lower face) and stays off
    everything else (the goal, 90% in, is not met yet: bench/RESULTS.md)."""
    label, matte = labelled_matte(name)
    cover = skin_coverage(matte, label.skin())
    assert cover.inside > inside, cover
    assert cover.outside < 0.02, cover
    hair = label.mask("hair") > 0.5
    assert matte[hair].mean() < 0.008  # s32's blonde hairline: 0.003; 0.016 without the margin off what the
    # colour rejects (SkinMatte.colour_margin), 0.011 with the likelihood as a weight, 0.037 without strands


def test_keep_fine_takes_out_broad_change_only_near_edges() -> None:
    """Near a feature (``near`` = 1) a broad change (a tone shift) goes, a fine one (texture) stays; away
    from it (``near`` = 0) both stay."""
    xs = np.mgrid[0:64, 0:64][1].astype(np.float32)
    fine = 0.01 * np.sin(xs * 2.0)[..., None] * np.ones(3, np.float32)
    change = np.ascontiguousarray(fine + 0.05, np.float32)
    near = (xs < 32).astype(np.float32)
    out = keep_fine(change, near, 3.0)
    assert np.abs(out[20:44, 4:28].mean()) < 0.002  # the broad 0.05 is gone near the edge
    assert np.abs(out[20:44, 4:28] - fine[20:44, 4:28]).max() < 0.005  # the texture is kept
    np.testing.assert_array_equal(out[:, 40:], change[:, 40:])


@pytest.mark.parametrize("name", ["lp_driving_d12_0024", "fr_short_hamilton_clip_0130"])
def test_the_retouch_on_the_matte_box_looks_as_on_the_whole_crop(name: str) -> None:
    """apply retouches the rectangle round the matte (RETOUCH_PAD: the filters' reach) only: inside the
    matte the result is the whole crop's within 0.3/255 on average, 2/255 at the 99th percentile (measured:
    <= 0.01 and 0.04); outside the rectangle the crop is kept as it was, and the matte is the same."""
    (label,) = load_labels(name)
    rgb, lm = labelled_face(label)
    effect = BeautyEffect()
    m = align_matrix(lm, effect.resolution(interocular(lm)), effect.face_type)
    crop = np.clip(align_image(rgb.astype(np.float32) / 255, m, effect.resolution(interocular(lm))), 0, 1)
    alm = to_aligned(m, lm).astype(np.float32)
    face = AlignedFace(0, 0, crop.astype(np.float32), alm, interocular(alm))
    face = AlignedFace(0, 0, face.image, alm, face.iod, held_out=held_out([face]))
    model = effect.prepare([face])
    colour = effect.colour_matte(face, model)
    matte = colour if face.held_out is None else colour * (1.0 - face.held_out)
    shape, iod = matte.shape, face.iod
    cheeks = sample_patches(alm, shape)
    cheeks[: int(alm[168, 1])] = 0
    img = fill_holes(face.image, 1.0 - np.clip(matte * 4.0, 0.0, 1.0), 0.05 * iod)
    change = retouch(img, matte, feather(under_eye(alm, shape), 0.04 * iod), cheeks, iod, effect.settings) - img
    whole = face.image + keep_fine(change, effect.near_edges(matte, iod), effect.matte.edge_sigma * iod)
    got = effect.apply(face, model)
    np.testing.assert_array_equal(got.matte, colour)
    d = 255 * np.abs(got.image - whole).max(axis=-1)
    inside = matte > 0.01
    assert d[inside].mean() < 0.3 and np.percentile(d[inside], 99) < 2.0, (d[inside].mean(), d.max())
    kept = np.ones(shape, bool)
    kept[matte_box(matte, round(RETOUCH_PAD * iod))] = False
    assert kept.any() and np.array_equal(got.image[kept], face.image[kept])
