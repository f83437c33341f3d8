"""Keyframe-trained propagation: an artist paints a few frames; a small U-Net learns the fix in aligned
space and renders every frame (after Disney's production re-aging network: predict an RGB delta and a matte,
added to the input).

Training pairs are (plate face, painted face) cut with the *same* alignment from the plate frame and the
painted frame, so the network only has to learn the paint, not where the face is.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from faceplate import __version__
from faceplate.align import align_image, align_matrix, template_in_crop, to_aligned
from faceplate.config import ExtractConfig
from faceplate.effects.base import EFFECTS, AlignedFace, Effect, EffectResult
from faceplate.errors import ConfigError, FaceNotFoundError, ModelError, PlateError, WriterError
from faceplate.export import select_tracks
from faceplate.extract import extract
from faceplate.media import colour
from faceplate.media.plate import IMAGE_EXTS, open_plate
from faceplate.render import default_shot
from faceplate.store import FaceRow, ShotStore
from faceplate.swap.model import device

F32 = NDArray[np.float32]
MODEL_JSON = "keyframes.json"
MIN_KEYFRAMES = 2


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``x`` (B, C, H, W) with reflected edges; ``sigma`` in pixels."""
    r = max(1, round(3 * sigma))
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def bands(x: torch.Tensor, sigmas: tuple[float, ...]) -> list[torch.Tensor]:
    """Laplacian-style detail bands of ``x`` (B, C, H, W): x - G(s1), G(s1) - G(s2), ... (finest first)."""
    out, prev = [], x
    for s in sigmas:
        low = gaussian_blur(x, s)
        out.append(prev - low)
        prev = low
    return out


def face_coords(lm: NDArray[np.floating], res: int, ftype: str, grid: int = 32, sigma: float = 0.06) -> F32:
    """Face-locked coordinates (2, res, res) in [-1, 1] (x, y; grid_sample's convention) of an aligned crop.

    ``lm`` (478, >=2) are the face's landmarks in crop pixels. Each pixel gets the place on the template
    face that it shows: the landmarks' offsets from the template, spread over the crop by a normalised
    Gaussian (``sigma`` of ``res``) that fades to no offset away from the face. Through a smile or a frown
    the under-eye keeps its coordinates, where plain crop coordinates slide over the face.
    """
    lm = np.asarray(lm, np.float32)[:, :2]
    offsets = template_in_crop(res, ftype).astype(np.float32) - lm
    g = (np.arange(grid, dtype=np.float32) + 0.5) / grid * res - 0.5
    cells = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    d2 = (cells**2).sum(1)[:, None] - 2 * cells @ lm.T + (lm**2).sum(1)[None]
    w = np.exp(d2 * np.float32(-0.5 / (sigma * res) ** 2))
    field = (w @ offsets / (w.sum(1, keepdims=True) + 1.0)).reshape(grid, grid, 2)
    field = cv2.resize(field, (res, res), interpolation=cv2.INTER_LINEAR)
    px = np.stack(np.meshgrid(np.arange(res), np.arange(res)), -1).astype(np.float32)
    return np.ascontiguousarray(((px + field + 0.5) / res * 2 - 1).transpose(2, 0, 1), np.float32)


