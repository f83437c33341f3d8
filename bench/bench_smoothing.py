"""Landmark smoothing: lag behind a fast head vs jitter, per clip (issue #14).

For each clip, a fresh ``faceplate extract`` of its first ``--frames`` frames (no hand pass; cached under
bench/_work/smoothing/), then every track's measured landmarks (gaps filled as finalize fills them) are
smoothed by each method. Per frame we take the mean landmark distance (x, y; in eye distances, iod) of the
smoothed face to

* the raw measured face (``lag raw``: includes the raw detection noise itself), and
* a local reference, the centred 5-frame moving average of the raw face (``lag ref``: noise mostly
  averaged out, motion kept: what an effect drawn on the smoothed face is misplaced by),

and report their median / 95th percentile / max over frames, with ``smoothing.jitter`` (mean landmark
acceleration, % iod), the streamed smoother's cost per face and frame and its distance to the two-pass one.

Where a plate repeats frames (lp_driving_d12 is a fast head shake with every 3rd-5th frame repeated), the
raw landmarks' move between a repeated frame and its original is the detector's noise alone: on d12 it is
~0.014 iod while the head jumps ~0.3 iod between the other frames, so there the raw face is the truth
(lag raw is the misplacement; the 5-frame mean is not a reference, it cuts the jumps) and the jitter is the
head's real motion: a smoother within e iod of it has a jitter of at least raw's - 400 e.

    FACEPLATE_THREADS=1 .venv/bin/python bench/bench_smoothing.py [--frames 150] [--clips ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from faceplate.analysis.faces import interocular
from faceplate.analysis.smoothing import (
    FAST_BETA,
    FAST_SPEED,
    RESIDUAL_MIN_CUTOFF,
    StreamSmoother,
    interpolate_gaps,
    jitter,
    lookahead,
    smooth_track,
)

MEDIA = Path(os.environ.get("FACEPLATE_MEDIA", "/work/shared/media"))
WORK = Path(__file__).parent / "_work" / "smoothing"
CLIPS = [
    "lp_driving_d12.mp4",
    "lp_driving_d18.mp4",
    "lp_driving_d0.mp4",
    "lp_source_s32.mp4",
    "fra_orig.mp4",
    "wan_animate_video.mp4",
]
Arr = NDArray[np.float64]
Smoother = Callable[[Arr, Arr, float], NDArray[np.floating]]


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.processor())
    return f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, numpy {np.__version__}"


def tracks(clip: str, frames: int) -> tuple[float, list[Arr]]:
    """The clip's fps and each track's measured landmarks (T, 478, 3), gaps filled (cached extract)."""
    from faceplate.config import ExtractConfig
    from faceplate.extract import extract
    from faceplate.media import open_plate
    from faceplate.store import ShotStore

    fps = float(open_plate(MEDIA / clip).info.fps)
    cache = WORK / f"{clip}.{frames}.npz"
    if not cache.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        shot = WORK / f"{clip}.{frames}.faceplate"
        extract(ExtractConfig(plate=str(MEDIA / clip), shot=shot, frames=f"0-{frames - 1}", hands=False))
        out = {}
        with ShotStore.open(shot) as store:
            for t in store.tracks():
                faces = [f for f in store.track_faces(t.id) if f.source != "interp"]
                out[f"frames_{t.id}"] = np.array([f.frame for f in faces])
                out[f"lm_{t.id}"] = np.stack([f.landmarks for f in faces])
        np.savez(cache, **out)  # type: ignore[arg-type]
    d = np.load(cache)
    ids = sorted(int(k.split("_")[1]) for k in d.files if k.startswith("lm_"))
    lms = [interpolate_gaps(d[f"frames_{i}"], d[f"lm_{i}"])[1].astype(np.float64) for i in ids]
    return fps, [lm for lm in lms if len(lm) >= 12]


def centred_mean(x: Arr, k: int = 5) -> Arr:
    """Centred ``k``-frame moving average along axis 0 (window shrunk at the ends)."""
    c = np.concatenate([np.zeros((1, *x.shape[1:])), np.cumsum(x, axis=0)])
    h = k // 2
    lo, hi = np.maximum(np.arange(len(x)) - h, 0), np.minimum(np.arange(len(x)) + h + 1, len(x))
    return np.asarray((c[hi] - c[lo]) / (hi - lo).reshape(-1, *([1] * (x.ndim - 1))), np.float64)


def per_frame(a: NDArray[np.floating], b: Arr, scale: Arr) -> Arr:
    return np.asarray(np.linalg.norm(a[..., :2] - b[..., :2], axis=-1).mean(axis=1) / scale, np.float64)


METHODS: dict[str, Smoother] = {
    "raw": lambda lm, sc, fps: lm,
    "before: points, beta 0.5": lambda lm, sc, fps: smooth_track(lm, sc, fps, pose_split=False),
    "points, beta 5": lambda lm, sc, fps: smooth_track(lm, sc, fps, beta=5.0, pose_split=False),
    f"pose split (fast > {FAST_SPEED:g} iod/s: +{FAST_BETA:g} Hz/(iod/s); residual {RESIDUAL_MIN_CUTOFF:g} Hz)": (
        lambda lm, sc, fps: smooth_track(lm, sc, fps)
    ),
}


def stream(lm: Arr, fps: float) -> tuple[float, float]:
    """``StreamSmoother`` fed the way render.stream feeds it (one second ahead, forgetting behind): median
    ms per ``value`` (one face, one frame; the median: other processes share the cores) and its largest
    distance (px) to ``smooth_track``."""
    w = lookahead(fps)
    sm = StreamSmoother(fps, w, interocular)
    ref = smooth_track(lm, np.array([interocular(x) for x in lm]), fps)
    for f in range(min(len(lm), w + 1)):
        sm.add(f, lm[f])
    err, spent = 0.0, []
    for f in range(len(lm)):
        final = f + w + 1 >= len(lm)
        t0 = time.perf_counter()
        y = sm.value(f, final)
        if not final:
            spent.append(time.perf_counter() - t0)
            sm.add(f + w + 1, lm[f + w + 1])
            sm.forget_before(f)
        err = max(err, float(np.abs(y - ref[f]).max()))
    return float(np.median(spent)) * 1e3 if spent else float("nan"), err


def repeat_noise(clip: str, lm: Arr, frames: int) -> tuple[int, float]:
    """Frames of the plate that repeat the one before (mean |difference| under a tenth of the clip's median)
    and the median mean distance (iod) of their raw landmarks to the previous frame's: detector noise alone."""
    import cv2

    cap = cv2.VideoCapture(str(MEDIA / clip))
    prev, diffs = None, []
    for _ in range(min(frames, len(lm))):
        ok, img = cap.read()
        if not ok:
            break
        img = img.astype(np.float32)
        diffs.append(float("inf") if prev is None else float(np.abs(img - prev).mean()))
        prev = img
    cap.release()
    d = np.array(diffs)
    same = [f for f in range(1, len(d)) if d[f] < 0.1 * np.median(d[1:])]
    if not same:
        return 0, float("nan")
    sc = np.array([interocular(x) for x in lm])
    return len(same), float(np.median(per_frame(lm[same], lm[np.array(same) - 1], sc[same])))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--clips", nargs="+", default=CLIPS)
    args = ap.parse_args()
    print(f"machine: {machine()}\nfirst {args.frames} frames of each clip; lag in iod, jitter in % iod")
    print("lag raw: to the measured face; lag ref: to its centred 5-frame mean (noise mostly averaged out)\n")
    print("| clip | method | lag raw median / p95 / max | lag ref median / p95 / max | jitter |")
    print("|---|---|---|---|---|")
    notes = []
    for clip in args.clips:
        fps, lms = tracks(clip, args.frames)
        for name, fn in METHODS.items():
            raw_l, ref_l, jit = [], [], []
            for lm in lms:
                sc = np.array([interocular(x) for x in lm])
                y = fn(lm, sc, fps)
                raw_l.append(per_frame(y, lm, sc))
                ref_l.append(per_frame(y, centred_mean(lm), sc))
                jit.append(jitter(y, sc) * len(lm))
            rl, fl = np.concatenate(raw_l), np.concatenate(ref_l)
            j = sum(jit) / sum(len(lm) for lm in lms)

            def q(x: Arr) -> str:
                return f"{np.median(x):.3f} / {np.percentile(x, 95):.3f} / {x.max():.3f}"

            print(f"| {clip} ({sum(map(len, lms))} f, {len(lms)} tr) | {name} | {q(rl)} | {q(fl)} | {j:.2f} |")
        ms, err = stream(lms[0], fps)
        reps, noise = repeat_noise(clip, lms[0], args.frames)
        notes.append(
            f"| {clip} | {fps:g} | {ms:.2f} | {err:.4f} | "
            + (f"{reps} frames, raw moves {noise:.4f} iod |" if reps else "none |")
        )
    print("\n| clip | fps | stream ms / face / frame (median) | max \\|stream - two-pass\\| px | repeated frames |")
    print("|---|---|---|---|---|")
    print("\n".join(notes))


if __name__ == "__main__":
    main()
