"""Phase 2 routes of the review app: tune on a frame, presets and per-range overrides, the render queue and
the training monitor (every one behind the server's token, like the rest).

- ``GET /api/tune/{effect}`` the effect's settings form, its presets and overrides
- ``POST /api/tune/frame`` ``{effect, settings, model?, frame, layer?}`` → the frame re-rendered (proxy
  format; ``layer`` rgb | matte), headers ``X-Frame`` and ``X-Render-Ms``
- ``POST /api/presets`` ``{effect, name, settings}``; ``POST /api/overrides`` ``{effect, first, last, settings}``;
  ``DELETE /api/overrides/{id}``
- ``GET /api/jobs``; ``POST /api/jobs`` ``{effect, settings, model?, frames?, out?}``;
  ``POST /api/jobs/{id}/cancel`` and ``/resume`` (progress: ``jobs`` events)
- ``GET /api/train?model=FOLDER`` losses and preview stamp; ``GET /api/train/preview?model=FOLDER`` the PNG

A model folder named by the page must be one given at startup (``--model``) or lie in the shot folder, a
job's output in the shot folder or a render's folder (:mod:`faceplate.app.paths`); anything else is refused.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Body, FastAPI, HTTPException, Response

from faceplate.app import proxies
from faceplate.app.paths import model_folder, output_path
from faceplate.app.training import PREVIEW, monitor
from faceplate.app.tune import NEEDS_MODEL, TUNABLE, form, make_effect, write_shot
from faceplate.config import Override, Preset
from faceplate.errors import ConfigError
from faceplate.media import colour
from faceplate.store import ShotStore

if TYPE_CHECKING:
    from faceplate.app.server import ReviewState


def frame_of(value: Any, first: int, last: int) -> int:
    """The plate frame a request names (``first`` when none); ConfigError unless a whole number, 404 outside."""
    if value is None:
        return first
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"frame must be a whole number, got {value!r}")
    if not first <= value <= last:
        raise HTTPException(404, f"frame {value} is outside the plate ({first}-{last})")
    return value


def tune_routes(app: FastAPI, st: ReviewState) -> None:
    """Add the tune, preset, override, job and training routes of ``st`` to ``app``."""

    def model_of(body: dict[str, Any]) -> str | None:
        return model_folder(body.get("model"), st.cfg.model_roots)

    @app.get("/api/tune")
    def effects() -> dict[str, Any]:
        return {"effects": list(TUNABLE), "needs_model": list(NEEDS_MODEL)}

    @app.get("/api/tune/{effect}")
    def tune_form(effect: str) -> dict[str, Any]:
        with ShotStore.open(st.cfg.shot) as store:
            presets = [{"name": n, "settings": v} for _, n, v in store.presets(effect)]
            overrides = [{"id": i, "first": a, "last": b, "settings": v} for i, a, b, v in store.overrides(effect)]
        return {"effect": effect, "controls": form(effect), "presets": presets, "overrides": overrides}

    @app.post("/api/tune/frame")
    def tune_frame(body: dict[str, Any] = Body(...)) -> Response:  # noqa: B008 (FastAPI's way)
        t0 = time.perf_counter()
        p = st.summary["plate"]
        frame = frame_of(body.get("frame"), p["first"], p["last"])
        effect = make_effect(str(body.get("effect")), body.get("settings") or {}, model_of(body))
        with st.front.busy():
            comp, matte = st.tuner.render(effect, frame)
        if body.get("layer") == "matte":
            px = proxies.matte8(matte)
        else:
            px = proxies.display8(colour.to_float(comp), st.views["plate"][1])
        data = proxies.encode(px, st.cfg.proxy_format, st.cfg.jpeg_quality)
        ms = f"{(time.perf_counter() - t0) * 1000:.0f}"
        media = "image/png" if st.cfg.proxy_format == "png" else "image/jpeg"
        return Response(data, media_type=media, headers={"X-Frame": str(frame), "X-Render-Ms": ms})

    @app.post("/api/presets")
    def save_preset(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        model = model_of(body)  # the page sends the model folder along (a preset does not store it)
        pr = Preset(**{k: v for k, v in body.items() if k != "model"})
        make_effect(pr.effect, pr.settings, model)  # refuse settings the effect does not take
        write_shot(st.cfg.shot, lambda s: s.save_preset(pr.effect, pr.name, pr.settings))
        return {"saved": pr.name}

    @app.post("/api/overrides")
    def add_override(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        o = Override(first=body.get("first"), last=body.get("last"), settings=body.get("settings") or {})
        make_effect(str(body.get("effect")), o.settings, model_of(body))
        oid = write_shot(st.cfg.shot, lambda s: s.add_override(str(body["effect"]), o.first, o.last, o.settings))
        return {"id": oid}

    @app.delete("/api/overrides/{oid}")
    def delete_override(oid: int) -> dict[str, Any]:
        write_shot(st.cfg.shot, lambda s: s.delete_override(oid))
        return {"deleted": oid}

    @app.get("/api/jobs")
    def jobs() -> dict[str, Any]:
        return {"jobs": st.jobs.list()}

    @app.post("/api/jobs")
    def submit(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        out = output_path(body.get("out"), st.cfg.shot, st.cfg.output_roots)
        return {"id": st.jobs.submit({**body, "model": model_of(body), "out": out})}

    @app.post("/api/jobs/{jid}/{action}")
    def job_action(jid: int, action: str) -> dict[str, Any]:
        if action not in ("cancel", "resume"):
            raise HTTPException(404, f"no job action {action!r} (cancel, resume)")
        ok = st.jobs.cancel(jid) if action == "cancel" else st.jobs.resume(jid)
        return {"id": jid, action: ok, "state": st.jobs.job(jid)["state"]}

    def watched(folder: str) -> Path:
        got = model_folder(folder, st.cfg.model_roots)
        if got is None:
            raise ConfigError("name the model folder to watch")
        return Path(got)

    @app.get("/api/train")
    def train(model: str) -> dict[str, Any]:
        return monitor(watched(model))

    @app.get("/api/train/preview")
    def train_preview(model: str) -> Response:
        path = watched(model) / PREVIEW
        if not path.is_file():
            raise HTTPException(404, f"{model} has no {PREVIEW} yet")
        return Response(path.read_bytes(), media_type="image/png", headers={"Cache-Control": "no-cache"})
