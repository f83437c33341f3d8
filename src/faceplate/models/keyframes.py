"""The keyframe network: a small residual U-Net in aligned space with a local linear head, its settings,
and its model folder (safetensors weights + ``keyframes.json``).

After Disney's production re-aging network: predict an RGB delta and a matte, added to the input.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from faceplate import __version__
from faceplate.errors import ConfigError, ModelError, WriterError
from faceplate.fileio import atomic_write, atomic_write_text
from faceplate.models.swap import device
from faceplate.ops.torch_filters import bands

MODEL_JSON = "keyframes.json"
WEIGHTS = "keyframes.safetensors"


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

    def __post_init__(self) -> None:
        if not 64 <= self.res <= 1024 or self.res % 16:
            raise ConfigError(f"res {self.res} must be a multiple of 16 in 64..1024")
        if self.face_type not in ("face", "whole_face", "head"):
            raise ConfigError(f"face_type {self.face_type!r} must be face, whole_face or head")
        if not 4 <= self.width <= 256 or self.iters < 1 or self.batch < 1 or not 0 < self.lr < 1:
            raise ConfigError("width (4..256), iters, batch (>= 1) or lr (0..1) out of range")
        if self.static_grid is not None and not 2 <= self.static_grid <= 256:
            raise ConfigError(f"static_grid {self.static_grid} must be within 2..256")

    def net(self) -> ResidualUNet:
        sig = None if self.bands is None else tuple(b * self.res for b in self.bands)
        return ResidualUNet(self.width, band_sigmas=sig, static_grid=self.static_grid)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> KeyframeSettings:
        d = {"bands": None, "static_grid": None, "face_locked": False, **d}
        return cls(**{**d, "bands": None if d["bands"] is None else tuple(d["bands"])})


def predict(
    net: ResidualUNet, x: torch.Tensor, coords: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(result, matte) for plate faces ``x`` (B, 3, R, R) with their face-locked ``coords`` (B, 2, R, R)."""
    delta, matte = net(x, coords)
    return (x + delta * matte).clamp(0, 1), matte


def save_model(folder: Path, net: ResidualUNet, s: KeyframeSettings, info: dict[str, Any]) -> None:
    """Write the weights, then ``keyframes.json`` (each atomically)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriterError(f"cannot save the keyframe model in {folder}: {err.strerror}") from None
    weights = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    atomic_write(folder / WEIGHTS, lambda tmp: save_file(weights, str(tmp)))
    # 2: local linear head and static map; 3: face-locked coordinates
    version = 3 if s.face_locked else 1 if s.bands is None and s.static_grid is None else 2
    meta = {"version": version, "faceplate_version": __version__, "settings": asdict(s), **info}
    atomic_write_text(folder / MODEL_JSON, json.dumps(meta, indent=1))


def load_model(folder: Path) -> tuple[ResidualUNet, KeyframeSettings]:
    path = folder / MODEL_JSON
    if not path.is_file():
        raise ModelError(f"{folder} holds no keyframe model; train one with `faceplate keyframes train`")
    try:
        meta = json.loads(path.read_text())
        s = KeyframeSettings.from_json(meta["settings"])
        net = s.net()
        net.load_state_dict(load_file(str(folder / WEIGHTS)))
    except ConfigError as err:
        raise ModelError(f"keyframe model {folder} has invalid settings in {MODEL_JSON}: {err}") from None
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as err:
        raise ModelError(f"keyframe model {folder} is corrupt: {str(err).splitlines()[0]}") from None
    return net.to(device()).eval(), s
