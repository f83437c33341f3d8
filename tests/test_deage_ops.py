"""De-age's pure ops: deep lines filled with the skin's own grain put back, hollows lifted, spots, tone."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import media
from faceplate.align import align_image, align_matrix, to_aligned
from faceplate.analysis.faces import DETECTORS, Landmarker
from faceplate.effects.deage import near_clipped
from faceplate.media import open_plate
from faceplate.ops.filters import blur, gauss, luma
from faceplate.ops.regions import eye_distance, feather, skin_region
from faceplate.ops.volume import age_spots, even_tone, fill_hollows, hollows, moves, remove_spots
from faceplate.ops.wrinkles import (
    evenly_lit,
    flatten_mid,
    light_evenness,
    line_texture,
    pore_band,
    remove_wrinkles,
    restore_pores,
    valley_map,
)

R = 256
Face = tuple[np.ndarray, np.ndarray, np.ndarray, float]


@pytest.fixture(scope="module")
def biden() -> Face:
    """(aligned crop (R, R, 3), landmarks, soft skin matte, iod) of a 70-year-old face: deep forehead lines."""
    rgb = open_plate(media("fr_biden.jpg")).read(0, display=True)
    lm = Landmarker()(rgb, DETECTORS.get("mediapipe")(1, 0.5)(rgb)[0].roi())
    assert lm is not None
    m = align_matrix(lm, R, "whole_face")
    alm = to_aligned(m, lm)
    crop = np.clip(align_image(rgb.astype(np.float32) / 255, m, R), 0, 1).astype(np.float32)
    skin = feather(skin_region(alm, (R, R)), 0.035 * eye_distance(alm))
    return crop, alm, skin, eye_distance(alm)


def energy(band: np.ndarray, mask: np.ndarray) -> float:
    return float((band * band * mask).sum() / mask.sum())


def wrinkle_band(img: np.ndarray, iod: float) -> np.ndarray:
    y = luma(img)
    return gauss(y, 0.8) - blur(y, 0.06 * iod)


def test_lines_filled_pores_kept_on_a_real_face(biden: Face) -> None:
    crop, lm, skin, iod = biden
    out, lines = remove_wrinkles(crop, skin, iod, 1.0)
    out = restore_pores(out, line_texture(crop, lines, skin, iod), skin, 1.0)
    forehead = np.zeros((R, R), np.float32)
    forehead[int(lm[10, 1]) : int(lm[[105, 334], 1].min() - 0.1 * iod), int(lm[105, 0]) : int(lm[334, 0])] = 1
    forehead *= skin > 0.99
    assert forehead.sum() > 300 and (lines * forehead).sum() / forehead.sum() > 0.2  # the forehead lines are found
    inside = (lines > 0.5) & (skin > 0.99)
    assert energy(wrinkle_band(out, iod), inside) < 0.5 * energy(wrinkle_band(crop, iod), inside)  # lines drop
    core = (skin > 0.99).astype(np.float32)
    assert energy(pore_band(luma(out)), core) > 0.7 * energy(pore_band(luma(crop)), core)  # no plastic skin
    np.testing.assert_array_equal(out[skin == 0], crop[skin == 0])  # off the skin nothing changes
    again, _ = remove_wrinkles(crop, skin, iod, 1.0)
    np.testing.assert_array_equal(again, remove_wrinkles(crop, skin, iod, 1.0)[0])  # deterministic: no noise


def test_synthetic_line_found_and_refilled_with_grain() -> None:
    rng = np.random.default_rng(0)
    y = (0.6 + 0.02 * rng.standard_normal((R, R))).astype(np.float32)  # skin with pore grain
    iod = 72.0
    line = np.exp(-(((np.arange(R) - 128) / 2.5) ** 2))[:, None] * np.ones((1, R))
    img = np.repeat((y - 0.12 * line.astype(np.float32))[..., None], 3, 2)
    skin = np.ones((R, R), np.float32)
    lines = valley_map(luma(img), skin, iod)
    assert lines[128, 40:-40].min() > 0.9 and lines[40, 40:-40].max() < 0.1  # the line, not the grain
    out, w = remove_wrinkles(img, skin, iod, 1.0)
    out = restore_pores(out, line_texture(img, w, skin, iod), skin, 1.0)
    assert abs(float(luma(out)[126:131, 40:-40].mean()) - 0.6) < 0.02  # the valley is filled to the skin's level
    grain = float(pore_band(luma(out))[124:133, 40:-40].std())
    assert grain > 0.6 * float(pore_band(y)[40:60].std())  # and carries grain, not a blur


def test_flatten_mid_keeps_off_skin_and_lowers_crinkles(
    biden: tuple[np.ndarray, np.ndarray, np.ndarray, float],
) -> None:
    crop, _, skin, iod = biden
    out = flatten_mid(crop, skin, iod, 0.8)
    core = (skin > 0.99).astype(np.float32)
    assert energy(wrinkle_band(out, iod), core) < 0.7 * energy(wrinkle_band(crop, iod), core)
    np.testing.assert_array_equal(out[skin == 0], crop[skin == 0])


def test_hollows_only_lifted(biden: Face) -> None:
    crop, lm, skin, iod = biden
    where = hollows(lm, (R, R), iod)
    assert (
        where[int(lm[1, 1]), int(lm[1, 0])] < 0.05 and where[int(lm[468, 1]), int(lm[468, 0])] < 0.5
    )  # not nose, iris
    out = fill_hollows(crop, skin, where, iod, 1.0)
    assert (luma(out) >= luma(crop) - 1e-5).all()  # shadows lifted, nothing darkened
    lifted = luma(out) - luma(crop)
    assert lifted[where * skin > 0.5].mean() > 0.003
    np.testing.assert_array_equal(out[skin == 0], crop[skin == 0])
    bright = even_tone(crop, skin, iod, 0.04, 0.0)
    assert float(luma(bright)[skin > 0.99].mean()) > float(luma(crop)[skin > 0.99].mean()) + 0.01


def test_age_spot_found_and_removed_a_line_is_not_a_spot() -> None:
    iod = 72.0
    yy, xx = np.mgrid[:R, :R].astype(np.float32)
    spot = np.exp(-((xx - 80) ** 2 + (yy - 80) ** 2) / (2 * 3.0**2))
    line = np.exp(-(((yy - 180) / 1.5) ** 2)) * ((xx > 40) & (xx < 220))
    img = np.repeat((0.6 - 0.1 * spot - 0.1 * line)[..., None], 3, 2).astype(np.float32)
    skin = np.ones((R, R), np.float32)
    spots = age_spots(img, skin, iod)
    assert spots[80, 80] > 0.8 and spots[180, 100:160].max() < 0.3
    out = remove_spots(img, spots, iod, 1.0)
    assert luma(out)[80, 80] > luma(img)[80, 80] + 0.05


def test_volume_moves_hold_eyes_and_mouth_line(biden: Face) -> None:
    _, lm, _, iod = biden
    pts, mv, anchors = moves(lm, iod, 1.0)
    assert pts.shape == mv.shape and anchors.shape[1] == 2
    assert np.abs(mv).max() <= 0.02 * iod  # tiny
    for i in (13, 14, 61, 291, 33, 133, 362, 263):
        assert np.min(np.linalg.norm(anchors - lm[i, :2], axis=1)) < 1e-6  # held


def test_a_side_lights_shadow_edge_is_kept_an_age_dip_beside_it_filled() -> None:
    """A side light: the left half 0.3 darker, its edge 0.03 iod soft (a nose's side shadow), with a hollow on
    each side and a crease on the lit one. The dips are filled; the shadow's side of the edge is not lifted (it
    was by 0.066 hollows, 0.15 lines: a bright band down the shadow side of the nose)."""
    iod = 72.0
    yy, xx = np.mgrid[:R, :R].astype(np.float32)
    light = 0.5 + 0.3 / (1 + np.exp(-(xx - 128) / (0.03 * iod)))
    hollows_ = sum(0.05 * np.exp(-((xx - cx) ** 2 + (yy - 128) ** 2) / (2 * (0.12 * iod) ** 2)) for cx in (64, 190))
    crease = 0.1 * np.exp(-(((yy - 200) / 2.0) ** 2)) * ((xx > 150) & (xx < 230))
    img = np.repeat((light - hollows_ - crease)[..., None], 3, 2).astype(np.float32)
    skin = np.ones((R, R), np.float32)
    edge = (xx > 100) & (xx < 127) & (np.abs(yy - 40) < 20)  # the shadow's side of the edge, away from the dips
    lifted = luma(fill_hollows(img, skin, skin, iod, 0.75)) - luma(img)
    assert lifted[edge].max() < 0.02 and min(lifted[128, 64], lifted[128, 190]) > 0.02  # the hollows, not the light
    evened = luma(even_tone(img, skin, iod, 0.0, 0.1)) - luma(img)
    assert np.abs(evened[edge]).max() < 0.003
    out, _ = remove_wrinkles(img, skin, iod, 1.0)
    filled = luma(out) - luma(img)
    assert filled[edge].max() < 0.01 and filled[200, 170:210].mean() > 0.06  # the crease, not the shadow's edge


def test_light_evenness_tells_a_side_light_from_an_even_one() -> None:
    """The same face's two sides under one light: a side light (one half 0.6x the other) reads 0 and keeps its
    shadow's edge; an even light reads 1, and there a dip is filled whole, not only up to its darker side."""
    iod = 72.0
    yy, xx = np.mgrid[:R, :R].astype(np.float32)
    skin = np.ones((R, R), np.float32)
    side = (0.5 + 0.3 / (1 + np.exp(-(xx - 128) / (0.03 * iod)))).astype(np.float32)
    lit = light_evenness(side, skin, 128.0, iod)
    assert lit.max() < 0.05
    # even light: a hollow beside a bright ridge on one side (a cheekbone): filled to the skin's broad level
    ridge = 0.1 * np.exp(-(((np.abs(xx - 128) - 50) / (0.06 * iod)) ** 2))
    hollow = 0.06 * np.exp(-((xx - 64) ** 2 + (yy - 128) ** 2) / (2 * (0.12 * iod) ** 2))
    even = np.float32(0.6) + ridge - hollow - hollow[:, ::-1]  # both sides of the face alike
    assert light_evenness(even.astype(np.float32), skin, 128.0, iod).min() > 0.95
    img = np.repeat(even[..., None], 3, 2).astype(np.float32)
    ones = np.ones((R, R), np.float32)
    only_dip = luma(fill_hollows(img, skin, skin, iod, 0.75)) - luma(img)
    whole = luma(fill_hollows(img, skin, skin, iod, 0.75, ones)) - luma(img)
    assert whole[128, 64] > 1.05 * only_dip[128, 64] and whole[128, 64] > 0.02  # 0.044 vs 0.041
    # a side light's edge stays with the evenness passed in: 0 there, so the dip-only fill
    shade = np.repeat(side[..., None], 3, 2)
    edge = (xx > 100) & (xx < 127) & (np.abs(yy - 40) < 20)
    kept = luma(fill_hollows(shade, skin, skin, iod, 0.75, lit)) - luma(shade)
    assert kept[edge].max() < 0.02


