"""Occluders on real faces: glasses found and held out of every retouch, nothing found where there are none;
the eyewear hold-out from the mesh (a track with clear, rimless or small glasses) covers labelled frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import media
from faceplate.align import align_image, align_matrix, to_aligned
from faceplate.analysis.faces import DETECTORS, Landmarker
from faceplate.config import RenderConfig
from faceplate.effects.base import AlignedFace, Effect
from faceplate.effects.beauty import BeautyEffect
from faceplate.media import open_plate
from faceplate.metrics import occluder_change, skin_coverage
from faceplate.ops.eyewear import eyewear_matte
from faceplate.ops.glasses import glasses_matte
from faceplate.ops.occluders import track_occluders
from faceplate.ops.regions import eye_distance, mesh_regions
from faceplate.render import render
from faceplate.render.tracks import held_out
from labels import Label, load_labels


def aligned(name: str, frame: int = 0, scale: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The first face of a real frame, aligned as beauty aligns it (``scale`` times larger): (crop (R, R, 3)
    float32, landmarks)."""
    with open_plate(media(name)) as p:
        rgb = p.read(frame, display=True)
    lm = Landmarker()(rgb, DETECTORS.get("mediapipe")(1, 0.5)(rgb)[0].roi())
    res = BeautyEffect().resolution(eye_distance(lm)) * scale
    m = align_matrix(lm, res, "whole_face")
    crop = np.clip(align_image(rgb.astype(np.float32) / 255, m, res), 0, 1).astype(np.float32)
    return crop, to_aligned(m, lm).astype(np.float32)


