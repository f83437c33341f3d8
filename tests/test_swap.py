"""Face swap: facesets from real clips, a tiny model that really trains, checkpoints, merge, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import assert_one_line_error, media, run_cli
from faceplate.config import FacesetConfig, TrainConfig
from faceplate.errors import ConfigError, ModelError, StoreError
from faceplate.media import open_plate
from faceplate.ops.augment import face_mask
from faceplate.ops.colour_transfer import COLOUR_TRANSFER
from faceplate.swap import checkpoint
from faceplate.swap.train import train
from faceplate.training.faceset import build, contact_sheet, coverage_plot, curate, load

TINY = {"res": 64, "ae_dims": 32, "e_dims": 8, "d_dims": 8, "d_mask_dims": 4, "lr": 5e-4, "batch": 4,
        "preview_every": 10}  # fmt: skip


@pytest.fixture(scope="module")
def facesets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("facesets")
    a = build(FacesetConfig(name=root / "A", sources=[str(media("lp_driving_d18.mp4"))], res=96, every=6))
    b = build(FacesetConfig(name=root / "B", sources=[str(media("lp_driving_d0.mp4"))], res=96, every=3))
    return a.path, b.path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory, facesets: tuple[Path, Path]) -> tuple[Path, object]:
    folder = tmp_path_factory.mktemp("model") / "m"
    summary = train(TrainConfig(src=facesets[0], dst=facesets[1], model=folder, iters=30, **TINY))
    return folder, summary


def test_facesets_from_real_clips(facesets: tuple[Path, Path]) -> None:
    a, b = load(facesets[0]), load(facesets[1])
    assert len(a) == 36 and len(b) == 26  # every 6th of 216 frames, every 3rd of 78
    assert a.res == 96 and a.face_type == "whole_face" and a.landmarks.shape == (36, 478, 3)
    assert a.image(0).shape == (96, 96, 3)
    assert a.identity is not None and b.identity is not None
    assert np.linalg.norm(a.identity - b.identity) > 0.6  # two different men
    yaws = [f.yaw for f in a.faces]
    assert max(abs(y) for y in yaws) < 30  # frontal studio clip
    by_yaw = curate(a, "yaw")
    assert [f.yaw for f in by_yaw.faces] == sorted(yaws)
    sharp = curate(a, "blur", drop_blurry=0.25)
    assert len(sharp) < len(a) and sharp.faces[0].blur == max(f.blur for f in sharp.faces)
    assert len(curate(a, "histogram", dedupe=True)) <= len(a)
    sheet, plot = contact_sheet(a, facesets[0] / "sheet.png"), coverage_plot(a, facesets[0] / "cov.png", b)
    assert sheet.stat().st_size > 1000 and plot.stat().st_size > 1000


def test_tiny_model_trains_and_loss_falls(model: tuple[Path, object]) -> None:
    folder, s = model
    assert s.iteration == 30  # type: ignore[attr-defined]
    assert s.last_loss < 0.8 * s.first_loss, s  # type: ignore[attr-defined]
    assert (folder / "preview.png").is_file() and (folder / "loss.png").is_file()
    meta = json.loads((folder / "model.json").read_text())
    assert meta["arch"]["res"] == 64 and meta["state"]["iteration"] == 30
    assert meta["state"]["dst"]["identity"] is not None


def test_checkpoint_round_trip_and_resume(
    model: tuple[Path, object], facesets: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, _ = model
    copy = tmp_path / "m"
    shutil.copytree(folder, copy)
    m1, opt, state = checkpoint.load(copy, torch.device("cpu"))
    checkpoint.save(copy, m1, None, state)
    m2, _, state2 = checkpoint.load(copy, torch.device("cpu"))
    for (k, v), (k2, v2) in zip(m1.state_dict().items(), m2.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)
    assert state2.iteration == 30 and opt is not None and len(opt["state"]) > 0
    resumed = train(TrainConfig(src=facesets[0], dst=facesets[1], model=copy, iters=35, **{k: v for k, v in TINY.items()
                                if k not in ("res", "ae_dims", "e_dims", "d_dims", "d_mask_dims")}))  # fmt: skip
    assert (resumed.first_iteration, resumed.iteration) == (30, 35)
    with pytest.raises(ConfigError, match="trained with other settings: res 128"):
        train(TrainConfig(src=facesets[0], dst=facesets[1], model=copy, iters=40, res=128))


def test_merge_writes_every_frame_and_only_the_face(model: tuple[Path, object], tmp_path: Path) -> None:
    folder, _ = model
    out = tmp_path / "c.####.exr"
    r = run_cli("swap", media("lp_driving_d0.mp4"), "--model", folder, "-o", out, "--frames", "10-17",
                "--colour", "mkl", "--poisson", "--sharpen", "0.3")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "8 frame(s) written, 8 face(s) swapped" in r.stdout
    import OpenImageIO as oiio

    with open_plate(media("lp_driving_d0.mp4")) as plate:
        for n in range(10, 18):
            px = oiio.ImageBuf(str(tmp_path / f"c.{n:04d}.exr")).get_pixels(oiio.FLOAT)
            src = plate.read(n).astype(np.float16).astype(np.float32)
            alpha = px[..., 3]
            assert (alpha > 0.5).sum() > 5000
            np.testing.assert_array_equal(px[..., :3][alpha == 0], src[alpha == 0])
            assert np.abs(px[..., :3] - src)[alpha > 0.5].mean() > 0.01


def test_bf16_merge_matches_fp32_and_keeps_full_precision_output(
    model: tuple[Path, object], facesets: tuple[Path, Path]
) -> None:
    """The merge runs in bf16 where the CPU has native bf16 (AMX/AVX512-BF16) or on CUDA; each decoder's
    output layer stays fp32, so the face is not quantized to bf16's ~1/256 steps and matches fp32 closely."""
    folder, _ = model
    ref_model = checkpoint.load(folder, torch.device("cpu"))[0].for_merging(bf16=False)
    bf_model = checkpoint.load(folder, torch.device("cpu"))[0].for_merging(bf16=True)
    assert (ref_model.dtype, bf_model.dtype) == (torch.float32, torch.bfloat16)
    fs = load(facesets[1])
    imgs = np.stack([cv2.resize(fs.image(i), (64, 64), interpolation=cv2.INTER_AREA) for i in range(4)])
    x = torch.from_numpy(imgs.astype(np.float32) / 255).permute(0, 3, 1, 2)  # real faces at the model's 64 px
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref, ref_mask = ref_model.swap(x)
        half, half_mask = bf_model.swap(x.to(torch.bfloat16))
    assert half.dtype == torch.float32 and half_mask.dtype == torch.float32
    assert (half - ref).abs().mean() < 1.5 / 255, float((half - ref).abs().mean())
    assert (half_mask - ref_mask).abs().mean() < 0.02
    on_bf16_grid = half == half.to(torch.bfloat16).float()
    assert on_bf16_grid.float().mean() < 0.5  # a bf16 output layer would put every value on the grid


