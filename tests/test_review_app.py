"""The review web app (``faceplate review``): token, frame-accurate proxies and their cache, bad input, and a
real browser (Debian's Chromium via Playwright) on a real uvicorn server over a 24-frame extract of a real clip.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import assert_one_line_error, cli_here, extracted_clip, media
from faceplate.app import ReviewConfig, ReviewServer, create_app
from faceplate.app.proxies import ProxyCache, display8, resolve_view, view_processor
from faceplate.media.frames import timecode
from faceplate.media.plate import open_plate

CHROMIUM = Path("/usr/bin/chromium")
FRAMES = 24


@dataclass(frozen=True)
class Shot:
    root: Path
    shot: Path
    clip: Path
    comp: str  # comp.####.png: 255 - plate, with comp_matte.####.png beside it (left half white)
    plus: str  # plus.####.png: plate + 10
    gone: str  # gone.####.png: frames 0-3 of plus, removed by a test while the server runs
    model: Path  # a model folder given at startup: a loss log and a preview.png
    secret: Path  # a file outside the shot, render and model folders (in a model-like folder of its own)


@pytest.fixture(scope="module")
def shot(tmp_path_factory: pytest.TempPathFactory) -> Shot:
    root = tmp_path_factory.mktemp("review")
    clip = extracted_clip(root, "d18_24.mp4", FRAMES)
    with open_plate(clip) as plate:
        for n, rgb in plate.frames(native=True):
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(root / f"comp.{n:04d}.png"), 255 - bgr)
            cv2.imwrite(str(root / f"plus.{n:04d}.png"), np.clip(bgr.astype(np.int16) + 10, 0, 255).astype(np.uint8))
            matte = np.zeros(bgr.shape[:2], np.uint8)
            matte[:, : bgr.shape[1] // 2] = 255
            cv2.imwrite(str(root / f"comp_matte.{n:04d}.png"), matte)
    (root / "gone").mkdir()
    for n in range(4):
        shutil.copy(root / f"plus.{n:04d}.png", root / "gone" / f"gone.{n:04d}.png")
    model, outside = root / "model", root / "outside"
    for folder in (model, outside):
        folder.mkdir()
        (folder / "losses.jsonl").write_text("".join(f'{{"iteration": {i}, "loss": {1 / i}}}\n' for i in range(1, 61)))
    cv2.imwrite(str(model / "preview.png"), cv2.resize(cv2.imread(str(root / "comp.0000.png")), (192, 96)))
    (outside / "preview.png").write_bytes(b"SECRET-PREVIEW")
    (outside / "secret.txt").write_text("SECRET-TEXT")
    return Shot(root, root / "shot", clip, str(root / "comp.####.png"), str(root / "plus.####.png"),
                str(root / "gone" / "gone.####.png"), model, outside / "secret.txt")  # fmt: skip


def plate_frame(shot: Shot, n: int) -> np.ndarray:
    """Plate frame ``n`` through the plate's view: uint8 RGB (H, W, 3), what the proxy must show."""
    with open_plate(shot.clip) as plate:
        proc = view_processor(resolve_view(plate.info.colorspace, None, "auto"))
        return display8(plate.read(n), proc)


