"""Benchmark and measure ``faceplate beauty`` (issue #3): speed end to end and quality on real clips.

Speed: ``faceplate beauty PLATE -o comp.mp4`` (H.264 in → H.264 comp out, analysis included: one pass
for a fresh 1080p shot, two at 4K) on the bench plates (lp_source_s32.mp4 upscaled to 1080p and 4K, see
make_plates.py; ``--loops 3`` for 540 frames), fresh shot folder per run, median of ``--repeat``; peak
RSS of the process.

Quality (default settings, on the real clips themselves): mid-band (blemish/wrinkle scale) energy drop in
the skin matte, dlib identity distance plate vs retouch, change in eyes and lips, frame-to-frame change of
the delta in aligned space vs the plate's own change.

    .venv/bin/python bench/bench_beauty.py [--repeat 3] [--sizes 1080p 4k] [--skip-speed] [--skip-quality]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from bench_extract import machine
from make_plates import REPO, make

MEDIA = REPO.parent / "shared" / "media"
CLIPS = [("lp_driving_d18.mp4", "0-95"), ("lp_source_s32.mp4", "30-125"), ("lp_driving_d0.mp4", "0-77"),
         ("lp_driving_d12.mp4", "0-95")]  # fmt: skip

CHILD = """
import json, sys
def hwm_mb():  # this process's own peak: ru_maxrss keeps the parent's peak across fork + exec on Linux
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
from faceplate.config import RenderConfig
from faceplate.render import render
from faceplate.effects.beauty import BeautyEffect
s = render(RenderConfig(plate=sys.argv[1], out=sys.argv[2], codec_options=json.loads(sys.argv[3])), BeautyEffect())
print(json.dumps({"frames": s.written, "seconds": s.seconds, "stages": s.stages,
                  "rss_mb": hwm_mb()}))
"""


ANALYSIS = ("detect + landmarks", "hands", "identity")


def speed(sizes: list[str], repeat: int, clips: int = 1) -> None:
    print(
        "| plate | comp codec | path | fps end to end (runs) | peak RSS | per frame (ms): analysis / effect / "
        "composite (writer thread) / encode (writer thread) |"
    )
    print("|---|---|---|---|---|---|")
    for size in sizes:
        plate = make(size, clips)
        for label, opts in (
            ("h264 default (ultrafast + cabac, subme 1)", {}),
            ("h264 superfast", {"preset": "superfast"}),
            ("h264 ultrafast", {"preset": "ultrafast"}),
        ):
            runs = []
            for _ in range(repeat):
                with tempfile.TemporaryDirectory() as tmp:
                    out = subprocess.run([sys.executable, "-c", CHILD, str(plate), f"{tmp}/comp.mp4", json.dumps(opts)],
                                         capture_output=True, text=True, check=True)  # fmt: skip
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            fps = [r["frames"] / r["seconds"] for r in runs]
            med = runs[fps.index(statistics.median_low(fps))]
            n, st = med["frames"], med["stages"]
            path = "two passes" if "extract" in st else "one pass"
            analysis = sum(st.get(k, 0) for k in ANALYSIS) if path == "one pass" else st.get("extract", 0)
            effect = st.get("effect", 0) + st.get("effect (background)", 0)
            per = " / ".join(f"{1000 * v / n:.1f}" for v in (analysis, effect, st.get("composite (background)", 0),
                             st.get("write (encode, background)", 0)))  # fmt: skip
            all_fps = ", ".join(f"{f:.1f}" for f in fps)
            print(
                f"| {size} ({n} frames) | {label} | {path} | {statistics.median(fps):.1f} ({all_fps}) | "
                f"{med['rss_mb']:.0f} MB | {per} |",
                flush=True,
            )


def rendered_matte(effect: Any, context: Any, held_out: Any, crop: Any, landmarks: Any) -> Any:
    """The skin matte (R, R) of a measure's aligned crop (R, R, 3) as the render applied it: the track's held
    out occluders (glasses; aligned alike at the track's own size, resized to R) taken out, or the measure
    would count lenses the render left alone as skin the retouch failed to smooth."""
    import cv2
    import numpy as np

    matte = effect.matte_for(context, crop, landmarks)
    if held_out is None:
        return matte
    size = (matte.shape[1], matte.shape[0])
    held = cv2.resize(np.asarray(held_out, np.float32), size, interpolation=cv2.INTER_LINEAR)
    return matte * (1.0 - held)


def quality() -> None:
    import numpy as np

    from faceplate.analysis.faces import DETECTORS, Landmarker
    from faceplate.analysis.identity import Embedder, distance
    from faceplate.config import RenderConfig
    from faceplate.effects.beauty import BeautyEffect
    from faceplate.media import open_plate
    from faceplate.metrics import MeasureError, measure
    from faceplate.render import ColourPath, prepare_tracks, render
    from faceplate.store import ShotStore

    print(
        "\n| clip | frames | band-pass drop in skin (goal ≥ 40%) | identity distance, mean of 4 frames (goal ≤ 0.15) | "
        "eyes+lips change (goal < 1/255) | delta flicker vs plate motion (1/255 units) |"
    )
    print("|---|---|---|---|---|---|")
    emb, lmk, det = Embedder(), Landmarker(), DETECTORS.get("mediapipe")(1, 0.5)
    for name, frames in CLIPS:
        with tempfile.TemporaryDirectory() as tmp:
            effect = BeautyEffect()
            cfg = RenderConfig(plate=str(MEDIA / name), out=f"{tmp}/c.####.png", shot=Path(tmp) / "shot",
                               frames=frames, format="png16")  # fmt: skip
            render(cfg, effect)
            with ShotStore.open(cfg.shot) as store, open_plate(cfg.plate) as plate, open_plate(cfg.out) as comp:  # type: ignore[arg-type]
                track = max(store.tracks(), key=lambda t: t.n_faces)
                rng = cfg.frames_in(plate.info.frames)
                faces = [f for f in store.track_faces(track.id) if f.frame in rng]
                tr = prepare_tracks(store, plate, effect, [track.id], ColourPath(plate.info.colorspace))[track.id]
                try:
                    m = measure(plate, comp, faces, partial(rendered_matte, effect, tr.context, tr.held_out))
                except MeasureError as e:  # a frame the measure cannot see is an error, never a score
                    print(f"| {name} | {frames} | ERROR: {e} | | |", flush=True)
                    continue
                ids = []
                for k in np.linspace(rng.first, rng.last, 4).astype(int):  # identity: mean over 4 frames
                    a, b = plate.read(int(k), display=True), comp.read(int(k), display=True)
                    lm = lmk(a, det(a)[0].roi())
                    ids.append(distance(emb(a, lm), emb(b, lm)))
                ident = float(np.mean(ids))
        print(
            f"| {name} | {frames} | {100 * m.band_drop:.1f}% | {ident:.3f} | {255 * m.eyes_lips_change:.4f}/255 | "
            f"{255 * m.delta_flicker:.2f} vs {255 * m.plate_motion:.2f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", nargs="+", default=["1080p", "4k"])
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--loops", type=int, default=1, help="plate length: the 180-frame clip this many times")
    args = ap.parse_args()
    print(f"machine: {machine()}\n")
    if not args.skip_speed:
        speed(args.sizes, args.repeat, args.loops)
    if not args.skip_quality:
        quality()
    print(f"\nbench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