def test_colour_transfer_modes_move_colours_towards_the_reference() -> None:
    from faceplate.align import align_image, align_matrix
    from faceplate.analysis.faces import DETECTORS, Landmarker

    def face(name: str) -> tuple[np.ndarray, np.ndarray]:
        rgb = open_plate(media(name)).read(0)
        disp = open_plate(media(name)).read(0, display=True)
        lm = Landmarker()(disp, DETECTORS.get("mediapipe")(1, 0.5)(disp)[0].roi())
        m = align_matrix(lm, 128, "whole_face")
        from faceplate.align import to_aligned

        return align_image(rgb, m, 128), face_mask(to_aligned(m, lm), 128)

    src, mask = face("lp_driving_d30.jpg")
    ref, ref_mask = face("fr_obama.jpg")
    sel = (mask > 0.5) & (ref_mask > 0.5)
    before = np.abs(src[sel].mean(0) - ref[sel].mean(0)).sum()
    for mode in ("rct", "lct", "mkl", "idt", "sot"):
        out = COLOUR_TRANSFER.get(mode)(src, ref, mask)
        assert out.shape == src.shape and out.min() >= 0 and out.max() <= 1
        assert np.abs(out[sel].mean(0) - ref[sel].mean(0)).sum() < 0.5 * before, mode
    assert COLOUR_TRANSFER.get("none")(src, ref, mask) is src
    with pytest.raises(ConfigError, match="valid: idt, lct, mkl, none, rct, sot"):
        COLOUR_TRANSFER.get("magic")