def decode(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def client(shot: Shot, **kw: Any) -> TestClient:
    cfg = ReviewConfig(shot=shot.shot, renders=[shot.comp, shot.plus], open_browser=False, **kw)
    return TestClient(create_app(cfg), follow_redirects=False)


# ------------------------------------------------------------------------------------ server level
def test_every_route_refuses_a_request_without_the_token(shot: Shot) -> None:
    with client(shot, token="t" * 20) as c:
        paths = ("/", "/static/review.js", "/frames/plate/rgb/0", "/api/shot", "/thumbs/0", "/events", "/api/tune",
                 "/api/tune/beauty", "/api/jobs", "/api/train?model=x", "/static/tune.js", "/api/tracks/0/boxes",
                 "/api/train/preview?model=x")  # fmt: skip
        for path in paths:
            assert c.get(path).status_code == 403, path
            assert c.get(path + ("&" if "?" in path else "?") + "token=" + "x" * 20).status_code == 403, path
        for path in ("/api/warm/plate", "/api/tune/frame", "/api/presets", "/api/overrides", "/api/jobs",
                     "/api/jobs/1/cancel", "/api/jobs/1/resume"):  # fmt: skip
            assert c.post(path, json={}).status_code == 403, path
        assert c.delete("/api/overrides/1").status_code == 403
        r = c.get("/?token=" + "t" * 20)  # the printed URL: sets the cookie, then a clean URL
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert "httponly" in r.headers["set-cookie"].lower()
        page = c.get("/")  # the cookie from now on
        assert page.status_code == 200 and "track 0" in page.text and "/static/review.js" in page.text
        assert c.get("/static/review.js").status_code == 200
        assert "cdn" not in page.text.lower() and "https://" not in page.text


def test_frame_endpoint_serves_the_plate_frame_through_the_view(shot: Shot) -> None:
    with client(shot, token="t" * 20, proxy_format="png") as c:
        c.cookies.set(c.app.state.review.cookie, "t" * 20)  # type: ignore[attr-defined]
        for n in (0, 7, 23, 6, 8):  # out of order: seeks as well as continued decoding
            r = c.get(f"/frames/plate/rgb/{n}")
            assert r.status_code == 200 and r.headers["content-type"] == "image/png"
            assert r.headers["x-frame"] == str(n)
            np.testing.assert_array_equal(decode(r.content), plate_frame(shot, n))
        assert not np.array_equal(decode(c.get("/frames/plate/rgb/8").content), plate_frame(shot, 7))
        comp = decode(c.get("/frames/r1/rgb/5").content)
        np.testing.assert_array_equal(comp, 255 - plate_frame(shot, 5))
        matte = decode(c.get("/frames/r1/matte/5").content)  # comp_matte.####.png found beside the comp
        assert matte[:, :200].min() == 255 and matte[:, 280:].max() == 0
        assert c.get("/frames/r2/matte/5").status_code == 404  # plus has no matte
        assert c.get(f"/frames/plate/rgb/{FRAMES}").status_code == 404
        etag = c.get("/frames/plate/rgb/3").headers["etag"]
        assert c.get("/frames/plate/rgb/3", headers={"If-None-Match": etag}).status_code == 304


def test_proxies_are_cached_in_the_shot_folder_and_never_stale(shot: Shot) -> None:
    with client(shot, token="t" * 20) as c:
        c.cookies.set(c.app.state.review.cookie, "t" * 20)  # type: ignore[attr-defined]
        st = c.app.state.review  # type: ignore[attr-defined]
        cache = shot.shot / "review_cache"
        before = set(cache.glob("*.jpg")) if cache.is_dir() else set()
        first = c.get("/frames/r2/rgb/11")
        assert first.headers["content-type"] == "image/jpeg"
        made = set(cache.glob("*.jpg")) - before
        assert len(made) == 1
        assert np.abs(decode(first.content).astype(int) - plate_frame(shot, 11) - 10).mean() < 2.5  # JPEG
        st.make_proxy = lambda *a: pytest.fail("a cached proxy was made again")
        again = c.get("/frames/r2/rgb/11")
        assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
        del st.make_proxy
        frame = shot.root / "plus.0011.png"  # the render is redone: the proxy follows
        cv2.imwrite(str(frame), np.zeros((480, 480, 3), np.uint8))
        redone = c.get("/frames/r2/rgb/11")
        assert redone.headers["etag"] != first.headers["etag"] and decode(redone.content).max() < 8
        assert not list(cache.glob(".*partial*"))  # atomic writes leave nothing behind


def test_paths_outside_the_shot_and_render_folders_cannot_be_read(shot: Shot, tmp_path: Path) -> None:
    link = shot.shot / "models_link"
    link.symlink_to(shot.secret.parent, target_is_directory=True)  # a link in the shot that leads out
    out, enc = shot.secret.parent, "%2e%2e"
    try:
        with client(shot, token="t" * 20, models=[shot.model]) as c:
            c.cookies.set(c.app.state.review.cookie, "t" * 20)  # type: ignore[attr-defined]
            gets = [f"/frames/{p}/rgb/0" for p in ("..", enc, f"{enc}%2f{enc}", "%2Fetc%2Fpasswd", "plate%2f..")]
            gets += ["/frames/plate/..%2f..%2fsecret.txt/0", "/frames/plate/rgb/..", "/thumbs/..", f"/thumbs/{enc}"]
            gets += [
                f"/static/{p}"
                for p in ("../server.py", f"{enc}/server.py", "..%2fserver.py", f"{enc}%2f{enc}%2fcli.py")
            ]
            gets += ["/static/%2fetc%2fpasswd", f"/static/{shot.secret}", "/api/tune/..%2f..%2fbeauty"]
            models = [str(out), f"{shot.shot}/../outside", str(link), f"{shot.model}/../outside", "", "/", "..", "~"]
            for m in models:
                gets += [f"/api/train?model={m}", f"/api/train/preview?model={m}"]
            gets += [f"/api/train?model={shot.model}/{enc}/outside", f"/api/train/preview?model={enc}%2foutside"]
            for path in gets:
                r = c.get(path)  # (the client drops dot segments as browsers do: "/thumbs/.." asks for "/")
                assert r.status_code in (400, 404, 405) or r.request.url.path == "/", (path, r.status_code)
                assert b"SECRET" not in r.content and b"def " not in r.content, path
            posts = [("/api/tune/frame", {"effect": "swap", "model": str(out)}),
                     ("/api/tune/frame", {"effect": "keyframes", "model": str(link)}),
                     ("/api/presets", {"effect": "swap", "name": "x", "model": f"{shot.model}/../outside"}),
                     ("/api/jobs", {"effect": "swap", "model": str(out)}),
                     ("/api/jobs", {"effect": "beauty", "out": str(tmp_path / "x.####.png")}),
                     ("/api/jobs", {"effect": "beauty", "out": "../../x.####.png"}),
                     ("/api/jobs", {"effect": "beauty", "out": "renders/../../../x.png"}),
                     ("/api/jobs", {"effect": "beauty", "out": "/etc/x.png"})]  # fmt: skip
            for path, body in posts:
                r = c.post(path, json=body)
                assert r.status_code == 400 and "SECRET" not in r.text, (body, r.text)
                assert "outside" in r.json()["detail"] or "not one this server may read" in r.json()["detail"], r.text
            assert c.get(f"/api/train?model={shot.model}").json()["losses"][0] == [1, 1.0]  # a --model folder
            assert c.get(f"/api/train/preview?model={shot.model}").status_code == 200
            assert not list(tmp_path.iterdir()) and not (shot.root.parent / "x.png").exists()
    finally:
        link.unlink()


def test_bad_requests_get_one_line_each(shot: Shot) -> None:
    with client(shot, token="t" * 20) as c:
        c.cookies.set(c.app.state.review.cookie, "t" * 20)  # type: ignore[attr-defined]
        bodies = {"frame": "abc", "settings": {"settings": {"strength": "abc"}}}
        cases = [
            ({"effect": "beauty", "frame": 99}, 404, "frame 99 is outside the plate (0-23)"),
            ({"effect": "beauty", "frame": "abc"}, 400, "frame must be a whole number"),
            ({"effect": "beauty", "frame": 1.5}, 400, "frame must be a whole number"),
            ({"effect": "beauty", "settings": {"settings": {"strength": 3}}}, 400, "outside 0..1"),
            ({"effect": "beauty", "settings": bodies["settings"]}, 400, "settings.strength: expected a number"),
            ({"effect": "beauty", "settings": {"settings": {"smooth": 2}}}, 400, "settings.smooth: expected true"),
            ({"effect": "beauty", "settings": {"settings": "x"}}, 400, "settings: expected an object"),
            ({"effect": "beauty", "settings": {"crop": "nose"}}, 400, "crop: expected one of whole_face, head"),
            ({"effect": "beauty", "settings": [1]}, 400, "settings must be an object"),
            ({"effect": "blur"}, 400, "unknown effect 'blur'"),
        ]
        for body, status, text in cases:
            r = c.post("/api/tune/frame", json=body)
            detail = r.json()["detail"]
            assert r.status_code == status and text in detail and "\n" not in detail, (body, r.text)
        r = c.post("/api/tune/frame", content=b"[1, 2]", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and isinstance(r.json()["detail"], str), r.text
        r = c.post("/api/jobs", json={"effect": "beauty", "frames": 5})
        assert r.status_code == 400 and isinstance(r.json()["detail"], str), r.text


def test_shot_summary_lists_tracks_marks_and_sources(shot: Shot) -> None:
    with client(shot, token="t" * 20) as c:
        c.cookies.set(c.app.state.review.cookie, "t" * 20)  # type: ignore[attr-defined]
        s = c.get("/api/shot").json()
        assert s["plate"]["first"] == 0 and s["plate"]["last"] == FRAMES - 1 and s["plate"]["fps"] == 30
        assert [t["id"] for t in s["tracks"]] == [0] and s["tracks"][0]["jitter_raw"] > 0
        assert s["marks"]["unanalysed"] == [] and s["marks"]["cuts"] == []
        assert set(s["flags"]) >= {"jitter", "drift"}
        assert [(x["id"], x["layers"]) for x in s["sources"]] == [
            ("plate", ["rgb"]),
            ("r1", ["rgb", "matte"]),
            ("r2", ["rgb"]),
        ]
        boxes = c.get("/api/tracks/0/boxes").json()["boxes"]
        assert len(boxes) == FRAMES and 0 < boxes[0][1] < boxes[0][3] < 480
        assert c.get("/api/tracks/9/boxes").status_code == 404
        thumb = decode(c.get("/thumbs/0").content)
        assert thumb.shape == (96, 96, 3) and thumb.std() > 10


def test_video_render_finds_its_matte_and_delta_by_their_records(shot: Shot, tmp_path: Path) -> None:
    import json
    import shutil

    from faceplate.app.sources import open_source

    record = {"plate": str(shot.clip), "effect": "beauty", "settings": {"strength": 0.7}, "track": None, "face": None}
    for name, role in (("comp.mp4", "comp"), ("the_matte.mp4", "matte"), ("other.mp4", "matte")):
        shutil.copy(shot.clip, tmp_path / name)
        rec = {**record, "role": role, **({"settings": {"strength": 0.3}} if name == "other.mp4" else {})}
        (tmp_path / f".{name}.faceplate.json").write_text(json.dumps(rec))
    with open_plate(shot.clip) as plate:
        src = open_source("r1", str(tmp_path / "comp.mp4"), "render", plate.info)
    try:  # the matte of the same render, not the one rendered with other settings
        assert src.extras == {"matte": str(tmp_path / "the_matte.mp4")} and src.layers() == ["rgb", "matte"]
        assert src.source_frame(FRAMES - 1) == FRAMES - 1 and src.source_frame(FRAMES) is None
    finally:
        src.close()


def test_proxy_cache_keeps_to_its_limit_dropping_the_least_recently_used(tmp_path: Path) -> None:
    cache = ProxyCache(tmp_path / "c", limit=10_000)
    for i in range(3):
        cache.put(f"k{i}", bytes([i]) * 3000)
        os.utime(cache.path(f"k{i}"), ns=(10**9 * (i + 1),) * 2)  # k0 oldest (file times are coarse)
    assert cache.get("k0") == bytes([0]) * 3000  # a read makes k0 the most recently used
    cache.put("k3", bytes(3000))  # 12 000 bytes: trimmed to 80% of the limit, oldest first
    assert [cache.get(f"k{i}") is not None for i in range(4)] == [True, False, False, True]
    assert cache.size == 6000
    smaller = ProxyCache(tmp_path / "c", limit=5000)  # a smaller limit trims at open
    assert smaller.size <= 4000 and smaller.get("k0") is None and smaller.get("k3") is not None


@pytest.mark.slow
def test_the_server_makes_every_plate_proxy_in_the_background_from_the_start(shot: Shot, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    cfg = ReviewConfig(shot=shot.shot, open_browser=False, proxy_format="png", cache_dir=folder)
    srv = ReviewServer(cfg)
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 60
        while len(list(folder.glob("*.png"))) < FRAMES and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(list(folder.glob("*.png"))) == FRAMES  # no page asked for any of them
        st = srv.state
        st.make_proxy = lambda *a: pytest.fail("a proxy of the filled cache was made again")
        for n in (23, 2, 17):  # jumps backwards: all from the cache, the plate's exact pixels
            got = st.proxy("plate", "rgb", n)
            assert got is not None
            np.testing.assert_array_equal(decode(got[0]), plate_frame(shot, n))
    finally:
        srv.stop()
        t.join(10)


def test_raw_proxies_of_integer_images_skip_the_float_pass(tmp_path: Path) -> None:
    from faceplate.app.proxies import codes8, read_codes8
    from faceplate.media import colour

    every = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    np.testing.assert_array_equal(codes8(every), colour.to_uint8(every.astype(np.float32) / 65535))
    rng = np.random.default_rng(0)
    for name, img in (("a.png", rng.integers(0, 65536, (40, 56, 4))), ("b.png", rng.integers(0, 256, (40, 56, 3))),
                      ("c.tif", rng.integers(0, 65536, (40, 56, 3)))):  # fmt: skip
        path = str(tmp_path / name)
        cv2.imwrite(path, img.astype(np.uint16 if img.max() > 255 else np.uint8))
        with open_plate(path) as plate:
            want = display8(plate.read(0), lambda x: None)  # the general path through a Raw view
        np.testing.assert_array_equal(read_codes8(path), want)
    cv2.imwrite(str(tmp_path / "grey.png"), np.zeros((4, 4), np.uint16))  # one channel: the general path
    assert read_codes8(str(tmp_path / "grey.png")) is None and read_codes8(str(tmp_path / "none.png")) is None


def test_half_float_frames_take_the_views_table_with_the_same_codes(shot: Shot, tmp_path: Path) -> None:
    """Half EXR frames: the per-channel view's table of every half gives what the float path gives."""
    from faceplate.app.proxies import half_bits, half_frame, read_halves
    from faceplate.media import colour
    from faceplate.media.writers import WriterSpec, open_writer

    every = np.arange(65536, dtype=np.uint16)
    plain = every.view(np.float16).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(half_frame(every.reshape(64, 1024, 1))).ravel(), plain)  # NaN too
    rng = np.random.default_rng(0)
    mixed = np.concatenate([np.repeat(every[:, None], 3, 1), rng.integers(0, 65536, (65536, 3))]).astype(np.uint16)
    mixed = mixed.reshape(256, 512, 3)  # every half in every channel, and mixed pixels (NaN, ±Inf, subnormals)
    lin = resolve_view(colour.LINEAR_709, None, "auto")
    for v in (lin, resolve_view(colour.LINEAR_709, None, "Raw"), resolve_view("ACEScg", None, "auto")):
        proc = view_processor(v)
        want = display8(mixed.view(np.float16).astype(np.float32), proc)  # a plain array: the float path
        frame = half_frame(mixed)
        assert half_bits(frame) is mixed and half_bits(frame[1:]) is None and half_bits(np.array(frame)) is None
        if v.colorspace == "ACEScg":  # a matrix mixes the channels: no table, the float path
            assert proc.half_table is None
        np.testing.assert_array_equal(display8(frame, proc), want)
    # served: an RGBA half EXR render (faceplate's writer, PIZ) proxies as its float read through the view
    with open_plate(shot.clip) as plate:
        h, w = plate.info.height, plate.info.width
    pattern = str(tmp_path / "lin.####.exr")
    with open_writer(WriterSpec(pattern, w, h, format="exr", colorspace=colour.LINEAR_709, alpha=True)) as out:
        for n in range(3):
            x = rng.random((h, w, 3), np.float32) * np.float32(4.0)
            x[0, :4] = np.array([np.nan, np.inf, -np.inf, -1.0], np.float32)[:, None]
            out.write(n, x, np.full((h, w), 0.5, np.float32))
    assert read_halves(pattern.replace("####", "0001")) is not None
    cfg = ReviewConfig(shot=shot.shot, renders=[pattern], open_browser=False, token="t" * 20, proxy_format="png")
    with TestClient(create_app(cfg), follow_redirects=False) as c, open_plate(pattern) as exr:
        c.cookies.set(c.app.state.review.cookie, "t" * 20)  # type: ignore[attr-defined]
        proc = view_processor(lin)
        assert half_bits(c.app.state.review.sources["r1"].rgb.rgb(0)) is not None  # type: ignore[attr-defined]
        for n in (2, 0, 1):
            r = c.get(f"/frames/r1/rgb/{n}")
            assert r.status_code == 200
            np.testing.assert_array_equal(decode(r.content), display8(exr.read(n), proc))


def test_scene_linear_plates_get_the_colorimetric_view() -> None:
    v = resolve_view("Linear Rec.709 (sRGB)", None, "auto")
    assert (v.display, v.view) == ("sRGB - Display", "Un-tone-mapped")
    mid = display8(np.full((1, 1, 3), 0.18, np.float32), view_processor(v))
    assert abs(int(mid[0, 0, 0]) - 118) <= 1  # 18 % grey in sRGB
    assert resolve_view("Gamma 2.4 Encoded Rec.709", None, "auto").raw
    aces = resolve_view("ACEScg", "sRGB - Display", "ACES 2.0 - SDR 100 nits (Rec.709)")
    assert display8(np.full((1, 1, 3), 0.18, np.float32), view_processor(aces)).max() < 255


def test_timecode() -> None:
    assert timecode(0, Fraction(30)) == "00:00:00:00"
    assert timecode(1001, Fraction(24)) == "00:00:41:17"
    assert timecode(30 * 3661 + 29, Fraction(30000, 1001)) == "01:01:01:29"


def test_bad_input_gets_one_line(shot: Shot, tmp_path: Path) -> None:
    assert_one_line_error(cli_here("review", tmp_path / "nope", "--no-open"), "does not exist")
    assert_one_line_error(cli_here("review", tmp_path, "--no-open"), "not a shot folder")
    r = cli_here("review", shot.shot, "--no-open", "--render", tmp_path / "missing.####.exr")
    assert_one_line_error(r, "--render", "missing.####.exr", "does not exist")
    r = cli_here("review", shot.shot, "--no-open", "--render", media("fr_biden.jpg"))
    assert_one_line_error(r, "--render", "the shot's plate is 480x480")
    assert_one_line_error(cli_here("review", shot.shot, "--no-open", "--view", "Nope"), "unknown view 'Nope'")
    r = cli_here("review", shot.shot, "--no-open", "--model", tmp_path / "no_model")
    assert_one_line_error(r, "--model", "no_model", "is not a folder")
    r = cli_here("review", shot.shot, "--no-open", "--plate", media("lp_driving_d0.mp4"))
    assert_one_line_error(r, "--plate", "belongs to another plate")
    with ReviewServer(ReviewConfig(shot=shot.shot, open_browser=False)) as busy:
        port = busy.url.split(":")[2].split("/")[0]
        assert_one_line_error(cli_here("review", shot.shot, "--no-open", "--port", port), f"port {port}", "in use")


# ------------------------------------------------------------------------------------ real browser
@pytest.fixture(scope="module")
def served(shot: Shot) -> Iterator[str]:
    """A real uvicorn server (PNG proxies: exact pixels) in a thread; its URL with the token."""
    renders = [shot.comp, shot.plus, shot.gone]  # r1, r2, r3
    cfg = ReviewConfig(shot=shot.shot, renders=renders, open_browser=False, proxy_format="png", models=[shot.model])
    srv = ReviewServer(cfg)
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    yield srv.url
    srv.stop()
    t.join(10)


@pytest.fixture(scope="module")
def page(served: str) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (apt-get install -y chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1300, "height": 900})
        requested: list[str] = []
        pg.on("request", lambda r: requested.append(r.url))
        pg.requested = requested
        pg.goto(served)
        pg.wait_for_function("document.getElementById('view').dataset.frame === '0'")
        yield pg
        browser.close()


@pytest.fixture(scope="module")
def screens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests save a screenshot of each view (also copied to $FACEPLATE_SCREENSHOTS)."""
    return tmp_path_factory.mktemp("review_screens")


def snap(page: Any, screens: Path, name: str, selector: str | None = None) -> None:
    """A screenshot of the page (or of ``selector``) as ``screens/NAME.png``, copied to $FACEPLATE_SCREENSHOTS."""
    path = screens / f"{name}.png"
    if selector is None:
        page.evaluate("window.scrollTo(0, 0)")
    page.evaluate("new Promise(requestAnimationFrame)")
    (page.locator(selector) if selector else page).screenshot(path=str(path))
    if dest := os.environ.get("FACEPLATE_SCREENSHOTS"):
        Path(dest).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(dest) / path.name)


def shown(page: Any, frame: int) -> np.ndarray:
    """Wait until the viewer shows ``frame``; a screenshot of its canvas as RGB."""
    page.wait_for_function(f"document.getElementById('view').dataset.frame === '{frame}'")
    page.wait_for_function("document.getElementById('view').dataset.mode === document.getElementById('mode').value")
    page.evaluate("window.scrollTo(0, 0)")  # the canvas in the viewport (a click below may have scrolled it)
    page.evaluate("new Promise(requestAnimationFrame)")
    box = page.locator("#view").bounding_box()
    clip = {"x": round(box["x"]), "y": round(box["y"]), "width": round(box["width"]), "height": round(box["height"])}
    return decode(page.screenshot(clip=clip))


def set_mode(page: Any, mode: str, b: str = "r1", **sliders: float) -> None:
    page.select_option("#src-b", b)
    page.select_option("#mode", mode)
    for name, v in sliders.items():
        page.locator(f"#{name}").fill(str(v))


@pytest.mark.slow
def test_browser_scrubs_frame_by_frame_with_timecode(page: Any, shot: Shot, served: str, screens: Path) -> None:
    set_mode(page, "a")
    page.fill("#goto", "9")  # go to frame N: the page shows the plate's frame N (PNG proxies: exact)
    page.press("#goto", "Enter")
    np.testing.assert_array_equal(shown(page, 9), plate_frame(shot, 9))
    page.locator("#view").click()
    page.keyboard.press("Home")
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    img = shown(page, 5)
    assert page.inner_text("#frame") == "5" and page.inner_text("#tc") == timecode(5, 30) == "00:00:00:05"
    assert img.shape == (480, 480, 3)
    err = [np.abs(img.astype(int) - plate_frame(shot, n)).mean() for n in (4, 5, 6)]
    assert err[1] < 0.5 and err[1] < min(err[0], err[2]), err  # the frame itself, not a neighbour
    snap(page, screens, "01_a")
    page.keyboard.press("Shift+ArrowRight")
    shown(page, 15)
    page.keyboard.press("i")
    page.keyboard.press("ArrowLeft")
    shown(page, 14)
    assert page.inner_text("#tc") == "00:00:00:14" and "in 15" in page.inner_text("#marks-in-out")
    for key in ("Escape", "i", "ArrowRight", "ArrowRight", "o", "l"):  # loop 14-16
        page.keyboard.press(key)
    page.wait_for_timeout(400)  # ~12 frames at 30 fps: round the loop a few times
    page.keyboard.press("k")
    page.wait_for_timeout(100)
    f = int(page.inner_text("#frame"))
    assert 14 <= f <= 16 and page.get_attribute("#view", "data-frame") == str(f)
    assert page.inner_text("#play-state") == "stopped"
    page.keyboard.press("Escape")
    page.click(".track[data-track='0']")  # follow the track: the viewer zooms to its face
    page.wait_for_function("document.getElementById('follow-state').textContent.includes('track 0')")
    page.click(".track[data-track='0']")
    page.wait_for_function("document.getElementById('progress').textContent.includes('plate cached')")  # SSE
    base = served.split("/?")[0] + "/"
    local = (base, "blob:" + base)  # blob: the tuned frame, fetched from this server, shown from memory
    assert page.requested and all(u.startswith(local) for u in page.requested)  # nothing from elsewhere


@pytest.mark.slow
def test_browser_wipe_shows_plate_left_and_comp_right(page: Any, shot: Shot, screens: Path) -> None:
    set_mode(page, "wipe")
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    img = shown(page, 2).astype(int)
    plate = plate_frame(shot, 2).astype(int)
    assert np.abs(img[:, :200] - plate[:, :200]).mean() < 0.5  # the wipe starts in the middle
    assert np.abs(img[:, 280:] - (255 - plate[:, 280:])).mean() < 0.5
    box = page.locator("#view").bounding_box()  # drag the wipe to a quarter
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + 100)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + 100, steps=4)
    page.mouse.up()
    page.evaluate("new Promise(r => setTimeout(r, 100))")
    img = shown(page, 2).astype(int)
    assert np.abs(img[:, 140:200] - (255 - plate[:, 140:200])).mean() < 0.5
    assert np.abs(img[:, :100] - plate[:, :100]).mean() < 0.5
    snap(page, screens, "02_wipe")


@pytest.mark.slow
def test_browser_side_by_side_and_difference_with_gain(page: Any, shot: Shot, screens: Path) -> None:
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    set_mode(page, "side")  # plate | comp
    page.wait_for_function("document.getElementById('view').width === 960")
    img, plate = shown(page, 1).astype(int), plate_frame(shot, 1).astype(int)
    assert img.shape == (480, 960, 3) and np.abs(img[:, :480] - plate).mean() < 0.5
    assert np.abs(img[:, 480:] - (255 - plate)).mean() < 0.5
    snap(page, screens, "03_side_by_side")
    set_mode(page, "diff", b="r2", dgain=8)  # |plate - (plate + 10)| x 8
    page.wait_for_function("document.getElementById('dgain-v').textContent === '8'")
    page.wait_for_function("document.getElementById('view').width === 480")
    img = shown(page, 1).astype(int)
    ok = plate_frame(shot, 1).max(axis=2) < 240  # not clipped at 255 by the + 10
    assert np.abs(img[ok] - 80).mean() < 1.0
    set_mode(page, "diff", b="r2", gain=1)  # the viewer gain (2^1) applies to the result as well
    page.wait_for_function("document.getElementById('gain-v').textContent === '2.00'")
    img = shown(page, 1).astype(int)
    assert np.abs(img[ok] - 160).mean() < 1.0
    page.locator("#gain").fill("0")
    snap(page, screens, "04_difference")


def tuned(page: Any) -> np.ndarray:
    """The tuned frame the page shows, as decoded by the browser (RGB)."""
    url = page.evaluate("""() => { const im = document.getElementById('tune-img'), c = document.createElement('canvas');
        c.width = im.naturalWidth; c.height = im.naturalHeight; c.getContext('2d').drawImage(im, 0, 0);
        return c.toDataURL('image/png'); }""")
    import base64

    return decode(base64.b64decode(url.split(",", 1)[1])).astype(int)


@pytest.mark.slow
def test_browser_tune_slider_rerenders_the_frame(page: Any, shot: Shot, screens: Path, tmp_path: Path) -> None:
    settled = "(t => t && Number(document.getElementById('tune-img').dataset.seq) > {} && !t.busy && !t.again)"
    page.wait_for_function(settled.format(0) + "(window.review.tune)", timeout=60000)
    assert page.locator("#tune-form input[type=range]").count() >= 3  # beauty's form, built from its settings
    seq = int(page.get_attribute("#tune-img", "data-seq"))
    before = tuned(page)
    frame = int(page.get_attribute("#tune-img", "data-frame"))
    assert before.shape == (480, 480, 3) and np.abs(before - plate_frame(shot, frame)).max() > 8  # retouched
    page.locator("#tune-settings-strength").fill("0")
    page.wait_for_function(settled.format(seq) + "(window.review.tune)")
    assert page.inner_text("#tune-settings-strength-v") == "0" and "ms" in page.inner_text("#tune-ms")
    after = tuned(page)  # strength 0: the plate itself (PNG proxies: exact)
    assert np.abs(after - plate_frame(shot, frame)).max() <= 1 and np.abs(after - before).max() > 8
    page.locator("#tune-settings-strength").fill("0.9")
    page.wait_for_function(settled.format(seq + 1) + "(window.review.tune)")
    snap(page, screens, "07_tune_panel", "#tune")
    got = preview_crop(shot, frame, tuned(page))
    before_tile, want = beauty_preview(shot, frame, 0.9, tmp_path)
    # --preview composites in float and crops + scales up (cubic) before rounding to 8 bits; the page's frame
    # is the 16-bit comp rounded to 8 bits, then cropped and scaled the same way. Two roundings of <= 0.5 code,
    # the first spread by the cubic filter's overshoot (its weights sum to ~1.3 in absolute value): <= 2 codes
    # anywhere. Measured: max 2, mean 0.06 (0.20 where the retouch acts, vs 0.68 for the page's frame at 0.7).
    d = np.abs(got - want)
    changed = np.abs(want - before_tile).max(axis=2) >= 3  # where the retouch at 0.9 moves the picture
    other = np.abs(preview_crop(shot, frame, before) - want)[changed].mean()  # the page's frame at 0.7
    assert changed.sum() > 1000 and d.max() <= 2 and d[changed].mean() < 0.35 < other, (d.max(), other)


def beauty_preview(shot: Shot, frame: int, strength: float, tmp: Path) -> tuple[np.ndarray, np.ndarray]:
    """The before and after tiles of ``faceplate beauty --preview`` of ``frame`` at ``strength`` (labels cut)."""
    from faceplate.render.preview import LABEL_BAR

    out = tmp / f"pv{strength:g}" / "comp.####.png"
    r = cli_here("beauty", shot.clip, "-o", out, "--shot", shot.shot, "--preview", "--preview-frame", frame,
                 "--strength", strength)  # fmt: skip
    assert r.returncode == 0, r.stderr
    both = cv2.cvtColor(cv2.imread(str(out.parent / "comp_preview.png")), cv2.COLOR_BGR2RGB).astype(int)
    return both[LABEL_BAR:, : both.shape[1] // 2], both[LABEL_BAR:, both.shape[1] // 2 :]


def preview_crop(shot: Shot, frame: int, rgb8: np.ndarray) -> np.ndarray:
    """The page's frame cropped and scaled as --preview crops its tiles (round the frame's faces)."""
    from faceplate.media import colour
    from faceplate.render.preview import tile_view
    from faceplate.render.tracks import ColourPath
    from faceplate.store import ShotStore

    with ShotStore.open(shot.shot) as store:
        faces, info = store.faces_in_frame(frame), store.plate
    img = colour.to_float(rgb8.astype(np.uint8))
    return tile_view(img, faces, ColourPath(info.colorspace))(img).astype(int)


@pytest.mark.slow
def test_browser_renders_a_job_and_opens_it_as_b(page: Any, shot: Shot, screens: Path) -> None:
    from faceplate.media import colour

    page.fill("#job-frames", "0-9")
    page.check("#job-delta")
    page.click("#job-submit")
    page.wait_for_selector("#job-list li[data-state=done]", timeout=120000)
    page.wait_for_function("document.getElementById('src-b').value === 'r4'")  # opened in the viewer as B
    job = page.evaluate("fetch('/api/jobs').then(r => r.json())")["jobs"][-1]
    assert job["state"] == "done" and (job["done"], job["total"]) == (10, 10), job
    assert "10/10" in page.inner_text("#job-list li[data-state=done]") and "r4" in page.inner_text("#job-list")
    assert page.inner_text("#src-b option[value=r4]").endswith("_beauty/comp.####.png")  # not r1's comp.####.png
    snap(page, screens, "08_job_list", "#tune-side")
    out = Path(job["spec"]["out"])
    assert len(list(out.parent.glob("comp.*.png"))) == 10 and len(list(out.parent.glob("comp_delta.*.exr"))) == 10
    page.select_option("#mode", "b")
    page.fill("#goto", "3")
    page.press("#goto", "Enter")
    comp = cv2.cvtColor(cv2.imread(str(out.parent / "comp.0003.png"), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    want = display8(colour.to_float(comp), view_processor(resolve_view("Gamma 2.4 Encoded Rec.709", None, "auto")))
    np.testing.assert_array_equal(shown(page, 3), want)  # the render's frame 3 (16-bit, shown in 8: exact)
    layers = page.evaluate("window.review.SHOT.sources.find(s => s.id === 'r4').layers")
    assert layers == ["rgb", "matte", "delta"], layers
    for mode, name in (("matte", "05_matte_over_a"), ("delta", "06_delta_over_a")):
        page.select_option("#mode", mode)
        page.wait_for_function("document.getElementById('message').hidden")
        img = shown(page, 3).astype(int)
        assert np.abs(img - plate_frame(shot, 3)).max() > 40, mode  # the face's matte / change over the plate
        snap(page, screens, name)


def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET ``path`` on the server as written (no client drops its dot segments), with the token."""
    import http.client

    host, port = url.split("//")[1].split("/")[0].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", f"{path}{'&' if '?' in path else '?'}token={url.split('token=')[1]}")
    r = conn.getresponse()
    return r.status, r.read()


