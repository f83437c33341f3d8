"""The review app, phase 2: a tuned frame is the render's frame, presets and overrides live in the shot and
renders honour the overrides on their range only, the render queue runs, cancels, resumes and survives a
restart, and the training monitor reads a loss log another process writes. A 12-frame extract of a real clip.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import extracted_clip, tiny_models
from faceplate.app import ReviewConfig, create_app
from faceplate.app.proxies import display8, resolve_view, view_processor
from faceplate.app.training import read_losses
from faceplate.config import Override, RenderConfig, override_at
from faceplate.effects import EFFECTS
from faceplate.media import colour
from faceplate.media.frames import FrameRange
from faceplate.render import render
from faceplate.render.outputs import record_path
from faceplate.render.run import FrameRenderer, override_parts, with_settings
from faceplate.store import ShotStore

FRAMES = 12
TOKEN = "t" * 20


@pytest.fixture(scope="module")
def shot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return extracted_clip(tmp_path_factory.mktemp("tune"), "d18_12.mp4", FRAMES).parent / "shot"


def clip_of(shot: Path) -> str:
    return str(shot.parent / "d18_12.mp4")


@pytest.fixture
def client(shot: Path) -> Iterator[TestClient]:
    with app_client(shot) as c:
        yield c


def app_client(shot: Path, **kw: Any) -> TestClient:
    """A fresh app (a server restart: its state loaded from the shot again), token cookie set."""
    c = TestClient(create_app(ReviewConfig(shot=shot, open_browser=False, token=TOKEN, proxy_format="png", **kw)))
    c.cookies.set(c.app.state.review.cookie, TOKEN)  # type: ignore[attr-defined]
    return c


def beauty(strength: float) -> Any:
    return with_settings(EFFECTS.get("beauty")(), {"settings": {"strength": strength}})


def render_to(shot: Path, out: Path, effect: Any, frames: str) -> None:
    render(RenderConfig(plate=clip_of(shot), shot=shot, out=str(out / "comp.####.png"), frames=frames), effect)


def png16(out: Path, n: int) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(out / f"comp.{n:04d}.png"), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)


def decode(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


# ------------------------------------------------------------------------------------ tune = render
def test_tuned_frame_is_the_renders_frame_bit_for_bit(shot: Path, client: TestClient, tmp_path: Path) -> None:
    render_to(shot, tmp_path, beauty(0.4), "3-5")
    fr = FrameRenderer(RenderConfig(plate=clip_of(shot), shot=shot, out=str(tmp_path / "x.png")))
    try:
        comp, matte = fr.render(beauty(0.4), 4, deep=True)
    finally:
        fr.close()
    ref = png16(tmp_path, 4)
    assert comp.dtype == np.uint16 and matte.max() > 0.5
    np.testing.assert_array_equal(comp, ref)  # the same code path: bit for bit
    body = {"effect": "beauty", "settings": {"settings": {"strength": 0.4}}, "frame": 4}
    r = client.post("/api/tune/frame", json=body)
    assert r.status_code == 200 and r.headers["x-frame"] == "4" and float(r.headers["x-render-ms"]) > 0
    view = view_processor(resolve_view("Gamma 2.4 Encoded Rec.709", None, "auto"))
    np.testing.assert_array_equal(decode(r.content), display8(colour.to_float(ref), view))
    other = decode(client.post("/api/tune/frame", json={**body, "settings": {"settings": {"strength": 1.0}}}).content)
    assert np.abs(other.astype(int) - decode(r.content)).max() > 2  # a setting moves the frame


@pytest.mark.slow
@pytest.mark.parametrize("name", ["swap", "keyframes"])
def test_a_models_tuned_frame_is_the_renders_frame(shot: Path, tmp_path: Path, name: str) -> None:
    """Swap and keyframes tune with their model folder (a --model folder): the frame is the render's, bit for
    bit, the swap's merge controls are on the form, and a model folder not given at startup is refused."""
    model = tiny_models(tmp_path / "models")[name]
    effect = with_settings(EFFECTS.get(name)(model), {"merge": {"erode": 4}} if name == "swap" else {})
    render_to(shot, tmp_path / "r", effect, "5-6")
    body = {
        "effect": name,
        "model": str(model),
        "frame": 6,
        "settings": {"merge": {"erode": 4}} if name == "swap" else {},
    }
    with app_client(shot, models=[model.parent]) as c:
        r = c.post("/api/tune/frame", json=body)
        assert r.status_code == 200, r.text
        controls = {k["key"] for k in c.get(f"/api/tune/{name}").json()["controls"]}
    view = view_processor(resolve_view("Gamma 2.4 Encoded Rec.709", None, "auto"))
    np.testing.assert_array_equal(decode(r.content), display8(colour.to_float(png16(tmp_path / "r", 6)), view))
    if name == "swap":
        assert {"merge.colour", "merge.mask", "merge.erode", "merge.blur"} <= controls, controls
    with app_client(shot) as c:  # no --model: the folder is not one the page may name
        refused = c.post("/api/tune/frame", json=body)
    assert refused.status_code == 400 and "\n" not in refused.json()["detail"]


