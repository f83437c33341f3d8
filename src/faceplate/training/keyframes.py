"""Training the keyframe network: an artist paints a few frames; (plate face, painted face) pairs cut with
the *same* alignment from the plate frame and the painted frame, so the network only has to learn the
paint, not where the face is.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from faceplate.align import align_image, align_matrix, to_aligned
from faceplate.config import ExtractConfig, KeyframeTrainConfig
from faceplate.errors import ConfigError, FaceNotFoundError, PlateError
from faceplate.export import select_tracks
from faceplate.extract import extract
from faceplate.media import colour
from faceplate.media.plate import IMAGE_EXTS, open_plate
from faceplate.models.keyframes import KeyframeSettings, ResidualUNet, predict, save_model
from faceplate.models.swap import device
from faceplate.ops.face_coords import face_coords
from faceplate.store import FaceRow, ShotStore
from faceplate.training.swap import LOSS_LOG, log_loss

F32 = NDArray[np.float32]
MIN_KEYFRAMES = 2


@dataclass(frozen=True)
class Pair:
    frame: int
    track: int
    plate: F32  # (R, R, 3) aligned plate face, encoded [0, 1]
    painted: F32  # (R, R, 3) the same crop of the painted frame
    landmarks: F32  # (478, 2) the face's landmarks in crop pixels


def _painted_files(folder: Path) -> dict[int, Path]:
    """Frame number → painted file: the last number in each image file's name (paint.1001.png, 0042.exr)."""
    if not folder.is_dir():
        raise PlateError(f"painted folder {folder} does not exist")
    files = {}
    for p in sorted(folder.iterdir()):
        m = re.search(r"(\d+)(?!.*\d)", p.stem)
        if p.suffix.lower() in IMAGE_EXTS and m:
            files[int(m.group(1))] = p
    if not files:
        raise PlateError(f"no numbered painted frames (e.g. paint.1001.png) in {folder}")
    return files


def training_pairs(plate_path: str, painted: Path, shot: Path, track: int | None, face: Path | None,
                   s: KeyframeSettings, colorspace: str | None = None) -> list[Pair]:  # fmt: skip
    """Aligned (plate, painted) face pairs for every painted frame; clear errors for every mismatch."""
    files = _painted_files(painted)
    extract(ExtractConfig(plate=plate_path, shot=shot, colorspace=colorspace))
    pairs = []
    with ShotStore.open(shot) as store, open_plate(plate_path, colorspace=colorspace) as plate:
        tracks = select_tracks(store, track, face, allow_all=True)
        missing = sorted(f for f in files if f not in plate.info.frames)
        if missing:
            raise PlateError(f"painted frame(s) {missing[:5]} are not frames of {plate_path} ({plate.info.frames})")
        col = colour.converter(plate.info.colorspace, colour.ANALYSIS_SPACE)
        for frame, path in files.items():
            faces = [f for f in store.faces_in_frame(frame) if f.track in tracks]
            if not faces:
                raise FaceNotFoundError(f"painted frame {frame} ({path.name}) has no chosen face in the plate")
            src = plate.read(frame)
            with open_plate(path, colorspace=plate.info.colorspace) as p:
                if (p.info.width, p.info.height) != (plate.info.width, plate.info.height):
                    raise PlateError(f"{path.name} is {p.info.width}x{p.info.height}, the plate is "
                                     f"{plate.info.width}x{plate.info.height}")  # fmt: skip
                paint = p.read(p.info.first_frame)
            for f in faces:
                lm = to_aligned(align_matrix(f.best, s.res, s.face_type), f.best[:, :2]).astype(np.float32)
                pairs.append(Pair(frame, f.track, *aligned_pair(src, paint, f, s, col), lm))
    if len({p.frame for p in pairs}) < MIN_KEYFRAMES:
        raise ConfigError(f"need at least {MIN_KEYFRAMES} painted keyframes, found {len(files)}")
    return pairs


def aligned_pair(
    src: F32, paint: F32, face: FaceRow, s: KeyframeSettings, col: Callable[[F32], None]
) -> tuple[F32, F32]:
    """(plate crop, painted crop) (R, R, 3) of ``face``, cut with the same alignment, encoded by ``col``."""
    m = align_matrix(face.best, s.res, s.face_type)
    out = []
    for img in (src, paint):
        crop = np.ascontiguousarray(align_image(img, m, s.res, cv2.INTER_LINEAR), np.float32)
        col(crop)
        out.append(np.clip(crop, 0, 1))
    return out[0], out[1]


def _augment(rng: np.random.Generator, a: F32, b: F32, lm: F32) -> tuple[F32, F32, F32]:
    """The same small random affine and exposure change on both images of a pair (and the affine on its
    landmarks ``lm`` (478, 2)).

    No mirroring: an artist's fix is often on one side of the face only (a scar, a blemish).
    """
    r = a.shape[0]
    m = np.asarray(
        cv2.getRotationMatrix2D((r / 2, r / 2), rng.uniform(-4, 4), 1 + rng.uniform(-0.04, 0.04)), np.float64
    )
    m[:, 2] += rng.uniform(-0.03, 0.03, 2) * r
    gain = 1 + rng.uniform(-0.08, 0.08)
    warp = [np.clip(cv2.warpAffine(x, m, (r, r), borderMode=cv2.BORDER_REFLECT) * gain, 0, 1) for x in (a, b)]
    moved = (lm @ m[:, :2].T + m[:, 2]).astype(np.float32)
    return np.ascontiguousarray(warp[0], np.float32), np.ascontiguousarray(warp[1], np.float32), moved


