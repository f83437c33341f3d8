"""The review app's speed through HTTP (issue #15 speed): the real server (:class:`ReviewServer` on uvicorn in a
thread) on a 1080p shot, timed from a client on one kept-alive connection, as the page's requests go.

- cached frame fetch (goal ≤ 50 ms): the same frames fetched again, from the proxy cache
- first proxy of an uncached frame (goal ≤ 150 ms): distinct frames, cache emptied first: of the video plate
  in frame order as the viewer steps (decode continues one stream) and in jumps (a seek each: a long-GOP
  video decodes from its keyframe), and of a 16-bit PNG sequence render and a scene-linear half-float EXR
  sequence render (PIZ, as faceplate's EXR writer writes; through the Un-tone-mapped view) in jumps (each
  frame on its own)
- the plate's background fill (the server starts it): first proxies in jumps while it runs, its time, and
  jumps after it (from the cache)
- tuned-frame preview (goal ≤ 1.5 s) for beauty and deage: the first request right after the server starts
  (the page just opened), settings changed on the same frame, the same settings on the next frame

    .venv/bin/python bench/bench_review.py [--clip fnp_video.mp4] [--frames 30] [--repeat 20]

The shot (a ``faceplate extract`` of the clip's first frames) is kept in ``bench/_work/review_bench``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MEDIA = Path(os.environ.get("FACEPLATE_MEDIA", REPO.parent / "shared" / "media"))
WORK = REPO / "bench" / "_work" / "review_bench"
GOALS_MS = {"cached": 50.0, "first": 150.0, "tune": 1500.0}


def machine() -> str:
    """CPU model, cores, memory and Python."""
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.processor())
    mem = next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))
    threads = os.environ.get("FACEPLATE_THREADS", "default")
    py = platform.python_version()
    return f"{cpu}, {os.cpu_count()} cores, {int(mem) / 2**20:.0f} GiB; Python {py}; FACEPLATE_THREADS={threads}"


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def shot_of(clip: Path, frames: int) -> Path:
    """The extracted shot of the clip's first ``frames`` frames (made once)."""
    from faceplate.config import ExtractConfig
    from faceplate.extract import extract

    shot = WORK / f"{clip.stem}_{frames}"
    t0 = time.perf_counter()
    s = extract(ExtractConfig(plate=str(clip), shot=shot, frames=f"0-{frames - 1}"))
    print(f"shot {shot}: {s.analysed} frame(s) analysed now, {time.perf_counter() - t0:.1f} s")
    return shot


class Client:
    """One kept-alive HTTP connection to the server, with its token cookie."""

    def __init__(self, url: str) -> None:
        host_port, self.query = url.split("//", 1)[1].split("/?", 1)
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self.reconnect()

    def reconnect(self) -> None:
        """A new connection (the page opened again: its cookie)."""
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        self.conn.request("GET", "/?" + self.query)
        r = self.conn.getresponse()
        r.read()
        self.cookie = r.getheader("set-cookie", "").split(";", 1)[0]

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[float, int, bytes]:
        """(ms, status, body) of one request, timed until its last byte."""
        headers = {"Cookie": self.cookie}
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        t0 = time.perf_counter()
        self.conn.request(method, path, body=data, headers=headers)
        r = self.conn.getresponse()
        out = r.read()
        ms = (time.perf_counter() - t0) * 1000
        if r.status != 200:
            raise SystemExit(f"{method} {path}: {r.status} {out[:300]!r}")
        return ms, r.status, out


def stats(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=20, method="inclusive")[18] if len(ms) >= 2 else ms[0]
    return f"median {statistics.median(ms):7.1f} ms · p95 {q:7.1f} ms · max {max(ms):7.1f} ms (n={len(ms)})"


def report(name: str, ms: list[float], goal: str) -> dict[str, Any]:
    limit = GOALS_MS[goal]
    ok = statistics.median(ms) <= limit
    print(f"  {name:<46} {stats(ms)}  goal ≤ {limit:.0f} ms: {'met' if ok else 'NOT MET'}")
    return {"name": name, "median": statistics.median(ms), "max": max(ms), "goal": limit, "met": ok}


