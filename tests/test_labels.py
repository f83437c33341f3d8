"""The hand-labelled masks in tests/data/labels are well-formed and sit on the frames they name."""

from __future__ import annotations

import json
from itertools import groupby

import numpy as np
import pytest

from conftest import media
from faceplate.analysis.faces import DETECTORS
from faceplate.geometry import iou
from faceplate.media import open_plate
from labels import CLASSES, LABELS, Label, load_labels

ALL = load_labels()


def test_enough_labels() -> None:
    assert len(ALL) >= 13
    assert {lab.media for lab in ALL} >= {"wan_animate_video.mp4", "lp_driving_d12.mp4", "fr_short_hamilton_clip.mp4"}
    for cls in ("glasses", "hair", "hand", "mic"):
        assert any(lab.regions[cls] for lab in ALL), f"no label has {cls}"


@pytest.mark.parametrize("lab", ALL, ids=lambda lab: lab.name)
def test_well_formed(lab: Label) -> None:
    raw = json.loads((LABELS / f"{lab.name}.json").read_text())  # the file is named after its media and frame
    assert set(raw) == {"media", "frame", "size", "face_box", "note", "regions"}
    assert set(raw["regions"]) <= set(CLASSES)
    assert lab.note
    w, h = lab.size
    x0, y0, x1, y1 = lab.face_box
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    for cls, polys in lab.regions.items():
        for poly in polys:
            pts = np.asarray(poly)
            assert pts.ndim == 2 and pts.shape[1] == 2 and len(pts) >= 3, (cls, poly)
            assert (pts >= -0.5).all() and (pts[:, 0] <= w - 0.5).all() and (pts[:, 1] <= h - 0.5).all(), cls
    skin, occ, face = lab.skin(), lab.occluders(), lab.mask("skin")
    assert skin.shape == (h, w) and skin.dtype == np.float32 and set(np.unique(skin)) <= {0.0, 1.0}
    assert skin.sum() > 0.3 * face.sum() > 0, "skin minus exclusions and occluders is (nearly) empty"
    assert not (skin * occ).any() and not (skin * lab.mask("exclude")).any()
    # everything labelled lies in or near the face: the face box grown by 60 %
    ys, xs = np.nonzero(face + occ)
    bw, bh = x1 - x0, y1 - y0
    assert xs.min() >= x0 - 0.6 * bw and xs.max() <= x1 + 0.6 * bw
    assert ys.min() >= y0 - 0.6 * bh and ys.max() <= y1 + 0.6 * bh


@pytest.mark.slow
def test_frames_match_media() -> None:
    """Size is the plate's real frame size, and the detector finds a face on each labelled face (frame index)."""
    detect = DETECTORS.get("mediapipe")(1, 0.5)
    tiled = None
    for name, group in groupby(sorted(ALL, key=lambda lab: (lab.media, lab.frame)), key=lambda lab: lab.media):
        labs = list(group)
        with open_plate(media(name)) as plate:
            assert {lab.size for lab in labs} == {(plate.info.width, plate.info.height)}, name
            for lab in labs:
                rgb = plate.read(lab.frame, display=True)
                box = np.asarray(lab.face_box, np.float64)
                best = max((iou(d.box, box) for d in detect(rgb)), default=0.0)
                if best < 0.5:  # small crowd faces: the tiled detector
                    tiled = tiled or DETECTORS.get("mediapipe")(2, 0.5)
                    best = max([best, *(iou(d.box, box) for d in tiled(rgb))])
                assert best >= 0.5, f"{lab.name}: no detected face on the labelled face box (IoU {best:.2f})"


def test_mask_rasterisation() -> None:
    """Polygons are in pixel-centre coordinates: a square from (2, 3) to (11, 12) covers 10 x 10 pixels."""
    square = [[2.0, 3.0], [11.0, 3.0], [11.0, 12.0], [2.0, 12.0]]
    lab = Label("x.png", 0, (20, 16), (2, 3, 11, 12), "synthetic", {"skin": [square], "hair": [square[:3]]})
    m = lab.mask("skin")
    assert m.shape == (16, 20) and m.dtype == np.float32 and m.sum() == 100 and m[3:13, 2:12].all()
    assert lab.occluders().sum() > 0 and lab.skin().sum() == 100 - lab.occluders().sum()
    with pytest.raises(ValueError):
        lab.mask("beard")
