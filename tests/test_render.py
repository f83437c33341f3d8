"""The render path's contract for every effect, and the data-safety rules of its outputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import OpenImageIO as oiio
import pytest
import torch

from conftest import assert_one_line_error, media, run_cli
from faceplate.config import RenderConfig, TrainConfig, build
from faceplate.effects import EFFECTS, Effect
from faceplate.errors import ConfigError
from faceplate.media import WriterSpec, open_plate, open_writer
from faceplate.media.colour import LINEAR_709, converter
from faceplate.media.frames import FrameRange
from faceplate.models import swap_checkpoint as checkpoint
from faceplate.models.keyframes import KeyframeSettings, save_model
from faceplate.models.swap import SwapArch, SwapModel
from faceplate.ops.filters import fill_nonfinite
from faceplate.render import plan_chunks, record_path, render

D18 = "lp_driving_d18.mp4"


def _jiggle(net: torch.nn.Module, seed: int) -> None:
    """Seeded random weights: an untrained network that still changes the face (for contract tests)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.05)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    swap = SwapModel(SwapArch(res=64, ae_dims=32, e_dims=8, d_dims=8, d_mask_dims=4))
    _jiggle(swap, 1)
    checkpoint.save(root / "swap", swap, None, checkpoint.TrainState())
    s = KeyframeSettings(res=64, width=8)
    net = s.net()
    _jiggle(net, 2)
    save_model(root / "keyframes", net, s, {})
    return {"swap": root / "swap", "keyframes": root / "keyframes"}


def _effect(name: str, models: dict[str, Path]) -> Effect:
    from faceplate.effects.deage import DeageSettings
    from faceplate.effects.swap import MergeSettings

    make = EFFECTS.get(name)
    if name == "swap":
        return make(models["swap"], MergeSettings(temporal=0.6))  # temporal: history from the frames before
    if name == "keyframes":
        return make(models["keyframes"])
    return make(DeageSettings(years=20)) if name == "deage" else make()


@pytest.mark.parametrize(
    "name", ["beauty", *(pytest.param(n, marks=pytest.mark.slow) for n in ("deage", "swap", "keyframes"))]
)
def test_a_frame_renders_the_same_whatever_chunk_it_is_in(
    name: str, models: dict[str, Path], d18_shot: Path, tmp_path: Path
) -> None:
    """Every effect is pure per frame: a farm split into chunks gives the same bytes as the whole render."""
    effect = _effect(name, models)
    whole = RenderConfig(plate=str(media(D18)), out=str(tmp_path / "a" / "c.####.exr"), shot=d18_shot, frames="60-68")
    render(whole, effect)
    farm = whole.model_copy(update={"out": str(tmp_path / "b" / "c.####.exr")})
    for chunk in reversed(plan_chunks(farm, 4)):  # any order
        render(chunk, effect)
    changed = 0
    for f in range(60, 69):
        a = oiio.ImageBuf(str(tmp_path / "a" / f"c.{f:04d}.exr")).get_pixels(oiio.FLOAT)
        b = oiio.ImageBuf(str(tmp_path / "b" / f"c.{f:04d}.exr")).get_pixels(oiio.FLOAT)
        np.testing.assert_array_equal(a, b, err_msg=f"{name} frame {f}")
        changed += int((a[..., 3] > 0.1).sum() > 1000)  # the effect really did something there
    assert changed == 9, changed