def test_the_form_is_built_from_the_effects_settings(client: TestClient) -> None:
    f = client.get("/api/tune/beauty").json()
    keys = {c["key"]: c for c in f["controls"]}
    assert keys["settings.strength"]["kind"] == "range" and keys["settings.strength"]["max"] == 1.0
    assert keys["settings.smooth"]["kind"] == "toggle" and keys["crop"]["kind"] == "select"
    d = {c["key"]: c for c in client.get("/api/tune/deage").json()["controls"]}
    assert d["settings.years"]["min"] == 1.0 and d["settings.hair"]["kind"] == "toggle"
    bad = client.post("/api/tune/frame", json={"effect": "beauty", "settings": {"settings": {"nope": 1}}})
    assert bad.status_code == 400 and "no setting 'nope'" in bad.json()["detail"]
    bad = client.post("/api/tune/frame", json={"effect": "beauty", "settings": {"settings": {"strength": 3}}})
    assert bad.status_code == 400 and "outside 0..1" in bad.json()["detail"]
    assert client.get("/api/tune/blur").status_code == 400


# ------------------------------------------------------------------------------------ presets, overrides
def test_a_preset_is_stored_in_the_shot_and_listed_after_a_restart(shot: Path) -> None:
    with app_client(shot) as c:
        r = c.post(
            "/api/presets", json={"effect": "beauty", "name": "soft", "settings": {"settings": {"strength": 0.3}}}
        )
        assert r.status_code == 200
        assert c.post("/api/presets", json={"effect": "beauty", "name": ""}).status_code == 400
    with app_client(shot) as c:  # restarted
        got = c.get("/api/tune/beauty").json()["presets"]
        assert {"name": "soft", "settings": {"settings": {"strength": 0.3}}} in got
    with ShotStore.open(shot) as store:
        assert ("beauty", "soft", {"settings": {"strength": 0.3}}) in store.presets("beauty")


def test_the_override_rule() -> None:
    a = Override(id=1, first=10, settings={"x": 1})
    b = Override(id=2, first=20, last=29, settings={"x": 2})
    c = Override(id=3, first=20, last=24, settings={"x": 3})
    assert override_at([a, b, c], 5) is None and override_at([a, b, c], 15) is a
    assert override_at([a, b, c], 22) is c and override_at([a, b, c], 27) is b and override_at([a, b, c], 40) is a
    parts = override_parts(beauty(0.7), [Override(id=1, first=4, last=5, settings={"settings": {"strength": 0.1}})],
                           [FrameRange(2, 7)])  # fmt: skip
    assert [(p.runs, p.effect.settings.strength) for p in parts] == [
        ([FrameRange(2, 3)], 0.7),
        ([FrameRange(4, 5)], 0.1),
        ([FrameRange(6, 7)], 0.7),
    ]
    with pytest.raises(ValueError, match="before the first"):
        Override(first=5, last=4)


@pytest.mark.slow
def test_renders_honour_an_override_on_its_range_only(shot: Path, tmp_path: Path, client: TestClient) -> None:
    plain, low, over, after = (tmp_path / n for n in ("plain", "low", "over", "after"))
    render_to(shot, plain, beauty(0.7), "2-5")
    render_to(shot, low, beauty(0.1), "4-5")
    plain_record = record_path(str(plain / "comp.####.png")).read_text()
    r = client.post(
        "/api/overrides", json={"effect": "beauty", "first": 4, "settings": {"settings": {"strength": 0.1}}}
    )
    oid = r.json()["id"]
    try:
        assert [o["first"] for o in client.get("/api/tune/beauty").json()["overrides"]] == [4]
        render_to(shot, over, beauty(0.7), "2-5")  # the CLI's API: the shot's overrides apply
    finally:
        client.delete(f"/api/overrides/{oid}")
    for n in (2, 3):
        np.testing.assert_array_equal(png16(over, n), png16(plain, n))
    for n in (4, 5):
        np.testing.assert_array_equal(png16(over, n), png16(low, n))
    assert json.loads(record_path(str(over / "comp.####.png")).read_text())["overrides"][0]["first"] == 4
    render_to(shot, after, beauty(0.7), "2-5")  # no overrides again: the render and its record as before
    for n in range(2, 6):
        np.testing.assert_array_equal(png16(after, n), png16(plain, n))
    assert record_path(str(after / "comp.####.png")).read_text() == plain_record.replace(str(plain), str(after))
    bad = client.post("/api/overrides", json={"effect": "beauty", "first": 6, "last": 2})
    assert bad.status_code == 400 and "before the first" in bad.json()["detail"]


