"""Swap training losses (PyTorch): multi-scale DSSIM + L1 inside the face, eyes/mouth priority, mask."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gauss_kernel(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=like.device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    k = (g[:, None] * g[None, :]).to(like.dtype)
    return k.expand(channels, 1, size, size).contiguous()


def dssim(a: torch.Tensor, b: torch.Tensor, size: int) -> torch.Tensor:
    """(1 - SSIM) / 2 with a Gaussian window of ``size`` px (odd), mean over the batch; inputs (B, C, H, W)."""
    size = max(3, size | 1)
    c = a.shape[1]
    k = _gauss_kernel(size, size / 6, c, a)
    mu_a, mu_b = F.conv2d(a, k, groups=c), F.conv2d(b, k, groups=c)
    saa = F.conv2d(a * a, k, groups=c) - mu_a**2
    sbb = F.conv2d(b * b, k, groups=c) - mu_b**2
    sab = F.conv2d(a * b, k, groups=c) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return ((1 - ssim) / 2).mean()


def reconstruction(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, priority: torch.Tensor,
                   eye_mouth_weight: float = 10.0) -> torch.Tensor:  # fmt: skip
    """Masked multi-scale DSSIM (windows res/11.6 and res/23.2, as DeepFaceLab) + L1, plus the eyes/mouth L1."""
    res = pred.shape[-1]
    p, t = pred * mask, target * mask
    loss = 5 * dssim(p, t, int(res / 11.6)) + 5 * dssim(p, t, int(res / 23.2)) + 10 * (p - t).abs().mean()
    return loss + eye_mouth_weight * ((pred - target).abs() * priority).mean()


def mask_loss(pred_mask: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return 10 * F.mse_loss(pred_mask, mask)