def jumps(frames: list[int]) -> list[int]:
    """The frames in an order that seeks each time: backwards, every other one, then the rest."""
    back = frames[::-1]
    return back[::2] + back[1::2]


def bench_frames(c: Client, cache: Path, first: int, last: int, repeat: int, exr: int) -> list[dict[str, Any]]:
    """First proxies (cache emptied) of the video plate in steps and in jumps, of the PNG16 sequence render
    (r1) and of the EXR sequence render (r2, its ``exr`` frames) in jumps, then cached fetches."""
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    frames = list(range(first, last + 1))
    half = len(frames) // 2
    step = [c.call("GET", f"/frames/plate/rgb/{f}")[0] for f in frames[:half]]
    jump = [c.call("GET", f"/frames/plate/rgb/{f}")[0] for f in jumps(frames[half:])]
    seq = [c.call("GET", f"/frames/r1/rgb/{f}")[0] for f in jumps(frames)]
    exrs = [c.call("GET", f"/frames/r2/rgb/{f}")[0] for f in jumps(frames[:exr])]
    cached = [c.call("GET", f"/frames/plate/rgb/{frames[i % len(frames)]}")[0] for i in range(repeat)]
    return [
        report("first proxy, video plate, stepping", step, "first"),
        report("first proxy, video plate, jumping (seek each)", jump, "first"),
        report("first proxy, PNG16 sequence render, jumping", seq, "first"),
        report("first proxy, linear EXR render, jumping", exrs, "first"),
        report("cached frame fetch", cached, "cached"),
    ]


