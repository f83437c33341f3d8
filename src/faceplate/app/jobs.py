"""The render queue: jobs stored in the shot (``jobs`` table), run one at a time on a worker thread through
:func:`faceplate.render.render` (the API the CLI calls), progress (frames done, fps) on the event bus (topic
``jobs``). Cancel takes the render's Ctrl-C path (finished frames are kept); resume runs the same render
again, which skips the frames on disk. A job running when the server stopped is ``interrupted`` at the next
start, and can be resumed.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faceplate.app.events import EventBus
from faceplate.app.sources import sibling
from faceplate.app.tune import make_effect, shot_render_config, write_shot
from faceplate.errors import FaceplateError, Interrupted, StoreError
from faceplate.store import ShotStore

ACTIVE = ("queued", "running")
RESUMABLE = ("cancelled", "interrupted", "failed")
SAVE_EVERY_S = 1.0  # progress written to the store at most this often (events go out every frame)


def default_out(shot: Path, jid: int, effect: str) -> str:
    """Where a job renders when no output is given: a PNG sequence in the shot (resumable frame by frame)."""
    return str(shot / "renders" / f"job{jid}_{effect}" / "comp.####.png")


def delta_of(out: str) -> str:
    """Where a job that keeps its delta writes it: ``comp.####.png`` → ``comp_delta.####.exr`` (found beside
    the comp by the viewer)."""
    return str(Path(sibling(out, "delta")).with_suffix(".exr"))


def job_spec(body: dict[str, Any]) -> dict[str, Any]:
    """The stored spec of a submitted job (effect, settings patch, model, frames, out, delta: also write the
    delta); ConfigError when the effect cannot be built from it."""
    spec: dict[str, Any] = {k: body.get(k) for k in ("effect", "model", "frames", "out")}
    spec["settings"] = body.get("settings") or {}
    spec["delta"] = body.get("delta") is True
    make_effect(str(spec["effect"]), spec["settings"], spec["model"])
    return spec


def _mark(store: ShotStore, ids: list[int], state: str, message: str) -> None:
    for i in ids:
        store.update_job(i, state=state, message=message)


class _Cancelled(Exception):
    pass


class JobQueue:
    """The shot's render jobs and the thread that runs them (started on the first job)."""

    def __init__(self, shot: Path, bus: EventBus, on_done: Callable[[str], str | None], plate: str | None = None):
        self.shot, self.bus, self.on_done, self.plate = shot, bus, on_done, plate
        self._todo: queue.Queue[int | None] = queue.Queue()
        self._cancel: set[int] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _write(self, fn: Callable[[ShotStore], Any]) -> Any:
        return write_shot(self.shot, fn)

    def recover(self) -> None:
        """Mark the jobs a stopped server left queued or running as interrupted (the store is only written
        when there are some: a review beside another process's render must not wait for its lock)."""
        stale = [j["id"] for j in self.list() if j["state"] in ACTIVE]
        if stale:
            self._write(lambda s: _mark(s, stale, "interrupted", "the server stopped"))

    def list(self) -> list[dict[str, Any]]:
        with ShotStore.open(self.shot) as store:
            return store.jobs()

    def job(self, jid: int) -> dict[str, Any]:
        got = [j for j in self.list() if j["id"] == jid]
        if not got:
            raise StoreError(f"no render job {jid} in {self.shot}")
        return got[0]

    def submit(self, body: dict[str, Any]) -> int:
        """Store a job and queue it; returns its id."""
        spec = job_spec(body)
        shot_render_config(self.shot, str(spec["out"] or "x.png"), spec["frames"], self.plate)  # bad frames: refused
        jid = int(self._write(lambda s: s.add_job(spec)))
        if not spec["out"]:
            spec["out"] = default_out(self.shot, jid, spec["effect"])
            self._write(lambda s: s.update_job(jid, spec=json.dumps(spec)))
        self._queue(jid)
        return jid

    def resume(self, jid: int) -> bool:
        """Queue a cancelled, interrupted or failed job again (its finished frames are kept); False otherwise."""
        if self.job(jid)["state"] not in RESUMABLE:
            return False
        self._write(lambda s: s.update_job(jid, state="queued", message=""))
        self._queue(jid)
        return True

    def cancel(self, jid: int) -> bool:
        """Stop a queued or running job after the frame it is on; False when it is not active."""
        if self.job(jid)["state"] not in ACTIVE:
            return False
        with self._lock:
            self._cancel.add(jid)
        self._write(lambda s: s.update_job(jid, message="cancelling"))
        return True

    def _queue(self, jid: int) -> None:
        with self._lock:
            self._cancel.discard(jid)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="faceplate-jobs", daemon=True)
                self._thread.start()
        self._todo.put(jid)

    def _work(self) -> None:
        while (jid := self._todo.get()) is not None:
            if self.job(jid)["state"] == "queued":
                self._run(jid)

    def _run(self, jid: int) -> None:
        """Render job ``jid`` to its end, its cancel, or an error (one line in its message)."""
        spec = self.job(jid)["spec"]
        state, msg, prog = "done", "", _Progress(self, jid)
        self._write(lambda s: s.update_job(jid, state="running", message=""))
        self._publish(jid, "running")
        try:
            if jid in self._cancel:
                raise _Cancelled
            from faceplate.render import render

            delta = delta_of(spec["out"]) if spec.get("delta") else None
            cfg = shot_render_config(self.shot, spec["out"], spec["frames"], self.plate, delta)
            render(cfg, make_effect(spec["effect"], spec["settings"], spec["model"]), prog)
            msg = f"opened in the viewer as {self.on_done(spec['out'])}"
        except (_Cancelled, Interrupted, KeyboardInterrupt):
            state, msg = "cancelled", "cancelled; the frames written are kept: resume to finish"
        except FaceplateError as err:
            state, msg = "failed", str(err)
        except Exception as err:  # a bug: the job says so instead of the thread dying silently
            state, msg = "failed", f"{type(err).__name__}: {err}"
        with self._lock:
            self._cancel.discard(jid)
        self._write(lambda s: s.update_job(jid, state=state, message=msg, done=prog.done, total=prog.total,
                                           fps=round(prog.fps, 2)))  # fmt: skip
        self._publish(jid, state, message=msg, done=prog.done, total=prog.total, fps=prog.fps)

    def _publish(self, jid: int, state: str, **more: Any) -> None:
        self.bus.publish("jobs", {"id": jid, "state": state, **more})

    def cancelled(self, jid: int) -> bool:
        with self._lock:
            return jid in self._cancel

    def close(self) -> None:
        """Cancel the running job (its frames so far are kept) and end the worker."""
        with self._lock:
            self._cancel.update(j["id"] for j in self.list() if j["state"] in ACTIVE)
        self._todo.put(None)
        if self._thread is not None:
            self._thread.join(30)


class _Progress:
    """The render's progress callback of one job: events, the store now and then, and the cancel check
    (KeyboardInterrupt: the render's own Ctrl-C path, which keeps the frames written)."""

    def __init__(self, jobs: JobQueue, jid: int) -> None:
        self.jobs, self.jid = jobs, jid
        self.done, self.total, self.fps = 0, 0, 0.0
        self.t0 = self.saved = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        self.done, self.total = done, total
        self.fps = done / (now - self.t0) if now > self.t0 else 0.0
        self.jobs._publish(self.jid, "running", done=done, total=total, fps=round(self.fps, 2))
        if now - self.saved >= SAVE_EVERY_S:
            self.saved = now
            self.jobs._write(lambda s: s.update_job(self.jid, done=done, total=total, fps=round(self.fps, 2)))
        if self.jobs.cancelled(self.jid):
            raise KeyboardInterrupt
