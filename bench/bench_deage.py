"""Benchmark and measure de-aging (issue #5).

Procedural (``faceplate deage --years 20``): wrinkle-band drop in the skin core, identity (dlib, mean of 4
frames; goal ≤ 0.3), flicker vs plate motion, on real clips; speed at 1080p (goal ≥ 15 fps).

Keyframes: paint a few frames of real clips (d12 talking with head tilts, d0 expressions, d18 near-static)
with ``metrics.demo_paint`` (a stand-in artist edit, not faceplate's retouch), train, and measure PSNR
inside the face on held-out painted frames against the baseline of copying the nearest keyframe's aligned
delta (goal ≥ 35 dB and ≥ +3 dB).

    .venv/bin/python bench/bench_deage.py [--skip-speed] [--skip-quality] [--skip-keyframes] [--skip-hair]
                                          [--speed-repeat 2] [--speed-before OLD/src] [--speed-after NEW/src]
                                          [--iters 1500] [--res 128] [--width 16] [--keyframe-clips d0 d12 d18]

The development clips d20 and s32 (``--keyframe-clips d20 s32``) are where keyframe-model changes are tried
before they are measured on d12, d0 and d18.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench_beauty import rendered_matte
from bench_extract import machine
from make_plates import REPO

MEDIA = REPO.parent / "shared" / "media"
CLIPS = [("lp_driving_d18.mp4", "0-95"), ("lp_source_s32.mp4", "30-125"), ("lp_driving_d0.mp4", "0-77"),
         ("lp_driving_d12.mp4", "0-95")]  # fmt: skip


def quality() -> None:
    from faceplate.analysis.faces import DETECTORS, Landmarker
    from faceplate.analysis.identity import Embedder, distance
    from faceplate.config import RenderConfig
    from faceplate.effects.beauty import BeautyEffect
    from faceplate.effects.deage import DeageEffect, DeageSettings
    from faceplate.media import open_plate
    from faceplate.metrics import MeasureError, measure
    from faceplate.render import ColourPath, prepare_tracks, render
    from faceplate.store import ShotStore

    print(
        "| clip | frames | wrinkle-band drop in skin (--years 20) | identity distance, mean of 4 frames (goal ≤ 0.3) "
        "| delta flicker vs plate motion (1/255) |"
    )
    print("|---|---|---|---|---|")
    emb, lmk, det = Embedder(), Landmarker(), DETECTORS.get("mediapipe")(1, 0.5)
    for name, frames in CLIPS:
        with tempfile.TemporaryDirectory() as tmp:
            effect = DeageEffect(DeageSettings(years=20))
            cfg = RenderConfig(plate=str(MEDIA / name), out=f"{tmp}/c.####.png", shot=Path(tmp) / "shot",
                               frames=frames, format="png16")  # fmt: skip
            render(cfg, effect)
            beauty = BeautyEffect(effect.settings.retouch())
            with ShotStore.open(cfg.shot) as store, open_plate(cfg.plate) as plate, open_plate(cfg.out) as comp:  # type: ignore[arg-type]
                track = max(store.tracks(), key=lambda t: t.n_faces)
                rng = cfg.frames_in(plate.info.frames)
                faces = [f for f in store.track_faces(track.id) if f.frame in rng]
                tr = prepare_tracks(store, plate, beauty, [track.id], ColourPath(plate.info.colorspace))[track.id]
                try:  # the matte as the render applied it: the track's held-out glasses are not skin to measure
                    m = measure(plate, comp, faces, partial(rendered_matte, beauty, tr.context, tr.held_out))
                except MeasureError as e:  # a frame the measure cannot see is an error, never a score
                    print(f"| {name} | {frames} | ERROR: {e} | | |", flush=True)
                    continue
                ids = []
                for k in np.linspace(rng.first, rng.last, 4).astype(int):
                    a, b = plate.read(int(k), display=True), comp.read(int(k), display=True)
                    lm = lmk(a, det(a)[0].roi())
                    ids.append(distance(emb(a, lm), emb(b, lm)))
        print(f"| {name} | {frames} | {100 * m.band_drop:.1f}% | {np.mean(ids):.3f} | "
              f"{255 * m.delta_flicker:.2f} vs {255 * m.plate_motion:.2f} |")  # fmt: skip


HAIR_CLIPS = [("lp_source_s32.mp4", "30-125"), ("lp_driving_d12.mp4", "0-95"), ("lp_driving_d18.mp4", "0-95")]


def hair() -> None:
    """Temporal stability of ``--hair`` in aligned (head) space, frame to frame, in the zone hair can be in
    (off the face, above the mouth): the person matte, the hair weight, and the hair change itself against
    the plate's own change there."""
    from faceplate.config import ExtractConfig
    from faceplate.effects.deage import DeageEffect, DeageSettings
    from faceplate.extract import extract
    from faceplate.media import open_plate
    from faceplate.media.frames import parse_frame_range
    from faceplate.ops.augment import face_mask
    from faceplate.ops.hair import hair_alpha, recolour_hair
    from faceplate.render import ColourPath, aligned_face, prepare_tracks
    from faceplate.store import ShotStore

    print("\n--hair (--years 20) stability per frame pair, aligned head space, in the hair zone (1/255 units "
          "for images; matte units x 255 for mattes):")  # fmt: skip
    print("| clip | frames | person matte change | hair weight change (mean weight) | hair change flicker vs plate "
          "motion |")  # fmt: skip
    print("|---|---|---|---|---|")
    effect = DeageEffect(DeageSettings(years=20, hair=True))
    amount = min(effect.settings.k, 1.0)
    for name, frames in HAIR_CLIPS:
        with tempfile.TemporaryDirectory() as tmp:
            extract(ExtractConfig(plate=str(MEDIA / name), shot=Path(tmp), frames=frames))
            with ShotStore.open(Path(tmp)) as store, open_plate(MEDIA / name) as plate:
                col = ColourPath(plate.info.colorspace)
                track = max(store.tracks(), key=lambda t: t.n_faces)
                tr = prepare_tracks(store, plate, effect, [track.id], col)[track.id]
                by_frame = {f.frame: f for f in store.track_faces(track.id)}
                prev = None
                rows: list[tuple[float, float, float, float, float]] = []
                for frame, img in plate.frames(parse_frame_range(frames), native=True):
                    face = aligned_face(img, by_frame[frame], tr.res, effect.face_type, col)[0]
                    u8 = np.round(np.clip(face.image, 0, 1) * 255).astype(np.uint8)
                    person = tr.context.segmenter(u8)
                    weight = hair_alpha(face.image, face.landmarks, person, face.iod)
                    change = recolour_hair(face.image, weight, amount, iod=face.iod) - face.image
                    r = face.image.shape[0]
                    ys = np.arange(r, dtype=np.float32)[:, None]
                    zone = (1 - face_mask(face.landmarks, r)) * (ys < face.landmarks[[61, 291], 1].mean())
                    cur = (person, weight, change, face.image, zone > 0.5)
                    if prev is not None:
                        z = cur[4] & prev[4]
                        d = [np.abs(cur[i] - prev[i])[z].mean() for i in range(4)]
                        rows.append((d[0], d[1], d[2], d[3], float(weight[z].mean())))
                    prev = cur
        m = np.mean(rows, axis=0) * 255
        print(f"| {name} | {frames} | {m[0]:.2f} | {m[1]:.2f} ({m[4]:.1f}) | {m[2]:.2f} vs {m[3]:.2f} |")


