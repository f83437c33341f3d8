"""Face swap: facesets from real clips, a tiny model that really trains, checkpoints, merge, bad input."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import assert_one_line_error, cli_here, media, run_cli
from faceplate.config import FacesetConfig, TrainConfig
from faceplate.errors import ConfigError, ModelError, StoreError
from faceplate.media import WriterSpec, open_plate, open_writer
from faceplate.models import swap_checkpoint as checkpoint
from faceplate.ops.augment import face_mask
from faceplate.ops.colour_transfer import COLOUR_TRANSFER
from faceplate.training.faceset import (
    Faceset,
    build,
    contact_sheet,
    coverage_plot,
    curate,
    load,
    reorder,
    sharpness,
)
from faceplate.training.swap import train

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


@pytest.mark.slow
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
    # by blur: sharpest first, and drop_blurry drops the blurriest quarter
    sharp = curate(a, "blur", drop_blurry=0.25)
    kept = [f.blur for f in sharp.faces]
    dropped = [f.blur for f in a.faces if f.file not in {g.file for g in sharp.faces}]
    assert kept == sorted(kept, reverse=True)
    assert abs(len(dropped) - len(a) / 4) <= 1 and max(dropped) <= min(kept), (dropped, kept)
    # the measure is the crop's sharpness: recomputed on the stored crop it matches, and blurring lowers it
    crop, lm = sharp.image(0), sharp.face_landmarks(0)
    assert sharpness(crop, lm) == pytest.approx(kept[0], abs=0.01)
    assert sharpness(cv2.GaussianBlur(crop, (0, 0), 1.5), lm) < 0.5 * kept[0]
    # dedupe: every face twice gives the same faces once; by histogram: neighbours look alike
    deduped = curate(a, "histogram", dedupe=True)
    assert len(a) / 4 < len(deduped) < len(a)  # near-identical frames of the studio clip go, most poses stay
    twice = curate(reorder(a, [*range(len(a)), *range(len(a))]), "histogram", dedupe=True)
    assert sorted(f.file for f in twice.faces) == sorted(f.file for f in deduped.faces)
    rng = np.random.default_rng(0)
    shuffled = [_colour_jumps(reorder(a, list(rng.permutation(len(a))))) for _ in range(3)]
    assert _colour_jumps(curate(a, "histogram")) < 0.7 * np.mean(shuffled)
    # the PNGs decode to what they show: the faces in curated order, and both facesets' poses plotted
    sheet = cv2.cvtColor(cv2.imread(str(contact_sheet(sharp, facesets[0] / "sheet.png"))), cv2.COLOR_BGR2RGB)
    assert sheet.shape == (3 * (96 + 14), 12 * 96, 3)  # 27 faces: 3 rows of 12 tiles with a caption strip
    for k in (0, 13, 26):
        tile = sheet[k // 12 * 110 : k // 12 * 110 + 96, k % 12 * 96 : k % 12 * 96 + 96]
        np.testing.assert_array_equal(tile, sharp.image(k))  # the crops are 96 px: tiles are the crops
        assert sheet[k // 12 * 110 + 96 : k // 12 * 110 + 110, k % 12 * 96 : k % 12 * 96 + 96].max() > 150  # caption
    plot = cv2.cvtColor(cv2.imread(str(coverage_plot(a, facesets[0] / "cov.png", b))), cv2.COLOR_BGR2RGB)
    assert plot.shape == (500, 600, 3)
    for colour in ((31, 119, 180), (255, 127, 14)):  # matplotlib's first two colours: A's dots, B's crosses
        assert (np.abs(plot.astype(int) - colour).sum(axis=2) < 30).sum() > 50, colour


def _colour_jumps(fs: Faceset) -> float:
    """Mean hue/saturation histogram change from each face to the next."""

    def hist(rgb: np.ndarray) -> np.ndarray:
        h = cv2.calcHist([cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)], [0, 1], None, [16, 8], [0, 180, 0, 256]).ravel()
        return h / h.sum()

    hists = [hist(fs.image(i)) for i in range(len(fs))]
    return float(np.mean([np.abs(x - y).sum() for x, y in itertools.pairwise(hists)]))


@pytest.mark.slow
def test_tiny_model_trains_and_loss_falls(model: tuple[Path, object], facesets: tuple[Path, Path]) -> None:
    folder, s = model
    assert s.iteration == 30  # type: ignore[attr-defined]
    assert s.last_loss < 0.8 * s.first_loss, s  # type: ignore[attr-defined]
    meta = json.loads((folder / "model.json").read_text())
    assert meta["arch"]["res"] == 64 and meta["state"]["iteration"] == 30
    assert meta["state"]["dst"]["identity"] is not None
    assert [it for it, _ in meta["state"]["history"]] == [30]  # the loss plot's points
    # preview.png, one row per face: source, its reconstruction, destination, its reconstruction, the swap
    preview = cv2.cvtColor(cv2.imread(str(folder / "preview.png")), cv2.COLOR_BGR2RGB)
    assert preview.shape == (4 * 64, 5 * 64, 3)
    for path, col in ((facesets[0], 0), (facesets[1], 2)):
        fs = load(path)
        for i in range(4):
            face = cv2.resize(fs.image(i * len(fs) // 4), (64, 64), interpolation=cv2.INTER_AREA)
            np.testing.assert_array_equal(preview[i * 64 : i * 64 + 64, col * 64 : col * 64 + 64], face)
    recon_dst, swapped = (preview[:, k * 64 : k * 64 + 64].astype(float) for k in (3, 4))
    assert min(recon_dst.std(), swapped.std()) > 5  # model outputs, not blank tiles
    assert np.abs(recon_dst - swapped).mean() > 1  # the two decoders differ
    assert cv2.imread(str(folder / "loss.png")).shape == (350, 600, 3)


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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
    assert_one_line_error(cli_here("swap", media("lp_driving_d18.mp4"), "--model", folder, "-o", tmp_path / "b.mp4",
                                  "--frames", "0-3"), "another destination actor")  # fmt: skip
    assert_one_line_error(cli_here("swap", media("lp_driving_d0.mp4"), "--model", tmp_path, "-o", tmp_path / "c.mp4"),
                          "holds no swap model")  # fmt: skip
    assert_one_line_error(cli_here("train", "swap", "--src", empty, "--dst", facesets[1], "--model", tmp_path / "z",
                                  "--iters", "5"), "empty")  # fmt: skip
    assert_one_line_error(cli_here("train", "swap", "--src", facesets[0], "--dst", facesets[1], "--model",
                                  tmp_path / "z"), "--iters N or --minutes M")  # fmt: skip


@pytest.mark.slow
def test_adversarial_phase_changes_the_model_and_trains_a_critic(facesets: tuple[Path, Path], tmp_path: Path) -> None:
    """Same seed, same batches: a critic that never gets its turn (gan_after past the last iteration) leaves
    the model bit-identical to plain training; once the adversarial phase runs, the model's weights move
    elsewhere and the critic trains, is saved with the model and goes on training in a resumed run."""

    def run(name: str, iters: int = 6, **gan: float) -> dict[str, torch.Tensor]:
        s = train(TrainConfig(src=facesets[0], dst=facesets[1], model=tmp_path / name, iters=iters, **gan, **TINY))
        assert s.iteration == iters
        return checkpoint.load(tmp_path / name, torch.device("cpu"))[0].state_dict()

    def gap(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
        return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)

    plain, idle, gan = run("plain"), run("idle", gan_power=0.1, gan_after=6), run("gan", gan_power=0.1, gan_after=3)
    assert gap(plain, idle) < 1e-6 and gap(plain, gan) > 1e-4, (gap(plain, idle), gap(plain, gan))
    idle_critic, critic = (checkpoint.load_extra(tmp_path / name, "critic") for name in ("idle", "gan"))
    assert idle_critic is not None and critic is not None
    assert gap(critic, idle_critic) > 1e-4  # both start from the same weights; only this one trained
    keep = {k: v for k, v in TINY.items() if k in ("lr", "batch", "preview_every")}
    again = train(TrainConfig(src=facesets[0], dst=facesets[1], model=tmp_path / "gan", iters=8, gan_power=0.1,
                              gan_after=3, **keep))  # fmt: skip
    resumed = checkpoint.load_extra(tmp_path / "gan", "critic")
    assert again.iteration == 8 and resumed is not None and gap(resumed, critic) > 0


@pytest.mark.slow
def test_temporal_merge_steadies_a_flickering_face(model: tuple[Path, object], tmp_path: Path) -> None:
    """A still face under flickering light (the destination clip's frame 20, every other frame 20% darker):
    at --temporal 0 the swapped face follows every flicker; --temporal 0.9, blending in the model's outputs
    on the frames before, makes the comp inside the face change less from frame to frame (same model)."""
    import OpenImageIO as oiio

    from faceplate.config import ExtractConfig
    from faceplate.extract import extract

    folder, _ = model
    rgb = open_plate(media("lp_driving_d0.mp4")).read(20)
    seq, shot = tmp_path / "flicker" / "f.####.png", tmp_path / "shot"
    with open_writer(WriterSpec(str(seq), rgb.shape[1], rgb.shape[0], format="png16")) as w:
        for n in range(1, 9):
            w.write(n, rgb * np.float32(0.8 if n % 2 else 1.0))
    extract(ExtractConfig(plate=str(seq), shot=shot))  # one analysis for both renders

    def changes(temporal: float) -> list[float]:
        out = tmp_path / f"t{temporal}" / "c.####.exr"
        # in this process: the model loads in ~1 s, a fresh Python takes ~5 s to start a swap
        r = cli_here("swap", seq, "--model", folder, "-o", out, "--shot", shot, "--temporal", temporal, "--mask",
                     "hull", "--colour", "none")  # fmt: skip
        assert r.returncode == 0, r.stderr
        comps = [oiio.ImageBuf(str(out).replace("####", f"{n:04d}")).get_pixels(oiio.FLOAT) for n in range(1, 9)]
        face = np.min([c[..., 3] for c in comps], axis=0) > 0.5  # inside the swapped face in every frame
        assert face.sum() > 5000
        return [float(np.abs(b[..., :3] - a[..., :3])[face].mean()) for a, b in itertools.pairwise(comps)]

    plain, smooth = changes(0.0), changes(0.9)
    assert np.mean(smooth) < 0.85 * np.mean(plain), (smooth, plain)
    assert_one_line_error(cli_here("swap", seq, "--model", folder, "-o", tmp_path / "u.mp4", "--shot", shot,
                                   "--temporal", "2"), "temporal")  # fmt: skip
