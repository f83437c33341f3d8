"""Occluders on real faces: glasses found and held out of every retouch, nothing found where there are none."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import media
from faceplate.align import align_image, align_matrix, to_aligned
from faceplate.analysis.faces import DETECTORS, Landmarker
from faceplate.config import RenderConfig
from faceplate.effects.beauty import BeautyEffect
from faceplate.media import open_plate
from faceplate.metrics import occluder_change, skin_coverage
from faceplate.ops.occluders import occluder_matte, track_occluders
from faceplate.ops.regions import eye_distance
from faceplate.render import render
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


def test_dark_glasses_are_found_frames_and_lenses() -> None:
    (label,) = load_labels("wan_animate_video_0054")
    crop, lm = aligned(label.media, label.frame, 2)
    occ = occluder_matte(crop, lm)
    res = crop.shape[0]
    with open_plate(media(label.media)) as p:
        rgb = p.read(label.frame, display=True)
    plate_lm = Landmarker()(rgb, DETECTORS.get("mediapipe")(1, 0.5)(rgb)[0].roi())
    m = align_matrix(plate_lm, res, "whole_face")
    glasses = align_image(label.mask("glasses"), m, res) > 0.5
    assert glasses.sum() > 500
    assert occ[glasses].mean() > 0.8  # the labelled frames and lenses are held out
    assert (occ > 0.5).sum() < 1.6 * glasses.sum()  # and not much more than them


@pytest.mark.parametrize(("name", "frame"), [("fr_biden.jpg", 0), ("fr_obama.jpg", 0), ("df_img3.jpg", 0),
                                             ("lp_source_s32.mp4", 112), ("lp_driving_d18.mp4", 30)])  # fmt: skip
def test_no_glasses_no_occluder(name: str, frame: int) -> None:
    """Eye bags, crow's feet and folds are the face's own: on faces without glasses nothing is held out, at
    beauty's working size and at twice it (de-age works larger)."""
    for scale in (1, 2):
        crop, lm = aligned(name, frame, scale)
        assert occluder_matte(crop, lm).max() == 0, scale


def rendered(label: Label, tmp: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    plate = str(media(label.media))
    frames = f"{label.frame}-{label.frame}"
    render(RenderConfig(plate=plate, out=str(tmp / "c.####.png"), matte=str(tmp / "m.####.png"), shot=tmp / "shot",
                        frames=frames, format="png16"), BeautyEffect())  # fmt: skip
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
    k = np.ones((5, 5), np.uint8)  # labels are drawn to ~2 px
    glasses = cv2.erode((label.mask("glasses") > 0.5).astype(np.uint8), k).astype(np.float32)
    mean, peak = occluder_change(plate, comp, glasses)
    assert mean <= 0.5 / 255 and peak <= 2 / 255, (255 * mean, 255 * peak)
    cover = skin_coverage(matte, label.skin())
    assert cover.outside < 0.02, cover  # the matte stays on skin
    assert cover.inside > 0.35, cover  # measured 42%; the goal (90%) is not met yet (see bench/RESULTS.md)


def test_one_steady_matte_per_track() -> None:
    """A frame whose detection drops out does not unmask the glasses: the track keeps one matte."""
    crop, lm = aligned("wan_animate_video.mp4", 54)
    occ = occluder_matte(crop, lm)
    none = np.zeros_like(occ)
    steady = track_occluders([occ, occ, none, occ, np.roll(occ, 2, axis=0)])
    assert steady is not None and steady[occ > 0.9].min() > 0.9
    assert track_occluders([none, none, occ]) is None  # most samples show none: no glasses
