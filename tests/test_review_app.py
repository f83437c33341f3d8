"""The review web app (``faceplate review``): token, frame-accurate proxies and their cache, bad input, and a
real browser (Debian's Chromium via Playwright) on a real uvicorn server over a 24-frame extract of a real clip.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import assert_one_line_error, cli_here, media
from faceplate.app import ReviewConfig, ReviewServer, create_app
from faceplate.app.proxies import display8, resolve_view, view_processor
from faceplate.app.shotinfo import timecode
from faceplate.config import ExtractConfig
from faceplate.extract import extract
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


def _write_clip(src: Path, out: Path, frames: int) -> list[np.ndarray]:
    """The first ``frames`` frames of ``src`` re-encoded (H.264, near lossless); returns them as decoded RGB."""
    with av.open(str(src)) as c:
        rgb = [f.to_ndarray(format="rgb24") for f, _ in zip(c.decode(video=0), range(frames), strict=False)]
    with av.open(str(out), "w") as o:
        s = o.add_stream("libx264", rate=30, options={"crf": "8", "preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = rgb[0].shape[1], rgb[0].shape[0], "yuv420p"
        for img in rgb:
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                o.mux(pkt)
        for pkt in s.encode():
            o.mux(pkt)
    return rgb


@pytest.fixture(scope="module")
def shot(tmp_path_factory: pytest.TempPathFactory) -> Shot:
    root = tmp_path_factory.mktemp("review")
    clip = root / "d18_24.mp4"
    _write_clip(media("lp_driving_d18.mp4"), clip, FRAMES)
    extract(ExtractConfig(plate=str(clip), shot=root / "shot"))
    with open_plate(clip) as plate:
        for n, rgb in plate.frames(native=True):
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(root / f"comp.{n:04d}.png"), 255 - bgr)
            cv2.imwrite(str(root / f"plus.{n:04d}.png"), np.clip(bgr.astype(np.int16) + 10, 0, 255).astype(np.uint8))
            matte = np.zeros(bgr.shape[:2], np.uint8)
            matte[:, : bgr.shape[1] // 2] = 255
            cv2.imwrite(str(root / f"comp_matte.{n:04d}.png"), matte)
    return Shot(root, root / "shot", clip, str(root / "comp.####.png"), str(root / "plus.####.png"))


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
                 "/api/tune/beauty", "/api/jobs", "/api/train?model=x", "/static/tune.js")  # fmt: skip
        for path in paths:
            assert c.get(path).status_code == 403, path
            assert c.get(path + ("&" if "?" in path else "?") + "token=" + "x" * 20).status_code == 403, path
        for path in ("/api/warm/plate", "/api/tune/frame", "/api/presets", "/api/overrides", "/api/jobs"):
            assert c.post(path, json={}).status_code == 403, path
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
    r = cli_here("review", shot.shot, "--no-open", "--plate", media("lp_driving_d0.mp4"))
    assert_one_line_error(r, "--plate", "belongs to another plate")
    with ReviewServer(ReviewConfig(shot=shot.shot, open_browser=False)) as busy:
        port = busy.url.split(":")[2].split("/")[0]
        assert_one_line_error(cli_here("review", shot.shot, "--no-open", "--port", port), f"port {port}", "in use")


# ------------------------------------------------------------------------------------ real browser
@pytest.fixture(scope="module")
def served(shot: Shot) -> Iterator[str]:
    """A real uvicorn server (PNG proxies: exact pixels) in a thread; its URL with the token."""
    cfg = ReviewConfig(shot=shot.shot, renders=[shot.comp, shot.plus], open_browser=False, proxy_format="png")
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


def shown(page: Any, frame: int) -> np.ndarray:
    """Wait until the viewer shows ``frame``; a screenshot of its canvas as RGB."""
    page.wait_for_function(f"document.getElementById('view').dataset.frame === '{frame}'")
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
def test_browser_scrubs_frame_by_frame_with_timecode(page: Any, shot: Shot, served: str) -> None:
    set_mode(page, "a")
    page.locator("#view").click()
    page.keyboard.press("Home")
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    img = shown(page, 5)
    assert page.inner_text("#frame") == "5" and page.inner_text("#tc") == timecode(5, 30) == "00:00:00:05"
    assert img.shape == (480, 480, 3)
    err = [np.abs(img.astype(int) - plate_frame(shot, n)).mean() for n in (4, 5, 6)]
    assert err[1] < 0.5 and err[1] < min(err[0], err[2]), err  # the frame itself, not a neighbour
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
def test_browser_wipe_shows_plate_left_and_comp_right(page: Any, shot: Shot) -> None:
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


@pytest.mark.slow
def test_browser_difference_with_gain(page: Any, shot: Shot) -> None:
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    set_mode(page, "diff", b="r2", dgain=8)  # |plate - (plate + 10)| x 8
    page.wait_for_function("document.getElementById('dgain-v').textContent === '8'")
    img = shown(page, 1).astype(int)
    ok = plate_frame(shot, 1).max(axis=2) < 240  # not clipped at 255 by the + 10
    assert np.abs(img[ok] - 80).mean() < 1.0
    set_mode(page, "diff", b="r2", gain=1)  # the viewer gain (2^1) applies to the result as well
    page.wait_for_function("document.getElementById('gain-v').textContent === '2.00'")
    img = shown(page, 1).astype(int)
    assert np.abs(img[ok] - 160).mean() < 1.0
    page.locator("#gain").fill("0")
    page.screenshot(path=str(shot.root / "review_page.png"))


def tuned(page: Any) -> np.ndarray:
    """The tuned frame the page shows, as decoded by the browser (RGB)."""
    url = page.evaluate("""() => { const im = document.getElementById('tune-img'), c = document.createElement('canvas');
        c.width = im.naturalWidth; c.height = im.naturalHeight; c.getContext('2d').drawImage(im, 0, 0);
        return c.toDataURL('image/png'); }""")
    import base64

    return decode(base64.b64decode(url.split(",", 1)[1])).astype(int)


@pytest.mark.slow
def test_browser_tune_slider_rerenders_the_frame(page: Any, shot: Shot) -> None:
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
    page.locator("#tune").screenshot(path=str(shot.root / "tune_panel.png"))
