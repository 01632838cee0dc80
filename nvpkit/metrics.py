"""Image quality metrics on frames in [0, 1], ``[B, H, W, 3]`` (channels last, as videos are stored)."""
from __future__ import annotations

import math

import torch
from pytorch_msssim import ms_ssim as _ms_ssim

__all__ = ["psnr", "psnr_from_mse", "ms_ssim", "MS_SSIM_MIN_SIDE"]

MS_SSIM_MIN_SIDE = 161
"""MS-SSIM (5 scales, 11-px window) needs frames whose short side exceeds (11 - 1) * 2**4 = 160 px."""


def psnr_from_mse(mse: float | torch.Tensor, peak: float = 1.0) -> float | torch.Tensor:
    """``10 log10(peak² / MSE)`` in dB (``peak`` 2 for signals in [-1, 1]); a zero MSE counts as 1e-20."""
    if isinstance(mse, torch.Tensor):
        return 10 * torch.log10(peak**2 / mse.clamp_min(1e-20))
    return 10 * math.log10(peak**2 / max(mse, 1e-20))


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame PSNR in dB, ``[B]``, with ``pred`` clamped to [0, 1]."""
    return psnr_from_mse((pred.clamp(0, 1) - target).square().flatten(1).mean(1))


def ms_ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame MS-SSIM, ``[B]`` (pytorch-msssim, the standard 5-scale setting, data range 1)."""
    if min(pred.shape[1:3]) < MS_SSIM_MIN_SIDE:
        raise ValueError(f"ms_ssim: frames of {pred.shape[2]}x{pred.shape[1]} are too small; the short side "
                         f"must be >= {MS_SSIM_MIN_SIDE} px")
    # [B, H, W, 3] -> [B, 3, H, W]
    return _ms_ssim(pred.clamp(0, 1).permute(0, 3, 1, 2).float(), target.permute(0, 3, 1, 2).float(),
                    data_range=1.0, size_average=False)