def test_swap_bad_input(model: tuple[Path, object], facesets: tuple[Path, Path], tmp_path: Path) -> None:
    folder, _ = model
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "faceset.json").write_text(json.dumps({"version": 1, "name": "e", "res": 96, "face_type": "whole_face",
                                                    "identity": None, "faces": []}))  # fmt: skip
    np.save(empty / "landmarks.npy", np.zeros((0, 478, 3), np.float32))
    with pytest.raises(StoreError, match="empty"):
        load(empty)
    heads = build(
        FacesetConfig(name=tmp_path / "heads", sources=[str(media("lp_driving_d19.jpg"))], res=96, face_type="head")
    )
    with pytest.raises(ConfigError, match="source faceset is head but destination is whole_face"):
        train(TrainConfig(src=heads.path, dst=facesets[1], model=tmp_path / "x", iters=1, **TINY))
    with pytest.raises(ConfigError, match="needs faces of at least 128 px"):
        train(TrainConfig(src=facesets[0], dst=facesets[1], model=tmp_path / "y", iters=1, res=128))
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    for f in broken.glob("weights-*.safetensors"):
        f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(ModelError, match="corrupt"):
        checkpoint.load(broken, torch.device("cpu"))
    assert_one_line_error(run_cli("swap", media("lp_driving_d0.mp4"), "--model", broken, "-o", tmp_path / "a.mp4"),
                          "corrupt")  # fmt: skip
    assert_one_line_error(run_cli("swap", media("lp_driving_d18.mp4"), "--model", folder, "-o", tmp_path / "b.mp4",
                                  "--frames", "0-3"), "another destination actor")  # fmt: skip
    assert_one_line_error(run_cli("swap", media("lp_driving_d0.mp4"), "--model", tmp_path, "-o", tmp_path / "c.mp4"),
                          "holds no swap model")  # fmt: skip
    assert_one_line_error(run_cli("train", "swap", "--src", empty, "--dst", facesets[1], "--model", tmp_path / "z",
                                  "--iters", "5"), "empty")  # fmt: skip
    assert_one_line_error(run_cli("train", "swap", "--src", facesets[0], "--dst", facesets[1], "--model",
                                  tmp_path / "z"), "--iters N or --minutes M")  # fmt: skip


def test_adversarial_phase_and_temporal_merge(facesets: tuple[Path, Path], tmp_path: Path) -> None:
    folder = tmp_path / "gan"
    s = train(TrainConfig(src=facesets[0], dst=facesets[1], model=folder, iters=6, gan_power=0.1, gan_after=3, **TINY))
    assert s.iteration == 6
    assert checkpoint.load_extra(folder, "critic") is not None  # the critic is saved with the model
    again = train(TrainConfig(src=facesets[0], dst=facesets[1], model=folder, iters=8, gan_power=0.1, gan_after=3,
                              **{k: v for k, v in TINY.items() if k in ("lr", "batch", "preview_every")}))  # fmt: skip
    assert again.iteration == 8
    r = run_cli("swap", media("lp_driving_d0.mp4"), "--model", folder, "-o", tmp_path / "t.####.exr", "--frames",
                "20-24", "--temporal", "0.5", "--mask", "hull", "--colour", "sot")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert len(list(tmp_path.glob("t.*.exr"))) == 5
    assert_one_line_error(run_cli("swap", media("lp_driving_d0.mp4"), "--model", folder, "-o", tmp_path / "u.mp4",
                                  "--temporal", "2"), "temporal")  # fmt: skip
