"""Image quality metrics, and the one function that scores reconstructions against a video.

Frames are ``[B, H, W, 3]`` RGB, channels last as videos are stored. ``FrameScores`` scores every
reconstruction the same way, a model's render and a codec's decoded frames alike: as uint8 frames,
what a decoder outputs and a file holds. Beside that it keeps the float PSNR of an unrounded render
(the published evaluation, which never rounds to 8 bits).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from pytorch_msssim import ms_ssim as _ms_ssim

from .colour import YuvSource, planes_psnr, to_planes

__all__ = ["psnr", "psnr_from_mse", "ms_ssim", "yuv_psnr", "rgb_to_yuv", "to_uint8", "FrameScores", "MS_SSIM_MIN_SIDE",
           "METRICS"]

MS_SSIM_MIN_SIDE = 161
"""MS-SSIM (5 scales, 11-px window) needs frames whose short side exceeds (11 - 1) * 2**4 = 160 px."""

METRICS = {
    "psnr": "RGB PSNR (dB) of the uint8 frames a decoder outputs against the source frames, mean over frames",
    "psnr_float": "RGB PSNR (dB) of the unrounded render clamped to [0, 1] (the published evaluation); "
                  "None for codecs, whose output is uint8",
    "yuv_psnr": "(6 PSNR_Y + PSNR_U + PSNR_V) / 8 (dB), mean over frames: for a raw .yuv source, of the "
                "reconstruction converted to the source's Y'CbCr (its matrix, range and chroma subsampling, by "
                "ffmpeg as for the codecs) against the source planes at their bit depth, as x265 and ffmpeg's psnr "
                "filter report it; for an RGB source, of BT.709 full-range YUV 4:4:4 of both RGB frames "
                "(yuv_psnr_definition says which)",
    "yuv_psnr_planes": "PSNR_Y, PSNR_U, PSNR_V (dB), each the mean over frames",
    "yuv_psnr_rgb": "yuv_psnr by the RGB definition (BT.709 full-range YUV 4:4:4 of both RGB frames), for every "
                    "source: what yuv_psnr was for .yuv sources before it was measured against their planes",
    "ms_ssim": "MS-SSIM of the uint8 frames (pytorch-msssim, 5 scales), mean over frames",
}
"""What each reported metric is: results.json records this next to the numbers."""

_BT709 = torch.tensor([[0.2126, 0.7152, 0.0722],
                       [-0.2126 / 1.8556, -0.7152 / 1.8556, 0.5],
                       [0.5, -0.7152 / 1.5748, -0.0722 / 1.5748]])
"""RGB to Y'CbCr (BT.709, full range): Y in [0, 1], Cb and Cr in [-0.5, 0.5]."""


def psnr_from_mse(mse: float | torch.Tensor, peak: float = 1.0) -> float | torch.Tensor:
    """``10 log10(peak² / MSE)`` in dB (``peak`` 2 for signals in [-1, 1]); a zero MSE counts as 1e-20."""
    if isinstance(mse, torch.Tensor):
        return 10 * torch.log10(peak**2 / mse.clamp_min(1e-20))
    return 10 * math.log10(peak**2 / max(mse, 1e-20))


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame PSNR in dB, ``[B]``, of frames in [0, 1] (``pred`` clamped)."""
    return psnr_from_mse((pred.clamp(0, 1) - target).square().flatten(1).mean(1))


def rgb_to_yuv(frames: torch.Tensor) -> torch.Tensor:
    """BT.709 full-range Y'CbCr of RGB frames in [0, 1]: ``[..., 3]`` -> ``[..., 3]`` (Y, Cb, Cr)."""
    return frames @ _BT709.to(frames.device, frames.dtype).T


