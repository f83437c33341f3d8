"""Benchmark and measure face swap (issue #4) on the dev clips.

1. Facesets: A = lp_driving_d18.mp4 (one man, 216 frames), B = lp_driving_d0.mp4 (another man, 78 frames),
   whole_face at 128 px.
2. Train a DF model at res 64 for ``--minutes`` (default 30) on this CPU, A as source, B as destination.
3. Merge it into B's clip (default mask "both", then "hull" and "learned"); per frame: dlib distance of
   the output face to A's and to B's mean identity (share of frames nearer A; goal ≥ 80%), and the
   landmark error between output and B's plate (mean per point, % of eye distance; goal ≤ 5%).
4. Speed: training seconds per iteration at res 128 and 256 (batch 8, default dims), merge fps at 1080p.

    .venv/bin/python bench/bench_swap.py [--minutes 30] [--work bench/_work/swap]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from bench_extract import machine
from make_plates import REPO, make

MEDIA = REPO.parent / "shared" / "media"


def quality(work: Path, minutes: float) -> None:
    from faceplate.config import FacesetConfig, TrainConfig
    from faceplate.training.faceset import build, load
    from faceplate.training.swap import train

    a_dir, b_dir, model = work / "A", work / "B", work / "model"
    a = (
        load(a_dir)
        if (a_dir / "faceset.json").exists()
        else build(FacesetConfig(name=a_dir, sources=[str(MEDIA / "lp_driving_d18.mp4")], res=128))
    )
    b = (
        load(b_dir)
        if (b_dir / "faceset.json").exists()
        else build(FacesetConfig(name=b_dir, sources=[str(MEDIA / "lp_driving_d0.mp4")], res=128))
    )
    print(f"facesets: A {len(a)} faces, B {len(b)} faces")
    s = train(TrainConfig(src=a_dir, dst=b_dir, model=model, res=64, ae_dims=128, e_dims=32, d_dims=16, d_mask_dims=8,
                          lr=2e-4, batch=8, minutes=minutes, preview_every=250))  # fmt: skip
    print(f"training: {s.iteration - s.first_iteration} iterations in {s.seconds / 60:.1f} min "
          f"({s.its_per_second:.2f} it/s), loss {s.first_loss:.3f} → {s.last_loss:.3f}; the model is at iteration "
          f"{s.iteration} (this run resumed it at {s.first_iteration}: delete {model} for a fresh run)")  # fmt: skip
    for mask in ("both", "hull", "learned"):  # default first
        _merge_and_measure(work, model, a.identity, b.identity, mask)


def _merge_and_measure(work: Path, model: Path, id_a: object, id_b: object, mask: str) -> None:
    from faceplate.analysis.faces import DETECTORS, Landmarker, interocular
    from faceplate.analysis.identity import Embedder, distance
    from faceplate.config import RenderConfig
    from faceplate.effects.swap import MergeSettings, SwapEffect
    from faceplate.media import open_plate
    from faceplate.render import render
    from faceplate.store import ShotStore

    plate = MEDIA / "lp_driving_d0.mp4"
    out = work / f"merge_{mask}" / "c.####.png"
    shutil.rmtree(out.parent, ignore_errors=True)  # a sequence render would skip (and measure) an earlier run's frames
    cfg = RenderConfig(plate=str(plate), out=str(out), shot=work / "shot_B", format="png16")
    r = render(cfg, SwapEffect(model, MergeSettings(mask=mask)))  # type: ignore[arg-type]
    print(f"\nmerge --mask {mask}: {r.written} frames at {r.fps:.1f} fps (incl. extraction of the 512x512 clip)")
    emb, lmk, det = Embedder(), Landmarker(), DETECTORS.get("mediapipe")(1, 0.5)
    nearer_a, errs, frames = 0, [], 0
    with ShotStore.open(cfg.shot) as store, open_plate(plate) as src, open_plate(out) as comp:  # type: ignore[arg-type]
        for n in range(src.info.frame_count):
            faces = store.faces_in_frame(n)
            if not faces:
                continue
            lm_plate = faces[0].landmarks
            out_rgb = comp.read(n, display=True)
            d_a = distance(emb(out_rgb, lm_plate), id_a)  # type: ignore[arg-type]
            d_b = distance(emb(out_rgb, lm_plate), id_b)  # type: ignore[arg-type]
            nearer_a += d_a < d_b
            found = det(out_rgb)
            if found:
                lm_out = lmk(out_rgb, found[0].roi())
                if lm_out is not None:
                    errs.append(np.linalg.norm(lm_out[:, :2] - lm_plate[:, :2], axis=1).mean() / interocular(lm_plate))
            frames += 1
    print(f"identity: {nearer_a}/{frames} frames nearer A than B ({100 * nearer_a / frames:.0f}%, goal ≥ 80%)")
    print(f"pose/expression: landmark error output vs B plate {100 * np.mean(errs):.1f}% of eye distance "
          f"(median {100 * np.median(errs):.1f}%, {len(errs)} frames re-detected; goal ≤ 5%)")  # fmt: skip


def speed(work: Path) -> None:
    import torch

    from faceplate.models.swap import SwapArch, SwapModel, use_bf16

    cpu = torch.device("cpu")
    for res, reps in ((128, 2), (256, 1)):
        m = SwapModel(SwapArch(res=res)).to(memory_format=torch.channels_last)
        x = torch.rand(8, 3, res, res).contiguous(memory_format=torch.channels_last)
        mk = torch.rand(8, 1, res, res)
        opt = torch.optim.Adam(m.parameters(), 5e-5)
        n = sum(p.numel() for p in m.parameters()) / 1e6
        for bf16 in (False, True) if use_bf16(cpu) else (False,):
            _train_step(m, opt, x, mk, bf16)
            t = time.perf_counter()
            for _ in range(reps):
                _train_step(m, opt, x, mk, bf16)
            dt = (time.perf_counter() - t) / reps
            rate = f"{dt:.1f} s/it ({1 / dt:.3f} it/s)"
            print(f"training speed res {res}, batch 8, default dims ({n:.0f}M params), "
                  f"{'bf16 autocast' if bf16 else 'fp32'}: {rate}", flush=True)  # fmt: skip
    merge_speed(work)


def _train_step(m: object, opt: object, x: object, mk: object, bf16: bool) -> None:
    import torch

    from faceplate.models.swap import autocast
    from faceplate.training.losses import mask_loss, reconstruction

    with autocast(torch.device("cpu"), bf16):
        p, pm = m.reconstruct(x, "src")  # type: ignore[attr-defined]
        q, qm = m.reconstruct(x, "dst")  # type: ignore[attr-defined]
    loss = reconstruction(p, x, mk, mk) + reconstruction(q, x, mk, mk) + mask_loss(pm, mk) + mask_loss(qm, mk)  # type: ignore[arg-type]
    opt.zero_grad()  # type: ignore[attr-defined]
    loss.backward()
    opt.step()  # type: ignore[attr-defined]


def merge_speed(work: Path) -> None:
    """Merge fps at 1080p with a res-128 model (trained a few iterations on the bench plate's own actor)."""
    from faceplate.config import FacesetConfig, RenderConfig, TrainConfig
    from faceplate.effects.swap import SwapEffect
    from faceplate.render import render
    from faceplate.training.faceset import build, load
    from faceplate.training.swap import train

    plate = make("1080p", 1)
    dst = work / "s32"
    if not (dst / "faceset.json").exists():
        build(FacesetConfig(name=dst, sources=[str(plate)], res=128, every=10))
    model = work / "model128"
    if not (model / "model.json").exists():
        train(TrainConfig(src=dst, dst=dst, model=model, res=128, iters=2, batch=2))
    load(dst)
    cfg = RenderConfig(plate=str(plate), out=str(work / "merge1080" / "c.mp4"), shot=work / "shot_s32")
    render(cfg, SwapEffect(model))  # extraction once
    r = render(cfg, SwapEffect(model))
    from faceplate.models.swap import device, use_bf16

    print(
        f"merge speed 1080p, res-128 default-dims model ({'bf16' if use_bf16(device()) else 'fp32'} forward), "
        f"H.264 out: {r.fps:.1f} fps ({r.written} frames; stages "
        + ", ".join(f"{k} {1000 * v / r.written:.1f} ms" for k, v in r.stages.items())
        + " per frame)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "_work" / "swap")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    print(f"machine: {machine()}\n")
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.skip_quality:
        quality(args.work, args.minutes)
    if not args.skip_speed:
        speed(args.work)


if __name__ == "__main__":
    main()
