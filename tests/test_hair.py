"""Hair alpha and grey-hair recolour on real head crops (the crop de-age ``--hair`` works in)."""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
import pytest

from conftest import media
from faceplate.align import align_image, align_matrix, to_aligned
from faceplate.analysis.faces import DETECTORS, Landmarker
from faceplate.analysis.segmentation import PersonSegmenter
from faceplate.media import open_plate
from faceplate.ops.filters import gauss, luma
from faceplate.ops.hair import darken_salt, hair_alpha, hanging_locks, recolour_hair, salt_and_pepper, salt_gate
from faceplate.ops.regions import eye_distance
from faceplate.ops.skin import ycbcr

Crop = tuple[np.ndarray, np.ndarray, np.ndarray, float]


@cache
def head_crop(name: str, frame: int = 0) -> Crop:
    """(image (R, R, 3) in [0, 1], aligned landmarks, person mask (R, R), eye distance) as de-age sizes it."""
    with open_plate(media(name)) as p:
        rgb = p.read(frame, display=True)
    lm = Landmarker()(rgb, DETECTORS.get("mediapipe")(1, 0.5)(rgb)[0].roi())
    r = int(np.clip(round(min(float(np.linalg.norm(lm[263, :2] - lm[33, :2])), 72.0) * 4.8 / 32) * 32, 128, 768))
    m = align_matrix(lm, r, "head")
    img = np.clip(align_image(rgb.astype(np.float32) / 255, m, r), 0, 1).astype(np.float32)
    alm = to_aligned(m, lm).astype(np.float32)
    seg = PersonSegmenter()
    person = seg(np.round(img * 255).astype(np.uint8))
    seg.close()
    return img, alm, person, eye_distance(alm)


def saturation(img: np.ndarray) -> np.ndarray:
    c = ycbcr(img)
    return np.asarray(np.hypot(c[..., 1], c[..., 2]) / np.maximum(c[..., 0], 0.05))


def test_hair_alpha_is_soft_at_the_rim_and_leaves_skin_and_backdrop_alone() -> None:
    img, lm, person, iod = head_crop("fr_biden.jpg")  # white hair, a yellow and blue curtain behind
    alpha = hair_alpha(img, lm, person, iod)
    assert alpha.shape == img.shape[:2] and alpha.dtype == np.float32
    assert alpha.min() >= 0 and alpha.max() <= 1
    widths = []  # from the backdrop down into the hair over the top of the head: 0.1 → 0.9
    cx = int(lm[10, 0])
    for x in range(cx - int(0.8 * iod), cx + int(0.8 * iod)):
        col = alpha[:, x]
        inside = int(np.argmax(col > 0.9))
        if inside > 0:
            widths.append(int(np.argmax(col[:inside][::-1] < 0.1)))
    assert len(widths) > iod and np.median(widths) >= 3, np.median(widths)  # soft, not 0 → 1 in 2 px
    assert (alpha > 0.9).sum() > iod * iod  # and there is a body of hair
    forehead = alpha[int(lm[10, 1] - 0.35 * iod) : int(lm[10, 1]), int(cx - 0.3 * iod) : int(cx + 0.3 * iod)]
    assert forehead.max() < 0.02  # bare skin between the mesh top and the hairline
    backdrop = alpha[person < 0.02]
    assert np.percentile(backdrop, 90) < 0.02 and np.percentile(backdrop, 99) < 0.2


def test_recolour_darkens_white_hair_keeps_its_strands_and_its_wisps() -> None:
    img, lm, person, iod = head_crop("fr_biden.jpg")
    alpha = hair_alpha(img, lm, person, iod)
    out = recolour_hair(img, alpha, 1.0, iod=iod)
    y0, y1 = luma(img), luma(out)
    hair = alpha > 0.7
    assert 1 - y1[hair].mean() / y0[hair].mean() > 0.35  # much darker
    high = lambda y: y - gauss(y, 0.05 * iod)  # noqa: E731
    assert high(y1)[hair].std() > 0.7 * high(y0)[hair].std()  # strands and highlights kept: no flat cap
    assert saturation(out)[hair].mean() > saturation(img)[hair].mean() + 0.1  # a colour, not a darker grey
    rim = (alpha > 0.1) & (alpha < 0.7) & (person < 0.5)  # wisps beyond the person mask
    white = rim & (y0 > 0.7) & (saturation(img) < 0.15)
    assert white.sum() > 50
    assert y1[white].mean() < 0.85 * y0[white].mean()  # darkened too, not left standing white
    still = rim & (y1 > 0.7) & (saturation(out) < 0.15)
    assert still.sum() < 0.25 * white.sum()
    np.testing.assert_array_equal(recolour_hair(img, alpha, 0.0, iod=iod), img)
    np.testing.assert_array_equal(out[alpha == 0], img[alpha == 0])  # nothing moves off the matte