def test_swap_temporal_smoothing_uses_the_frames_before(
    models: dict[str, Path], d18_shot: Path, tmp_path: Path
) -> None:
    """--temporal is computed from the neighbouring frames themselves: the chunk's first frame is smoothed
    too (its history comes from the plate frames before the chunk), and the smoothing is the pure blend of
    the model's outputs on those frames."""
    from faceplate.effects.swap import MergeSettings, SwapEffect, temporal_blend

    def comps(temporal: float, out: str) -> list[np.ndarray]:
        cfg = RenderConfig(plate=str(media(D18)), out=str(tmp_path / out), shot=d18_shot, frames="100-103")
        render(cfg, SwapEffect(models["swap"], MergeSettings(temporal=temporal)))
        return [oiio.ImageBuf(str(tmp_path / out.replace("####", f"{f:04d}"))).get_pixels(oiio.FLOAT)
                for f in range(100, 104)]  # fmt: skip

    plain, smooth = comps(0.0, "p.####.exr"), comps(0.9, "s.####.exr")
    face = np.min([c[..., 3] for c in plain], axis=0) > 0.5  # inside the swapped face in every frame
    assert face.sum() > 5000
    gaps = [float(np.abs(a[..., :3] - b[..., :3])[face].mean()) for a, b in zip(plain, smooth, strict=True)]
    assert min(gaps) > 1e-6, gaps  # exactly 0 if the frames before were not passed (the random model barely moves)
    # the blend itself: noise on a still face is cut, a real change (a new pose) comes through
    rng = np.random.default_rng(0)
    still = [np.float32(0.5) + rng.normal(0, 0.01, (32, 32, 3)).astype(np.float32) for _ in range(3)]
    out = temporal_blend(still, 0.9)
    assert np.abs(out - 0.5).mean() < 0.7 * np.abs(still[-1] - 0.5).mean()
    moved = [np.zeros((32, 32, 3), np.float32), np.zeros((32, 32, 3), np.float32), np.ones((32, 32, 3), np.float32)]
    assert temporal_blend(moved, 0.9).min() > 0.99


@pytest.mark.slow
def test_outputs_never_overwrite_the_plate_or_each_other(tmp_path: Path) -> None:
    plate = tmp_path / "plate.mp4"
    shutil.copy(media(D18), plate)
    before = plate.read_bytes()
    assert_one_line_error(run_cli("beauty", plate, "-o", plate), "would overwrite the plate")
    assert_one_line_error(run_cli("beauty", plate, "-o", tmp_path / "c.mp4", "--matte", tmp_path / "c.mp4"),
                          "is the comp output too")  # fmt: skip
    assert_one_line_error(run_cli("beauty", plate, "-o", tmp_path / "c.####.exr", "--delta", tmp_path / "c.####.exr"),
                          "is the comp output too")  # fmt: skip
    assert plate.read_bytes() == before
    seq = tmp_path / "seq"
    with open_plate(media(D18)) as p, open_writer(WriterSpec(str(seq / "p.####.png"), 480, 480, format="png16")) as w:
        for n, img in p.frames(FrameRange(0, 2)):
            w.write(n, img)
    frames = {f: f.read_bytes() for f in seq.iterdir()}
    assert_one_line_error(run_cli("beauty", seq / "p.####.png", "-o", seq / "p.%04d.png"), "would overwrite the plate")
    assert_one_line_error(run_cli("beauty", seq / "p.####.png", "-o", seq / "p.0001.png"), "would overwrite the plate")
    assert {f: f.read_bytes() for f in seq.iterdir()} == frames