def test_an_even_lights_shortcuts_match_the_general_path(biden: Face) -> None:
    """Under an even light (``evenly_lit``) the fills skip the shading floors they would not use: the same
    pictures as the general path (a light of 1 everywhere but one far corner pixel: within float rounding)."""
    img, lm, skin, iod = biden
    ones = np.ones(skin.shape, np.float32)
    almost = ones.copy()
    almost[0, 0] = 0.5  # not evenly lit: the general path, the same light everywhere that matters
    assert evenly_lit(ones) and not evenly_lit(almost) and not evenly_lit(None)
    far = np.ones(skin.shape, bool)
    far[:40, :40] = False  # the general path differs at the corner pixel and a blur's reach round it
    where = hollows(lm, skin.shape, iod)
    for op in (lambda lt: fill_hollows(img, skin, where, iod, 0.75, lt),
               lambda lt: even_tone(img, skin, iod, 0.02, 0.1, lt),
               lambda lt: remove_wrinkles(img, skin, iod, 1.0, light=lt)[0]):  # fmt: skip
        np.testing.assert_allclose(op(ones)[far], op(almost)[far], atol=1e-5)
    np.testing.assert_allclose(age_spots(img, skin, iod, ones)[far], age_spots(img, skin, iod, almost)[far], atol=1e-5)


