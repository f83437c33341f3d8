"""``train swap``: fit a DF / LIAE model on a source faceset (the new face) and a destination faceset (the
shot's actor). Resumable: a model folder continues from its checkpoint and iteration count; Ctrl-C saves.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from faceplate.config import TrainConfig
from faceplate.errors import ConfigError, Interrupted
from faceplate.fileio import atomic_write
from faceplate.media.prefetch import prefetch
from faceplate.models import swap_checkpoint as checkpoint
from faceplate.models.swap import PatchDiscriminator, SwapArch, SwapModel, autocast, device, use_bf16
from faceplate.ops.augment import Augment, sample
from faceplate.ops.colour_transfer import COLOUR_TRANSFER
from faceplate.review import write_png
from faceplate.training.faceset import Faceset, load
from faceplate.training.losses import mask_loss, reconstruction

LOSS_LOG = "losses.jsonl"  # one JSON object a line, per iteration: the loss curve as training goes
ProgressFn = Callable[[int, int, float], None]  # (iteration, target or 0, loss)


class TrainingInterrupted(Interrupted):
    """Ctrl-C while training: the model is saved first (a second Ctrl-C keeps the previous checkpoint)."""


@dataclass(frozen=True)
class TrainSummary:
    model: Path
    first_iteration: int
    iteration: int
    seconds: float
    first_loss: float
    last_loss: float

    @property
    def its_per_second(self) -> float:
        done = self.iteration - self.first_iteration
        return done / self.seconds if self.seconds > 0 else 0.0


def faceset_info(fs: Faceset) -> dict[str, Any]:
    return {"name": fs.name, "path": str(fs.path), "res": fs.res, "face_type": fs.face_type, "faces": len(fs),
            "identity": None if fs.identity is None else [float(v) for v in fs.identity]}  # fmt: skip


def _check(fs: Faceset, role: str, arch: SwapArch) -> None:
    if fs.face_type != arch.face_type:
        raise ConfigError(f"{role} faceset {fs.path} is {fs.face_type}, the model is {arch.face_type}")
    if fs.res < arch.res:
        raise ConfigError(f"{role} faceset {fs.path} is {fs.res} px; the model needs faces of at least {arch.res} px")


def _arch(cfg: TrainConfig, stored: SwapArch | None, face_type: str) -> SwapArch:
    asked = {k: v for k, v in cfg.model_dump().items() if k in SwapArch.__dataclass_fields__ and v is not None}
    if stored is None:
        return SwapArch(**{"face_type": face_type, **asked})
    clash = {k: (v, getattr(stored, k)) for k, v in asked.items() if getattr(stored, k) != v}
    if clash:
        what = ", ".join(f"{k} {a} (model has {b})" for k, (a, b) in clash.items())
        raise ConfigError(f"{cfg.model} was trained with other settings: {what}; leave them out or use a new --model")
    return stored


class _Batches:
    """Augmented (input, target, mask, priority) batches for src and dst, made on a background thread."""

    def __init__(self, src: Faceset, dst: Faceset, res: int, batch: int, ct: str, aug: Augment, seed: int) -> None:
        self.res, self.batch, self.aug = res, batch, aug
        self.ct = COLOUR_TRANSFER.get(ct)
        self.rng = np.random.default_rng(seed)
        self.src = [(src.image(i), src.face_landmarks(i)) for i in range(len(src))]
        self.dst = [(dst.image(i), dst.face_landmarks(i)) for i in range(len(dst))]

    def _one(self, faces: list[tuple[NDArray[np.uint8], NDArray[np.float32]]], recolour: bool) -> tuple[Any, ...]:
        img, lm = faces[self.rng.integers(len(faces))]
        s = sample(self.rng, img, lm, self.res, self.aug)
        if not recolour:
            return s.input, s.target, s.mask, s.priority
        ref_img, ref_lm = self.dst[self.rng.integers(len(self.dst))]
        ref = cv2.resize(ref_img, (self.res, self.res), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        from faceplate.ops.augment import face_mask

        ref_mask = face_mask(ref_lm * (self.res / ref_img.shape[0]), self.res)
        return self.ct(s.input, ref, ref_mask), self.ct(s.target, ref, ref_mask), s.mask, s.priority

    def __iter__(self) -> Iterator[tuple[NDArray[np.float32], ...]]:
        while True:
            out = []
            for faces, recolour in ((self.src, True), (self.dst, False)):
                parts = list(zip(*[self._one(faces, recolour) for _ in range(self.batch)], strict=True))
                out += [np.stack(p).astype(np.float32) for p in parts]
            yield tuple(out)


def _tensor(x: NDArray[np.float32], dev: torch.device) -> torch.Tensor:
    t = torch.from_numpy(x)
    t = t.permute(0, 3, 1, 2) if t.ndim == 4 else t[:, None]
    return t.contiguous(memory_format=torch.channels_last).to(dev)


def train(cfg: TrainConfig, progress: ProgressFn | None = None) -> TrainSummary:
    """Train (or continue training) the model in ``cfg.model``; returns what was done."""
    src, dst = load(cfg.src), load(cfg.dst)
    if src.face_type != dst.face_type:
        raise ConfigError(f"source faceset is {src.face_type} but destination is {dst.face_type}; build both alike")
    dev = device()
    stored = None
    if (cfg.model / checkpoint.MODEL_JSON).is_file():
        model, opt_state, state = checkpoint.load(cfg.model, dev)
        stored = model.arch
    arch = _arch(cfg, stored, src.face_type)
    _check(src, "source", arch)
    _check(dst, "destination", arch)
    if stored is None:
        torch.manual_seed(cfg.seed)
        model, opt_state, state = SwapModel(arch).to(dev), None, checkpoint.TrainState()
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optim = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    if opt_state is not None:
        optim.load_state_dict(opt_state)
        for g in optim.param_groups:
            g["lr"] = cfg.lr
    state.src, state.dst = faceset_info(src), faceset_info(dst)
    state.settings = cfg.model_dump(mode="json")
    aug = Augment(warp=0.04 if cfg.warp else 0.0, flip=cfg.flip)
    batches = prefetch(iter(_Batches(src, dst, arch.res, cfg.batch, cfg.ct, aug, cfg.seed + state.iteration)), depth=2)
    preview_set = _preview_set(src, dst, arch.res)
    gan = None
    if cfg.gan_power > 0:
        critic = PatchDiscriminator().to(dev)
        saved = checkpoint.load_extra(cfg.model, "critic") if stored is not None else None
        if saved is not None:
            critic.load_state_dict(saved)
        gan = _Gan(critic, torch.optim.Adam(critic.parameters(), lr=cfg.lr, betas=(0.5, 0.999)), cfg.gan_power,
                   cfg.gan_after)  # fmt: skip
    return _loop(cfg, model, optim, state, batches, preview_set, dev, progress, gan)


@dataclass
class _Gan:
    """The optional adversarial phase: a PatchGAN critic on source reconstructions."""

    critic: PatchDiscriminator
    optim: torch.optim.Optimizer
    power: float
    after: int


def _step(model: SwapModel, optim: torch.optim.Optimizer, b: list[torch.Tensor], cfg: TrainConfig,
          dev: torch.device, gan: _Gan | None, iteration: int) -> float:  # fmt: skip
    s_in, s_t, s_m, s_p, d_in, d_t, d_m, d_p = b
    with autocast(dev, use_bf16(dev, cfg.bf16)):
        ps, pms = model.reconstruct(s_in, "src")
        pd, pmd = model.reconstruct(d_in, "dst")
    ps, pms, pd, pmd = ps.float(), pms.float(), pd.float(), pmd.float()
    w = cfg.eye_mouth_prio
    loss = reconstruction(ps, s_t, s_m, s_p, w) + reconstruction(pd, d_t, d_m, d_p, w)
    loss = loss + mask_loss(pms, s_m) + mask_loss(pmd, d_m)
    adversarial = gan is not None and iteration >= gan.after
    if adversarial:
        assert gan is not None
        loss = loss + gan.power * ((gan.critic(ps * s_m) - 1) ** 2).mean()
    optim.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optim.step()
    if adversarial:
        assert gan is not None
        real, fake = gan.critic(s_t * s_m), gan.critic(ps.detach() * s_m)
        d_loss = ((real - 1) ** 2).mean() + (fake**2).mean()
        gan.optim.zero_grad(set_to_none=True)
        d_loss.backward()
        gan.optim.step()
    return float(loss.detach())


def _loop(cfg: TrainConfig, model: SwapModel, optim: torch.optim.Optimizer, state: checkpoint.TrainState,
          batches: Iterator[tuple[NDArray[np.float32], ...]], preview_set: tuple[torch.Tensor, torch.Tensor],
          dev: torch.device, progress: ProgressFn | None, gan: _Gan | None) -> TrainSummary:  # fmt: skip
    start_iter, t0, base = state.iteration, time.perf_counter(), state.seconds
    deadline = t0 + cfg.minutes * 60 if cfg.minutes else None
    target = cfg.iters if cfg.iters else 0
    last_save, losses, first_loss = t0, [], float("nan")
    model.train()
    try:
        while (not target or state.iteration < target) and (deadline is None or time.perf_counter() < deadline):
            b = [_tensor(x, dev) for x in next(batches)]
            loss = _step(model, optim, b, cfg, dev, gan, state.iteration)
            state.iteration += 1
            losses.append(loss)
            log_loss(cfg.model, state.iteration, loss)
            if first_loss != first_loss:
                first_loss = loss
            if progress:
                progress(state.iteration, target, loss)
            if state.iteration % cfg.preview_every == 0:
                _preview(cfg.model, model, preview_set, state)
            if state.iteration % cfg.save_every == 0 or time.perf_counter() - last_save > 600:
                _save(cfg.model, model, optim, state, losses, base + time.perf_counter() - t0, gan)
                last_save = time.perf_counter()
    except KeyboardInterrupt:
        _save(cfg.model, model, optim, state, losses, base + time.perf_counter() - t0, gan)
        raise TrainingInterrupted(
            f"stopped at iteration {state.iteration}; the model is saved in {cfg.model} — run again to continue"
        ) from None
    _save(cfg.model, model, optim, state, losses, base + time.perf_counter() - t0, gan)
    _preview(cfg.model, model, preview_set, state)
    last = float(np.mean(losses[-20:])) if losses else float("nan")
    return TrainSummary(cfg.model, start_iter, state.iteration, time.perf_counter() - t0, first_loss, last)


def log_loss(folder: Path, iteration: int, loss: float) -> None:
    """Append one ``{"iteration", "loss"}`` line to the model folder's LOSS_LOG (the review app's training
    monitor reads it while this trains)."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / LOSS_LOG).open("a") as f:
        f.write(json.dumps({"iteration": iteration, "loss": round(loss, 6)}) + "\n")


