"""Build faceplate's canonical 2-D face template (src/faceplate/data/mean_face.npy) from real photos.

Generalised Procrustes over the alignment points of near-frontal faces in ../shared/media, mean of all
478 points, then made left/right symmetric. Run: .venv/bin/python tools/make_template.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from faceplate.align import ALIGN_POINTS
from faceplate.analysis.faces import DETECTORS, Landmarker
from faceplate.geometry import similarity_3d, transform, umeyama
from faceplate.media import open_plate

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
STILLS = [
    "fr_obama.jpg",
    "fr_obama-1080p.jpg",
    "fr_biden.jpg",
    "fr_two_people.jpg",
    "fr_lin-manuel-miranda.png",
    "fr_alex-lacamoire.png",
    "lp_driving_d30.jpg",
    "lp_driving_d9.jpg",
    "lp_driving_d19.jpg",
]
CLIPS = {
    "lp_driving_d18.mp4": range(0, 216, 12),
    "lp_driving_d0.mp4": range(0, 78, 6),
    "lp_driving_d20.mp4": range(0, 175, 15),
}


def collect() -> list[np.ndarray]:
    det, lmk = DETECTORS.get("mediapipe")(1, 0.5), Landmarker()
    shapes = []
    sources = [(s, [0]) for s in STILLS] + [(c, list(r)) for c, r in CLIPS.items()]
    for name, frames in sources:
        with open_plate(MEDIA / name) as plate:
            for f in frames:
                img = plate.read(f, display=True)
                for d in det(img):
                    lm = lmk(img, d.roi())
                    if lm is not None:
                        shapes.append(lm.astype(np.float64))
    return shapes


def template_3d(shapes: list[np.ndarray], mean2d: np.ndarray) -> np.ndarray:
    """Mean 3-D face (x right, y down, z away from the camera; eye distance 1), mirror-symmetric."""
    ref = shapes[0]
    for _ in range(10):
        aligned = []
        for s in shapes:
            k, r, t = similarity_3d(s[ALIGN_POINTS], ref[ALIGN_POINTS])
            aligned.append(s @ (k * r).T + t)
        ref = np.mean(aligned, axis=0)
    # put it in the 2-D template's frame: same x/y for the alignment points, z scaled alike
    k, r, t = similarity_3d(ref[ALIGN_POINTS], np.column_stack([mean2d[ALIGN_POINTS], np.zeros(len(ALIGN_POINTS))]))
    out = ref @ (k * r).T + t
    out[:, 2] -= out[:, 2].mean()
    mirrored = out * [-1, 1, 1]
    perm = np.array([np.argmin(((mirrored - p) ** 2).sum(1)) for p in out])
    return (out + mirrored[perm]) / 2


def main() -> None:
    shapes3 = collect()
    shapes = [s[:, :2] for s in shapes3]
    ref = shapes[0]
    for _ in range(10):
        aligned = [transform(umeyama(s[ALIGN_POINTS], ref[ALIGN_POINTS]), s) for s in shapes]
        mean = np.mean(aligned, axis=0)
        ref = mean
    # normalise: eye centres at (-0.5, 0) and (0.5, 0)
    er, el = (mean[33] + mean[133]) / 2, (mean[263] + mean[362]) / 2
    src = np.stack([er, el])
    dst = np.array([[-0.5, 0.0], [0.5, 0.0]])
    mean = transform(umeyama(src, dst), mean)
    # symmetrise: mirror x, match each point to its nearest mirrored neighbour, average
    mirrored = mean * [-1, 1]
    perm = np.array([np.argmin(((mirrored - p) ** 2).sum(1)) for p in mean])
    sym = (mean + mirrored[perm]) / 2
    out = Path(__file__).resolve().parents[1] / "src" / "faceplate" / "data" / "mean_face.npy"
    np.save(out, sym.astype(np.float32), allow_pickle=False)
    np.save(out.with_name("mean_face3d.npy"), template_3d(shapes3, sym).astype(np.float32), allow_pickle=False)
    print(f"{len(shapes)} faces → {out}; mirror pairs consistent: {np.mean(perm[perm] == np.arange(len(perm))):.3f}")
    sys.exit(0)


if __name__ == "__main__":
    main()
