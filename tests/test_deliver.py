"""``--deliver layers`` and ``--deliver patches``: the layered EXR and the aligned patches of a real beauty
render (6 frames of d18, 480x480, EXR comp, ``--glasses on`` so the eyewear hold-out fills occlusion.A), read
back with OpenImageIO; the STMap against OpenCV and an independent float64 resampling."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest
from scipy.ndimage import map_coordinates

from conftest import assert_one_line_error, cli_here, extracted_clip
from faceplate import __version__
from faceplate.align import align_image, align_matrix
from faceplate.config import RenderConfig
from faceplate.deliver import channels, sample_stmap, stmap, timecode_bcd
from faceplate.effects import EFFECTS
from faceplate.errors import ConfigError
from faceplate.geometry import invert
from faceplate.media import colour
from faceplate.media.frames import timecode
from faceplate.media.plate import open_plate
from faceplate.render import RenderSummary, render
from faceplate.render.outputs import deliverable_path
from faceplate.store import ShotStore

FRAMES = 6
HALF = 2.0**-11  # half-float rounding (relative), values <= 1


@dataclass
class Delivered:
    clip: Path
    shot: Path
    cfg: RenderConfig
    summary: RenderSummary
    plain: Path  # the same render without --deliver
    plates: dict[int, np.ndarray]  # decoded plate frames, float code values
    decoded: dict[int, np.ndarray]  # as decoded (uint8)


@pytest.fixture(scope="module")
def dl(tmp_path_factory: pytest.TempPathFactory) -> Delivered:
    root = tmp_path_factory.mktemp("deliver")
    clip = extracted_clip(root, "d18.mp4", FRAMES)
    base = {"plate": str(clip), "shot": root / "shot", "glasses": "on"}
    plain = RenderConfig(**base, out=str(root / "plain" / "comp.####.exr"))
    render(plain, EFFECTS.get("beauty")())
    cfg = RenderConfig(**base, out=str(root / "dl" / "comp.####.exr"), deliver="layers,patches")
    summary = render(cfg, EFFECTS.get("beauty")())
    with open_plate(str(clip)) as plate:
        decoded = {f: plate.read(f, native=True) for f in range(FRAMES)}
    plates = {f: colour.to_float(img) for f, img in decoded.items()}
    return Delivered(clip, root / "shot", cfg, summary, root / "plain", plates, decoded)


def read_exr(path: Path) -> tuple[dict[str, np.ndarray], Any]:
    """{channel: (H, W) float32} and the spec of an EXR."""
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None, oiio.geterror()
    spec = inp.spec()
    px = inp.read_image(oiio.FLOAT)
    inp.close()
    return {n: px[..., i] for i, n in enumerate(spec.channelnames)}, spec


def layers_of(dl: Delivered, frame: int) -> tuple[dict[str, np.ndarray], Any]:
    return read_exr(dl.shot.parent / "dl" / f"comp_layers.{frame:04d}.exr")


def stack(ch: dict[str, np.ndarray], *names: str) -> np.ndarray:
    return np.dstack([ch[n] for n in names])


def patch_of(dl: Delivered, track: int, frame: int) -> tuple[np.ndarray, dict[str, Any], Any]:
    """(patch (R, R, 4) float, its JSON, its PNG spec)."""
    folder = dl.shot.parent / "dl" / "comp_patches" / f"t{track}"
    straight = oiio.ImageSpec()
    straight.attribute("oiio:UnassociatedAlpha", 1)  # OIIO premultiplies a PNG's colour on read otherwise
    inp = oiio.ImageInput.open(str(folder / f"{frame:06d}.png"), straight)
    spec = inp.spec()
    px = inp.read_image(oiio.FLOAT)
    inp.close()
    return px, json.loads((folder / f"{frame:06d}.json").read_text()), spec


@pytest.mark.slow
def test_layers_channels_types_and_metadata(dl: Delivered) -> None:
    assert dl.summary.written == FRAMES and dl.summary.tracks == [0]
    effect = EFFECTS.get("beauty")()
    with ShotStore.open(dl.shot) as store:
        rows = {f: store.faces_in_frame(f) for f in range(FRAMES)}
    for frame in range(FRAMES):
        _, spec = layers_of(dl, frame)
        names = list(spec.channelnames)
        written = [n for n, _ in channels([0])]
        assert written == ["R", "G", "B", "A", "face.R", "face.G", "face.B", "face.A", "matte.A", "delta.R",
                           "delta.G", "delta.B", "stmap.u", "stmap.v", "occlusion.A"]  # fmt: skip
        # EXR stores channels sorted by name: OIIO reads R G B A first, then the layers alphabetically (each
        # layer's channels in R G B A / u v order)
        assert names == ["R", "G", "B", "A", *sorted(written[4:], key=lambda n: (n.split(".")[0], written.index(n)))]
        types = dict(zip(names, [str(t) for t in spec.channelformats], strict=True))
        assert {n for n, t in types.items() if t == "float"} == {"matte.A", "stmap.u", "stmap.v", "occlusion.A"}
        assert {n for n, t in types.items() if t == "half"} == set(names) - {"matte.A", "stmap.u", "stmap.v",
                                                                             "occlusion.A"}  # fmt: skip
        assert spec.getattribute("compression") == "zip"
        get = spec.getattribute
        assert get("faceplate/version") == __version__
        assert get("faceplate/plate") == str(dl.clip.resolve()) and get("faceplate/shot") == str(dl.shot.resolve())
        assert get("faceplate/frame") == frame and get("faceplate/effect") == "beauty"
        assert json.loads(get("faceplate/record")) == json.loads(json.dumps(effect.record()))
        assert json.loads(get("faceplate/tracks")) == [0]
        assert json.loads(get("faceplate/stmap")) == {"convention": "nuke", "origin": "bottom-left",
                                                      "pixel_centre": 0.5, "layers": {"stmap": 0}}  # fmt: skip
        assert get("faceplate/colorspace") == colour.VIDEO_709
        assert tuple(get("FramesPerSecond")) == (30, 1)
        assert tuple(get("smpte:TimeCode")) == (timecode_bcd(timecode(frame, Fraction(30))), 0)
        faces = json.loads(get("faceplate/faces"))
        assert [f["track"] for f in faces] == [r.track for r in rows[frame]] == [0]
        for f, row in zip(faces, rows[frame], strict=True):
            assert f["res"] % 32 == 0 and f["res"] >= 128
            want = invert(align_matrix(row.best, f["res"], effect.face_type))
            np.testing.assert_allclose(np.array(f["aligned_to_plate"]), want, rtol=0, atol=1e-9)
    assert timecode_bcd("01:02:03:04") == 0x01020304


@pytest.mark.slow
def test_rgba_is_the_comp_face_over_plate_and_delta(dl: Delivered) -> None:
    for frame in (0, FRAMES - 1):
        ch, _ = layers_of(dl, frame)
        plain, _ = read_exr(dl.plain / f"comp.{frame:04d}.exr")
        for n in "RGBA":
            assert np.array_equal(ch[n], plain[n]), n  # the same halves as the plain render's comp
        comp, plate = stack(ch, "R", "G", "B"), dl.plates[frame]
        face, a = stack(ch, "face.R", "face.G", "face.B"), ch["face.A"][..., None]
        assert np.abs(face + (1 - a) * plate - comp).max() < 4 * HALF  # face over plate == comp
        assert np.abs(ch["face.A"] - ch["matte.A"]).max() <= HALF
        assert np.abs(ch["A"] - ch["face.A"]).max() <= HALF + 1 / 65535  # A: the matte as the 16-bit comp holds it
        delta = stack(ch, "delta.R", "delta.G", "delta.B")
        assert np.abs(delta - (comp - plate)).max() < 2 * HALF
        assert np.abs(delta).max() > 0.01  # the beauty did change the face
        assert np.abs(delta[ch["matte.A"] == 0]).max() < 1e-6  # (8-bit codes as 16-bit: float rounding only)


@pytest.mark.slow
def test_stmap_places_the_patch_like_the_render(dl: Delivered) -> None:
    """The STMap applied (Nuke semantics) to the patch's alpha lands on matte.A; its convention checked
    against a float64 resampling of the patch by the metadata's matrix."""
    ch, _ = layers_of(dl, 2)
    patch, meta, _ = patch_of(dl, 0, 2)
    uv = stack(ch, "stmap.u", "stmap.v")
    alpha = sample_stmap(patch[..., 3], uv)
    err = np.abs(alpha - ch["matte.A"])
    # the render un-aligns with OpenCV (bilinear weights in 1/32 px steps), the STMap exactly: measured mean
    # 8e-5, p99 2.3e-3, max 0.011, only where the matte's edge is steep (up to 0.5 a pixel here)
    assert err.mean() < 1e-4 and np.quantile(err, 0.99) < 3e-3 and err.max() < 0.02
    ys, xs = np.mgrid[0:480, 0:480]
    centroid = lambda w: np.array([(w * xs).sum(), (w * ys).sum()]) / w.sum()  # noqa: E731
    assert np.abs(centroid(alpha) - centroid(ch["matte.A"])).max() < 5e-3  # placement: measured 0.0009 px
    # independent: plate px → aligned by the JSON matrix, float64 bilinear (scipy)
    m = invert(np.array(meta["aligned_to_plate"]))
    xa, ya = m[0, 0] * xs + m[0, 1] * ys + m[0, 2], m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    exact = map_coordinates(patch[..., 3].astype(np.float64), [ya, xa], order=1, mode="constant")
    assert np.abs(alpha - exact).max() < 1e-4
    # premultiplied colour away from the crop's edge: the patch holds the plate crop (resampled, and
    # pre-filtered to R) where the face element holds the plate itself: plate detail finer than the crop
    # differs (measured mean 6e-4, p99 6.6e-3 of full scale)
    colour_ = sample_stmap(patch[..., :3] * patch[..., 3:], uv)
    inner = (uv[..., 0] > 0.1) & (uv[..., 0] < 0.9) & (uv[..., 1] > 0.1) & (uv[..., 1] < 0.9)
    d = np.abs(colour_ - stack(ch, "face.R", "face.G", "face.B"))[inner]
    assert d.mean() < 1e-3 and np.quantile(d, 0.99) < 0.01
    far = ch["stmap.u"] == 0
    assert far.any() and (ch["stmap.v"][far] == 0).all() and (ch["matte.A"][far] == 0).all()


