"""``--glasses auto`` on glasses the frame finder cannot see: d12's clear plastic rims and the thin frames of
fnp's man (eyes 24 px apart) are found by their bridge and rims; faces without glasses (low brows, wrinkles,
film grain) are not; a found track holds out the glasses round the lens pair fitted to its rims (not the
mesh's whole eyewear region), and a found frame's hold-out fades out on the skin beside it (no seam)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceplate.align import align_image, align_matrix, to_aligned
from faceplate.effects.base import AlignedFace
from faceplate.effects.beauty import BeautyEffect
from faceplate.effects.deage import DeageEffect, DeageSettings
from faceplate.metrics import SEAM_MAX, occluder_change, seam_score
from faceplate.ops.eyewear import eyewear_matte
from faceplate.ops.glasses import (
    BRIDGE,
    clear_frames,
    glasses_cues,
    glasses_matte,
    track_wears_glasses,
    wears_glasses,
)
from faceplate.ops.occluders import occluder_matte, track_occluders
from faceplate.ops.regions import eye_distance
from faceplate.render.tracks import held_out
from labels import load_labels
from test_occluders import aligned, eroded, labelled_face, rendered


def labelled_aligned(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The labelled face of ``name`` aligned as beauty aligns it: (crop (R, R, 3) float32, landmarks)."""
    (label,) = load_labels(name)
    rgb, lm = labelled_face(label)
    res = BeautyEffect().resolution(eye_distance(lm))
    m = align_matrix(lm, res, "whole_face")
    crop = np.clip(align_image(rgb.astype(np.float32) / 255, m, res), 0, 1).astype(np.float32)
    return crop, to_aligned(m, lm).astype(np.float32)


@pytest.mark.parametrize(("name", "frame"), [("lp_driving_d12.mp4", 0), ("lp_driving_d12.mp4", 24),
                                             ("lp_driving_d12.mp4", 120)])  # fmt: skip
def test_clear_glasses_are_found(name: str, frame: int) -> None:
    """d12's clear rims: the dark-frame finder sees none, the bridge across the nose (and at 120, with brows
    raised, the rims round both eyes) say glasses."""
    crop, lm = aligned(name, frame)
    assert occluder_matte(crop, lm).max() == 0  # the dark-frame finder alone misses them
    cos_yaw, depth, _ = glasses_cues(crop, lm)
    assert cos_yaw > 0.95 and depth > 0.5 * BRIDGE
    assert wears_glasses(crop, lm) is True


def test_small_glasses_are_found() -> None:
    """fnp's man, eyes 24 px apart in the plate (held out from the tuning: a check): found."""
    crop, lm = labelled_aligned("fnp_video_0090")
    assert occluder_matte(crop, lm).max() == 0
    assert wears_glasses(crop, lm) is True
    assert glasses_matte(crop, lm).max() == 1  # so the glasses matte holds them out


@pytest.mark.parametrize(("name", "frame"), [("lp_driving_d20.mp4", 40), ("lp_driving_d20.mp4", 150),
                                             ("lp_driving_d18.mp4", 30), ("fr_obama-1080p.jpg", 0),
                                             ("fr_biden.jpg", 0), ("fr_two_people.jpg", 0)])  # fmt: skip
def test_no_false_glasses(name: str, frame: int) -> None:
    """Low brows (d20, its glabella crease as deep as a bridge), a brow line just above the nose (Obama, d18),
    deep wrinkles (Biden): no glasses, the brows' lower edge is not a bridge."""
    crop, lm = aligned(name, frame)
    assert wears_glasses(crop, lm) is not True, glasses_cues(crop, lm)


def test_turned_faces_are_not_judged() -> None:
    """A track's verdict counts only its faces frontal enough to judge, and needs half of them."""
    assert track_wears_glasses([True, None, None]) is True
    assert track_wears_glasses([None, None]) is False
    assert track_wears_glasses([True, False, False]) is False


def test_auto_holds_out_the_fitted_lenses_of_a_track_with_clear_glasses() -> None:
    """``held_out(glasses=None)``: for d12 (found by bridge and rims) the glasses round the lens pair fitted to
    its rims, well inside the mesh's eyewear region; nothing for a face without glasses; the finder's own
    frames (not the wider region) for dark frames."""
    crop, lm = aligned("lp_driving_d12.mp4", 0)
    face = AlignedFace(0, 0, crop, lm, eye_distance(lm))
    held = held_out([face])
    fitted = clear_frames(crop, lm)
    region = eyewear_matte(lm, crop.shape[:2])
    assert held is not None and held[fitted > 0.5].min() > 0.99
    assert (held > 0.5).sum() < 0.8 * (region > 0.5).sum()
    crop, lm = aligned("lp_driving_d18.mp4", 30)
    assert held_out([AlignedFace(0, 0, crop, lm, eye_distance(lm))]) is None
    crop, lm = aligned("wan_animate_video.mp4", 54)
    dark = held_out([AlignedFace(0, 0, crop, lm, eye_distance(lm))])
    assert dark is not None and (dark > 0.5).sum() < 0.8 * (eyewear_matte(lm, crop.shape[:2]) > 0.5).sum()