def test_hair_leaves_a_grey_wall_beside_dark_hair_alone() -> None:
    img, lm, person, iod = head_crop("lp_driving_d18.mp4", 30)  # dark hair against a plain grey wall
    alpha = hair_alpha(img, lm, person, iod)
    wall = cv2.erode((person < 0.05).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    wall &= cv2.dilate((person > 0.5).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0  # 4 px band round the head
    assert wall.sum() > 300
    assert np.percentile(alpha[wall], 90) < 0.05 and np.percentile(alpha[wall], 99) < 0.2
    out = recolour_hair(img, alpha, 1.0, iod=iod)
    assert np.abs(out - img).max() < 0.02  # dark hair is not grey: nothing to recolour


@pytest.mark.parametrize("name, frame", [("lp_source_s32.mp4", 90), ("lp_driving_d12.mp4", 30)])
def test_pigmented_hair_barely_changes(name: str, frame: int) -> None:
    img, lm, person, iod = head_crop(name, frame)  # ash blonde; wavy reddish brown
    alpha = hair_alpha(img, lm, person, iod)
    hair = alpha > 0.7
    assert hair.sum() > iod * iod
    y0, y1 = luma(img)[hair], luma(recolour_hair(img, alpha, 1.0, iod=iod))[hair]
    assert abs(1 - y1.mean() / y0.mean()) < 0.07


def test_salt_and_pepper_hair_darkens_strand_by_strand() -> None:
    img, lm, person, iod = head_crop("fr_obama.jpg")  # short black hair with many grey strands
    alpha = hair_alpha(img, lm, person, iod)
    salt, pepper = salt_and_pepper(img, alpha, iod)
    assert salt_gate(salt, pepper, alpha) > 0.9
    out = recolour_hair(img, alpha, 1.0, iod=iod)
    hair = alpha > 0.7
    salt_after, _ = salt_and_pepper(out, alpha, iod)
    assert salt_after[hair].mean() < 0.5 * salt[hair].mean()  # most grey strands gone (0.59 → 0.21 here)
    y0, y1 = luma(img), luma(out)
    dark = hair & (y0 < np.percentile(y0[hair], 20))
    assert np.abs(y1[dark] - y0[dark]).mean() < 0.03  # the dark strands stay as they are
    high = lambda y: y - gauss(y, 0.05 * iod)  # noqa: E731
    assert high(y1)[hair].std() > 0.4 * high(y0)[hair].std()  # still strands, not a flat cap
    backdrop = person < 0.05
    assert np.abs(darken_salt(img, alpha, 1.0, iod) - img)[backdrop].max() < 3 / 255  # the window stays


@pytest.mark.parametrize(
    "name, frame", [("fr_obama2.jpg", 0), ("fr_biden.jpg", 0), ("lp_source_s32.mp4", 90), ("lp_driving_d18.mp4", 30)]
)
def test_salt_and_pepper_is_not_seen_in_dark_blonde_or_white_hair(name: str, frame: int) -> None:
    img, lm, person, iod = head_crop(name, frame)  # dark with highlights; white; ash blonde; dark brown
    alpha = hair_alpha(img, lm, person, iod)
    salt, pepper = salt_and_pepper(img, alpha, iod)
    assert salt_gate(salt, pepper, alpha) == 0.0
    np.testing.assert_array_equal(darken_salt(img, alpha, 1.0, iod), img)


def test_hanging_locks_follow_a_lock_down_from_the_hair_not_a_forehead_line() -> None:
    """A synthetic forehead (luma 0.6) under hair (rows 0-19): a dark lock (luma 0.45) hanging down from the hair
    27° off vertical, as skin-coloured as the skin (``skin`` says skin on it), is found to its tip; a dark
    line across the forehead just as dark, a vertical dark streak not touching the hair and rows below ``rows``
    are not, nor a side of the forehead in shade past the hair's edge."""
    iod = 100.0
    y = np.full((120, 200), 0.6, np.float32)
    skin = np.ones((120, 200), np.float32)
    y[:20], skin[:20] = 0.2, 0.0  # the hair
    for r in range(20, 50):  # the lock: 4 px wide, drifting 0.5 px right a row (30 px: within LOCK_REACH)
        c = 40 + (r - 20) // 2
        y[r, c : c + 4] = 0.45
    y[45:48, 100:190] = 0.45  # a forehead line across
    y[35:60, 170:173] = 0.45  # a vertical streak 15 px below the hair
    y[20:, :30] = 0.48  # the forehead's side in shade, from the hair down: only its top 0.1 iod (the hair's edge)
    got = hanging_locks(y, skin, iod, rows=100)
    assert got[32:, :30].max() == 0
    assert got[20:50, 40:60].sum() == 30 * 4 and got[49].sum() == 4  # the whole lock, to its tip at row 49
    assert got[45:48, 100:165].max() == 0 and got[35:60, 170:173].max() == 0
    assert got[:20].max() == 0  # the hair itself is not a lock over skin
    assert hanging_locks(y, skin, iod, rows=40)[40:].max() == 0  # below ``rows``: 0
