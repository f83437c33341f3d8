"""Where a 1080p render's CPU goes, thread by thread, and how busy it keeps the cores (issue #14 speed).

Runs one fresh-shot render in this process while a sampler thread reads every thread's scheduler counters
(``/proc/self/task/*/schedstat``: ns run on a CPU, ns waiting runnable) every few ms. Reported, per frame:
CPU ms of each thread group (Python threads by name; native threads by their ``comm``), the Stopwatch stages
(wall and CPU ms), and the pipeline's *demand*: how many of its threads were runnable (running or waiting for
a core) on average and the share of time with at least 1 and at least 2 runnable. Demand does not depend on
other processes loading the machine (they only turn running time into waiting time), so it shows whether
the pipeline could keep two free cores busy.

    FACEPLATE_THREADS=2 .venv/bin/python bench/bench_pipeline.py [--clip wan_animate_video.mp4] [--frames 0-105]
                                            [--effect deage] [--src OLD/src NEW/src ...] [--repeat 1]

Each run also hashes its decoded output frames: runs of different code that must give the same pictures
can be compared bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MEDIA = REPO.parent / "shared" / "media"

CHILD = r"""
import json, os, sys, threading, time
from collections import defaultdict
from faceplate.config import RenderConfig
from faceplate.effects import EFFECTS
from faceplate.render import render

def tasks():
    out = {}
    for tid in os.listdir('/proc/self/task'):
        try:
            with open(f'/proc/self/task/{tid}/schedstat') as f:
                run, wait, _ = f.read().split()
            with open(f'/proc/self/task/{tid}/comm') as f:
                comm = f.read().strip()
        except OSError:
            continue
        out[int(tid)] = (int(run), int(wait), comm)
    return out

names, stop, samples, seen = {}, threading.Event(), [], {}
me = []
def sampler():
    me.append(threading.get_native_id())
    prev, tp = tasks(), time.perf_counter()
    while not stop.is_set():
        time.sleep(float(sys.argv[5]))
        for t in threading.enumerate():
            if t.native_id is not None:
                names[t.native_id] = t.name
        cur, tc = tasks(), time.perf_counter()
        dt = (tc - tp) * 1e9
        demand = sum((r + w) - (prev[k][0] + prev[k][1]) for k, (r, w, _) in cur.items() if k in prev and k != me[0])
        run = sum(r - prev[k][0] for k, (r, w, _) in cur.items() if k in prev and k != me[0])
        samples.append((dt, demand / dt, run / dt))
        seen.update(cur)
        prev, tp = cur, tc
    seen.update(tasks())
    per = defaultdict(float)
    for k, (r, w, comm) in seen.items():
        if k == me[0]:
            continue
        name = names.get(k, comm)
        for p in ('faceplate-effect', 'ThreadPoolExecutor'):
            if name.startswith(p):
                name = p + ' (all)'
        per[name] += r / 1e6
    me.append(dict(per))

exec(sys.argv[6])
th = threading.Thread(target=sampler, daemon=True)
import resource
kids = lambda: sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])
kids0 = kids()
c = time.process_time() + kids0
th.start()
s = render(RenderConfig(plate=sys.argv[1], out=sys.argv[2], frames=sys.argv[3]), EFFECTS.get(sys.argv[4])())
cpu = time.process_time() + kids() - c
stop.set(); th.join()
import hashlib, av
digest = hashlib.sha256()
with av.open(sys.argv[2]) as out_file:
    for vf in out_file.decode(video=0):
        digest.update(vf.to_ndarray().tobytes())