def bench_warm(c: Client, st: Any, cache: Path, first: int, last: int) -> list[dict[str, Any]]:
    """The plate's background fill (what the server starts with), cache emptied: jumps while it runs, the time
    until every plate frame is cached, then jumps after it (cached)."""
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    t0 = time.perf_counter()
    st.warm("plate")
    order = jumps(list(range(first, last + 1)))
    during = [c.call("GET", f"/frames/plate/rgb/{f}")[0] for f in order[: len(order) // 2]]
    st.warming["plate"].join()
    p = st.summary["plate"]
    n, dt = p["last"] - p["first"] + 1, time.perf_counter() - t0
    src = st.sources["plate"]
    held = sum(st.cache.get(st.proxy_key(src, "rgb", f)[0]) is not None for f in range(p["first"], p["last"] + 1))
    print(f"  plate fill (background, nice 19): {n} frames in {dt:.1f} s; {held} of them cached")
    c.reconnect()  # the wait outlasted the server's keep-alive
    after = [c.call("GET", f"/frames/plate/rgb/{f}")[0] for f in order]
    return [
        report("first proxy, video plate, jumping, during the fill", during, "first"),
        report("video plate, jumping, after the fill", after, "cached"),
    ]


def sequence_of(clip: Path, frames: int) -> str:
    """The clip's first ``frames`` frames as a 16-bit PNG sequence (a render job's output format; made once)."""
    import cv2
    import numpy as np

    from faceplate.media.frames import FrameRange
    from faceplate.media.plate import open_plate

    folder = WORK / f"{clip.stem}_{frames}_png16"
    if len(list(folder.glob("comp.*.png"))) < frames:
        folder.mkdir(parents=True, exist_ok=True)
        with open_plate(clip) as plate:
            for n, rgb in plate.frames(FrameRange(0, frames - 1), native=True):
                bgr = cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR).astype(np.uint16) * np.uint16(257)
                cv2.imwrite(str(folder / f"comp.{n:04d}.png"), bgr)
    return str(folder / "comp.####.png")


def exr_sequence_of(clip: Path, frames: int) -> str:
    """The clip's first ``frames`` frames as scene-linear half-float EXRs (Rec.709 video → Linear Rec.709,
    times 2 so highlights pass 1) by faceplate's EXR writer (PIZ, as a render writes them; made once)."""
    import numpy as np

    from faceplate.media import colour
    from faceplate.media.frames import FrameRange
    from faceplate.media.plate import open_plate
    from faceplate.media.writers import WriterSpec, open_writer

    folder = WORK / f"{clip.stem}_{frames}_exr"
    pattern = str(folder / "comp.####.exr")
    if len(list(folder.glob("comp.*.exr"))) < frames:
        folder.mkdir(parents=True, exist_ok=True)
        with open_plate(clip) as plate:
            to_linear = colour.converter(plate.info.colorspace, colour.LINEAR_709)
            i = plate.info
            spec = WriterSpec(pattern, i.width, i.height, format="exr", colorspace=colour.LINEAR_709)
            with open_writer(spec) as out:
                for n, rgb in plate.frames(FrameRange(0, frames - 1)):
                    x = np.ascontiguousarray(rgb, np.float32)
                    to_linear(x)
                    out.write(n, x * np.float32(2.0))
    return pattern


def tune_body(effect: str, frame: int, value: float) -> dict[str, Any]:
    key = "strength" if effect == "beauty" else "years"
    return {"effect": effect, "settings": {"settings": {key: value}}, "frame": frame}


def bench_tune(c: Client, effect: str, frame: int, n: int) -> list[dict[str, Any]]:
    """Cold, settings changed (same frame), same settings (next frames) of one effect."""
    values = [0.3 + 0.6 * i / n for i in range(n)] if effect == "beauty" else [5.0 + 25.0 * i / n for i in range(n)]
    cold = [c.call("POST", "/api/tune/frame", tune_body(effect, frame, values[0]))[0]]
    changed = [c.call("POST", "/api/tune/frame", tune_body(effect, frame, v))[0] for v in values[1:]]
    nxt = [c.call("POST", "/api/tune/frame", tune_body(effect, frame + 1 + i, values[-1]))[0] for i in range(n)]
    return [
        report(f"{effect}: first request (page just opened)", cold, "tune"),
        report(f"{effect}: settings changed, same frame", changed, "tune"),
        report(f"{effect}: same settings, next frame", nxt, "tune"),
    ]


def timed(what: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    out = fn()
    print(f"{what}: {time.perf_counter() - t0:.1f} s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="fnp_video.mp4")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=40, help="cached fetches")
    ap.add_argument("--tune", type=int, default=6, help="tune requests of each kind")
    ap.add_argument("--exr-frames", type=int, default=20, help="frames of the EXR sequence render")
    ap.add_argument("--no-warm", action="store_true", help="no plate fill at server start (the old behaviour)")
    args = ap.parse_args()
    from faceplate.app import ReviewConfig, ReviewServer

    print(f"machine: {machine()}\nbefore: {load()}")
    shot = shot_of(MEDIA / args.clip, args.frames)
    exr_frames = min(args.exr_frames, args.frames)
    renders = [sequence_of(MEDIA / args.clip, args.frames), exr_sequence_of(MEDIA / args.clip, exr_frames)]
    warm = {"warm_plate": False} if args.no_warm else {}  # (not passed otherwise: an older faceplate runs it too)
    cfg = ReviewConfig(shot=shot, open_browser=False, renders=renders, **warm)
    srv = timed("server start", lambda: ReviewServer(cfg))
    p = srv.state.summary["plate"]
    print(f"plate {args.clip}: {p['width']}x{p['height']}, frames {p['first']}-{p['last']}, JPEG q{cfg.jpeg_quality}")
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    try:
        c = Client(srv.url)  # the page opened right away; the server readies the tune panel meanwhile
        last = min(p["last"], p["first"] + args.frames - 1)  # the analysed frames
        mid = max(p["first"], (p["first"] + last) // 2 - args.tune)
        rows = [row for effect in ("beauty", "deage") for row in bench_tune(c, effect, mid, args.tune)]
        if "plate" in srv.state.warming:  # the fill the server started with ends before the cache is emptied
            srv.state.warming["plate"].join()
        rows += bench_frames(c, cfg.cache_folder, p["first"], last, args.repeat, exr_frames)
        rows += bench_warm(c, srv.state, cfg.cache_folder, p["first"], last)
    finally:
        srv.stop()
        t.join(10)
    missed = [r["name"] for r in rows if not r["met"]]
    print(f"after: {load()}")
    print("all goals met (medians)" if not missed else f"goals missed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