@pytest.mark.slow
def test_browser_shows_one_clear_message_per_error(page: Any, shot: Shot, served: str, screens: Path) -> None:
    def expect(text: str) -> None:
        page.wait_for_function("t => document.getElementById('message').textContent.includes(t)", arg=text)
        shown_text = page.inner_text("#message")
        assert page.locator("[role=alert]:visible").count() == 1 and "\n" not in shown_text.strip(), shown_text
        assert "Traceback" not in shown_text and "Internal Server Error" not in shown_text, shown_text

    gone = "document.getElementById('message').hidden"
    set_mode(page, "a")
    for typed, text in (("99", "frame 99 is outside the plate (0–23)"), ("x", '"x" is not a frame number')):
        page.fill("#goto", typed)
        page.press("#goto", "Enter")
        expect(text)
    page.fill("#goto", "2")
    page.press("#goto", "Enter")
    shown(page, 2)
    page.wait_for_function(gone)
    bad = "v => { const t = window.review.tune; t.values['settings.strength'] = v; t.rerun(); }"
    for value, text in (("abc", "settings.strength: expected a number, got 'abc'"), (3, "outside 0..1")):
        page.evaluate(bad, value)  # a bad setting posted to the tune route
        expect(text)
    page.evaluate(bad, 0.5)
    page.wait_for_function(gone)
    (shot.root / "gone" / "gone.0002.png").unlink()  # a render's frame removed while the server runs
    page.select_option("#src-b", "r3")
    page.select_option("#mode", "b")
    expect("gone.####.png: gone.0002.png is gone (deleted or moved since the server started)")
    snap(page, screens, "10_error_message")
    page.select_option("#mode", "a")
    page.wait_for_function(gone)
    moved = shot.shot.with_name("shot_moved")
    shot.shot.rename(moved)  # the shot folder moved away while the server runs
    try:
        page.click(".track[data-track='0']")
        expect(f"the shot folder {shot.shot} is gone")
    finally:
        moved.rename(shot.shot)
    page.fill("#train-model", str(shot.secret.parent))  # the training monitor: a folder not given is refused
    page.click("#train-watch")
    expect("is not one this server may read")
    page.fill("#train-model", str(shot.model))
    page.click("#train-watch")
    page.wait_for_function("document.getElementById('loss').dataset.points === '60'", timeout=10000)
    page.wait_for_function("document.getElementById('train-preview').naturalWidth === 192")
    page.wait_for_function(gone)
    snap(page, screens, "09_training_monitor", "#train")
    paths = (
        "/static/../server.py",
        "/static/%2e%2e/server.py",
        "/static/..%2fserver.py",
        "/frames/../../gone/x",
        f"/static/{shot.secret}",
        f"/api/train/preview?model={shot.secret.parent}",
        "/thumbs/../../etc/passwd",
    )
    for path in paths:  # as sent, no dot segments dropped
        status, body = raw_get(served, path)
        assert status in (400, 404) and b"SECRET" not in body and b"import" not in body, (path, status)
