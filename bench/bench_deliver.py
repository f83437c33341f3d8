"""What the compositing deliverables cost (issue #16): a 1080p beauty render to EXR, the same frames with
``--deliver layers``, with ``--deliver layers,patches``, then ``faceplate nuke`` on the result. One extract
first (not timed), so each render is the two-pass path on the same shot; fps of each and the extra seconds a
frame, and the sizes on disk.

    .venv/bin/python bench/bench_deliver.py [--clip wan_animate_video.mp4] [--frames 0-23]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MEDIA = Path(os.environ.get("FACEPLATE_MEDIA", REPO.parent / "shared" / "media"))
WORK = REPO / "bench" / "_work" / "deliver"


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.processor())
    threads = os.environ.get("FACEPLATE_THREADS", "default")
    return f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}; FACEPLATE_THREADS={threads}"


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="wan_animate_video.mp4")
    ap.add_argument("--frames", default="0-23")
    args = ap.parse_args()
    from faceplate.config import ExtractConfig, RenderConfig
    from faceplate.deliver.nuke import NukeConfig, write_nuke_script
    from faceplate.effects.beauty import BeautyEffect
    from faceplate.extract import extract
    from faceplate.render import render

    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}")
    shutil.rmtree(WORK, ignore_errors=True)
    plate, shot = str(MEDIA / args.clip), WORK / "shot"
    extract(ExtractConfig(plate=plate, shot=shot, frames=args.frames))
    base = None
    runs = (("plain EXR comp", []), ("+ layers", ["layers"]), ("+ layers, patches", ["layers", "patches"]))
    for name, deliver in runs:
        out = WORK / name.replace(" ", "").replace(",", "_").replace("+", "with_") / "comp.####.exr"
        cfg = RenderConfig(plate=plate, out=str(out), shot=shot, frames=args.frames, deliver=deliver)
        t0 = time.perf_counter()
        s = render(cfg, BeautyEffect())
        dt = time.perf_counter() - t0
        base = dt if base is None else base
        extra = (dt - base) / max(s.written, 1)
        parts = {"comp": "comp.*.exr", "layers": "comp_layers.*.exr", "patches": "comp_patches"}
        sizes = ", ".join(f"{k} {sum(size_mb(f) for f in out.parent.glob(g)) / s.written:.1f} MB a frame"
                          for k, g in parts.items() if any(out.parent.glob(g)))  # fmt: skip
        print(f"{name:<20} {s.written} frames {dt:6.1f} s = {s.written / dt:5.2f} fps; +{extra:.2f} s a frame; {sizes}")
    t0 = time.perf_counter()
    nk = write_nuke_script(NukeConfig(render=str(out), out=out.parent / "shot.nk", overwrite=True))
    print(f"faceplate nuke: {time.perf_counter() - t0:.2f} s, {nk.stat().st_size / 1024:.0f} KB; "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