def eroded(mask: np.ndarray) -> np.ndarray:
    """``mask`` (H, W) > 0.5 less 2 px at its edge (labels are drawn to ~2 px), as bool."""
    return cv2.erode((mask > 0.5).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0


@pytest.mark.parametrize("name", ["wan_animate_video_0054", "wan_animate_video_0018"])
def test_dark_glasses_are_found_frames_and_lenses(name: str) -> None:
    """Frames and lenses are held out, both lower rims too (0018's pale tortoiseshell lower rim is found on
    one side only: the matte's mirror image across the face gives the other; before, 91% was held)."""
    (label,) = load_labels(name)
    crop, lm = aligned(label.media, label.frame, 2)
    occ = glasses_matte(crop, lm)
    res = crop.shape[0]
    with open_plate(media(label.media)) as p:
        rgb = p.read(label.frame, display=True)
    plate_lm = Landmarker()(rgb, DETECTORS.get("mediapipe")(1, 0.5)(rgb)[0].roi())
    m = align_matrix(plate_lm, res, "whole_face")
    glasses = align_image(label.mask("glasses"), m, res) > 0.5
    assert glasses.sum() > 500
    assert occ[glasses].mean() > 0.8  # the labelled frames and lenses are held out
    assert (occ[eroded(glasses.astype(np.float32))] > 0.5).mean() > 0.97  # measured 97.2-99%
    assert (occ > 0.5).sum() < 1.6 * glasses.sum()  # and not much more than them
    skin = align_image(label.skin(), m, res) > 0.5  # the nose's skin between the lenses, below the nose pads:
    iod, eyes = eye_distance(lm), np.array([lm[mesh_regions()[e], :2].mean(0) for e in ("eye_r", "eye_l")])
    ys, xs = np.mgrid[0:res, 0:res] - eyes.mean(0)[::-1, None, None]
    nose = skin & (np.abs(xs) < 0.1 * iod) & (ys > 0.25 * iod) & (ys < 0.5 * iod)
    assert (occ[nose] > 0.5).mean() < 0.45  # measured 32-37% (57% when a lens's hull took both sides' rims)


@pytest.mark.parametrize(("name", "frame"), [("fr_biden.jpg", 0), ("fr_obama.jpg", 0), ("df_img3.jpg", 0),
                                             ("lp_source_s32.mp4", 112), ("lp_driving_d18.mp4", 30)])  # fmt: skip
def test_no_glasses_no_occluder(name: str, frame: int) -> None:
    """Eye bags, crow's feet and folds are the face's own: on faces without glasses nothing is held out, at
    beauty's working size and at twice it (de-age works larger): neither frames found nor, by the bridge and
    rims (``--glasses auto``), glasses the frame finder cannot see."""
    for scale in (1, 2):
        crop, lm = aligned(name, frame, scale)
        assert glasses_matte(crop, lm).max() == 0, scale
        assert held_out([AlignedFace(0, 0, crop, lm, eye_distance(lm))]) is None, scale


def rendered(
    label: Label, tmp: Path, glasses: str = "auto", effect: Effect | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The labelled frame rendered alone (``effect``: beauty by default) → plate, comp (H, W, 3), matte (H, W)."""
    plate = str(media(label.media))
    frames = f"{label.frame}-{label.frame}"
    render(RenderConfig(plate=plate, out=str(tmp / "c.####.png"), matte=str(tmp / "m.####.png"), shot=tmp / "shot",
                        frames=frames, format="png16", glasses=glasses), effect or BeautyEffect())  # fmt: skip
    read = lambda p: cv2.imread(str(p), cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535  # noqa: E731
    comp = read(tmp / f"c.{label.frame:04d}.png")[..., 2::-1]
    matte = read(tmp / f"m.{label.frame:04d}.png")
    matte = matte if matte.ndim == 2 else matte[..., 0]
    with open_plate(plate) as p:
        rgb = p.read(label.frame, display=True).astype(np.float32) / 255
    return rgb, comp, matte


def test_beauty_leaves_labelled_glasses_alone_and_covers_the_skin(tmp_path: Path) -> None:
    (label,) = load_labels("wan_animate_video_0024")
    plate, comp, matte = rendered(label, tmp_path)
    glasses = eroded(label.mask("glasses")).astype(np.float32)
    mean, peak = occluder_change(plate, comp, glasses)
    assert mean <= 0.5 / 255 and peak <= 2 / 255, (255 * mean, 255 * peak)
    cover = skin_coverage(matte, label.skin())
    assert cover.outside < 0.02, cover  # the matte stays on skin
    assert cover.inside > 0.35, cover  # measured 42%; the goal (90%) is not met yet (see bench/RESULTS.md)


def test_glasses_on_holds_clear_frames_out_of_a_render(tmp_path: Path) -> None:
    """``glasses="on"`` (``--glasses on``) on d12's clear plastic frames, which the detector misses (auto
    changed them by 1.0 mean / 12 max in 1/255): the render leaves them alone and says so in its record."""
    (label,) = load_labels("lp_driving_d12_0000")
    plate, comp, matte = rendered(label, tmp_path, glasses="on")
    mean, peak = occluder_change(plate, comp, eroded(label.mask("glasses")).astype(np.float32))
    assert mean <= 0.5 / 255 and peak <= 2 / 255, (255 * mean, 255 * peak)
    assert (matte[label.skin() > 0.5] > 0.5).mean() > 0.3  # the rest of the skin is still retouched
    assert '"glasses": "on"' in (tmp_path / ".c.####.png.faceplate.json").read_text()


def test_one_steady_matte_per_track() -> None:
    """A frame whose detection drops out does not unmask the glasses: the track keeps one matte."""
    crop, lm = aligned("wan_animate_video.mp4", 54)
    occ = glasses_matte(crop, lm)
    none = np.zeros_like(occ)
    steady = track_occluders([occ, occ, none, occ, np.roll(occ, 2, axis=0)], eye_distance(lm))
    assert steady is not None and steady[occ > 0.9].min() > 0.9
    assert track_occluders([none, none, occ], eye_distance(lm)) is None  # most samples show none: no glasses


def labelled_face(label: Label) -> tuple[np.ndarray, np.ndarray]:
    """(plate frame (H, W, 3) uint8, landmarks (478, 3) plate px) of the labelled face (tiled detection:
    small faces too)."""
    with open_plate(media(label.media)) as p:
        rgb = p.read(label.frame, display=True)
    x0, y0, x1, y1 = label.face_box
    for det in DETECTORS.get("mediapipe")(2, 0.5)(rgb):
        lm = Landmarker()(rgb, det.roi())
        if lm is not None and x0 < lm[:, 0].mean() < x1 and y0 < lm[:, 1].mean() < y1:
            return rgb, lm
    raise AssertionError(f"no face found in {label.name}'s labelled box")


@pytest.mark.parametrize("name", ["lp_driving_d12_0000", "lp_driving_d12_0120", "wan_animate_video_0084",
                                  "fnp_video_0090"])  # fmt: skip
def test_eyewear_hold_out_covers_labelled_glasses(name: str) -> None:
    """Clear plastic (d12, not found by the detector), dark (wan) and small (fnp, eyes 24 px apart) frames:
    the mesh's eyewear region holds out every labelled frame and lens pixel, at the price of at most
    36% of the visible skin; its edge, which crosses skin, fades over > 0.07 eye distances (no seam)."""
    (label,) = load_labels(name)
    rgb, lm = labelled_face(label)
    held = eyewear_matte(lm, rgb.shape[:2])
    assert (held[eroded(label.mask("glasses"))] > 0.99).mean() > 0.999
    taken = (held[label.skin() > 0.5] > 0.5).mean()
    assert 0.05 < taken < 0.36, taken  # measured 18-35%
    steepest = max(np.abs(np.diff(held, axis=a)).max() for a in (0, 1))
    assert steepest < 1 / (0.07 * eye_distance(lm)), steepest


def test_glasses_setting_of_a_track() -> None:
    """``held_out``: off holds out nothing, on the eyewear region and whatever the detector finds."""
    faces = [AlignedFace(0, 0, crop, lm, eye_distance(lm)) for crop, lm in
             (aligned("lp_driving_d12.mp4", 0), aligned("wan_animate_video.mp4", 54))]  # fmt: skip
    for face in faces:
        assert held_out([face], glasses=False) is None
        on = held_out([face], glasses=True)
        mesh = eyewear_matte(face.landmarks, face.image.shape[:2])
        assert on is not None and on[mesh > 0.99].min() > 0.99
    found, on = held_out([faces[1]]), held_out([faces[1]], glasses=True)
    assert found is not None and on is not None and (on >= found - 1e-6).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lp_source_s32_0008", "fr_biden_0000"])
def test_deage_leaves_temple_hair_beside_the_brows_alone(name: str, tmp_path: Path) -> None:
    """De-age's brow lift held the mesh brow's tail as brow where it runs under temple hair (s32's blonde strands,
    Biden's white hair beside the crow's feet), and the lift's hold reached 0.04-0.08 iod into the hair: the hair
    moved by up to 18.8/255 (s32) and 5.5/255 (Biden). Now the hair is left as shot (measured 0.2, 0.1 max)."""
    from faceplate.effects.deage import DeageEffect, DeageSettings

    (label,) = load_labels(name)
    plate, comp, matte = rendered(label, tmp_path, effect=DeageEffect(DeageSettings(years=20)))
    mean, peak = occluder_change(plate, comp, eroded(label.mask("hair")).astype(np.float32))
    assert mean <= 0.5 / 255 and peak <= 2 / 255, (255 * mean, 255 * peak)
    assert (matte[label.skin() > 0.5] > 0.5).mean() > 0.7  # the skin is still de-aged (measured 78-82%)