class ResidualUNet(nn.Module):
    """Small U-Net: image (B, 3, R, R) → (delta (B, 3, R, R) in [-1, 1], matte (B, 1, R, R) in [0, 1]).

    Two coordinate channels are appended to the input: a fix painted on one cheek stays on that cheek,
    which a plain U-Net learns slowly. They are face-locked (``face_coords``: each pixel's place on the
    template face, following the landmarks through expressions) or, for models before version 3, the
    aligned crop's own coordinates (which slide over the face when it smiles or talks).

    With ``band_sigmas`` the network does not paint the delta itself: it predicts, per pixel, an offset,
    a 3x3 colour matrix and a gain for each of the input's detail bands (``band_sigmas``, in pixels), and
    the delta is that local linear function of the input. A grade or tint is the offset and matrix, a
    paint-out or softening is a negative band gain, a sharpen a positive one; the held-out frame's own
    texture then comes through exactly (after HDRNet's local affine models), where a delta painted by the
    network is only as precise as its last layers. Without it (models of version 1) the head is the delta.

    ``static_grid`` adds a learned (grid x grid) map of the same head outputs, read at each pixel's
    coordinates and added to the U-Net's: the part of the fix that is the same in every frame at the same
    place on the face.
    """

    def __init__(self, width: int = 24, depth: int = 4, band_sigmas: tuple[float, ...] | None = None,
                 static_grid: int | None = None) -> None:  # fmt: skip
        super().__init__()
        self.band_sigmas = band_sigmas
        chans = [width * 2**i for i in range(depth)]
        self.downs = nn.ModuleList()
        cin = 5
        for c in chans:
            self.downs.append(nn.Sequential(nn.Conv2d(cin, c, 3, padding=1), nn.LeakyReLU(0.1),
                                            nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.1)))  # fmt: skip
            cin = c
        self.ups = nn.ModuleList()
        for c in reversed(chans[:-1]):
            self.ups.append(nn.Sequential(nn.Conv2d(cin + c, c, 3, padding=1), nn.LeakyReLU(0.1),
                                          nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.1)))  # fmt: skip
            cin = c
        extra = 0 if band_sigmas is None else 9 + 3 * len(band_sigmas)
        head = nn.Conv2d(cin, 4 + extra, 1)
        with torch.no_grad():  # start as the identity: no change anywhere
            head.weight.zero_()
            head.bias.zero_()  # type: ignore[union-attr]
        self.head = head
        self.static = None if static_grid is None else nn.Parameter(torch.zeros(1, 4 + extra, static_grid, static_grid))

    def forward(self, x: torch.Tensor, coords: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (B, 3, R, R) in [0, 1]; ``coords`` (B, 2, R, R) face-locked coordinates (``face_coords``) or
        None for plain crop coordinates (models before version 3)."""
        b, _, hh, ww = x.shape
        if coords is None:
            lin = [torch.linspace(-1, 1, n, device=x.device, dtype=x.dtype) for n in (hh, ww)]
            ys, xs = torch.meshgrid(*lin, indexing="ij")
            xy = torch.stack([xs, ys])[None].expand(b, 2, hh, ww)
        else:
            xy = coords
        skips = []
        h = torch.cat([x, xy], 1)
        for i, down in enumerate(self.downs):
            h = down(h if i == 0 else F.avg_pool2d(h, 2))
            skips.append(h)
        for up, skip in zip(self.ups, reversed(skips[:-1]), strict=True):
            h = up(torch.cat([F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1))
        out = self.head(h)
        if self.static is not None and coords is not None:  # the static map sits on the face, not the crop
            out = out + F.grid_sample(self.static.expand(b, -1, -1, -1), coords.permute(0, 2, 3, 1),
                                      mode="bilinear", padding_mode="border", align_corners=False)  # fmt: skip
        elif self.static is not None:
            out = out + F.interpolate(self.static, size=(hh, ww), mode="bilinear", align_corners=False)
        delta, matte = out[:, :3], torch.sigmoid(out[:, 3:4])
        if self.band_sigmas is not None:
            coef = out[:, 4:]
            colour = torch.einsum("bijhw,bjhw->bihw", coef[:, :9].reshape(b, 3, 3, hh, ww), x)
            gains = coef[:, 9:].reshape(b, len(self.band_sigmas), 3, hh, ww)
            detail = sum(g * d for g, d in zip(gains.unbind(1), bands(x, self.band_sigmas), strict=True))
            delta = delta + colour + detail
        # Bounded: an unbounded delta can grow while the matte shrinks to match, until the matte saturates
        # at 0 and training is dead (seen with the local linear head at 1500 iterations).
        return torch.tanh(delta), matte


@dataclass(frozen=True)
class KeyframeSettings:
    res: int = 256
    face_type: str = "whole_face"
    width: int = 16  # width, iters, batch and lr as measured in bench/RESULTS.md (keyframes)
    iters: int = 1500
    batch: int = 4
    lr: float = 2e-3
    # Detail-band scales of the local linear head, as fractions of ``res``; None: the plain delta head
    # (models of version 1, which had no such field).
    bands: tuple[float, ...] | None = (1 / 128, 2 / 128, 4 / 128, 8 / 128)
    # Cells of the static (same in every frame) map across the crop; None: no static map.
    static_grid: int | None = 32
    # Face-locked coordinates (``face_coords``) for the U-Net and the static map; False: crop coordinates
    # (models before version 3).
    face_locked: bool = True

    def net(self) -> ResidualUNet:
        sig = None if self.bands is None else tuple(b * self.res for b in self.bands)
        return ResidualUNet(self.width, band_sigmas=sig, static_grid=self.static_grid)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> KeyframeSettings:
        d = {"bands": None, "static_grid": None, "face_locked": False, **d}
        return cls(**{**d, "bands": None if d["bands"] is None else tuple(d["bands"])})


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
                pairs.append(Pair(frame, f.track, *_crops(src, paint, f, s, col), lm))
    if len({p.frame for p in pairs}) < MIN_KEYFRAMES:
        raise ConfigError(f"need at least {MIN_KEYFRAMES} painted keyframes, found {len(files)}")
    return pairs


def _crops(src: F32, paint: F32, face: FaceRow, s: KeyframeSettings, col: Callable[[F32], None]) -> tuple[F32, F32]:
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


def predict(
    net: ResidualUNet, x: torch.Tensor, coords: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(result, matte) for plate faces ``x`` (B, 3, R, R) with their face-locked ``coords`` (B, 2, R, R)."""
    delta, matte = net(x, coords)
    return (x + delta * matte).clamp(0, 1), matte


def fit(pairs: list[Pair], s: KeyframeSettings, seed: int = 0,
        progress: Callable[[int, int], None] | None = None) -> tuple[ResidualUNet, list[float]]:  # fmt: skip
    """Train the U-Net on the pairs; returns it with its loss curve.

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


def save_model(folder: Path, net: ResidualUNet, s: KeyframeSettings, info: dict[str, Any]) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / ".weights.partial.safetensors"
        save_file({k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}, str(tmp))
        os.replace(tmp, folder / "keyframes.safetensors")
        # 2: local linear head and static map; 3: face-locked coordinates
        version = 3 if s.face_locked else 1 if s.bands is None and s.static_grid is None else 2
        meta = {"version": version, "faceplate_version": __version__, "settings": asdict(s), **info}
        jtmp = folder / f".{MODEL_JSON}.partial"
        jtmp.write_text(json.dumps(meta, indent=1))
        os.replace(jtmp, folder / MODEL_JSON)
    except OSError as err:
        raise WriterError(f"cannot save the keyframe model in {folder}: {err.strerror}") from None


def load_model(folder: Path) -> tuple[ResidualUNet, KeyframeSettings]:
    path = folder / MODEL_JSON
    if not path.is_file():
        raise ModelError(f"{folder} holds no keyframe model; train one with `faceplate keyframes train`")
    try:
        meta = json.loads(path.read_text())
        s = KeyframeSettings.from_json(meta["settings"])
        net = s.net()
        net.load_state_dict(load_file(str(folder / "keyframes.safetensors")))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as err:
        raise ModelError(f"keyframe model {folder} is corrupt: {str(err).splitlines()[0]}") from None
    return net.to(device()).eval(), s


@dataclass(frozen=True)
class TrainKeyframes:
    plate: str
    painted: Path
    model: Path
    shot: Path | None = None
    track: int | None = None
    face: Path | None = None
    settings: KeyframeSettings = field(default_factory=KeyframeSettings)
    colorspace: str | None = None


def train_keyframes(cfg: TrainKeyframes, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Train on every painted frame and save the model; returns a summary."""
    t0 = time.perf_counter()
    shot = cfg.shot or default_shot(cfg.plate, str(cfg.model / "x"))
    pairs = training_pairs(cfg.plate, cfg.painted, shot, cfg.track, cfg.face, cfg.settings, cfg.colorspace)
    net, losses = fit(pairs, cfg.settings, progress=progress)
    info = {"plate": cfg.plate, "keyframes": sorted({p.frame for p in pairs}), "loss_first": losses[0],
            "loss_last": float(np.mean(losses[-20:]))}  # fmt: skip
    save_model(cfg.model, net, cfg.settings, info)
    return {**info, "seconds": time.perf_counter() - t0, "pairs": len(pairs)}


@EFFECTS.register("keyframes")
@dataclass(frozen=True)
class KeyframeEffect(Effect):
    """Apply a keyframe-trained U-Net to every frame, in aligned space."""

    name: ClassVar[str] = "keyframes"
    model_dir: Path

    @property
    def face_type(self) -> str:  # type: ignore[override]
        return self._settings().face_type

    def _settings(self) -> KeyframeSettings:
        return KeyframeSettings.from_json(json.loads((self.model_dir / MODEL_JSON).read_text())["settings"])

    def resolution(self, plate_iod: float) -> int:
        return self._settings().res

    def prepare(self, samples: list[AlignedFace], identity: F32 | None = None) -> tuple[ResidualUNet, KeyframeSettings]:
        return load_model(self.model_dir)

    @torch.no_grad()
    def apply(self, face: AlignedFace, context: Any) -> EffectResult:
        net, s = context
        dev = next(net.parameters()).device
        x = torch.from_numpy(np.ascontiguousarray(face.image, np.float32)).permute(2, 0, 1)[None].to(dev)
        coords = None
        if s.face_locked:
            coords = torch.from_numpy(face_coords(face.landmarks, x.shape[-1], s.face_type))[None].to(dev)
        delta, matte = net(x, coords)
        # Full strength: the composite blends the change in by the matte, giving ``predict``'s x + delta * matte.
        out = (x + delta).clamp(0, 1)
        return EffectResult(out[0].permute(1, 2, 0).cpu().numpy(), matte[0, 0].cpu().numpy())


def psnr(a: F32, b: F32, mask: F32) -> float:
    """PSNR in dB between ``a`` and ``b`` (values in [0, 1]) over pixels where ``mask`` > 0.5."""
    sel = mask > 0.5
    mse = float(((a - b) ** 2)[sel].mean())
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)