def test_stmap_against_warp_affine() -> None:
    """A synthetic plate→aligned matrix (rotation, scale, shift): STMap + Nuke sampling == cv2.warpAffine."""
    res, shape = 96, (150, 170)
    a = np.deg2rad(17.0)
    m = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0]]) * 0.8
    m[:, 2] = [-20.0, -35.0]
    yy, xx = np.mgrid[0:res, 0:res].astype(np.float32)
    taper = np.sin(np.pi * (np.arange(res) + 0.5) / res).astype(np.float32)  # to ~0 at the rim, as a patch's alpha
    aligned = (np.sin(xx / 9) * np.cos(yy / 7) * 0.5 + 0.5) * taper[:, None] * taper[None, :]  # smooth
    uv = stmap(m, res, shape)
    assert uv.dtype == np.float32 and uv.shape == (*shape, 2)
    want = cv2.warpAffine(aligned, m, shape[::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    got = sample_stmap(aligned, uv)
    inside = (uv[..., 0] > 0) | (uv[..., 1] > 0)
    assert np.abs(got - want)[inside].max() < 1.5e-3  # measured 1.04e-3: OpenCV's 1/32 px interpolation steps
    assert (got[~inside] == 0).all() and want[~inside].max() < 0.01  # outside: OpenCV blends the rim with 0
    c, r = 100, 90  # one pixel by hand: u = (xa + 0.5) / R, v = 1 - (ya + 0.5) / R
    xa, ya = m @ np.array([c, r, 1.0])
    np.testing.assert_allclose(uv[r, c], [(xa + 0.5) / res, 1 - (ya + 0.5) / res], atol=1e-6)
    assert 0.2 < inside.mean() < 0.9


@pytest.mark.slow
def test_patches_and_unaligned_patch_is_the_face_element(dl: Delivered) -> None:
    folder = dl.shot.parent / "dl" / "comp_patches"
    assert sorted(p.name for p in (folder / "t0").iterdir()) == sorted(
        f"{f:06d}.{e}" for f in range(FRAMES) for e in ("png", "json"))  # fmt: skip
    patch, meta, spec = patch_of(dl, 0, 3)
    assert spec.nchannels == 4 and str(spec.format) == "uint16" and list(spec.channelnames) == ["R", "G", "B", "A"]
    assert set(meta) == {"frame", "track", "res", "aligned_to_plate", "plate_to_aligned", "plate", "plate_size",
                         "colorspace", "effect", "record"}  # fmt: skip
    assert meta["frame"] == 3 and meta["track"] == 0 and meta["plate_size"] == [480, 480]
    assert meta["plate"] == str(dl.clip.resolve()) and meta["effect"] == "beauty"
    assert patch.shape == (meta["res"], meta["res"], 4)
    np.testing.assert_allclose(invert(np.array(meta["plate_to_aligned"])), meta["aligned_to_plate"], atol=1e-9)
    ch, spec_l = layers_of(dl, 3)
    assert json.loads(spec_l.getattribute("faceplate/faces"))[0]["aligned_to_plate"] == meta["aligned_to_plate"]
    # un-align the premultiplied patch with the JSON's matrix: it lands on the face element
    a2p = np.array(meta["aligned_to_plate"])
    premult = np.dstack([patch[..., :3] * patch[..., 3:], patch[..., 3]])
    placed = cv2.warpAffine(premult, a2p, (480, 480), flags=cv2.INTER_LINEAR)
    face = stack(ch, "face.R", "face.G", "face.B", "face.A")
    err = np.abs(placed - face)
    assert err[..., 3].mean() < 1e-4 and err[..., 3].max() < 0.03  # alpha: the render's own un-align
    assert err[..., :3].mean() < 1e-3 and np.quantile(err[..., :3], 0.999) < 0.03  # colour: plate resampled twice
    # straight, not premultiplied: where the alpha is faint the patch keeps the plate crop's level
    crop = colour.to_float(align_image(dl.decoded[3], invert(a2p), meta["res"], cv2.INTER_LINEAR))
    faint = (patch[..., 3] > 0.01) & (patch[..., 3] < 0.2)
    assert faint.sum() > 100 and crop[faint].mean() > 0.2
    assert np.median(np.abs(patch[..., :3] - crop)[faint]) < 0.01


@pytest.mark.slow
def test_occlusion_is_the_held_out_part(dl: Delivered) -> None:
    ch, _ = layers_of(dl, 1)
    occ, matte = ch["occlusion.A"], ch["matte.A"]
    assert occ.max() > 0.5  # --glasses on: the eyewear region is held out of the retouch
    assert (occ + matte).max() < 1.01  # what the hold-out removed + what is left <= the effect's matte
    assert matte[occ > 0.5].max() < 0.5
    assert (occ[ch["stmap.u"] == 0] == 0).all()  # nothing outside the crop


@pytest.mark.slow
def test_rerun_resumes_other_settings_refused(dl: Delivered) -> None:
    out = dl.shot.parent / "dl"
    files = [*out.glob("comp_layers.*.exr"), *(out / "comp_patches").rglob("*.*")]
    stamps = {f: os.stat(f).st_mtime_ns for f in files}
    again = render(dl.cfg, EFFECTS.get("beauty")())
    assert again.written == 0 and again.skipped == FRAMES
    assert {f: os.stat(f).st_mtime_ns for f in files} == stamps
    from faceplate.ops.retouch import RetouchSettings

    with pytest.raises(ConfigError, match=r"other settings.*--overwrite"):
        render(dl.cfg, EFFECTS.get("beauty")(RetouchSettings(strength=0.3)))
    # a layers sequence made by something else (no record) is refused before anything is written
    other = dl.shot.parent / "other"
    other.mkdir()
    (other / "comp_layers.0000.exr").write_bytes(b"not ours")
    cfg = dl.cfg.model_copy(update={"out": str(other / "comp.####.exr")})
    with pytest.raises(ConfigError, match=r"comp_layers.*not made by this render.*--overwrite"):
        render(cfg, EFFECTS.get("beauty")())
    assert sorted(p.name for p in other.iterdir() if not p.name.startswith(".")) == ["comp_layers.0000.exr"]


@pytest.mark.slow
def test_deliver_names_and_paths(dl: Delivered) -> None:
    proc = cli_here("beauty", dl.clip, "-o", dl.shot.parent / "x" / "c.####.exr", "--deliver", "nonsense")
    assert_one_line_error(proc, "nonsense", "layers", "patches")
    cfg = RenderConfig(plate="p.mp4", out="o.mp4", deliver=["patches", "layers,patches"])
    assert cfg.deliver == ["patches", "layers"]
    assert deliverable_path("shot/comp.####.exr", "layers") == "shot/comp_layers.####.exr"
    assert deliverable_path("out.mp4", "layers") == "out_layers.####.exr"
    assert deliverable_path("shot/comp.####.png", "layers") == "shot/comp_layers.####.exr"
    assert deliverable_path("shot/comp.####.exr", "patches") == "shot/comp_patches"
    assert deliverable_path("out.mp4", "patches") == "out_patches"