@pytest.mark.slow
def test_rerun_with_other_settings_needs_overwrite(d18_shot: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.####.png"
    args = (media(D18), "-o", out, "--shot", d18_shot, "--frames", "0-3")
    assert run_cli("beauty", *args).returncode == 0
    first = (tmp_path / "c.0002.png").read_bytes()
    r = run_cli("beauty", *args)
    assert r.returncode == 0 and "0 frame(s) written, 4 already written" in r.stdout  # same settings: resumed
    assert_one_line_error(run_cli("beauty", *args, "--strength", "0.3"), "other settings", "strength 0.7 → 0.3",
                          "--overwrite")  # fmt: skip
    assert_one_line_error(run_cli("deage", *args), "another effect (beauty, not deage)")
    assert (tmp_path / "c.0002.png").read_bytes() == first  # refused: nothing touched
    r = run_cli("beauty", *args, "--strength", "0.3", "--overwrite")
    assert r.returncode == 0 and "4 frame(s) written" in r.stdout, r.stderr
    assert (tmp_path / "c.0002.png").read_bytes() != first
    assert json.loads(record_path(str(out)).read_text())["settings"]["settings"]["strength"] == 0.3
    foreign = tmp_path / "mine.####.png"  # frames the user made by other means
    shutil.copy(tmp_path / "c.0001.png", tmp_path / "mine.0001.png")
    assert_one_line_error(run_cli("beauty", media(D18), "-o", foreign, "--shot", d18_shot, "--frames", "0-3"),
                          "not made by this render")  # fmt: skip


def test_nan_plate_pixels_do_not_spread(tmp_path: Path) -> None:
    """A NaN on a cheek and an Inf in the background of a linear EXR plate: the comp stays finite on the face,
    the Inf pixel (untouched) keeps its value, every other pixel outside the matte is bit-identical."""
    to_lin = converter("sRGB Encoded Rec.709 (sRGB)", LINEAR_709)
    with open_plate(media("lp_driving_d19.jpg")) as still:
        lin = still.read(0).copy()
    to_lin(lin)
    lin = lin.astype(np.float16).astype(np.float32)
    lin[420, 250] = np.nan  # on the left cheek of the d19 face
    lin[20, 20] = np.inf  # grey backdrop
    with open_writer(WriterSpec(str(tmp_path / "plate.####.exr"), 720, 720, colorspace=LINEAR_709)) as w:
        w.write(1001, lin)
    cfg = build(RenderConfig, plate=str(tmp_path / "plate.####.exr"), out=str(tmp_path / "c.####.exr"))
    with pytest.warns(UserWarning, match="2 NaN/Inf"):
        s = render(cfg, EFFECTS.get("beauty")())
    assert s.nonfinite == 2
    comp = oiio.ImageBuf(str(tmp_path / "c.1001.exr")).get_pixels(oiio.FLOAT)
    rgb, alpha = comp[..., :3], comp[..., 3]
    assert alpha[420, 250] > 0.5 and np.isfinite(rgb[alpha > 0]).all()  # touched pixels are finite
    assert np.isinf(rgb[20, 20]).all()  # untouched: kept as it was
    same = (alpha == 0) & np.isfinite(lin).all(axis=2)
    np.testing.assert_array_equal(rgb[same], lin[same])


def test_fill_nonfinite_uses_the_neighbours() -> None:
    img = np.full((9, 9, 3), 0.5, np.float32)
    img[:, 5:] = 0.7
    img[4, 4] = [np.nan, 0.1, 0.2]
    out = fill_nonfinite(img)
    assert np.isfinite(out).all() and 0.5 <= out[4, 4, 0] <= 0.7
    np.testing.assert_array_equal(np.delete(out.reshape(-1, 3), 40, 0), np.delete(img.reshape(-1, 3), 40, 0))


def test_render_config_holds_the_extract_config() -> None:
    cfg = RenderConfig(plate="p.mp4", out="o/c.mov", tiles=2, detect_every=3, smooth_beta=0.2)
    assert (cfg.extract.tiles, cfg.extract.detect_every, cfg.extract.smooth_beta) == (2, 3, 0.2)
    assert cfg.shot == Path("o/p.faceplate") and cfg.with_frames("1-5").extract.frames == "1-5"
    with pytest.raises(ConfigError, match="tiles"):
        build(RenderConfig, plate="p.mp4", out="c.mov", tiles=9)
    with pytest.raises(ConfigError, match="say how long to train"):
        build(TrainConfig, src="a", dst="b", model="m")


@pytest.mark.slow
def test_ctrl_c_exits_130_with_one_line(tmp_path: Path, d18_shot: Path) -> None:
    """A Ctrl-C anywhere (here: while the analysis models load) exits 130 and says what is kept."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for args in (["extract", str(media("fra_orig.mp4")), "--shot", str(tmp_path / "s")],  # 1080p: ~20 s
                 ["align", str(d18_shot), "--track", "0", "--res", "1024", "-o", str(tmp_path / "crops")]):  # fmt: skip
        proc = subprocess.Popen([sys.executable, "-m", "faceplate", *args], stderr=subprocess.PIPE, text=True, env=env)
        time.sleep(2.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert proc.returncode == 130 and len(lines) == 1 and "interrupted" in lines[0], (args, err)
        assert "kept" in lines[0] or "stored" in lines[0] or "nothing" in lines[0], lines[0]


@pytest.mark.slow
def test_still_plate_to_a_single_file_and_face_errors(tmp_path: Path) -> None:
    """A one-frame plate renders to ``-o still.png`` (no #### needed), keeping no matte in its alpha."""
    r = run_cli("beauty", media("lp_driving_d19.jpg"), "-o", tmp_path / "still.png")
    assert r.returncode == 0, r.stderr
    with open_plate(tmp_path / "still.png") as comp, open_plate(media("lp_driving_d19.jpg")) as plate:
        assert not comp.info.has_alpha  # the matte goes to the sidecar, the comp keeps the plate's (no) alpha
        diff = np.abs(comp.read(0) - plate.read(0)).max(axis=2)
    with open_plate(tmp_path / "still_matte.png") as m:
        matte = m.read(0)[..., 0]
    assert diff[matte > 0.5].mean() > 1e-3 and diff[matte == 0].max() < 1e-3  # retouched inside the matte only
    assert_one_line_error(run_cli("beauty", media(D18), "-o", tmp_path / "c.mp4", "--face", tmp_path),
                          "is a folder", "reference image")  # fmt: skip
    assert_one_line_error(run_cli("beauty", media(D18), "-o", tmp_path / "c.mp4", "--face", tmp_path / "nope.jpg"),
                          "reference image", "does not exist")  # fmt: skip


@pytest.mark.slow
def test_png_comp_keeps_the_plates_own_alpha(tmp_path: Path) -> None:
    """An RGBA PNG plate: the comp carries the plate's alpha untouched, the matte goes to its sidecar."""
    with open_plate(media("lp_driving_d19.jpg")) as still:
        rgb = still.read(0)
    alpha = np.tile(np.linspace(0.2, 1.0, 720, dtype=np.float32), (720, 1))
    with open_writer(WriterSpec(str(tmp_path / "p.####.png"), 720, 720, format="png16")) as w:
        w.write(1, np.dstack([rgb, alpha]))
    r = run_cli("beauty", tmp_path / "p.####.png", "-o", tmp_path / "out" / "c.####.png")
    assert r.returncode == 0, r.stderr
    comp = oiio.ImageBuf(str(tmp_path / "out" / "c.0001.png")).get_pixels(oiio.FLOAT)
    plate = oiio.ImageBuf(str(tmp_path / "p.0001.png")).get_pixels(oiio.FLOAT)
    assert comp.shape == (720, 720, 4)
    np.testing.assert_array_equal(comp[..., 3], plate[..., 3])  # the plate's alpha, not the matte
    matte = oiio.ImageBuf(str(tmp_path / "out" / "c_matte.0001.png")).get_pixels(oiio.FLOAT)
    assert matte.max() > 0.9 and np.abs(comp[..., :3] - plate[..., :3])[matte[..., 0] > 0.5].mean() > 1e-3


@pytest.mark.slow
def test_invalid_model_json_is_refused_before_use(models: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "swap"
    shutil.copytree(models["swap"], bad)
    meta = json.loads((bad / "model.json").read_text())
    meta["arch"]["res"] = 70  # not a multiple of 16
    (bad / "model.json").write_text(json.dumps(meta))
    out = tmp_path / "c.####.png"
    assert_one_line_error(run_cli("swap", media(D18), "--model", bad, "-o", out), "invalid model.json", "70")
    kf = tmp_path / "kf"
    shutil.copytree(models["keyframes"], kf)
    meta = json.loads((kf / "keyframes.json").read_text())
    meta["settings"]["width"] = 0
    (kf / "keyframes.json").write_text(json.dumps(meta))
    assert_one_line_error(run_cli("keyframes", "apply", media(D18), "--model", kf, "-o", out), "invalid settings")
    assert not list(tmp_path.glob("c.*.png"))


@pytest.mark.slow
def test_one_pass_effects_side_by_side_keep_frame_order(tmp_path: Path) -> None:
    """A one-pass render runs the effect of EFFECT_WORKERS frames at once: frames that finish out of order
    are still written in order (the same comp as without the delays), and an effect's error ends the render."""
    from faceplate.effects.base import AlignedFace, EffectResult
    from faceplate.effects.beauty import BeautyEffect
    from faceplate.render.run import EFFECT_WORKERS

    class Slow(BeautyEffect):  # even frames finish after the odd frame behind them
        def apply(self, face: AlignedFace, context: Any) -> EffectResult:
            time.sleep(0.2 if face.frame % 2 == 0 else 0.0)
            return super().apply(face, context)

    class Fails(BeautyEffect):
        def apply(self, face: AlignedFace, context: Any) -> EffectResult:
            if face.frame == 3:
                raise RuntimeError("effect failed at frame 3")
            return super().apply(face, context)

    cfg = lambda name: RenderConfig(plate=str(media(D18)), frames="0-5", format="png8",  # noqa: E731
                                    out=str(tmp_path / name / "c.####.png"), shot=tmp_path / name / "shot")  # fmt: skip
    a, b = render(cfg("a"), BeautyEffect()), render(cfg("b"), Slow())
    assert EFFECT_WORKERS == 2 and "extract" not in a.stages and a.written == b.written == 6
    with open_plate(tmp_path / "a" / "c.####.png") as pa, open_plate(tmp_path / "b" / "c.####.png") as pb:
        for k in range(6):
            np.testing.assert_array_equal(pa.read(k, native=True), pb.read(k, native=True))
    with pytest.raises(RuntimeError, match="frame 3"):
        render(cfg("c"), Fails())


def test_stopwatch_times_threads_wall_and_cpu() -> None:
    """Stages timed from several threads at once all count (the totals are updated under a lock); ``cpu``
    holds the timing thread's CPU: a busy stage has about its wall time, a sleeping one almost none."""
    import threading

    from faceplate.timing import Stopwatch

    sw = Stopwatch()

    def work() -> None:
        for _ in range(200):
            with sw("count"):
                pass
        with sw("busy"):
            t = time.thread_time()
            while time.thread_time() - t < 0.05:
                pass
        with sw("sleep"):
            time.sleep(0.05)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall, cpu = sw.snapshot()
    assert set(wall) == set(cpu) == {"count", "busy", "sleep"}
    assert cpu["busy"] >= 4 * 0.05 and wall["busy"] >= cpu["busy"] - 1e-3
    assert wall["sleep"] >= 4 * 0.05 and cpu["sleep"] < 0.05


@pytest.mark.slow
def test_ctrl_c_in_a_one_pass_render_exits_130_and_ends_its_helper(tmp_path: Path) -> None:
    """Ctrl-C while a fresh shot is analysed and rendered in one pass: exit 130 with one line, and the identity
    helper process (render.stream's embedder) ends with it."""
    tag = f"faceplate-test-{os.getpid()}-{time.time_ns()}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FACEPLATE_TEST_TAG": tag}
    cmd = [sys.executable, "-m", "faceplate", "beauty", str(media("fra_orig.mp4")), "-o", str(tmp_path / "c.mp4")]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)

    def tagged() -> list[int]:
        pids = []
        for d in Path("/proc").iterdir():
            try:
                if d.name.isdigit() and int(d.name) != proc.pid and tag.encode() in (d / "environ").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                continue
        return pids

    deadline = time.time() + 60
    while not tagged() and time.time() < deadline:  # the helper starts with the analysis models
        time.sleep(0.2)
    assert tagged(), "no identity helper process started"
    time.sleep(3.0)  # into the render
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == 130 and len(lines) == 1 and "interrupted" in lines[0], err
    deadline = time.time() + 10
    while tagged() and time.time() < deadline:
        time.sleep(0.2)
    assert not tagged()


def test_one_pass_models_fall_back_to_dlib_here_without_a_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where no helper process can start (a sandbox), the one-pass render embeds in its own process."""
    from faceplate.analysis import identity
    from faceplate.config import ExtractConfig
    from faceplate.render.stream import load_models

    def refuse(*args: object, **kw: object) -> None:
        raise PermissionError("no processes here")

    monkeypatch.setattr(identity.subprocess, "Popen", refuse)
    models = load_models(ExtractConfig(plate=str(media(D18)), shot=Path("unused"), hands=False))
    try:
        assert type(models.embedder) is identity.Embedder and models.hands is None
    finally:
        models.close()


def test_ctrl_c_while_mediapipe_initialises_is_an_interrupt(monkeypatch: pytest.MonkeyPatch) -> None:
    """pybind11 turns a Ctrl-C during a C extension's import into ImportError("initialization failed"): that is
    the user's interrupt (exit 130), not a broken install."""
    from faceplate.analysis import mp_graphs
    from faceplate.errors import ModelError

    def interrupted_import() -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise ImportError("initialization failed") from e

    monkeypatch.setattr(mp_graphs, "_light_package", interrupted_import)
    with pytest.raises(KeyboardInterrupt):
        mp_graphs.mediapipe_module()
    monkeypatch.setattr(mp_graphs, "_light_package", lambda: (_ for _ in ()).throw(ImportError("no mediapipe")))
    with pytest.raises(ModelError, match="not installed correctly"):
        mp_graphs.mediapipe_module()
