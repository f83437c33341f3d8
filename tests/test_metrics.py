"""The compositor's measures (seams, occluders, skin coverage, background) on synthetic arrays and real renders,
and honest errors: a measure given an empty region raises MeasureError instead of reporting a figure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import media
from faceplate.align import align_image, align_matrix, to_aligned
from faceplate.analysis.faces import DETECTORS, Landmarker, interocular
from faceplate.analysis.segmentation import PersonSegmenter
from faceplate.config import RenderConfig
from faceplate.effects.base import AlignedFace
from faceplate.effects.beauty import BeautyEffect
from faceplate.effects.deage import DeageEffect, DeageSettings
from faceplate.media import open_plate
from faceplate.metrics import (
    SEAM_MAX,
    Coverage,
    MeasureError,
    background_change,
    measure,
    occluder_change,
    seam_score,
    skin_core,
    skin_coverage,
)
from faceplate.render import render
from faceplate.store import ShotStore

H = W = 160
YY, XX = np.mgrid[0:H, 0:W].astype(np.float32)


def _plate(grain: float = 1.5 / 255, seed: int = 0) -> np.ndarray:
    """Smooth skin-like plate (H, W, 3): a gentle gradient plus Gaussian grain."""
    base = np.stack([0.62 + 0.1 * XX / W, 0.45 + 0.05 * YY / H, 0.38 + 0 * XX], axis=2)
    return (base + np.random.default_rng(seed).normal(0, grain, (H, W, 3))).astype(np.float32)


def _ramp(pos: np.ndarray, width: float) -> np.ndarray:
    """Smoothstep 0 -> 1 over ``width`` px starting at pos = 0: a matte edge."""
    t = np.clip(pos / width, 0, 1)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def _comp(plate: np.ndarray, matte: np.ndarray, amount: float) -> np.ndarray:
    return (plate + amount * matte[..., None] * np.array([1.0, 0.9, 0.8], np.float32)).astype(np.float32)


# --- seam_score --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [8 / 255, 13 / 255, -10 / 255])
def test_hard_straight_seam_is_flagged(amount: float) -> None:
    plate = _plate()
    matte = _ramp(YY - 50, 4)  # the matte jumps 0 -> 1 over 4 px at y = 50..54
    s = seam_score(plate, _comp(plate, matte, amount), matte)
    assert s.seamed and s.step > SEAM_MAX, s
    assert 49 <= s.y <= 55, s  # found where it is
    assert s.edge_grad > 10 * s.inside_grad, s  # the change's steps sit on the matte edge


def test_tilted_seam_is_flagged() -> None:
    """The crop's edge runs at the face's roll: a seam 12 degrees off the pixel grid is found too."""
    plate = _plate(seed=1)
    matte = _ramp(np.cos(np.radians(12)) * (YY - 60) - np.sin(np.radians(12)) * (XX - 80), 4)
    s = seam_score(plate, _comp(plate, matte, 10 / 255), matte)
    assert s.seamed, s


def test_soft_feather_passes() -> None:
    """The same change feathered over 0.1 eye distance (an eye distance of 120 px: 12 px) is no seam."""
    plate = _plate()
    matte = _ramp(YY - 50, 12)
    s = seam_score(plate, _comp(plate, matte, 13 / 255), matte)
    assert not s.seamed and s.step < 1 / 255, s


def test_change_that_follows_a_real_edge_passes() -> None:
    """A real edge in the plate (cheek against a dark background), the matte and the change stopping on it."""
    plate = _plate(seed=2)
    plate = (plate * (0.35 + 0.65 * _ramp(YY - 50, 2))[..., None]).astype(np.float32)
    matte = _ramp(YY - 50, 2)
    s = seam_score(plate, _comp(plate, matte, 12 / 255), matte)
    assert not s.seamed, s


def test_texture_smoothing_under_a_hard_matte_passes() -> None:
    """A retouch that only smooths grain changes no local mean: a hard matte edge over it leaves no seam."""
    plate = _plate(grain=4 / 255, seed=3)
    matte = _ramp(YY - 50, 2)
    smooth = cv2.GaussianBlur(plate, (0, 0), 2.0)
    comp = (plate + (smooth - plate) * matte[..., None]).astype(np.float32)
    s = seam_score(plate, comp, matte)
    assert not s.seamed, s


def test_seam_outside_the_skin_is_not_looked_at() -> None:
    plate = _plate()
    matte = _ramp(YY - 50, 4)
    skin = (YY > 70).astype(np.float32)
    assert not seam_score(plate, _comp(plate, matte, 13 / 255), matte, skin).seamed


def test_seam_on_an_empty_matte_raises() -> None:
    plate = _plate()
    with pytest.raises(MeasureError, match="empty matte"):
        seam_score(plate, plate, np.zeros((H, W), np.float32))
    with pytest.raises(MeasureError, match="empty skin"):
        seam_score(plate, plate, _ramp(YY - 50, 4), np.zeros((H, W), np.float32))


# --- occluder_change, skin_coverage, background_change -----------------------------------------------------


def _disc(cx: float, cy: float, r: float) -> np.ndarray:
    return (((XX - cx) ** 2 + (YY - cy) ** 2) <= r * r).astype(np.float32)


def test_occluder_change() -> None:
    plate, hand = _plate(), _disc(60, 60, 20)
    comp = plate + 0.2 * (1 - hand)[..., None]  # everything but the hand changed: the hand is untouched
    assert occluder_change(plate, comp, hand) == (0.0, 0.0)
    comp = plate + 3 / 255 * hand[..., None]  # the edit leaked onto the hand
    mean, worst = occluder_change(plate, comp, hand)
    assert mean == pytest.approx(3 / 255, rel=1e-3) and worst == pytest.approx(3 / 255, rel=1e-3)
    assert mean * 255 > 0.5  # fails the goal (<= 0.5/255 mean)
    with pytest.raises(MeasureError, match="empty occluder mask"):
        occluder_change(plate, comp, np.zeros((H, W), np.float32))


def test_skin_coverage() -> None:
    skin = _disc(80, 80, 40)
    assert skin_coverage(skin, skin) == Coverage(1.0, 0.0)
    off_by_one = np.roll(skin, 1, axis=1)  # within the label's tolerance
    cov = skin_coverage(off_by_one, skin)
    assert cov.inside == 1.0 and cov.outside == 0.0, cov
    spill = _disc(80, 80, 50)  # the matte spills 10 px past the skin
    assert skin_coverage(spill, skin).outside > 0.2
    short = _disc(80, 80, 30)  # the matte misses a 10 px ring of skin
    cov = skin_coverage(short, skin)
    assert cov.inside < 0.9 and cov.outside == 0.0, cov
    with pytest.raises(MeasureError, match="empty skin label"):
        skin_coverage(skin, np.zeros((H, W), np.float32))
    with pytest.raises(MeasureError, match="empty matte"):
        skin_coverage(np.zeros((H, W), np.float32), skin)


def test_background_change() -> None:
    plate, person = _plate(), _disc(80, 80, 30)
    comp = plate + 0.1 * _disc(80, 80, 40)[..., None]  # person and a 10 px margin changed: within the margin
    assert background_change(plate, comp, person) == 0.0
    comp[5, 5] += 2 / 255  # one background pixel moved
    assert background_change(plate, comp, person) == pytest.approx(2 / 255, rel=1e-3)
    with pytest.raises(MeasureError, match="no background"):
        background_change(plate, comp, np.ones((H, W), np.float32))


# --- real renders ------------------------------------------------------------------------------------------

EFFECTS = {"beauty": BeautyEffect, "deage": lambda: DeageEffect(DeageSettings(years=20))}


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("metrics")


@pytest.fixture(scope="module")
def still(root: Path) -> Callable[[str, str], Arrays]:
    """``still(plate, effect)``: the still rendered (once per module) → plate, comp (H, W, 3), matte (H, W)."""
    done: dict[tuple[str, str], Arrays] = {}

    def get(plate: str, effect: str) -> Arrays:
        if (plate, effect) not in done:
            out = root / f"{Path(plate).stem}_{effect}"
            cfg = RenderConfig(plate=str(media(plate)), out=str(out / "c.png"), matte=str(out / "m.png"),
                               shot=root / f"{Path(plate).stem}.shot", format="png16")  # fmt: skip
            render(cfg, EFFECTS[effect]())
            done[(plate, effect)] = (open_plate(media(plate)).read(0)[..., :3],
                                     open_plate(out / "c.png").read(0)[..., :3],
                                     open_plate(out / "m.png").read(0)[..., 0])  # fmt: skip
        return done[(plate, effect)]

    return get


@pytest.mark.parametrize(
    ("plate", "effect"),
    [
        # the forehead runs past the aligned crop's top edge: the matte must feather out before it, not stop in
        # a straight hard line across changed skin
        pytest.param("df_img13.jpg", "beauty", marks=pytest.mark.slow),
        pytest.param("df_img13.jpg", "deage", marks=pytest.mark.slow),
        ("fr_obama.jpg", "deage"),  # wrinkles once read as glasses at de-age's larger crop: hard holes in the matte
    ],
)
def test_no_seam_on_a_real_face(still: Callable[[str, str], Arrays], plate: str, effect: str) -> None:
    s = seam_score(*still(plate, effect))
    assert not s.seamed, f"{plate} {effect}: seam of {s.step_255:.1f}/255 at ({s.x}, {s.y})"


@pytest.mark.slow
def test_background_of_a_real_render_is_untouched(still: Callable[[str, str], Arrays]) -> None:
    p, c, _ = still("fr_biden.jpg", "beauty")
    seg = PersonSegmenter()
    try:
        person = seg(np.ascontiguousarray(open_plate(media("fr_biden.jpg")).read(0, display=True)[..., :3]))
    finally:
        seg.close()
    assert 0.05 < (person > 0.5).mean() < 0.95
    assert background_change(p, c, person) < 1e-6


def test_measure_on_an_empty_matte_raises(still: Callable[[str, str], Arrays], root: Path) -> None:
    """``measure`` names the frame and why, instead of reporting a 100% band drop over no pixels."""
    still("fr_biden.jpg", "beauty")
    with ShotStore.open(root / "fr_biden.shot") as store, open_plate(media("fr_biden.jpg")) as plate:
        (track,) = store.tracks()
        faces = store.track_faces(track.id)
        with open_plate(root / "fr_biden_beauty" / "c.png") as comp:
            with pytest.raises(MeasureError, match="empty matte at frame 0"):
                measure(plate, comp, faces, lambda crop, lm: np.zeros(crop.shape[:2], np.float32))
            with pytest.raises(MeasureError, match=r"empty skin core at frame 0: the matte never reaches 0\.99"):
                measure(plate, comp, faces, lambda crop, lm: np.full(crop.shape[:2], 0.9, np.float32))
            with pytest.raises(MeasureError, match=r"empty skin core at frame 0: .* thinner than"):
                measure(plate, comp, faces, lambda crop, lm: _small_disc(crop.shape[:2]))
            m = measure(plate, comp, faces, lambda crop, lm: _small_disc(crop.shape[:2], 120))
            assert m.frames == 1 and np.isfinite(m.band_drop)  # a matte with a core measures


def _small_disc(shape: tuple[int, ...], r: int = 6) -> np.ndarray:
    h, w = shape[:2]
    return np.asarray(cv2.circle(np.zeros((h, w), np.float32), (w // 2, h // 2), r, (1.0,), -1), np.float32)


def test_skin_core_of_a_face_looking_up() -> None:
    """lp_driving_d12 frame 50 (laughing, looking up, clear glasses): the clip measure raised "empty skin
    core" there because the matte's old wide margins left no full-strength skin wider than the band filter's
    reach; the face shows plenty of cheek and forehead, so the matte was the bug. Its core here: 6856 px
    (384 px crop), 956 with the old margins (and none with the track's own skin model)."""
    with open_plate(media("lp_driving_d12.mp4")) as p:
        rgb = p.read(50, display=True)
    (det,) = DETECTORS.get("mediapipe")(1, 0.5)(rgb)
    lm = Landmarker()(rgb, det.roi())
    m = align_matrix(lm, 384, "whole_face")
    crop, alm = align_image(rgb.astype(np.float32) / 255, m, 384), to_aligned(m, lm).astype(np.float32)
    effect = BeautyEffect()
    face = AlignedFace(50, 0, crop, alm, interocular(alm))
    matte = effect.matte_for(effect.prepare([face]), crop, alm)
    assert skin_core(matte, interocular(alm)).sum() > 3000