def _batch(pairs: list[Pair], rng: np.random.Generator, n: int, s: KeyframeSettings,
           dev: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:  # fmt: skip
    chosen = [pairs[i] for i in rng.integers(len(pairs), size=n)]
    picks = [_augment(rng, p.plate, p.painted, p.landmarks) for p in chosen]
    x = torch.from_numpy(np.stack([a for a, _, _ in picks])).permute(0, 3, 1, 2).to(dev)
    y = torch.from_numpy(np.stack([b for _, b, _ in picks])).permute(0, 3, 1, 2).to(dev)
    if not s.face_locked:
        return x, y, None
    return x, y, torch.from_numpy(np.stack([face_coords(lm, s.res, s.face_type) for _, _, lm in picks])).to(dev)


def fit(pairs: list[Pair], s: KeyframeSettings, seed: int = 0, progress: Callable[[int, int], None] | None = None,
        log: Path | None = None) -> tuple[ResidualUNet, list[float]]:  # fmt: skip
    """Train the U-Net on the pairs; returns it with its loss curve (each step's loss also appended to the
    model folder ``log``'s LOSS_LOG when given, which starts afresh).

    Squared error (not L1: a paint changes few pixels, and L1's sign gradient on the unchanged ones is
    all codec noise) plus a tiny prior that keeps the matte closed where nothing was painted.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dev = device()
    net = s.net().to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=s.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, s.iters)
    losses: list[float] = []
    guard = _Guard()
    if log is not None:
        log.mkdir(parents=True, exist_ok=True)
        (log / LOSS_LOG).unlink(missing_ok=True)
    for it in range(s.iters):
        x, y, coords = _batch(pairs, rng, s.batch, s, dev)
        out, matte = predict(net, x, coords)
        loss = 100 * ((out - y) ** 2).mean() + 1e-4 * matte.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if log is not None:
            log_loss(log, it + 1, losses[-1])
        guard.check(losses, net, opt, sched)
        if progress:
            progress(it + 1, s.iters)
    guard.finish(losses, net)
    return net, losses


@dataclass
class _Guard:
    """Keeps the weights of the best ``window`` steps so far (by mean loss). When a window's loss jumps to
    ``spike`` times the best, training goes back to them at half the learning rate; at the end, the best
    weights are kept if the last window is worse. (At a high learning rate a loss spike can push the matte
    to 0, where its sigmoid has no gradient left: training is dead from then on.)"""

    window: int = 50
    spike: float = 3.0
    best: float = float("inf")
    saved: tuple[dict[str, Any], dict[str, Any]] | None = None
    restarts: int = 0

    def check(self, losses: list[float], net: nn.Module, opt: torch.optim.Optimizer, sched: Any) -> None:
        if len(losses) % self.window:
            return
        recent = float(np.mean(losses[-self.window :]))
        if recent < self.best:
            self.best = recent
            self.saved = (copy.deepcopy(net.state_dict()), copy.deepcopy(opt.state_dict()))
        elif recent > self.spike * self.best and self.saved is not None:
            net.load_state_dict(self.saved[0])
            opt.load_state_dict(self.saved[1])
            sched.base_lrs = [lr / 2 for lr in sched.base_lrs]
            for g in opt.param_groups:
                g["lr"] = sched.get_last_lr()[0] / 2
            self.restarts += 1

    def finish(self, losses: list[float], net: nn.Module) -> None:
        if self.saved is not None and float(np.mean(losses[-self.window :])) > self.best:
            net.load_state_dict(self.saved[0])


@dataclass(frozen=True)
class KeyframeSummary:
    """What ``train_keyframes`` did."""

    model: Path
    keyframes: list[int]
    pairs: int
    loss_first: float
    loss_last: float
    seconds: float


def train_keyframes(cfg: KeyframeTrainConfig, progress: Callable[[int, int], None] | None = None) -> KeyframeSummary:
    """Train on every painted frame and save the model."""
    t0 = time.perf_counter()
    s = KeyframeSettings(res=cfg.res, iters=cfg.iters)
    pairs = training_pairs(cfg.plate, cfg.painted, cfg.shot_folder, cfg.track, cfg.face, s, cfg.colorspace)
    net, losses = fit(pairs, s, progress=progress, log=cfg.model)
    keys = sorted({p.frame for p in pairs})
    last = float(np.mean(losses[-20:]))
    save_model(cfg.model, net, s, {"plate": cfg.plate, "keyframes": keys, "loss_first": losses[0], "loss_last": last})
    return KeyframeSummary(cfg.model, keys, len(pairs), losses[0], last, time.perf_counter() - t0)
