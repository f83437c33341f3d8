"""The review web app: a FastAPI app built from a :class:`ReviewConfig` (no global state: everything lives
in the app's :class:`ReviewState`), behind a token, and :func:`serve`, which runs it on uvicorn.

Routes (every one refuses a request without the token: 403):

- ``GET /`` the page (``?token=`` sets the cookie and redirects to a clean URL)
- ``GET /api/shot`` plate timing, sources, tracks, scrub-bar marks and QC flags (JSON)
- ``GET /api/tracks/{id}/boxes`` a track's face boxes per frame (JSON), for following it
- ``GET /frames/{source}/{layer}/{frame}`` a display proxy (JPEG/PNG) of plate frame ``frame``; ``layer``
  rgb | matte | delta; ETag = the cache key, so a changed render is fetched again
- ``GET /thumbs/{track}`` a track's thumbnail
- ``POST /api/warm/{source}`` fill the proxy cache of a source in the background (progress on /events)
- ``GET /events`` server-sent events (topics ``cache``, ``jobs``, ``sources``)
- ``/static/*`` the page's scripts and styles (shipped in the wheel, no CDN)
- tune on a frame, presets and overrides, the render queue, the training monitor: see :mod:`faceplate.app.routes`
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import html
import json
import secrets
import socket
import threading
import webbrowser
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlencode

import numpy as np
import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from numpy.typing import NDArray
from pydantic import ValidationError

from faceplate.app import proxies
from faceplate.app.config import ReviewConfig
from faceplate.app.events import EventBus, Foreground
from faceplate.app.jobs import JobQueue
from faceplate.app.proxies import ProxyCache, View
from faceplate.app.routes import tune_routes
from faceplate.app.shotinfo import shot_summary, track_boxes
from faceplate.app.sources import LAYERS, Reader, Source, open_source
from faceplate.app.tune import TUNABLE, Tuner, make_effect
from faceplate.cpu import lower_thread_priority
from faceplate.errors import ConfigError, FaceplateError, PlateError, StoreError
from faceplate.media.frames import timecode
from faceplate.store import ShotStore

HERE = Path(__file__).parent
STATIC, TEMPLATES = HERE / "static", HERE / "templates"
THUMB = 96
Scope = MutableMapping[str, Any]
Asgi = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


@dataclass
class ReviewState:
    """One shot's review session: config, token, the shot's summary, sources, proxy cache, event bus, the
    tuner (plate, store and track contexts kept between requests) and the render queue."""

    cfg: ReviewConfig
    token: str
    summary: dict[str, Any]
    sources: dict[str, Source]
    views: dict[str, tuple[View, proxies.Processor]]
    cache: ProxyCache
    bus: EventBus = field(default_factory=EventBus)
    front: Foreground = field(default_factory=Foreground)
    warming: dict[str, threading.Thread] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    tuner: Tuner = field(init=False)
    jobs: JobQueue = field(init=False)

    def __post_init__(self) -> None:
        self.tuner = Tuner(self.cfg.shot, self.cfg.plate)
        self.jobs = JobQueue(self.cfg.shot, self.bus, self.add_render, self.cfg.plate)

    @classmethod
    def load(cls, cfg: ReviewConfig) -> ReviewState:
        """Open the shot, its plate and the renders; FaceplateError (one line) on any bad input."""
        if not cfg.shot.is_dir():
            raise StoreError(f"shot folder {cfg.shot} does not exist; run `faceplate extract` first")
        for m in cfg.models:
            if not m.is_dir():
                raise ConfigError(f"--model {m} is not a folder")
        with ShotStore.open(cfg.shot) as store:
            info = store.plate
            summary = shot_summary(store, cfg)
            sources = {"plate": _open_plate(store, cfg)}
        try:
            for i, path in enumerate(cfg.renders):
                sources[f"r{i + 1}"] = open_source(f"r{i + 1}", path, "render", info)
            views = {sid: _view(s, cfg) for sid, s in sources.items()}
            cache = ProxyCache(cfg.cache_folder, cfg.proxy_format, int(cfg.cache_limit_gb * 2**30))
        except BaseException:
            for s in sources.values():
                s.close()
            raise
        summary["sources"] = [s.describe() for s in sources.values()]
        summary["view"] = views["plate"][0].label()
        st = cls(cfg, cfg.token or secrets.token_urlsafe(24), summary, sources, views, cache)
        with contextlib.suppress(StoreError):  # another process writes the shot: its jobs stay as listed
            st.jobs.recover()
        for j in st.jobs.list():  # finished renders of the queue open in the viewer again
            if j["state"] == "done":
                with contextlib.suppress(FaceplateError):
                    st.add_render(j["spec"]["out"], publish=False)
        return st

    def add_render(self, path: str, publish: bool = True) -> str:
        """Open the render ``path`` as a new source (a finished job's); returns its id (event ``sources``)."""
        with self.lock:
            known = [s.id for s in self.sources.values() if s.path == path]
            if known:
                return known[0]
            sid = f"r{len(self.sources)}"
            src = open_source(sid, path, "render", self.sources["plate"].rgb.info)
            if any(s.label == src.label for s in self.sources.values()):  # two comp.####.png: name the folder
                src.label = f"{Path(path).parent.name}/{src.label}"
            self.sources[sid], self.views[sid] = src, _view(src, self.cfg)
            self.summary["sources"] = [s.describe() for s in self.sources.values()]
        if publish:
            self.bus.publish("sources", {"sources": self.summary["sources"], "added": sid})
        return sid

    @property
    def cookie(self) -> str:
        """The cookie's name: one per server (two review servers on one host keep their own)."""
        return "faceplate_review_" + hashlib.sha256(self.token.encode()).hexdigest()[:10]

    def source(self, sid: str) -> Source:
        if sid not in self.sources:
            raise HTTPException(404, f"no source {sid!r} (sources: {', '.join(self.sources)})")
        return self.sources[sid]

    def proxy_key(self, src: Source, layer: str, frame: int) -> tuple[str, int] | None:
        """(cache key, source frame) of the proxy of plate frame ``frame``; None when the source lacks it."""
        sf = src.source_frame(frame, layer)
        if sf is None:
            return None
        file = src.reader(layer).frame_file(sf)
        view = self.views[src.id][0] if layer == "rgb" else View(layer, "-", "-")
        try:
            stamp = proxies.file_stamp(file)
        except OSError:
            return None
        c = self.cfg
        return proxies.proxy_key(str(Path(file).resolve()), stamp, sf, layer, view, c.proxy_format, c.jpeg_quality), sf

    def make_proxy(self, src: Source, layer: str, sf: int) -> bytes:
        """Decode and encode one proxy (no cache)."""
        reader = src.reader(layer)
        view, proc = self.views[src.id]
        if layer == "rgb":
            px = raw_codes8(reader, sf) if view.raw else None
            px = px if px is not None else proxies.display8(reader.rgb(sf), proc)
        elif layer == "matte":
            alpha = reader.alpha(sf) if src.matte_in_alpha else reader.rgb(sf)
            px = proxies.matte8(alpha if alpha is not None else np.ones((1, 1), np.float32))
        else:
            px = proxies.delta8(reader.rgb(sf))
        return proxies.encode(px, self.cfg.proxy_format, self.cfg.jpeg_quality)

    def proxy(self, sid: str, layer: str, frame: int) -> tuple[bytes, str] | None:
        """(encoded proxy, its key) of ``frame`` of source ``sid``, from the cache or made now."""
        src = self.source(sid)
        if layer not in src.layers():
            raise HTTPException(404, f"{src.label} has no {layer} layer (it has: {', '.join(src.layers())})")
        got = self.proxy_key(src, layer, frame)
        if got is None:
            sf = src.source_frame(frame, layer)
            if sf is not None:  # a frame it has, whose file went away
                name = Path(src.reader(layer).frame_file(sf)).name
                raise HTTPException(404, f"{src.label}: {name} is gone (deleted or moved since the server started)")
            return None
        key, sf = got

        def make() -> bytes:
            with self.front.busy():  # the background fill waits meanwhile
                return self.make_proxy(src, layer, sf)

        return self.cache.get_or_make(key, make), key

    def thumbnail(self, track: int) -> bytes:
        """A track's representative face, aligned (THUMB px square), through the plate's view."""
        from faceplate.align import align_image, align_matrix
        from faceplate.review import representative

        with ShotStore.open(self.cfg.shot) as store:
            store.track(track)
            face = representative(store.track_faces(track))
        src = self.sources["plate"]
        got = self.proxy_key(src, "rgb", face.frame)
        if got is None:
            raise HTTPException(404, f"frame {face.frame} is not in the plate")
        key = hashlib.sha256(f"thumb{track}{got[0]}{face.best.tobytes().hex()[:64]}".encode()).hexdigest()[:32]

        def make() -> bytes:
            rgb8 = proxies.display8(src.rgb.rgb(face.frame), self.views["plate"][1])
            crop = align_image(rgb8, align_matrix(face.best, THUMB, "whole_face"), THUMB)
            return proxies.encode(crop, "jpeg", 90)

        return self.cache.get_or_make(key, make)

    def warm(self, sid: str) -> bool:
        """Start filling ``sid``'s rgb proxies in a thread of its own (progress: ``cache`` events); False when
        it is running already."""
        src = self.source(sid)
        with self.lock:
            if sid in self.warming and self.warming[sid].is_alive():
                return False
            t = threading.Thread(target=self._warm, args=(src,), name=f"warm-{sid}", daemon=True)
            self.warming[sid] = t
            t.start()
        return True

    def _warm(self, src: Source) -> None:
        """Make every missing rgb proxy of ``src`` in frame order (one decode stream of its own), at the lowest
        CPU priority (what the page waits for goes first); stops when its proxies would fill half the cache."""
        lower_thread_priority()
        p = self.summary["plate"]
        frames = [f for f in range(p["first"], p["last"] + 1) if self.proxy_key(src, "rgb", f) is not None]
        try:
            own = Source(src.id, src.label, src.path, src.role, Reader(src.path, src.rgb.info.colorspace, p["first"]))
        except FaceplateError as err:  # e.g. a frame of its sequence removed since the server started
            self.bus.publish("cache", {"source": src.id, "error": str(err)})
            return
        made = 0
        try:
            for i, f in enumerate(frames):
                while not self.front.wait_idle(1.0) and not self.bus.closed:
                    pass  # the page's requests first
                if self.bus.closed:
                    return
                got = self.proxy_key(own, "rgb", f)
                if got is not None and self.cache.get(got[0]) is None:
                    data = self.make_proxy(own, "rgb", got[1])
                    self.cache.put(got[0], data)
                    made += len(data)
                if self.cache.limit and made > self.cache.limit / 2:
                    gb = self.cache.limit / 2**30
                    raise FaceplateError(f"the proxy cache's limit ({gb:.1f} GiB) stops filling it at frame {f}")
                if i % 4 == 3 or i == len(frames) - 1:
                    self.bus.publish("cache", {"source": src.id, "done": i + 1, "total": len(frames)})
        except FaceplateError as err:
            self.bus.publish("cache", {"source": src.id, "error": str(err)})
        finally:
            own.close()

    def close(self) -> None:
        self.jobs.close()
        self.tuner.close()
        self.bus.close()
        for s in self.sources.values():
            s.close()


def raw_codes8(reader: Reader, frame: int) -> NDArray[np.uint8] | None:
    """A Raw view's proxy codes of ``frame`` read without the float pass (8/16-bit images, video as decoded);
    None where only the float path can make it."""
    if reader.is_sequence:
        return proxies.read_codes8(reader.frame_file(frame))
    codes = reader.codes(frame)
    return None if codes is None else proxies.codes8(codes)


def shot_gone(shot: Path) -> str | None:
    """The message when the shot folder (its store) went away while the server runs; None while it is there."""
    if (shot / "shot.sqlite").is_file():
        return None
    return f"the shot folder {shot} is gone (moved or deleted since the server started); put it back or restart"


def _open_plate(store: ShotStore, cfg: ReviewConfig) -> Source:
    """The shot's plate (or ``cfg.plate``, which must be the same plate: StoreError otherwise)."""
    try:
        src = open_source("plate", cfg.plate or store.plate.path, "plate", store.plate)
    except PlateError as err:
        raise PlateError(f"{err} (the shot's plate; pass --plate if it moved)") from None
    try:
        store.check_plate(src.rgb.plate)
    except StoreError as err:
        src.close()
        raise StoreError(f"--plate {cfg.plate}: {err}" if cfg.plate else str(err)) from None
    return src


def _view(src: Source, cfg: ReviewConfig) -> tuple[View, proxies.Processor]:
    """The view of a source (its own colour space, the configured display and view) and its processor."""
    v = proxies.resolve_view(src.rgb.info.colorspace, cfg.display, cfg.view)
    return v, proxies.view_processor(v)


# ------------------------------------------------------------------------------------------- the token
class TokenGuard:
    """ASGI middleware: 403 unless the request carries the token (``?token=`` or the session cookie). The
    page opened with ``?token=`` gets the cookie and a redirect to the same URL without it."""

    def __init__(self, app: Asgi, state: ReviewState) -> None:
        self.app, self.state = app, state

    def _ok(self, value: str | None) -> bool:
        return value is not None and secrets.compare_digest(value.encode(), self.state.token.encode())

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        req = Request(scope)
        if self._ok(req.cookies.get(self.state.cookie)):
            await self.app(scope, receive, send)
            return
        if not self._ok(req.query_params.get("token")):
            msg = "403: this review server needs its token: open the URL `faceplate review` printed\n"
            await PlainTextResponse(msg, status_code=403)(scope, receive, send)
            return
        if req.method == "GET" and req.url.path == "/":
            rest = urlencode([(k, v) for k, v in req.query_params.multi_items() if k != "token"])
            url = "/" + (f"?{rest}" if rest else "")
            resp: Response = RedirectResponse(url, status_code=303)
            resp.set_cookie(self.state.cookie, self.state.token, httponly=True, samesite="strict")
            await resp(scope, receive, send)
            return
        await self.app(scope, receive, send)


# ------------------------------------------------------------------------------------------- the app
def create_app(cfg: ReviewConfig, state: ReviewState | None = None) -> FastAPI:
    """The review app of ``cfg`` (its state: ``app.state.review``). FaceplateError on bad input."""
    st = state or ReviewState.load(cfg)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        st.close()

    app = FastAPI(title="faceplate review", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.review = st
    app.add_middleware(TokenGuard, state=st)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _routes(app, st)
    tune_routes(app, st)
    return app


def _routes(app: FastAPI, st: ReviewState) -> None:
    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return render_page(st)

    @app.get("/api/shot")
    def shot() -> dict[str, Any]:
        return st.summary

    @app.get("/api/tracks/{track}/boxes")
    def boxes(track: int) -> dict[str, Any]:
        with ShotStore.open(st.cfg.shot) as store:
            try:
                return {"track": track, "boxes": track_boxes(store, track)}
            except StoreError as err:
                raise HTTPException(404, shot_gone(st.cfg.shot) or str(err)) from None

    @app.get("/frames/{sid}/{layer}/{frame}")
    def frame(sid: str, layer: str, frame: int, request: Request) -> Response:
        if layer not in LAYERS:
            raise HTTPException(404, f"no layer {layer!r} (layers: {', '.join(LAYERS)})")
        got = st.proxy(sid, layer, frame)
        if got is None:
            raise HTTPException(404, f"{st.source(sid).label} has no frame {frame}")
        data, key = got
        headers = {"ETag": f'"{key}"', "Cache-Control": "no-cache", "X-Frame": str(frame)}
        if request.headers.get("if-none-match") == f'"{key}"':
            return Response(status_code=304, headers=headers)
        media = "image/png" if st.cfg.proxy_format == "png" else "image/jpeg"
        return Response(data, media_type=media, headers=headers)

    @app.get("/thumbs/{track}")
    def thumb(track: int) -> Response:
        try:
            return Response(st.thumbnail(track), media_type="image/jpeg")
        except StoreError as err:
            raise HTTPException(404, shot_gone(st.cfg.shot) or str(err)) from None

    @app.post("/api/warm/{sid}")
    def warm(sid: str) -> dict[str, Any]:
        return {"source": sid, "started": st.warm(sid)}

    @app.get("/events")
    def events() -> StreamingResponse:
        return StreamingResponse(st.bus.stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.exception_handler(FaceplateError)
    def faceplate_error(request: Request, err: FaceplateError) -> JSONResponse:
        gone = shot_gone(st.cfg.shot)
        status = 400 if isinstance(err, ConfigError) and not gone else 500
        return JSONResponse({"detail": gone or one_line(str(err))}, status_code=status)

    @app.exception_handler(ValidationError)
    @app.exception_handler(RequestValidationError)
    def bad_body(request: Request, err: ValidationError | RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_message(err.errors())}, status_code=400)

    @app.exception_handler(Exception)
    def bug(request: Request, err: Exception) -> JSONResponse:  # one line for the page, never a traceback
        return JSONResponse({"detail": one_line(f"internal error: {type(err).__name__}: {err}")}, status_code=500)


def one_line(text: str) -> str:
    """The first line of a message (the page shows one line)."""
    return text.strip().splitlines()[0] if text.strip() else "error"


def validation_message(errors: Sequence[Any]) -> str:
    """pydantic's or FastAPI's validation errors → ``where: what`` of the first one."""
    e = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    loc = [str(x) for x in e.get("loc", []) if x != "body"]
    return one_line(f"{'.'.join(loc) or 'request'}: {e.get('msg', 'invalid')}")


def _track_rows(st: ReviewState) -> str:
    rows = []
    for t in st.summary["tracks"]:
        jit = f"{t['jitter_raw'] or 0:.2f} → {t['jitter_smooth'] or 0:.2f}"
        rows.append(
            f'<li class="track" data-track="{t["id"]}" data-first="{t["first"]}" data-last="{t["last"]}" tabindex="0">'
            f'<img src="/thumbs/{t["id"]}" alt="track {t["id"]}" width="{THUMB}" height="{THUMB}">'
            f"<span><b>track {t['id']}</b> · id {t['identity']} · shot {t['shot']}<br>"
            f"{t['first']}–{t['last']} ({t['faces']} faces)<br>jitter {jit} % IOD</span></li>"
        )
    return "\n".join(rows) or '<li class="none">no face tracks</li>'


def _options(st: ReviewState, selected: str) -> str:
    return "".join(
        f'<option value="{s.id}"{" selected" if s.id == selected else ""}>{html.escape(s.label)}</option>'
        for s in st.sources.values()
    )


def render_page(st: ReviewState) -> str:
    """The page's HTML: the template filled with the shot's data (no client-side templating)."""
    p = st.summary["plate"]
    b = next((s for s in st.sources if s != "plate"), "plate")
    return Template((TEMPLATES / "index.html").read_text()).substitute(
        title=html.escape(f"{st.cfg.shot.name} · faceplate review"),
        shot=html.escape(str(st.cfg.shot)),
        plate=html.escape(
            f"{Path(p['path']).name} · {p['width']}x{p['height']} · {p['fps_text']} fps · "
            f"{p['first']}–{p['last']} · {p['colorspace']}"
        ),
        view=html.escape(st.summary["view"]),
        options_a=_options(st, "plate"),
        options_b=_options(st, b),
        tracks=_track_rows(st),
        models="".join(f'<option value="{html.escape(str(m))}">' for m in st.cfg.models),
        timecode=timecode(p["first"], p["fps"]),
        data=json.dumps(st.summary).replace("</", "<\\/"),
    )


# ------------------------------------------------------------------------------------------- serving
def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port); ConfigError (one line) when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is in use; pick another with --port (or leave it out)") from None
        raise ConfigError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class _Uvicorn(uvicorn.Server):
    """uvicorn, ending the open event streams first on shutdown (else it waits for them, then cancels)."""

    def __init__(self, config: uvicorn.Config, bus: EventBus) -> None:
        super().__init__(config)
        self.bus = bus

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.bus.close()
        await super().shutdown(sockets)


class ReviewServer:
    """The app on uvicorn, on a socket bound at construction (so ``url`` is known before it runs)."""

    def __init__(self, cfg: ReviewConfig) -> None:
        self.state = ReviewState.load(cfg)
        try:
            self.sock = bind(cfg.host, cfg.port)
        except BaseException:
            self.state.close()
            raise
        self.app = create_app(cfg, self.state)
        self.primer = threading.Thread(target=self._prime, name="tune-prime", daemon=True)
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        self.url = f"http://{host}:{self.sock.getsockname()[1]}/?token={self.state.token}"
        config = uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=2, access_log=False)
        self.server = _Uvicorn(config, self.state.bus)

    def _prime(self) -> None:
        """Ready the tune panel's first frame (plate open, track samples read) while the page loads."""
        with contextlib.suppress(FaceplateError):
            self.state.tuner.prime(make_effect(TUNABLE[0], {}))

    def run(self) -> None:
        """Serve until :meth:`stop` (or Ctrl-C in the main thread: KeyboardInterrupt after shutdown)."""
        if self.state.summary["tracks"]:
            self.primer.start()
        if self.state.cfg.warm_plate:
            self.state.warm("plate")
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.state.close()
            self.sock.close()

    def stop(self) -> None:
        self.state.bus.close()
        self.server.should_exit = True

    def close(self) -> None:
        """Release the socket and the sources of a server that is not running (or has stopped)."""
        self.state.close()
        self.sock.close()

    def __enter__(self) -> ReviewServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(cfg: ReviewConfig, announce: Callable[[str], None] = print) -> None:
    """Serve the review app of ``cfg`` until Ctrl-C (KeyboardInterrupt); ``announce`` gets its URL (with the
    token) once it listens, and the browser opens it unless ``cfg.open_browser`` is off."""
    srv = ReviewServer(cfg)
    announce(srv.url)
    if cfg.open_browser:
        threading.Timer(0.5, lambda: webbrowser.open(srv.url)).start()
    srv.run()