@pytest.mark.parametrize("size", [256, 255, 165])
@pytest.mark.parametrize("sigma", [12.0, 25.0])
def test_pyramid_blur_is_centred_as_gauss(size: int, sigma: float) -> None:
    """The pyramid path of ``blur`` lands where ``gauss`` does (it used to shift (f - 1) / 2 px down-right)."""
    img = np.zeros((size, size), np.float32)
    img[size // 2, size // 2 - 5] = 1.0
    fast, exact = blur(img, sigma), gauss(img, sigma)
    ys, xs = np.mgrid[:size, :size]
    for w in (fast, exact):
        assert abs(float((w * ys).sum() / w.sum()) - size // 2) < 0.05
        assert abs(float((w * xs).sum() / w.sum()) - (size // 2 - 5)) < 0.05
    assert float(np.abs(fast - exact).max()) < 0.03 * float(exact.max())


def test_near_clipped_marks_blown_highlights_only() -> None:
    """A blown (all channels clipped) patch and ~0.06 iod round it are marked, fading to 0 further out;
    fair skin with only its red channel clipped is not a highlight."""
    iod = 100.0
    img = np.full((128, 128, 3), (0.8, 0.6, 0.5), np.float32)
    assert not near_clipped(img, iod).any()
    img[:, :, 0] = 1.0  # red clipped everywhere: fair skin, not a highlight
    assert not near_clipped(img, iod).any()
    img[50:60, 50:60] = 1.0
    near = near_clipped(img, iod)
    assert near[55, 55] == 1.0 and near[55, 64] == 1.0  # on it and 4 px (0.04 iod) off it
    assert near[55, 75] < 0.5 and near[55, 85] == 0.0 and near[5, 5] == 0.0