@pytest.mark.parametrize("name", ["lp_driving_d12_0000", "lp_driving_d12_0024", "lp_driving_d12_0120"])
def test_fitted_lenses_hold_out_the_labelled_clear_frames(name: str) -> None:
    """d12's clear frames (tuning frames): the glasses matte, round the lens pair fitted to the rims, holds out
    nearly all the labelled frames and lenses (2 px in from the label's edge: measured 98.0-100%; 0120's
    wayfarer corners lie outside the fitted outline) and about 40-50% of the visible skin the mesh's eyewear
    region took (measured 10-16% of it against 24-34%)."""
    (label,) = load_labels(name)
    rgb, lm = labelled_face(label)
    found = glasses_matte(rgb.astype(np.float32) / 255, lm)
    assert (found[eroded(label.mask("glasses"))] > 0.5).mean() > 0.97
    skin = label.skin() > 0.5
    taken, mesh = (found[skin] > 0.5).mean(), (eyewear_matte(lm, rgb.shape[:2])[skin] > 0.5).mean()
    assert taken < 0.55 * mesh, (taken, mesh)


def test_found_frames_fade_out_on_the_skin() -> None:
    """The finder's frames are held out whole, then the hold-out falls smoothly over >= 0.06 eye distances
    (a 1 px fall there was a 4-5/255 seam in de-age on wan 0018/0024)."""
    crop, lm = aligned("wan_animate_video.mp4", 24)
    iod = eye_distance(lm)
    occ = glasses_matte(crop, lm)
    held = track_occluders([occ], iod)
    assert held is not None and held[occ > 0.5].min() > 0.99
    steepest = max(np.abs(np.diff(held, axis=a)).max() for a in (0, 1))
    assert steepest < 1 / (0.06 * iod), (steepest, iod)
    solid = (held > 0.98).astype(np.uint8)
    edge = solid.sum() - cv2.erode(solid, np.ones((3, 3), np.uint8)).sum()  # px along the solid part's edge
    fade = ((held > 0.02) & (held <= 0.98)).sum()
    assert fade / edge > 0.04 * iod, (fade / edge, iod)  # a fade all round, as wide as 0.04 iod on average


def test_auto_render_leaves_clear_glasses_alone(tmp_path: Path) -> None:
    """``--glasses auto`` (the default) on d12's clear frames: the render leaves them alone (it changed them by
    0.5 mean / 12 max in 1/255 before they were found) and still retouches the rest of the skin."""
    (label,) = load_labels("lp_driving_d12_0000")
    plate, comp, matte = rendered(label, tmp_path)
    mean, peak = occluder_change(plate, comp, eroded(label.mask("glasses")).astype(np.float32))
    assert mean <= 0.5 / 255 and peak <= 2 / 255, (255 * mean, 255 * peak)
    assert (matte[label.skin() > 0.5] > 0.5).mean() > 0.45


@pytest.mark.slow
def test_deage_fades_in_beside_found_frames(tmp_path: Path) -> None:
    """De-age (``--years 20``) on wan 0024: the found frames stay untouched and the change fades in on the skin
    under them (seam 5.2/255 there when the hold-out ended in 1 px; SEAM_MAX 4)."""
    (label,) = load_labels("wan_animate_video_0024")
    rgb, comp, matte = rendered(label, tmp_path, effect=DeageEffect(DeageSettings(years=20)))
    mean, peak = occluder_change(rgb, comp, eroded(label.mask("glasses")).astype(np.float32))
    assert mean <= 0.5 / 255 and peak <= 2 / 255, (255 * mean, 255 * peak)
    seam = seam_score(rgb, comp, matte, label.skin())
    assert seam.step <= SEAM_MAX, (seam.step_255, seam.x, seam.y)


def test_glasses_are_read_against_the_measured_landmarks() -> None:
    """On a fast head the smoothed landmarks trail the face (d12: up to ~0.1 eye distances); the bridge and
    rims are read against the landmarks measured on the frame (``seen``), the hold-out drawn from the samples."""
    crop, lm = aligned("lp_driving_d12.mp4", 0)
    iod = eye_distance(lm)
    trailing = lm.copy()
    trailing[:, 0] -= 0.06 * iod  # a smoothed track trailed d12's face by 0.03-0.25 iod at frames 140-164
    lagged = AlignedFace(0, 0, crop, trailing, iod)
    assert wears_glasses(crop, trailing) is not True  # read there, the bridge is missed
    held = held_out([lagged], seen=[AlignedFace(0, 0, crop, lm, iod)])
    assert held is not None and held[eyewear_matte(trailing, crop.shape[:2]) > 0.99].min() > 0.99