# ------------------------------------------------------------------------------------ render queue
def wait_job(c: TestClient, jid: int, states: tuple[str, ...], timeout: float = 60) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = next(j for j in c.get("/api/jobs").json()["jobs"] if j["id"] == jid)
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {jid} is still {job['state']}")


@pytest.mark.slow
def test_a_job_runs_reports_progress_cancels_resumes_and_survives_a_restart(
    shot: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceplate.app import jobs

    call = jobs._Progress.__call__

    def cancel_at_3(self: Any, done: int, total: int) -> None:  # the cancel button, after the third frame
        if done == 3 and not self.jobs.job(self.jid)["message"]:
            self.jobs.cancel(self.jid)
        call(self, done, total)

    monkeypatch.setattr(jobs._Progress, "__call__", cancel_at_3)
    with app_client(shot) as c:
        jid = c.post("/api/jobs", json={"effect": "beauty", "settings": {"settings": {"strength": 0.5}}}).json()["id"]
        job = wait_job(c, jid, ("cancelled", "failed"))
        assert job["state"] == "cancelled" and "kept" in job["message"], job
        out = Path(job["spec"]["out"])
        kept = sorted(out.parent.glob("comp.*.png"))
        assert 1 <= len(kept) < FRAMES  # whole frames written before the cancel (queued ones are dropped)
        stamps = {p: p.stat().st_mtime_ns for p in kept}
        bus = c.app.state.review.bus  # type: ignore[attr-defined]
        last = json.loads(bus._last["jobs"].split("data: ")[1])
        assert last["id"] == jid and last["state"] == "cancelled" and last["done"] >= 3
    with ShotStore.create(shot, ShotStore.open(shot).plate) as store:  # as if the server died mid-render
        store.update_job(jid, state="running")
    monkeypatch.setattr(jobs._Progress, "__call__", call)
    with app_client(shot) as c:  # restarted: listed, interrupted, resumable
        job = next(j for j in c.get("/api/jobs").json()["jobs"] if j["id"] == jid)
        assert job["state"] == "interrupted"
        assert c.post(f"/api/jobs/{jid}/resume").json()["resume"] is True
        job = wait_job(c, jid, ("done", "failed"))
        assert job["state"] == "done" and job["done"] == FRAMES - len(kept), job
        assert len(list(out.parent.glob("comp.*.png"))) == FRAMES
        assert all(p.stat().st_mtime_ns == s for p, s in stamps.items())  # finished frames were kept, not redone
        sources = c.get("/api/shot").json()["sources"]
        assert any(s["path"] == str(out) for s in sources)  # the finished render opens in the viewer
        assert c.post(f"/api/jobs/{jid}/cancel").json()["cancel"] is False
    with app_client(shot) as c:  # and again after a restart
        assert any(s["path"] == str(out) for s in c.get("/api/shot").json()["sources"])
        r = c.post("/api/jobs", json={"effect": "beauty", "settings": {"settings": {"strength": 9}}})
        assert r.status_code == 400 and "outside 0..1" in r.json()["detail"]
        r = c.post("/api/jobs", json={"effect": "beauty", "frames": "9-2"})
        assert r.status_code == 400 and "9-2" in r.json()["detail"]


# ------------------------------------------------------------------------------------ training monitor
WRITER = """
import sys, time
from pathlib import Path
from faceplate.training.swap import log_loss
folder = Path(sys.argv[1])
for i in range(1, 41):
    log_loss(folder, i, 1.0 / i)
    if i == 20:
        (folder / "preview.png").write_bytes(Path(sys.argv[2]).read_bytes())
    time.sleep(0.02)
"""


@pytest.mark.slow
def test_training_monitor_follows_a_loss_log_written_by_another_process(shot: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    with app_client(shot, models=[model]) as client:  # a folder given at startup (--model)
        watch_training(client, model, tmp_path)
        nope = client.get("/api/train", params={"model": str(tmp_path / "nope")})
        assert nope.status_code == 400 and "--model" in nope.json()["detail"]
        (shot / "models" / "kf").mkdir(parents=True, exist_ok=True)  # a folder inside the shot: allowed
        assert client.get("/api/train", params={"model": str(shot / "models" / "kf")}).json()["losses"] == []


def watch_training(client: TestClient, model: Path, tmp_path: Path) -> None:
    """The monitor reads ``model``'s loss log and preview while another process writes them."""
    png = tmp_path / "p.png"
    cv2.imwrite(str(png), np.full((8, 16, 3), 128, np.uint8))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(model), str(png)])
    seen: list[int] = []
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end and (not seen or seen[-1] < 40):
            got = client.get("/api/train", params={"model": str(model)}).json()
            seen.append(len(got["losses"]))
            time.sleep(0.05)
    finally:
        proc.wait(30)
    assert seen[-1] == 40 and any(0 < n < 40 for n in seen)  # read while it was being written
    got = client.get("/api/train", params={"model": str(model)}).json()
    assert got["losses"][0] == [1, 1.0] and got["preview"] is not None
    assert decode(client.get("/api/train/preview", params={"model": str(model)}).content).shape == (8, 16, 3)