def _save(folder: Path, model: SwapModel, optim: torch.optim.Optimizer, state: checkpoint.TrainState,
          losses: list[float], seconds: float, gan: _Gan | None) -> None:  # fmt: skip
    if losses and (not state.history or state.history[-1][0] != state.iteration):
        state.history.append((state.iteration, float(np.mean(losses[-50:]))))
    state.seconds = seconds
    checkpoint.save(folder, model, optim, state, {"critic": gan.critic} if gan is not None else None)
    _loss_plot(folder, state)


def _preview_set(src: Faceset, dst: Faceset, res: int) -> tuple[torch.Tensor, torch.Tensor]:
    def grab(fs: Faceset) -> torch.Tensor:
        n = min(4, len(fs))
        imgs = [cv2.resize(fs.image(i * len(fs) // n), (res, res), interpolation=cv2.INTER_AREA) for i in range(n)]
        return torch.from_numpy(np.stack(imgs).astype(np.float32) / 255).permute(0, 3, 1, 2).contiguous()

    return grab(src), grab(dst)


@torch.no_grad()
def _preview(folder: Path, model: SwapModel, preview_set: tuple[torch.Tensor, torch.Tensor],
             state: checkpoint.TrainState) -> None:  # fmt: skip
    """preview.png: columns src, src recon, dst, dst recon, dst → src swap."""
    model.eval()
    dev = next(model.parameters()).device
    s, d = (x.to(dev) for x in preview_set)
    cols = [s, model.reconstruct(s, "src")[0], d, model.reconstruct(d, "dst")[0], model.swap(d)[0]]
    n = min(len(s), len(d))
    grid = torch.cat([torch.cat([c[i] for c in cols], dim=2) for i in range(n)], dim=1)
    img = (grid.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    write_png(folder / "preview.png", img)
    model.train()
    del state


def _loss_plot(folder: Path, state: checkpoint.TrainState) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not state.history:
        return
    it, loss = zip(*state.history, strict=True)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(it, loss)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (mean of the last 50)")
    ax.grid(alpha=0.3)
    try:
        atomic_write(folder / "loss.png", fig.savefig)
    finally:
        plt.close(fig)


def summary_dict(s: TrainSummary) -> dict[str, Any]:
    return {**asdict(s), "its_per_second": s.its_per_second}