busy = [x for x in samples]
tot = sum(d for d, _, _ in busy)
print(json.dumps({
    'n': s.written, 'fps': s.written / s.seconds, 'cpu_ms': 1000 * cpu / s.written,
    'helpers_ms': 1000 * (kids() - kids0) / s.written,
    'stages': {k: 1000 * v / s.written for k, v in s.stages.items()},
    'cpu_stages': {k: 1000 * v / s.written for k, v in getattr(s, 'cpu', {}).items()},
    'threads': {k: v / s.written for k, v in sorted(me[1].items(), key=lambda kv: -kv[1])},
    'demand': sum(d * x for d, x, _ in busy) / tot,
    'ge1': sum(d for d, x, _ in busy if x >= 0.9) / tot,
    'ge2': sum(d for d, x, _ in busy if x >= 1.8) / tot,
    'running': sum(d * r for d, _, r in busy) / tot,
    'load': os.getloadavg()[0], 'frames_sha256': digest.hexdigest()[:16],
    'quiet_s': sum(r * d / min(max(x, 1e-9), 2.0) if x > 0.05 else d for d, x, r in busy) / 1e9,
    'timeline': [round(sum(d * min(x, 2.0) for d, x, _ in part) / max(sum(d for d, _, _ in part), 1), 2)
                 for part in (busy[i * len(busy) // 10:(i + 1) * len(busy) // 10] for i in range(10))],
}))
"""


def run(
    clip: str,
    frames: str,
    effect: str,
    src: Path | None,
    period: float,
    pre: str = "",
    env_add: dict[str, str] | None = None,
) -> dict[str, Any]:
    env = {**os.environ, **(env_add or {}), **({"PYTHONPATH": str(src)} if src is not None else {})}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-c", CHILD, str(MEDIA / clip), f"{tmp}/c.mp4", frames, effect, str(period), pre]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    r: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return r


def report(label: str, r: dict[str, Any]) -> None:
    """Print one run's figures."""
    print(f"\n{label}: {r['n']} frames, {r['fps']:.1f} fps here (load {r['load']:.1f}), "
          f"CPU {r['cpu_ms']:.0f} ms / frame (helper processes {r['helpers_ms']:.1f}); "
          f"decoded output frames sha256 {r['frames_sha256']}")  # fmt: skip
    print(f"demand: mean {r['demand']:.2f} runnable threads; >= 1 runnable {100 * r['ge1']:.0f}% of the time, "
          f">= 2 {100 * r['ge2']:.0f}%; running {r['running']:.2f} cores")  # fmt: skip
    print(f"upper bound on 2 free cores (load-inflated: read only as A/B): {r['n'] / r['quiet_s']:.1f} fps; cores the "
          "pipeline could use, by tenths of the run: " + " ".join(str(x) for x in r["timeline"]))  # fmt: skip
    print("threads, CPU ms / frame: " + ", ".join(f"{k} {v:.1f}" for k, v in r["threads"].items() if v >= 0.5))
    print("stages, wall ms / frame: " + ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items()))
    if r["cpu_stages"]:
        print("stages, CPU ms / frame of the stage's thread: "
              + ", ".join(f"{k} {v:.1f}" for k, v in r["cpu_stages"].items()))  # fmt: skip


def main() -> None:
    from bench_extract import machine

    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", default="wan_animate_video.mp4")
    ap.add_argument("--frames", default="0-105")
    ap.add_argument("--effect", default="deage")
    ap.add_argument(
        "--src", type=Path, nargs="*", help="src folders to import faceplate from, in turn (default: this tree)"
    )
    ap.add_argument("--repeat", type=int, default=1, help="rounds over the src folders")
    ap.add_argument("--period", type=float, default=0.02, help="sampling period, s")
    ap.add_argument("--json", help="also append each run's raw figures to this file (JSON lines)")
    args = ap.parse_args()
    print(f"machine: {machine()}; FACEPLATE_THREADS={os.environ.get('FACEPLATE_THREADS', '')}")
    for _ in range(args.repeat):
        for src in args.src or [None]:
            r = run(args.clip, args.frames, args.effect, src, args.period)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps({"clip": args.clip, "effect": args.effect, "src": str(src), **r}) + "\n")
            report(f"{args.clip} {args.frames} {args.effect} ({src or 'this tree'})", r)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
