"""Blurs and detail bands on torch tensors (B, C, H, W), differentiable (for the keyframe network)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