NATIVE_1080P = [("wan_animate_video.mp4", "0-105"), ("fra_orig.mp4", "0-179")]  # native HD clips, not upscaled
SPEED_CHILD = (
    "import json,os,resource,sys,time;from faceplate.config import RenderConfig;from faceplate.render import render;"
    "from faceplate.effects import EFFECTS;kids=lambda:sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]);"
    "c=time.process_time()+kids();"
    "s=render(RenderConfig(plate=sys.argv[1],out=sys.argv[2],frames=sys.argv[3]),EFFECTS.get(sys.argv[4])());"
    "print(json.dumps({'fps':s.written/s.seconds,'stages':getattr(s,'stages',{}),'cpu_stages':getattr(s,'cpu',{}),"
    "'n':s.written,'cpu':time.process_time()+kids()-c,'load':os.getloadavg()[0]}))"
)


def speed_run(name: str, frames: str, effect: str, src: Path | None = None) -> dict[str, Any]:
    """One fresh-shot render in a child process (``src``: import faceplate from there instead): fps, stages
    (wall s), cpu_stages (CPU s of the thread running each stage), cpu (s of the whole process, all threads, and of
    its helper processes: the identity embedder's),
    load (1-minute load average after it)."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(src)} if src is not None else None
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-c", SPEED_CHILD, str(MEDIA / name), f"{tmp}/c.mp4", frames, effect]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    r: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return r


def speed(repeat: int = 2, before: Path | None = None, after: Path | None = None) -> None:
    """End-to-end fps (fresh shot: analysis included) of beauty and de-age on the native 1080p clips; with
    ``before`` (a ``src`` folder), each run alternates with one importing faceplate from there; ``after`` (a
    ``src`` folder) is imported instead of this tree (to compare two snapshots while others edit the tree).

    fps depends on what else runs on the machine; CPU ms a frame (every thread of the process) much less:
    below ~133 ms a frame fits 15 fps on 2 free cores."""
    print("| plate | effect | code | frames | fps end to end (runs) | CPU ms / frame (runs) | load | "
          "per frame, last run: wall ms (CPU ms of the stage's thread) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    codes = [("before", before), ("after", after)] if before is not None else [("now", after)]
    for name, frames in NATIVE_1080P:
        for effect in ("beauty", "deage"):
            runs: dict[str, list[dict[str, Any]]] = {c: [] for c, _ in codes}
            for _ in range(repeat):
                for code, src in codes:
                    runs[code].append(speed_run(name, frames, effect, src))
            for code, _ in codes:
                rs = runs[code]
                fps, cpu = [r["fps"] for r in rs], [1000 * r["cpu"] / r["n"] for r in rs]
                r = rs[-1]
                cs = r.get("cpu_stages", {})
                per = ", ".join(f"{k} {1000 * v / r['n']:.1f}" + (f" ({1000 * cs[k] / r['n']:.1f})" if k in cs else "")
                                for k, v in r["stages"].items())  # fmt: skip
                print(f"| {name} | {effect} | {code} | {r['n']} | {statistics.median(fps):.1f} "
                      f"({', '.join(f'{f:.1f}' for f in fps)}) | {statistics.median(cpu):.0f} "
                      f"({', '.join(f'{c:.0f}' for c in cpu)}) | {max(x['load'] for x in rs):.1f} | {per} |",
                      flush=True)  # fmt: skip


KEYFRAME_CLIPS = {  # clip: (painted keyframes, held-out frames)
    "lp_driving_d12.mp4": ((0, 45, 90, 135, 182), (20, 70, 110, 160)),  # talking, head tilts, looking up
    "lp_driving_d0.mp4": ((0, 25, 50, 77), (12, 38, 63)),  # exaggerated expressions
    "lp_driving_d18.mp4": ((0, 60, 120, 180, 215), (30, 90, 150, 200)),  # near-static, frontal
}
DEV_CLIPS = {  # model changes are tried on these first (`--keyframe-clips d20 s32`), then measured on the above
    "lp_driving_d20.mp4": ((0, 45, 90, 135, 174), (20, 70, 110, 155)),  # teen, outdoors, grainy, talking
    "lp_source_s32.mp4": ((0, 45, 90, 135, 179), (20, 70, 110, 160)),  # 720p, turns from three-quarter
}


def keyframes(iters: int, res: int, width: int, clips: list[str] | None = None, head: str = "default") -> None:
    print(f"\nkeyframes: {head} head, res {res}, width {width}, {iters} iterations per clip; PSNR inside the face "
          "mask on held-out painted frames (demo_paint: under-eye paint-out + cheek/forehead colour)")  # fmt: skip
    print("| clip | held-out frame | learned PSNR (dB) | nearest-keyframe delta PSNR (dB) | gain | train min |")
    print("|---|---|---|---|---|---|")
    chosen = {**KEYFRAME_CLIPS, **DEV_CLIPS} if clips else KEYFRAME_CLIPS
    for clip, (keys, held) in chosen.items():
        if clips and not any(c == clip.split("_")[-1].split(".")[0] for c in clips):
            continue
        _keyframes_clip(clip, keys, held, KeyframeSettingsArgs(res, width, iters, head))


@dataclass(frozen=True)
class KeyframeSettingsArgs:
    res: int
    width: int
    iters: int
    head: str = "default"  # KeyframeSettings' head; "crop-coords": version 2; "delta": version 1 (plain delta)


def _keyframes_clip(clip: str, keys: tuple[int, ...], held: tuple[int, ...], a: KeyframeSettingsArgs) -> None:
    import torch

    from faceplate.align import align_matrix, to_aligned
    from faceplate.config import ExtractConfig
    from faceplate.extract import extract
    from faceplate.media import WriterSpec, colour, open_plate, open_writer
    from faceplate.metrics import demo_paint, psnr
    from faceplate.models.keyframes import KeyframeSettings, predict
    from faceplate.ops.augment import face_mask
    from faceplate.ops.face_coords import face_coords
    from faceplate.store import ShotStore
    from faceplate.training.keyframes import aligned_pair, fit, training_pairs

    plate_path = str(MEDIA / clip)
    with tempfile.TemporaryDirectory() as tmp:
        shot, paint = Path(tmp) / "shot", Path(tmp) / "paint"
        extract(ExtractConfig(plate=plate_path, shot=shot))
        truth = {}
        with ShotStore.open(shot) as store, open_plate(plate_path) as plate:
            w, h = plate.info.width, plate.info.height
            for n in keys + held:
                painted = demo_paint(plate.read(n), store.faces_in_frame(n)[0].best)
                if n in keys:
                    with open_writer(WriterSpec(str(paint / "p.####.png"), w, h, format="png16")) as wr:
                        wr.write(n, painted)
                else:
                    truth[n] = painted
        s = KeyframeSettings(res=a.res, width=a.width, iters=a.iters, batch=4, lr=2e-3)
        if a.head == "delta":
            s = replace(s, bands=None, static_grid=None, face_locked=False)
        elif a.head == "crop-coords":
            s = replace(s, face_locked=False)
        t = time.perf_counter()
        pairs = training_pairs(plate_path, paint, shot, None, None, s)
        net, _ = fit(pairs, s)
        minutes = (time.perf_counter() - t) / 60
        rows = []
        with ShotStore.open(shot) as store, open_plate(plate_path) as plate:
            col = colour.converter(plate.info.colorspace, colour.ANALYSIS_SPACE)
            for n in held:
                face = store.faces_in_frame(n)[0]
                src, gt = aligned_pair(plate.read(n), truth[n], face, s, col)
                lm = to_aligned(align_matrix(face.best, s.res, s.face_type), face.best)
                mask = face_mask(lm, s.res)
                with torch.no_grad():
                    x = torch.from_numpy(src).permute(2, 0, 1)[None]
                    c = torch.from_numpy(face_coords(lm, s.res, s.face_type))[None] if s.face_locked else None
                    out = predict(net.eval(), x, c)[0][0].permute(1, 2, 0).numpy()
                near = min(pairs, key=lambda p, n=n: abs(p.frame - n))  # type: ignore[misc]
                base = np.clip(src + near.painted - near.plate, 0, 1)
                rows.append((psnr(out, gt, mask), psnr(base, gt, mask)))
                print(f"| {clip} | {n} | {rows[-1][0]:.1f} | {rows[-1][1]:.1f} | {rows[-1][0] - rows[-1][1]:+.1f} "
                      f"| {minutes:.1f} |")  # fmt: skip
            fit_db = []  # how well it learned the keyframes themselves (a diagnostic: under- or over-fitting)
            for p in pairs:
                mask = face_mask(p.landmarks, s.res)
                with torch.no_grad():
                    c = torch.from_numpy(face_coords(p.landmarks, s.res, s.face_type))[None] if s.face_locked else None
                    out = predict(net.eval(), torch.from_numpy(p.plate).permute(2, 0, 1)[None], c)[0][0]
                fit_db.append(psnr(out.permute(1, 2, 0).numpy(), p.painted, mask))
        ma, mb = np.mean([r[0] for r in rows]), np.mean([r[1] for r in rows])
        print(f"| {clip} | mean | {ma:.1f} | {mb:.1f} | {ma - mb:+.1f} | {minutes:.1f} |", flush=True)
        print(f"({clip}: on the keyframes it was trained on, {np.mean(fit_db):.1f} dB)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-keyframes", action="store_true")
    ap.add_argument("--skip-hair", action="store_true")
    ap.add_argument("--speed-repeat", type=int, default=2)
    ap.add_argument("--speed-before", type=Path, help="a src folder: speed runs alternate between it and this code")
    ap.add_argument("--speed-after", type=Path, help="a src folder to time instead of this tree's src")
    ap.add_argument("--iters", type=int, default=1500)
    ap.add_argument("--res", type=int, default=128)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--keyframe-clips", nargs="*", help="only these clips (d0 d12 d18; development clips: d20 s32)")
    ap.add_argument(
        "--keyframe-head",
        choices=["default", "crop-coords", "delta"],
        default="default",
        help="crop-coords: version-2 models (no face-locked coordinates); delta: version 1",
    )
    args = ap.parse_args()
    print(f"machine: {machine()}\n")
    if not args.skip_quality:
        quality()
    if not args.skip_speed:
        speed(args.speed_repeat, args.speed_before, args.speed_after)
    if not args.skip_hair:
        hair()
    if not args.skip_keyframes:
        keyframes(args.iters, args.res, args.width, args.keyframe_clips, args.keyframe_head)


if __name__ == "__main__":
    main()
