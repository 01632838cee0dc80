"""Rate-distortion tools: sweeps over codec settings, target-rate search, and the plain-codec anchor.

Every point is measured the way the paper measures: bits over T·H·W, and the mean over
frames of the RGB PSNR of the clamped reconstruction against frames / 255.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import metrics
from .._checks import check_choice, check_int
from ..data import Video
from ..model import NVP
from ..rendering import evaluate
from .codecs import run_ffmpeg
from .compressor import Compressor

__all__ = ["rd_sweep", "find_setting", "video_anchor"]


def _point(model: NVP, video: Video, compressor: Compressor, ms_ssim: bool) -> dict[str, Any]:
    result = compressor.roundtrip(model)
    device = next(model.parameters()).device
    measured = evaluate(result.to_model(device), video, ms_ssim=ms_ssim, progress=False)
    return {"bits": result.bits()["total"], "bpp": result.bpp(video), "psnr": measured.psnr,
            "ms_ssim": measured.ms_ssim, "seconds": result.seconds, "parts": result.bits()}


def rd_sweep(model: NVP, video: Video, compressors: Mapping[str, Compressor], *, ms_ssim: bool = False,
             progress: bool = True) -> list[dict[str, Any]]:
    """Compress ``model`` with each labelled compressor, decode once, evaluate every frame.
    Returns one row per setting: ``label, bits, bpp, psnr, ms_ssim, seconds, parts``."""
    rows = []
    for label, compressor in tqdm(compressors.items(), desc="rd sweep", disable=not progress):
        rows.append({"label": label, **_point(model, video, compressor, ms_ssim)})
    return rows


def find_setting(model: NVP, video: Video, build: Callable[[int], Compressor], values: Sequence[int], *,
                 target_bpp: float | None = None, target_psnr: float | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """The value in ``values`` (e.g. ``range(0, 52)`` of crf) whose compressor lands closest to
    ``target_bpp`` (or ``target_psnr``), by bisection: ``values`` must be sorted so that the rate
    and quality fall as the value grows, as crf and qscale do. Returns the closest row, with
    ``value`` and every ``tried`` row."""
    if (target_bpp is None) == (target_psnr is None):
        raise ValueError("find_setting: give exactly one of target_bpp or target_psnr")
    values = list(values)
    if not values:
        raise ValueError("find_setting: values is empty")
    key, target = ("bpp", target_bpp) if target_bpp is not None else ("psnr", target_psnr)
    tried: dict[int, dict[str, Any]] = {}
    bar = tqdm(desc=f"search {key}={target}", disable=not progress)

    def at(i: int) -> dict[str, Any]:
        if i not in tried:
            tried[i] = {"value": values[i], **_point(model, video, build(values[i]), False)}
            bar.update(1)
        return tried[i]

    lo, hi = 0, len(values) - 1
    while hi - lo > 1:  # invariant: the metric falls with the index
        mid = (lo + hi) // 2
        if at(mid)[key] > target:
            lo = mid
        else:
            hi = mid
    bar.close()
    best = min((at(lo), at(hi)), key=lambda row: abs(row[key] - target))
    return {**best, "tried": [tried[i] for i in sorted(tried)]}


_ANCHORS = {"hevc": ["-c:v", "libx265", "-x265-params", "log-level=error"], "h264": ["-c:v", "libx264"]}


def video_anchor(video: Video, codec: str = "hevc", crfs: Sequence[int] = (18, 23, 28, 33, 38), *,
                 preset: str = "medium", progress: bool = True) -> list[dict[str, Any]]:
    """The clip itself compressed with x265 (or x264) at each crf, 4:2:0 8-bit raw bitstream, in
    memory; bpp and PSNR measured like the models' points (the RD anchor of video coding)."""
    check_choice("video_anchor", "codec", codec, _ANCHORS)
    for crf in crfs:
        check_int("video_anchor", "crf", crf, 0, 51)
    t, h, w = video.num_frames, video.height, video.width
    if h % 2 or w % 2:
        raise ValueError(f"video_anchor: 4:2:0 needs even frame sizes, got {w}x{h}; crop the video")
    target = torch.from_numpy(video.frames).float() / 255
    rows = []
    for crf in tqdm(crfs, desc=f"{codec} anchor", disable=not progress):
        started = time.perf_counter()
        stream = run_ffmpeg(["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate",
                             f"{video.fps:g}", "-i", "-", *_ANCHORS[codec], "-preset", preset, "-crf", str(crf),
                             "-pix_fmt", "yuv420p", "-f", codec, "-"], video.frames.tobytes(), f"{codec} anchor")
        raw = run_ffmpeg(["-f", codec, "-i", "-", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], stream,
                         f"{codec} anchor decode")
        decoded = torch.from_numpy(np.frombuffer(raw, np.uint8).reshape(t, h, w, 3).copy()).float() / 255
        rows.append({"label": f"{codec} crf {crf}", "value": crf, "bits": 8 * len(stream),
                     "bpp": 8 * len(stream) / (t * h * w), "psnr": metrics.psnr(decoded, target).mean().item(),
                     "ms_ssim": None, "seconds": time.perf_counter() - started})
    return rows