def test_a_half_written_loss_line_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "losses.jsonl").write_text('{"iteration": 1, "loss": 0.5}\n{"iteration": 2, "lo')
    assert read_losses(tmp_path) == [(1, 0.5)] and read_losses(tmp_path / "none") == []


@pytest.mark.slow
def test_overrides_and_presets_from_the_command_line(shot: Path, tmp_path: Path) -> None:
    import shutil

    from conftest import assert_one_line_error, cli_here

    mine = Path(shutil.copytree(shot, tmp_path / "shot", ignore=shutil.ignore_patterns("review_cache")))
    r = cli_here("overrides", mine, "--add", "5-", "--set", "settings.strength=0.2", "--set", "settings.blemish=false")
    assert r.returncode == 0, r.stderr
    r = cli_here("overrides", mine, "--effect", "beauty", "--add", "2-3", "--set", "settings.texture=0.9")
    assert r.returncode == 0 and "5-" in r.stdout and "2-3" in r.stdout
    with ShotStore.open(mine) as store:
        stored, info = store.overrides("beauty"), store.plate
    got = [(a, b, v) for _, a, b, v in stored]
    assert got == [(5, None, {"settings": {"strength": 0.2, "blemish": False}}), (2, 3, {"settings": {"texture": 0.9}})]
    r = cli_here("overrides", mine, "--remove", stored[0][0])
    assert r.returncode == 0 and "5-" not in r.stdout.split("overrides")[-1]
    assert_one_line_error(cli_here("overrides", mine, "--remove", 999), "no beauty override 999")
    assert_one_line_error(cli_here("overrides", mine, "--add", "1-2", "--set", "settings.nope=1"), "nope")
    assert_one_line_error(cli_here("overrides", mine, "--add", "3-99", "--set", "settings.strength=0.1"), "outside")
    assert_one_line_error(cli_here("overrides", mine, "--add", "x", "--set", "settings.strength=0.1"), "FIRST-LAST")
    assert_one_line_error(cli_here("overrides", mine, "--effect", "paint"), "unknown effect", "beauty")
    with ShotStore.create(mine, info) as store:
        store.save_preset("beauty", "hero", {"settings": {"strength": 0.4}})
    r = cli_here("presets", mine)
    assert r.returncode == 0 and "hero" in r.stdout
    assert cli_here("presets", mine, "--effect", "beauty", "--remove", "hero").returncode == 0
    assert_one_line_error(cli_here("presets", mine, "--effect", "beauty", "--remove", "hero"), "no beauty preset")


@pytest.mark.slow
def test_render_takes_a_named_preset_of_the_shot(shot: Path, tmp_path: Path) -> None:
    import shutil

    from conftest import assert_one_line_error, cli_here

    mine = Path(shutil.copytree(shot, tmp_path / "shot", ignore=shutil.ignore_patterns("review_cache")))
    with ShotStore.open(mine) as store:
        info = store.plate
    with ShotStore.create(mine, info) as store:
        store.save_preset("beauty", "hero", {"settings": {"strength": 0.25}})
    out = tmp_path / "p" / "comp.####.png"
    cfg = RenderConfig(plate=clip_of(shot), shot=mine, out=str(out), frames="4-5", preset="hero")
    render(cfg, EFFECTS.get("beauty")())
    plain = RenderConfig(plate=clip_of(shot), shot=mine, out=str(tmp_path / "s" / "comp.####.png"), frames="4-5")
    render(plain, beauty(0.25))
    for n in (4, 5):
        np.testing.assert_array_equal(png16(out.parent, n), png16(tmp_path / "s", n))  # the preset's strength
    assert json.loads(record_path(str(out)).read_text())["settings"]["settings"]["strength"] == 0.25
    assert_one_line_error(cli_here("beauty", clip_of(shot), "-o", tmp_path / "q.####.png", "--shot", mine,
                                   "--frames", "4-4", "--preset", "villain"), "no beauty preset", "hero")  # fmt: skip
