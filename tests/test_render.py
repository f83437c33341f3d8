"""The render path's contract for every effect, and the data-safety rules of its outputs."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import OpenImageIO as oiio
import pytest

from conftest import assert_one_line_error, media, run_cli, tiny_models
from faceplate.config import RenderConfig, TrainConfig, build
from faceplate.effects import EFFECTS, Effect
from faceplate.errors import ConfigError
from faceplate.media import WriterSpec, open_plate, open_writer
from faceplate.media.colour import LINEAR_709, converter
from faceplate.ops.filters import fill_nonfinite
from faceplate.render import plan_chunks, render

D18 = "lp_driving_d18.mp4"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return tiny_models(tmp_path_factory.mktemp("models"))


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
