"""Benchmark ``faceplate extract`` end to end (decode + detect + landmarks + track + identity + store).

Plates: the real clip lp_source_s32.mp4 (one face) upscaled to 1080p and 4K (bench/make_plates.py), once
(180 frames) and looped 3x (540 frames) to show memory is flat in clip length. Each run is a fresh process
and a fresh shot folder; we report the median of ``--repeat`` runs.

    .venv/bin/python bench/bench_extract.py [--repeat 3] [--sizes 1080p 4k]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from make_plates import make

CHILD = """
import json, sys
def hwm_mb():  # this process's own peak: ru_maxrss keeps the parent's peak across fork + exec on Linux
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
from faceplate.config import ExtractConfig
from faceplate.extract import extract
s = extract(ExtractConfig(plate=sys.argv[1], shot=sys.argv[2], hands=sys.argv[3] == "1"))
print(json.dumps({"frames": s.analysed, "seconds": s.seconds, "stages": s.stages,
                  "rss_mb": hwm_mb()}))
"""


def machine() -> str:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    mem = int(next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")))
    import av
    import mediapipe

    return (
        f"{cpu}, {os.cpu_count()} cores, {mem / 2**20:.0f} GiB; Python {platform.python_version()}, "
        f"mediapipe {mediapipe.__version__}, PyAV {av.__version__}"
    )


def run_once(plate: Path, hands: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as shot:
        argv = [sys.executable, "-c", CHILD, str(plate), shot, "1" if hands else "0"]
        out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", nargs="+", default=["1080p", "4k"])
    ap.add_argument("--no-hands", action="store_true", help="leave out the hand pass (issue #2's stages only)")
    args = ap.parse_args()
    print(f"machine: {machine()}\nhands pass: {'off' if args.no_hands else 'on'}\n")
    print(
        "| plate | frames | end-to-end fps | steady fps | peak RSS | per frame: decode wait / detect+landmarks / "
        "hands / identity / store (ms) | model load + finalize (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        for loops in (1, 3):
            plate = make(size, loops)
            runs = [run_once(plate, not args.no_hands) for _ in range(args.repeat)]
            fps = [r["frames"] / r["seconds"] for r in runs]  # type: ignore[operator]
            med = runs[fps.index(statistics.median_low(fps))]
            st: dict[str, float] = med["stages"]  # type: ignore[assignment]
            n = float(med["frames"])  # type: ignore[arg-type]
            fixed = st.get("model load", 0) + st.get("finalize", 0)
            steady = n / (float(med["seconds"]) - fixed)  # type: ignore[arg-type]
            per = " / ".join(
                f"{1000 * st.get(k, 0) / n:.1f}"
                for k in ("decode (wait)", "detect + landmarks", "hands", "identity", "store")
            )
            all_fps = ", ".join(f"{f:.1f}" for f in fps)
            print(
                f"| {size} x{loops} | {int(n)} | {statistics.median(fps):.1f} (runs: {all_fps}) | {steady:.1f} "
                f"| {med['rss_mb']:.0f} MB | {per} | {fixed:.2f} |"
            )


if __name__ == "__main__":
    main()