def yuv_psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame, per-plane PSNR in dB, ``[B, 3]`` (Y, U, V), of RGB frames in [0, 1] converted to
    BT.709 YUV (peak 1 for every plane)."""
    error = (rgb_to_yuv(pred.clamp(0, 1)) - rgb_to_yuv(target)).square()  # [B, H, W, 3]
    return psnr_from_mse(error.flatten(1, 2).mean(1))


def ms_ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame MS-SSIM, ``[B]`` (pytorch-msssim, the standard 5-scale setting, data range 1)."""
    if min(pred.shape[1:3]) < MS_SSIM_MIN_SIDE:
        raise ValueError(f"ms_ssim: frames of {pred.shape[2]}x{pred.shape[1]} are too small; the short side "
                         f"must be >= {MS_SSIM_MIN_SIDE} px")
    # [B, H, W, 3] -> [B, 3, H, W]
    return _ms_ssim(pred.clamp(0, 1).permute(0, 3, 1, 2).float(), target.permute(0, 3, 1, 2).float(),
                    data_range=1.0, size_average=False)


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Frames in [0, 1] rounded to uint8 as a video writer stores them: ``floor(255 x + 0.5)``."""
    return (frames.clamp(0, 1) * 255 + 0.5).floor().to(torch.uint8)


class FrameScores:
    """Scores reconstructions frame by frame against the source frames (see the module docstring),
    so a whole clip never needs to be in memory: ``add`` one frame at a time, ``summary`` at the end."""

    def __init__(self, ms_ssim: bool = True, source: YuvSource | None = None):
        self.use_ms_ssim = ms_ssim
        self.source = source
        self.psnr: list[float] = []
        self.psnr_float: list[float] = []
        self.yuv: list[list[float]] = []
        self.yuv_rgb: list[list[float]] = []
        self.ms_ssim: list[float] = []

    def add(self, recon: torch.Tensor, target: torch.Tensor, unrounded: torch.Tensor | None = None, *,
            planes: list[np.ndarray] | None = None) -> None:
        """The next frame: ``recon`` and ``target`` uint8 ``[H, W, 3]``; ``unrounded`` the float render
        in [0, 1] that ``recon`` was rounded from, if any. With a YUV ``source``, ``planes`` are the
        reconstruction's own Y, U, V planes when it has them (a codec's decoded frame); otherwise
        ``recon`` is converted to the source's Y'CbCr (``colour.to_planes``)."""
        if recon.dtype != torch.uint8 or target.dtype != torch.uint8:
            raise TypeError(f"FrameScores.add: recon and target must be uint8, got {recon.dtype}, {target.dtype}")
        pred = recon.to(target.device).float()[None] / 255  # [1, H, W, 3]
        true = target.float()[None] / 255
        self.psnr.append(psnr(pred, true).item())
        self.yuv_rgb.append(yuv_psnr(pred, true)[0].tolist())
        if self.source is None:
            self.yuv.append(self.yuv_rgb[-1])
        else:
            mine = planes if planes is not None else to_planes(recon.cpu().numpy(), self.source.colour)
            self.yuv.append(planes_psnr(mine, self.source.planes(len(self.psnr) - 1), self.source.colour.peak))
        if unrounded is not None:
            self.psnr_float.append(psnr(unrounded.to(true.device)[None], true).item())
        if self.use_ms_ssim:
            self.ms_ssim.append(ms_ssim(pred, true).item())

    def summary(self) -> dict:
        """Means over frames and the per-frame lists (names as in ``METRICS``)."""
        def weighted(scores: list[list[float]]) -> np.ndarray:
            yuv = np.asarray(scores).reshape(-1, 3)
            return (6 * yuv[:, 0] + yuv[:, 1] + yuv[:, 2]) / 8

        def mean(values) -> float | None:
            return float(np.mean(values)) if len(values) else None

        planes = np.asarray(self.yuv).reshape(-1, 3).mean(0).tolist() if self.yuv else None
        definition = (f"source planes ({self.source.colour.describe()})" if self.source is not None
                      else "BT.709 full-range 4:4:4 of the RGB frames")
        return {"psnr": mean(self.psnr), "psnr_float": mean(self.psnr_float), "yuv_psnr": mean(weighted(self.yuv)),
                "yuv_psnr_planes": planes, "yuv_psnr_definition": definition,
                "yuv_psnr_rgb": mean(weighted(self.yuv_rgb)), "ms_ssim": mean(self.ms_ssim),
                "psnr_per_frame": list(self.psnr), "psnr_float_per_frame": list(self.psnr_float),
                "yuv_psnr_per_frame": weighted(self.yuv).tolist(), "ms_ssim_per_frame": list(self.ms_ssim)}
