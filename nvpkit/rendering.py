"""Full-frame rendering and evaluation of a model (plain or, later, compressed).

``render`` yields frames one at a time, computed in chunks of pixels so memory stays
bounded on the CPU; it renders at the video's size or at a scaled resolution
(super-resolution) and with more frames (frame interpolation: the sparse grid blends
its two nearest time cells), as the published evaluation offers. ``evaluate`` adds
per-frame PSNR (prediction clamped to [0, 1] against frames / 255, averaged over
frames, as published) and MS-SSIM, and can write the reconstruction.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import metrics
from ._progress import progress_bar
from ._checks import check_int
from ._device import resolve_device
from .data import Video, video_writer
from .model import NVP

__all__ = ["render", "evaluate", "Evaluation"]


def chunk_for(device: torch.device) -> int:
    """Pixels per inference pass: big on CUDA; on the CPU small enough that a pass's activations
    stay in cache (2**14 renders a 1080p frame 2.2x faster than 2**16 on 2 cores)."""
    return 2**20 if device.type == "cuda" else 2**14


@torch.inference_mode()
def render(model: NVP, num_frames: int, height: int, width: int, *, video_frames: int | None = None,
           chunk: int | None = None, indices: Sequence[int] | None = None) -> Iterator[torch.Tensor]:
    """Yield ``num_frames`` frames ``[height, width, 3]`` in [0, 1] on the model's device (only
    those at ``indices``, when given).

    ``video_frames`` is the frame count the model was trained on (default ``num_frames``); more
    output frames than that interpolate in time."""
    video_frames = video_frames or num_frames
    device = next(model.parameters()).device
    chunk = chunk or chunk_for(device)
    rows = torch.linspace(0, 1, height, device=device)
    cols = torch.linspace(0, 1, width, device=device)
    xy = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), -1).view(-1, 2)  # [H*W, 2]
    half_dt = 0.5 / video_frames
    times = torch.linspace(0, 1, num_frames, device=device)
    steps = torch.linspace(half_dt, 1 - half_dt, num_frames, device=device)
    interpolate = num_frames != video_frames
    for i in range(num_frames) if indices is None else indices:
        out = torch.empty(height * width, 3, device=device)
        for lo in range(0, height * width, chunk):
            part = xy[lo:lo + chunk]
            coords = torch.cat((times[i].expand(len(part), 1), part), 1)  # [n, 3] = (t, x, y)
            out[lo:lo + chunk] = model(coords, steps[i].expand(len(part)), interpolate_time=interpolate)
        yield ((out + 1) / 2).clamp(0, 1).view(height, width, 3)  # [-1, 1] -> [0, 1]


@dataclass
class Evaluation:
    """What ``evaluate`` measured (``nvpkit.metrics.METRICS`` says what each metric is); metrics are
    None where there is no ground truth."""

    psnr: float | None
    """RGB PSNR of the uint8 frames, as a decoder outputs them (mean over frames)."""
    psnr_float: float | None = None
    """RGB PSNR of the unrounded render (the published evaluation)."""
    yuv_psnr: float | None = None
    """(6 Y + U + V) / 8 PSNR: against the source planes for a raw .yuv source, else BT.709 of the RGB
    frames (``yuv_psnr_definition``)."""
    yuv_psnr_planes: list[float] | None = None
    """PSNR of Y, U, V."""
    yuv_psnr_definition: str = ""
    """Which YUV PSNR ``yuv_psnr`` is."""
    yuv_psnr_rgb: float | None = None
    """YUV PSNR by the RGB definition, for every source."""
    ms_ssim: float | None = None
    psnr_per_frame: list[float] = field(default_factory=list)
    psnr_float_per_frame: list[float] = field(default_factory=list)
    yuv_psnr_per_frame: list[float] = field(default_factory=list)
    ms_ssim_per_frame: list[float] = field(default_factory=list)
    shape: tuple[int, int, int] = (0, 0, 0)
    seconds: float = 0.0
    path: str | None = None
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def __repr__(self) -> str:
        parts = [f"{self.shape[0]} frames of {self.shape[1]}x{self.shape[2]}"]
        if self.psnr is not None:
            parts.append(f"PSNR {self.psnr:.2f} dB (float {self.psnr_float:.2f}), YUV PSNR {self.yuv_psnr:.2f} dB")
        if self.ms_ssim is not None:
            parts.append(f"MS-SSIM {self.ms_ssim:.4f}")
        if self.path:
            parts.append(f"written to {self.path}")
        return f"Evaluation({', '.join(parts)}, {self.seconds:.1f} s)"


def evaluate(model: NVP, video: Video, *, scale: float = 1.0, time_scale: int = 1, write: str | Path | None = None,
             overwrite: bool = False, ms_ssim: bool = True, chunk: int | None = None,
             device: str | None = None, progress: bool = True) -> Evaluation:
    """Render every frame and measure it against ``video``: the frames are rounded to uint8, as
    written to a file, and scored by ``metrics.FrameScores`` (the function that scores codecs too).

    Args:
        scale: spatial scale of the render (2.0: super-resolution); metrics need 1.0.
        time_scale: frames rendered per video frame (2: frame interpolation); metrics need 1.
        write: path of an mp4 (or a folder, no suffix) for the reconstruction.
        overwrite: allow replacing ``write``.
        ms_ssim: also compute MS-SSIM (skipped with a note for frames under 161 px).
        chunk: pixels per forward pass (bounded memory); default by device.
        device: where to render (default: where the model is).
    """
    if not (isinstance(scale, (int, float)) and scale > 0):
        raise ValueError(f"evaluate: scale={scale!r} is not allowed; use a number > 0")
    check_int("evaluate", "time_scale", time_scale, 1)
    if device is not None:
        model = model.to(resolve_device(device))
    dev = next(model.parameters()).device
    shape = (video.num_frames * time_scale, round(video.height * scale), round(video.width * scale))
    measure = scale == 1 and time_scale == 1
    note = "" if measure else "rendered at another size or frame count: no ground truth, no metrics"
    if measure and ms_ssim and min(shape[1:]) < metrics.MS_SSIM_MIN_SIDE:
        ms_ssim, note = False, f"MS-SSIM skipped: frames under {metrics.MS_SSIM_MIN_SIDE} px on the short side"
    scores = metrics.FrameScores(ms_ssim=ms_ssim, source=video.yuv)
    started = time.perf_counter()
    was_training = model.training
    model.eval()
    frames = render(model, *shape, video_frames=video.num_frames, chunk=chunk)
    bar = progress_bar(frames, total=shape[0], desc="evaluate", unit="frame", disable=not progress)
    try:
        with (video_writer(write, video.fps * time_scale, overwrite=overwrite) if write else nullcontext()) as out:
            for i, frame in enumerate(bar):
                rounded = metrics.to_uint8(frame)
                if out is not None:
                    out(rounded.cpu().numpy())
                if measure:
                    scores.add(rounded, torch.from_numpy(video.frames[i]).to(dev), unrounded=frame)
                    bar.set_postfix(refresh=False, psnr=f"{np.mean(scores.psnr):.2f}")
    finally:
        bar.close()
        model.train(was_training)
    summary = scores.summary() if measure else {"psnr": None}
    return Evaluation(**summary, shape=shape, seconds=time.perf_counter() - started,
                      path=str(write) if write else None, note=note)
