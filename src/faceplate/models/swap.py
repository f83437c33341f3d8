"""DeepFaceLab-style swap autoencoders in PyTorch: DF (shared encoder, one decoder per identity) and LIAE
(shared encoder and decoder, an extra latent branch for the destination). Architecture only: settings
live in ``SwapArch``; losses, data and training are elsewhere.

Tensors are float (B, 3, R, R) in [0, 1]; decoders return (image (B, 3, R, R), mask (B, 1, R, R)).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from faceplate.errors import ConfigError
from faceplate.models.device import autocast, device, use_bf16

__all__ = ["Arch", "SwapArch", "SwapModel", "autocast", "device", "use_bf16"]

Arch = Literal["df", "liae"]


@dataclass(frozen=True)
class SwapArch:
    """Frozen model settings (stored with every checkpoint)."""

    arch: Arch = "df"
    res: int = 128
    face_type: str = "whole_face"
    ae_dims: int = 256
    e_dims: int = 64
    d_dims: int = 64
    d_mask_dims: int = 22

    def __post_init__(self) -> None:
        if self.arch not in ("df", "liae"):
            raise ConfigError(f"unknown architecture {self.arch!r}; valid: df, liae")
        if not 64 <= self.res <= 512 or self.res % 16:
            raise ConfigError(f"model resolution {self.res} must be a multiple of 16 in 64..512")
        if min(self.ae_dims, self.e_dims, self.d_dims, self.d_mask_dims) < 4:
            raise ConfigError("model dims must be at least 4")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.1)


class Down(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 5, stride=2, padding=2), _lrelu())


class Up(nn.Sequential):
    """Sub-pixel upscale x2 (conv to 4x channels, pixel shuffle)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout * 4, 3, padding=1), _lrelu(), nn.PixelShuffle(2))


class Res(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(ch, ch, 3, padding=1), nn.Conv2d(ch, ch, 3, padding=1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.c2(self.act(self.c1(x))))


class Encoder(nn.Sequential):
    def __init__(self, e: int) -> None:
        super().__init__(Down(3, e), Down(e, 2 * e), Down(2 * e, 4 * e), Down(4 * e, 8 * e), nn.Flatten())


class Inter(nn.Module):
    """Bottleneck: dense to ``ae_dims``, dense back to a (out_ch, res/16, res/16) map, upscaled once."""

    def __init__(self, in_features: int, ae_dims: int, out_ch: int, lowest: int) -> None:
        super().__init__()
        self.shape = (out_ch, lowest, lowest)
        self.dense = nn.Sequential(nn.Linear(in_features, ae_dims), nn.Linear(ae_dims, out_ch * lowest * lowest))
        self.up = Up(out_ch, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.dense(x).view(-1, *self.shape))


class Decoder(nn.Module):
    def __init__(self, cin: int, d: int, dm: int) -> None:
        super().__init__()
        self.rgb = nn.Sequential(Up(cin, 8 * d), Res(8 * d), Up(8 * d, 4 * d), Res(4 * d), Up(4 * d, 2 * d), Res(2 * d),
                                 nn.Conv2d(2 * d, 3, 1), nn.Sigmoid())  # fmt: skip
        self.mask = nn.Sequential(Up(cin, 8 * dm), Up(8 * dm, 4 * dm), Up(4 * dm, 2 * dm), nn.Conv2d(2 * dm, 1, 1),
                                  nn.Sigmoid())  # fmt: skip

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _fp32_head(self.rgb, z), _fp32_head(self.mask, z)


def _fp32_head(seq: nn.Sequential, z: torch.Tensor) -> torch.Tensor:
    """Run ``seq`` (… → 1x1 conv → sigmoid) with its last conv and sigmoid in fp32 even under bf16 autocast:
    bf16 keeps 8 bits of mantissa, which would quantize the face to ~1/256 steps (banding in 16-bit output)."""
    h = seq[:-2](z)
    with torch.autocast(h.device.type, enabled=False):
        return torch.sigmoid(seq[-2](h.float()))


class SwapModel(nn.Module):
    """``reconstruct(x, "src"|"dst")`` for training, ``swap(dst)`` for merging (dst face → src identity)."""

    def __init__(self, a: SwapArch) -> None:
        super().__init__()
        self.arch = a
        lowest = a.res // 16
        flat = 8 * a.e_dims * lowest * lowest
        self.encoder = Encoder(a.e_dims)
        if a.arch == "df":
            self.inter = Inter(flat, a.ae_dims, a.ae_dims, lowest)
            self.decoder_src = Decoder(a.ae_dims, a.d_dims, a.d_mask_dims)
            self.decoder_dst = Decoder(a.ae_dims, a.d_dims, a.d_mask_dims)
        else:
            self.inter_ab = Inter(flat, a.ae_dims, a.ae_dims, lowest)
            self.inter_b = Inter(flat, a.ae_dims, a.ae_dims, lowest)
            self.decoder = Decoder(2 * a.ae_dims, a.d_dims, a.d_mask_dims)

    def reconstruct(self, x: torch.Tensor, who: str) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.encoder(x)
        if self.arch.arch == "df":
            dec = self.decoder_src if who == "src" else self.decoder_dst
            return dec(self.inter(e))
        ab = self.inter_ab(e)
        z = torch.cat([ab, ab] if who == "src" else [self.inter_b(e), ab], dim=1)
        return self.decoder(z)

    def swap(self, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The source person with the destination face's pose, expression and light."""
        e = self.encoder(dst)
        if self.arch.arch == "df":
            return self.decoder_src(self.inter(e))
        ab = self.inter_ab(e)
        return self.decoder(torch.cat([ab, ab], dim=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.swap(x)

    def for_merging(self, bf16: bool) -> SwapModel:
        """This model, in eval mode and channels_last, for ``swap``; with ``bf16`` its weights are cast once
        to bf16 (autocast would re-cast all of them on every call: ~20 ms a face at res 128) except each
        decoder's last layer, which stays fp32. Feed it ``x.to(model.dtype)``."""
        self.eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if bf16:
            self.to(torch.bfloat16)
            for m in self.modules():
                if isinstance(m, Decoder):
                    m.rgb[-2].float()
                    m.mask[-2].float()
        return self

    @property
    def dtype(self) -> torch.dtype:
        """The dtype inputs should have (the first layer's)."""
        return next(self.encoder.parameters()).dtype


class PatchDiscriminator(nn.Sequential):
    """PatchGAN critic: one real/fake score per ~(R/8)^2 patch (used only in the optional adversarial phase)."""

    def __init__(self, ch: int = 32) -> None:
        super().__init__(
            nn.Conv2d(3, ch, 4, 2, 1), _lrelu(), nn.Conv2d(ch, 2 * ch, 4, 2, 1), _lrelu(),
            nn.Conv2d(2 * ch, 4 * ch, 4, 2, 1), _lrelu(), nn.Conv2d(4 * ch, 1, 3, 1, 1),
        )  # fmt: skip
