"""Bench plates from the real dev media: lp_source_s32.mp4 (1280x720, 180 frames) upscaled to 1080p and 4K.

Written with faceplate's own H.264 writer into bench/_work/ (git-ignored). ``--loops N`` repeats the clip
(forward, backward, ...) to make long plates for the memory-flatness check.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from faceplate.media import WriterSpec, open_plate, open_writer

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "media" / "lp_source_s32.mp4"
WORK = REPO / "bench" / "_work"
SIZES = {"1080p": (1920, 1080), "4k": (3840, 2160)}


def make(size: str, loops: int = 1) -> Path:
    w, h = SIZES[size]
    out = WORK / f"s32_{size}_x{loops}.mp4"
    if out.exists():
        return out
    with open_plate(SOURCE) as plate:
        frames = [cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC) for _, img in plate.frames()]
        fps = plate.info.fps
    spec = WriterSpec(str(out), w, h, fps, "h264", options={"crf": "16"})
    with open_writer(spec) as wr:
        n = 0
        for k in range(loops):
            for img in frames if k % 2 == 0 else frames[::-1]:
                wr.write(n, np.clip(img, 0, 1))
                n += 1
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("size", choices=list(SIZES))
    ap.add_argument("--loops", type=int, default=1)
    print(make(**vars(ap.parse_args())))
