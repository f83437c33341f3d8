"""Hand-labelled region masks of real plate frames (tests/data/labels/*.json), as test ground truth.

Each file labels one face in one frame, in plate pixels (full-resolution frame, origin top-left, x right, y
down; pixel centres at integer coordinates, as cv2 draws them). ``regions`` maps a class to a list of polygons
(each a list of [x, y] points):

- ``skin``: the outer region of the retouchable facial skin (forehead to the hairline, temples, cheeks, nose,
  chin, jaw; not the neck or ears), possibly as several overlapping polygons;
- ``exclude``: eyes, brows, lips, nostrils, beard: not skin, not an occluder;
- occluders ``glasses`` (frames and lenses), ``hair`` (strands / fringe / hairline over the face, ~10 px
  around), ``hand`` (hands, fingers, a pen), ``mic`` (microphones) in or touching the face region.

The skin to cover is ``skin - exclude - occluders`` (:meth:`Label.skin`); the pixels an effect must leave alone
are :meth:`Label.occluders`. Skin polygons are drawn slightly inside the edges, occluders slightly outside.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

LABELS = Path(__file__).resolve().parent / "data" / "labels"
OCCLUDERS = ("glasses", "hair", "hand", "mic")
CLASSES = ("skin", "exclude", *OCCLUDERS)
SHIFT = 4  # cv2.fillPoly fractional bits: 1/16 px

Polygon = list[list[float]]


@dataclass(frozen=True)
class Label:
    """One labelled frame: ``size`` is (width, height), ``face_box`` (x0, y0, x1, y1), both in plate pixels."""

    media: str
    frame: int
    size: tuple[int, int]
    face_box: tuple[float, float, float, float]
    note: str
    regions: dict[str, list[Polygon]]

    @property
    def name(self) -> str:
        return f"{Path(self.media).stem}_{self.frame:04d}"

    def mask(self, *classes: str) -> NDArray[np.float32]:
        """(H, W) float32 in {0, 1}: the union of the polygons of ``classes``."""
        unknown = set(classes) - set(CLASSES)
        if unknown:
            raise ValueError(f"unknown label class(es) {sorted(unknown)}; known: {CLASSES}")
        w, h = self.size
        out = np.zeros((h, w), np.uint8)
        for cls in classes:
            for poly in self.regions.get(cls, []):
                pts = np.round(np.asarray(poly, np.float64) * (1 << SHIFT)).astype(np.int32)
                cv2.fillPoly(out, [pts.reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8, shift=SHIFT)
        return out.astype(np.float32)

    def occluders(self) -> NDArray[np.float32]:
        """Glasses, hair, hands and microphones: what a face effect must leave untouched."""
        return self.mask(*OCCLUDERS)

    def skin(self) -> NDArray[np.float32]:
        """The visible skin an effect should cover: skin polygons minus exclusions minus occluders."""
        keep = self.mask("skin") * (1 - self.mask("exclude")) * (1 - self.occluders())
        return keep.astype(np.float32)


def _label(data: dict[str, Any]) -> Label:
    regions = {c: [[[float(x), float(y)] for x, y in poly] for poly in data["regions"].get(c, [])] for c in CLASSES}
    extra = set(data["regions"]) - set(CLASSES)
    if extra:
        raise ValueError(f"{data['media']} frame {data['frame']}: unknown label class(es) {sorted(extra)}")
    w, h = data["size"]
    x0, y0, x1, y1 = data["face_box"]
    return Label(str(data["media"]), int(data["frame"]), (int(w), int(h)), (x0, y0, x1, y1), str(data["note"]), regions)


def load_labels(*names: str) -> list[Label]:
    """Labels from tests/data/labels, sorted by file name; ``names`` (file stems such as
    ``wan_animate_video_0024``, or media names such as ``wan_animate_video.mp4``) select some, none: all."""
    files = sorted(LABELS.glob("*.json"))
    if names:
        stems = {Path(n).stem for n in names}
        files = [f for f in files if f.stem in stems or f.stem.rsplit("_", 1)[0] in stems]
        if not files:
            raise FileNotFoundError(f"no labels match {names} in {LABELS}")
    return [_label(json.loads(f.read_text())) for f in files]
