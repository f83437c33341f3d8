"""Alignment to the canonical face and back, on real faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import media
from faceplate.align import FACE_TYPES, align_image, align_matrix, template, to_aligned, to_plate, unalign_image
from faceplate.analysis.faces import DETECTORS, Landmarker, interocular, roi_from_landmarks
from faceplate.errors import ConfigError
from faceplate.geometry import invert
from faceplate.media import open_plate


@pytest.fixture(scope="module")
def obama() -> tuple[np.ndarray, np.ndarray, Landmarker]:
    rgb = open_plate(media("fr_obama-1080p.jpg")).read(0, display=True)
    lmk = Landmarker()
    (det,) = DETECTORS.get("mediapipe")(1, 0.5)(rgb)
    return rgb, lmk(rgb, det.roi()), lmk  # type: ignore[return-value]


def test_template_is_symmetric_and_normalised() -> None:
    t = template()
    assert t.shape == (478, 2)
    np.testing.assert_allclose((t[33] + t[133]) / 2, [-0.5, 0.0], atol=1e-5)
    np.testing.assert_allclose((t[263] + t[362]) / 2, [0.5, 0.0], atol=1e-5)
    assert abs(t[1, 0]) < 1e-6 and abs(t[152, 0]) < 1e-6  # nose tip and chin on the midline
    assert t[152, 1] > t[1, 1] > 0  # chin below nose below the eyes


@pytest.mark.parametrize("ftype", list(FACE_TYPES))
def test_aligned_face_lands_on_the_template(obama: tuple[np.ndarray, np.ndarray, Landmarker], ftype: str) -> None:
    rgb, lm, lmk = obama
    res = 256
    m = align_matrix(lm, res, ftype)
    crop = align_image(rgb, m, res)
    assert crop.shape == (res, res, 3) and crop.dtype == np.uint8
    a = to_aligned(m, lm)
    eyes_r, eyes_l = (a[33, :2] + a[133, :2]) / 2, (a[263, :2] + a[362, :2]) / 2
    assert abs(eyes_r[1] - eyes_l[1]) < 0.02 * res  # upright
    assert np.all((a[:468, :2] > -0.1 * res) & (a[:468, :2] < 1.1 * res)) or ftype == "face"
    # re-measuring the landmarks on the aligned crop finds the same face
    again = lmk(crop, roi_from_landmarks(a))
    assert again is not None
    err = np.linalg.norm(to_plate(m, again)[:, :2] - lm[:, :2], axis=1).mean() / interocular(lm)
    assert err < 0.03, err


def test_face_types_nest(obama: tuple[np.ndarray, np.ndarray, Landmarker]) -> None:
    _, lm, _ = obama
    scales = [np.sqrt(abs(np.linalg.det(align_matrix(lm, 256, f)[:, :2]))) for f in ("face", "whole_face", "head")]
    assert scales[0] > scales[1] > scales[2]  # head shows the most around the face
    with pytest.raises(ConfigError, match="valid: face, whole_face, head"):
        align_matrix(lm, 256, "full")


def test_round_trip_back_to_plate_is_exact(obama: tuple[np.ndarray, np.ndarray, Landmarker]) -> None:
    rgb, lm, _ = obama
    # points: plate → aligned → plate
    m = align_matrix(lm, 512, "whole_face")
    np.testing.assert_allclose(to_plate(m, to_aligned(m, lm))[:, :2], lm[:, :2], atol=1e-3)
    np.testing.assert_allclose(invert(invert(m)), m, atol=1e-9)
    # pixels: crop at plate resolution and put it back; the face must not move (phase correlation)
    scale = np.sqrt(abs(np.linalg.det(m[:, :2])))
    res = int(512 / scale)
    m = align_matrix(lm, res, "whole_face")
    plate = rgb.astype(np.float32) / 255
    back = unalign_image(align_image(plate, m, res), m, plate.shape[:2])
    cover = unalign_image(np.ones((res, res), np.float32), m, plate.shape[:2], cv2.INTER_NEAREST) > 0
    ys, xs = np.nonzero(cover)
    y0, y1, x0, x1 = ys.min() + 16, ys.max() - 16, xs.min() + 16, xs.max() - 16
    g0 = cv2.cvtColor(plate[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    g1 = cv2.cvtColor(back[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    (dx, dy), _ = cv2.phaseCorrelate(g0.astype(np.float64), g1.astype(np.float64))
    assert np.hypot(dx, dy) < 0.5, (dx, dy)
    assert np.abs(g0 - g1).mean() < 0.01  # only resampling blur, no misplacement


def test_downscaled_crop_does_not_alias(obama: tuple[np.ndarray, np.ndarray, Landmarker]) -> None:
    rgb, lm, _ = obama
    small = align_image(rgb, align_matrix(lm, 64, "head"), 64)
    ref = cv2.resize(align_image(rgb, align_matrix(lm, 512, "head"), 512), (64, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(float) - ref.astype(float)).mean() < 4.0


def test_mesh_regions_match_mediapipe() -> None:
    """The region tables shipped in faceplate/data are MediaPipe's own (renders need not import mediapipe)."""
    from faceplate.ops.regions import mesh_regions, regions_from_mediapipe

    ours, theirs = mesh_regions(), regions_from_mediapipe()
    assert ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name])
